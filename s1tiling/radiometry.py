"""Radiometric calibration of Sentinel-1 GRD windows: LUTs, thermal noise, border cut.

Per pixel (line l, sample p) with digital number DN::

    value = (DN**2 - eta) / A**2

``A`` is the chosen calibration LUT (sigma0, beta0, gamma or dn) and ``eta`` the thermal
noise (0 when noise is not removed), both interpolated as :mod:`s1tiling.s1.luts` explains.
After noise removal, values <= 0 become ``lower_signal_value`` (0 is the chain's no-data
value); DN == 0 stays 0. Output is linear power, float32.

Work is done window by window: the LUTs are reduced to per-row weights and per-column
tables once per window and combined in one pass by a numba kernel (float64 inside), so
memory stays at the size of the window.

Border cut (what S1Tiling does with OTB ResetMargin): the first (last) 1600 lines are set
to 0 when line 100 (line ``lines - 100``) holds more than 2000 zero pixels; for IPF < 2.90
the first and last 1000 samples are set to 0 as well. :func:`border_cut_params` decides it
once per product (it reads those two lines); :meth:`BorderCut.apply` applies it to any window.

Terrain corrections applied on the tile grid (the maps come from :mod:`s1tiling.incidence` and
:mod:`s1tiling.terrain_flattening`):

- NORMLIM (S1Tiling's ``ApplyLIACalibration``): sigma0_NORMLIM = beta0 x sin(LIA), no-data (0)
  where beta0 or sin(LIA) is no-data, at least ``lower_signal_value`` elsewhere (:func:`normlim`);
- gamma0 RTC (Small 2011, S1Tiling's ``SARGammaAreaToGammaNaughtRTCImageEstimation``):
  calibration_factor x sigma0 x A_sigma / A_gamma, A_gamma the gamma area map (m²), no-data
  where it is below ``min_gamma_area`` (shadow) (:func:`flatten`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .s1.luts import NoiseLUTs, VectorLUT, WindowAzimuthNoise
from .s1.product import Product, WindowLike, as_window

LOWER_SIGNAL_VALUE = 1e-7
#: S1Tiling's ``min_gamma_area`` (m²): below this gamma area a pixel is in shadow, gamma0 RTC is no-data.
MIN_GAMMA_AREA = 1.0

#: Border cut parameters, as in S1Tiling.
AZIMUTH_CUT_LINES = 1600
RANGE_CUT_SAMPLES = 1000
ANALYSED_LINE = 100
ZERO_PIXELS_THRESHOLD = 2000
IPF_WITH_MASKED_BORDERS = 2.90


@numba.njit(cache=True, nogil=True)
def _calibrate_kernel(dn, cal_index, cal_weight, cal_table, noise_index, noise_weight, noise_table,
                      az_rows, az_cols, az_values, remove_noise, lower_signal_value, out):
    n_lines, n_samples = dn.shape
    eta = np.zeros(n_samples)
    signal = np.empty(n_samples)
    quotient = np.empty(n_samples)
    for r in range(n_lines):
        i = cal_index[r]
        t = cal_weight[r]
        if remove_noise:
            j = noise_index[r]
            u = noise_weight[r]
            for c in range(n_samples):
                eta[c] = noise_table[j, c] + u * (noise_table[j + 1, c] - noise_table[j, c])
            for b in range(az_rows.shape[0]):
                if az_rows[b, 0] <= r < az_rows[b, 1]:
                    factor = az_values[b, r]
                    for c in range(az_cols[b, 0], az_cols[b, 1]):
                        eta[c] *= factor
        # Every quotient first, then the choices: no branch on the data in either loop.
        for c in range(n_samples):
            d = np.float64(dn[r, c])
            a = cal_table[i, c] + t * (cal_table[i + 1, c] - cal_table[i, c])
            signal[c] = d * d - eta[c]
            quotient[c] = signal[c] / (a * a)
        for c in range(n_samples):
            value = lower_signal_value if signal[c] <= 0.0 else quotient[c]
            out[r, c] = 0.0 if dn[r, c] == 0 else value


def calibrate_dn(dn: np.ndarray, lines: np.ndarray, samples: np.ndarray, calibration_lut: VectorLUT,
                 noise: NoiseLUTs | None = None,
                 lower_signal_value: float = LOWER_SIGNAL_VALUE, out: np.ndarray | None = None) -> np.ndarray:
    """Calibrate a DN array on the grid ``lines`` x ``samples``.

    ``dn``: (len(lines), len(samples)) array; ``lines``/``samples``: 1-D increasing absolute
    indices; ``calibration_lut``: a :class:`~s1tiling.s1.luts.VectorLUT` (e.g.
    ``product.calibration(pol).select('sigma')``); ``noise``: the :class:`NoiseLUTs` to
    remove, or None; ``out``: float32 array of the shape of ``dn`` to fill (else a new one).
    Returns float32.
    """
    lines = np.asarray(lines)
    samples = np.asarray(samples)
    dn = np.ascontiguousarray(dn)
    if dn.shape != (len(lines), len(samples)):
        raise ValueError(f"DN array {dn.shape} does not match {len(lines)} lines x {len(samples)} samples")
    cal = calibration_lut.window(lines, samples)
    if noise is not None:
        rng = noise.range.window(lines, samples)
        az = noise.window_azimuth(lines, samples)
    else:  # the kernel ignores them: placeholders of the right types
        rng = cal
        az = WindowAzimuthNoise(np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64), np.zeros((0, len(lines))))
    if out is None:
        out = np.empty(dn.shape, dtype=np.float32)
    elif out.shape != dn.shape or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {dn.shape}")
    _calibrate_kernel(
        dn, cal.index, cal.weight, cal.table, rng.index, rng.weight, rng.table,
        az.rows, az.cols, az.values, noise is not None, float(lower_signal_value), out,
    )
    return out


@dataclass(frozen=True)
class BorderCut:
    """Pixels zeroed by the border cut: ``top``/``bottom`` lines and ``left``/``right``
    samples of a ``lines`` x ``samples`` image."""

    lines: int
    samples: int
    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def valid(self) -> tuple[slice, slice]:
        """(rows, cols) slices of the part of the image that is kept."""
        return slice(self.top, self.lines - self.bottom), slice(self.left, self.samples - self.right)

    def kept(self, window: WindowLike, shape: tuple[int, ...]) -> tuple[slice, slice]:
        """(rows, cols) slices of the kept part of an array of ``shape`` covering ``window``
        of the image (empty slices when nothing is kept)."""
        window = as_window(window)
        rows, cols = self.valid
        r0, c0 = int(window.row_off), int(window.col_off)
        top = min(max(rows.start - r0, 0), shape[0])
        left = min(max(cols.start - c0, 0), shape[1])
        return (slice(top, max(min(rows.stop - r0, shape[0]), top)),
                slice(left, max(min(cols.stop - c0, shape[1]), left)))

    def apply(self, array: np.ndarray, window: WindowLike) -> np.ndarray:
        """Zero, in place, the cut pixels of ``array`` that covers ``window`` of the image."""
        rows, cols = self.kept(window, array.shape)
        array[: rows.start] = 0
        array[rows.stop :] = 0
        array[:, : cols.start] = 0
        array[:, cols.stop :] = 0
        return array


def border_cut_params(product: Product, pol: str, override_azimuth_cut_threshold_to: bool | None = None) -> BorderCut:
    """Decide the border cut of one product and polarisation.

    ``override_azimuth_cut_threshold_to``: None applies the heuristic on lines 100 and
    ``lines - 100``; True always cuts 1600 lines top and bottom; False never does.
    The range cut depends only on the IPF version (< 2.90).
    """
    lines, samples = product.shape
    if override_azimuth_cut_threshold_to is None:
        top = _too_many_zeros(product, pol, ANALYSED_LINE)
        bottom = _too_many_zeros(product, pol, lines - ANALYSED_LINE)
    else:
        top = bottom = bool(override_azimuth_cut_threshold_to)
    side = RANGE_CUT_SAMPLES if product.ipf_version < IPF_WITH_MASKED_BORDERS else 0
    return BorderCut(
        lines=lines, samples=samples,
        top=AZIMUTH_CUT_LINES if top else 0, bottom=AZIMUTH_CUT_LINES if bottom else 0,
        left=side, right=side,
    )


def _too_many_zeros(product: Product, pol: str, line: int) -> bool:
    row = product.read(pol, (line, 0, 1, product.shape[1]))
    return int(np.count_nonzero(row == 0)) > ZERO_PIXELS_THRESHOLD


def calibrate(product: Product, pol: str, window: WindowLike, calibration: str = "sigma",
              remove_thermal_noise: bool = True, lower_signal_value: float = LOWER_SIGNAL_VALUE,
              border_cut: BorderCut | bool | None = True, out: np.ndarray | None = None,
              read=None) -> np.ndarray:
    """Read and calibrate one window of a product (float32 linear power).

    ``window``: rasterio Window or (row_off, col_off, height, width). ``calibration``:
    'sigma', 'beta', 'gamma' or 'dn'. ``border_cut``: a :class:`BorderCut` (from
    :func:`border_cut_params`, to compute once for many windows), True to decide it here
    with the heuristic, or False/None for no cut: only the part of the window it keeps is
    read and calibrated. ``out``: float32 array of the window's shape to fill (else a new one).
    ``read``: how the DN of a window (row_off, col_off, height, width) are read (default:
    ``product.read(pol, window)``; e.g. from a dataset the caller keeps open).
    """
    window = product.check_window(window)
    shape = (int(window.height), int(window.width))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {shape}")
    if border_cut is True:
        border_cut = border_cut_params(product, pol)
    rows, cols = border_cut.kept(window, shape) if border_cut else (slice(0, shape[0]), slice(0, shape[1]))
    if rows.start < rows.stop and cols.start < cols.stop:
        line0, sample0 = int(window.row_off) + rows.start, int(window.col_off) + cols.start
        part = (line0, sample0, rows.stop - rows.start, cols.stop - cols.start)
        dn = read(part) if read is not None else product.read(pol, part)
        lut = product.calibration(pol).select(calibration)
        noise = product.noise(pol) if remove_thermal_noise else None
        calibrate_dn(dn, np.arange(line0, line0 + dn.shape[0]), np.arange(sample0, sample0 + dn.shape[1]),
                     lut, noise, lower_signal_value, out=out[rows, cols])
    if border_cut:
        border_cut.apply(out, window)
    return out


__all__ = [
    "BorderCut",
    "border_cut_params",
    "calibrate",
    "calibrate_dn",
    "LOWER_SIGNAL_VALUE",
]


def radiometric_lut(calibration: str) -> str:
    """The calibration LUT behind a ``[Processing] calibration`` value."""
    if calibration in ("sigma", "beta", "gamma", "dn"):
        return calibration
    if calibration == "normlim":  # beta0, multiplied by sin(LIA) once on the tile grid
        return "beta"
    if calibration == "gamma_naught_rtc":  # sigma0, times A_sigma / A_gamma on the tile grid (as S1Tiling)
        return "sigma"
    raise NotImplementedError(f"calibration {calibration!r} is not supported by the native engine yet")


def normlim(beta: np.ndarray, sin_lia: np.ndarray, lower_signal_value: float) -> np.ndarray:
    """sigma0 NORMLIM = beta0 x sin(LIA): 0 where beta0 is 0 or sin(LIA) is NaN (no-data), at
    least ``lower_signal_value`` elsewhere."""
    valid = (beta != 0) & np.isfinite(sin_lia)
    return np.where(valid, np.maximum(beta * np.where(valid, sin_lia, 0), lower_signal_value), 0).astype(np.float32)


def flatten(sigma: np.ndarray, gamma_area: np.ndarray, pixel_area: float, lower_signal_value: float,
            min_gamma_area: float = MIN_GAMMA_AREA, calibration_factor: float = 1.0) -> np.ndarray:
    """gamma0 RTC = calibration_factor x sigma0 x A_sigma / A_gamma (``pixel_area`` A_sigma, m²;
    ``gamma_area`` A_gamma, m², the gamma area map): 0 (no-data) where sigma0 is 0 or A_gamma is
    NaN (no-data) or below ``min_gamma_area`` (shadow), at least ``lower_signal_value`` elsewhere."""
    valid = (sigma != 0) & (gamma_area >= min_gamma_area) & (gamma_area > 0)  # False for NaN
    flattened = sigma * (calibration_factor * pixel_area) / np.where(valid, gamma_area, 1.0)
    return np.where(valid, np.maximum(flattened, lower_signal_value), 0).astype(np.float32)


def pixel_area(product: Product) -> float:
    """A_sigma (m²): the ground area of a pixel of a GRD product (azimuth x range pixel spacing)."""
    image = product.annotation(product.polarisations[0]).image
    return float(image.azimuth_pixel_spacing * image.range_pixel_spacing)

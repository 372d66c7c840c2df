"""A physically plausible synthetic radar scene, for the demo's measurement TIFFs.

:func:`scene_content` returns, for one polarisation of one product, a ``content`` callable of
:func:`s1tiling.samples.testing.build_product`: DNs such that the calibrated product
(``sigma0 = (DN**2 - noise) / A**2`` with the product's own calibration and noise LUTs) shows

- land cover in ground coordinates (latitude/longitude from the product's geolocation grid):
  grassland, crops in parcels, forest and a few towns, in patches of a few kilometres, plus a
  meandering river and a lake (calm water, dark);
- typical C-band backscatter per class and polarisation, VH 6 to 8 dB below VV (water lower);
- terrain shading from the DEM, when one is given: slopes facing the radar brighter, slopes
  facing away darker (local incidence angle from the heights along the range direction);
- multiplicative speckle of a multi-looked GRD (gamma-distributed intensity, 4.4 looks).

Everything but the speckle is computed on a coarse grid (every :data:`COARSE` lines and samples)
and repeated, so that a full-size product (25000 x 17000 pixels) takes seconds per polarisation.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..geometry.dem import DemCatalog
from ..radiometry import calibrate_dn
from ..s1.product import Product

#: sigma0 in dB per land-cover class: (VV, VH); VH 6 to 8 dB below VV, water much lower.
CLASSES: dict[str, tuple[float, float]] = {
    "water": (-21.0, -28.0),
    "grassland": (-12.0, -19.0),
    "crops": (-10.0, -17.0),
    "forest": (-7.5, -14.0),
    "urban": (-2.0, -9.0),
}
#: Equivalent number of looks of the speckle (Sentinel-1 IW GRDH: about 4.4).
LOOKS = 4.4
#: Coarse grid step (lines and samples) of everything but the speckle.
COARSE = 8
_DN_REFERENCE = 1000.0


def _bilinear(grid_rows, grid_cols, values, rows, cols):
    """``values`` (a regular grid on ``grid_rows`` x ``grid_cols``) at ``rows`` (n,) x ``cols`` (m,)."""
    r = np.clip(np.interp(rows, grid_rows, np.arange(len(grid_rows))), 0, len(grid_rows) - 1.000001)
    c = np.clip(np.interp(cols, grid_cols, np.arange(len(grid_cols))), 0, len(grid_cols) - 1.000001)
    r0, c0 = r.astype(int), c.astype(int)
    fr, fc = (r - r0)[:, None], (c - c0)[None, :]
    v00, v01 = values[r0][:, c0], values[r0][:, c0 + 1]
    v10, v11 = values[r0 + 1][:, c0], values[r0 + 1][:, c0 + 1]
    return (v00 * (1 - fc) + v01 * fc) * (1 - fr) + (v10 * (1 - fc) + v11 * fc) * fr


class _Geolocation:
    """Latitude, longitude and incidence angle of image positions, from the geolocation grid."""

    def __init__(self, product: Product, pol: str):
        g = product.annotation(pol).geolocation_grid
        self.rows = np.unique(g.line).astype(float)
        self.cols = np.unique(g.pixel).astype(float)
        shape = (len(self.rows), len(self.cols))
        order = np.lexsort((g.pixel, g.line))
        self.lat = np.asarray(g.latitude, float)[order].reshape(shape)
        self.lon = np.asarray(g.longitude, float)[order].reshape(shape)
        self.incidence = np.asarray(g.incidence_angle, float)[order].reshape(shape)

    def at(self, rows, cols):
        return tuple(_bilinear(self.rows, self.cols, v, rows, cols) for v in (self.lat, self.lon, self.incidence))


def _hash(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """A pseudo-random value in [0, 1) per integer lattice node (i, j): the same node, the same value."""
    x = np.sin(i * 12.9898 + j * 78.233 + seed * 37.719) * 43758.5453
    return x - np.floor(x)


def value_noise(x: np.ndarray, y: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1): random values on a lattice of ``cell`` (same unit as x, y),
    interpolated with a smooth step."""
    u, v = x / cell, y / cell
    i, j = np.floor(u), np.floor(v)
    fu, fv = u - i, v - j
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    a, b = _hash(i, j, seed), _hash(i + 1, j, seed)
    c, d = _hash(i, j + 1, seed), _hash(i + 1, j + 1, seed)
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


def land_cover(lat: np.ndarray, lon: np.ndarray, origin: tuple[float, float], seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Class index (into :data:`CLASSES`) at each point, and a per-parcel offset in dB.

    Land cover from smooth noise of a few km in latitude/longitude (the same ground gets the same
    class in every product and polarisation): grassland, crops in parcels of about 400 m (each
    its own brightness, +-2 dB), forest, a few towns; plus a meandering river (300 m wide) and a
    lake (5 km across), placed from ``origin`` (latitude, longitude): the river runs north-south
    through it, the lake lies 12 km west and 6 km north of it."""
    y, x = lat * 111.0, lon * 111.0 * np.cos(np.radians(origin[0]))  # km
    field = (0.5 * value_noise(x, y, 9.0, seed) + 0.3 * value_noise(x, y, 3.7, seed + 1)
             + 0.2 * value_noise(x, y, 1.3, seed + 2))
    names = list(CLASSES)
    kinds = np.array([names.index(n) for n in ("grassland", "crops", "forest", "urban")])
    cover = kinds[np.digitize(field, [0.40, 0.56, 0.79])]
    parcel = np.where(cover == names.index("crops"),
                      4.0 * (_hash(np.floor(x / 0.4), np.floor(y / 0.4), seed + 3) - 0.5), 0.0)
    # A river across the scene from south to north, meandering, and a lake.
    y0, x0 = origin[0] * 111.0, origin[1] * 111.0 * np.cos(np.radians(origin[0]))
    meander = x0 + 6.0 * np.sin((y - y0) / 7.0) + 2.0 * np.sin((y - y0) / 2.3)
    water = np.abs(x - meander) < 0.15
    water |= np.hypot(x - (x0 - 12.0), y - (y0 + 6.0)) < 2.5
    return np.where(water, names.index("water"), cover), np.where(water, 0.0, parcel)


def _shading(heights: np.ndarray, incidence_deg: np.ndarray, ground_spacing: float) -> np.ndarray:
    """Backscatter factor of the terrain: ``sin(theta) / sin(theta - alpha)`` (the illuminated
    area), ``alpha`` the slope towards the radar along the range direction (samples increase
    with range), clipped for foreshortening and shadows."""
    theta = np.radians(incidence_deg)
    slope = np.arctan(-np.gradient(heights, ground_spacing, axis=1))  # > 0: facing the radar
    local = np.clip(theta - slope, np.radians(5.0), np.radians(85.0))
    return np.clip(np.sin(theta) / np.sin(local), 0.2, 5.0)


def _speckle_table(seed: int) -> np.ndarray:
    """Amplitude speckle factors: sqrt of gamma-distributed intensities (mean 1) at 4096 quantiles."""
    draws = np.sort(np.random.default_rng(seed).gamma(LOOKS, 1 / LOOKS, 1 << 16))
    return np.sqrt(draws[(np.arange(4096) * 16 + 8)]).astype(np.float32)


def scene_content(product: Product, pol: str, dem_dir: str | Path | None = None, *, seed: int = 0,
                  origin: tuple[float, float] | None = None,
                  coarse: int = COARSE) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The ``content`` callable of :func:`~s1tiling.samples.testing.build_product` for ``pol``
    of ``product`` (see the module's docstring); ``dem_dir``: SRTM tiles for terrain shading;
    ``origin``: (latitude, longitude) of the river (default: the product's centre; give the same
    to the products of one scene)."""
    if origin is None:
        centre = product.footprint.centroid
        origin = (centre.y, centre.x)
    pol = pol.upper()
    which = 0 if pol[0] == pol[1] else 1  # co- or cross-polarisation
    geo = _Geolocation(product, pol)
    calibration = product.calibration(pol).select("sigma")
    noise = product.noise(pol)
    dem = DemCatalog(dem_dir) if dem_dir is not None else None
    spacing = product.annotation(pol).image.range_pixel_spacing
    levels = np.array([10 ** (values[which] / 10) for values in CLASSES.values()])
    table = _speckle_table(seed + which)
    rng = np.random.default_rng([seed, which])

    def content(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = np.ravel(rows), np.ravel(cols)
        crows = np.unique(np.append(rows[::coarse], rows[-1])).astype(np.int64)
        ccols = np.unique(np.append(cols[::coarse], cols[-1])).astype(np.int64)
        lat, lon, incidence = geo.at(crows.astype(float), ccols.astype(float))
        cover, parcel_db = land_cover(lat, lon, origin, seed)
        sigma0 = levels[cover] * 10 ** (parcel_db / 10)
        if dem is not None:
            dem_logger = logging.getLogger("s1tiling.geometry.dem")  # tiles around the demo's: flat, quietly
            level = dem_logger.level
            dem_logger.setLevel(logging.ERROR)
            try:
                heights = np.nan_to_num(dem.heights_at(lat, lon))
            finally:
                dem_logger.setLevel(level)
            sigma0 = sigma0 * _shading(heights, incidence, spacing * coarse)
        reference = np.full((len(crows), len(ccols)), _DN_REFERENCE, np.float32)
        plain = calibrate_dn(reference, crows, ccols, calibration)
        denoised = calibrate_dn(reference, crows, ccols, calibration, noise, lower_signal_value=-np.inf)
        gain = _DN_REFERENCE ** 2 / plain  # A**2
        noise_power = (plain - denoised) * gain
        # back to full resolution: nearest coarse node
        ri = np.minimum(np.searchsorted(crows, rows - coarse // 2), len(crows) - 1)
        ci = np.minimum(np.searchsorted(ccols, cols - coarse // 2), len(ccols) - 1)
        amplitude = np.sqrt(np.maximum(sigma0 * gain + noise_power, 0)).astype(np.float32)[ri][:, ci]
        amplitude *= table[rng.integers(0, len(table), amplitude.shape, np.uint16)]
        return np.clip(np.rint(amplitude), 1, np.iinfo(np.uint16).max).astype(np.uint16)

    return content

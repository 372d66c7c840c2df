"""Calibration and thermal-noise look-up tables (``annotation/calibration/*.xml``).

Both files annotate values on sparse *vectors*: vector k lies on image line ``line[k]`` and
gives a value at each sample of its own ``pixel[k]`` list. The value at (line l, sample p)
is interpolated bilinearly, the way ESA's processor, SNAP and OTB do it:

1. linearly along ``pixel`` within each vector,
2. then linearly in ``line`` between the two vectors around l.

Outside the annotated nodes (samples past the last pixel, lines before the first or after
the last vector, lines past the last node of a noise azimuth block) the two end nodes are
extrapolated linearly, as SNAP does (its node index is clamped, its weight is not). The
calibration vectors always span the image; the noise vectors end on the last line; only
some azimuth blocks end a few lines before their ``lastAzimuthLine``.

Noise comes in two formats:

- IPF < 2.90: ``noiseVectorList/noiseVector`` with ``noiseLut`` (all zero on the oldest
  products: that is data, not an error);
- IPF >= 2.90: ``noiseRangeVectorList`` (``noiseRangeLut``) times
  ``noiseAzimuthVectorList`` blocks, each covering lines [firstAzimuthLine..lastAzimuthLine]
  x samples [firstRangeSample..lastRangeSample] with a ``noiseAzimuthLut`` along ``line``;
  outside every block the azimuth factor is 1.

Everything here works on a *window*: 1-D increasing arrays of absolute line and sample
indices; nothing of product size is ever built.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lxml import etree
from numpy.typing import ArrayLike


def interp_linear(x: ArrayLike, xp: ArrayLike, fp: ArrayLike) -> np.ndarray:
    """Piecewise-linear interpolation of (xp, fp) at x, extrapolating the end segments.

    ``xp`` must be increasing. A single node gives a constant.
    """
    x = np.asarray(x, dtype=np.float64)
    xp = np.asarray(xp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    if xp.size == 1:
        return np.full(x.shape, fp[0])
    index, weight = segment_weights(x, xp)
    return fp[index] + weight * (fp[index + 1] - fp[index])


def segment_weights(x: ArrayLike, xp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each x: the segment index i of the increasing nodes ``xp`` (clamped to the end
    segments) and the weight t with x = xp[i] + t * (xp[i+1] - xp[i]) (t outside [0, 1]
    when extrapolating)."""
    x = np.asarray(x, dtype=np.float64)
    index = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, len(xp) - 2)
    weight = (x - xp[index]) / (xp[index + 1] - xp[index])
    return index, weight


@dataclass(frozen=True)
class WindowLUT:
    """A sparse LUT reduced to one window, in separable form.

    ``table`` (k x n_samples) holds the k vectors that the window needs, each interpolated
    at the window samples; row r of the window is ``table[index[r]] * (1 - weight[r]) +
    table[index[r] + 1] * weight[r]``.
    """

    index: np.ndarray  # (n_lines,) int64, into table
    weight: np.ndarray  # (n_lines,) float64
    table: np.ndarray  # (k, n_samples) float64, k >= 2

    def dense(self) -> np.ndarray:
        """The (n_lines x n_samples) values (float64)."""
        lower = self.table[self.index]
        return lower + self.weight[:, None] * (self.table[self.index + 1] - lower)


@dataclass(frozen=True)
class VectorLUT:
    """Values on sparse vectors: vector k lies on ``line[k]`` and gives ``value[k][j]`` at
    sample ``pixel[k][j]`` (vectors may have different pixel lists)."""

    line: np.ndarray  # (n,) float64, increasing
    pixel: tuple[np.ndarray, ...]
    value: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if len(self.line) == 0:
            raise ValueError("no vector")
        if np.any(np.diff(self.line) <= 0):
            raise ValueError("vector lines are not increasing")
        for pixel, value in zip(self.pixel, self.value):
            if len(pixel) != len(value) or len(pixel) == 0:
                raise ValueError("a vector has pixel and value lists of different lengths")
            if np.any(np.diff(pixel) <= 0):
                raise ValueError("a vector has pixels that are not increasing")

    def window(self, lines: ArrayLike, samples: ArrayLike) -> WindowLUT:
        """Reduce to the window ``lines`` x ``samples`` (1-D increasing index arrays)."""
        lines = np.asarray(lines, dtype=np.float64)
        samples = np.asarray(samples, dtype=np.float64)
        if len(self.line) == 1:
            row = interp_linear(samples, self.pixel[0], self.value[0])
            return WindowLUT(np.zeros(len(lines), np.int64), np.zeros(len(lines)), np.stack([row, row]))
        index, weight = segment_weights(lines, self.line)
        first = int(index.min()) if index.size else 0
        last = int(index.max()) + 1 if index.size else 1
        table = np.stack(
            [interp_linear(samples, self.pixel[k], self.value[k]) for k in range(first, last + 1)]
        )
        return WindowLUT(index - first, weight, table)

    def interpolate(self, lines: ArrayLike, samples: ArrayLike) -> np.ndarray:
        """Values (float64, len(lines) x len(samples)) on the window grid."""
        return self.window(lines, samples).dense()

    @property
    def all_zero(self) -> bool:
        return all(not np.any(v) for v in self.value)


#: Calibration LUT names accepted by :meth:`CalibrationLUTs.select`.
CALIBRATIONS = {
    "sigma": "sigma_nought",
    "beta": "beta_nought",
    "gamma": "gamma",
    "dn": "dn",
}


@dataclass(frozen=True)
class CalibrationLUTs:
    """The four calibration LUTs of one polarisation (same lines and pixels)."""

    sigma_nought: VectorLUT
    beta_nought: VectorLUT
    gamma: VectorLUT
    dn: VectorLUT
    absolute_calibration_constant: float

    @property
    def line(self) -> np.ndarray:
        return self.sigma_nought.line

    @property
    def pixel(self) -> tuple[np.ndarray, ...]:
        return self.sigma_nought.pixel

    def select(self, calibration: str) -> VectorLUT:
        """The LUT for ``calibration``: 'sigma', 'beta', 'gamma' or 'dn'."""
        try:
            return getattr(self, CALIBRATIONS[calibration.lower()])
        except KeyError:
            raise ValueError(
                f"unknown calibration {calibration!r}, expected one of {sorted(CALIBRATIONS)}"
            ) from None


@dataclass(frozen=True)
class AzimuthNoiseBlock:
    """One ``noiseAzimuthVector``: a factor along ``line`` over a block of the image."""

    swath: str
    first_line: int
    last_line: int  # inclusive
    first_sample: int
    last_sample: int  # inclusive
    line: np.ndarray
    value: np.ndarray

    def along_azimuth(self, lines: ArrayLike) -> np.ndarray:
        return interp_linear(lines, self.line, self.value)


@dataclass(frozen=True)
class WindowAzimuthNoise:
    """Azimuth noise blocks reduced to one window: block b multiplies the window rows
    [rows[b, 0], rows[b, 1]) x columns [cols[b, 0], cols[b, 1]) by ``values[b, row]``."""

    rows: np.ndarray  # (nb, 2) int64
    cols: np.ndarray  # (nb, 2) int64
    values: np.ndarray  # (nb, n_lines) float64

    def dense(self, n_samples: int) -> np.ndarray:
        out = np.ones((self.values.shape[1], n_samples))
        for (r0, r1), (c0, c1), values in zip(self.rows, self.cols, self.values):
            out[r0:r1, c0:c1] = values[r0:r1, None]
        return out


@dataclass(frozen=True)
class NoiseLUTs:
    """Thermal noise of one polarisation: eta = range(l, p) * azimuth(l, p).

    ``range`` is the ``noiseLut`` of the old format or the ``noiseRangeLut`` of the new one;
    ``azimuth`` is empty for the old format (factor 1 everywhere).
    """

    range: VectorLUT
    azimuth: tuple[AzimuthNoiseBlock, ...]
    format: str  # "noiseVector" (IPF < 2.90) or "noiseRangeVector" (IPF >= 2.90)

    @property
    def all_zero(self) -> bool:
        return self.range.all_zero

    def window_azimuth(self, lines: ArrayLike, samples: ArrayLike) -> WindowAzimuthNoise:
        """Reduce the azimuth blocks to the window ``lines`` x ``samples`` (1-D increasing)."""
        lines = np.asarray(lines)
        samples = np.asarray(samples)
        rows, cols, values = [], [], []
        for block in self.azimuth:
            r0 = np.searchsorted(lines, block.first_line, side="left")
            r1 = np.searchsorted(lines, block.last_line, side="right")
            c0 = np.searchsorted(samples, block.first_sample, side="left")
            c1 = np.searchsorted(samples, block.last_sample, side="right")
            if r1 <= r0 or c1 <= c0:
                continue
            row_values = np.ones(len(lines))
            row_values[r0:r1] = block.along_azimuth(lines[r0:r1])
            rows.append((r0, r1))
            cols.append((c0, c1))
            values.append(row_values)
        return WindowAzimuthNoise(
            np.array(rows, dtype=np.int64).reshape(-1, 2),
            np.array(cols, dtype=np.int64).reshape(-1, 2),
            np.array(values, dtype=np.float64).reshape(-1, len(lines)),
        )

    def interpolate(self, lines: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """eta (float64, len(lines) x len(samples)) on the window grid."""
        eta = self.range.interpolate(lines, samples)
        if self.azimuth:
            eta *= self.window_azimuth(lines, samples).dense(len(samples))
        return eta


# ---------------------------------------------------------------------------- parsing


def _floats(text: str | None, what: str) -> np.ndarray:
    if text is None or not text.split():
        raise ValueError(f"empty <{what}>")
    return np.array(text.split(), dtype=np.float64)


def _vectors(root, list_tag: str, vector_tag: str, value_tags: tuple[str, ...]):
    vectors = root.findall(f"{list_tag}/{vector_tag}")
    if not vectors:
        raise ValueError(f"no <{vector_tag}> in <{list_tag}>")
    lines = np.array([float(_text(v, "line")) for v in vectors])
    pixels = tuple(_floats(v.findtext("pixel"), "pixel") for v in vectors)
    values = {tag: tuple(_floats(v.findtext(tag), tag) for v in vectors) for tag in value_tags}
    return lines, pixels, values


def _text(node, tag: str) -> str:
    text = node.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"missing <{tag}>")
    return text.strip()


def _root(source):
    return etree.fromstring(source) if isinstance(source, (bytes, bytearray)) else source


def parse_calibration(source: bytes | etree._Element) -> CalibrationLUTs:
    """Parse a calibration XML (bytes or lxml element); ``ValueError`` names what is missing."""
    root = _root(source)
    tags = ("sigmaNought", "betaNought", "gamma", "dn")
    lines, pixels, values = _vectors(root, "calibrationVectorList", "calibrationVector", tags)
    constant = root.findtext("calibrationInformation/absoluteCalibrationConstant")
    return CalibrationLUTs(  # type: ignore[misc]  # mypy cannot count the starred LUTs: one per tag, four
        *(VectorLUT(lines, pixels, values[tag]) for tag in tags),  # type: ignore[arg-type]
        absolute_calibration_constant=float(constant) if constant else 1.0,
    )


def _azimuth_block(node) -> AzimuthNoiseBlock:
    return AzimuthNoiseBlock(
        swath=node.findtext("swath", "").strip(),
        first_line=int(_text(node, "firstAzimuthLine")),
        last_line=int(_text(node, "lastAzimuthLine")),
        first_sample=int(_text(node, "firstRangeSample")),
        last_sample=int(_text(node, "lastRangeSample")),
        line=_floats(node.findtext("line"), "line"),
        value=_floats(node.findtext("noiseAzimuthLut"), "noiseAzimuthLut"),
    )


def parse_noise(source: bytes | etree._Element) -> NoiseLUTs:
    """Parse a noise XML of either format (bytes or lxml element)."""
    root = _root(source)
    if root.find("noiseRangeVectorList") is not None:
        lines, pixels, values = _vectors(root, "noiseRangeVectorList", "noiseRangeVector", ("noiseRangeLut",))
        blocks = tuple(_azimuth_block(n) for n in root.findall("noiseAzimuthVectorList/noiseAzimuthVector"))
        for block in blocks:
            if len(block.line) != len(block.value) or np.any(np.diff(block.line) <= 0):
                raise ValueError("a <noiseAzimuthVector> has lines not increasing or not one per LUT value")
        return NoiseLUTs(VectorLUT(lines, pixels, values["noiseRangeLut"]), blocks, "noiseRangeVector")
    lines, pixels, values = _vectors(root, "noiseVectorList", "noiseVector", ("noiseLut",))
    return NoiseLUTs(VectorLUT(lines, pixels, values["noiseLut"]), (), "noiseVector")

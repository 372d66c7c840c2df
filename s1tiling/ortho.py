"""Orthorectification: from S2 tile pixels to SAR (line, pixel) positions, then to calibrated values.

For each output pixel the SAR position of the ground point (x, y, h) is needed, h being the
ellipsoidal height (DEM + geoid). Backward geocoding every pixel is exact but wasteful: the
mapping is smooth in (x, y) at a fixed height and nearly linear in h. So a :class:`GeometryGrid`
geocodes a coarse grid of nodes (``orthorectification_gridspacing`` apart) at three heights
spanning the terrain of the area, and each output pixel gets its position by bilinear
interpolation in (x, y) and quadratic (Lagrange) interpolation in its own full-resolution
height. The terrain detail is therefore never smoothed by the node spacing; the error this adds,
against exact per-pixel geocoding, is given in the README ("Accuracy and speed").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
from affine import Affine
from numpy.typing import ArrayLike
from pyproj import Transformer

if TYPE_CHECKING:
    from .geometry.geoid import Geoid
    from .geometry.sar_model import SarModel

#: Heights (m) added around the terrain range of a block so that every pixel height lies
#: between the lowest and highest geometry layer.
HEIGHT_MARGIN = 20.0
#: Smallest span between the lowest and the highest layer: keeps the Lagrange nodes apart.
MIN_HEIGHT_SPAN = 100.0


@dataclass(frozen=True)
class GeometryGrid:
    """SAR positions of a regular grid of ground nodes at three heights.

    Node ``(j, i)`` lies at ``(x0 + i * step, y0 - j * step)`` in ``crs``; ``lines[k, j, i]`` and
    ``pixels[k, j, i]`` are its SAR position at ellipsoidal height ``heights[k]``;
    ``undulation[j, i]`` is the geoid height there. NaN marks nodes that could not be geocoded.
    """

    crs: str
    x0: float
    y0: float
    step: float
    heights: np.ndarray
    lines: np.ndarray
    pixels: np.ndarray
    undulation: np.ndarray

    @classmethod
    def compute(cls, sar_model: SarModel, geoid: Geoid, crs: str, bounds: tuple[float, float, float, float],
                step: float, height_range: tuple[float, float]) -> GeometryGrid:
        """Geocode the nodes covering ``bounds`` (xmin, ymin, xmax, ymax in ``crs``).

        ``height_range`` (min, max) is the range of orthometric heights in the area; the geoid
        range of the area is added to it to place the three layers.
        """
        xmin, ymin, xmax, ymax = bounds
        x0 = np.floor(xmin / step) * step
        y0 = np.ceil(ymax / step) * step
        nx = int(np.ceil((xmax - x0) / step)) + 1
        ny = int(np.ceil((y0 - ymin) / step)) + 1
        xs = x0 + step * np.arange(nx)
        ys = y0 - step * np.arange(ny)
        xx, yy = np.meshgrid(xs, ys)
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lon, lat = to_lonlat.transform(xx, yy)
        undulation = np.asarray(geoid.undulation(lat, lon), dtype=np.float64)
        lo = float(height_range[0]) + float(np.nanmin(undulation)) - HEIGHT_MARGIN
        hi = float(height_range[1]) + float(np.nanmax(undulation)) + HEIGHT_MARGIN
        hi = max(hi, lo + MIN_HEIGHT_SPAN)
        heights = np.array([lo, 0.5 * (lo + hi), hi])
        lines = np.empty((3, ny, nx))
        pixels = np.empty((3, ny, nx))
        for k, h in enumerate(heights):
            lines[k], pixels[k] = sar_model.ground_to_sar(lat, lon, np.full_like(lat, h))
        return cls(str(crs), float(x0), float(y0), float(step), heights, lines, pixels, undulation)

    def sar_positions(self, transform: Affine, row0: int, col0: int,
                      orthometric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SAR (line, pixel) of the output pixels of a block.

        ``transform`` is the affine of the output grid (north-up), ``(row0, col0)`` the block's
        first pixel in it and ``orthometric`` the DEM heights of the block (2-D array).
        """
        heights = np.ascontiguousarray(orthometric)  # float32 heights are used as they are (exact in float64)
        if heights.dtype not in (np.float32, np.float64):
            heights = heights.astype(np.float64)
        lines = np.empty(heights.shape)
        pixels = np.empty(heights.shape)
        _interpolate_positions(
            self.lines, self.pixels, self.undulation, self.heights,
            (transform.c + (col0 + 0.5) * transform.a - self.x0) / self.step, transform.a / self.step,
            (self.y0 - transform.f - (row0 + 0.5) * transform.e) / self.step, -transform.e / self.step,
            heights, lines, pixels,
        )
        return lines, pixels


@numba.njit(cache=True, inline="always")
def _bilinear(grid, k, j, i, w00, w01, w10, w11):
    """Layer ``k`` of ``grid`` interpolated in cell (j, i) with the given corner weights."""
    return w00 * grid[k, j, i] + w01 * grid[k, j, i + 1] + w10 * grid[k, j + 1, i] + w11 * grid[k, j + 1, i + 1]


@numba.njit(parallel=True, cache=True)
def _interpolate_positions(node_lines, node_pixels, undulation, layer_h, u0, du, v0, dv, dem, out_l, out_p):
    ny, nx = undulation.shape
    rows, cols = dem.shape
    h0, h1, h2 = layer_h[0], layer_h[1], layer_h[2]
    # Denominators of the Lagrange weights of the three layers.
    d0 = (h0 - h1) * (h0 - h2)
    d1 = (h1 - h0) * (h1 - h2)
    d2 = (h2 - h0) * (h2 - h1)
    col_i = np.empty(cols, np.int64)  # node column and fraction of every output column
    col_f = np.empty(cols)
    for c in range(cols):
        u = u0 + c * du
        col_i[c] = min(max(int(np.floor(u)), 0), nx - 2)
        col_f[c] = u - col_i[c]
    for r in numba.prange(rows):
        v = v0 + r * dv
        j = min(max(int(np.floor(v)), 0), ny - 2)
        fv = v - j
        for c in range(cols):
            i = col_i[c]
            fu = col_f[c]
            w00 = (1 - fu) * (1 - fv)
            w01 = fu * (1 - fv)
            w10 = (1 - fu) * fv
            w11 = fu * fv
            h = dem[r, c] + (w00 * undulation[j, i] + w01 * undulation[j, i + 1]
                             + w10 * undulation[j + 1, i] + w11 * undulation[j + 1, i + 1])
            a0 = (h - h1) * (h - h2) / d0
            a1 = (h - h0) * (h - h2) / d1
            a2 = (h - h0) * (h - h1) / d2
            line = 0.0
            line += a0 * _bilinear(node_lines, 0, j, i, w00, w01, w10, w11)
            line += a1 * _bilinear(node_lines, 1, j, i, w00, w01, w10, w11)
            line += a2 * _bilinear(node_lines, 2, j, i, w00, w01, w10, w11)
            pixel = 0.0
            pixel += a0 * _bilinear(node_pixels, 0, j, i, w00, w01, w10, w11)
            pixel += a1 * _bilinear(node_pixels, 1, j, i, w00, w01, w10, w11)
            pixel += a2 * _bilinear(node_pixels, 2, j, i, w00, w01, w10, w11)
            out_l[r, c] = line
            out_p[r, c] = pixel


def sar_window(lines: ArrayLike, pixels: ArrayLike, image_shape: tuple[int, int],
               margin: int) -> tuple[int, int, int, int] | None:
    """Smallest window ``(row_off, col_off, height, width)`` of the SAR image holding every sample
    needed to interpolate at the given positions (``margin`` extra samples each side), or None.
    Positions where the line or the pixel is not finite are ignored."""
    found, lo_l, hi_l, lo_p, hi_p = _finite_bounds(np.ravel(lines), np.ravel(pixels))
    if not found:
        return None
    lo_l = int(np.floor(lo_l)) - margin
    hi_l = int(np.ceil(hi_l)) + margin + 1
    lo_p = int(np.floor(lo_p)) - margin
    hi_p = int(np.ceil(hi_p)) + margin + 1
    lo_l, lo_p = max(lo_l, 0), max(lo_p, 0)
    hi_l, hi_p = min(hi_l, image_shape[0]), min(hi_p, image_shape[1])
    if hi_l <= lo_l or hi_p <= lo_p:
        return None
    return lo_l, lo_p, hi_l - lo_l, hi_p - lo_p


@numba.njit(cache=True)
def _finite_bounds(lines, pixels):
    """(any, min line, max line, min pixel, max pixel) over the positions where both are finite."""
    found = False
    lo_l = hi_l = lo_p = hi_p = np.nan
    for k in range(lines.size):
        line, pixel = lines[k], pixels[k]
        if not (np.isfinite(line) and np.isfinite(pixel)):
            continue
        if not found:
            found = True
            lo_l = hi_l = line
            lo_p = hi_p = pixel
        else:
            lo_l, hi_l = min(lo_l, line), max(hi_l, line)
            lo_p, hi_p = min(lo_p, pixel), max(hi_p, pixel)
    return found, lo_l, hi_l, lo_p, hi_p

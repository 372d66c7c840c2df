"""Orthorectification: from S2 tile pixels to SAR (line, pixel) positions, then to calibrated values.

For each output pixel the SAR position of the ground point (x, y, h) is needed, h being the
ellipsoidal height (DEM + geoid). Backward geocoding every pixel is exact but wasteful: the
mapping is smooth in (x, y) at a fixed height and nearly linear in h. So a :class:`GeometryGrid`
geocodes a coarse grid of nodes at three heights spanning the terrain of the area, and each
output pixel gets its position by bilinear interpolation in (x, y) and quadratic (Lagrange)
interpolation in its own full-resolution height. The terrain detail is therefore never
smoothed by the node spacing.

Node spacing (:meth:`GeometryGrid.for_block`): ``orthorectification_gridspacing`` is the finest
spacing; a block's nodes are first placed up to :data:`MAX_COARSENING` times further apart, and
the spacing is halved until the interpolation error, measured on the block itself (exact
geocoding of every cell centre, at the height where the Lagrange interpolation errs most),
is below :data:`NODE_TOLERANCE`. What this adds against exact per-pixel geocoding, for every
product of the reference data, is in the README ("Accuracy and speed",
``benchmarks/bench_geometry_grid.py``).

:meth:`GeometryGrid.sample` computes the positions of a block's pixels and samples the SAR
window there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
from affine import Affine
from numpy.typing import ArrayLike
from pyproj import Transformer

from .resampling import METHODS, sample_positions

if TYPE_CHECKING:
    from .geometry.geoid import Geoid
    from .geometry.sar_model import SarModel

#: Heights (m) added around the terrain range of a block so that every pixel height lies
#: between the lowest and highest geometry layer.
HEIGHT_MARGIN = 20.0
#: Smallest span between the lowest and the highest layer: keeps the Lagrange nodes apart.
MIN_HEIGHT_SPAN = 100.0
#: Largest interpolation error (SAR lines or samples) the nodes of a block may add, as measured
#: at the cell centres by :meth:`GeometryGrid.interpolation_error`.
NODE_TOLERANCE = 1e-3
#: Nodes are at most this many times further apart than the finest spacing.
MAX_COARSENING = 8
#: Fraction of the layers' height span where the quadratic interpolation in height errs most
#: (a root of the derivative of (h - h0)(h - h1)(h - h2): 1/2 - 1/(2 sqrt 3)).
_WORST_HEIGHT = 0.5 - 0.5 / math.sqrt(3.0)


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
        lon, lat = _to_lonlat(crs).transform(xx, yy)
        undulation = np.asarray(geoid.undulation(lat, lon), dtype=np.float64)
        lo = float(height_range[0]) + float(np.nanmin(undulation)) - HEIGHT_MARGIN
        hi = float(height_range[1]) + float(np.nanmax(undulation)) + HEIGHT_MARGIN
        hi = max(hi, lo + MIN_HEIGHT_SPAN)
        heights = np.array([lo, 0.5 * (lo + hi), hi])
        lines, pixels = sar_model.ground_to_sar(np.broadcast_to(lat, (3,) + lat.shape),
                                                np.broadcast_to(lon, (3,) + lon.shape),
                                                np.broadcast_to(heights[:, None, None], (3,) + lat.shape))
        return cls(str(crs), float(x0), float(y0), float(step), heights, lines, pixels, undulation)

    @classmethod
    def for_block(cls, sar_model: SarModel, geoid: Geoid, crs: str, bounds: tuple[float, float, float, float],
                  finest_step: float, height_range: tuple[float, float],
                  tolerance: float = NODE_TOLERANCE) -> GeometryGrid:
        """The nodes of a block (``bounds`` in ``crs``): the sparsest of ``finest_step`` x 2**k
        (at most :data:`MAX_COARSENING` times ``finest_step``, at least two cells across the
        block) whose :meth:`interpolation_error` is below ``tolerance``; ``finest_step`` itself
        when none is."""
        xmin, ymin, xmax, ymax = bounds
        step = float(finest_step)
        while step * 2 <= finest_step * MAX_COARSENING and step * 4 <= min(xmax - xmin, ymax - ymin):
            step *= 2
        while True:
            grid = cls.compute(sar_model, geoid, crs, bounds, step, height_range)
            if step <= finest_step or grid.interpolation_error(sar_model) <= tolerance:
                return grid
            step /= 2

    def interpolation_error(self, sar_model: SarModel) -> float:
        """Largest difference (SAR lines or samples) between the interpolated and the exact SAR
        position of the cell centres at the height where the quadratic interpolation in
        height errs most (0 when no cell has four geocoded corners)."""
        ny, nx = self.undulation.shape
        if nx < 2 or ny < 2:
            return 0.0
        xs = self.x0 + self.step * (np.arange(nx - 1) + 0.5)
        ys = self.y0 - self.step * (np.arange(ny - 1) + 0.5)
        lon, lat = _to_lonlat(self.crs).transform(*np.meshgrid(xs, ys))
        h0, h1, h2 = self.heights
        h = h0 + _WORST_HEIGHT * (h2 - h0)
        weights = ((h - h1) * (h - h2) / ((h0 - h1) * (h0 - h2)), (h - h0) * (h - h2) / ((h1 - h0) * (h1 - h2)),
                   (h - h0) * (h - h1) / ((h2 - h0) * (h2 - h1)))
        exact = sar_model.ground_to_sar(lat, lon, np.full(lat.shape, h))
        worst = 0.0
        for nodes, truth in zip((self.lines, self.pixels), exact):
            centres = 0.25 * (nodes[:, :-1, :-1] + nodes[:, :-1, 1:] + nodes[:, 1:, :-1] + nodes[:, 1:, 1:])
            interpolated = sum(w * centres[k] for k, w in enumerate(weights))
            error = np.abs(interpolated - truth)
            if np.isfinite(error).any():
                worst = max(worst, float(np.nanmax(error)))
        return worst

    def sar_bounds(self) -> tuple[float, float, float, float] | None:
        """(min line, max line, min pixel, max pixel) over the geocoded nodes (None if none is):
        with a margin of a sample, they hold the SAR positions of every point of the grid's
        area whose height lies between the layers."""
        finite = np.isfinite(self.lines) & np.isfinite(self.pixels)
        if not finite.any():
            return None
        lines, pixels = self.lines[finite], self.pixels[finite]
        return float(lines.min()), float(lines.max()), float(pixels.min()), float(pixels.max())

    def _grid_coordinates(self, transform: Affine, row0: int, col0: int) -> tuple[float, float, float, float]:
        """(u0, du, v0, dv): node coordinates of the first pixel centre of a block and their
        steps per column and row."""
        return ((transform.c + (col0 + 0.5) * transform.a - self.x0) / self.step, transform.a / self.step,
                (self.y0 - transform.f - (row0 + 0.5) * transform.e) / self.step, -transform.e / self.step)

    def sar_positions(self, transform: Affine, row0: int, col0: int,
                      orthometric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SAR (line, pixel) of the output pixels of a block.

        ``transform`` is the affine of the output grid (north-up), ``(row0, col0)`` the block's
        first pixel in it and ``orthometric`` the DEM heights of the block (2-D array).
        """
        heights = _heights(orthometric)
        lines = np.empty(heights.shape)
        pixels = np.empty(heights.shape)
        _interpolate_positions(self.lines, self.pixels, self.undulation, self.heights,
                               *self._grid_coordinates(transform, row0, col0), heights, lines, pixels)
        return lines, pixels

    def sample(self, transform: Affine, row0: int, col0: int, orthometric: np.ndarray, window: np.ndarray, line0: int,
               pixel0: int, image_shape: tuple[int, int], method: str, floor: float, out: np.ndarray) -> np.ndarray:
        """Sample the SAR ``window`` (bands x lines x samples, float32, starting at SAR sample
        ``(line0, pixel0)`` of an image of ``image_shape``) at the positions of the block's
        pixels (as :meth:`sar_positions` gives them), with
        :func:`s1tiling.resampling.sample_position`: only the elements of ``out`` (bands x rows x
        cols, float32) still 0 are written."""
        heights = _heights(orthometric)
        bands = window.shape[0]
        if out.shape != (bands,) + heights.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {(bands,) + heights.shape}")
        lines, pixels = self.sar_positions(transform, row0, col0, heights)
        sample_positions(np.ascontiguousarray(window, dtype=np.float32), int(line0), int(pixel0),
                          int(image_shape[0]), int(image_shape[1]), lines.ravel(), pixels.ravel(),
                          METHODS.index(method), float(floor), out.reshape(bands, -1))
        return out


def _to_lonlat(crs: str) -> Transformer:
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _heights(orthometric: np.ndarray) -> np.ndarray:
    heights = np.ascontiguousarray(orthometric)  # float32 heights are used as they are (exact in float64)
    if heights.dtype not in (np.float32, np.float64):
        heights = heights.astype(np.float64)
    return heights


@numba.njit(cache=True, inline="always", nogil=True)
def _bilinear(grid, k, j, i, w00, w01, w10, w11):
    """Layer ``k`` of ``grid`` interpolated in cell (j, i) with the given corner weights."""
    return w00 * grid[k, j, i] + w01 * grid[k, j, i + 1] + w10 * grid[k, j + 1, i] + w11 * grid[k, j + 1, i + 1]


@numba.njit(cache=True, nogil=True)
def _columns(u0, du, cols, nx):
    """Node column and fraction of every output column."""
    col_i = np.empty(cols, np.int64)
    col_f = np.empty(cols)
    for c in range(cols):
        u = u0 + c * du
        col_i[c] = min(max(int(np.floor(u)), 0), nx - 2)
        col_f[c] = u - col_i[c]
    return col_i, col_f


@numba.njit(cache=True, inline="always", nogil=True)
def _position(node_lines, node_pixels, undulation, layer_h, j, i, fu, fv, height):
    """SAR (line, pixel) at fraction (fu, fv) of node cell (j, i), at orthometric ``height``."""
    h0, h1, h2 = layer_h[0], layer_h[1], layer_h[2]
    w00 = (1 - fu) * (1 - fv)
    w01 = fu * (1 - fv)
    w10 = (1 - fu) * fv
    w11 = fu * fv
    h = height + (w00 * undulation[j, i] + w01 * undulation[j, i + 1]
                  + w10 * undulation[j + 1, i] + w11 * undulation[j + 1, i + 1])
    a0 = (h - h1) * (h - h2) / ((h0 - h1) * (h0 - h2))
    a1 = (h - h0) * (h - h2) / ((h1 - h0) * (h1 - h2))
    a2 = (h - h0) * (h - h1) / ((h2 - h0) * (h2 - h1))
    line = 0.0
    line += a0 * _bilinear(node_lines, 0, j, i, w00, w01, w10, w11)
    line += a1 * _bilinear(node_lines, 1, j, i, w00, w01, w10, w11)
    line += a2 * _bilinear(node_lines, 2, j, i, w00, w01, w10, w11)
    pixel = 0.0
    pixel += a0 * _bilinear(node_pixels, 0, j, i, w00, w01, w10, w11)
    pixel += a1 * _bilinear(node_pixels, 1, j, i, w00, w01, w10, w11)
    pixel += a2 * _bilinear(node_pixels, 2, j, i, w00, w01, w10, w11)
    return line, pixel


@numba.njit(parallel=True, cache=True, nogil=True)
def _interpolate_positions(node_lines, node_pixels, undulation, layer_h, u0, du, v0, dv, dem, out_l, out_p):
    ny, nx = undulation.shape
    rows, cols = dem.shape
    col_i, col_f = _columns(u0, du, cols, nx)
    for r in numba.prange(rows):
        v = v0 + r * dv
        j = min(max(int(np.floor(v)), 0), ny - 2)
        fv = v - j
        for c in range(cols):
            out_l[r, c], out_p[r, c] = _position(node_lines, node_pixels, undulation, layer_h, j, col_i[c],
                                                 col_f[c], fv, dem[r, c])


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


@numba.njit(cache=True, nogil=True)
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

"""Terrain flattening (gamma0 RTC): the gamma area map of a relative orbit over an S2 tile.

Reference: D. Small, "Flattening Gamma: Radiometric Terrain Correction for SAR Imagery",
IEEE TGRS 49(8), 3081-3093, 2011: gamma0_T = beta0 x A_beta / A_gamma, where A_gamma is the
area of the terrain seen in one radar resolution cell, each DEM facet projected onto the plane
perpendicular to the look direction, and A_beta the cell's area in slant geometry.

Map (``GAMMA_AREA_{tile_name}_{orbit}.tif`` in ``[Paths] gamma_area``, float32, no-data
``nodata.RTC``, default 0), S1Tiling's quantity: per output pixel P, the gamma area A_gamma (m²)
of the Sentinel-1 image pixel P falls in, i.e. of a radar cell of the pass's pixel spacings
(``A_sigma`` = azimuthPixelSpacing x rangePixelSpacing of its annotation, on the ellipsoid; tag
``GAMMA_AREA_PIXEL_AREA``). It is computed as ``A_gamma = R x cos(IA) x A_sigma``, R being the
ratio of the terrain's gamma area to the ellipsoid's in the radar cell of P (level ground: R = 1,
A_gamma = A_sigma cos(IA), the flat pixel seen from the radar):

1. Facets: the tile grid (plus a margin) at ``f`` x ``f`` facets per output pixel, at the
   ellipsoidal heights (DEM + geoid, sampled at the output pixels and bilinear between them);
   area vector a = (E x N) / 4 from the ECEF positions of the four neighbour facets (central
   differences), pointing up, |a| the facet's area.
2. Radar geometry of each facet: zero-Doppler time t, slant range r and unit look vector l,
   interpolated from exact zero-Doppler solutions on a coarse grid of nodes (``NODE_SPACING``
   metres, at three heights spanning the block's terrain: bilinear in position, quadratic in
   height, as the orthorectification's geometry grid; the error this adds is below 1e-5 cell).
3. Illuminated gamma area of a facet: max(0, a . l), its area projected onto the plane
   perpendicular to l (facets turned away from the radar receive nothing).
4. The facets' gamma areas are summed into radar cells (t / dt, r / dr) ``BIN_PIXELS / k``
   output pixels wide on the ground (k = ``gamma_area_oversampling``), with cubic B-spline
   weights (the area is conserved; facets are at most ``MAX_FACET_SPACING`` cell apart, f =
   :func:`facet_factor` (k), so that their lattice does not alias on the cells: ripples below
   0.2 %). The cell sums are turned into cubic B-spline interpolation coefficients (Unser's
   recursive prefilter) and each output pixel interpolates them at its own (t, r): every facet
   seen at the same time and range (layover) counts, and the map is blurred by one B-spline
   (the splat's) only.
5. Normalisation: a surface of unit normal m covers |c . m| cells per unit area, with
   c = grad(t / dt) x grad(r / dr), grad r = -l and grad t = V / (V.V - (P - S).A) (zero-Doppler
   condition; V, A the satellite's velocity and acceleration). The ellipsoid surface through P
   (m = n, its normal) thus has (n . l) / |c . n| of gamma area per cell.

Level ground gives R = 1; a plane tilted by alpha towards the radar (in the range plane) gives
tan(IA) / tan(IA - alpha) (foreshortening), away from it less than 1, slopes hidden from the
radar 0 (no illuminated area: no-data); tilts along the track leave it at 1. The oversampling k
sharpens the map (cells k times finer) at about f² times the work. The ridge residual on the real
DEM (99th percentile of the difference to k = 12 over the steepest 3 km of SRTM N50E010, Germany
pass, ``benchmarks/bench_gamma_area.py --ridge``) is 0.75 dB at k = 1, 0.30 at 2, 0.22 at 2.5,
0.16 at 3: the default, 2.5, is the smallest factor bringing it under 0.3 dB among those whose
facets fall on the zeros of the B-spline's spectrum (f x BIN_PIXELS / k whole: radar cells of one
output pixel, facets half a cell apart, ripples below 0.02 % on level ground; at k = 3 with f = 2
the facet lattice beats with the cells and leaves 0.15 to 0.3 %).

gamma0 RTC (S1Tiling's ``SARGammaAreaToGammaNaughtRTCImageEstimation``, applied to sigma0 tiles):
gamma0_T = calibration_factor x sigma0 x A_sigma / A_gamma, no-data where A_gamma < ``min_gamma_area``
(m², default 1: shadow) (:func:`s1tiling.radiometry.flatten`). With this map it is gamma0 / R
(sigma0 / cos(IA) = gamma0 on the ellipsoid): Small's beta0 A_beta / A_gamma exactly. A map made
by S1Tiling (A_gamma summed per S1 pixel in SAR geometry, then orthorectified) holds the same
quantity and can be used in its place (A_sigma then comes from the products' annotations); the
source of S1Tiling's OTB applications (RTC_gamma0 module) was not available to check its formula,
which is presumed to be Small's sigma0 form above.

Not modelled: the occlusion of slopes that face the radar behind a higher ridge (they count as
illuminated; :mod:`s1tiling.layover` masks them as shadow), and layover reaching farther than the
block margin (the largest height difference of the area over the tangent of the smallest
incidence angle, plus two cells).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from . import progress
from .blocks import block_threads, in_order
from .context import Context
from .geometry.ellipsoid import ellipsoid_normal, geodetic_to_ecef
from .geometry.orbit import orbit_state
from .geometry.zero_doppler import ZeroDopplerOrbit, zero_doppler
from .incidence import map_tags, pass_of, split_layover_shadow
from .plan import MapJob
from .radiometry import pixel_area
from .writing import AtomicRasterWriter, creation_options_for, production_tags

logger = logging.getLogger(__name__)

#: Radar cells are about this many facets wide on the ground (at the tile's centre): facets 0.4
#: cell apart, so that cubic B-spline weights leave no visible aliasing (< 1e-4).
BIN_PIXELS = 2.5
#: Facets are at most this many cells apart: the cubic B-spline splat leaves ripples below 0.2 %
#: on planes (its transfer function at the facet lattice's frequency).
MAX_FACET_SPACING = 0.6
#: Exact zero-Doppler solutions every this many metres (and at three heights); in between the
#: geometry is interpolated (error below 1e-5 cell).
NODE_SPACING = 200.0
#: Largest block of output pixels (per side); blocks are computed in parallel by the task's
#: threads (:func:`s1tiling.blocks.in_order`).
BLOCK_PIXELS = 2048
#: The facet rows of a block are split in this many bands, each summed into its own cells, in
#: parallel, then added in order: a fixed number, so that the map does not depend on the threads.
SPLAT_GROUPS = 4
#: Facets up to this many cells beyond the ends of the orbit are projected too (extrapolated).
ORBIT_REACH = 4
#: Heights (m) added around the terrain range of a block for the interpolation layers.
HEIGHT_MARGIN = 50.0
#: Node fields: cell coordinates t / dt and r / dr, look vector, ellipsoid gamma area per cell,
#: cos(IA) on the ellipsoid, off-nadir angle of the look from the satellite (radians)
TAU, RHO, LX, LY, LZ, REF, COS_IA, OFF_NADIR = range(8)
FIELDS = 8
_DESCRIPTION = "gamma area (m2) of a Sentinel-1 pixel on S2 grid"
#: LLVM fast-math flags of the per-facet kernels: contractions and reassociation, but NaNs and
#: infinities kept (facets outside the orbit's reach carry NaN times)
_FAST = {"contract", "reassoc", "arcp", "nsz", "afn"}


@dataclass(frozen=True)
class RadarBins:
    """Radar cells: zero-Doppler time step ``dt`` (seconds) and slant range step ``dr`` (metres)."""

    dt: float
    dr: float

    @classmethod
    def for_grid(cls, orbit: ZeroDopplerOrbit, crs: str, transform: Affine, shape: tuple[int, int],
                 pixels: float = BIN_PIXELS) -> RadarBins:
        """Cells ``pixels`` pixels of a north-up grid wide on the ellipsoid, along and across
        the track, at the grid's centre."""
        rows, cols = shape
        x, y = transform @ (cols / 2, rows / 2)
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
        point = np.array([float(v) for v in geodetic_to_ecef(lat, lon, 0.0)])
        normal = ellipsoid_normal(lat, lon)
        t, *satellite = zero_doppler(*point, orbit.first_guess, *orbit.arrays)  # type: ignore[call-arg]  # point: 3
        _, velocity, acceleration = (np.array(v) for v in orbit_state(t, *orbit.arrays))
        look = np.array(satellite) - point
        distance = np.linalg.norm(look)
        look /= distance
        grad_t = velocity / (velocity @ velocity + distance * (look @ acceleration))
        size = pixels * abs(transform.a)
        along, across = (g - (g @ normal) * normal for g in (grad_t, look))  # tangent to the ellipsoid
        return cls(size * float(np.linalg.norm(along)), size * float(np.linalg.norm(across)))


@dataclass(frozen=True)
class NodeGeometry:
    """Exact radar geometry on a coarse grid of ground nodes at three ellipsoidal heights.

    Node ``(j, i)`` lies at ``(x0 + i * step, y0 - j * step)`` in the grid's CRS;
    ``fields[k, j, i]`` holds the :data:`FIELDS` values (``TAU``...) at height ``heights[k]``;
    ``ground`` the ECEF position at height 0 and ``normal`` the ellipsoid normal there.
    """

    x0: float
    y0: float
    step: float
    heights: np.ndarray
    fields: np.ndarray
    ground: np.ndarray
    normal: np.ndarray

    @classmethod
    def compute(cls, orbit: ZeroDopplerOrbit, crs: str, bounds: tuple[float, float, float, float],
                height_range: tuple[float, float], bins: RadarBins, step: float = NODE_SPACING) -> NodeGeometry:
        """The nodes covering ``bounds`` (xmin, ymin, xmax, ymax) with one node to spare, for
        ellipsoidal heights in ``height_range``."""
        xmin, ymin, xmax, ymax = bounds
        x0, y0 = math.floor(xmin / step) * step - step, math.ceil(ymax / step) * step + step
        nx = int(math.ceil((xmax - x0) / step)) + 2
        ny = int(math.ceil((y0 - ymin) / step)) + 2
        xx, yy = np.meshgrid(x0 + step * np.arange(nx), y0 - step * np.arange(ny))
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
        ground = np.stack(geodetic_to_ecef(lat, lon, 0.0), axis=-1)
        normal = ellipsoid_normal(lat, lon)
        lo, hi = float(height_range[0]) - HEIGHT_MARGIN, float(height_range[1]) + HEIGHT_MARGIN
        heights = np.array([lo, 0.5 * (lo + hi), hi])
        fields = np.empty((3, ny, nx, FIELDS))
        for k, h in enumerate(heights):
            points = ground + h * normal
            times, satellites = orbit.solve(points)
            _node_fields(points.reshape(-1, 3), normal.reshape(-1, 3), times.ravel(), satellites.reshape(-1, 3),
                         orbit.arrays, bins.dt, bins.dr, fields[k].reshape(-1, FIELDS))
        return cls(float(x0), float(y0), float(step), heights, fields, np.ascontiguousarray(ground),
                   np.ascontiguousarray(normal))

    def coordinates(self, transform: Affine) -> tuple[float, float, float]:
        """(u, v) node coordinates of the corner of a north-up grid and its pixel size in node units."""
        return (transform.c - self.x0) / self.step, (self.y0 - transform.f) / self.step, transform.a / self.step


@numba.njit(parallel=True, cache=True)
def _node_fields(points, normals, times, satellites, orbit, dt, dr, out):
    node_times, origins, scales, coefs = orbit
    for i in numba.prange(points.shape[0]):
        t = times[i]
        if math.isnan(t):
            for f in range(FIELDS):
                out[i, f] = np.nan
            continue
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        sx, sy, sz = satellites[i, 0], satellites[i, 1], satellites[i, 2]
        _, v, acc = orbit_state(t, node_times, origins, scales, coefs)
        r = math.sqrt((sx - px) ** 2 + (sy - py) ** 2 + (sz - pz) ** 2)
        lx, ly, lz = (sx - px) / r, (sy - py) / r, (sz - pz) / r
        # grad(t / dt) = V / ((V.V - (P - S).A) dt), with P - S = -r l
        k = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + r * (lx * acc[0] + ly * acc[1] + lz * acc[2])) * dt
        gx, gy, gz = v[0] / k, v[1] / k, v[2] / k
        # c = grad(t / dt) x grad(r / dr) (the sign of grad r does not matter)
        cx, cy, cz = (gy * lz - gz * ly) / dr, (gz * lx - gx * lz) / dr, (gx * ly - gy * lx) / dr
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        cos_ia = nx * lx + ny * ly + nz * lz
        s = math.sqrt(sx * sx + sy * sy + sz * sz)
        out[i, TAU] = t / dt
        out[i, RHO] = r / dr
        out[i, LX], out[i, LY], out[i, LZ] = lx, ly, lz
        out[i, REF] = cos_ia / abs(nx * cx + ny * cy + nz * cz)
        out[i, COS_IA] = cos_ia
        out[i, OFF_NADIR] = math.acos(min(1.0, (lx * sx + ly * sy + lz * sz) / s))


# ---------------------------------------------------------------------------- interpolation kernels
#
# Facet (fi, fj) of a grid oversampled k times lies at pixel coordinates ((fj + 0.5) / k, (fi + 0.5) / k)
# from the grid's corner; its height is the bilinear interpolation of the pixel heights. Along a
# facet row, everything interpolated from the nodes is linear within a node cell: the node values
# are first interpolated to the row (``_node_row``), then each facet interpolates between two
# node columns (``_lerp``).

#: per node column of a row: ground point (3), normal (3), then the fields of the three layers
_NQ = 6 + 3 * FIELDS


@numba.njit(cache=True, inline="always")
def _cell(u, size):
    """Node (or pixel) cell index (clamped) and fraction of coordinate ``u``."""
    i = min(max(int(math.floor(u)), 0), size - 2)
    return i, u - i


@numba.njit(cache=True)
def _columns(fcols, k, cols, u0, du, nx):
    """Per facet column: pixel column and fraction (heights), node column and fraction."""
    pixel = np.empty(fcols, np.int64)
    pixel_f = np.empty(fcols)
    node = np.empty(fcols, np.int64)
    node_f = np.empty(fcols)
    for fj in range(fcols):
        pc = min(max((fj + 0.5) / k - 0.5, 0.0), cols - 1.0)
        pixel[fj], pixel_f[fj] = _cell(pc, cols) if cols > 1 else (0, 0.0)
        node[fj], node_f[fj] = _cell(u0 + (fj + 0.5) / k * du, nx)
    return pixel, pixel_f, node, node_f


@numba.njit(cache=True)
def _node_row(ground, normal, fields, v, q):
    """Node values interpolated to node coordinate ``v`` (a facet row), per node column."""
    ny, nx = ground.shape[0], ground.shape[1]
    j, fv = _cell(v, ny)
    for i in range(nx):
        for d in range(3):
            q[i, d] = (1 - fv) * ground[j, i, d] + fv * ground[j + 1, i, d]
            q[i, 3 + d] = (1 - fv) * normal[j, i, d] + fv * normal[j + 1, i, d]
        for layer in range(3):
            for f in range(FIELDS):
                q[i, 6 + layer * FIELDS + f] = (1 - fv) * fields[layer, j, i, f] + fv * fields[layer, j + 1, i, f]


@numba.njit(cache=True)
def _height_row(heights, k, fi, pixel, pixel_f, out):
    """Heights of facet row ``fi`` (bilinear in the pixel heights)."""
    rows, cols = heights.shape
    pr = min(max((fi + 0.5) / k - 0.5, 0.0), rows - 1.0)
    r, fr = _cell(pr, rows) if rows > 1 else (0, 0.0)
    r1 = min(r + 1, rows - 1)
    for fj in range(out.shape[0]):
        c, fc = pixel[fj], pixel_f[fj]
        c1 = min(c + 1, cols - 1)
        top = (1 - fc) * heights[r, c] + fc * heights[r, c1]
        out[fj] = top + fr * ((1 - fc) * heights[r1, c] + fc * heights[r1, c1] - top)


@numba.njit(cache=True, inline="always")
def _lerp(q, i, fu, index):
    return q[i, index] + fu * (q[i + 1, index] - q[i, index])


@numba.njit(cache=True, inline="always")
def _lagrange(h, layers, inverse):
    h0, h1, h2 = layers[0], layers[1], layers[2]
    return (h - h1) * (h - h2) * inverse[0], (h - h0) * (h - h2) * inverse[1], (h - h0) * (h - h1) * inverse[2]


@numba.njit(cache=True, inline="always")
def _field(q, i, fu, f, a0, a1, a2):
    """Field ``f`` at a facet: linear between node columns, quadratic over the three layers."""
    return a0 * _lerp(q, i, fu, 6 + f) + a1 * _lerp(q, i, fu, 6 + FIELDS + f) + a2 * _lerp(q, i, fu, 6 + 2 * FIELDS + f)


@numba.njit(cache=True)
def _ecef_row(q, node, node_f, h, out):
    """ECEF positions of a facet row from its node row ``q`` and heights ``h``."""
    for fj in range(out.shape[0]):
        i, fu = node[fj], node_f[fj]
        for d in range(3):
            out[fj, d] = _lerp(q, i, fu, d) + h[fj] * _lerp(q, i, fu, 3 + d)


@numba.njit(cache=True, inline="always")
def _bspline(f):
    """Cubic B-spline weights of cells j - 1 .. j + 2 for a point at j + f (0 <= f < 1)."""
    g = 1.0 - f
    return g * g * g / 6.0, (3.0 * f * f * f - 6.0 * f * f + 4.0) / 6.0, (3.0 * g * g * g - 6.0 * g * g + 4.0) / 6.0, \
        f * f * f / 6.0


@numba.njit(cache=True)
def _inverse_denominators(layers):
    h0, h1, h2 = layers[0], layers[1], layers[2]
    return np.array([1.0 / ((h0 - h1) * (h0 - h2)), 1.0 / ((h1 - h0) * (h1 - h2)), 1.0 / ((h2 - h0) * (h2 - h1))])


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _splat_facets(heights, k, u0, v0, du, ground, normal, fields, layers, tau_lo, tau_hi, origin_t, origin_r,
                  cells):
    """Sum the illuminated gamma area of every facet (but the outermost ones) into its own layer
    ``cells[g]`` of cells (one per group of facet rows, run in parallel)."""
    rows, cols = heights.shape
    frows, fcols = rows * k, cols * k
    groups = cells.shape[0]
    nx = ground.shape[1]
    pixel, pixel_f, node, node_f = _columns(fcols, k, cols, u0, du, nx)
    inverse = _inverse_denominators(layers)
    per = (frows - 2 + groups - 1) // groups
    for g in numba.prange(groups):
        first, last = 1 + g * per, min(frows - 1, 1 + (g + 1) * per)
        if first >= last:
            continue
        q = np.empty((nx, _NQ))
        positions = np.empty((3, fcols, 3))  # rows fi - 1, fi, fi + 1 (ring)
        hs = np.empty((3, fcols))
        for n in range(2):
            fi = first - 1 + n
            _node_row(ground, normal, fields, v0 + (fi + 0.5) / k * du, q)
            _height_row(heights, k, fi, pixel, pixel_f, hs[n])
            _ecef_row(q, node, node_f, hs[n], positions[n])
        layer = cells[g]
        for fi in range(first, last):
            below = (fi - first + 2) % 3
            _node_row(ground, normal, fields, v0 + (fi + 1.5) / k * du, q)
            _height_row(heights, k, fi + 1, pixel, pixel_f, hs[below])
            _ecef_row(q, node, node_f, hs[below], positions[below])
            here, above = (fi - first + 1) % 3, (fi - first) % 3
            _node_row(ground, normal, fields, v0 + (fi + 0.5) / k * du, q)
            p, north, south, h = positions[here], positions[above], positions[below], hs[here]
            for fj in range(1, fcols - 1):
                i, fu = node[fj], node_f[fj]
                a0, a1, a2 = _lagrange(h[fj], layers, inverse)
                tau = _field(q, i, fu, TAU, a0, a1, a2)
                if not (tau_lo <= tau <= tau_hi):  # outside the orbit's reach, or NaN
                    continue
                ex, ey, ez = p[fj + 1, 0] - p[fj - 1, 0], p[fj + 1, 1] - p[fj - 1, 1], p[fj + 1, 2] - p[fj - 1, 2]
                nx_, ny_, nz_ = north[fj, 0] - south[fj, 0], north[fj, 1] - south[fj, 1], north[fj, 2] - south[fj, 2]
                value = 0.25 * ((ey * nz_ - ez * ny_) * _field(q, i, fu, LX, a0, a1, a2)
                                + (ez * nx_ - ex * nz_) * _field(q, i, fu, LY, a0, a1, a2)
                                + (ex * ny_ - ey * nx_) * _field(q, i, fu, LZ, a0, a1, a2))
                if not value > 0.0:  # turned away from the radar
                    continue
                ut = tau - origin_t
                ur = _field(q, i, fu, RHO, a0, a1, a2) - origin_r
                jt, jr = int(math.floor(ut)), int(math.floor(ur))
                wt, wr = _bspline(ut - jt), _bspline(ur - jr)
                for a in range(4):
                    va = value * wt[a]
                    for b in range(4):
                        layer[jt - 1 + a, jr - 1 + b] += va * wr[b]


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _gather_pixels(heights, margin_r, margin_c, u0, v0, du, ground, normal, fields, layers, tau_lo, tau_hi, origin_t,
                   origin_r, cells, ratio, cos_ia):
    """Per interior pixel: the gamma area gathered at its centre (cubic B-spline interpolation of
    the prefiltered cells) over the ellipsoid's (``ratio``), and cos(IA) (NaN outside the orbit's
    time range)."""
    rows, cols = ratio.shape
    hcols = heights.shape[1]
    nx = fields.shape[2]
    pixel, pixel_f, node, node_f = _columns(hcols, 1, hcols, u0, du, nx)
    inverse = _inverse_denominators(layers)
    for r in numba.prange(rows):
        q = np.empty((nx, _NQ))
        fi = r + margin_r
        _node_row(ground, normal, fields, v0 + (fi + 0.5) * du, q)
        for c in range(cols):
            fj = c + margin_c
            i, fu = node[fj], node_f[fj]
            a0, a1, a2 = _lagrange(heights[fi, fj], layers, inverse)
            tau = _field(q, i, fu, TAU, a0, a1, a2)
            if not (tau_lo <= tau <= tau_hi):
                ratio[r, c] = cos_ia[r, c] = np.nan
                continue
            ut = tau - origin_t
            ur = _field(q, i, fu, RHO, a0, a1, a2) - origin_r
            jt, jr = int(math.floor(ut)), int(math.floor(ur))
            wt, wr = _bspline(ut - jt), _bspline(ur - jr)
            seen = 0.0
            for a in range(4):
                row_sum = 0.0
                for b in range(4):
                    row_sum += cells[jt - 1 + a, jr - 1 + b] * wr[b]
                seen += row_sum * wt[a]
            ratio[r, c] = seen / _field(q, i, fu, REF, a0, a1, a2)
            cos_ia[r, c] = _field(q, i, fu, COS_IA, a0, a1, a2)


_POLE = math.sqrt(3.0) - 2.0


@numba.njit(cache=True)
def _prefilter_line(c):
    """In place: cubic B-spline interpolation coefficients of the samples ``c`` (Unser's
    recursive filter, pole sqrt(3) - 2, mirror boundaries)."""
    n = c.shape[0]
    z = _POLE
    for i in range(n):
        c[i] *= 6.0
    total, zk = c[0], z
    for i in range(1, min(n, 30)):
        total += zk * c[i]
        zk *= z
    c[0] = total
    for i in range(1, n):
        c[i] += z * c[i - 1]
    c[n - 1] = z / (z * z - 1.0) * (c[n - 1] + z * c[n - 2])
    for i in range(n - 2, -1, -1):
        c[i] = z * (c[i + 1] - c[i])


@numba.njit(parallel=True, cache=True)
def _bspline_prefilter(cells):
    """In place: the cubic B-spline coefficients interpolating ``cells`` (rows, then columns,
    the column recursion run across all columns at once, in chunks)."""
    rows, cols = cells.shape
    for r in numba.prange(rows):
        _prefilter_line(cells[r])
    z = _POLE
    chunk = 256
    for n in numba.prange((cols + chunk - 1) // chunk):
        c0, c1 = n * chunk, min(cols, (n + 1) * chunk)
        block = cells[:, c0:c1]
        block *= 6.0
        first = block[0].copy()
        zk = z
        for i in range(1, min(rows, 30)):
            first += zk * block[i]
            zk *= z
        block[0] = first
        for i in range(1, rows):
            block[i] += z * block[i - 1]
        block[rows - 1] = z / (z * z - 1.0) * (block[rows - 1] + z * block[rows - 2])
        for i in range(rows - 2, -1, -1):
            block[i] = z * (block[i + 1] - block[i])


# ---------------------------------------------------------------------------- the map

def terrain_gamma_area(orbit: ZeroDopplerOrbit, crs: str, transform: Affine, heights: np.ndarray,
                       margin: int | tuple[int, int], bins: RadarBins, facets: int = 1
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Gamma area ratio R (module docstring) and cos(IA) on the ellipsoid of the interior of a
    north-up grid whose ellipsoidal ``heights`` include ``margin`` (>= 1) pixels on each side, or
    (rows, columns) of them (``transform`` is that of the bordered grid), with ``facets`` x
    ``facets`` facets per pixel and radar cells ``bins``; NaN where the zero-Doppler time is not
    within the orbit."""
    margin_r, margin_c = (margin, margin) if isinstance(margin, int) else margin
    if min(margin_r, margin_c) < 1:
        raise ValueError("terrain_gamma_area needs a margin of at least one pixel")
    k = int(facets)
    rows, cols = heights.shape
    heights = np.ascontiguousarray(heights)
    finite = heights[np.isfinite(heights)]
    span = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (cols, rows)
    nodes = NodeGeometry.compute(orbit, crs, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), span, bins)
    u0, v0, du = nodes.coordinates(transform)
    t_min, t_max = orbit.time_range
    tau_lo, tau_hi = t_min / bins.dt - ORBIT_REACH, t_max / bins.dt + ORBIT_REACH
    shape = (rows - 2 * margin_r, cols - 2 * margin_c)
    known = nodes.fields[..., :2][np.isfinite(nodes.fields[..., TAU])]
    if known.size == 0:
        return np.full(shape, np.nan), np.full(shape, np.nan)
    low = np.floor(known.min(axis=0)).astype(int) - 3
    high = np.floor(known.max(axis=0)).astype(int) + 4
    groups = max(1, min(SPLAT_GROUPS, rows * k // 64))
    cells = np.zeros((groups, *(high - low)), dtype=np.float32)  # sums of a few tens of facets: 1e-7
    _splat_facets(heights, k, u0, v0, du, nodes.ground, nodes.normal, nodes.fields, nodes.heights, tau_lo, tau_hi,
                  float(low[0]), float(low[1]), cells)
    total = cells[0] if groups == 1 else cells.sum(axis=0)
    del cells
    _bspline_prefilter(total)
    ratio, cos_ia = np.empty(shape), np.empty(shape)
    _gather_pixels(heights, margin_r, margin_c, u0, v0, du, nodes.ground, nodes.normal, nodes.fields, nodes.heights,
                   t_min / bins.dt, t_max / bins.dt, float(low[0]), float(low[1]), total, ratio, cos_ia)
    return ratio, cos_ia


def gamma_area_ratio(orbit: ZeroDopplerOrbit, crs: str, transform: Affine, heights: np.ndarray, margin: int,
                     bins: RadarBins, oversampling: float = 1) -> np.ndarray:
    """The gamma area ratio R alone (:func:`terrain_gamma_area`) at an oversampling: ``bins`` are
    the cells of oversampling 1 (:meth:`RadarBins.for_grid`), made ``oversampling`` times finer."""
    fine = RadarBins(bins.dt / oversampling, bins.dr / oversampling)
    return terrain_gamma_area(orbit, crs, transform, heights, margin, fine, facet_factor(oversampling))[0]


def facet_factor(oversampling: float) -> int:
    """Facets per pixel side at an oversampling: enough to keep facets at most
    :data:`MAX_FACET_SPACING` cells apart."""
    return max(1, math.ceil(oversampling / (MAX_FACET_SPACING * BIN_PIXELS) - 1e-9))


def block_margins(relief: float, min_incidence: float, range_direction: tuple[float, float], resolution: float,
                  oversampling: float) -> tuple[int, int]:
    """(rows, columns) of pixels around a block whose facets can share a radar cell with the
    block's: the layover reach of the area's ``relief`` (m) at its smallest incidence angle
    (radians) along the ground range direction (column and row components of a unit vector),
    plus the reach of the B-spline weights (two cells each way) and a pixel."""
    reach = max(relief, 0.0) / math.tan(max(min_incidence, math.radians(10.0))) / resolution
    cells = 4 * BIN_PIXELS / oversampling
    along_cols, along_rows = (abs(float(v)) for v in range_direction)
    return math.ceil(reach * along_rows + cells) + 2, math.ceil(reach * along_cols + cells) + 2


def produce_gamma_area(job: MapJob, context: Context) -> list[str]:
    """Compute and write the gamma area map of ``job`` (family ``GAMMA_AREA``, and its layover and
    shadow mask when it has one); return the paths written."""
    job, masks = split_layover_shadow(job, context)
    if not job.outputs:
        return masks
    proc = context.processing
    resolution = proc.output_spatial_resolution
    k = proc.gamma_area_oversampling
    out = context.output_grid(job.tile)
    transform, rows, cols = out.transform, out.rows, out.cols
    products, orbit = pass_of(job, context)
    area = pixel_area(products[0])
    bins = RadarBins.for_grid(orbit, out.crs, transform, (rows, cols), pixels=BIN_PIXELS / k)
    relief, min_incidence, direction = _terrain_extent(context, out, orbit)
    margin_r, margin_c = block_margins(relief, min_incidence, direction, resolution, k)
    (_, path), = job.outputs
    dtype, options = creation_options_for("gamma_area", proc.creation_options)
    threads = context.threads
    if threads > 1:  # compress with the task's threads
        options.setdefault("NUM_THREADS", str(threads))
    nodata = proc.nodata.get("RTC")
    nodata = 0.0 if nodata is None else float(nodata)
    tags = {**map_tags(job, products, orbit, context), "DATA_TYPE": _DESCRIPTION.removesuffix(" on S2 grid"),
            "DEM_INFO": context.settings.paths.dem_info, **context.dem_tags(job.tile),
            "GAMMA_AREA_UNIT": "m2", "GAMMA_AREA_PIXEL_AREA": f"{area:.6f}",
            "GAMMA_AREA_OVERSAMPLING": f"{k:g}", **production_tags(_DESCRIPTION)}
    windows = [(r0, c0, h, w) for r0, h in _blocks(rows, BLOCK_PIXELS) for c0, w in _blocks(cols, BLOCK_PIXELS)]
    # the posts under the tile and its margins, read once for all the blocks
    context.dem.preload(out.crs, transform @ Affine.translation(-margin_c, -margin_r),
                        (rows + 2 * margin_r, cols + 2 * margin_c))

    def block(window: tuple[int, int, int, int]) -> np.ndarray:
        r0, c0, h, w = window
        bordered = transform @ Affine.translation(c0 - margin_c, r0 - margin_r)
        heights = context.dem.heights_on_grid(out.crs, bordered, (h + 2 * margin_r, w + 2 * margin_c),
                                              context.dem_resampling, geoid=context.geoid)
        ratio, cos_ia = terrain_gamma_area(orbit, out.crs, bordered, heights, (margin_r, margin_c), bins,
                                           facet_factor(k))
        ratio *= cos_ia
        ratio *= area
        ratio[np.isnan(ratio)] = nodata
        return ratio.astype(np.float32)

    with AtomicRasterWriter(path, crs=out.crs, transform=transform, width=cols, height=rows, dtype=dtype,
                            nodata=nodata, creation_options=options, tags=tags,
                            output_format=proc.output_format) as writer:
        computed = in_order(block, windows, block_threads(threads))
        try:
            for (r0, c0, h, w), values in zip(windows, computed):
                writer.write(values, Window(c0, r0, w, h))
                progress.report(r0 * cols + (c0 + w) * h, rows * cols)
        finally:  # on an error: the threads stop before the writer aborts
            computed.close()
    logger.info("%s orbit %03d: wrote %s", job.tile, job.orbit, Path(path).name)
    return [path] + masks


#: Pixel size (m) of the DEM sample giving a tile's relief.
_RELIEF_STEP = 600.0


def _terrain_extent(context: Context, out, orbit: ZeroDopplerOrbit) -> tuple[float, float, tuple[float, float]]:
    """Relief (m, highest minus lowest ellipsoidal height of the tile and 5 km around it, from a
    coarse sample, widened by 10 %), the smallest incidence angle (radians) over the tile, and the
    ground range direction at its centre (a unit vector: column and row components)."""
    transform = out.transform
    width, height = out.cols * transform.a, out.rows * -transform.e
    around = 5000.0
    coarse = Affine(_RELIEF_STEP, 0, transform.c - around, 0, -_RELIEF_STEP, transform.f + around)
    shape = (math.ceil((height + 2 * around) / _RELIEF_STEP) + 1, math.ceil((width + 2 * around) / _RELIEF_STEP) + 1)
    heights = context.dem.heights_on_grid(out.crs, coarse, shape, "nearest", geoid=context.geoid)
    relief = 1.1 * float(np.ptp(heights)) + 20.0
    step = max(width, height) / 8
    nodes = NodeGeometry.compute(orbit, out.crs, (transform.c, transform.f - height, transform.c + width, transform.f),
                                 (float(heights.min()), float(heights.max())), RadarBins(1.0, 1.0), step=step)
    cosines = nodes.fields[..., COS_IA]
    cosines = cosines[np.isfinite(cosines)]
    incidence = float(np.arccos(cosines.max())) if cosines.size else math.radians(20.0)
    tau = nodes.fields[1, ..., TAU]  # middle layer; u eastwards, v southwards
    j, i = tau.shape[0] // 2, tau.shape[1] // 2
    d_u, d_v = tau[j, i + 1] - tau[j, i - 1], tau[j + 1, i] - tau[j - 1, i]
    norm = math.hypot(d_u, d_v)
    direction = (d_v / norm, -d_u / norm) if norm > 0 and math.isfinite(norm) else (1.0, 1.0)  # along iso-t lines
    return relief, incidence, direction


def _blocks(size: int, block: int) -> list[tuple[int, int]]:
    """(start, length) of about equal blocks of at most ``block`` covering ``size`` pixels."""
    count = -(-size // block)
    length = -(-size // count)
    return [(start, min(length, size - start)) for start in range(0, size, length)]

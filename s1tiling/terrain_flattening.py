"""Terrain flattening (gamma0 RTC): the gamma area map of a relative orbit over an S2 tile.

Reference: D. Small, "Flattening Gamma: Radiometric Terrain Correction for SAR Imagery",
IEEE TGRS 49(8), 3081-3093, 2011: gamma0_T = beta0 x A_beta / A_gamma, where A_gamma is the
area of the terrain seen in one radar resolution cell, each DEM facet projected onto the plane
perpendicular to the look direction, and A_beta the cell's area in slant geometry.

Map (``GAMMA_AREA_{tile_name}_{orbit}.tif`` in ``[Paths] gamma_area``, float32, no-data
``nodata.RTC``, default 0), per output pixel P: the gamma area of the radar cell P falls in,
divided by the gamma area of the same cell if the terrain were the ellipsoid surface through P:

1. Facets: the pixels of the tile grid (plus a margin) at their ellipsoidal heights (DEM +
   geoid); area vector a = (E x N) / 4 from the ECEF positions of the four neighbours (the
   central differences of the LIA normals), pointing up, |a| the facet's area.
2. Radar geometry of each facet centre: zero-Doppler time t and satellite position S, slant
   range r = |S - P|, unit look vector l = (S - P) / r.
3. Illuminated gamma area of a facet: max(0, a . l), its area projected onto the plane
   perpendicular to l (facets turned away from the radar receive nothing).
4. The facets' gamma areas are summed into radar cells (t / dt, r / dr) about ``BIN_PIXELS``
   output pixels wide on the ground, with cubic B-spline weights (the area is conserved and
   the facet lattice does not alias on the cells); each pixel gathers, with the same weights,
   the cells around its own (t, r): every facet seen at the same time and range (layover)
   counts.
5. Normalisation: a surface of unit normal m covers |c . m| cells per unit area, with
   c = grad(t / dt) x grad(r / dr), grad r = -l and grad t = V / (V.V - (P - S).A) (zero-Doppler
   condition; V, A the satellite's velocity and acceleration). The ellipsoid surface through P
   (m = n, its normal) thus has (n . l) / |c . n| of gamma area per cell.

Level ground gives 1; a plane tilted by alpha towards the radar (in the range plane) gives
tan(IA) / tan(IA - alpha) (foreshortening), away from it less than 1, slopes hidden from the
radar 0 (no illuminated area: no-data); tilts along the track leave it at 1.

gamma0 RTC = gamma0 / map (gamma0 calibrated with ESA's gamma LUT on the ellipsoid, i.e.
beta0 tan(IA)): on flat terrain the gamma area of a cell is A_beta / tan(IA), so this is
Small's beta0 A_beta / A_gamma exactly; pixels whose map value is below :data:`~s1tiling.radiometry.MIN_GAMMA_AREA`
(shadow) are no-data.

S1Tiling (>= 1.1: ``S1GammaAreaMap``, docs "gamma0_T RTC data flow"; OTB applications
SARGammaAreaImageEstimation then SARGammaAreaToGammaNaughtRTCImageEstimation of its RTC_gamma0
module, whose source was not available to check) computes A_gamma in m^2 per pixel of the S1
image, orthorectifies it onto the tile, and applies it to the sigma0 tile with
``min_gamma_area`` and ``calibration_factor``: presumably gamma0_T = sigma0 x A_sigma / A_gamma,
which equals beta0 A_beta / A_gamma. Deviations: the map is a ratio to the ellipsoid (no unit,
independent of the S1 pixel size), so S1Tiling's GAMMA_AREA files and these are not
interchangeable; it is computed on the tile grid at the output resolution with radar cells of
``BIN_PIXELS`` output pixels (not the S1 image's pixels); ``min_gamma_area`` (1 m^2, about 1 % of
a 10 m pixel) becomes :data:`~s1tiling.radiometry.MIN_GAMMA_AREA` (a ratio); ``calibration_factor``, ``distribute_area``
and ``*_margin_ratio`` are not read. Not modelled: the occlusion of slopes that face the radar
behind a higher ridge (they count as illuminated), and layover reaching farther than ``MARGIN``.
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

from .context import Context
from .geometry.ellipsoid import ellipsoid_normal, geodetic_to_ecef
from .geometry.orbit import orbit_state
from .geometry.zero_doppler import ZeroDopplerOrbit, zero_doppler
from .incidence import map_tags, pass_of, pixel_lonlat
from .plan import MapJob
from .writing import AtomicRasterWriter, creation_options_for, production_tags

logger = logging.getLogger(__name__)

#: Radar cells are about this many output pixels wide on the ground (at the tile's centre):
#: facets 0.4 cell apart, so that cubic B-spline weights leave no visible aliasing (< 1e-4).
BIN_PIXELS = 2.5
#: Ground distance (m) around a block whose facets are projected too: the layover reach of a
#: relief of about 2300 m at 30 degrees of incidence (3300 m at 40 degrees).
MARGIN = 4000.0
#: Largest block of output pixels (per side) computed at once, margin not included.
BLOCK_PIXELS = 1024
#: Facets up to this many cells beyond the ends of the orbit are projected too (extrapolated).
ORBIT_REACH = 4
_DESCRIPTION = "gamma area ratio (terrain / ellipsoid) on S2 grid"


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


def gamma_area_ratio(orbit: ZeroDopplerOrbit, crs: str, transform: Affine, heights: np.ndarray, margin: int,
                     bins: RadarBins) -> np.ndarray:
    """Gamma area map (module docstring) of a north-up grid whose ellipsoidal ``heights`` include
    ``margin`` (>= 1) pixels on each side (``transform`` is that of the bordered grid); the result
    is the interior, NaN where the zero-Doppler time is not within the orbit."""
    if margin < 1:
        raise ValueError("gamma_area_ratio needs a margin of at least one pixel")
    lon, lat = pixel_lonlat(crs, transform, heights.shape)
    points = np.stack(geodetic_to_ecef(lat, lon, heights), axis=-1)
    east = points[1:-1, 2:] - points[1:-1, :-2]
    north = points[:-2, 1:-1] - points[2:, 1:-1]
    areas = np.cross(east, north) / 4.0
    del east, north
    normals = ellipsoid_normal(lat[1:-1, 1:-1], lon[1:-1, 1:-1])
    rows, cols = areas.shape[:2]
    count = rows * cols
    coords = np.empty((count, 2))
    gamma_areas, references = np.empty(count), np.empty(count)
    centres = np.ascontiguousarray(points[1:-1, 1:-1]).reshape(-1, 3)
    times, satellites = orbit.solve(centres)
    _radar_geometry(centres, areas.reshape(-1, 3), normals.reshape(-1, 3), times, satellites, orbit.arrays,
                    *orbit.time_range, bins.dt, bins.dr, coords, gamma_areas, references)
    interior: np.ndarray = np.zeros((rows, cols), dtype=bool)
    interior[margin - 1:rows - margin + 1, margin - 1:cols - margin + 1] = True
    interior = interior.ravel()
    cells, origin = _cells(coords[np.isfinite(gamma_areas)])
    _splat(coords, gamma_areas, origin[0], origin[1], cells)
    seen = np.empty(np.count_nonzero(interior))
    _gather(np.ascontiguousarray(coords[interior]), origin[0], origin[1], cells, seen)
    shape = (rows - 2 * margin + 2, cols - 2 * margin + 2)
    return (seen / references[interior]).reshape(shape)


def _cells(coords: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Zeroed cells covering ``coords`` and their neighbours, and the index of the first cell."""
    if coords.size == 0:
        return np.zeros((1, 1)), (0, 0)
    low = np.floor(coords.min(axis=0)).astype(int) - 2
    high = np.floor(coords.max(axis=0)).astype(int) + 3
    return np.zeros(tuple(high - low)), (int(low[0]), int(low[1]))


@numba.njit(parallel=True, cache=True)
def _radar_geometry(points, areas, normals, times, satellites, orbit, t_min, t_max, dt, dr, coords, gamma_areas,
                    references):
    """Per facet, from its zero-Doppler time and satellite position: cell coordinates (t / dt,
    r / dr), illuminated gamma area max(0, a . l) and the ellipsoid's gamma area per cell. The
    latter is NaN where the zero-Doppler time is not within the orbit; the others too beyond
    ``ORBIT_REACH`` cells more (the cells of the last valid pixels receive all their facets: the
    orbit is extrapolated by a fraction of a second there)."""
    node_times, origins, scales, coefs = orbit
    reach = ORBIT_REACH * dt
    for i in numba.prange(points.shape[0]):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        t, sx, sy, sz = times[i], satellites[i, 0], satellites[i, 1], satellites[i, 2]
        if not (t_min - reach <= t <= t_max + reach):  # also NaN
            coords[i, 0] = coords[i, 1] = gamma_areas[i] = references[i] = np.nan
            continue
        _, v, acc = orbit_state(t, node_times, origins, scales, coefs)
        r = math.sqrt((sx - px) ** 2 + (sy - py) ** 2 + (sz - pz) ** 2)
        lx, ly, lz = (sx - px) / r, (sy - py) / r, (sz - pz) / r
        # grad(t / dt) = V / ((V.V - (P - S).A) dt), with P - S = -r l
        k = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + r * (lx * acc[0] + ly * acc[1] + lz * acc[2])) * dt
        gx, gy, gz = v[0] / k, v[1] / k, v[2] / k
        # c = grad(t / dt) x grad(r / dr) (the sign of grad r does not matter)
        cx, cy, cz = (gy * lz - gz * ly) / dr, (gz * lx - gx * lz) / dr, (gx * ly - gy * lx) / dr
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        references[i] = (nx * lx + ny * ly + nz * lz) / abs(nx * cx + ny * cy + nz * cz) \
            if t_min <= t <= t_max else np.nan
        gamma_areas[i] = max(0.0, areas[i, 0] * lx + areas[i, 1] * ly + areas[i, 2] * lz)
        coords[i, 0], coords[i, 1] = t / dt, r / dr


@numba.njit(cache=True)
def _bspline(f):
    """Cubic B-spline weights of cells j - 1 .. j + 2 for a point at j + f (0 <= f < 1)."""
    g = 1.0 - f
    return g * g * g / 6.0, (3.0 * f * f * f - 6.0 * f * f + 4.0) / 6.0, (3.0 * g * g * g - 6.0 * g * g + 4.0) / 6.0, \
        f * f * f / 6.0


@numba.njit(cache=True)
def _splat(coords, values, origin_t, origin_r, cells):
    """Add each positive value to the 4 x 4 cells around its coordinates (cubic B-spline weights)."""
    for i in range(coords.shape[0]):
        value = values[i]
        if not value > 0.0:  # shadow, or outside the orbit
            continue
        ut, ur = coords[i, 0] - origin_t, coords[i, 1] - origin_r
        jt, jr = int(math.floor(ut)), int(math.floor(ur))
        wt, wr = _bspline(ut - jt), _bspline(ur - jr)
        for a in range(4):
            for b in range(4):
                cells[jt - 1 + a, jr - 1 + b] += value * wt[a] * wr[b]


@numba.njit(parallel=True, cache=True)
def _gather(coords, origin_t, origin_r, cells, out):
    """Cubic B-spline weighted sum of the 4 x 4 cells around each point (NaN coordinates give NaN)."""
    for i in numba.prange(coords.shape[0]):
        if math.isnan(coords[i, 0]):
            out[i] = np.nan
            continue
        ut, ur = coords[i, 0] - origin_t, coords[i, 1] - origin_r
        jt, jr = int(math.floor(ut)), int(math.floor(ur))
        wt, wr = _bspline(ut - jt), _bspline(ur - jr)
        total = 0.0
        for a in range(4):
            for b in range(4):
                total += cells[jt - 1 + a, jr - 1 + b] * wt[a] * wr[b]
        out[i] = total


def produce_gamma_area(job: MapJob, context: Context) -> list[str]:
    """Compute and write the gamma area map of ``job`` (family ``GAMMA_AREA``); return its path."""
    proc = context.processing
    resolution = proc.output_spatial_resolution
    out = context.output_grid(job.tile)
    transform, rows, cols = out.transform, out.rows, out.cols
    products, orbit = pass_of(job, context)
    bins = RadarBins.for_grid(orbit, out.crs, transform, (rows, cols))
    margin = math.ceil(MARGIN / resolution + 4 * BIN_PIXELS) + 1  # the layover reach and two cells
    (_, path), = job.outputs
    dtype, options = creation_options_for("gamma_area", proc.creation_options)
    nodata = proc.nodata.get("RTC")
    nodata = 0.0 if nodata is None else float(nodata)
    tags = {**map_tags(job, products, orbit, context), "DATA_TYPE": _DESCRIPTION.removesuffix(" on S2 grid"),
            "DEM_INFO": context.settings.paths.dem_info, **production_tags(_DESCRIPTION)}
    row_blocks, col_blocks = _blocks(rows), _blocks(cols)
    with AtomicRasterWriter(path, crs=out.crs, transform=transform, width=cols, height=rows, dtype=dtype,
                            nodata=nodata, creation_options=options, tags=tags,
                            output_format=proc.output_format) as writer:
        for r0, h in row_blocks:
            for c0, w in col_blocks:
                bordered = transform @ Affine.translation(c0 - margin, r0 - margin)
                heights = context.dem.heights_on_grid(out.crs, bordered, (h + 2 * margin, w + 2 * margin),
                                                      context.dem_resampling, geoid=context.geoid)
                ratio = gamma_area_ratio(orbit, out.crs, bordered, heights, margin, bins)
                writer.write(np.where(np.isnan(ratio), nodata, ratio), Window(c0, r0, w, h))
    logger.info("%s orbit %03d: wrote %s", job.tile, job.orbit, Path(path).name)
    return [path]


def _blocks(size: int) -> list[tuple[int, int]]:
    """(start, length) of about equal blocks of at most ``BLOCK_PIXELS`` covering ``size`` pixels."""
    count = -(-size // BLOCK_PIXELS)
    length = -(-size // count)
    return [(start, min(length, size - start)) for start in range(0, size, length)]

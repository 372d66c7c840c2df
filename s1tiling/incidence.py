"""Incidence-angle maps of a relative orbit over an S2 tile, and the NORMLIM correction.

Maps (S1Tiling's ``S1IAMap`` / ``S1LIAMap`` products, on the S2 tile grid at
``output_spatial_resolution``):

- ``IA``, ``cos_IA``, ``sin_IA``, ``tan_IA``: incidence angle on the WGS84 ellipsoid;
- ``LIA``, ``sin_LIA``: local incidence angle on the terrain (DEM + geoid).

``IA`` and ``LIA`` hold 100 x degrees (uint16 by default), the others float32.

Convention (S1Tiling's ``SARComputeIncidenceAngle``, docs "Normlim data flow" and
"Incidence Angle data flow"): the angle at the ground point T between a normal n and the
direction T -> S to the satellite position S at T's zero-Doppler time, n being first
projected onto the range plane (the plane through S, T and the Earth's centre), so that
along-track tilts of the terrain do not count.

- IA: T on the ellipsoid (h = 0) below each pixel centre, n the ellipsoid normal.
- LIA: T at the ellipsoidal height (DEM + geoid) of each pixel centre; n the normal of the
  surface through the ECEF positions of the pixel centres, by central differences,
  ``n = (T[r, c+1] - T[r, c-1]) x (T[r-1, c] - T[r+1, c])`` (east x north = up on a
  north-up grid): the same as differentiating the height in the tile's UTM grid and rotating
  the result from the local east-north-up frame into ECEF, without the map-projection
  distortions to correct.

The maps depend on the orbit track, not on the date: one pass of the relative orbit over the
tile gives them (the one covering most of it, chosen by :func:`s1tiling.plan.plan_maps`), with
the orbit of :meth:`s1tiling.context.Context.pass_orbit`. Pixels whose zero-Doppler time falls
outside the orbit's state vectors are no-data: with annotated vectors (which old products give
for their own time span only) the maps may not cover the whole tile. Existing maps are never
made again. The angles themselves are :func:`s1tiling.geometry.zero_doppler.incidence_cosine`.

Speed: the satellite position S at the zero-Doppler time of a ground point is a smooth function of
the point (the orbit's acceleration bends it by millimetres over a kilometre), so it is solved
(:func:`s1tiling.geometry.zero_doppler.solve`) at nodes :data:`SATELLITE_NODE_SPACING` apart, at
three heights spanning the block's, and interpolated at each pixel (bilinear in the grid,
quadratic in its height): 0.04 m, 5e-8 radian at most. Points, normals and angles are computed
in one numba pass per block; blocks are computed by the task's threads (:mod:`s1tiling.blocks`).
"""
from __future__ import annotations

import logging
import math
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from . import progress
from .blocks import block_threads, block_windows, in_order
from .context import Context
from .geometry.ellipsoid import WGS84_A, WGS84_E2, geodetic_to_ecef
from .geometry.layover import OUTSIDE, layover_shadow, reach
from .geometry.zero_doppler import ZeroDopplerOrbit, incidence_cosine, zero_doppler
from .plan import MapJob
from .s1.product import Product, open_product
from .writing import AtomicRasterWriter, creation_options_for, production_tags

logger = logging.getLogger(__name__)

#: map kind -> S1Tiling's ``creation_options`` key and the default it falls back to
_CREATION_KEYS = {"LIA": ("lia_deg", "lia_deg"), "sin_LIA": ("lia_sin", "lia_sin"), "IA": ("ia_deg", "lia_deg"),
                  "cos_IA": ("ia_cos", "ia"), "sin_IA": ("ia_sin", "ia"), "tan_IA": ("ia_tan", "ia")}
_DESCRIPTIONS = {"LIA": "100 * degrees(LIA) on S2 grid", "sin_LIA": "sin(LIA) on S2 grid",
                 "IA": "100 * degrees(IA) on S2 grid", "cos_IA": "cos(IA) on S2 grid",
                 "sin_IA": "sin(IA) on S2 grid", "tan_IA": "tan(IA) on S2 grid"}
BLOCK_ROWS = 512
BLOCK_COLS = 2048
_LONLAT_STEP = 8  # exact lon/lat every 8 pixels, bilinear in between (error far below 1 mm)


def pixel_lonlat(crs: str, transform: Affine, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (degrees) of the pixel centres of a grid (exact every few pixels,
    bilinear in between)."""
    rows, cols = shape
    sub_rows = np.unique(np.append(np.arange(0, rows, _LONLAT_STEP), rows - 1))
    sub_cols = np.unique(np.append(np.arange(0, cols, _LONLAT_STEP), cols - 1))
    x, y = transform @ np.meshgrid(sub_cols + 0.5, sub_rows + 0.5)  # type: ignore[operator]  # arrays work too
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    row_pos = np.interp(np.arange(rows), sub_rows, np.arange(sub_rows.size))
    col_pos = np.interp(np.arange(cols), sub_cols, np.arange(sub_cols.size))
    return _bilinear(np.asarray(lon), row_pos, col_pos), _bilinear(np.asarray(lat), row_pos, col_pos)


def _bilinear(values, row_pos, col_pos):
    r = np.minimum(row_pos.astype(int), max(values.shape[0] - 2, 0))
    c = np.minimum(col_pos.astype(int), max(values.shape[1] - 2, 0))
    fr, fc = (row_pos - r)[:, None], (col_pos - c)[None, :]
    r1, c1 = np.minimum(r + 1, values.shape[0] - 1), np.minimum(c + 1, values.shape[1] - 1)
    top = values[r][:, c] * (1 - fc) + values[r][:, c1] * fc
    bottom = values[r1][:, c] * (1 - fc) + values[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr


def ia_cosines(orbit: ZeroDopplerOrbit, crs: str, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """cos(IA) at the pixel centres of a north-up grid, on the ellipsoid."""
    return _map_cosines(orbit, crs, transform, np.zeros(shape), 0)


def lia_cosines(orbit: ZeroDopplerOrbit, crs: str, transform: Affine, heights: np.ndarray) -> np.ndarray:
    """cos(LIA) of a north-up grid whose ellipsoidal ``heights`` include a one-pixel border
    (``transform`` is that of the bordered grid); the result is the interior, 2 rows and 2
    columns smaller."""
    return _map_cosines(orbit, crs, transform, heights, 1)


#: Spacing (m) of the nodes where the satellite position is solved (module documentation).
SATELLITE_NODE_SPACING = 1000.0
_HEIGHT_MARGIN = 20.0  # metres around the heights of a block for the node layers
_MIN_HEIGHT_SPAN = 100.0


def _map_cosines(orbit: ZeroDopplerOrbit, crs, transform, heights, border: int) -> np.ndarray:
    """Cosines of the incidence angles of the pixels of a grid of ellipsoidal ``heights``: with
    ``border`` 1, on the terrain (normals from the neighbours, the border rows and columns only
    serve as neighbours), with 0 on the ellipsoid normal."""
    heights = np.ascontiguousarray(heights, dtype=np.float64)
    rows, cols = heights.shape
    sub_rows = np.unique(np.append(np.arange(0, rows, _LONLAT_STEP), rows - 1))
    sub_cols = np.unique(np.append(np.arange(0, cols, _LONLAT_STEP), cols - 1))
    x, y = transform @ np.meshgrid(sub_cols + 0.5, sub_rows + 0.5)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    if np.ptp(lon) > 180.0:  # across the antimeridian: continuous longitudes to interpolate
        lon = np.where(lon < 0.0, lon + 360.0, lon)
    row_pos = np.interp(np.arange(rows), sub_rows, np.arange(sub_rows.size))
    points = np.empty((rows, cols, 3))
    normals = np.empty((rows, cols, 3)) if border == 0 else np.empty((1, 1, 3))
    _grid_points(np.ascontiguousarray(lat, dtype=np.float64), np.ascontiguousarray(lon, dtype=np.float64),
                 row_pos, sub_cols.astype(np.int64), heights, points, normals, border == 0)
    inner = (rows - 2 * border, cols - 2 * border)
    inner_transform = transform @ Affine.translation(border, border)
    inner_heights = heights[border:rows - border, border:cols - border]
    nodes, layers, origin, step = _node_satellites(orbit, crs, inner_transform, inner, inner_heights)
    u0 = (inner_transform.c + 0.5 * inner_transform.a - origin[0]) / step
    v0 = (origin[1] - inner_transform.f - 0.5 * inner_transform.e) / step
    out = np.empty(inner)
    _cosines(points, normals, border, nodes, layers, u0, inner_transform.a / step, v0, -inner_transform.e / step,
             heights, orbit.arrays, orbit.first_guess, orbit.time_range, out)
    return out


def _node_satellites(orbit: ZeroDopplerOrbit, crs, transform, shape, heights):
    """Satellite positions (3 layers x ny x nx x 3, NaN outside the orbit) at the zero-Doppler
    times of nodes covering the pixel centres of a grid, at three heights spanning ``heights``;
    the layers' heights, the first node (x, y) and the spacing."""
    rows, cols = shape
    step = SATELLITE_NODE_SPACING
    x0, y0 = transform @ (0.5, 0.5)
    x1, y1 = transform @ (cols - 0.5, rows - 0.5)
    xmin, xmax, ymin, ymax = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    first = (np.floor(xmin / step) * step, np.ceil(ymax / step) * step)
    nx = int(np.ceil((xmax - first[0]) / step)) + 1
    ny = int(np.ceil((first[1] - ymin) / step)) + 1
    xx, yy = np.meshgrid(first[0] + step * np.arange(nx), first[1] - step * np.arange(ny))
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    finite = heights[np.isfinite(heights)]
    lo = (float(finite.min()) if finite.size else 0.0) - _HEIGHT_MARGIN
    hi = max((float(finite.max()) if finite.size else 0.0) + _HEIGHT_MARGIN, lo + _MIN_HEIGHT_SPAN)
    layers = np.array([lo, 0.5 * (lo + hi), hi])
    points = np.stack(geodetic_to_ecef(lat[None], lon[None], layers[:, None, None]), axis=-1)
    times, satellites = orbit.solve(points)
    satellites[~((times >= orbit.time_range[0]) & (times <= orbit.time_range[1]))] = np.nan
    return np.ascontiguousarray(satellites), layers, first, step


@numba.njit(parallel=True, cache=True, nogil=True)
def _grid_points(lat_sub, lon_sub, row_pos, sub_cols, heights, points, normals, with_normals):
    """ECEF points of the pixel centres at their ellipsoidal ``heights``, their latitude and
    longitude bilinear in the exact sub-grid (at fractional row ``row_pos``, exact at columns
    ``sub_cols``); the ellipsoid normals too ``with_normals``.

    Between two sub-grid columns latitude and longitude are linear in the column, so their sines
    and cosines follow by rotation (angle addition) from the first column's: two calls of sin
    and cos every few pixels instead of every pixel, for the same values (to 1e-15)."""
    rows = heights.shape[0]
    nr, nc = lat_sub.shape
    for i in numba.prange(rows):
        r = min(max(row_pos[i], 0.0), nr - 1.0)
        r0 = min(int(r), max(nr - 2, 0))
        r1 = min(r0 + 1, nr - 1)
        fr = r - r0
        for k in range(max(nc - 1, 1)):
            k1 = min(k + 1, nc - 1)
            j0 = sub_cols[k]
            j1 = sub_cols[k1] + 1 if k1 == nc - 1 else sub_cols[k1]  # the last segment ends on its column
            span = max(sub_cols[k1] - j0, 1)
            la = math.radians((1 - fr) * lat_sub[r0, k] + fr * lat_sub[r1, k])
            lb = math.radians((1 - fr) * lat_sub[r0, k1] + fr * lat_sub[r1, k1])
            oa = math.radians((1 - fr) * lon_sub[r0, k] + fr * lon_sub[r1, k])
            ob = math.radians((1 - fr) * lon_sub[r0, k1] + fr * lon_sub[r1, k1])
            slat, clat, slon, clon = math.sin(la), math.cos(la), math.sin(oa), math.cos(oa)
            dla, dlo = (lb - la) / span, (ob - oa) / span
            sdla, cdla, sdlo, cdlo = math.sin(dla), math.cos(dla), math.sin(dlo), math.cos(dlo)
            for j in range(j0, j1):
                n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * slat * slat)
                h = heights[i, j]
                points[i, j, 0] = (n + h) * clat * clon
                points[i, j, 1] = (n + h) * clat * slon
                points[i, j, 2] = (n * (1.0 - WGS84_E2) + h) * slat
                if with_normals:
                    normals[i, j, 0], normals[i, j, 1], normals[i, j, 2] = clat * clon, clat * slon, slat
                slat, clat = slat * cdla + clat * sdla, clat * cdla - slat * sdla
                slon, clon = slon * cdlo + clon * sdlo, clon * cdlo - slon * sdlo


@numba.njit(parallel=True, cache=True, nogil=True)
def _cosines(points, normals, border, nodes, layers, u0, du, v0, dv, heights, orbit, first_guess, time_range, out):
    """cos of the incidence angle of each pixel of ``out``: point ``points[r + border, c + border]``,
    normal ``normals[r, c]`` (border 0) or from the neighbouring points (border 1), satellite
    interpolated in ``nodes`` (bilinear, then quadratic in the pixel's height), or solved for the
    pixel itself where a node is past the orbit (NaN when the pixel is too)."""
    rows, cols = out.shape
    ny, nx = nodes.shape[1], nodes.shape[2]
    h0, h1, h2 = layers[0], layers[1], layers[2]
    q0, q1, q2 = 1.0 / ((h0 - h1) * (h0 - h2)), 1.0 / ((h1 - h0) * (h1 - h2)), 1.0 / ((h2 - h0) * (h2 - h1))
    for r in numba.prange(rows):
        v = v0 + r * dv
        j = min(max(int(math.floor(v)), 0), ny - 2)
        fv = v - j
        along = np.empty((nx, 3, 3))  # the nodes' columns interpolated at this row: (column, layer, axis)
        for i in range(nx):
            for k in range(3):
                for d in range(3):
                    along[i, k, d] = nodes[k, j, i, d] + fv * (nodes[k, j + 1, i, d] - nodes[k, j, i, d])
        for c in range(cols):
            u = u0 + c * du
            i = min(max(int(math.floor(u)), 0), nx - 2)
            fu = u - i
            pr, pc = r + border, c + border
            h = heights[pr, pc]
            a0, a1, a2 = (h - h1) * (h - h2) * q0, (h - h0) * (h - h2) * q1, (h - h0) * (h - h1) * q2
            sx = (a0 * (along[i, 0, 0] + fu * (along[i + 1, 0, 0] - along[i, 0, 0]))
                  + a1 * (along[i, 1, 0] + fu * (along[i + 1, 1, 0] - along[i, 1, 0]))
                  + a2 * (along[i, 2, 0] + fu * (along[i + 1, 2, 0] - along[i, 2, 0])))
            sy = (a0 * (along[i, 0, 1] + fu * (along[i + 1, 0, 1] - along[i, 0, 1]))
                  + a1 * (along[i, 1, 1] + fu * (along[i + 1, 1, 1] - along[i, 1, 1]))
                  + a2 * (along[i, 2, 1] + fu * (along[i + 1, 2, 1] - along[i, 2, 1])))
            sz = (a0 * (along[i, 0, 2] + fu * (along[i + 1, 0, 2] - along[i, 0, 2]))
                  + a1 * (along[i, 1, 2] + fu * (along[i + 1, 1, 2] - along[i, 1, 2]))
                  + a2 * (along[i, 2, 2] + fu * (along[i + 1, 2, 2] - along[i, 2, 2])))
            px, py, pz = points[pr, pc, 0], points[pr, pc, 1], points[pr, pc, 2]
            if math.isnan(sx):  # a node is past the orbit: this pixel's own solution, if it is within
                node_times, origins, scales, coefs = orbit
                t, sx, sy, sz = zero_doppler(px, py, pz, first_guess, node_times, origins, scales, coefs)
                if not (time_range[0] <= t <= time_range[1]):  # False for NaN
                    out[r, c] = np.nan
                    continue
            if border == 0:
                nx_, ny_, nz_ = normals[r, c, 0], normals[r, c, 1], normals[r, c, 2]
            else:
                ex = points[pr, pc + 1, 0] - points[pr, pc - 1, 0]
                ey = points[pr, pc + 1, 1] - points[pr, pc - 1, 1]
                ez = points[pr, pc + 1, 2] - points[pr, pc - 1, 2]
                nox = points[pr - 1, pc, 0] - points[pr + 1, pc, 0]
                noy = points[pr - 1, pc, 1] - points[pr + 1, pc, 1]
                noz = points[pr - 1, pc, 2] - points[pr + 1, pc, 2]
                nx_, ny_, nz_ = ey * noz - ez * noy, ez * nox - ex * noz, ex * noy - ey * nox
            out[r, c] = incidence_cosine(px, py, pz, nx_, ny_, nz_, sx, sy, sz, True)


# ---------------------------------------------------------------------------- production

def pass_of(job: MapJob, context: Context) -> tuple[list[Product], ZeroDopplerOrbit]:
    """The slices of the pass a map job uses (time order) and its zero-Doppler orbit (that of the
    job's orbit-file pass when it has no product)."""
    if not job.products:
        return [], context.window_orbit(job.platform, job.start, job.stop)[0]
    products = sorted((open_product(p) for p in job.products), key=lambda p: p.start_time)
    return products, context.pass_orbit(products)


def produce_maps(job: MapJob, context: Context) -> list[str]:
    """Compute and write the IA or LIA maps of ``job``; return the paths written."""
    job, masks = split_layover_shadow(job, context)
    if not job.outputs:
        return masks
    proc = context.processing
    out = context.output_grid(job.tile)
    transform, rows, cols = out.transform, out.rows, out.cols
    products, orbit = pass_of(job, context)
    common = map_tags(job, products, orbit, context)
    if job.family == "LIA":
        common["DEM_INFO"] = context.settings.paths.dem_info
        # S1Tiling's LIA maps name the DEM tiles and how they were resampled
        common["DEM_LIST"] = context.dem_list(job.tile)
        common["DEM_RESAMPLING_METHOD"] = proc.dem_warp_resampling_method
        common.update(context.dem_tags(job.tile))
    with ExitStack() as stack:
        writers = {}
        for kind, path in job.outputs:
            dtype, options = _creation_options(kind, proc.creation_options)
            if context.threads > 1:  # compress with the task's threads
                options.setdefault("NUM_THREADS", str(context.threads))
            nodata = _nodata(dtype, proc.nodata.get(job.family))
            tags = {**common, "DATA_TYPE": _DESCRIPTIONS[kind].removesuffix(" on S2 grid"),
                    **production_tags(_DESCRIPTIONS[kind])}
            writers[kind] = (stack.enter_context(AtomicRasterWriter(
                path, crs=out.crs, transform=transform, width=cols, height=rows, dtype=dtype, nodata=nodata,
                creation_options=options, tags=tags, output_format=proc.output_format)), nodata)
        lia = job.family == "LIA"
        if lia:
            context.dem.preload(out.crs, transform @ Affine.translation(-1, -1), (rows + 2, cols + 2))

        def block(window):
            r0, c0, h, w = window
            if lia:
                bordered = transform @ Affine.translation(c0 - 1, r0 - 1)
                heights = context.dem.heights_on_grid(out.crs, bordered, (h + 2, w + 2), context.dem_resampling,
                                                      geoid=context.geoid)
                cosines = lia_cosines(orbit, out.crs, bordered, heights)
            else:
                cosines = ia_cosines(orbit, out.crs, transform @ Affine.translation(c0, r0), (h, w))
            return {kind: _encode(kind, cosines, writer.dtype, nodata) for kind, (writer, nodata) in writers.items()}

        windows = block_windows(rows, cols, BLOCK_ROWS, BLOCK_COLS)
        computed = in_order(block, windows, block_threads(context.threads))
        stack.callback(computed.close)  # on an error: the threads stop before the writers abort
        for (r0, c0, h, w), values in zip(windows, computed):
            progress.report(r0 * cols + (c0 + w) * h, rows * cols)
            for kind, (writer, _) in writers.items():
                writer.write(values[kind], Window(c0, r0, w, h))
    written = [path for _, path in job.outputs]
    logger.info("%s orbit %03d: wrote %s", job.tile, job.orbit, ", ".join(Path(p).name for p in written))
    return written + masks


def map_tags(job: MapJob, products: list[Product], orbit: ZeroDopplerOrbit, context: Context) -> dict[str, str]:
    """Metadata shared by the maps of ``job`` (its opened slices in time order, their orbit):
    ``EOF_FILE`` names the orbit file the maps come from (S1Tiling's key), when there is one."""
    if products:
        eof = context.orbit_file_of(products)
        tags = {"FLYING_UNIT_CODE": products[0].flying_unit_code, "ORBIT_DIRECTION": products[0].pass_direction,
                "INPUT_S1_IMAGES": ", ".join(p.name for p in products)}
    else:
        eof = context.window_orbit(job.platform, job.start, job.stop)[1]
        tags = {"FLYING_UNIT_CODE": job.platform.lower(), "ORBIT_DIRECTION": job.direction}
    return {**context.settings.metadata, **tags, **({"EOF_FILE": eof.name} if eof is not None else {}),
            "IMAGE_TYPE": job.family, "ORBIT_SOURCE": orbit.source, "ORTHORECTIFIED": "true",
            "RELATIVE_ORBIT_NUMBER": f"{job.orbit:03d}", "S2_TILE_CORRESPONDING_CODE": job.tile,
            "SPATIAL_RESOLUTION": str(float(context.processing.output_spatial_resolution))}


def _creation_options(kind: str, configured) -> tuple[str, dict]:
    """Pixel type and GDAL options of a map: S1Tiling's key (``creation_options.ia_cos``...)
    or, for float IA maps, ``creation_options.ia``, over the defaults."""
    own, default = _CREATION_KEYS[kind]
    value = configured.get(own, configured.get(default) if default == "ia" else None)
    return creation_options_for(default, {default: value} if value is not None else {})


def _nodata(dtype: str, configured: float | None) -> float:
    """``nodata.LIA`` / ``nodata.IA`` (default NaN, as S1Tiling); integer maps take the largest
    value of their type when that one is NaN or out of range."""
    value = math.nan if configured is None else float(configured)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        if not (math.isfinite(value) and info.min <= value <= info.max and value == int(value)):
            return float(info.max)
    return value


#: map kind -> what :func:`_encode_kernel` computes
_ENCODINGS = {"IA": 0, "LIA": 0, "cos_IA": 1, "sin_IA": 2, "sin_LIA": 2, "tan_IA": 3}


def _encode(kind: str, cosines: np.ndarray, dtype: str, nodata: float) -> np.ndarray:
    """A map's values from the cosines: 100 x degrees (``IA``, ``LIA``; rounded for integer
    types), sin, cos or tan; ``nodata`` where the cosine is NaN."""
    out = np.empty(cosines.shape, dtype=dtype)
    _encode_kernel(np.ascontiguousarray(cosines, dtype=np.float64), _ENCODINGS[kind],
                   np.issubdtype(np.dtype(dtype), np.integer), float(nodata), out)
    return out


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _encode_kernel(cosines, code, integer, nodata, out):
    rows, cols = cosines.shape
    for r in numba.prange(rows):
        for c in range(cols):
            x = cosines[r, c]
            if math.isnan(x):
                out[r, c] = nodata
                continue
            x = min(max(x, -1.0), 1.0)
            if code == 0:
                value = 100.0 * math.degrees(math.acos(x))
                if integer:
                    value = np.rint(value)
            elif code == 1:
                value = x
            else:
                sine = math.sqrt(1.0 - x * x)
                value = sine if code == 2 else sine / x
            out[r, c] = value


# ---------------------------------------------------------------------------- layover and shadow

#: the kind of the layover and shadow mask among a map job's outputs (LIA or GAMMA_AREA family)
LAYOVER_SHADOW = "LAYOVER_SHADOW"
_MASK_DESCRIPTION = "layover (1) and shadow (2) bits on S2 grid"
_MASK_BLOCK = 1024


#: the kind of the map of the DEM heights used (ellipsoidal, m; ``produce_ard_layers``)
DEM_HEIGHT = "DEM_HEIGHT"


def split_layover_shadow(job: MapJob, context: Context) -> tuple[MapJob, list[str]]:
    """Write the ``LAYOVER_SHADOW`` and ``DEM_HEIGHT`` outputs of a map job, if it has them;
    return the job without them and the paths written."""
    written = []
    for kind, path in job.outputs:
        if kind == LAYOVER_SHADOW:
            produce_layover_shadow(job, context, path)
        elif kind == DEM_HEIGHT:
            produce_dem_heights(job, context, path)
        else:
            continue
        written.append(path)
    return replace(job, outputs=tuple(o for o in job.outputs if o[0] not in (LAYOVER_SHADOW, DEM_HEIGHT))), written


def produce_dem_heights(job: MapJob, context: Context, path: str) -> None:
    """Write the ellipsoidal heights (m, float32; DEM with its voids filled, plus the geoid) the
    maps of a tile are computed from, on the tile's grid."""
    proc = context.processing
    out = context.output_grid(job.tile)
    dtype, options = creation_options_for("gamma_area", {})
    tags = {**context.settings.metadata, "IMAGE_TYPE": DEM_HEIGHT, "DATA_TYPE": "ellipsoidal height (m)",
            "HEIGHT_REFERENCE": "WGS84 ellipsoid", "S2_TILE_CORRESPONDING_CODE": job.tile,
            "DEM_INFO": context.settings.paths.dem_info, "DEM_LIST": context.dem_list(job.tile),
            "DEM_RESAMPLING_METHOD": proc.dem_warp_resampling_method, **context.dem_tags(job.tile),
            "SPATIAL_RESOLUTION": str(float(proc.output_spatial_resolution)),
            **production_tags("ellipsoidal height (m) of the DEM used on S2 grid")}
    with AtomicRasterWriter(path, crs=out.crs, transform=out.transform, width=out.cols, height=out.rows,
                            dtype=dtype, nodata=None, creation_options=options, tags=tags,
                            output_format=proc.output_format) as writer:
        for r0 in range(0, out.rows, BLOCK_ROWS):
            for c0 in range(0, out.cols, BLOCK_COLS):
                h, w = min(BLOCK_ROWS, out.rows - r0), min(BLOCK_COLS, out.cols - c0)
                heights = context.dem.heights_on_grid(out.crs, out.transform @ Affine.translation(c0, r0), (h, w),
                                                      context.dem_resampling, geoid=context.geoid)
                writer.write(heights.astype(np.float32), Window(c0, r0, w, h))
    logger.info("%s: wrote %s", job.tile, Path(path).name)


def produce_layover_shadow(job: MapJob, context: Context, path: str) -> None:
    """Compute and write the layover and shadow mask of a job's pass over its tile
    (:mod:`s1tiling.geometry.layover`: uint8, bit 1 layover, bit 2 shadow, 255 where the orbit
    does not see the pixel), each block with a border as wide as the terrain's layover and shadow
    reach."""
    proc = context.processing
    out = context.output_grid(job.tile)
    transform, rows, cols = out.transform, out.rows, out.cols
    resolution = float(proc.output_spatial_resolution)
    products, orbit = pass_of(job, context)
    relief, low, high = _relief_and_incidences(context, out, orbit)
    border = math.ceil(reach(relief, low, high) / resolution) + 3
    tags = {**map_tags(job, products, orbit, context), "DEM_INFO": context.settings.paths.dem_info,
            **context.dem_tags(job.tile), "IMAGE_TYPE": LAYOVER_SHADOW, "DATA_TYPE": "layover and shadow bits",
            "LAYOVER_BIT": "1", "SHADOW_BIT": "2", **production_tags(_MASK_DESCRIPTION)}
    with AtomicRasterWriter(path, crs=out.crs, transform=transform, width=cols, height=rows, dtype="uint8",
                            nodata=OUTSIDE, creation_options={"COMPRESS": "DEFLATE", "TILED": "YES"}, tags=tags,
                            output_format=proc.output_format) as writer:
        for r0 in range(0, rows, _MASK_BLOCK):
            for c0 in range(0, cols, _MASK_BLOCK):
                h, w = min(_MASK_BLOCK, rows - r0), min(_MASK_BLOCK, cols - c0)
                bordered = transform @ Affine.translation(c0 - border - 1, r0 - border - 1)
                shape = (h + 2 * border + 2, w + 2 * border + 2)
                heights = context.dem.heights_on_grid(out.crs, bordered, shape, context.dem_resampling,
                                                      geoid=context.geoid)
                lon, lat = pixel_lonlat(out.crs, bordered, shape)
                mask = layover_shadow(orbit, lat, lon, heights, resolution)
                writer.write(mask[border:border + h, border:border + w], Window(c0, r0, w, h))
    logger.info("%s orbit %03d: wrote %s", job.tile, job.orbit, Path(path).name)


def _relief_and_incidences(context: Context, out, orbit: ZeroDopplerOrbit) -> tuple[float, float, float]:
    """Relief (m: the highest minus the lowest ellipsoidal height of the tile and 5 km around it,
    from a 600 m sample, widened by 10 % and 20 m) and the smallest and largest ellipsoid incidence
    angles (radians) over the tile."""
    step, around = 600.0, 5000.0
    t = out.transform
    width, height = out.cols * t.a, out.rows * -t.e
    coarse = Affine(step, 0, t.c - around, 0, -step, t.f + around)
    shape = (math.ceil((height + 2 * around) / step) + 1, math.ceil((width + 2 * around) / step) + 1)
    heights = context.dem.heights_on_grid(out.crs, coarse, shape, "nearest", geoid=context.geoid)
    relief = 1.1 * float(np.ptp(heights)) + 20.0
    cosines = ia_cosines(orbit, out.crs, Affine(width / 8, 0, t.c, 0, -height / 8, t.f), (9, 9))
    angles = np.arccos(np.clip(cosines[np.isfinite(cosines)], -1, 1))
    if not angles.size:
        return relief, math.radians(20.0), math.radians(50.0)
    return relief, float(angles.min()), float(angles.max())

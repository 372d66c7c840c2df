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
made again. The angles themselves are :func:`s1tiling.geometry.zero_doppler.incidence_cosines`.
"""
from __future__ import annotations

import logging
import math
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from .context import Context
from .geometry.ellipsoid import ellipsoid_normal, geodetic_to_ecef
from .geometry.layover import OUTSIDE, layover_shadow, reach
from .geometry.zero_doppler import ZeroDopplerOrbit
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
    lon, lat = pixel_lonlat(crs, transform, shape)
    points = np.stack(geodetic_to_ecef(lat, lon, 0.0), axis=-1)
    return orbit.cosines(points, ellipsoid_normal(lat, lon))


def lia_cosines(orbit: ZeroDopplerOrbit, crs: str, transform: Affine, heights: np.ndarray) -> np.ndarray:
    """cos(LIA) of a north-up grid whose ellipsoidal ``heights`` include a one-pixel border
    (``transform`` is that of the bordered grid); the result is the interior, 2 rows and 2
    columns smaller."""
    lon, lat = pixel_lonlat(crs, transform, heights.shape)
    points = np.stack(geodetic_to_ecef(lat, lon, heights), axis=-1)
    east = points[1:-1, 2:] - points[1:-1, :-2]
    north = points[:-2, 1:-1] - points[2:, 1:-1]
    return orbit.cosines(points[1:-1, 1:-1], np.cross(east, north))


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
            nodata = _nodata(dtype, proc.nodata.get(job.family))
            tags = {**common, "DATA_TYPE": _DESCRIPTIONS[kind].removesuffix(" on S2 grid"),
                    **production_tags(_DESCRIPTIONS[kind])}
            writers[kind] = (stack.enter_context(AtomicRasterWriter(
                path, crs=out.crs, transform=transform, width=cols, height=rows, dtype=dtype, nodata=nodata,
                creation_options=options, tags=tags, output_format=proc.output_format)), nodata)
        for r0 in range(0, rows, BLOCK_ROWS):
            for c0 in range(0, cols, BLOCK_COLS):
                h, w = min(BLOCK_ROWS, rows - r0), min(BLOCK_COLS, cols - c0)
                if job.family == "LIA":
                    bordered = transform @ Affine.translation(c0 - 1, r0 - 1)
                    heights = context.dem.heights_on_grid(out.crs, bordered, (h + 2, w + 2), context.dem_resampling,
                                                          geoid=context.geoid)
                    cosines = lia_cosines(orbit, out.crs, bordered, heights)
                else:
                    cosines = ia_cosines(orbit, out.crs, transform @ Affine.translation(c0, r0), (h, w))
                for kind, (writer, nodata) in writers.items():
                    writer.write(_encode(kind, cosines, writer.dtype, nodata), Window(c0, r0, w, h))
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


def _encode(kind: str, cosines: np.ndarray, dtype: str, nodata: float) -> np.ndarray:
    """A map's values from the cosines: 100 x degrees (``IA``, ``LIA``), sin, cos or tan."""
    c = np.clip(cosines, -1.0, 1.0)
    if kind in ("IA", "LIA"):
        values = 100.0 * np.degrees(np.arccos(c))
        if np.issubdtype(np.dtype(dtype), np.integer):
            values = np.rint(values)
    elif kind.startswith("cos"):
        values = c
    else:
        sines = np.sqrt(1.0 - c * c)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = sines if kind.startswith("sin") else sines / c
    return np.where(np.isnan(cosines), nodata, values)


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
                            nodata=OUTSIDE, creation_options={"COMPRESS": "DEFLATE"}, tags=tags,
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

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
tile gives them (the one covering most of it), with the precise orbit of ``eof_dir`` when one
covers it (and 60 s around), else the state vectors annotated in its slices. Pixels whose
zero-Doppler time falls outside the orbit's state vectors are no-data: with annotated vectors
(which old products give for their own time span only) the maps may not cover the whole tile.
Existing maps are never made again.

NORMLIM (S1Tiling's ``ApplyLIACalibration``): sigma0_NORMLIM = beta0 x sin(LIA), no-data (0)
where beta0 or sin(LIA) is no-data, at least ``lower_signal_value`` elsewhere.
"""
from __future__ import annotations

import logging
import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from .geometry.ellipsoid import ellipsoid_normal, geodetic_to_ecef
from .geometry.geocoding import predict_time, zero_doppler
from .geometry.geoid import Geoid, find_geoid
from .geometry.orbit import Orbit, find_orbit_file, read_eof, select_state_vectors
from .naming import as_utc, product_path
from .s1.annotation import StateVectors
from .writing import AtomicRasterWriter, creation_options_for, production_tags

logger = logging.getLogger(__name__)

#: ``[Processing] ia_maps_to_produce`` value -> IA map kind (``{IA_kind}`` of its name)
IA_KINDS = {"deg": "IA", "cos": "cos_IA", "sin": "sin_IA", "tan": "tan_IA"}
#: map family -> naming kind and the field holding the map kind
_NAMING = {"LIA": ("lia_product", "LIA_kind"), "IA": ("ia_product", "IA_kind"),
           "GAMMA_AREA": ("gamma_area", "GAMMA_AREA_kind")}
#: map kind -> S1Tiling's ``creation_options`` key and the default it falls back to
_CREATION_KEYS = {"LIA": ("lia_deg", "lia_deg"), "sin_LIA": ("lia_sin", "lia_sin"), "IA": ("ia_deg", "lia_deg"),
                  "cos_IA": ("ia_cos", "ia"), "sin_IA": ("ia_sin", "ia"), "tan_IA": ("ia_tan", "ia")}
_DESCRIPTIONS = {"LIA": "100 * degrees(LIA) on S2 grid", "sin_LIA": "sin(LIA) on S2 grid",
                 "IA": "100 * degrees(IA) on S2 grid", "cos_IA": "cos(IA) on S2 grid",
                 "sin_IA": "sin(IA) on S2 grid", "tan_IA": "tan(IA) on S2 grid"}
#: ``dem_warp_resampling_method`` -> DEM sampling of :meth:`DemCatalog.heights_on_grid`
_DEM_RESAMPLING = {"near": "nearest", "bilinear": "bilinear", "cubic": "cubic"}
BLOCK_ROWS = 512
BLOCK_COLS = 2048
_LONLAT_STEP = 8  # exact lon/lat every 8 pixels, bilinear in between (error far below 1 mm)
_CHUNK = 2048  # points per parallel task of the zero-Doppler kernel
ORBIT_MARGIN = 60.0  # seconds of precise orbit kept around a pass


# ---------------------------------------------------------------------------- planning

@dataclass(frozen=True)
class AngleMapJob:
    """The missing maps of one family (``LIA``, ``IA`` or ``GAMMA_AREA``, see
    :mod:`s1tiling.terrain_flattening`) of one relative orbit over one tile."""

    family: str
    tile: str
    orbit: int
    products: tuple  # paths of the slices of the pass whose orbit gives the geometry
    outputs: tuple  # ((map kind, output path), ...)

    @property
    def key(self) -> str:
        return f"{self.family.lower()}/{Path(self.outputs[0][1]).stem}"


def map_kinds(settings, family: str) -> tuple[str, ...]:
    """Kinds of the maps a run makes: ``sin_LIA`` (+ ``LIA`` with ``produce_lia_map``), the
    IA maps of ``ia_maps_to_produce`` (``IA`` when it is empty), or ``GAMMA_AREA``."""
    proc = settings.processing
    if family == "GAMMA_AREA":
        return ("GAMMA_AREA",)
    if family == "LIA":
        return ("sin_LIA", "LIA") if proc.produce_lia_map else ("sin_LIA",)
    return tuple(IA_KINDS[k] for k in proc.ia_maps_to_produce) or ("IA",)


def map_path(settings, kind: str, group) -> Path:
    """Path of the ``kind`` map (``LIA``, ``sin_LIA``, ``IA``, ``cos_IA``..., ``GAMMA_AREA``) of a
    pass's relative orbit and tile."""
    from .pipeline import output_dirs

    proc = settings.processing
    naming_kind, field = _NAMING[kind if kind == "GAMMA_AREA" else "LIA" if kind.endswith("LIA") else "IA"]
    fields = {field: kind, "tile_name": group.tile, "orbit": f"{group.relative_orbit:03d}",
              "flying_unit_code": group.platform.lower(), "orbit_direction": group.pass_direction}
    return product_path(naming_kind, fields, proc.fname_fmt, proc.dname_fmt, output_dirs(settings))


def plan_maps(settings, groups, family: str) -> tuple[list[AngleMapJob], list[str]]:
    """Jobs making the missing ``family`` maps of the passes ``groups`` need (one set per tile and
    relative orbit with the default names), and the maps already present."""
    best = {}  # map paths -> the pass covering most of the tile
    for g in groups:
        paths = tuple((kind, map_path(settings, kind, g)) for kind in map_kinds(settings, family))
        if paths not in best or g.coverage > best[paths].coverage:
            best[paths] = g
    jobs, present = [], []
    for paths, g in best.items():
        present += [str(path) for _, path in paths if path.exists()]
        missing = tuple((kind, str(path)) for kind, path in paths if not path.exists())
        if missing:
            jobs.append(AngleMapJob(family, g.tile, g.relative_orbit, tuple(str(p.path) for p in g.products), missing))
    return jobs, present


# ---------------------------------------------------------------------------- geometry

class ZeroDopplerOrbit:
    """Incidence angles from an orbit: satellite position at each ground point's zero-Doppler time.

    ``first_guess``: a time (seconds from the orbit's reference time) near the points' ones.
    """

    def __init__(self, orbit: Orbit, first_guess: float = 0.0):
        self.arrays = orbit.arrays
        self.source = orbit.source
        self.time_range = (float(orbit.node_times[0]), float(orbit.node_times[-1]))
        self.first_guess = float(first_guess)

    @classmethod
    def of_pass(cls, products, eof_dir=None) -> ZeroDopplerOrbit:
        """The orbit of a pass (opened slices in time order): the precise orbit file of ``eof_dir``
        covering it, else the state vectors annotated in its slices put together."""
        start, stop = as_utc(products[0].start_time), as_utc(products[-1].stop_time)
        found = find_orbit_file(eof_dir, products[0].platform, start, stop) if eof_dir and Path(eof_dir).is_dir() else None
        if found is not None:
            vectors = select_state_vectors(read_eof(found), start, stop, ORBIT_MARGIN)
            logger.info("%s: using orbit file %s", products[0].name, Path(found).name)
        else:
            annotated = [p.annotation(p.polarisations[0]).orbit for p in products]
            times, first = np.unique(np.concatenate([v.times for v in annotated]), return_index=True)
            vectors = StateVectors(times, np.concatenate([v.positions for v in annotated])[first],
                                   np.concatenate([v.velocities for v in annotated])[first], "annotation")
        orbit = Orbit(vectors, reference_time=start)
        return cls(orbit, 0.5 * orbit.seconds(np.datetime64(stop, "ns")))

    def cosines(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Cosines of the incidence angles at ECEF ``points`` (``shape + (3,)``) of surfaces of
        ECEF ``normals`` (same shape, any length), normals projected onto the range plane; NaN
        where the zero-Doppler time is not within the orbit."""
        shape = points.shape[:-1]
        p = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        n = np.ascontiguousarray(normals, dtype=np.float64).reshape(-1, 3)
        out = np.empty(p.shape[0])
        _range_plane_cosines(p, n, self.first_guess, self.arrays, *self.time_range, out)
        return out.reshape(shape)


@numba.njit(parallel=True, cache=True)
def _range_plane_cosines(points, normals, t_start, orbit, t_min, t_max, out):
    node_times, origins, scales, coefs = orbit
    count = points.shape[0]
    for chunk in numba.prange((count + _CHUNK - 1) // _CHUNK):
        before_last = last = np.nan
        for i in range(chunk * _CHUNK, min(count, (chunk + 1) * _CHUNK)):
            px, py, pz = points[i, 0], points[i, 1], points[i, 2]
            guess = predict_time(t_start, before_last, last)
            t, sx, sy, sz = zero_doppler(px, py, pz, guess, node_times, origins, scales, coefs)
            before_last, last = last, t
            if not (t_min <= t <= t_max):  # also NaN
                out[i] = np.nan
                continue
            lx, ly, lz = sx - px, sy - py, sz - pz
            # m = T x S is normal to the range plane; remove n's component along it.
            mx, my, mz = py * sz - pz * sy, pz * sx - px * sz, px * sy - py * sx
            nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
            d = (nx * mx + ny * my + nz * mz) / (mx * mx + my * my + mz * mz)
            qx, qy, qz = nx - d * mx, ny - d * my, nz - d * mz
            out[i] = (qx * lx + qy * ly + qz * lz) / math.sqrt((qx * qx + qy * qy + qz * qz) * (lx * lx + ly * ly + lz * lz))


def pixel_lonlat(crs, transform, shape) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (degrees) of the pixel centres of a grid (exact every few pixels,
    bilinear in between)."""
    rows, cols = shape
    sub_rows = np.unique(np.append(np.arange(0, rows, _LONLAT_STEP), rows - 1))
    sub_cols = np.unique(np.append(np.arange(0, cols, _LONLAT_STEP), cols - 1))
    x, y = transform @ np.meshgrid(sub_cols + 0.5, sub_rows + 0.5)
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


def ia_cosines(orbit: ZeroDopplerOrbit, crs, transform, shape) -> np.ndarray:
    """cos(IA) at the pixel centres of a north-up grid, on the ellipsoid."""
    lon, lat = pixel_lonlat(crs, transform, shape)
    points = np.stack(geodetic_to_ecef(lat, lon, 0.0), axis=-1)
    return orbit.cosines(points, ellipsoid_normal(lat, lon))


def lia_cosines(orbit: ZeroDopplerOrbit, crs, transform, heights) -> np.ndarray:
    """cos(LIA) of a north-up grid whose ellipsoidal ``heights`` include a one-pixel border
    (``transform`` is that of the bordered grid); the result is the interior, 2 rows and 2
    columns smaller."""
    lon, lat = pixel_lonlat(crs, transform, heights.shape)
    points = np.stack(geodetic_to_ecef(lat, lon, heights), axis=-1)
    east = points[1:-1, 2:] - points[1:-1, :-2]
    north = points[:-2, 1:-1] - points[2:, 1:-1]
    return orbit.cosines(points[1:-1, 1:-1], np.cross(east, north))


# ---------------------------------------------------------------------------- production

def pass_orbit(job: AngleMapJob, settings):
    """The slices of the pass a map job uses (time order) and its zero-Doppler orbit."""
    from .s1.product import open_product

    products = sorted((open_product(p) for p in job.products), key=lambda p: p.start_time)
    return products, ZeroDopplerOrbit.of_pass(products, settings.paths.eof_dir)


def produce_maps(job: AngleMapJob, settings) -> list[str]:
    """Compute and write the maps of ``job``; return the paths written."""
    from .production import dem_catalog, output_grid

    proc = settings.processing
    tile, transform, rows, cols = output_grid(settings, job.tile)
    products, orbit = pass_orbit(job, settings)
    common = map_tags(job, products, orbit, settings)
    if job.family == "LIA":
        catalog = dem_catalog(settings)
        geoid = Geoid(find_geoid(settings.paths.geoid_file))
        resampling = dem_resampling(proc.dem_warp_resampling_method)
        common["DEM_INFO"] = settings.paths.dem_info
    with ExitStack() as stack:
        writers = {}
        for kind, path in job.outputs:
            dtype, options = _creation_options(kind, proc.creation_options)
            nodata = _nodata(dtype, proc.nodata.get(job.family))
            tags = {**common, "DATA_TYPE": _DESCRIPTIONS[kind].removesuffix(" on S2 grid"),
                    **production_tags(_DESCRIPTIONS[kind])}
            writers[kind] = (stack.enter_context(AtomicRasterWriter(
                path, crs=tile.crs, transform=transform, width=cols, height=rows, dtype=dtype, nodata=nodata,
                creation_options=options, tags=tags)), nodata)
        for r0 in range(0, rows, BLOCK_ROWS):
            for c0 in range(0, cols, BLOCK_COLS):
                h, w = min(BLOCK_ROWS, rows - r0), min(BLOCK_COLS, cols - c0)
                if job.family == "LIA":
                    bordered = transform @ Affine.translation(c0 - 1, r0 - 1)
                    heights = catalog.heights_on_grid(tile.crs, bordered, (h + 2, w + 2), resampling, geoid=geoid)
                    cosines = lia_cosines(orbit, tile.crs, bordered, heights)
                else:
                    cosines = ia_cosines(orbit, tile.crs, transform @ Affine.translation(c0, r0), (h, w))
                for kind, (writer, nodata) in writers.items():
                    writer.write(_encode(kind, cosines, writer.dtype, nodata), Window(c0, r0, w, h))
    written = [path for _, path in job.outputs]
    logger.info("%s orbit %03d: wrote %s", job.tile, job.orbit, ", ".join(Path(p).name for p in written))
    return written


def map_tags(job: AngleMapJob, products, orbit: ZeroDopplerOrbit, settings) -> dict[str, str]:
    """Metadata shared by the maps of ``job`` (its opened slices in time order, their orbit)."""
    return {**settings.metadata, "FLYING_UNIT_CODE": products[0].flying_unit_code, "IMAGE_TYPE": job.family,
            "INPUT_S1_IMAGES": ", ".join(p.name for p in products), "ORBIT_DIRECTION": products[0].pass_direction,
            "ORBIT_SOURCE": orbit.source, "ORTHORECTIFIED": "true",
            "RELATIVE_ORBIT_NUMBER": f"{job.orbit:03d}", "S2_TILE_CORRESPONDING_CODE": job.tile,
            "SPATIAL_RESOLUTION": str(float(settings.processing.output_spatial_resolution))}


def dem_resampling(method: str) -> str:
    if method not in _DEM_RESAMPLING:
        logger.warning("dem_warp_resampling_method = %s: the native engine samples the DEM with 'cubic'", method)
    return _DEM_RESAMPLING.get(method, "cubic")


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


def normlim(beta: np.ndarray, sin_lia: np.ndarray, lower_signal_value: float) -> np.ndarray:
    """sigma0 NORMLIM = beta0 x sin(LIA): 0 where beta0 is 0 or sin(LIA) is NaN (no-data), at
    least ``lower_signal_value`` elsewhere."""
    valid = (beta != 0) & np.isfinite(sin_lia)
    return np.where(valid, np.maximum(beta * np.where(valid, sin_lia, 0), lower_signal_value), 0).astype(np.float32)

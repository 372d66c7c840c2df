"""Finding the Sentinel-1 products of a request in ``s1_images`` and grouping them per S2 tile.

A *pass* is the set of slices of one datatake (same platform, relative orbit and datatake id):
they are merged into one output per tile and polarisation. ``tile_to_product_overlap_ratio``
applies to the union of the slices of a pass over the tile.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from . import grid
from .errors import ProductError
from .s1.names import ProductName, parse_product_name, relative_orbit
from .s1.product import Product, open_product

logger = logging.getLogger(__name__)


class ProductFilters(Protocol):
    """What the filters read: the ``[DataSource]`` settings or a :class:`~s1tiling.download.DownloadRequest`."""

    @property
    def platform_list(self) -> tuple[str, ...]: ...
    @property
    def first_date(self) -> date: ...
    @property
    def last_date(self) -> date: ...
    @property
    def polarisation(self) -> str: ...
    @property
    def orbit_direction(self) -> str | None: ...
    @property
    def relative_orbit_list(self) -> tuple[int, ...]: ...
    @property
    def tile_to_product_overlap_ratio(self) -> float: ...


class ProductInfo(Protocol):
    """What the filters and the coverage read of a product: a :class:`~s1tiling.s1.product.Product`
    or a product found by a search (:class:`~s1tiling.download.FoundProduct`)."""

    @property
    def pass_direction(self) -> str | None: ...
    @property
    def relative_orbit(self) -> int | None: ...
    @property
    def footprint(self) -> BaseGeometry: ...

def find_local_products(s1_images: str | Path) -> list[Path]:
    """Every GRD product under ``s1_images`` (``X.SAFE`` folders and ``X.zip``, at most two levels deep,
    as EODAG may extract into ``X/X.SAFE``). An unzipped copy wins over a zip of the same product."""
    root = Path(s1_images)
    found: dict[str, Path] = {}
    candidates = [*root.glob("*"), *root.glob("*/*")]
    for path in sorted(candidates, key=lambda p: (p.suffix != ".SAFE", str(p))):
        if path.name.startswith("."):
            continue
        if not ((path.suffix == ".SAFE" and path.is_dir()) or (path.suffix == ".zip" and path.is_file())):
            continue
        parsed = parse_product_name(path)
        if parsed is None or not parsed.is_grd:
            continue
        found.setdefault(parsed.name, path)
    return [found[k] for k in sorted(found)]


def _wanted_polarisations(spec: str) -> set:
    return set(spec.upper().split("-"))


def name_matches(parsed: ProductName, request: ProductFilters) -> bool:
    """Filters that the name alone decides: platform, dates, polarisations."""
    if request.platform_list and parsed.platform not in request.platform_list:
        return False
    if not (request.first_date <= parsed.day <= request.last_date):
        return False
    return bool(_wanted_polarisations(request.polarisation) & set(parsed.polarisations))


def product_matches(product: ProductInfo, request: ProductFilters) -> bool:
    """Filters that need the manifest: orbit direction and relative orbit."""
    if request.orbit_direction and product.pass_direction != request.orbit_direction:
        return False
    return not (request.relative_orbit_list and product.relative_orbit not in request.relative_orbit_list)


@dataclass(frozen=True)
class TileGroup:
    """The slices of one pass over one S2 tile: what makes one output per polarisation."""

    tile: str
    platform: str
    relative_orbit: int
    pass_direction: str
    datatake: str
    products: tuple[Product, ...]  # opened products, sorted by start time
    polarisations: tuple[str, ...]  # requested polarisations present in every slice
    coverage: float  # percent of the tile covered by the union of the slices

    @property
    def day(self) -> date:
        return self.products[0].start_time.date()

    @property
    def key(self) -> str:
        return f"{self.tile}/{self.platform}/{self.relative_orbit:03d}/{self.datatake}"


def _lonlat_footprint(product) -> MultiPolygon | Polygon:
    return getattr(product, "footprint_split", None) or product.footprint


def footprint_in_tile_crs(product: ProductInfo, tile: grid.S2Tile) -> Polygon | MultiPolygon:
    """The product footprint projected into the tile's UTM zone."""
    to_utm = Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True)
    return shapely.transform(_lonlat_footprint(product), to_utm.transform, interleaved=False)


def coverage_percent(products: Iterable[ProductInfo], tile: grid.S2Tile) -> float:
    """Percentage of the tile area covered by the union of the products' footprints."""
    box = tile.footprint_utm
    union = unary_union([footprint_in_tile_crs(p, tile) for p in products])
    return 100.0 * union.intersection(box).area / box.area


def group_products(products: Sequence[Product], tiles: Iterable[str], request: ProductFilters,
                   tile_grid: grid.TileGrid = grid.MGRS_GRID) -> list[TileGroup]:
    """Group opened products per (tile of ``tile_grid``, pass); keep groups covering at least the overlap ratio."""
    wanted = _wanted_polarisations(request.polarisation)
    passes: dict[tuple, list] = {}
    for product in products:
        passes.setdefault((product.platform, product.relative_orbit, product.datatake_id), []).append(product)
    groups = []
    for tile_name in tiles:
        tile = tile_grid.tile(tile_name)
        for (platform, orbit, datatake), members in sorted(passes.items()):
            touching = [p for p in members if _touches(p, tile)]
            if not touching:
                continue
            touching.sort(key=lambda p: p.start_time)
            pols = tuple(sorted(wanted.intersection(*[set(p.polarisations) for p in touching]), reverse=True))
            cover = coverage_percent(touching, tile)
            if cover <= 0 or cover < request.tile_to_product_overlap_ratio or not pols:
                logger.info("tile %s: pass %s/%03d/%s covers %.1f%% of it, skipped (needs %s%%)",
                            tile_name, platform, orbit, datatake, cover, request.tile_to_product_overlap_ratio)
                continue
            groups.append(TileGroup(tile_name, platform, orbit, touching[0].pass_direction, datatake,
                                    tuple(touching), pols, cover))
    return groups


def _touches(product, tile) -> bool:
    return footprint_in_tile_crs(product, tile).intersects(tile.footprint_utm)


@dataclass(frozen=True)
class UnreadableProduct:
    """A local product the request selects by its name but that cannot be read (corrupt or truncated
    zip, no ``manifest.safe``, a name that does not match its manifest...): its pass is not produced."""

    name: ProductName
    path: Path
    problem: str

    @property
    def pass_key(self) -> tuple[str, str]:
        """(platform, datatake) of the pass it belongs to, as its name says."""
        return self.name.platform, self.name.datatake


def open_local_products(s1_images, request) -> tuple[list, list[UnreadableProduct]]:
    """Open every local product that passes the request filters; also return those selected by their
    name (and, when the name tells it, relative orbit) that cannot be read."""
    selected, unreadable = [], []
    for path in find_local_products(s1_images):
        parsed = parse_product_name(path)
        if parsed is None or not name_matches(parsed, request):
            continue
        try:
            product = open_product(path)
        except ProductError as err:
            orbit = relative_orbit(parsed.platform, parsed.absolute_orbit)
            if not (request.relative_orbit_list and orbit is not None and orbit not in request.relative_orbit_list):
                unreadable.append(UnreadableProduct(parsed, path, str(err)))
            continue
        if product_matches(product, request):
            selected.append(product)
    return selected, unreadable


def open_matching_products(s1_images, request) -> list:
    """Open every local product that passes the request filters; unreadable ones are logged and skipped."""
    selected, unreadable = open_local_products(s1_images, request)
    for product in unreadable:
        logger.error("skipping unreadable product: %s", product.problem)
    return selected


def without_unreadable_passes(groups: list[TileGroup], unreadable: list[UnreadableProduct]) -> list[TileGroup]:
    """The passes none of whose slices is unreadable; each pass left out is logged as an error, naming
    the product and what is wrong with it (a pass is never made from some of its slices only)."""
    lost: dict[tuple[str, str], list[UnreadableProduct]] = {}
    for product in unreadable:
        lost.setdefault(product.pass_key, []).append(product)
    kept = []
    for g in groups:
        bad = lost.get((g.platform, g.datatake))
        if bad:
            logger.error("tile %s: pass %s not produced, it has unreadable slice(s): %s", g.tile, g.key,
                         "; ".join(p.problem for p in bad))
        else:
            kept.append(g)
    return kept

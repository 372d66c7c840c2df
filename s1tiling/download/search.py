"""Searching the Sentinel-1 GRD products of a request with EODAG, tile by tile.

Providers name and filter their metadata differently, so the request filters are sent to
the provider where EODAG has a common name for them (orbit direction, one relative orbit
per search, a dual polarisation) and always applied again here, from the product name
(platform, date, polarisations) and from EODAG's normalised properties (pass direction,
relative orbit). A product is kept for a tile when it covers at least
``tile_to_product_overlap_ratio`` percent of it, alone or with the other slices of its
pass (same platform, relative orbit and datatake).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from .. import grid
from ..discovery import coverage_percent, name_matches, product_matches
from ..errors import DownloadError
from ..s1.names import parse_product_name, relative_orbit, strip_suffix
from .gateway import COLLECTION, is_transient, open_gateway, redact
from .request import DownloadRequest
from .safe import local_product

if TYPE_CHECKING:
    from eodag import EODataAccessGateway, EOProduct

logger = logging.getLogger(__name__)

ONLINE = "succeeded"  # EODAG's order:status of a product that can be downloaded now

_PASS = {"ascending": "ASC", "descending": "DES"}


@dataclass
class FoundProduct:
    """One Sentinel-1 product found, and the tiles it covers (tile -> percent of the tile)."""

    name: str
    platform: str
    polarisations: tuple[str, ...]
    start: dt.datetime
    datatake: str
    relative_orbit: int | None
    pass_direction: str | None
    footprint: BaseGeometry  # lon/lat, split at the antimeridian
    order_status: str | None
    provider: str | None = None
    size: int | None = None
    tiles: dict[str, float] = field(default_factory=dict)
    eoproduct: Any = field(default=None, repr=False, compare=False)

    @property
    def online(self) -> bool:
        return self.order_status in (None, ONLINE)

    @property
    def pass_key(self) -> tuple:
        return self.platform, self.relative_orbit, self.datatake


def split_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """A lon/lat polygon drawn across the antimeridian (spanning > 180 deg) split into two parts."""
    if not isinstance(geometry, Polygon):
        return geometry
    west, _, east, _ = geometry.bounds
    if east - west <= 180:
        return geometry
    shifted = Polygon([(x + 360 if x < 0 else x, y) for x, y in geometry.exterior.coords])
    east_part = shifted.intersection(box(0, -90, 180, 90))
    west_part = translate(shifted.intersection(box(180, -90, 360, 90)), xoff=-360)
    parts = [p for g in (east_part, west_part) for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon)]
    return MultiPolygon(parts)


def product_name(properties: dict) -> str:
    """The ESA product name of an EODAG product (its title or id, without .SAFE/.zip)."""
    return strip_suffix(str(properties.get("title") or properties.get("id") or ""))


def _relative_orbit(properties: dict, name: str, platform: str) -> int | None:
    value = properties.get("sat:relative_orbit")
    try:
        return int(value)  # type: ignore[arg-type]  # None raises TypeError, caught here
    except (TypeError, ValueError):
        pass
    return relative_orbit(platform, int(name.split("_")[6]))


def from_eodag(product: EOProduct) -> FoundProduct | None:
    """A FoundProduct from an EODAG ``EOProduct``; None when its name is not a Sentinel-1 GRD name."""
    properties = product.properties
    name = product_name(properties)
    parsed = parse_product_name(name)
    if parsed is None or not parsed.product_type.startswith("GRD"):
        logger.debug("ignoring %r: not a Sentinel-1 GRD product name", name)
        return None
    size = properties.get("file:size")
    return FoundProduct(
        name=name,
        platform=parsed.platform,
        polarisations=tuple(parsed.polarisations),
        start=dt.datetime.strptime(parsed.start, "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc),
        datatake=parsed.datatake,
        relative_orbit=_relative_orbit(properties, name, parsed.platform),
        pass_direction=_PASS.get(str(properties.get("sat:orbit_state", "")).lower()),
        footprint=split_antimeridian(product.geometry),
        order_status=properties.get("order:status"),
        provider=product.provider,
        size=int(size) if isinstance(size, (int, float, str)) and str(size).isdigit() else None,
        eoproduct=product,
    )


def _search_parameters(request: DownloadRequest) -> list[dict]:
    """EODAG search keyword sets: one per requested relative orbit (or one for all)."""
    common: dict[str, Any] = {
        "collection": COLLECTION,
        "start": request.first_date.isoformat(),
        "end": (request.last_date + dt.timedelta(days=1)).isoformat(),
        "validate": False,
    }
    if request.orbit_direction:
        common["sat:orbit_state"] = {"ASC": "ascending", "DES": "descending"}[request.orbit_direction]
    polarisations = request.polarisation.upper().split("-")
    if len(polarisations) == 2:
        common["sar:polarizations"] = polarisations
    orbits = request.relative_orbit_list or (None,)
    return [{**common, **({"sat:relative_orbit": orbit} if orbit else {})} for orbit in orbits]


def _search_area(dag, area: BaseGeometry, request: DownloadRequest, label: str):
    """The products over ``area``, ``searched_items_per_page`` per page, a search that timed out
    tried again up to ``nb_max_search_retries`` times (S1Tiling's options of the same names)."""
    for parameters in _search_parameters(request):
        for attempt in range(request.nb_max_search_retries + 1):
            results = dag.search_all(geom=area, limit=request.searched_items_per_page, **parameters)
            errors = getattr(results, "errors", None)
            if results or not errors:
                break
            provider, error = errors[-1]
            if attempt < request.nb_max_search_retries and is_transient(error):
                logger.warning("searching %s over tile %s failed on %s (%s); retry %d/%d", COLLECTION, label,
                               provider, type(error).__name__, attempt + 1, request.nb_max_search_retries)
                time.sleep(min(2.0 ** attempt, 30.0))
                continue
            raise DownloadError(f"searching {COLLECTION} over tile {label} failed on provider "
                                f"{provider}: {type(error).__name__}: {redact(str(error))[:300]}")
        yield from results


def _wanted(product: FoundProduct, request: DownloadRequest) -> bool:
    parsed = parse_product_name(product.name)
    if not name_matches(parsed, request):  # type: ignore[arg-type]  # found products have ESA names (from_eodag)
        return False
    if request.orbit_direction and product.pass_direction is None:
        logger.warning("%s: the provider gives no orbit direction; product ignored", product.name)
        return False
    return product_matches(product, request)


def _covered_tiles(products: list[FoundProduct], request: DownloadRequest, tile_grid: grid.TileGrid) -> list[str]:
    if not request.all_tiles:
        return list(request.tiles)
    names: set[str] = set()
    for product in products:
        names.update(getattr(t, "name", t) for t in tile_grid.tiles_intersecting(product.footprint))
    return sorted(names)


def _assign_tiles(products: list[FoundProduct], tile_names: list[str], ratio: float, tile_grid: grid.TileGrid) -> None:
    for tile_name in tile_names:
        tile = tile_grid.tile(tile_name)
        passes: dict[tuple, list[FoundProduct]] = {}
        for product in products:
            if product.footprint.intersects(tile.footprint):
                passes.setdefault(product.pass_key, []).append(product)
        for members in passes.values():
            own = {p.name: coverage_percent([p], tile) for p in members}
            together = coverage_percent(members, tile) if len(members) > 1 else max(own.values())
            for product in members:
                if own[product.name] > 0 and max(own[product.name], together) >= ratio:
                    product.tiles[tile_name] = own[product.name]


def search_products(request: DownloadRequest, dag: EODataAccessGateway | None = None) -> list[FoundProduct]:
    """Products of the request, each once, sorted by date, with the tiles they cover."""
    dag = dag or open_gateway(request.eodag_config)
    found: dict[str, FoundProduct] = {}
    tile_grid = grid.for_tile_file(request.tiles_shapefile)
    for tile_name in request.tiles:
        area = tile_grid.tile(tile_name).footprint
        for eoproduct in _search_area(dag, area, request, tile_name):
            product = from_eodag(eoproduct)
            if product is None or product.name in found:
                continue
            if _wanted(product, request):
                found[product.name] = product
            else:
                logger.debug("%s does not match the request filters", product.name)
    products = sorted(found.values(), key=lambda p: (p.start, p.name))
    _assign_tiles(products, _covered_tiles(products, request, tile_grid), request.tile_to_product_overlap_ratio,
                  tile_grid)
    kept = [p for p in products if p.tiles]
    logger.info("%d Sentinel-1 product(s) found for tiles %s between %s and %s (%d below the overlap ratio)",
                len(kept), ", ".join(request.tiles), request.first_date, request.last_date,
                len(products) - len(kept))
    return kept


def describe_dry_run(found: list[FoundProduct], s1_images: Path | None = None) -> str:
    """What a download would do: one line per product, with its state and the tiles it covers."""
    present = {p.name for p in found if s1_images is not None and local_product(Path(s1_images), p.name)}
    to_get = [p for p in found if p.name not in present]
    offline = [p for p in to_get if not p.online]
    lines = [f"Sentinel-1 products: {len(found)} found, {len(to_get)} to download"
             + (f" ({len(offline)} offline, to be staged first)" if offline else "")
             + (f", {len(present)} already in {s1_images}" if present else "")]
    for product in found:
        state = "present" if product.name in present else ("online" if product.online else "offline")
        orbit = f"{product.relative_orbit:03d}" if product.relative_orbit else "???"
        tiles = ", ".join(f"{tile} {cover:.1f}%" for tile, cover in sorted(product.tiles.items()))
        size = f" {product.size / 2**20:.0f} MiB" if product.size else ""
        lines.append(f"  {product.name}  {state:<7} {product.pass_direction or '???'} {orbit}{size}  tiles: {tiles}")
    return "\n".join(lines)

"""A STAC catalog of the products of an output folder: ``{output}/catalog.json``.

Every run ends by updating it (:func:`update_catalog`), and ``s1tiling catalog OUTPUT`` rebuilds
it from the files alone, for outputs made by S1Tiling too: products are recognised by their
names (:func:`s1tiling.naming.parse_output_name`, the default templates) and described from
their GeoTIFF tags and headers. Layout (every link relative, so the folder can be moved or
served as it is)::

    {output}/catalog.json                              root catalog, one child per tile
    {output}/stac/{tile}/collection.json               one collection per S2 tile
    {output}/stac/{tile}/items/{item}.json             one item per file group

An item is either one acquisition of a tile, ``{unit}_{tile}_{ASC|DES}_{orbit}_{stamp}``
(``_NormLim`` / ``_GammaNaughtRTC`` appended for those calibrations), whose assets are the
polarisation images (``vv``, ``vh``...), their border masks (``vv_mask``), speckle-filtered
images (``vv_filtered``) and quicklooks (``vv_quicklook``); or the angle or area maps of a tile
and relative orbit, ``LIA_{tile}_{orbit}`` (assets ``LIA``, ``sin_LIA``), ``IA_{tile}_{orbit}``,
``GAMMA_AREA_{tile}_{orbit}``. Items carry the ``proj``, ``raster``, ``sat``, ``sar`` and
``processing`` extensions, and ``s1tiling:`` fields (calibration, engine, input products...).
odc-stac loads them as they are; stackstac (which reads projection v1's ``proj:epsg``) with
``epsg=`` given and absolute hrefs (``pystac.Catalog.make_all_asset_hrefs_absolute``).

Concurrent runs: item files are written atomically (temporary + rename) and only when one of
their files is newer than the item; the collections and the root catalog are rebuilt from the
item files, under an exclusive lock (``stac/.lock``), after the items are written, so the last
rebuild sees every item written before it.

Needs :mod:`pystac` (a dependency of eodag), imported on first use.
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import rasterio
from rasterio.warp import transform_geom

from . import __version__
from .naming import parse_output_name
from .writing import atomic_output

logger = logging.getLogger(__name__)

CATALOG_FILE = "catalog.json"
STAC_FOLDER = "stac"
CATALOG_ID = "s1tiling"
#: folders of an output tree that hold no product
_SKIPPED_FOLDERS = {STAC_FOLDER, "zarr"}

#: tile product kind -> suffix of its item id (and of its names)
_CALIBRATION_SUFFIX = {"concatenation": "", "s2_lia_corrected": "_NormLim",
                       "s2_gamma_area_corrected": "_GammaNaughtRTC"}
#: map kind -> (family, asset roles, unit, scale)
_MAPS = {
    "LIA": ("LIA", ["data", "local-incidence-angle"], "deg", 0.01),
    "sin_LIA": ("LIA", ["data", "local-incidence-angle"], "1", None),
    "IA": ("IA", ["data", "incidence-angle"], "deg", 0.01),
    "cos_IA": ("IA", ["data", "incidence-angle"], "1", None),
    "sin_IA": ("IA", ["data", "incidence-angle"], "1", None),
    "tan_IA": ("IA", ["data", "incidence-angle"], "1", None),
    "GAMMA_AREA": ("GAMMA_AREA", ["data", "gamma-area"], "1", None),
}
#: product kinds of the maps (:data:`s1tiling.naming.KIND_FOLDER`)
_MAP_KINDS = ("lia_product", "ia_product", "gamma_area")
#: kind of a file of an acquisition item -> (asset key suffix, roles, title)
_TILE_ASSETS = {
    "image": ("", ["data", "backscatter"], "{pol} backscatter"),
    "mask": ("_mask", ["data-mask"], "{pol} border mask (1: data, 0: no data)"),
    "filtered": ("_filtered", ["data", "backscatter", "filtered"], "{pol} speckle-filtered backscatter"),
    "quicklook": ("_quicklook", ["overview", "visual"], "{pol} quicklook"),
}
BACKSCATTER_UNIT = "m2/m2"  # linear sigma0/beta0/gamma0: an area ratio
GEOTIFF = "image/tiff; application=geotiff"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
}
C_BAND_FREQUENCY_GHZ = 5.405


@dataclass
class FileGroup:
    """The files of one item: asset key -> (kind, path), and what names tell."""

    item_id: str
    tile: str
    family: str  # "acquisition", "LIA", "IA" or "GAMMA_AREA"
    fields: dict[str, Any]
    files: dict[str, tuple[str, Path]] = field(default_factory=dict)

    @property
    def newest(self) -> float:
        return max(_mtime(p) for _, p in self.files.values())


@dataclass(frozen=True)
class CatalogReport:
    """What :func:`update_catalog` did."""

    catalog: Path
    items: int
    written: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[str, ...]  # files that could not be described (with why, logged)

    def summary(self) -> str:
        return (f"STAC catalog {self.catalog}: {self.items} item(s), {len(self.written)} written, "
                f"{len(self.removed)} removed" + (f", {len(self.skipped)} file(s) skipped" if self.skipped else ""))


# ------------------------------------------------------------------------------ scanning


def scan(roots: Iterable[str | os.PathLike]) -> dict[str, FileGroup]:
    """The products under ``roots`` (walked recursively, ``stac``/``zarr`` folders and hidden
    temporaries left out), grouped into items; keyed by ``{tile}/{item id}``."""
    groups: dict[str, FileGroup] = {}
    seen: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_FOLDERS and not d.startswith("."))
            for name in sorted(names):
                path = Path(folder, name).resolve()
                parsed = parse_output_name(name)
                if parsed is None or path in seen:
                    continue
                seen.add(path)
                kind, fields = parsed
                if kind in _MAP_KINDS:
                    key = kind = fields.get("LIA_kind") or fields.get("IA_kind") or "GAMMA_AREA"
                    family = _MAPS[kind][0]
                    item_id = f"{family}_{fields['tile_name']}_{fields['orbit']}"
                else:
                    family = "acquisition"
                    item_id = "_".join(fields[k] for k in ("flying_unit_code", "tile_name", "orbit_direction",
                                                           "orbit", "acquisition_stamp"))
                    item_id += _CALIBRATION_SUFFIX[fields["tile_kind"]]
                    file_kind = kind if kind in _TILE_ASSETS else "image"
                    key = fields["polarisation"] + _TILE_ASSETS[file_kind][0]
                    kind = file_kind
                group = groups.setdefault(f"{fields['tile_name']}/{item_id}",
                                          FileGroup(item_id, fields["tile_name"], family, dict(fields)))
                group.files[key] = (kind, path)
    return groups


# ------------------------------------------------------------------------------ items


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return math.inf


def _tiff_time(text: str | None) -> datetime | None:
    """``2021:08:09T17:39:53Z`` (S1Tiling's ACQUISITION_DATETIME), ``2021:08:09 17:39:53``
    (TIFFTAG_DATETIME) or ISO 8601 -> aware UTC datetime."""
    if not text:
        return None
    text = text.strip()
    match = re.match(r"^(\d{4})[:-](\d{2})[:-](\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?Z?$", text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int(round(float(match.group(7)) * 1e6)) if match.group(7) else 0
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)


def _stamp_time(stamp: str) -> datetime:
    """``20210809t173953`` or ``20210809txxxxxx`` (the day of merged slices) -> UTC datetime."""
    day = datetime.strptime(stamp[:8], "%Y%m%d").replace(tzinfo=timezone.utc)
    if stamp.endswith("xxxxxx"):
        return day
    return day.replace(hour=int(stamp[9:11]), minute=int(stamp[11:13]), second=int(stamp[13:15]))


def _acquisition_times(tags: dict[str, str], stamp: str) -> list[datetime]:
    numbered = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in tags.items()
                      if re.fullmatch(r"ACQUISITION_DATETIME_\d+", k))
    times = [t for _, v in numbered if (t := _tiff_time(v)) is not None]
    if not times and (first := _tiff_time(tags.get("ACQUISITION_DATETIME"))) is not None:
        times = [first]
    return sorted(times) or [_stamp_time(stamp)]


def _input_products(tags: dict[str, str]) -> list[str]:
    return [p.strip() for p in re.split(r"[,\s]+", tags.get("INPUT_S1_IMAGES", "")) if p.strip()]


def _product_start(name: str) -> datetime | None:
    match = re.match(r"^S1[A-Z]_\w\w_\w{4}_\w{4}_(\d{8}T\d{6})_", name)
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc) if match else None


def _software(text: str | None) -> dict[str, str]:
    """``TIFFTAG_SOFTWARE`` -> ``{name: version}``: "S1 Tiling v1.4.2 compatible (s1tiling 0.1.0)" (ours)
    -> ``{"s1tiling": "0.1.0"}``; "S1Tiling v1.1.0" -> ``{"S1Tiling": "1.1.0"}``."""
    if not text:
        return {"s1tiling": __version__}
    ours = re.search(r"\(s1tiling\s+v?(\d[\w.+-]*)\)\s*$", text.strip())
    if ours:
        return {"s1tiling": ours.group(1)}
    match = re.match(r"^(.*?)\s+v?(\d[\w.+-]*)$", text.strip())
    return {match.group(1): match.group(2)} if match else {text.strip(): "unknown"}


def _nodata(value) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if float(value).is_integer() else float(value)


@dataclass
class _Raster:
    """What a file's header says."""

    tags: dict[str, str]
    epsg: int | None
    crs: Any
    transform: list[float]
    shape: list[int]
    bounds: tuple[float, float, float, float]
    dtype: str
    nodata: Any
    resolution: float
    cog: bool


def _read(path: Path) -> _Raster:
    with rasterio.open(path) as src:
        layout = src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "")
        t = src.transform
        return _Raster(src.tags(), src.crs.to_epsg() if src.crs else None, src.crs, [t.a, t.b, t.c, t.d, t.e, t.f],
                       [src.height, src.width], tuple(src.bounds), src.dtypes[0], src.nodata, abs(t.a),
                       layout.upper() == "COG")


def _footprint(raster: _Raster) -> tuple[dict, list[float]]:
    """The raster's outline in WGS84 (densified edges) and its bbox."""
    west, south, east, north = raster.bounds
    steps = 8
    ring = ([(west + (east - west) * i / steps, north) for i in range(steps)]
            + [(east, north - (north - south) * i / steps) for i in range(steps)]
            + [(east - (east - west) * i / steps, south) for i in range(steps)]
            + [(west, south + (north - south) * i / steps) for i in range(steps)])
    ring.append(ring[0])
    geometry = transform_geom(raster.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    coords = [c for ring in (geometry["coordinates"] if geometry["type"] == "Polygon"
                             else [r for poly in geometry["coordinates"] for r in poly]) for c in ring]
    lons, lats = [c[0] for c in coords], [c[1] for c in coords]
    return geometry, [min(lons), min(lats), max(lons), max(lats)]


def _band(raster: _Raster, unit: str | None, scale: float | None = None) -> dict:
    band: dict[str, Any] = {"data_type": raster.dtype, "spatial_resolution": raster.resolution}
    nodata = _nodata(raster.nodata)
    if nodata is not None:
        band["nodata"] = nodata
    if unit:
        band["unit"] = unit
    if scale is not None:
        band["scale"] = scale
    return band


def _asset_proj(raster: _Raster) -> dict:
    return {"proj:code": f"EPSG:{raster.epsg}" if raster.epsg else None, "proj:shape": raster.shape,
            "proj:transform": raster.transform}


def build_item(group: FileGroup, item_path: Path) -> dict:
    """The STAC item (a dict) of ``group``, to be written at ``item_path`` (hrefs relative to it)."""
    import pystac

    rasters = {key: _read(path) for key, (kind, path) in group.files.items()}
    if group.family == "acquisition":
        primary_keys = [k for k, (kind, _) in group.files.items() if kind != "quicklook"]
    else:
        primary_keys = list(group.files)
    if not primary_keys:
        raise ValueError(f"only quicklooks ({', '.join(str(p) for _, p in group.files.values())}): no image to "
                         "describe them from")
    primary = rasters[sorted(primary_keys, key=lambda k: (group.files[k][0] != "image", k))[0]]
    tags = primary.tags
    fields = group.fields
    geometry, bbox = _footprint(primary)
    platform = (tags.get("FLYING_UNIT_CODE") or fields.get("flying_unit_code") or "s1?").lower()
    direction = (tags.get("ORBIT_DIRECTION") or fields.get("orbit_direction") or "")[:3].upper()
    relative_orbit = int(tags.get("RELATIVE_ORBIT_NUMBER") or fields["orbit"])
    inputs = _input_products(tags)
    properties: dict[str, Any] = {
        "platform": f"sentinel-{platform[1:]}" if platform.startswith("s1") else platform,
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "gsd": primary.resolution,
        "proj:code": f"EPSG:{primary.epsg}" if primary.epsg else None,
        "proj:shape": primary.shape,
        "proj:transform": primary.transform,
        "proj:bbox": list(primary.bounds),
        "sat:relative_orbit": relative_orbit,
        "sar:instrument_mode": "IW",
        "sar:frequency_band": "C",
        "sar:center_frequency": C_BAND_FREQUENCY_GHZ,
        "sar:product_type": "GRD",
        "sar:observation_direction": "right",
        "processing:software": _software(tags.get("TIFFTAG_SOFTWARE")),
        "s1tiling:tile": group.tile,
        "s1tiling:input_products": inputs,
    }
    if direction in ("ASC", "DES"):
        properties["sat:orbit_state"] = "ascending" if direction == "ASC" else "descending"
    if tags.get("ORBIT_NUMBER", "").strip().isdigit():
        properties["sat:absolute_orbit"] = int(tags["ORBIT_NUMBER"])
    if (produced := _tiff_time(tags.get("TIFFTAG_DATETIME"))) is not None:
        properties["processing:datetime"] = produced.strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, tag in (("calibration", "CALIBRATION"), ("engine", "ENGINE"), ("orbit_source", "ORBIT_SOURCE"),
                     ("dem_info", "DEM_INFO"), ("noise_removed", "NOISE_REMOVED"),
                     ("interpolator", "ORTHORECTIFICATION_INTERPOLATOR")):
        if tags.get(tag):
            properties[f"s1tiling:{key}"] = tags[tag]

    if group.family == "acquisition":
        times = _acquisition_times(tags, fields["acquisition_stamp"])
        when = times[0]
        properties["s1tiling:acquisition_times"] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
        pols = sorted({k.split("_")[0].upper() for k in group.files})
        properties["sar:polarizations"] = pols
        lineage = (f"Sentinel-1 IW GRD {', '.join(inputs) or 'products'}: {tags.get('CALIBRATION', 'calibrated')} "
                   f"calibration, orthorectified on S2 tile {group.tile} by the "
                   f"{tags.get('ENGINE', 'S1Tiling')} engine")
    else:
        starts = [t for t in map(_product_start, inputs) if t is not None]
        when = min(starts) if starts else (_tiff_time(tags.get("TIFFTAG_DATETIME")) or datetime.now(timezone.utc))
        polarisations = {m.group(1) for p in inputs if (m := re.match(r"^S1\w_\w\w_\w{4}_1S(DV|SV|DH|SH)_", p))}
        properties["sar:polarizations"] = (["VH", "VV"] if polarisations & {"DV"} else ["HH", "HV"]
                                           if polarisations & {"DH"} else ["HH"] if polarisations & {"SH"} else ["VV"])
        lineage = (f"{group.family} map of S2 tile {group.tile}, relative orbit {relative_orbit:03d}, from the "
                   f"geometry of {', '.join(inputs) or 'Sentinel-1 products'}")
    properties["processing:lineage"] = lineage
    properties = {k: v for k, v in properties.items() if v is not None}

    item = pystac.Item(id=group.item_id, geometry=geometry, bbox=bbox, datetime=when, properties=properties,
                       stac_extensions=sorted(EXTENSIONS.values()), collection=collection_id(group.tile))
    if group.family == "acquisition" and len(times) > 1:
        item.common_metadata.start_datetime, item.common_metadata.end_datetime = times[0], times[-1]
    for key in sorted(group.files):
        kind, path = group.files[key]
        raster = rasters[key]
        href = os.path.relpath(path, item_path.parent)
        extra: dict[str, Any] = {}
        if group.family == "acquisition":
            _, roles, title = _TILE_ASSETS[kind]
            pol = key.split("_")[0].upper()
            title = title.format(pol=pol)
            extra["sar:polarizations"] = [pol]
            if kind in ("image", "filtered"):
                extra["raster:bands"] = [_band(raster, BACKSCATTER_UNIT)]
            elif kind == "mask":
                extra["raster:bands"] = [_band(raster, None)]
        else:
            _, roles, unit, scale = _MAPS[key]
            title = raster.tags.get("DATA_TYPE") or key
            extra["raster:bands"] = [_band(raster, unit, scale)]
        media_type: str
        if kind == "quicklook":
            media_type = pystac.MediaType.JPEG
        else:
            media_type = COG if raster.cog else GEOTIFF
        if raster.shape != primary.shape or raster.transform != primary.transform:
            extra.update({k: v for k, v in _asset_proj(raster).items() if v is not None})
        item.add_asset(key, pystac.Asset(href=href, media_type=media_type, roles=list(roles), title=title,
                                         extra_fields=extra))
    root = os.path.relpath(item_path.parents[3] / CATALOG_FILE, item_path.parent)
    item.add_link(pystac.Link("root", root, media_type=pystac.MediaType.JSON))
    item.add_link(pystac.Link("parent", "../collection.json", media_type=pystac.MediaType.JSON))
    item.add_link(pystac.Link("collection", "../collection.json", media_type=pystac.MediaType.JSON))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def collection_id(tile: str) -> str:
    return f"s1tiling-{tile}"


# ------------------------------------------------------------------------------ writing


def _write_json(path: Path, content: dict) -> bool:
    """Write ``content`` to ``path`` atomically, unless it holds it already (a rerun that made
    nothing touches nothing); return whether it was written."""
    text = json.dumps(content, indent=1, sort_keys=False) + "\n"
    try:
        if path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return True


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _collection(tile: str, items: list[dict]) -> dict:
    import pystac

    west = min(i["bbox"][0] for i in items)
    south = min(i["bbox"][1] for i in items)
    east = max(i["bbox"][2] for i in items)
    north = max(i["bbox"][3] for i in items)
    times = sorted(t for i in items for t in (i["properties"].get("start_datetime") or i["properties"]["datetime"],
                                              i["properties"].get("end_datetime") or i["properties"]["datetime"]))
    start, end = (datetime.fromisoformat(times[0].replace("Z", "+00:00")),
                  datetime.fromisoformat(times[-1].replace("Z", "+00:00")))
    collection = pystac.Collection(
        id=collection_id(tile),
        title=f"Sentinel-1 on S2 tile {tile}",
        description=(f"Calibrated, orthorectified Sentinel-1 IW GRD backscatter on Sentinel-2 tile {tile}, with "
                     "border masks, filtered images, quicklooks and angle/area maps, made by s1tiling "
                     "(S1Tiling-compatible). Contains modified Copernicus Sentinel data."),
        extent=pystac.Extent(pystac.SpatialExtent([[west, south, east, north]]),
                             pystac.TemporalExtent([[start, end]])),
        license="other",
        keywords=["sentinel-1", "sar", "backscatter", "analysis-ready", tile],
        providers=[pystac.Provider("ESA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                                   url="https://sentinels.copernicus.eu"),
                   pystac.Provider("s1tiling", roles=[pystac.ProviderRole.PROCESSOR])],
        summaries=pystac.Summaries({
            "platform": sorted({i["properties"]["platform"] for i in items}),
            "sat:relative_orbit": sorted({i["properties"]["sat:relative_orbit"] for i in items}),
            "sar:polarizations": sorted({p for i in items for p in i["properties"].get("sar:polarizations", [])}),
        }),
    )
    collection.add_link(pystac.Link("root", "../../" + CATALOG_FILE, media_type=pystac.MediaType.JSON))
    collection.add_link(pystac.Link("parent", "../../" + CATALOG_FILE, media_type=pystac.MediaType.JSON))
    for item in items:
        collection.add_link(pystac.Link("item", f"items/{item['id']}.json", media_type=pystac.MediaType.GEOJSON,
                                        title=item["id"]))
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


def _root_catalog(tiles: list[str]) -> dict:
    import pystac

    catalog = pystac.Catalog(id=CATALOG_ID, title="s1tiling products",
                             description="Sentinel-1 products on the Sentinel-2 tile grid, one collection per tile.")
    catalog.add_link(pystac.Link("root", "./" + CATALOG_FILE, media_type=pystac.MediaType.JSON))
    for tile in tiles:
        catalog.add_link(pystac.Link("child", f"./{STAC_FOLDER}/{tile}/collection.json",
                                     media_type=pystac.MediaType.JSON, title=collection_id(tile)))
    return catalog.to_dict(include_self_link=False, transform_hrefs=False)


def _up_to_date(item_path: Path, group: FileGroup) -> bool:
    """Whether the item file exists, is newer than the group's files and has the same assets."""
    if _mtime(item_path) == math.inf or _mtime(item_path) < group.newest:
        return False
    try:
        assets = json.loads(item_path.read_text()).get("assets", {})
    except (OSError, ValueError):
        return False
    return {k: (item_path.parent / a["href"]).resolve() for k, a in assets.items()} == {
        k: p for k, (_, p) in group.files.items()}


def update_catalog(output: str | os.PathLike, extra_roots: Iterable[str | os.PathLike] = (), *,
                   rebuild: bool = False) -> CatalogReport:
    """Bring ``{output}/catalog.json`` up to date with the products under ``output`` (and
    ``extra_roots``, e.g. map folders outside it): (re)write the items whose files changed
    (all of them with ``rebuild``), remove those whose files are gone, rebuild the index."""
    output = Path(output).resolve()
    if not output.is_dir():
        raise FileNotFoundError(f"{output}: no such output folder")
    stac = output / STAC_FOLDER
    groups = scan([output, *extra_roots])
    written, skipped = [], []
    for key, group in sorted(groups.items()):
        item_path = stac / group.tile / "items" / f"{group.item_id}.json"
        if not rebuild and _up_to_date(item_path, group):
            continue
        try:
            item = build_item(group, item_path)
        except (rasterio.errors.RasterioError, OSError, ValueError, KeyError) as err:
            files = ", ".join(str(p) for _, p in group.files.values())
            logger.error("STAC item %s not written: %s (%s)", group.item_id, err, files)
            skipped.append(files)
            continue
        if _write_json(item_path, item):
            written.append(key)
        else:
            os.utime(item_path)  # same item: newer than its files now, not rebuilt next time
    removed = []
    with _locked(stac):
        tiles = []
        for tile_dir in sorted(p for p in stac.iterdir() if p.is_dir()) if stac.is_dir() else []:
            items = []
            for path in sorted((tile_dir / "items").glob("*.json")):
                try:
                    item = json.loads(path.read_text())
                except (OSError, ValueError) as err:
                    logger.error("%s: unreadable STAC item, left out of the catalog: %s", path, err)
                    continue
                # An item this scan did not see may come from a concurrent run that published its
                # files since: it goes only when none of its files is left.
                if f"{tile_dir.name}/{path.stem}" not in groups and not any(
                        (path.parent / a["href"]).exists() for a in item.get("assets", {}).values()):
                    path.unlink(missing_ok=True)
                    removed.append(f"{tile_dir.name}/{path.stem}")
                    continue
                items.append(item)
            if items:
                _write_json(tile_dir / "collection.json", _collection(tile_dir.name, items))
                tiles.append(tile_dir.name)
            else:
                (tile_dir / "collection.json").unlink(missing_ok=True)
        _write_json(output / CATALOG_FILE, _root_catalog(tiles))
        count = sum(1 for tile in tiles for _ in (stac / tile / "items").glob("*.json"))
    report = CatalogReport(output / CATALOG_FILE, count, tuple(written), tuple(removed), tuple(skipped))
    logger.info("%s", report.summary())
    return report


def item_files(output: str | os.PathLike, tile: str) -> list[Path]:
    """The item files of ``tile`` in the catalog of ``output`` (FileNotFoundError when there is none)."""
    folder = Path(output) / STAC_FOLDER / tile / "items"
    if not (Path(output) / CATALOG_FILE).is_file():
        raise FileNotFoundError(f"{Path(output) / CATALOG_FILE}: no STAC catalog (make it with "
                                f"`s1tiling catalog {output}`)")
    return sorted(folder.glob("*.json"))

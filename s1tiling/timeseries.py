"""Time series of a tile: a lazy xarray cube from the STAC catalog, and Zarr stores of it.

:func:`open_timeseries` reads the items of a tile from ``{output}/catalog.json`` (see
:mod:`s1tiling.catalog`) and stacks them with stackstac into a dask-backed ``xarray.Dataset``
``(time, y, x)`` on the tile's own grid (no resampling: the values are the GeoTIFF pixels),
one variable per polarisation (``vv``, ``vh``...), no-data and border-mask pixels as NaN, and
per-time coordinates (relative orbit, direction, platform, absolute orbit, input products, item).
Nothing is read until values are asked for; a pixel's curve reads one block per date.
stackstac builds the graph blockwise (one layer, whatever the number of chunks), so opening
50 dates of a 10 m tile takes a fraction of a second; odc-stac, which makes one task per date
and chunk up front, took 20 s for the same catalog (benchmarks/bench_timeseries.py). The
catalog works with odc-stac all the same (``tests/test_cube.py``).

:func:`export_zarr` writes one Zarr store per tile and relative orbit (consolidated metadata,
Zarr format 2), chunked either per date (``1 x 512 x 512``: images) or along time
(``64 x 128 x 128``: curves), and appends the dates that arrived since the last export.

Needs the ``cube`` extra (``pip install 's1tiling[cube]'``: pystac, stackstac, xarray, zarr),
imported on first use.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import item_files

if TYPE_CHECKING:
    import xarray

logger = logging.getLogger(__name__)

#: chunks of :func:`open_timeseries` (one date, one COG block)
CHUNKS = {"time": 1, "y": 512, "x": 512}
#: Zarr layouts: name -> chunks (time, y, x)
ZARR_LAYOUTS = {"spatial": (1, 512, 512), "time": (64, 128, 128)}
ZARR_FOLDER = "zarr"
_TIME_ENCODING = {"units": "microseconds since 1970-01-01T00:00:00", "dtype": "int64",
                  "calendar": "proleptic_gregorian"}
_CALIBRATION_NAMES = {"normlim": "Normlim", "gamma_naught_rtc": "GammaNaughtRTC"}
_MISSING = "cube extra missing: pip install 's1tiling[cube]' (pystac, stackstac, xarray, zarr)"


def _require():
    try:
        import pystac  # noqa: F401
        import stackstac  # noqa: F401
        import xarray  # noqa: F401
    except ImportError as err:
        raise ImportError(f"{_MISSING}: {err}") from err


def _utc(value, end: bool = False) -> datetime | None:
    """A bound as an aware UTC datetime; a date (or 'YYYY-MM-DD') covers its whole day."""
    if value is None:
        return None
    if isinstance(value, str):
        value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.max if end else time.min)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _orbit_matches(item, orbit) -> bool:
    if orbit is None:
        return True
    wanted = orbit if isinstance(orbit, (list, tuple, set)) else [orbit]
    props = item.properties
    for value in wanted:
        if isinstance(value, str) and not value.isdigit():
            if props.get("sat:orbit_state", "")[:3].upper() == value.strip().upper()[:3].replace("DSC", "DES"):
                return True
        elif props.get("sat:relative_orbit") == int(value):
            return True
    return False


def _calibration_of(item) -> str:
    return str(item.properties.get("s1tiling:calibration", "")).lower()


def select_items(output: str | os.PathLike, tile: str, *, start=None, end=None, orbit=None,
                 calibration: str | None = None) -> list:
    """The pystac acquisition items of ``tile`` in the catalog of ``output`` matching the filters,
    in time order (see :func:`open_timeseries`)."""
    import pystac

    tile = tile.upper().removeprefix("T") if len(tile) == 6 else tile.upper()
    first, last = _utc(start), _utc(end, end=True)
    items: list[Any] = []  # pystac.Item
    for path in item_files(output, tile):
        item = pystac.Item.from_file(str(path))
        if "s1tiling:acquisition_times" not in item.properties:
            continue  # angle and area maps
        when = item.datetime
        if when is None:
            continue
        if (first and when < first) or (last and when > last) or not _orbit_matches(item, orbit):
            continue
        if calibration is not None:
            wanted = _CALIBRATION_NAMES.get(calibration.lower(), calibration).lower()
            if _calibration_of(item) != wanted:
                continue
        items.append(item.make_asset_hrefs_absolute())  # stackstac opens hrefs as they are
    items.sort(key=lambda i: (i.datetime, i.id))
    times = [i.datetime for i in items]
    if len(set(times)) != len(times):
        clashes = sorted({i.id for i in items if times.count(i.datetime) > 1})
        raise ValueError(f"tile {tile}: several items at the same time ({', '.join(clashes)}): choose one "
                         "calibration with calibration=...")
    return items


def open_timeseries(output: str | os.PathLike, tile: str, polarisations: Sequence[str] | None = None, *,
                    start=None, end=None, orbit=None, calibration: str | None = None, filtered: bool = False,
                    masks: bool = True, db: bool = False, chunks: dict | None = None) -> xarray.Dataset:
    """The time series of S2 tile ``tile`` in the output folder ``output``, lazily.

    - ``polarisations``: e.g. ``("vv", "vh")`` (default: every one in the catalog);
    - ``start``, ``end``: dates or datetimes (``'2021-08-01'``; a date includes its whole day);
    - ``orbit``: a relative orbit number, ``'ASC'``/``'DES'``, or a list of them;
    - ``calibration``: ``'sigma'``, ``'normlim'``... (needed when several are in the catalog);
    - ``filtered``: the speckle-filtered images instead of the images;
    - ``masks``: set the pixels the border masks mark as no data to NaN (when every item has
      its masks), besides the no-data pixels (0);
    - ``db``: values in decibels, 10 log10 of the linear backscatter (default: linear, the
      files' values);
    - ``chunks``: dask chunks (default ``{"time": 1, "y": 512, "x": 512}``).

    Returns a dask-backed ``xarray.Dataset`` ``(time, y, x)``, float32, on the tile's grid
    (``spatial_ref`` has its CRS), with time coordinates ``orbit``, ``direction``, ``platform``,
    ``absolute_orbit``, ``input_products``, ``item_id``. Raises ``FileNotFoundError`` when
    ``output`` has no catalog, ``LookupError`` when no item matches.
    """
    _require()
    import numpy as np
    import stackstac
    import xarray as xr
    from pyproj import CRS
    from rasterio.enums import Resampling

    items = select_items(output, tile, start=start, end=end, orbit=orbit, calibration=calibration)
    if not items:
        raise LookupError(f"no acquisition of tile {tile} in {output} matches start={start}, end={end}, "
                          f"orbit={orbit}, calibration={calibration}")
    suffix = "_filtered" if filtered else ""
    available = sorted({key.removesuffix(suffix) for item in items for key in item.assets
                        if key.endswith(suffix) and "_" not in key.removesuffix(suffix)},
                       key=lambda p: ("vv", "vh", "hh", "hv").index(p) if p in ("vv", "vh", "hh", "hv") else 9)
    pols = [p.lower() for p in (polarisations if polarisations is not None else available)]
    if isinstance(polarisations, str):
        pols = [polarisations.lower()]
    missing = [p for p in pols if p not in available]
    if missing:
        raise LookupError(f"tile {tile}: no {'filtered ' if filtered else ''}{', '.join(missing)} image in {output} "
                          f"(found: {', '.join(available) or 'none'})")
    use_masks = masks and all(f"{p}_mask" in item.assets for item in items for p in pols
                              if f"{p}{suffix}" in item.assets)
    bands = [f"{p}{suffix}" for p in pols] + ([f"{p}_mask" for p in pols] if use_masks else [])
    props = items[0].properties
    crs = CRS.from_user_input(props["proj:code"])
    (rows, cols), t = props["proj:shape"], props["proj:transform"]
    wanted = {**CHUNKS, **(chunks or {})}
    # The tile's own grid: every file is read as it is (no warping), block by block.
    stacked = stackstac.stack(
        items, assets=bands, epsg=crs.to_epsg(), resolution=(abs(t[0]), abs(t[4])),
        bounds=(t[2], t[5] + t[4] * rows, t[2] + t[0] * cols, t[5]), snap_bounds=False,
        chunksize=(wanted["time"], 1, wanted["y"], wanted["x"]), dtype="float32", fill_value=np.float32(np.nan),
        rescale=False, sortby_date=False, resampling=Resampling.nearest, xy_coords="center", properties=False,
        band_coords=False)
    expected = np.array([np.datetime64(i.datetime.astimezone(timezone.utc).replace(tzinfo=None), "us")
                         for i in items])
    if not np.array_equal(stacked.time.values.astype("datetime64[us]"), expected) or stacked.shape[2:] != (rows, cols):
        raise RuntimeError(f"stackstac returned {stacked.sizes} at {stacked.time.values} for items at {expected}")
    data = {}
    for pol in pols:
        values = stacked.sel(band=f"{pol}{suffix}", drop=True)
        valid = values != 0
        if use_masks:
            valid = valid & (stacked.sel(band=f"{pol}_mask", drop=True) != 0)
        data[pol] = values.where(valid)
        if db:
            data[pol] = (10 * np.log10(data[pol])).astype("float32")
        data[pol].attrs = {"long_name": f"{pol.upper()} backscatter{' (speckle-filtered)' if filtered else ''}",
                           "units": "dB" if db else "m2/m2", "polarisation": pol.upper(), "grid_mapping": "spatial_ref"}

    def text(values):  # variable-length strings (Zarr appends of longer ones work)
        return np.array(values, dtype=object)

    coords = {
        "orbit": ("time", np.array([int(i.properties["sat:relative_orbit"]) for i in items], dtype=np.int64)),
        "direction": ("time", text([{"ascending": "ASC", "descending": "DES"}.get(i.properties.get("sat:orbit_state"),
                                                                                   "") for i in items])),
        "platform": ("time", text([i.properties.get("platform", "") for i in items])),
        "absolute_orbit": ("time", np.array([int(i.properties.get("sat:absolute_orbit", -1)) for i in items],
                                            dtype=np.int64)),
        "input_products": ("time", text([", ".join(i.properties.get("s1tiling:input_products", [])) for i in items])),
        "item_id": ("time", text([i.id for i in items])),
        "spatial_ref": ((), np.int32(crs.to_epsg() or 0), crs.to_cf()),
    }
    dataset = xr.Dataset(data).assign_coords(coords)
    dataset = dataset.drop_vars([c for c in dataset.coords if c not in (*coords, "time", "x", "y")])
    dataset.attrs = {"tile": items[0].properties.get("s1tiling:tile", tile),
                     "calibration": _calibration_of(items[0]), "crs": props["proj:code"],
                     "source": str(Path(output).resolve() / "catalog.json")}
    return dataset


# ------------------------------------------------------------------------------ Zarr


@dataclass(frozen=True)
class ZarrExport:
    """One store written by :func:`export_zarr`: how many dates it has, how many were added."""

    store: Path
    layout: str
    dates: int
    added: int
    rewritten: bool


def zarr_store(folder: str | os.PathLike, tile: str, orbit: int, layout: str = "spatial") -> Path:
    """``{folder}/{tile}_{orbit:03d}.zarr`` (layout ``spatial``) or ``..._time.zarr``."""
    return Path(folder) / f"{tile}_{int(orbit):03d}{'' if layout == 'spatial' else '_' + layout}.zarr"


def _encoding(dataset, layout: str) -> dict:
    t, y, x = ZARR_LAYOUTS[layout]
    encoding: dict[str, Any] = {name: {"chunks": (min(t, max(1, dataset.sizes["time"])) if layout == "spatial" else t,
                                  min(y, dataset.sizes["y"]), min(x, dataset.sizes["x"]))}
                for name in dataset.data_vars}
    encoding["time"] = dict(_TIME_ENCODING)
    return encoding


def _for_layout(dataset, layout: str):
    """Dask chunks that each write whole Zarr chunks (one dask chunk along time for ``time``)."""
    _, y, x = ZARR_LAYOUTS[layout]
    time_chunk = 1 if layout == "spatial" else max(1, dataset.sizes["time"])
    chunks = {"time": time_chunk, "y": 512 if layout == "spatial" else y * 4,
              "x": 512 if layout == "spatial" else x * 4}
    coords = {k: v.compute() for k, v in dataset.coords.items() if k not in dataset.dims}  # small, in memory
    return dataset.assign({k: v.chunk(chunks) for k, v in dataset.data_vars.items()}).assign_coords(coords)


def write_zarr(dataset, store: str | os.PathLike, layout: str = "spatial") -> ZarrExport:
    """Write ``dataset`` (from :func:`open_timeseries`) to the Zarr store ``store``, or append the
    dates it does not have yet. Dates earlier than the store's last one make it rewritten
    whole (into a temporary store that replaces it), so the store stays in time order."""
    import numpy as np
    import xarray as xr

    if layout not in ZARR_LAYOUTS:
        raise ValueError(f"Zarr layout {layout!r} is not one of {', '.join(ZARR_LAYOUTS)}")
    store = Path(store)
    dataset = dataset.drop_encoding() if hasattr(dataset, "drop_encoding") else dataset
    if not store.exists():
        _write_new(dataset, store, layout)
        return ZarrExport(store, layout, dataset.sizes["time"], dataset.sizes["time"], False)
    existing = xr.open_zarr(store, consolidated=True)
    known = existing.time.values
    new = dataset.sel(time=~np.isin(dataset.time.values, known))
    if new.sizes["time"] == 0:
        return ZarrExport(store, layout, len(known), 0, False)
    if new.time.values.min() > known.max():
        _for_layout(new, layout).to_zarr(store, mode="a", append_dim="time", consolidated=True, zarr_format=2)
        return ZarrExport(store, layout, len(known) + new.sizes["time"], new.sizes["time"], False)
    merged = xr.concat([existing.drop_encoding(), new], dim="time").sortby("time")
    tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _write_new(merged, tmp, layout)
    old = store.with_name(f".{store.name}.{os.getpid()}.old")
    os.replace(store, old)
    os.replace(tmp, store)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("%s: dates before its last one arrived: rewritten", store)
    return ZarrExport(store, layout, merged.sizes["time"], new.sizes["time"], True)


def _write_new(dataset, store: Path, layout: str) -> None:
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.with_name(f".{store.name}.{os.getpid()}.new")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _for_layout(dataset, layout).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2,
                                             encoding=_encoding(dataset, layout))
        os.replace(tmp, store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_zarr(output: str | os.PathLike, tiles: Iterable[str] | None = None, *, orbits: Iterable[int] | None = None,
                layouts: Iterable[str] = ("spatial", "time"), folder: str | os.PathLike | None = None,
                calibration: str | None = None, polarisations: Sequence[str] | None = None) -> list[ZarrExport]:
    """Write or update one Zarr store per tile, relative orbit and layout under ``folder``
    (default ``{output}/zarr``) from the catalog of ``output``; return what was done."""
    _require()
    output = Path(output)
    folder = Path(folder) if folder is not None else output / ZARR_FOLDER
    stac = output / "stac"
    if not (output / "catalog.json").is_file():
        raise FileNotFoundError(f"{output / 'catalog.json'}: no STAC catalog "
                                f"(make it with `s1tiling catalog {output}`)")
    if tiles is None:
        tiles = sorted(p.name for p in stac.iterdir() if (p / "items").is_dir()) if stac.is_dir() else []
    done = []
    for tile in tiles:
        items = select_items(output, tile, calibration=calibration) if calibration else _items_any(output, tile)
        found = sorted({int(i.properties["sat:relative_orbit"]) for i in items})
        for orbit in (found if orbits is None else [o for o in orbits if int(o) in found]):
            dataset = open_timeseries(output, tile, polarisations, orbit=int(orbit), calibration=calibration)
            for layout in layouts:
                result = write_zarr(dataset, zarr_store(folder, tile, orbit, layout), layout)
                logger.debug("%s: %d date(s), %d added", result.store, result.dates, result.added)
                done.append(result)
    return done


def _items_any(output, tile):
    """The acquisition items of ``tile``; several calibrations in one catalog need ``calibration``."""
    return select_items(output, tile)

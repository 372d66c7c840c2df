"""The whole chain for validated settings: find (or download) products, plan, make, report.

Finding and planning are cheap and done here, in the main process: which passes cover which
tiles (:mod:`s1tiling.discovery`, :mod:`s1tiling.download`; a pass with an unreadable slice is not
produced, exit 71), which outputs already exist and are complete (a rerun resumes; what fails
:func:`s1tiling.writing.accept_existing` is moved aside and made again), whether the DEM tiles and
the geoid open and read (exit 75, 76), and what to make (:mod:`s1tiling.plan`). The work
itself is a graph of :class:`~s1tiling.scheduling.Task` run by :mod:`s1tiling.scheduling`: one task
per job of the plan, each calling its maker with the job and the run's
:class:`~s1tiling.context.Context`:

- calibration into ``{tmp}/S1`` (``--cache-before-ortho``): :func:`s1tiling.production.calibrate_to_cache`;
- angle and gamma-area maps: :func:`s1tiling.incidence.produce_maps`,
  :func:`s1tiling.terrain_flattening.produce_gamma_area`, before the tile images that need them;
- tile images: :func:`s1tiling.production.produce` (or the OTB engine's);
- border masks, quicklooks, filtered images: :func:`s1tiling.derived.make`, after their image;
- at the end, the STAC catalog of the output folder: :func:`s1tiling.catalog.update_catalog`.

Each task first takes the locks of its outputs (:func:`s1tiling.tasks.run_locked`,
:class:`s1tiling.writing.OutputLock`): a run overlapping another on the same outputs waits for
what the other is producing, and keeps it.

``S1LIAMap`` / ``S1IAMap`` / ``S1GammaAreaMap`` run the same chain with only the maps to make:
those of the passes of the products in ``s1_images``, and, for LIA and IA maps of the requested
relative orbits no product gives, of the passes of orbit files (as S1Tiling 1.4 makes them before
any product is downloaded): the files of ``eof_dir`` valid during the request's dates, else, with
``download = True``, those EODAG finds (:mod:`s1tiling.download.orbits`).

``tiles = ALL`` (S1Tiling's ``extract_tiles_to_process``) becomes the tiles the local products
cover (after the download of the ``roi_by_tiles`` products), exit 73 when there is none.

:class:`RunOptions` carries S1Tiling's investigation options: tracebacks of failed tasks
(``--trace-errors``), every task in this process (``--debug-otb``), the memory of the workers in
the log (``--watch-ram``) and the task graph written as DOT/SVG (``--graphs``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, catalog, download, grid, logs
from .config import Settings
from .context import Context
from .derived import make as make_derived
from .discovery import (
    TileGroup,
    UnreadableProduct,
    group_products,
    open_local_products,
    open_matching_products,
    without_unreadable_passes,
)
from .download import orbits
from .engines import otb, otb_production
from .errors import (
    ConfigurationError,
    ExitCode,
    MissingDEMError,
    NoIntersectionError,
    NoProductFoundError,
    S1TilingError,
)
from .geometry.geoid import Geoid, find_geoid
from .geometry.orbit import read_eof
from .geometry.passes import OrbitPass
from .incidence import produce_maps
from .plan import OrbitFilePass, Plan, images_of_search, plan_maps_only, plan_products
from .production import calibrate_to_cache, produce
from .s1.names import parse_product_name, relative_orbit
from .scheduling import (
    SEQUENTIAL,
    RunReport,
    Task,
    executor_for,
    most_specific_exit_code,
    run_tasks,
    write_task_graph,
)
from .tasks import WorkerLogs, output_identity, outputs_of, run_locked
from .terrain_flattening import produce_gamma_area
from .writing import accept_existing, remove_replaced

logger = logging.getLogger(__name__)

#: seconds between two memory reports of ``--watch-ram``
WATCH_RAM_INTERVAL = 10.0
#: seconds of one revolution of the Sentinel-1 reference orbit (175 orbits in 12 days)
_REVOLUTION = 12 * 86400 / 175


@dataclass(frozen=True)
class RunOptions:
    """How a run is watched (S1Tiling's investigation options; module documentation)."""

    trace_errors: bool = False  # --trace-errors
    sequential: bool = False  # --debug-otb
    watch_ram: bool = False  # --watch-ram
    graphs: bool = False  # --graphs


#: Where DEM tiles come from, for the exit-75 message (README: "Getting a DEM and a geoid").
DEM_SOURCES = (
    "SRTM 1 arc-second (SRTMGL1 v3, 1-degree tiles named like N50E010.hgt, read as they are with the "
    "default dem_format '{id}.hgt'): NASA Earthdata / USGS EarthExplorer, e.g. "
    "https://e4ftl01.cr.usgs.gov/MEASURES/SRTMGL1.003/ (unzip the .hgt.zip files into dem_dir); or "
    "Copernicus DEM GLO-30 (heights above EGM2008; tiles like "
    "Copernicus_DSM_COG_10_N50_00_E010_00_DEM.tif, free from https://spacedata.copernicus.eu or the "
    "AWS open data bucket copernicus-dem-30m, one file per tile, all in dem_dir): set dem_format : "
    "Copernicus_DSM_COG_10_{lat}_00_{lon}_00_DEM.tif, or dem_database : <footprints GeoPackage, e.g. "
    "S1Tiling's CopernicusDEM-CNES.gpkg> with dem_format : {FileID}"
)


def missing_dem_message(settings: Settings, tiles: Iterable[str], missing: Iterable[str]) -> str:
    """The exit-75 message: what is missing where, and where such tiles come from."""
    paths = settings.paths
    tiles, missing = ", ".join(tiles), ", ".join(missing)
    if not Path(paths.dem_dir).is_dir():
        head = (f"DEM folder {paths.dem_dir} ([Paths] dem_dir) does not exist; tile(s) {tiles} need the "
                f"DEM tiles {missing} there (format {paths.dem_format!r})")
    else:
        head = f"DEM tiles missing in {paths.dem_dir} (format {paths.dem_format!r}) for tile(s) {tiles}: {missing}"
    return f"{head}. Where to get them: {DEM_SOURCES}"


def check_dem_and_geoid(settings: Settings, tiles: Iterable[str]) -> None:
    """Exit 75 when DEM tiles are missing under the requested tiles or one of those there cannot be
    opened and read, 76 when no geoid is found or it cannot be read; before any worker starts."""
    context = Context(settings)
    footprints = [context.tile_grid.tile(t).footprint for t in sorted(tiles)]
    missing = sorted({m for footprint in footprints for m in context.dem.missing_tiles(footprint)})
    if missing:
        raise MissingDEMError(missing_dem_message(settings, sorted(tiles), missing))
    checked: set[Path] = set()
    for footprint in footprints:
        checked.update(context.dem.check_tiles(footprint))
    geoid = Geoid(find_geoid(settings.paths.geoid_file, context.copernicus_dem))  # reads the whole grid (76)
    logger.debug("DEM tiles read: %s; geoid read: %s", ", ".join(sorted(map(str, checked))), geoid.path)


def build_tasks(plan: Plan, settings: Settings) -> list[Task]:
    """One task per job of ``plan``, each after the jobs whose outputs it reads."""
    context = Context(settings)
    if settings.processing.engine == "otb":
        otb.require_otb()  # exit 77 before any work
        make_tile = otb_production.produce
    else:
        make_tile = produce
    map_keys = {path: m.key for m in plan.map_jobs for _, path in m.outputs}
    calibration_keys = {(c.product, c.polarisation): c.key for c in plan.calibrations}

    def locked(make, job):
        return (make, job, context, {path: output_identity(path) for path in outputs_of(job)})

    tasks = [Task(key=m.key, func=run_locked, args=locked(produce_gamma_area if m.family == "GAMMA_AREA"
                                                          else produce_maps, m), kind=m.family.lower())
             for m in plan.map_jobs]
    tasks += [Task(key=c.key, func=run_locked, args=locked(calibrate_to_cache, c), kind="calibrate")
              for c in plan.calibrations]
    tasks += [Task(key=job.key, func=run_locked, args=locked(make_tile, job), kind="ortho",
                   deps=tuple(map_keys[m] for m in (job.sin_lia, job.gamma_area, job.layover_shadow)
                                                       if m in map_keys)
                   + tuple(calibration_keys[p, pol] for p in job.products for pol in job.polarisations
                           if (p, pol) in calibration_keys))
              for job in plan.tile_jobs]
    tasks += [Task(key=d.key, func=run_locked, args=locked(make_derived, d),
                   deps=((d.after,) if d.after else ()) + d.earlier_after, kind=d.kind)
              for d in plan.derived]
    return tasks


def run(settings: Settings, *, maps: str | None = None, options: RunOptions = RunOptions()) -> int:
    """Process the request; return the exit status (0 on success).

    ``maps`` ('LIA', 'IA' or 'GAMMA_AREA') makes only those maps (no product is downloaded):
    module documentation.
    """
    started = time.monotonic()
    logger.info("s1tiling %s, request file %s", __version__, settings.config_file)
    logger.info("Resolved settings:\n%s", settings.describe(), extra=logs.FILE_ONLY)
    for key, path in settings.folders().items():
        logger.info("%s: %s", key, path)
    report = None
    if settings.data_source.download and maps is None:
        request = download.request_from_settings(settings)
        report = download.download_products(_search(settings, request), request)  # which logs its summary
    settings = resolve_all_tiles(settings, maps)
    groups, unreadable = _passes(settings, report)
    if maps in ("LIA", "IA"):
        groups = groups + _orbit_file_passes(settings, groups, fetch=settings.data_source.download)
    elif settings.data_source.download and (maps == "GAMMA_AREA" or settings.processing.calibration in (
            "normlim", "gamma_naught_rtc")):
        _fetch_orbit_files_of(settings, groups)  # the maps of products use precise orbits, as S1LIAMap's
    if not groups:
        if unreadable:  # products were found, but cannot be read
            logger.error("nothing to produce over tile(s) %s: unreadable product(s): %s",
                         ", ".join(settings.processing.tiles), "; ".join(p.problem for p in unreadable))
            return _exit_code(None, report, unreadable)
        if report is not None and report.exit_code:  # products were found, but could not be fetched
            logger.error("nothing to produce over tile(s) %s: the products needed were not retrieved",
                         ", ".join(settings.processing.tiles))
            return report.exit_code
        raise _no_intersection(settings)
    plan = _plan(settings, groups, maps, partial(accept_existing, move_aside=True))
    for old, new in plan.superseded:
        remove_replaced([old], new)
    if plan.is_empty:
        logger.info("every requested product is already present: nothing to do")
        _update_catalog(settings)
        return _exit_code(None, report, unreadable)
    logger.info("Plan:\n%s", plan.describe(), extra=logs.FILE_ONLY)
    tasks = build_tasks(plan, settings)
    if options.graphs:
        stamp = f"tasks-{dt.datetime.now():%Y%m%dT%H%M%S}-{os.getpid()}"
        write_task_graph(tasks, Path.cwd(), stamp)
    outcome = _run(tasks, settings, options)
    _remove_unfiltered(plan)
    logger.info("%s", outcome.summary())
    logger.info("Summary: %d file(s) written, %d task(s) done, %d failed, %d skipped; wall time %.1f s",
                len(outcome.produced), len(outcome.done), len(outcome.failed), len(outcome.skipped),
                time.monotonic() - started)
    if options.trace_errors:
        for failed in outcome.failed:
            if failed.details:
                logger.error("Task %s failed:\n%s", failed.key, failed.details.rstrip())
    _update_catalog(settings)
    return _exit_code(outcome, report, unreadable)


def _run(tasks: list[Task], settings: Settings, options: RunOptions) -> RunReport:
    """The tasks run by dask (``--debug-otb``, or a single task on this machine: in this process),
    workers' logs and memory watched."""
    if options.sequential or (settings.cluster.scheduler == "local" and len(tasks) <= 1):
        with _RamWatcher(None) if options.watch_ram else contextlib.nullcontext():
            return run_tasks(tasks, settings, client=SEQUENTIAL if options.sequential else None)
    with executor_for(settings, n_tasks=len(tasks)) as client:
        mode = settings.processing.mode
        if "logging" in mode:
            client.register_plugin(WorkerLogs(str(Path.cwd()), "debug" in mode))
        with _RamWatcher(client) if options.watch_ram else contextlib.nullcontext():
            return run_tasks(tasks, settings, client=client)


def _rss_mib() -> float:
    """Resident memory of this process (MiB), from /proc (peak when /proc is absent)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _RamWatcher:
    """``--watch-ram``: logs the memory of each worker (of this process in sequential runs) every
    :data:`WATCH_RAM_INTERVAL` seconds and their peaks at the end."""

    def __init__(self, client):
        self.client = client
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="s1tiling-watch-ram", daemon=True)

    def sample(self) -> dict[str, float]:
        if self.client is None:
            usage = {"main": _rss_mib()}
        else:
            usage = {str(worker): rss / 2**20 for worker, rss in self.client.run(_worker_rss).items()}
        for name, mib in usage.items():
            self.peaks[name] = max(self.peaks.get(name, 0.0), mib)
        return usage

    def _report(self) -> None:
        try:
            usage = self.sample()
        except Exception as err:  # noqa: BLE001 - watching must never stop a run
            logger.debug("RAM watch: %s", err)
            return
        for name, mib in sorted(usage.items()):
            logger.info("RAM: worker %s uses %.0f MiB (peak %.0f MiB)", name, mib, self.peaks[name])

    def _watch(self) -> None:
        self._report()
        while not self._stop.wait(WATCH_RAM_INTERVAL):
            self._report()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._report()
        for name, mib in sorted(self.peaks.items()):
            logger.info("RAM: peak of worker %s: %.0f MiB", name, mib)
        return False


def _worker_rss() -> int:
    """Resident memory of the worker process calling it (bytes)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _update_catalog(settings: Settings) -> None:
    """``{output}/catalog.json`` with what the run made (and what was there); a failure is logged,
    never the run's: the products are complete without it."""
    paths = settings.paths
    output = Path(paths.output).resolve()
    extra = [Path(d).resolve() for d in (paths.lia, paths.ia, paths.gamma_area) if d is not None]
    extra = [d for d in extra if output not in (d, *d.parents)]
    try:
        catalog.update_catalog(output, extra)
    except ImportError as err:
        logger.warning("STAC catalog not updated (pystac missing: %s)", err)
    except Exception as err:  # noqa: BLE001 - a catalog problem must not fail the products made
        logger.error("STAC catalog of %s not updated: %s: %s", output, type(err).__name__, err)


def dry_run(settings: Settings, *, maps: str | None = None) -> str:
    """What :func:`run` would do, as text: the resolved settings, what would be searched and
    downloaded, the plan. A problem that would stop a real run (no product, missing DEM...) is
    described too; only a wrong request file makes a dry run fail."""
    lines = [settings.describe()]
    try:
        if settings.processing.tiles == ("ALL",) and not (settings.data_source.download and maps is None):
            settings = resolve_all_tiles(settings, maps)
            lines.append(f"tiles = ALL: the tiles the products cover: {', '.join(settings.processing.tiles)}")
        if settings.data_source.download and maps is None:
            request = download.request_from_settings(settings)
            found = _search(settings, request)
            lines.append(download.describe_dry_run(found, settings.paths.s1_images))
            planned = images_of_search(settings, found)
            lines.append(f"{len(planned)} tile image(s) would be produced from them (unless already present):")
            lines += [f"  {path}" for path in planned]
        else:
            groups, unreadable = _passes(settings, None)
            for product in unreadable:
                lines.append(f"A real run would not produce the pass of {product.name.name} (exit 71): "
                             f"{product.problem}")
            if maps in ("LIA", "IA"):
                groups = groups + _orbit_file_passes(settings, groups, fetch=False, lines=lines)
            if not groups and not unreadable:
                raise _no_intersection(settings)
            if groups:
                lines.append(_plan(settings, groups, maps, partial(accept_existing, move_aside=False)).describe())
    except S1TilingError as err:
        lines.append(f"A real run would stop here (exit {int(err.exit_code)}): {err}")
    return "\n".join(lines)


def _search(settings: Settings, request) -> list:
    found = download.search_products(request)
    if not found and request.all_tiles:
        raise NoProductFoundError(
            f"roi_by_tiles = ALL: no Sentinel-1 product found between {settings.data_source.first_date} "
            f"and {settings.data_source.last_date}")
    return found


def _passes(settings: Settings, report) -> tuple[list[TileGroup], list[UnreadableProduct]]:
    """The passes over the requested tiles of the local products (those a download could not
    retrieve, or that cannot be read, left out with the passes they belong to), and the unreadable
    products."""
    products, unreadable = open_local_products(settings.paths.s1_images, settings.data_source)
    unavailable = report.unavailable if report is not None else set()
    products = [p for p in products if p.name not in unavailable]
    groups = group_products(products, settings.processing.tiles, settings.data_source, grid.for_settings(settings))
    groups = without_unreadable_passes(groups, unreadable)
    return (_without_incomplete_passes(groups, report) if unavailable else groups), unreadable


def resolve_all_tiles(settings: Settings, maps: str | None = None) -> Settings:
    """``tiles = ALL``: the settings with the tiles the local products cover (at least
    ``tile_to_product_overlap_ratio`` percent, alone or with the other slices of their pass), as
    S1Tiling's ``extract_tiles_to_process``; exit 73 when no product is there."""
    if settings.processing.tiles != ("ALL",):
        return settings
    source = settings.data_source
    tile_grid = grid.for_settings(settings)
    products = open_matching_products(settings.paths.s1_images, source)
    candidates = sorted({getattr(t, "name", t) for p in products
                         for t in tile_grid.tiles_intersecting(p.footprint_split)})
    tiles = sorted({g.tile for g in group_products(products, candidates, source, tile_grid)})
    if not tiles:
        what = "maps" if maps else "products"
        raise NoProductFoundError(
            f"tiles = ALL: no Sentinel-1 product in {settings.paths.s1_images} between {source.first_date} and "
            f"{source.last_date} covers any tile (the {what} of tiles = ALL are those of the products there)")
    logger.info("tiles = ALL: %d tile(s) covered by the products of %s: %s", len(tiles), settings.paths.s1_images,
                ", ".join(tiles))
    return dataclasses.replace(settings, processing=dataclasses.replace(settings.processing, tiles=tuple(tiles)))


def _orbit_file_passes(settings: Settings, groups: list, *, fetch: bool, lines: list | None = None) -> list:
    """The passes of orbit files over the requested tiles for the requested relative orbits that no
    product pass gives (module documentation); ``fetch``: search and download missing orbit files."""
    source = settings.data_source
    wanted = tuple(source.relative_orbit_list)
    covered = {(g.tile, g.relative_orbit) for g in groups}
    if not wanted:
        if groups:
            return []
        raise ConfigurationError(
            f"{settings.config_file}: [DataSource] relative_orbit_list: no Sentinel-1 product in "
            f"{settings.paths.s1_images} gives the passes over tile(s) {', '.join(settings.processing.tiles)}: "
            "give the relative orbits to make the maps of from orbit files (S1Tiling expects at least one)")
    tiles = [t for t in settings.processing.tiles if any((t, r) not in covered for r in wanted)]
    if not tiles:
        return []
    context = Context(settings)
    first, last = source.first_date, source.last_date
    platforms = tuple(source.platform_list)

    def local() -> tuple[dict, set]:
        passes: dict[tuple[str, int], tuple[OrbitPass, Path]] = {}
        available: set[int | None] = set()
        for tile in tiles:
            found = context.orbit_file_passes(tile, platforms, wanted, source.orbit_direction, first,
                                              last + dt.timedelta(days=1))
            for (_platform, orbit), (orbit_pass, path) in found.items():
                passes.setdefault((tile, orbit), (orbit_pass, path))
        for path, platform in context.orbit_files(platforms, first, last + dt.timedelta(days=1)):
            vectors = context.read_orbit_file(path)
            if vectors.absolute_orbits is not None:
                available.update(relative_orbit(platform, a) for a in np.unique(vectors.absolute_orbits))
        return passes, available

    passes, available = local()
    missing = [r for r in wanted if r not in available]
    searched = None
    if missing and fetch:
        searched = _fetch_orbit_files(settings, missing)
        context = Context(settings)  # sees the new files
        passes, available = local()
        missing = [r for r in wanted if r not in available]
    unknown = set()
    if lines is not None and missing:  # a dry run: say what a run would search
        lines.append(f"orbit files to search ({', '.join(orbits.ORBIT_COLLECTIONS)}, {first} to {last}) for "
                     f"relative orbit(s) {', '.join(f'{r:03d}' for r in missing)}"
                     + ("" if source.download else " (download = False: they must be put in eof_dir)"))
        unknown, missing = set(missing), []
    if missing:
        where = (f"in {settings.paths.eof_dir} nor at the provider ({len(searched)} orbit file(s) of "
                 f"{', '.join(orbits.ORBIT_COLLECTIONS)} between {first} and {last})") if searched is not None else (
                 f"in {settings.paths.eof_dir} (valid between {first} and {last}; [DataSource] download = False)")
        raise NoIntersectionError(
            f"relative orbit(s) {', '.join(f'{r:03d}' for r in missing)}"
            f"{' of ' + ', '.join(platforms) if platforms else ''}: no orbit file found {where}: "
            "no map can be made for them")
    result = []
    for r in (r for r in wanted if r not in unknown):
        seen = [t for t in tiles if (t, r) in passes]
        unseen = [t for t in tiles if (t, r) not in passes and (t, r) not in covered]
        if unseen:
            logger.info("relative orbit %03d does not pass over tile(s) %s", r, ", ".join(unseen))
        if not seen and not any(orbit == r for _, orbit in covered):
            raise NoIntersectionError(f"relative orbit {r:03d}: its orbit files show no pass over tile(s) "
                                      f"{', '.join(tiles)} (orbit direction {source.orbit_direction or 'any'})")
        for tile in seen:
            if (tile, r) in covered:
                continue
            orbit_pass, path = passes[tile, r]
            result.append(OrbitFilePass(tile, orbit_pass.platform, r, orbit_pass.direction, orbit_pass.absolute_orbit,
                                        str(orbit_pass.start), str(orbit_pass.stop), path.name))
    return result


def _fetch_orbit_files(settings: Settings, missing_orbits: list[int]) -> list:
    """Search the orbit files of the request's dates and download, one at a time, those that may
    hold the ``missing_orbits`` (their times predicted from the files already read: 175 orbits
    in 12 days); returns what the search found."""
    source = settings.data_source
    found = orbits.search_orbit_files(source.first_date, source.last_date, tuple(source.platform_list),
                                      eodag_config=source.eodag_config, items_per_page=source.searched_items_per_page,
                                      max_retries=source.nb_max_search_retries)
    remaining = set(missing_orbits)
    references: dict[int, Any] = {}
    candidates = sorted(found, key=lambda f: (f.preference[0], f.start, f.preference[1]))
    while remaining and candidates:
        pick = _next_orbit_file(candidates, remaining, references)
        candidates.remove(pick)
        path = orbits.fetch_orbit_file(pick, settings.paths.eof_dir, eodag_config=source.eodag_config,
                                       wait_minutes=source.offline_poll_interval / 60,
                                       timeout_minutes=source.offline_timeout)
        vectors = read_eof(path)
        if vectors.absolute_orbits is None:
            continue
        references[pick.platform] = (int(vectors.absolute_orbits[0]), vectors.times[0])
        remaining -= {relative_orbit(pick.platform, a) for a in np.unique(vectors.absolute_orbits)}
    return found


def _next_orbit_file(candidates: list, remaining: set, references: dict):
    """The candidate orbit file most likely to hold one of the ``remaining`` relative orbits."""
    for candidate in candidates:
        reference = references.get(candidate.platform)
        if reference is None:
            continue
        absolute, when = reference
        for step in range(-175 * 40, 175 * 40):
            if relative_orbit(candidate.platform, absolute + step) not in remaining:
                continue
            predicted = when + np.timedelta64(int(step * _REVOLUTION * 1e9), "ns")
            start, stop = np.datetime64(candidate.start, "ns"), np.datetime64(candidate.stop, "ns")
            if start + np.timedelta64(30, "m") <= predicted <= stop - np.timedelta64(100, "m"):
                return candidate
    unreferenced = [c for c in candidates if c.platform not in references]
    return (unreferenced or candidates)[0]


def _fetch_orbit_files_of(settings: Settings, groups: list[TileGroup]) -> None:
    """With download on, the orbit files of the passes whose maps are made (NORMLIM, gamma0 RTC),
    so that they come from precise orbits as ``S1LIAMap``'s; best effort (a failure is a warning)."""
    context, source = Context(settings), settings.data_source
    for g in groups:
        if context.orbit_file_of(list(g.products)) is not None:
            continue
        day = g.products[0].start_time.date()
        try:
            for candidate in orbits.search_orbit_files(day, day, (g.platform,), eodag_config=source.eodag_config,
                                                       items_per_page=source.searched_items_per_page,
                                                       max_retries=source.nb_max_search_retries):
                if candidate.covers(g.products[0].start_time.replace(tzinfo=None)) and candidate.covers(
                        g.products[-1].stop_time.replace(tzinfo=None)):
                    orbits.fetch_orbit_file(candidate, settings.paths.eof_dir, eodag_config=source.eodag_config)
                    break
        except S1TilingError as err:
            logger.warning("pass %s: no orbit file downloaded (%s): its maps use the annotated orbit", g.key, err)


def _plan(settings: Settings, groups: list, maps: str | None, present: Callable[..., bool]) -> Plan:
    if maps != "IA":  # IA maps lie on the ellipsoid
        check_dem_and_geoid(settings, {g.tile for g in groups})
    if maps is None:
        return plan_products(settings, groups, present)
    return plan_maps_only(settings, groups, maps, present)


def _no_intersection(settings: Settings) -> NoIntersectionError:
    return NoIntersectionError(
        f"no Sentinel-1 product in {settings.paths.s1_images} intersects tile(s) "
        f"{', '.join(settings.processing.tiles)} between {settings.data_source.first_date} "
        f"and {settings.data_source.last_date}")


def _remove_unfiltered(plan: Plan) -> None:
    """``keep_non_filtered_products = False``: a tile image goes once its filtered product exists."""
    for image, filtered in plan.transient:
        if Path(filtered).exists() and Path(image).exists():
            Path(image).unlink()
            logger.info("removed %s (keep_non_filtered_products = False)", Path(image).name)


def _without_incomplete_passes(groups: list[TileGroup], report) -> list[TileGroup]:
    """A pass over a tile one of whose slices never arrived is not produced (no silently partial tile)."""
    kept = []
    for g in groups:
        lost = [name for name in report.products_for_tile(g.tile) if name in report.unavailable
                and (parsed := parse_product_name(name))
                and (parsed.platform, parsed.datatake) == (g.platform, g.datatake)]
        if lost:
            logger.error("tile %s: pass %s not produced, product(s) not retrieved: %s", g.tile, g.key, ", ".join(lost))
        else:
            kept.append(g)
    return kept


def _exit_code(outcome: RunReport | None, report, unreadable: Sequence[UnreadableProduct] = ()) -> int:
    """The run's status: that of its failures when they share one, else the most specific
    (:func:`s1tiling.scheduling.most_specific_exit_code`); unreadable products are 71."""
    codes = [outcome.exit_code if outcome is not None else 0, report.exit_code if report is not None else 0]
    codes += [int(ExitCode.CORRUPT_PRODUCT)] * bool(unreadable)
    return most_specific_exit_code(codes)

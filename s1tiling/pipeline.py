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
- border masks, quicklooks, filtered images: :func:`s1tiling.derived.make`, after their image.

Each task first takes the locks of its outputs (:func:`run_locked`, :class:`s1tiling.writing.OutputLock`):
a run overlapping another on the same outputs waits for what the other is producing, and keeps it.

``S1LIAMap`` / ``S1IAMap`` / ``S1GammaAreaMap`` run the same chain with only the maps to make.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from . import download, grid
from .config import Settings
from .context import Context
from .derived import make as make_derived
from .discovery import TileGroup, UnreadableProduct, group_products, open_local_products, without_unreadable_passes
from .engines import otb, otb_production
from .errors import ExitCode, MissingDEMError, NoIntersectionError, NoProductFoundError, S1TilingError
from .geometry.geoid import Geoid, find_geoid
from .incidence import produce_maps
from .plan import CalibrationJob, Plan, images_of_search, plan_maps_only, plan_products
from .production import calibrate_to_cache, produce
from .s1.names import parse_product_name
from .scheduling import RunReport, Task, most_specific_exit_code, run_tasks
from .terrain_flattening import produce_gamma_area
from .writing import accept_existing, disk_full_error, is_complete, output_locks, remove_replaced

logger = logging.getLogger(__name__)


def check_dem_and_geoid(settings: Settings, tiles) -> None:
    """Exit 75 when DEM tiles are missing under the requested tiles or one of those there cannot be
    opened and read, 76 when no geoid is found or it cannot be read; before any worker starts."""
    context = Context(settings)
    footprints = [context.tile_grid.tile(t).footprint for t in sorted(tiles)]
    missing = sorted({m for footprint in footprints for m in context.dem.missing_tiles(footprint)})
    if missing:
        raise MissingDEMError(
            f"DEM tiles missing in {settings.paths.dem_dir} (format {settings.paths.dem_format!r}) "
            f"for tile(s) {', '.join(sorted(tiles))}: {', '.join(missing)}")
    checked: set[Path] = set()
    for footprint in footprints:
        checked.update(context.dem.check_tiles(footprint))
    geoid = Geoid(find_geoid(settings.paths.geoid_file))  # reads the whole grid (exit 76 if it cannot)
    logger.debug("DEM tiles read: %s; geoid read: %s", ", ".join(sorted(map(str, checked))), geoid.path)


def outputs_of(job) -> tuple[str, ...]:
    """The files a job of the plan writes."""
    if hasattr(job, "images"):
        return tuple(image.path for image in job.images)
    if hasattr(job, "outputs"):
        return tuple(path for _, path in job.outputs)
    return (job.path,)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def run_locked(make, job, context: Context, before: dict[str, tuple[int, int] | None]):
    """Run ``make(job, context)`` holding the locks of the job's outputs (a task of the graph).

    Another live run producing one of them is waited for (and said so); when the outputs are then
    all there, complete and new (not the files ``before`` recorded when the run was planned, which
    are being replaced), the other run made them: they are kept, not made twice.
    """
    outputs = outputs_of(job)
    try:
        with output_locks(outputs):
            if all(_identity(p) != before.get(p) and is_complete(p) for p in outputs):
                logger.info("%s: made meanwhile by another run, kept", ", ".join(Path(p).name for p in outputs))
                return list(outputs)
            return make(job, context)
    except OSError as exc:  # a folder or a lock file that cannot be made: a full disk is 69 (70 under tmp)
        full = disk_full_error(exc, Path(outputs[0]).parent, outputs[0], cache=isinstance(job, CalibrationJob))
        if full is None:
            raise
        raise full from exc


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
        return (make, job, context, {path: _identity(path) for path in outputs_of(job)})

    tasks = [Task(key=m.key, func=run_locked, args=locked(produce_gamma_area if m.family == "GAMMA_AREA"
                                                          else produce_maps, m), kind=m.family.lower())
             for m in plan.map_jobs]
    tasks += [Task(key=c.key, func=run_locked, args=locked(calibrate_to_cache, c), kind="calibrate")
              for c in plan.calibrations]
    tasks += [Task(key=job.key, func=run_locked, args=locked(make_tile, job), kind="ortho",
                   deps=tuple(map_keys[m] for m in (job.sin_lia, job.gamma_area) if m in map_keys)
                   + tuple(calibration_keys[p, pol] for p in job.products for pol in job.polarisations
                           if (p, pol) in calibration_keys))
              for job in plan.tile_jobs]
    tasks += [Task(key=d.key, func=run_locked, args=locked(make_derived, d), deps=(d.after,) if d.after else (),
                   kind=d.kind)
              for d in plan.derived]
    return tasks


def run(settings: Settings, *, maps: str | None = None) -> int:
    """Process the request; return the exit status (0 on success).

    ``maps`` ('LIA', 'IA' or 'GAMMA_AREA') makes only those maps, for the relative orbits of the
    products in ``s1_images`` (nothing is downloaded).
    """
    for key, path in settings.folders().items():
        logger.info("%s: %s", key, path)
    report = None
    if settings.data_source.download and maps is None:
        request = download.request_from_settings(settings)
        report = download.download_products(_search(settings, request), request)  # which logs its summary
    groups, unreadable = _passes(settings, report)
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
        return _exit_code(None, report, unreadable)
    outcome = run_tasks(build_tasks(plan, settings), settings)
    _remove_unfiltered(plan)
    logger.info("%s", outcome.summary())
    return _exit_code(outcome, report, unreadable)


def dry_run(settings: Settings, *, maps: str | None = None) -> str:
    """What :func:`run` would do, as text: the resolved settings, what would be searched and
    downloaded, the plan. A problem that would stop a real run (no product, missing DEM...) is
    described too; only a wrong request file makes a dry run fail."""
    lines = [settings.describe()]
    try:
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


def _plan(settings: Settings, groups: list[TileGroup], maps: str | None, present) -> Plan:
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

"""The whole chain for validated settings: find (or download) products, plan, make, report.

Finding and planning are cheap and done here, in the main process: which passes cover which
tiles (:mod:`s1tiling.discovery`, :mod:`s1tiling.download`), which outputs already exist (a rerun
resumes), whether the DEM and geoid are there, and what to make (:mod:`s1tiling.plan`). The work
itself is a graph of :class:`~s1tiling.scheduling.Task` run by :mod:`s1tiling.scheduling`: one task
per job of the plan, each calling its maker with the job and the run's
:class:`~s1tiling.context.Context`:

- calibration into ``{tmp}/S1`` (``--cache-before-ortho``): :func:`s1tiling.production.calibrate_to_cache`;
- angle and gamma-area maps: :func:`s1tiling.incidence.produce_maps`,
  :func:`s1tiling.terrain_flattening.produce_gamma_area`, before the tile images that need them;
- tile images: :func:`s1tiling.production.produce` (or the OTB engine's);
- border masks, quicklooks, filtered images: :func:`s1tiling.derived.make`, after their image;
- at the end, the STAC catalog of the output folder: :func:`s1tiling.catalog.update_catalog`.

``S1LIAMap`` / ``S1IAMap`` / ``S1GammaAreaMap`` run the same chain with only the maps to make.
"""
from __future__ import annotations

import logging
from pathlib import Path

from . import catalog, download, grid
from .config import Settings
from .context import Context
from .derived import make as make_derived
from .discovery import TileGroup, group_products, open_matching_products
from .engines import otb, otb_production
from .errors import ExitCode, MissingDEMError, NoIntersectionError, NoProductFoundError, S1TilingError
from .geometry.geoid import find_geoid
from .incidence import produce_maps
from .plan import Plan, images_of_search, plan_maps_only, plan_products
from .production import calibrate_to_cache, produce
from .s1.names import parse_product_name
from .scheduling import RunReport, Task, run_tasks
from .terrain_flattening import produce_gamma_area

logger = logging.getLogger(__name__)


def check_dem_and_geoid(settings: Settings, tiles) -> None:
    """Exit 75 when DEM tiles are missing under the requested tiles, 76 when no geoid is found."""
    context = Context(settings)
    missing = sorted({m for t in tiles for m in context.dem.missing_tiles(context.tile_grid.tile(t).footprint)})
    if missing:
        raise MissingDEMError(
            f"DEM tiles missing in {settings.paths.dem_dir} (format {settings.paths.dem_format!r}) "
            f"for tile(s) {', '.join(sorted(tiles))}: {', '.join(missing)}")
    find_geoid(settings.paths.geoid_file)


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
    tasks = [Task(key=m.key, func=produce_gamma_area if m.family == "GAMMA_AREA" else produce_maps,
                  args=(m, context), kind=m.family.lower()) for m in plan.map_jobs]
    tasks += [Task(key=c.key, func=calibrate_to_cache, args=(c, context), kind="calibrate")
              for c in plan.calibrations]
    tasks += [Task(key=job.key, func=make_tile, args=(job, context), kind="ortho",
                   deps=tuple(map_keys[m] for m in (job.sin_lia, job.gamma_area) if m in map_keys)
                   + tuple(calibration_keys[p, pol] for p in job.products for pol in job.polarisations
                           if (p, pol) in calibration_keys))
              for job in plan.tile_jobs]
    tasks += [Task(key=d.key, func=make_derived, args=(d, context), deps=(d.after,) if d.after else (), kind=d.kind)
              for d in plan.derived]
    return tasks


def run(settings: Settings, *, maps: str | None = None) -> int:
    """Process the request; return the exit status (0 on success).

    ``maps`` ('LIA', 'IA' or 'GAMMA_AREA') makes only those maps, for the relative orbits of the
    products in ``s1_images`` (nothing is downloaded).
    """
    report = None
    if settings.data_source.download and maps is None:
        request = download.request_from_settings(settings)
        report = download.download_products(_search(settings, request), request)  # which logs its summary
    groups = _passes(settings, report)
    if not groups:
        if report is not None and report.exit_code:  # products were found, but could not be fetched
            logger.error("nothing to produce over tile(s) %s: the products needed were not retrieved",
                         ", ".join(settings.processing.tiles))
            return report.exit_code
        raise _no_intersection(settings)
    plan = _plan(settings, groups, maps)
    if plan.is_empty:
        logger.info("every requested product is already present: nothing to do")
        _update_catalog(settings)
        return _exit_code(None, report)
    outcome = run_tasks(build_tasks(plan, settings), settings)
    _remove_unfiltered(plan)
    logger.info("%s", outcome.summary())
    _update_catalog(settings)
    return _exit_code(outcome, report)


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
        if settings.data_source.download and maps is None:
            request = download.request_from_settings(settings)
            found = _search(settings, request)
            lines.append(download.describe_dry_run(found, settings.paths.s1_images))
            planned = images_of_search(settings, found)
            lines.append(f"{len(planned)} tile image(s) would be produced from them (unless already present):")
            lines += [f"  {path}" for path in planned]
        else:
            groups = _passes(settings, None)
            if not groups:
                raise _no_intersection(settings)
            lines.append(_plan(settings, groups, maps).describe())
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


def _passes(settings: Settings, report) -> list[TileGroup]:
    """The passes over the requested tiles of the local products (those a download could not
    retrieve left out, with the passes they belong to)."""
    products = open_matching_products(settings.paths.s1_images, settings.data_source)
    unavailable = report.unavailable if report is not None else set()
    products = [p for p in products if p.name not in unavailable]
    groups = group_products(products, settings.processing.tiles, settings.data_source, grid.for_settings(settings))
    return _without_incomplete_passes(groups, report) if unavailable else groups


def _plan(settings: Settings, groups: list[TileGroup], maps: str | None) -> Plan:
    if maps != "IA":  # IA maps lie on the ellipsoid
        check_dem_and_geoid(settings, {g.tile for g in groups})
    if maps is None:
        return plan_products(settings, groups)
    return plan_maps_only(settings, groups, maps)


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
                and (parsed := parse_product_name(name)) and (parsed.platform, parsed.datatake) == (g.platform, g.datatake)]
        if lost:
            logger.error("tile %s: pass %s not produced, product(s) not retrieved: %s", g.tile, g.key, ", ".join(lost))
        else:
            kept.append(g)
    return kept


def _exit_code(outcome: RunReport | None, report) -> int:
    if outcome is not None and outcome.exit_code:
        return outcome.exit_code
    if report is not None and report.exit_code:
        return report.exit_code
    return ExitCode.OK

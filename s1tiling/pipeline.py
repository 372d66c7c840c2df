"""The whole chain for validated settings: find (or download) products, plan, produce, report.

Planning is cheap and done here, in the main process: which passes cover which tiles, which
outputs already exist (a rerun resumes), whether the DEM and geoid are there. The work itself is
a graph of :class:`~s1tiling.scheduling.Task` run by :mod:`s1tiling.scheduling`: one
orthorectification task per (tile, pass) writing every polarisation, then border masks,
quicklooks and speckle filtering of each image. NORMLIM tiles also need the sin(LIA) map of
their tile and relative orbit, gamma0 RTC tiles its gamma area map: one task per missing map
set, run before them (maps on disk are reused). ``S1LIAMap`` / ``S1IAMap`` / ``S1GammaAreaMap``
run the same chain with only those maps to make. With ``--cache-before-ortho`` (native engine)
each (product, polarisation) a job needs is first calibrated into ``{tmp}/S1`` by one task,
unless already there, and the orthorectification tasks read it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from . import grid
from .discovery import group_products, open_matching_products
from .errors import (ConfigurationError, ExitCode, MissingDEMError, NoIntersectionError, NoProductFoundError,
                     S1TilingError)
from .naming import TileProduct

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    """What a run will make: orthorectification jobs and derived products, and what is already there."""

    jobs: list = field(default_factory=list)  # production.TileJob
    derived: list = field(default_factory=list)  # (kind, source tile image, output path, job key or None)
    maps: list = field(default_factory=list)  # incidence.AngleMapJob (LIA, IA or gamma area maps)
    present: list = field(default_factory=list)  # outputs found, not made again
    groups: list = field(default_factory=list)
    transient: list = field(default_factory=list)  # (tile image, its filtered product): image removed once filtered
    calibrations: list = field(default_factory=list)  # (product path, polarisation, cache path) to calibrate

    def describe(self) -> str:
        lines = [f"{len(self.groups)} pass(es) over the requested tiles:"]
        for g in self.groups:
            names = ", ".join(p.name for p in g.products)
            lines.append(f"  {g.key}  {g.coverage:5.1f}% of {g.tile}  [{'/'.join(g.polarisations)}]  {names}")
        lines.append(f"{sum(len(j.outputs) for j in self.jobs)} tile image(s) to produce:")
        lines += [f"  {path}" for job in self.jobs for _, path in job.outputs]
        if self.calibrations:
            lines.append(f"{len(self.calibrations)} calibrated product(s) to cache before orthorectification:")
            lines += [f"  {path}" for _, _, path in self.calibrations]
        if self.maps:
            lines.append(f"{sum(len(m.outputs) for m in self.maps)} map(s) (incidence angles, gamma area) to produce:")
            lines += [f"  {path}" for m in self.maps for _, path in m.outputs]
        if self.derived:
            lines.append(f"{len(self.derived)} derived product(s) to produce:")
            lines += [f"  {kind:<9} {out}" for kind, _, out, _ in self.derived]
        if self.present:
            lines.append(f"{len(self.present)} product(s) already present, kept:")
            lines += [f"  {p}" for p in self.present]
        return "\n".join(lines)


def output_dirs(settings) -> dict:
    paths = settings.paths
    return {"out_dir": str(paths.output), "tmp_dir": str(paths.tmp), "lia_dir": str(paths.lia),
            "ia_dir": str(paths.ia), "gamma_area_dir": str(paths.gamma_area), "eof_dir": str(paths.eof_dir)}


def make_plan(settings, groups, cache_before_ortho: bool = False) -> Plan:
    """Outputs of each pass; those already on disk are skipped (resume).

    ``cache_before_ortho``: the jobs read calibrated products cached in ``{tmp}/S1``; those
    missing are listed in ``Plan.calibrations``.
    """
    from .incidence import map_path, plan_maps
    from .production import TileJob, calibrated_path

    proc = settings.processing
    if proc.calibration in ("normlim", "gamma_naught_rtc") and proc.engine == "otb":
        raise ConfigurationError(f"{settings.config_file}: [Processing] calibration = {proc.calibration}: "
                                 f"not supported by the {proc.engine} engine yet")
    normlim, rtc = proc.calibration == "normlim", proc.calibration == "gamma_naught_rtc"
    drop_unfiltered = settings.filtering.filter != "none" and not settings.filtering.keep_non_filtered_products
    dirs = output_dirs(settings)
    plan = Plan(groups=list(groups))
    map_groups = []  # passes needing the sin(LIA) (NORMLIM) or gamma area (RTC) map of their tile and orbit
    if cache_before_ortho and proc.engine == "otb":
        logger.warning("--cache-before-ortho: ignored by the otb engine")
        cache_before_ortho = False

    def path_of(tile_product, kind=None):
        return tile_product.path(kind, proc.fname_fmt, proc.dname_fmt, dirs)

    for g in groups:
        outputs = []
        job_key = None
        products = [TileProduct(g.products[0].flying_unit_code, g.tile, pol, g.pass_direction, g.relative_orbit,
                                tuple(p.start_time for p in g.products), proc.calibration)
                    for pol in g.polarisations]
        if drop_unfiltered:  # an image whose filtered product exists is done
            finished = [tp for tp in products if path_of(tp, "filtered").exists()]
            plan.present += [str(path_of(tp, "filtered")) for tp in finished]
            products = [tp for tp in products if tp not in finished]
        for tp in products:
            image = path_of(tp)
            if image.exists():
                plan.present.append(str(image))
            else:
                outputs.append((tp.polarisation.upper(), str(image)))
            if drop_unfiltered:
                plan.transient.append((str(image), str(path_of(tp, "filtered"))))
        if outputs:
            sin_lia = str(map_path(settings, "sin_LIA", g)) if normlim else None
            gamma_area = str(map_path(settings, "GAMMA_AREA", g)) if rtc else None
            job = TileJob(g.tile, tuple(str(p.path) for p in g.products), tuple(outputs), sin_lia, gamma_area,
                          cached=cache_before_ortho)
            plan.jobs.append(job)
            if cache_before_ortho:
                for p in g.products:
                    for pol, _ in outputs:
                        cache = (str(p.path), pol, str(calibrated_path(settings, p.name, pol)))
                        if not Path(cache[2]).exists() and cache not in plan.calibrations:
                            plan.calibrations.append(cache)
            job_key = job.key
            if normlim or rtc:
                map_groups.append(g)
        for tp in products:
            image = str(path_of(tp))
            wanted = []
            if settings.mask.generate_border_mask:
                wanted.append("mask")
            if settings.quicklook.generate:
                wanted.append("quicklook")
            if settings.filtering.filter != "none":
                wanted.append("filtered")
            for kind in wanted:
                out = path_of(tp, kind)
                if out.exists():
                    plan.present.append(str(out))
                else:
                    made_now = any(image == path for job in plan.jobs for _, path in job.outputs)
                    plan.derived.append((kind, image, str(out), job_key if made_now else None))
    plan.maps, present = plan_maps(settings, map_groups, "GAMMA_AREA" if rtc else "LIA")
    plan.present += present
    return plan


def maps_plan(settings, groups, family: str) -> Plan:
    """Only the maps (``family`` 'LIA', 'IA' or 'GAMMA_AREA') of the tiles and relative orbits of ``groups``."""
    from .incidence import plan_maps

    plan = Plan(groups=list(groups))
    plan.maps, plan.present = plan_maps(settings, groups, family)
    return plan


def check_dem_and_geoid(settings, tiles) -> None:
    """Exit 75 when DEM tiles are missing under the requested tiles, 76 when no geoid is found."""
    from .geometry.geoid import find_geoid
    from .production import dem_catalog

    catalog, tile_grid = dem_catalog(settings), grid.for_settings(settings)
    missing = sorted({m for t in tiles for m in catalog.missing_tiles(tile_grid.tile(t).footprint)})
    if missing:
        raise MissingDEMError(
            f"DEM tiles missing in {settings.paths.dem_dir} (format {settings.paths.dem_format!r}) "
            f"for tile(s) {', '.join(sorted(tiles))}: {', '.join(missing)}")
    find_geoid(settings.paths.geoid_file)


def _download(settings, dry_run):
    """Search and fetch what the request needs; None for a dry run (which only lists it)."""
    from . import download

    request = download.request_from_settings(settings)
    found = download.search_products(request)
    if not found and request.all_tiles:
        raise NoProductFoundError(
            f"roi_by_tiles = ALL: no Sentinel-1 product found between {settings.data_source.first_date} "
            f"and {settings.data_source.last_date}")
    if dry_run:
        print(download.describe_dry_run(found, settings.paths.s1_images))
        planned = images_from_search(settings, found)
        print(f"{len(planned)} tile image(s) would be produced from them (unless already present):")
        print("\n".join(f"  {path}" for path in planned))
        return None
    return download.download_products(found, request)  # which logs its summary


def images_from_search(settings, found) -> list[str]:
    """The tile images a run would make from the products a search found (for a dry run)."""
    wanted = set(settings.data_source.polarisation.upper().split("-"))
    passes: dict[tuple, list] = {}
    for product in found:
        for tile in product.tiles:
            if tile in settings.processing.tiles:
                passes.setdefault((tile, *product.pass_key), []).append(product)
    images = []
    for (tile, *_), members in sorted(passes.items(), key=lambda item: str(item[0])):
        members.sort(key=lambda m: m.start)
        first = members[0]
        for pol in sorted(wanted.intersection(*[set(m.polarisations) for m in members]), reverse=True):
            tp = TileProduct(first.platform.lower(), tile, pol, first.pass_direction or "ASC", first.relative_orbit or 0,
                             tuple(m.start for m in members), settings.processing.calibration)
            images.append(str(tp.path(None, settings.processing.fname_fmt, settings.processing.dname_fmt,
                                      output_dirs(settings))))
    return images


def build_tasks(plan, settings) -> list:
    from . import derived
    from .scheduling import Task

    if settings.processing.engine == "otb":
        from .engines.otb import require_otb
        from .engines.otb_production import produce

        require_otb()  # exit 77 before any work
    else:
        from .production import produce
    from .incidence import produce_maps
    from .production import calibrate_to_cache
    from .terrain_flattening import produce_gamma_area

    map_keys = {path: m.key for m in plan.maps for _, path in m.outputs}
    calibration_keys = {(product, pol): f"calibrate/{Path(product).name}/{pol}"
                        for product, pol, _ in plan.calibrations}
    makers = {"GAMMA_AREA": produce_gamma_area}  # the others: produce_maps
    tasks = [Task(key=m.key, func=makers.get(m.family, produce_maps), args=(m, settings), kind=m.family.lower())
             for m in plan.maps]
    tasks += [Task(key=key, func=calibrate_to_cache, args=(product, pol, settings), kind="calibrate")
              for (product, pol), key in calibration_keys.items()]
    tasks += [Task(key=job.key, func=produce, args=(job, settings), kind="ortho",
                   deps=tuple(map_keys[m] for m in (job.sin_lia, job.gamma_area) if m in map_keys)
                   + tuple(calibration_keys[p, pol] for p in job.products for pol, _ in job.outputs
                           if (p, pol) in calibration_keys))
              for job in plan.jobs]
    for kind, source, out, dep in plan.derived:
        tasks.append(Task(key=f"{kind}/{Path(out).name}", func=derived.make, args=(kind, source, out, settings),
                          deps=(dep,) if dep else (), kind=kind))
    return tasks


def run(settings, *, dry_run: bool = False, cache_before_ortho: bool = False, maps: str | None = None) -> int:
    """Process the request; return the exit status (0 on success).

    ``cache_before_ortho`` keeps the calibrated products in ``{tmp}/S1`` for other tiles and
    runs (native engine). ``dry_run`` prints the settings and the plan and does nothing; a
    problem that would stop a real run (no product, missing DEM...) is printed too, and the
    exit status stays 0: only a wrong request file fails a dry run. ``maps`` ('LIA', 'IA' or
    'GAMMA_AREA') makes only those maps, for the relative orbits of the products in
    ``s1_images`` (nothing is downloaded).
    """
    if not dry_run:
        return _run(settings, dry_run=False, maps=maps, cache_before_ortho=cache_before_ortho)
    print(settings.describe())
    try:
        return _run(settings, dry_run=True, maps=maps, cache_before_ortho=cache_before_ortho)
    except S1TilingError as err:
        print(f"A real run would stop here (exit {int(err.exit_code)}): {err}")
        return ExitCode.OK


def _run(settings, *, dry_run: bool, maps: str | None = None, cache_before_ortho: bool = False) -> int:
    tiles = settings.processing.tiles
    report = _download(settings, dry_run) if settings.data_source.download and maps is None else None
    products = open_matching_products(settings.paths.s1_images, settings.data_source)
    unavailable = report.unavailable if report is not None else set()
    products = [p for p in products if p.name not in unavailable]
    groups = group_products(products, tiles, settings.data_source, grid.for_settings(settings))
    if unavailable:
        groups = _without_incomplete_passes(groups, report)
    if not groups:
        if report is not None and report.exit_code:  # products were found, but could not be fetched
            logger.error("nothing to produce over tile(s) %s: the products needed were not retrieved",
                         ", ".join(tiles))
            return report.exit_code
        raise NoIntersectionError(
            f"no Sentinel-1 product in {settings.paths.s1_images} intersects tile(s) {', '.join(tiles)} "
            f"between {settings.data_source.first_date} and {settings.data_source.last_date}")
    if maps != "IA":  # IA maps lie on the ellipsoid
        check_dem_and_geoid(settings, {g.tile for g in groups})
    plan = make_plan(settings, groups, cache_before_ortho) if maps is None else maps_plan(settings, groups, maps)
    if dry_run:
        print(plan.describe())
        return ExitCode.OK
    if not plan.jobs and not plan.derived and not plan.maps:
        logger.info("every requested product is already present: nothing to do")
        return _exit_code(None, report)
    from .scheduling import run_tasks

    outcome = run_tasks(build_tasks(plan, settings), settings)
    _remove_unfiltered(plan)
    logger.info("%s", outcome.summary())
    return _exit_code(outcome, report)


def _remove_unfiltered(plan) -> None:
    """``keep_non_filtered_products = False``: a tile image goes once its filtered product exists."""
    for image, filtered in plan.transient:
        if Path(filtered).exists() and Path(image).exists():
            Path(image).unlink()
            logger.info("removed %s (keep_non_filtered_products = False)", Path(image).name)


def _without_incomplete_passes(groups, report):
    """A pass over a tile one of whose slices never arrived is not produced (no silently partial tile)."""
    from .discovery import parse_product_name

    kept = []
    for g in groups:
        lost = [name for name in report.products_for_tile(g.tile) if name in report.unavailable
                and (parsed := parse_product_name(name)) and (parsed.platform, parsed.datatake) == (g.platform, g.datatake)]
        if lost:
            logger.error("tile %s: pass %s not produced, product(s) not retrieved: %s", g.tile, g.key, ", ".join(lost))
        else:
            kept.append(g)
    return kept


def _exit_code(outcome, report) -> int:
    if outcome is not None and outcome.exit_code:
        return outcome.exit_code
    if report is not None and report.exit_code:
        return report.exit_code
    return ExitCode.OK

"""The ``s1tiling`` (alias ``S1Processor``), ``S1LIAMap``, ``S1IAMap`` and ``S1GammaAreaMap``
commands, and the sub-commands ``s1tiling catalog OUTPUT`` and ``s1tiling export-zarr OUTPUT``:
the one place failures become exit codes.

Every option of S1Tiling 1.4.2's programs is accepted with its meaning (``--dryrun``,
``--cache-before-ortho/--no-cache-before-ortho``, ``--searched_items_per_page``,
``--nb_max_search_retries``, ``--eodag_download_timeout``, ``--eodag_download_wait``,
``--trace-errors``, ``--debug-otb``, ``--debug-caches``, ``--watch-ram``, ``--graphs``), plus our
spellings (``--dry-run``). Options that set a request value override the request file's.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading

from . import __version__, logs
from .errors import ExitCode, S1TilingError, Terminated

# The chain's modules (pipeline, config, catalog, timeseries) are imported by the functions that use
# them: dask starts its worker processes with multiprocessing's "spawn", which runs the command's
# script again in each of them (as ``__mp_main__``); the console scripts import this module, which
# therefore stays light (no numba, rasterio or dask), or every worker imported the whole chain
# before its first task (1.4-1.7 s per worker of a 2-worker run on 2 cores).

logger = logging.getLogger("s1tiling")

INTERRUPTED = int(ExitCode.INTERRUPTED)  # 78, as S1Tiling: Ctrl-C, SIGTERM (scancel, walltime, docker stop)


#: program -> (description, family of the maps it makes alone, or None for the whole chain)
PROGRAMS = {
    "s1tiling": ("Sentinel-1 GRD products -> calibrated, orthorectified Sentinel-2 tiles.", None),
    "S1LIAMap": ("Local incidence angle maps (sin(LIA), and LIA in degrees x 100 with produce_lia_map) "
                 "over the requested tiles, of the relative orbits of the products in s1_images and of "
                 "relative_orbit_list (from precise orbit files, downloaded with download = True).", "LIA"),
    "S1IAMap": ("Incidence angle maps on the WGS84 ellipsoid (ia_maps_to_produce) over the requested tiles, "
                "of the relative orbits of the products in s1_images and of relative_orbit_list (from precise "
                "orbit files, downloaded with download = True).", "IA"),
    "S1GammaAreaMap": ("Gamma area maps (terrain flattening of gamma0 RTC calibration) of the relative orbits "
                       "of the products in s1_images over the requested tiles.", "GAMMA_AREA"),
}


def _parser(prog: str = "s1tiling") -> argparse.ArgumentParser:
    description, maps = PROGRAMS[prog]
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Exit codes: 0 success, 66 failed tasks, 67 download error, 68 offline products "
               "timed out, 69/70 output/cache disk full, 71 corrupt product, 72 configuration "
               "error, 73/74 no product found/intersecting, 75 DEM missing, 76 geoid missing, "
               "77 external application missing, 78 interrupted (SIGINT, SIGTERM) or unexpected error.",
    )
    parser.add_argument("config", metavar="CONFIG", help="request file (S1Processor.cfg format)")
    parser.add_argument("--dry-run", "--dryrun", dest="dry_run", action="store_true",
                        help="print what would be searched, downloaded and produced; do nothing (write nothing)")
    parser.add_argument("--strict", action="store_true",
                        help="unknown sections and keys in the request file are errors (as [Processing] strict = True)")
    if maps is None:
        parser.add_argument("--cache-before-ortho", action=argparse.BooleanOptionalAction, default=None,
                            help="keep calibrated and cut S1 images on disk before orthorectification "
                                 "(in {tmp}/S1, reused by later tiles and runs)")
    search = parser.add_argument_group("searching and downloading (override the request file)")
    search.add_argument("--searched_items_per_page", type=int, metavar="N",
                        help="products asked from the provider per search page (default 20)")
    search.add_argument("--nb_max_search_retries", type=int, metavar="N",
                        help="retries of a search that timed out (default 5)")
    search.add_argument("--eodag_download_timeout", type=float, metavar="MIN",
                        help="minutes to wait for offline products (request key offline_timeout)")
    search.add_argument("--eodag_download_wait", type=float, metavar="MIN",
                        help="minutes between two tries of an offline product (offline_poll_interval)")
    debug = parser.add_argument_group("investigation")
    debug.add_argument("--trace-errors", action="store_true", help="show the full traceback of errors")
    debug.add_argument("--debug-otb", action="store_true",
                       help="run every task in this process, one after the other, without dask")
    debug.add_argument("--debug-caches", action="store_true",
                       help="keep the intermediate files of the run (temporary folders) instead of purging them")
    debug.add_argument("--watch-ram", action="store_true", help="log the memory used by each worker while running")
    debug.add_argument("--graphs", action="store_true",
                       help="write the task graph of the run (tasks-<date>.dot, and .svg with graphviz) "
                            "in the current directory")
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Request values the command-line options replace."""
    source: dict[str, str] = {}
    for option, key, scale in (("searched_items_per_page", "searched_items_per_page", 1),
                               ("nb_max_search_retries", "nb_max_search_retries", 1),
                               ("eodag_download_timeout", "offline_timeout", 1),
                               ("eodag_download_wait", "offline_poll_interval", 60)):
        value = getattr(args, option, None)
        if value is not None:
            value = value * scale
            source[key] = str(int(value)) if float(value).is_integer() else str(value)
    overrides = {"DataSource": source} if source else {}
    processing: dict[str, str] = {}
    if getattr(args, "cache_before_ortho", None) is not None:
        processing["cache_before_ortho"] = str(args.cache_before_ortho)
    if args.debug_caches:
        processing["debug_caches"] = "True"
    if getattr(args, "strict", False):
        processing["strict"] = "True"
    if processing:
        overrides["Processing"] = processing
    return overrides


def main(argv: list[str] | None = None, prog: str = "s1tiling") -> int:
    """Runs the chain (or, for ``prog`` S1LIAMap/S1IAMap/S1GammaAreaMap, makes only those maps) for
    a request file; returns the process exit status."""
    maps = PROGRAMS[prog][1]
    if prog == "s1tiling" and argv is None:
        argv = sys.argv[1:]
    if prog == "s1tiling" and argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (status 2)
        return done.code if isinstance(done.code, int) else int(bool(done.code))

    from . import config, pipeline

    logs.setup_logging()
    debug = args.trace_errors
    options = pipeline.RunOptions(trace_errors=args.trace_errors, sequential=args.debug_otb,
                                  watch_ram=args.watch_ram, graphs=args.graphs)
    with _signals_interrupt():
        try:
            collector = logs.start_collecting()  # what reading the request says goes to the log files too
            try:
                settings = config.load_config(args.config, _overrides(args), create_directories=not args.dry_run)
            finally:
                logging.getLogger("s1tiling").removeHandler(collector)
            debug = debug or "debug" in settings.processing.mode
            logs.setup_logging(settings, files=not args.dry_run)
            if args.dry_run:
                print(pipeline.dry_run(settings, maps=maps))
                status = int(ExitCode.OK)
            else:
                logs.replay_into_files(collector)
                status = int(pipeline.run(settings, maps=maps, options=options))
        except S1TilingError as err:
            logger.error("%s", err, exc_info=debug)
            status = int(err.exit_code)
        except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM, once the run's cleanup (finally blocks) is done
            name = err.signal_name if isinstance(err, Terminated) else "SIGINT"
            logger.error("Terminated by signal %s: run stopped, its temporary files removed", name)
            status = INTERRUPTED
        except Exception as err:  # noqa: BLE001 - the last resort: one message and a known status
            logger.error("Unexpected error: %s: %s", type(err).__name__, err, exc_info=debug)
            status = int(ExitCode.UNEXPECTED_ERROR)
    logger.debug("Exit status %d", status)
    return status


@contextlib.contextmanager
def _signals_interrupt():
    """SIGINT and SIGTERM raise :class:`~s1tiling.errors.Terminated` in the main thread, so that every
    ``finally`` of the run (temporary files, dask cluster, batch jobs) runs before the exit; a second
    signal during that cleanup is ignored (SIGKILL still ends the process).  The previous handlers
    are restored on exit.  Outside the main thread nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[str] = []

    def interrupt(signum, _frame):
        if received:  # already cleaning up
            return
        received.append(signal.Signals(signum).name)
        raise Terminated(received[0])

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def lia_main(argv: list[str] | None = None) -> int:
    """``S1LIAMap``: the LIA maps of a request file's tiles."""
    return main(argv, "S1LIAMap")


def ia_main(argv: list[str] | None = None) -> int:
    """``S1IAMap``: the ellipsoid incidence angle maps of a request file's tiles."""
    return main(argv, "S1IAMap")


def gamma_area_main(argv: list[str] | None = None) -> int:
    """``S1GammaAreaMap``: the gamma area maps of a request file's tiles."""
    return main(argv, "S1GammaAreaMap")


#: ``s1tiling <sub-command> ...``: name -> description
SUBCOMMANDS = {
    "catalog": "(Re)build OUTPUT/catalog.json, the STAC catalog of the products in the output folder OUTPUT, "
               "from the files alone (names and GeoTIFF tags; outputs of S1Tiling too).",
    "export-zarr": "Write or update one Zarr store per tile and relative orbit (OUTPUT/zarr/<tile>_<orbit>.zarr, "
                   "1x512x512 chunks, and <tile>_<orbit>_time.zarr, 64x128x128 chunks) from the STAC catalog of "
                   "OUTPUT, appending the dates that arrived since the last export.",
}


def _subcommand_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"s1tiling {name}", description=SUBCOMMANDS[name])
    parser.add_argument("output", metavar="OUTPUT", help="output folder ([Paths] output of the request file)")
    if name == "catalog":
        parser.add_argument("--also", metavar="DIR", action="append", default=[],
                            help="another folder with products of this output (LIA/IA/gamma area maps "
                                 "kept outside OUTPUT); repeatable")
        parser.add_argument("--rebuild", action="store_true", help="rewrite every item, not only the changed ones")
    else:
        from . import timeseries

        parser.add_argument("--tile", action="append", help="only this tile (repeatable; default: all)")
        parser.add_argument("--orbit", action="append", type=int, help="only this relative orbit (repeatable)")
        parser.add_argument("--layout", action="append", choices=sorted(timeseries.ZARR_LAYOUTS),
                            help="spatial (1x512x512 chunks) or time (64x128x128); default: both")
        parser.add_argument("--calibration", help="the calibration to export when OUTPUT has several")
        parser.add_argument("--folder", metavar="DIR", help="where the stores go (default: OUTPUT/zarr)")
    return parser


def _subcommand(name: str, argv: list[str]) -> int:
    try:
        args = _subcommand_parser(name).parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(bool(done.code))
    from . import catalog, timeseries

    logs.setup_logging()
    try:
        if name == "catalog":
            report = catalog.update_catalog(args.output, args.also, rebuild=args.rebuild)
            print(report.summary())
            return int(ExitCode.TASKS_FAILED) if report.skipped else int(ExitCode.OK)
        results = timeseries.export_zarr(args.output, args.tile, orbits=args.orbit,
                                      layouts=args.layout or tuple(timeseries.ZARR_LAYOUTS),
                                      folder=args.folder, calibration=args.calibration)
        for result in results:
            print(f"{result.store}: {result.dates} date(s), {result.added} added"
                  + (" (rewritten)" if result.rewritten else ""))
        if not results:
            logger.error("%s: no acquisition in its STAC catalog to export", args.output)
            return int(ExitCode.NO_PRODUCT_FOUND)
        return int(ExitCode.OK)
    except S1TilingError as err:
        logger.error("%s", err)
        return int(err.exit_code)
    except (FileNotFoundError, LookupError, ValueError, ImportError) as err:
        logger.error("%s", err)
        return int(ExitCode.CONFIG_ERROR)
    except KeyboardInterrupt:
        logger.error("Interrupted")
        return INTERRUPTED

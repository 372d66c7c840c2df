"""The ``s1tiling`` (alias ``S1Processor``), ``S1LIAMap``, ``S1IAMap`` and ``S1GammaAreaMap``
commands: the one place failures become exit codes."""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading

from . import __version__
from .errors import ExitCode, S1TilingError, Terminated

logger = logging.getLogger("s1tiling")

INTERRUPTED = int(ExitCode.INTERRUPTED)  # 78, as S1Tiling: Ctrl-C, SIGTERM (scancel, walltime, docker stop)


#: program -> (description, family of the maps it makes alone, or None for the whole chain)
PROGRAMS = {
    "s1tiling": ("Sentinel-1 GRD products -> calibrated, orthorectified Sentinel-2 tiles.", None),
    "S1LIAMap": ("Local incidence angle maps (sin(LIA), and LIA in degrees x 100 with produce_lia_map) "
                 "of the relative orbits of the products in s1_images over the requested tiles.", "LIA"),
    "S1IAMap": ("Incidence angle maps on the WGS84 ellipsoid (ia_maps_to_produce) of the relative orbits "
                "of the products in s1_images over the requested tiles.", "IA"),
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
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be searched, downloaded and produced; do nothing")
    if maps is None:
        parser.add_argument("--cache-before-ortho", action="store_true",
                            help="keep calibrated and cut S1 images on disk before orthorectification")
    parser.add_argument("--version", action="version", version=f"s1tiling {__version__}")
    return parser


def main(argv: list[str] | None = None, prog: str = "s1tiling") -> int:
    """Runs the chain (or, for ``prog`` S1LIAMap/S1IAMap/S1GammaAreaMap, makes only those maps) for
    a request file; returns the process exit status."""
    maps = PROGRAMS[prog][1]
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (status 2)
        return done.code if isinstance(done.code, int) else int(bool(done.code))

    from . import config, logs, pipeline

    logs.setup_logging()
    debug = False
    with _signals_interrupt():
        try:
            settings = config.load_config(args.config)
            debug = "debug" in settings.processing.mode
            logs.setup_logging(settings)
            status = int(pipeline.run(settings, dry_run=args.dry_run, maps=maps,
                                      cache_before_ortho=getattr(args, "cache_before_ortho", False)))
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

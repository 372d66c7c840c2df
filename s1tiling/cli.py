"""The ``s1tiling`` (alias ``S1Processor``), ``S1LIAMap``, ``S1IAMap`` and ``S1GammaAreaMap``
commands: the one place failures become exit codes."""
from __future__ import annotations

import argparse
import logging

from . import __version__, config, logs, pipeline
from .errors import ExitCode, S1TilingError

logger = logging.getLogger("s1tiling")

INTERRUPTED = 130  # conventional status of a process stopped by Ctrl-C (128 + SIGINT)


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
               "77 external application missing, 130 interrupted.",
    )
    parser.add_argument("config", metavar="CONFIG", help="request file (S1Processor.cfg format)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be searched, downloaded and produced; do nothing (write nothing)")
    parser.add_argument("--strict", action="store_true",
                        help="unknown sections and keys in the request file are errors (as [Processing] strict = True)")
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

    logs.setup_logging()
    debug = False
    try:
        overrides: dict[str, dict[str, str]] = {"Processing": {}}
        if getattr(args, "cache_before_ortho", False):
            overrides["Processing"]["cache_before_ortho"] = "True"
        if args.strict:
            overrides["Processing"]["strict"] = "True"
        settings = config.load_config(args.config, overrides, create_directories=not args.dry_run)
        debug = "debug" in settings.processing.mode
        logs.setup_logging(settings, files=not args.dry_run)
        if args.dry_run:
            print(pipeline.dry_run(settings, maps=maps))
            status = int(ExitCode.OK)
        else:
            status = int(pipeline.run(settings, maps=maps))
    except S1TilingError as err:
        logger.error("%s", err, exc_info=debug)
        status = int(err.exit_code)
    except KeyboardInterrupt:
        logger.error("Interrupted")
        status = INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the last resort: one message and a known status
        logger.error("Unexpected error: %s: %s", type(err).__name__, err, exc_info=debug)
        status = int(ExitCode.TASKS_FAILED)
    logger.debug("Exit status %d", status)
    return status


def lia_main(argv: list[str] | None = None) -> int:
    """``S1LIAMap``: the LIA maps of a request file's tiles."""
    return main(argv, "S1LIAMap")


def ia_main(argv: list[str] | None = None) -> int:
    """``S1IAMap``: the ellipsoid incidence angle maps of a request file's tiles."""
    return main(argv, "S1IAMap")


def gamma_area_main(argv: list[str] | None = None) -> int:
    """``S1GammaAreaMap``: the gamma area maps of a request file's tiles."""
    return main(argv, "S1GammaAreaMap")

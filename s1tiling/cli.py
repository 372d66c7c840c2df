"""The ``s1tiling`` (alias ``S1Processor``), ``S1LIAMap``, ``S1IAMap`` and ``S1GammaAreaMap``
commands, and the sub-commands ``s1tiling catalog OUTPUT`` and ``s1tiling export-zarr OUTPUT``:
the one place failures become exit codes."""
from __future__ import annotations

import argparse
import logging
import sys

from . import __version__, catalog, config, logs, pipeline, timeseries
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
    if prog == "s1tiling" and argv is None:
        argv = sys.argv[1:]
    if prog == "s1tiling" and argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (status 2)
        return done.code if isinstance(done.code, int) else int(bool(done.code))

    logs.setup_logging()
    debug = False
    try:
        overrides = {"Processing": {"cache_before_ortho": "True"}} if getattr(args, "cache_before_ortho", False) else {}
        settings = config.load_config(args.config, overrides)
        debug = "debug" in settings.processing.mode
        logs.setup_logging(settings)
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
    logs.setup_logging()
    try:
        if name == "catalog":
            report = catalog.update_catalog(args.output, args.also, rebuild=args.rebuild)
            print(report.summary())
            return int(ExitCode.TASKS_FAILED) if report.skipped else int(ExitCode.OK)
        done = timeseries.export_zarr(args.output, args.tile, orbits=args.orbit,
                                      layouts=args.layout or tuple(timeseries.ZARR_LAYOUTS),
                                      folder=args.folder, calibration=args.calibration)
        for result in done:
            print(f"{result.store}: {result.dates} date(s), {result.added} added"
                  + (" (rewritten)" if result.rewritten else ""))
        if not done:
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

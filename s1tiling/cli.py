"""The ``s1tiling`` (alias ``S1Processor``) command: the one place failures become exit codes."""
from __future__ import annotations

import argparse
import logging

from . import __version__
from .errors import ExitCode, S1TilingError

logger = logging.getLogger("s1tiling")

INTERRUPTED = 130  # conventional status of a process stopped by Ctrl-C (128 + SIGINT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s1tiling",
        description="Sentinel-1 GRD products -> calibrated, orthorectified Sentinel-2 tiles.",
        epilog="Exit codes: 0 success, 66 failed tasks, 67 download error, 68 offline products "
               "timed out, 69/70 output/cache disk full, 71 corrupt product, 72 configuration "
               "error, 73/74 no product found/intersecting, 75 DEM missing, 76 geoid missing, "
               "77 external application missing, 130 interrupted.",
    )
    parser.add_argument("config", metavar="CONFIG", help="request file (S1Processor.cfg format)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be searched, downloaded and produced; do nothing")
    parser.add_argument("--cache-before-ortho", action="store_true",
                        help="keep calibrated and cut S1 images on disk before orthorectification")
    parser.add_argument("--version", action="version", version=f"s1tiling {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the chain for a request file; returns the process exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (status 2)
        return done.code if isinstance(done.code, int) else int(bool(done.code))

    from . import config, logs, pipeline

    logs.setup_logging()
    debug = False
    try:
        settings = config.load_config(args.config)
        debug = "debug" in settings.processing.mode
        logs.setup_logging(settings)
        status = int(pipeline.run(settings, dry_run=args.dry_run,
                                  cache_before_ortho=args.cache_before_ortho))
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

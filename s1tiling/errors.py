"""Exit codes of the ``s1tiling`` command and the exceptions that carry them.

Every failure the user must act on is raised as a :class:`S1TilingError` subclass;
:func:`s1tiling.cli.main` is the one place that turns them into exit codes.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    TASKS_FAILED = 66
    DOWNLOAD_ERROR = 67
    OFFLINE_TIMEOUT = 68
    OUTPUT_DISK_FULL = 69
    CACHE_DISK_FULL = 70
    CORRUPT_PRODUCT = 71
    CONFIG_ERROR = 72
    NO_PRODUCT_FOUND = 73
    NO_PRODUCT_INTERSECTS = 74
    MISSING_DEM = 75
    MISSING_GEOID = 76
    MISSING_APPLICATION = 77
    INTERRUPTED = 78       # SIGINT (Ctrl-C) or SIGTERM (scancel, walltime, docker stop): S1Tiling's 78
    UNEXPECTED_ERROR = 78  # an error the program did not foresee (S1Tiling exits 78 for it too)


class S1TilingError(Exception):
    """Base class: a failure with a message meant for the user and an exit code."""

    exit_code: ExitCode = ExitCode.TASKS_FAILED


class ConfigurationError(S1TilingError):
    exit_code = ExitCode.CONFIG_ERROR


class ProductError(S1TilingError):
    """A Sentinel-1 product cannot be read: names the product and the file."""

    exit_code = ExitCode.CORRUPT_PRODUCT

    def __init__(self, product: object, file: object | None, problem: str):
        self.product = str(product)
        self.file = str(file) if file is not None else None
        self.problem = problem
        where = f"{self.product}" + (f": {self.file}" if self.file else "")
        super().__init__(f"{where}: {problem}")


class DownloadError(S1TilingError):
    exit_code = ExitCode.DOWNLOAD_ERROR


class OfflineTimeoutError(S1TilingError):
    exit_code = ExitCode.OFFLINE_TIMEOUT


class CorruptProductError(S1TilingError):
    exit_code = ExitCode.CORRUPT_PRODUCT


class NoProductFoundError(S1TilingError):
    exit_code = ExitCode.NO_PRODUCT_FOUND


class NoIntersectionError(S1TilingError):
    exit_code = ExitCode.NO_PRODUCT_INTERSECTS


class MissingDEMError(S1TilingError):
    exit_code = ExitCode.MISSING_DEM


class MissingGeoidError(S1TilingError):
    exit_code = ExitCode.MISSING_GEOID


class MissingApplicationError(S1TilingError):
    exit_code = ExitCode.MISSING_APPLICATION


class OutputDiskFullError(S1TilingError):
    exit_code = ExitCode.OUTPUT_DISK_FULL


class CacheDiskFullError(S1TilingError):
    exit_code = ExitCode.CACHE_DISK_FULL


class NoWorkerError(S1TilingError):
    """No dask worker joined the run within ``[Cluster] worker_timeout`` (batch jobs still queued,
    a scheduler without workers): nothing was lost, a rerun later does the work."""

    exit_code = ExitCode.TASKS_FAILED


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (handled like Ctrl-C)."""

    def __init__(self, signal_name: str = "SIGTERM"):
        super().__init__(signal_name)
        self.signal_name = signal_name

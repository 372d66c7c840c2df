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

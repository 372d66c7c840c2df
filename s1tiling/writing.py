"""Writing products: GeoTIFF creation options, atomic verified writes, output locks and metadata.

A product is written under a hidden temporary name in its destination folder
(``.<name>.<host>.<pid>.<random>.tmp<ext>``) and renamed to its final name only once it is
complete and verified: GDAL's errors while it was open (a failed flush at close, which GDAL only
prints, included) fail the write, and the closed file is reopened and checked (its directory
opens, every block lies within the file, the pixel type and size are those written, see
:func:`check_raster`). So a file with a product's name is always complete; it carries
:data:`COMPLETE_TAG`, which a rerun requires before it keeps a file (:func:`accept_existing`:
anything else is moved aside as ``<name>.corrupt`` and made again). A full disk is exit 69
(output) or 70 (cache, under ``tmp``). A killed run leaves only temporaries, which
:func:`cleanup_stale_temporaries` removes.

Runs that overlap on the same outputs take a lock per output (:class:`OutputLock`, a file
``.<name>.lock`` beside its temporaries, saying host, process and start time): a run waits for
what another live run is producing, and takes over the lock of a run that died.

``[Processing] output_format = COG``: a Cloud Optimized GeoTIFF cannot be written block by block,
so the temporary GeoTIFF is translated by GDAL's COG driver (:func:`translate_to_cog`: 512-pixel
tiles, overviews averaged for backscatter and maps, nearest for masks, the same compression)
into another temporary, which replaces it before it is verified and renamed: same names, same tags.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from lxml import etree
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from . import __version__
from .errors import CacheDiskFullError, ConfigurationError, OutputDiskFullError, S1TilingError
from .naming import CALIBRATION_TYPE, TileProduct, UnsafePathError
from .times import as_utc

try:  # rasterio >= 1.4: GDAL's errors of one thread, collected (see gdal_errors)
    from rasterio._err import _ERROR_STACK, stack_errors as _stack_errors
except ImportError:  # pragma: no cover - older rasterio
    _ERROR_STACK = _stack_errors = None

logger = logging.getLogger(__name__)

#: GDAL's CE_Failure: errors of this class and above fail a write
_CE_FAILURE = 3

# ---------------------------------------------------------------------------
# Creation options

#: OTB / numpy pixel type names accepted as first word of ``creation_options.*``
PIXEL_TYPES = {
    "uint8": "uint8", "int8": "int8", "uint16": "uint16", "int16": "int16",
    "uint32": "uint32", "int32": "int32", "float": "float32", "float32": "float32",
    "double": "float64", "float64": "float64",
}

_FLOAT_DEFLATE = {"COMPRESS": "DEFLATE", "PREDICTOR": "3", "TILED": "YES"}
#: Tile images: DEFLATE at its fastest level, no predictor. On speckled backscatter the
#: floating-point predictor makes files larger, and level 6 takes twice the time of level 1
#: for 1% less (``benchmarks/bench_ortho.py --write-floor`` measures the options of a request).
_TILE_DEFLATE = {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "TILED": "YES"}

#: product kind (``creation_options.<kind>``) -> default (pixel type, GDAL creation options)
DEFAULT_CREATION_OPTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "tiled": ("float32", _TILE_DEFLATE),
    "filtered": ("float32", _FLOAT_DEFLATE),
    "mask": ("uint8", {"COMPRESS": "DEFLATE"}),
    # Angle and area maps are smooth: the predictors pay (PREDICTOR=2 makes uint16 angles 20%
    # smaller), DEFLATE level 1 takes half the time of level 6 for 5% more. Tiled: the tiles
    # that use a map read it block by block (strips the tile's width would be decompressed once
    # per block column: 5 times at 10 m).
    "lia_deg": ("uint16", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "2", "TILED": "YES"}),
    "lia_sin": ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3", "TILED": "YES"}),
    "ia": ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3", "TILED": "YES"}),
    "gamma_area": ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3", "TILED": "YES"}),
}

_OPTION_RE = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)=(.*)$")


def parse_creation_options(text: str, setting: str = "creation_options") -> tuple[str | None, dict[str, str]]:
    """Parse ``[Processing] creation_options.*``: an optional pixel type then GDAL options.

    Accepts ``uint8 COMPRESS=DEFLATE``, OTB extended-filename style
    ``COMPRESS=DEFLATE&gdal:co:PREDICTOR=3`` (a leading ``?`` is ignored), and
    options separated by spaces or commas. Returns ``(numpy dtype name or None, options)``
    with upper-case option names.
    """
    words = [w for w in re.split(r"[\s,&]+", text.strip().lstrip("?")) if w]
    dtype = None
    if words and words[0].lower() in PIXEL_TYPES:
        dtype = PIXEL_TYPES[words.pop(0).lower()]
    options: dict[str, str] = {}
    for word in words:
        word = re.sub(r"^gdal:co:", "", word, flags=re.IGNORECASE)
        match = _OPTION_RE.match(word)
        if not match:
            raise ConfigurationError(
                f"{setting} = {text!r}: {word!r} is not a GDAL creation option; expected "
                f"[pixel type] KEY=VALUE ... with pixel type one of {', '.join(PIXEL_TYPES)}")
        options[match.group(1).upper()] = match.group(2)
    return dtype, options


def creation_options_for(kind: str, configured: Mapping | None = None) -> tuple[str, dict[str, str]]:
    """Pixel type and GDAL creation options of a product ``kind``.

    ``configured`` maps kinds to the request file's ``creation_options.<kind>``,
    as text or already parsed as ``(pixel type or None, options)`` with options a
    mapping or ``KEY=VALUE`` strings. Configured options replace the default options
    (as in S1Tiling), a configured pixel type replaces the default one.
    """
    default_dtype, default_options = DEFAULT_CREATION_OPTIONS[kind]
    value = (configured or {}).get(kind)
    if value is None:
        return default_dtype, dict(default_options)
    setting = f"creation_options.{kind}"
    if isinstance(value, str):
        dtype, options = parse_creation_options(value, setting)
    else:
        dtype, raw = value
        items = raw.items() if isinstance(raw, Mapping) else (str(o).split("=", 1) for o in raw)
        options = {str(k).upper(): str(v) for k, v in items}
    dtype = PIXEL_TYPES.get(str(dtype).lower(), dtype) if dtype else default_dtype
    if options.get("PREDICTOR") == "3" and not np.issubdtype(np.dtype(dtype), np.floating):
        raise ConfigurationError(f"{setting} = {value!r}: PREDICTOR=3 needs a floating-point "
                                 f"pixel type, not {dtype}")
    return dtype, options


# ---------------------------------------------------------------------------
# Cloud Optimized GeoTIFF

#: ``[Processing] output_format`` values
OUTPUT_FORMATS = ("GTiff", "COG")
COG_BLOCKSIZE = 512
#: GTiff creation options -> COG driver ones (``None``: not a COG option, the COG driver decides)
_COG_OPTION_NAMES = {"TILED": None, "BLOCKXSIZE": None, "BLOCKYSIZE": None, "INTERLEAVE": None,
                     "PHOTOMETRIC": None, "SPARSE_OK": None, "COPY_SRC_OVERVIEWS": None,
                     "ZLEVEL": "LEVEL", "ZSTD_LEVEL": "LEVEL", "JPEG_QUALITY": "QUALITY", "WEBP_LEVEL": "QUALITY"}
_COG_PREDICTORS = {"1": "NO", "2": "STANDARD", "3": "FLOATING_POINT"}


def cog_options(options: Mapping[str, str], overview_resampling: str = "AVERAGE") -> dict[str, str]:
    """The COG driver's options for a product written with the GTiff ``options``: the same
    compression, 512-pixel tiles, overviews resampled with ``overview_resampling``."""
    cog: dict[str, str] = {}
    for key, value in options.items():
        key = key.upper()
        name = _COG_OPTION_NAMES.get(key, key)
        if name == "PREDICTOR":
            value = _COG_PREDICTORS.get(str(value), str(value))
        if name is not None:
            cog[name] = str(value)
    cog.update(BLOCKSIZE=str(COG_BLOCKSIZE), OVERVIEW_RESAMPLING=overview_resampling.upper())
    return cog


def translate_to_cog(path: str | os.PathLike, options: Mapping[str, str], overview_resampling: str = "AVERAGE") -> None:
    """Replace the complete GeoTIFF ``path`` (a temporary) by its Cloud Optimized GeoTIFF, through
    another temporary beside it (removed on failure). Tags, nodata and georeferencing are kept."""
    path = Path(path)
    cog = temporary_path(path)
    try:
        rasterio.shutil.copy(path, cog, driver="COG", **cog_options(options, overview_resampling))
        os.replace(cog, path)
    except BaseException as exc:
        # before the partial COG goes, freeing space: a COG needs about the GeoTIFF's size
        free = _free_bytes(path.parent)
        full = _is_disk_full(exc, path.parent) or (free is not None and free < _size(path))
        _remove(cog)
        if full:
            raise OSError(errno.ENOSPC, f"no space left for the COG of {path.name} ({exc})") from exc
        if isinstance(exc, Exception) and not isinstance(exc, (OSError, RasterioError)):
            raise RasterioError(f"{path}: translation to COG failed: {exc}") from exc
        raise


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ---------------------------------------------------------------------------
# Atomic, verified writes

_HOST = socket.gethostname().split(".")[0] or "host"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp(?P<ext>\.[A-Za-z0-9]+)?$")
_SIDECARS = (".aux.xml",)
#: The tag every verified writer sets in what it publishes: a file under a product's name without it
#: (or that does not pass :func:`check_raster`) was not published by a verified write, and a rerun remakes it.
COMPLETE_TAG = ("PRODUCTION_STATUS", "COMPLETE")
#: Suffix of a product moved aside because it did not pass the checks of a rerun.
CORRUPT_SUFFIX = ".corrupt"
#: Below this many free bytes, a failed write is taken for a full disk (the errno of a failed libtiff
#: write is not always reported: GDAL prints it).
_FULL_BELOW = 1 << 20
_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "out of disk space", "ENOSPC", "EDQUOT")


class UnverifiedOutputError(S1TilingError):
    """A written file failed its checks (or GDAL reported errors writing it): it was not published."""

    def __init__(self, final, problem: str):
        self.final, self.problem = str(final), problem
        super().__init__(f"{final}: not published, the written file failed its checks: {problem}")


def temporary_path(final: Path) -> Path:
    """Hidden, unique temporary name of ``final`` in the same folder (never a product name)."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{final.suffix}")


def check_output_path(final: str | os.PathLike) -> Path:
    """``final`` as an absolute Path, if it has no ``..`` component; :class:`~s1tiling.naming.UnsafePathError`
    (exit 71) otherwise.

    Every writer goes through it (:func:`atomic_output`); with the name fields checked by
    :func:`s1tiling.naming.product_path` (the one place output paths are made), no output is
    written outside its configured folder.
    """
    text = os.fspath(final)
    if "\0" in text or ".." in Path(text).parts:
        raise UnsafePathError(f"refusing to write {text!r}: '..' in an output path would leave its folder")
    return Path(text).absolute()


@contextmanager
def gdal_errors() -> Iterator[list[str]]:
    """Collect the GDAL errors (failures, not warnings) signalled in this thread within the block.

    GDAL reports a failed libtiff flush when a dataset is closed, and only prints it: the list this
    yields is filled when the block ends, so that a writer can fail on it. Errors that rasterio
    turns into exceptions are raised as usual, not collected.
    """
    found: list[str] = []
    if _stack_errors is None:  # rasterio < 1.4: the checks of the written file still apply
        yield found
        return
    with _stack_errors():
        try:
            yield found
        finally:
            found += [str(err) for err in (_ERROR_STACK.get() or ()) if _error_class(err) >= _CE_FAILURE]


def _error_class(err) -> int:
    args = getattr(err, "args", ())
    return args[0] if args and isinstance(args[0], int) else _CE_FAILURE


def _blocks_problem(dataset, size: int, sparse_ok: bool) -> str | None:
    """The first block of a GeoTIFF that is missing or ends past the end of the file, if any."""
    for band in range(1, dataset.count + 1):
        block_rows, block_cols = dataset.block_shapes[band - 1]
        across, down = -(-dataset.width // block_cols), -(-dataset.height // block_rows)
        for y in range(down):
            for x in range(across):
                offset = dataset.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
                length = dataset.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
                if not offset or not length or int(offset) == 0 or int(length) == 0:
                    if sparse_ok:
                        continue
                    return f"band {band} block ({x}, {y}) was never written"
                end = int(offset) + int(length)
                if end > size:
                    return (f"truncated: band {band} block ({x}, {y}) ends at byte {end}, "
                            f"past the end of the file ({size} bytes)")
    return None


def check_raster(path: str | os.PathLike, *, width: int | None = None, height: int | None = None,
                 count: int | None = None, dtype: str | None = None, sparse_ok: bool = False,
                 complete_tag: bool = False) -> str | None:
    """What is wrong with the raster file ``path``, or None when it passes every check.

    Checks: the file is not empty, GDAL opens it (its directory is readable) without error; for a
    GeoTIFF every block of every band lies within the file (a truncated file fails here, whatever
    its directory says), the first and last blocks decode; other formats (the JPEG quicklooks)
    decode entirely; its GDAL side-car (``.aux.xml``), if any, is well-formed XML. Given, the size,
    band count and pixel type must match; ``complete_tag``: :data:`COMPLETE_TAG` must be set.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if size == 0:
        return "empty file (0 bytes)"
    sidecar = Path(f"{path}.aux.xml")
    if sidecar.exists():
        try:
            etree.parse(str(sidecar))
        except (OSError, etree.XMLSyntaxError) as exc:
            return f"its side-car {sidecar.name} is not well-formed ({exc})"
    try:
        with gdal_errors() as errors, warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as dataset:
                problem = _dataset_problem(dataset, size, width, height, count, dtype, sparse_ok, complete_tag)
    except (RasterioError, OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if problem is None and errors:
        problem = f"GDAL reported: {'; '.join(errors[:5])}"
    return problem


def _dataset_problem(dataset, size, width, height, count, dtype, sparse_ok, complete_tag) -> str | None:
    for what, expected, actual in (("width", width, dataset.width), ("height", height, dataset.height),
                                   ("band count", count, dataset.count),
                                   ("pixel type", dtype, dataset.dtypes[0])):
        if expected is not None and str(expected) != str(actual):
            return f"{what} is {actual}, expected {expected}"
    if complete_tag and dataset.tags().get(COMPLETE_TAG[0]) != COMPLETE_TAG[1]:
        return f"no {COMPLETE_TAG[0]}={COMPLETE_TAG[1]} tag (not published by a verified write)"
    if dataset.driver == "GTiff":
        problem = _blocks_problem(dataset, size, sparse_ok)
        if problem:
            return problem
        for band in range(1, dataset.count + 1):
            windows = [window for _, window in dataset.block_windows(band)]
            for window in {0: windows[0], -1: windows[-1]}.values():
                dataset.read(band, window=window)
    else:
        dataset.read()
    return None


def is_complete(path: str | os.PathLike, inputs: Sequence[str] | None = None) -> bool:
    """Whether ``path`` is a product a run may keep: it passes :func:`check_raster` and carries
    :data:`COMPLETE_TAG`; given ``inputs`` (product names), its ``INPUT_S1_IMAGES`` lists exactly those."""
    if not Path(path).is_file() or check_raster(path, complete_tag=True) is not None:
        return False
    return inputs is None or _inputs_of(path) == tuple(inputs)


def _inputs_of(path) -> tuple[str, ...] | None:
    try:
        with rasterio.open(path) as dataset:
            listed = dataset.tags().get("INPUT_S1_IMAGES")
    except (RasterioError, OSError):
        return None
    return None if listed is None else tuple(name.strip() for name in listed.split(",") if name.strip())


def accept_existing(path: str | os.PathLike, inputs: Sequence[str] | None = None, *,
                    move_aside: bool = True) -> bool:
    """Whether an output already there is kept by a rerun (the ``present`` check of :mod:`s1tiling.plan`).

    A file is kept when :func:`is_complete`. One that is not (truncated, unreadable, without the
    completion tag) is moved aside to ``<name>.corrupt`` with a warning (unless ``move_aside`` is
    False: ``--dry-run`` writes nothing) and will be made again. A complete file made from other
    ``inputs`` (a pass that since gained a slice) is left in place, to be replaced when its new
    version is published.
    """
    path = Path(path)
    if not path.is_file():
        return False
    problem = check_raster(path, complete_tag=True)
    if problem is None:
        return inputs is None or _inputs_of(path) == tuple(inputs)
    if move_aside:
        aside = path.with_name(path.name + CORRUPT_SUFFIX)
        try:
            os.replace(path, aside)
            for sidecar in _SIDECARS:
                if Path(f"{path}{sidecar}").exists():
                    os.replace(f"{path}{sidecar}", f"{aside}{sidecar}")
        except FileNotFoundError:  # moved meanwhile by another run
            return False
        logger.warning("%s is not a complete product (%s): moved aside to %s, it will be made again",
                       path, problem, aside.name)
    else:
        logger.warning("%s is not a complete product (%s): a run would move it aside and make it again",
                       path, problem)
    return False


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if any(message in str(exc) for message in _FULL_MESSAGES):
        return True
    free = _free_bytes(folder)
    return free is not None and free < _FULL_BELOW


def disk_full_error(exc: BaseException, folder: str | os.PathLike, what: str, *,
                    cache: bool) -> S1TilingError | None:
    """The error to raise for ``exc``, raised writing ``what`` into ``folder``, when the disk is full:
    :class:`CacheDiskFullError` (exit 70) with ``cache``, else :class:`OutputDiskFullError` (exit 69);
    None when it is not full."""
    folder = Path(folder)
    if not _is_disk_full(exc, folder):
        return None
    kind, error = ("cache", CacheDiskFullError) if cache else ("output", OutputDiskFullError)
    why = exc.problem if isinstance(exc, UnverifiedOutputError) else str(exc)
    return error(f"{what}: {kind} disk full while writing it ({_free_bytes(folder)} bytes free in {folder}), "
                 f"nothing published ({why})")


def _remove(path: Path) -> None:
    for candidate in (path, *(Path(f"{path}{s}") for s in _SIDECARS)):
        try:
            candidate.unlink()
        except FileNotFoundError:
            pass


def remove_replaced(replaced: Iterable[str | os.PathLike], by: str | os.PathLike) -> list[Path]:
    """Remove the outputs ``replaced`` by the one just published (``by``), logging each; return them."""
    removed: list[Path] = []
    for old in map(Path, replaced):
        if old == Path(by) or not old.exists():
            continue
        _remove(old)
        removed.append(old)
        logger.info("removed %s: replaced by %s", old, Path(by).name)
    return removed


@contextmanager
def atomic_output(final: str | os.PathLike, *, cache: bool = False, verify: Callable[[Path], str | None] | None = None,
                  replaces: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path to write ``final`` to; publish it (rename) on success, delete it on error.

    ``verify(temporary)`` returns what is wrong with the written file (None when nothing): a file
    that fails is not published (:class:`UnverifiedOutputError`). A full disk raises
    :class:`OutputDiskFullError` (exit 69), or :class:`CacheDiskFullError` (exit 70) with ``cache``
    (files under ``tmp``), naming ``final``. GDAL side-car files (``.aux.xml``) follow the main file.
    ``replaces``: outputs this one supersedes (the single-slice image of a pass that gained a
    slice), removed as soon as it is published.
    """
    final = check_output_path(final)
    tmp = temporary_path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        problem = verify(tmp) if verify is not None else None
        if problem is not None:
            raise UnverifiedOutputError(final, problem)
        for sidecar in _SIDECARS:
            if Path(f"{tmp}{sidecar}").exists():
                os.replace(f"{tmp}{sidecar}", f"{final}{sidecar}")
        os.replace(tmp, final)
        remove_replaced(replaces, final)
    except BaseException as exc:
        full = None
        if isinstance(exc, Exception) and not isinstance(exc, (OutputDiskFullError, CacheDiskFullError)):
            full = disk_full_error(exc, final.parent, str(final), cache=cache)  # before the temporary goes
        _remove(tmp)
        if full is not None:
            raise full from exc
        raise


class AtomicRasterWriter:
    """Context manager writing a one-band GeoTIFF block by block, atomically and verified.

    >>> with AtomicRasterWriter(path, crs=crs, transform=t, width=w, height=h,
    ...                         tags=meta) as out:
    ...     out.write(block, Window(0, row, w, n))

    On a clean exit the tags (with :data:`COMPLETE_TAG`) are set and the file closed (with
    ``output_format="COG"``, translated to a COG whose overviews use ``overview_resampling``); any GDAL
    error while it was open (a failed flush at close included) fails the write; the closed file is
    reopened and checked (:func:`check_raster`), and only then renamed to ``path``. On an
    exception nothing is left behind. ``cache``: the file is a cache under ``tmp`` (a full disk
    is exit 70, not 69); ``replaces``: see :func:`atomic_output`.
    """

    def __init__(self, path: str | os.PathLike, *, crs: str | CRS, transform: Affine, width: int, height: int,
                 dtype: str = "float32", nodata: float | None = 0,
                 creation_options: Mapping[str, str] | None = None,
                 tags: Mapping[str, str] | None = None, cache: bool = False,
                 replaces: Iterable[str | os.PathLike] = (), output_format: str = "GTiff",
                 overview_resampling: str = "AVERAGE"):
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        self.path = Path(path)
        self.tags = dict(tags or {})
        self.cache = cache
        self.replaces = tuple(replaces)
        self.output_format, self.overview_resampling = output_format, overview_resampling
        options = dict(DEFAULT_CREATION_OPTIONS["tiled"][1] if creation_options is None else creation_options)
        self._options = options
        self._sparse_ok = str(options.get("SPARSE_OK", "")).upper() in ("TRUE", "YES", "ON", "1")
        self._profile: dict[str, Any] = dict(driver="GTiff", crs=crs, transform=transform, width=int(width),
                             height=int(height), count=1, dtype=dtype, nodata=nodata,
                             **{k.lower(): v for k, v in options.items()})
        self._stack: ExitStack | None = None
        self._dataset: Any = None  # the open rasterio dataset, between __enter__ and __exit__
        self._errors: list[str] = []

    @property
    def dtype(self) -> str:
        return self._profile["dtype"]

    @property
    def shape(self) -> tuple[int, int]:
        return self._profile["height"], self._profile["width"]

    def _verify(self, tmp: Path) -> str | None:
        if self._errors:
            return f"GDAL reported errors while writing it: {'; '.join(self._errors[:3])}"
        return check_raster(tmp, width=self._profile["width"], height=self._profile["height"], count=1,
                            dtype=self.dtype, sparse_ok=self._sparse_ok, complete_tag=True)

    def __enter__(self) -> AtomicRasterWriter:
        with ExitStack() as stack:
            self._tmp = tmp = stack.enter_context(atomic_output(self.path, cache=self.cache, verify=self._verify,
                                                    replaces=self.replaces))
            self._errors = stack.enter_context(gdal_errors())
            self._dataset = rasterio.open(tmp, "w", **self._profile)
            self._stack = stack.pop_all()
        return self

    def write(self, array: np.ndarray, window: Window | None = None) -> None:
        """Write a 2-D block at ``window`` (the whole raster when ``None``)."""
        self._dataset.write(np.asarray(array, dtype=self.dtype), 1, window=window)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        stack, dataset = self._stack, self._dataset
        self._stack = self._dataset = None
        try:
            if exc is None:
                dataset.update_tags(**{**{k: str(v) for k, v in self.tags.items()}, COMPLETE_TAG[0]: COMPLETE_TAG[1]})
            dataset.close()
            if exc is None and self.output_format == "COG":
                translate_to_cog(self._tmp, self._options, self.overview_resampling)
        except BaseException as error:
            if exc is None:  # a failed flush (disk full) fails the whole write
                if not stack.__exit__(type(error), error, error.__traceback__):  # type: ignore[union-attr]
                    raise
                return False
        return stack.__exit__(exc_type, exc, tb)  # type: ignore[union-attr]  # (stack: set by __enter__)


def write_like(source: str | os.PathLike, out: str | os.PathLike,
               compute: Callable[[np.ndarray, int, int], np.ndarray], *, tags: Callable[[dict], Mapping[str, str]],
               dtype: str, creation_options: Mapping[str, str], nodata: float | None, halo: int = 0,
               strip_rows: int = 1024, read_from: str | os.PathLike | None = None,
               output_format: str = "GTiff", overview_resampling: str = "AVERAGE") -> Path:
    """Write ``out`` atomically on the grid of the one-band raster ``source``, strip by strip.

    Each strip (rows ``top`` to ``bottom``) is ``compute(values, above, below)``, ``values`` being
    the rows of ``read_from`` (default: ``source``, which must have the same grid) from
    ``top - halo`` to ``bottom + halo`` clipped to the image, ``above`` and ``below`` the rows of
    it outside the strip. ``tags`` makes the output's tags from the source's. ``output_format``
    and ``overview_resampling``: as :class:`AtomicRasterWriter`'s.
    """
    with ExitStack() as stack:
        src = stack.enter_context(rasterio.open(source))
        data = stack.enter_context(rasterio.open(read_from)) if read_from is not None else src
        if (data.height, data.width) != (src.height, src.width) or not data.transform.almost_equals(src.transform,
                                                                                                   1e-6):
            raise ValueError(f"{read_from} is on grid {data.transform} {data.width}x{data.height}, "
                             f"not on that of {source}: {src.transform} {src.width}x{src.height}")
        writer = stack.enter_context(AtomicRasterWriter(
            out, crs=src.crs, transform=src.transform, width=src.width, height=src.height, dtype=dtype,
            nodata=nodata, creation_options=creation_options, tags=tags(src.tags()), output_format=output_format,
            overview_resampling=overview_resampling))
        for top in range(0, src.height, strip_rows):
            bottom = min(top + strip_rows, src.height)
            read_top, read_bottom = max(0, top - halo), min(src.height, bottom + halo)
            values = data.read(1, window=Window(0, read_top, src.width, read_bottom - read_top))
            writer.write(compute(values, top - read_top, read_bottom - bottom), Window(0, top, src.width, bottom - top))
    return Path(out)


# ---------------------------------------------------------------------------
# Output locks

#: Seconds between two looks at a lock held by another run, and between two "still waiting" lines.
LOCK_POLL = 0.5
LOCK_REPORT_INTERVAL = 60.0
#: Where the file system cannot lock files (flock), a lock of another host older than this is stale.
LOCK_MAX_AGE_HOURS = 24.0


def lock_path(final: str | os.PathLike) -> Path:
    """The lock file of an output: ``.<name>.lock`` beside it (and its temporaries)."""
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


def _lock_text(holder: Mapping[str, object]) -> str:
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {holder.get('start', '?')}"


def read_lock(path: str | os.PathLike) -> dict:
    """The holder a lock file names (``host``, ``pid``, ``start``); empty when unreadable."""
    try:
        holder = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class OutputLock:
    """An exclusive lock on one output, between runs (processes, hosts) sharing its folder.

    The lock is a file ``.<name>.lock`` held with ``flock`` (released by the kernel when its
    process dies, on NFS too) and naming its holder: host, pid and start time. :meth:`acquire`
    waits while another live process holds it, logging who; a lock file left by a dead process is
    taken over, and said so. Where the file system has no locks, a lock is live while its process
    runs (same host) or for :data:`LOCK_MAX_AGE_HOURS` (another host).
    """

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final)
        self.path = lock_path(final)
        self._fd: int | None = None
        #: whether :meth:`acquire` had to wait for another run
        self.waited = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock; with ``wait`` False, return False at once when another run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        reported = 0.0
        while True:
            holder = self._try()
            if holder is None:
                return True
            if not wait:
                return False
            now = time.monotonic()
            if not self.waited or now - reported >= LOCK_REPORT_INTERVAL:
                logger.info("%s is being produced by another run (%s): waiting for it",
                            self.final, _lock_text(holder))
                reported = now
            self.waited = True
            time.sleep(LOCK_POLL)

    def _try(self) -> dict | None:
        """Take the lock if free (None), else the holder's description."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return read_lock(self.path) or {"host": "?"}
            except OSError:  # no locks on this file system: the holder's process tells
                holder = read_lock(self.path)
                if holder and _holder_alive(holder):
                    return holder
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released (removed) meanwhile: try the new file
                return self._try()
            previous = read_lock(self.path)
            if previous:
                logger.warning("%s: taking over the lock of a run that is gone (%s)", self.final,
                               _lock_text(previous))
            start = datetime.now(timezone.utc).isoformat(timespec="seconds")
            mine = {"host": _HOST, "pid": os.getpid(), "start": start}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode(), 0)
            self._fd = fd
            return None
        finally:
            if self._fd != fd:
                os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiting run then locks a new file
        finally:
            os.close(self._fd)
            self._fd = None


def _holder_alive(holder: Mapping[str, object]) -> bool:
    if holder.get("host") == _HOST:
        try:
            return _pid_alive(int(str(holder.get("pid", 0))))
        except (TypeError, ValueError):
            return False
    try:
        started = datetime.fromisoformat(str(holder.get("start")))
    except ValueError:
        return False
    return (datetime.now(timezone.utc) - started).total_seconds() < LOCK_MAX_AGE_HOURS * 3600


@contextmanager
def output_locks(paths: Iterable[str | os.PathLike]) -> Iterator[list[OutputLock]]:
    """Hold the locks of several outputs (taken in sorted order, so that runs never deadlock)."""
    with ExitStack() as stack:
        yield [stack.enter_context(OutputLock(path)) for path in sorted(set(map(str, paths)))]


def cleanup_stale_temporaries(folder: str | os.PathLike, max_age_hours: float = 24.0) -> list[Path]:
    """Remove temporaries left in ``folder`` by killed runs; return what was removed.

    A temporary is stale when it is older than ``max_age_hours`` or when it was
    made on this host by a process that no longer exists.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.iterdir():
        match = _TMP_RE.match(path.name.removesuffix(".aux.xml"))
        if not match or not path.is_file():
            continue
        too_old = now - path.stat().st_mtime > max_age_hours * 3600
        dead = match["host"] == _HOST and not _pid_alive(int(match["pid"]))
        if too_old or dead:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------
# Metadata

def format_acquisition_datetime(when: datetime | np.datetime64) -> str:
    """S1Tiling's ``ACQUISITION_DATETIME`` format: ``YYYY:MM:DDTHH:MM:SSZ`` (UTC)."""
    return as_utc(when).strftime("%Y:%m:%dT%H:%M:%SZ")


#: the S1Tiling release whose products ours stand in for (names, metadata, request files)
S1TILING_COMPATIBLE_VERSION = "1.4.2"


def software_name() -> str:
    """``TIFFTAG_SOFTWARE``: S1Tiling's ``S1 Tiling v<version>`` form (S1Tiling's own checks look for
    ``S1 Tiling``), naming this project and its version too."""
    return f"S1 Tiling v{S1TILING_COMPATIBLE_VERSION} compatible (s1tiling {__version__})"


def production_tags(description: str, when: datetime | None = None) -> dict[str, str]:
    """``TIFFTAG_DATETIME`` (production time, UTC, TIFF format), ``TIFFTAG_SOFTWARE`` and
    ``TIFFTAG_IMAGEDESCRIPTION``."""
    when = when or datetime.now(timezone.utc)
    return {
        "TIFFTAG_DATETIME": when.strftime("%Y:%m:%d %H:%M:%S"),
        "TIFFTAG_IMAGEDESCRIPTION": description,
        "TIFFTAG_SOFTWARE": software_name(),
    }


def sentinel_short(flying_unit_code: str) -> str:
    """``s1a`` -> ``1A`` (as in "Sentinel-1A")."""
    return flying_unit_code[1:].upper()


def tile_description(product: TileProduct) -> str:
    """S1Tiling's ``TIFFTAG_IMAGEDESCRIPTION`` of a tile product."""
    unit = sentinel_short(product.flying_unit_code)
    if product.calibration == "normlim":
        return f"Sigma0 Normlim Calibrated Sentinel-{unit} IW GRD"
    if product.calibration == "gamma_naught_rtc":
        return f"Gamma0 RTC Calibrated Sentinel-{unit} IW GRD"
    return f"{product.calibration} calibrated orthorectified Sentinel-{unit} IW GRD"


def tile_metadata(product: TileProduct, *, input_products: Sequence[str], absolute_orbit: int,
                  noise_removed: bool, dem_info: str, interpolator: str, spatial_resolution: float,
                  engine: str, orbit_source: str, extra: Mapping[str, str] | None = None,
                  production_time: datetime | None = None, lower_signal_value: float | None = None) -> dict[str, str]:
    """GeoTIFF metadata of a tile product (INTERFACE.md), valued as S1Tiling writes them.

    ``ACQUISITION_DATETIME`` is the earliest input start time; ``_1``, ``_2``...
    each input's, in time order. ``extra`` (the ``[Metadata]`` pairs) cannot
    override the standard keys. ``ENGINE`` and ``ORBIT_SOURCE`` are additions. With noise removed,
    ``LOWER_SIGNAL_VALUE`` (S1Tiling's key) is the value that replaced non-positive pixels.
    """
    tags = {str(k): str(v) for k, v in (extra or {}).items()}
    times = product.acquisition_times
    tags["ACQUISITION_DATETIME"] = format_acquisition_datetime(times[0])
    for index, when in enumerate(times, start=1):
        tags[f"ACQUISITION_DATETIME_{index}"] = format_acquisition_datetime(when)
    tags.update({
        "CALIBRATION": CALIBRATION_TYPE[product.calibration],
        "DEM_INFO": dem_info,
        "ENGINE": engine,
        "FLYING_UNIT_CODE": product.flying_unit_code,
        "IMAGE_TYPE": "BACKSCATTERING",
        "INPUT_S1_IMAGES": ", ".join(input_products),
        "NOISE_REMOVED": str(bool(noise_removed)),
        "ORBIT_DIRECTION": product.orbit_direction,
        "ORBIT_NUMBER": f"{int(absolute_orbit):06d}",
        "ORBIT_SOURCE": orbit_source,
        "ORTHORECTIFICATION_INTERPOLATOR": interpolator,
        "ORTHORECTIFIED": "true",
        "POLARIZATION": product.polarisation,
        "RELATIVE_ORBIT_NUMBER": f"{product.orbit:03d}",
        "S2_TILE_CORRESPONDING_CODE": product.tile_name,
        "SPATIAL_RESOLUTION": str(float(spatial_resolution)),
    })
    if noise_removed and lower_signal_value is not None:
        tags["LOWER_SIGNAL_VALUE"] = repr(float(lower_signal_value))
    tags.update(production_tags(tile_description(product), production_time))
    return tags


def derived_tags(source_tags: Mapping[str, str], description: str, **changes: str) -> dict[str, str]:
    """Tags of a product derived from another (mask, filtered): the source's tags with a
    new production time and description, plus ``changes``."""
    tags = {k: v for k, v in source_tags.items() if k != "AREA_OR_POINT"}
    tags.update(changes)
    tags.update(production_tags(description))
    return tags

"""Writing products: GeoTIFF creation options, atomic writes and product metadata.

A product is written under a hidden temporary name in its destination folder
(``.<name>.<host>.<pid>.<random>.tmp<ext>``) and renamed to its final name only
once complete, so a file with a product's name is always complete, and a killed
run leaves only temporaries, which :func:`cleanup_stale_temporaries` removes.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from . import __version__
from .errors import ConfigurationError, OutputDiskFullError
from .naming import CALIBRATION_TYPE, TileProduct
from .times import as_utc

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
    # smaller), DEFLATE level 1 takes half the time of level 6 for 5% more.
    "lia_deg": ("uint16", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "2"}),
    "lia_sin": ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3"}),
    "ia": ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3"}),
    "gamma_area": ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3"}),
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
# Atomic writes

_HOST = socket.gethostname().split(".")[0] or "host"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp(?P<ext>\.[A-Za-z0-9]+)?$")
_SIDECARS = (".aux.xml",)


def temporary_path(final: Path) -> Path:
    """Hidden, unique temporary name of ``final`` in the same folder (never a product name)."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{final.suffix}")


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _remove(path: Path) -> None:
    for candidate in (path, *(Path(f"{path}{s}") for s in _SIDECARS)):
        try:
            candidate.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def atomic_output(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``final`` to; rename it on success, delete it on error.

    A full disk (``ENOSPC``) raises :class:`OutputDiskFullError` naming ``final``.
    GDAL side-car files (``.aux.xml``) follow the main file.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    try:
        yield tmp
        for sidecar in _SIDECARS:
            if Path(f"{tmp}{sidecar}").exists():
                os.replace(f"{tmp}{sidecar}", f"{final}{sidecar}")
        os.replace(tmp, final)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, (OSError, RasterioError)) and _is_disk_full(exc, final.parent):
            raise OutputDiskFullError(f"{final}: output disk full while writing ({exc})") from exc
        raise


class AtomicRasterWriter:
    """Context manager writing a one-band GeoTIFF block by block, atomically.

    >>> with AtomicRasterWriter(path, crs=crs, transform=t, width=w, height=h,
    ...                         tags=meta) as out:
    ...     out.write(block, Window(0, row, w, n))

    On a clean exit the tags are set, the file closed and renamed to ``path``;
    on an exception nothing is left behind.
    """

    def __init__(self, path: str | os.PathLike, *, crs, transform, width: int, height: int,
                 dtype: str = "float32", nodata: float | None = 0,
                 creation_options: Mapping[str, str] | None = None,
                 tags: Mapping[str, str] | None = None):
        self.path = Path(path)
        self.tags = dict(tags or {})
        options = dict(DEFAULT_CREATION_OPTIONS["tiled"][1] if creation_options is None else creation_options)
        self._profile = dict(driver="GTiff", crs=crs, transform=transform, width=int(width),
                             height=int(height), count=1, dtype=dtype, nodata=nodata,
                             **{k.lower(): v for k, v in options.items()})
        self._stack: ExitStack | None = None
        self._dataset = None

    @property
    def dtype(self) -> str:
        return self._profile["dtype"]

    @property
    def shape(self) -> tuple[int, int]:
        return self._profile["height"], self._profile["width"]

    def __enter__(self) -> "AtomicRasterWriter":
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(self.path))
            self._dataset = rasterio.open(tmp, "w", **self._profile)
            self._stack = stack.pop_all()
        return self

    def write(self, array: np.ndarray, window: Window | None = None) -> None:
        """Write a 2-D block at ``window`` (the whole raster when ``None``)."""
        self._dataset.write(np.asarray(array, dtype=self.dtype), 1, window=window)

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, dataset = self._stack, self._dataset
        self._stack = self._dataset = None
        try:
            if exc is None:
                dataset.update_tags(**{k: str(v) for k, v in self.tags.items()})
            dataset.close()
        except BaseException as error:
            if exc is None:  # a failed flush (disk full) fails the whole write
                if not stack.__exit__(type(error), error, error.__traceback__):
                    raise
                return False
        return stack.__exit__(exc_type, exc, tb)


def write_like(source: str | os.PathLike, out: str | os.PathLike,
               compute: Callable[[np.ndarray, int, int], np.ndarray], *, tags: Callable[[dict], Mapping[str, str]],
               dtype: str, creation_options: Mapping[str, str], nodata: float | None, halo: int = 0,
               strip_rows: int = 1024, read_from: str | os.PathLike | None = None) -> Path:
    """Write ``out`` atomically on the grid of the one-band raster ``source``, strip by strip.

    Each strip (rows ``top`` to ``bottom``) is ``compute(values, above, below)``, ``values`` being
    the rows of ``read_from`` (default: ``source``, which must have the same grid) from
    ``top - halo`` to ``bottom + halo`` clipped to the image, ``above`` and ``below`` the rows of
    it outside the strip. ``tags`` makes the output's tags from the source's.
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
            nodata=nodata, creation_options=creation_options, tags=tags(src.tags())))
        for top in range(0, src.height, strip_rows):
            bottom = min(top + strip_rows, src.height)
            read_top, read_bottom = max(0, top - halo), min(src.height, bottom + halo)
            values = data.read(1, window=Window(0, read_top, src.width, read_bottom - read_top))
            writer.write(compute(values, top - read_top, read_bottom - bottom), Window(0, top, src.width, bottom - top))
    return Path(out)


def cleanup_stale_temporaries(folder: str | os.PathLike, max_age_hours: float = 24.0) -> list[Path]:
    """Remove temporaries left in ``folder`` by killed runs; return what was removed.

    A temporary is stale when it is older than ``max_age_hours`` or when it was
    made on this host by a process that no longer exists.
    """
    removed = []
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

def format_acquisition_datetime(when) -> str:
    """S1Tiling's ``ACQUISITION_DATETIME`` format: ``YYYY:MM:DDTHH:MM:SSZ`` (UTC)."""
    return as_utc(when).strftime("%Y:%m:%dT%H:%M:%SZ")


def software_name() -> str:
    return f"s1tiling {__version__}"


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
                  production_time: datetime | None = None) -> dict[str, str]:
    """GeoTIFF metadata of a tile product (INTERFACE.md), valued as S1Tiling writes them.

    ``ACQUISITION_DATETIME`` is the earliest input start time; ``_1``, ``_2``...
    each input's, in time order. ``extra`` (the ``[Metadata]`` pairs) cannot
    override the standard keys. ``ENGINE`` and ``ORBIT_SOURCE`` are additions.
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
    tags.update(production_tags(tile_description(product), production_time))
    return tags


def derived_tags(source_tags: Mapping[str, str], description: str, **changes: str) -> dict[str, str]:
    """Tags of a product derived from another (mask, filtered): the source's tags with a
    new production time and description, plus ``changes``."""
    tags = {k: v for k, v in source_tags.items() if k != "AREA_OR_POINT"}
    tags.update(changes)
    tags.update(production_tags(description))
    return tags

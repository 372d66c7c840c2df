"""Orfeo ToolBox engine (``[Processing] engine = otb``): the chain run by OTB 8 applications.

Each step function (:func:`calibrate`, :func:`reset_margin`, :func:`orthorectify`,
:func:`synthetize`, :func:`border_mask`, :func:`despeckle`) returns an :class:`OtbApp`, the
description of one OTB application call whose image inputs are file paths or other
``OtbApp``. Nothing runs before :meth:`OtbApp.write`::

    safe = prepare_safe_for_otb(product_path, tmp_dir)
    cal = calibrate(safe / relative_measurement_path, "sigma", remove_noise=True)
    orthorectify(reset_margin(cal, top=1600), grid, dem_dir, geoid_file).write(out, options)

With OTB's Python module ``otbApplication`` (official OTB binaries; on Debian, built by
``scripts/build-otb-python.sh``) the chain runs in memory, as S1Tiling runs it: each
application's output image is connected to the next one, nothing is written before the last
application, and :meth:`OtbApp.open` even reads the last output as numpy blocks without any
file. Without the module (Debian's ``otb-bin``) each upstream application is first written by
its ``otbcli_<App>`` program to a temporary file under ``options.tmp_dir``, deleted afterwards.
``S1TILING_OTB_INTERFACE`` chooses: ``auto`` (default: the module when it imports, else
``otbcli_*``), ``python`` or ``cli``. Both give the same pixels (``tests/test_otb_cross_check.py``).
``options.threads`` (``nb_otb_threads``) is passed as ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS
(read once per process by ITK, when OTB first starts threads) and ``options.ram_mb``
(``ram_per_process``) as each application's ``-ram``. Outputs are written under a temporary
name, then renamed. OTB's log lines go to the ``s1tiling.engines.otb`` logger: with the
module through a log callback, from ``otbcli_*`` as their captured output (debug level).

OTB 8.1 quirks handled here (measured, see ``tests/test_otb_engine.py``):

- products of IPF < 2.43 are not recognised as Sentinel-1: :func:`prepare_safe_for_otb`;
- SARCalibration turns noise-removed values <= 0 into 0 (no-data): :func:`calibrate` adds a
  BandMath that makes them ``lower_signal_value``, as S1Tiling does;
- SARCalibration applies the LUTs at the pixel indices of its input file, so calibrating an
  extract (ExtractROI) of a measurement is wrong: :func:`calibrate` restricts its *output*
  (``region``) instead. OrthoRectification does handle extracts;
- with a geoid and no DEM tile under a point, OrthoRectification uses 0 m above the geoid:
  ``-elev.default`` only counts without a geoid;
- the GeoTIFFs OTB writes carry ``SAR.AzimuthTimeInterval`` with 6 significant digits, which
  misplaces lines of a SAR image read back from them: :func:`restore_azimuth_time_interval`;
- Synthetize reads its inputs from files only: in memory, :func:`first_non_zero` (a BandMath)
  merges the slices the same way;
- AddParameterStringList cannot add a file to an image list: see ``_PythonChain._connect_list``.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import rasterio
from affine import Affine
from lxml import etree
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..errors import ConfigurationError, MissingApplicationError, ProductError, S1TilingError
from ..radiometry import LOWER_SIGNAL_VALUE
from ..s1.manifest import FILE_KINDS
from ..s1.product import WindowLike, as_window, open_product

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the Orfeo ToolBox 8: 'apt-get install otb-bin' on Debian/Ubuntu, or the OTB "
    "binaries from https://www.orfeo-toolbox.org/download/ with their bin/ folder on PATH"
)
PYTHON_HINT = (
    "OTB's Python module 'otbApplication' comes with the OTB binaries of "
    "https://www.orfeo-toolbox.org/download/; for Debian's OTB, build it with "
    "scripts/build-otb-python.sh and put the folder it prints on PYTHONPATH"
)
THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
#: How applications run: "auto" (the Python module when it imports, else otbcli_*), "python", "cli".
INTERFACE_VARIABLE = "S1TILING_OTB_INTERFACE"
INTERFACES = ("auto", "python", "cli")
CALIBRATIONS = ("sigma", "beta", "gamma", "dn")
INTERPOLATORS = ("nn", "linear", "bco")
DESPECKLE_FILTERS = ("lee", "frost", "gammamap", "kuan")
#: Border masks are smoothed as S1Tiling does: binary opening by a ball of this radius (pixels).
MASK_OPENING_RADIUS = 5
#: Our pixel type names (numpy's or OTB's) -> OTB's.
_PIXEL_TYPES = {
    "uint8": "uint8", "uint16": "uint16", "int16": "int16", "uint32": "uint32", "int32": "int32",
    "float": "float", "float32": "float", "double": "double", "float64": "double",
}


class OtbError(S1TilingError):
    """An OTB application failed; the message names it, its input files and OTB's error."""


# ---------------------------------------------------------------------------- availability

_import_error: str | None = None  # why otbApplication could not be imported
#: Keeps OTB's log callback alive (OTB holds a raw pointer to it).
_log_callback = None


@functools.lru_cache(maxsize=1)
def _python_module():
    """The ``otbApplication`` module, ready (applications found, logs routed to our logger),
    or None when it cannot be imported (the reason in ``_import_error``)."""
    global _import_error
    try:
        import otbApplication
    except Exception as exc:  # noqa: BLE001 - not there, or built wrong (a NameError of SWIG 4.1 without -flatstaticmethod)
        _import_error = f"{type(exc).__name__}: {exc}"
        return None
    if not os.environ.get("OTB_APPLICATION_PATH"):
        for folder in _application_folders(otbApplication.__file__):
            otbApplication.Registry.AddApplicationPath(folder)
    if not otbApplication.Registry.GetAvailableApplications():
        _import_error = (f"otbApplication ({otbApplication.__file__}) finds no OTB application: set "
                         "OTB_APPLICATION_PATH to the folder of the otbapp_*.so files")
        return None
    _route_logs(otbApplication)
    return otbApplication


def _application_folders(module_file: str) -> list[str]:
    """Folders of OTB's application plugins (``otbapp_*.so``) near the module or ``otbcli``:
    ``lib/otb/applications`` of OTB's binary packages, ``/usr/lib/<arch>/otb/applications`` of Debian's."""
    roots = [Path(module_file).resolve().parent.parent]  # lib/python/otbApplication.py -> lib
    cli = shutil.which("otbcli")
    if cli:
        roots += [Path(cli).resolve().parent.parent / "lib"]
    roots.append(Path("/usr/lib"))
    found = []
    for root in roots:
        for pattern in ("otb/applications", "*/otb/applications"):
            for folder in sorted(glob.glob(str(root / pattern))):
                if glob.glob(os.path.join(folder, "otbapp_*")) and folder not in found:
                    found.append(folder)
    return found


#: OTB log levels -> ours. OTB's INFO lines are the applications' details (parameters, sizes):
#: debug for us, as the captured output of otbcli_*.
_OTB_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.DEBUG, "WARNING": logging.WARNING,
               "CRITICAL": logging.ERROR, "ERROR": logging.ERROR, "FATAL": logging.ERROR}
_OTB_LINE = re.compile(r"\((DEBUG|INFO|WARNING|CRITICAL|ERROR|FATAL)\)\s*(.*)")


def _log_otb_line(line: str) -> None:
    line = line.strip()
    if not line:
        return
    match = _OTB_LINE.search(line)
    if match is None:  # progress reports and other plain output
        logger.debug("OTB: %s", line)
    else:
        logger.log(_OTB_LEVELS[match.group(1)], "OTB: %s", match.group(2))


def _route_logs(module) -> None:
    """Send what OTB prints (log lines and progress reports) to our logger instead of stdout.

    ``otbApplication`` writes them through one ``SwigPrintCallback`` that every application gets
    when created (``_libraryLogCallback``, fed by ``_libraryLogOutput``): replace it.
    """
    global _log_callback

    class LogCallback(module.SwigPrintCallback):
        def Call(self, content):  # noqa: N802 - OTB's names
            for line in str(content).replace("\r", "\n").splitlines():
                _log_otb_line(line)

        def Flush(self):  # noqa: N802
            pass

        def IsInteractive(self):  # noqa: N802 - no progress bars redrawn in place
            return False

    _log_callback = LogCallback()
    module._libraryLogOutput.SetCallback(_log_callback)
    module._libraryLogCallback = _log_callback


def interface() -> str:
    """How OTB applications run here: 'python' (``otbApplication``, in memory) or 'cli'
    (``otbcli_*`` programs and temporary files), as ``S1TILING_OTB_INTERFACE`` asks ('auto':
    the module when it imports). Raises :class:`MissingApplicationError` (exit code 77) when
    the interface asked for, or any, is missing."""
    wanted = os.environ.get(INTERFACE_VARIABLE, "auto").strip().lower() or "auto"
    if wanted not in INTERFACES:
        raise ConfigurationError(f"{INTERFACE_VARIABLE}={wanted!r}: expected one of {', '.join(INTERFACES)}")
    if wanted != "cli" and _python_module() is not None:
        return "python"
    if wanted == "python":
        raise MissingApplicationError(
            f"{INTERFACE_VARIABLE}=python but OTB's Python module cannot be used "
            f"({_import_error or 'import failed'}): {PYTHON_HINT}")
    if shutil.which("otbcli_SARCalibration") is None:
        raise MissingApplicationError(
            "the OTB engine needs the Orfeo ToolBox (no 'otbApplication' Python module, no "
            f"otbcli_SARCalibration on PATH): {INSTALL_HINT}")
    return "cli"


def otb_available() -> bool:
    """Whether OTB can run here through the interface ``S1TILING_OTB_INTERFACE`` asks for."""
    try:
        interface()
    except MissingApplicationError:
        return False
    return True


def require_otb() -> str:
    """The interface OTB runs through (:func:`interface`); raises :class:`MissingApplicationError`
    (exit code 77), with how to install OTB, when it cannot run."""
    return interface()


# ---------------------------------------------------------------------------- applications

@dataclass(frozen=True)
class OtbOptions:
    """How applications run: ``threads`` (nb_otb_threads), ``ram_mb`` (ram_per_process) and
    ``tmp_dir`` for the intermediate files of the otbcli_* chain (default: beside the output)."""

    threads: int | None = None
    ram_mb: int | None = None
    tmp_dir: Path | None = None


@dataclass(eq=False)
class OtbApp:
    """One OTB application call, not run yet.

    ``params``: parameter key -> value (str, number, bool, Path, OtbApp, or a list of them);
    ``inputs``: the keys that are input images; ``out_key``/``pixel_type``: the output
    image parameter and its default pixel type; ``ram_key``: the RAM parameter;
    ``region``: when set, only this window of the output is computed and written.
    """

    name: str
    params: dict[str, Any]
    inputs: tuple[str, ...] = ("in",)
    out_key: str = "out"
    pixel_type: str = "float"
    ram_key: str = "ram"
    region: Window | None = None

    def upstream(self) -> list[OtbApp]:
        """The applications whose outputs feed this one, in parameter order."""
        return [v for key in self.inputs for v in _as_list(self.params.get(key)) if isinstance(v, OtbApp)]

    def input_files(self) -> list[str]:
        """Every input file of the chain that ends with this application."""
        files = []
        for key in self.inputs:
            for value in _as_list(self.params.get(key)):
                files += value.input_files() if isinstance(value, OtbApp) else [str(value)]
        return list(dict.fromkeys(files))

    def command_line(self, out_path: str | Path, ram_mb: int | None = None, creation_options: Iterable[str] = (),
                     pixel_type: str | None = None, written: dict | None = None) -> list[str]:
        """The ``otbcli_<name>`` command writing ``out_path``; upstream applications must be
        in ``written`` (OtbApp -> the file holding its output)."""
        written = written or {}
        argv = [f"otbcli_{self.name}"]
        for key, value in self.params.items():
            values = []
            for v in _as_list(value):
                if isinstance(v, OtbApp):
                    if v not in written:
                        raise ValueError(f"{v.name}, input of {self.name}, must be written first")
                    v = written[v]
                values.append(_text(v))
            argv += [f"-{key}", *values]
        if ram_mb:
            argv += [f"-{self.ram_key}", str(int(ram_mb))]
        argv += [f"-{self.out_key}", str(out_path) + self._extended_filename(creation_options),
                 _otb_pixel_type(pixel_type or self.pixel_type)]
        return argv

    def write(self, out_path: str | Path, options: OtbOptions | None = None, creation_options: Iterable[str] = (),
              pixel_type: str | None = None) -> Path:
        """Run the chain and write this application's output to ``out_path`` (GeoTIFF).

        ``creation_options``: GDAL GeoTIFF options ``KEY=VALUE`` (e.g. ``COMPRESS=DEFLATE``);
        ``pixel_type``: overrides the application's (uint8, uint16, int16, uint32, int32,
        float32, float64). Returns ``out_path`` as a Path.
        """
        options = options or OtbOptions()
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp{out.suffix or '.tif'}")
        creation_options = tuple(creation_options)
        try:
            with _chain(options, out.parent) as chain:
                chain.write(self, tmp, creation_options, pixel_type)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return out

    @contextlib.contextmanager
    def open(self, options: OtbOptions | None = None) -> Iterator[OtbResult]:
        """Run the chain and give its output image for reading by windows (:class:`OtbResult`).

        With the Python module nothing is written: each window read pulls its pixels through
        the in-memory pipeline. With ``otbcli_*`` the output is first written to a temporary
        file under ``options.tmp_dir``. Everything is released on exit.
        """
        options = options or OtbOptions()
        with _chain(options, Path(options.tmp_dir or tempfile.gettempdir())) as chain:
            yield chain.open(self)

    def _extended_filename(self, creation_options: Iterable[str], box: bool = True) -> str:
        parts = [f"gdal:co:{option}" for option in creation_options]
        if self.region is not None and box:
            w = self.region
            parts.append(f"box={int(w.col_off)}:{int(w.row_off)}:{int(w.width)}:{int(w.height)}")
        return "?&" + "&".join(parts) if parts else ""


#: An image input of an application: a file, or the output of another application
Source: TypeAlias = OtbApp | str | Path


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value) -> str:
    """A parameter value as OTB reads it on its command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _otb_pixel_type(pixel_type: str) -> str:
    try:
        return _PIXEL_TYPES[pixel_type.lower()]
    except KeyError:
        raise ValueError(
            f"OTB cannot write pixel type {pixel_type!r}; expected one of {sorted(_PIXEL_TYPES)}"
        ) from None


#: The SAR metadata item OTB 8.1 writes with 6 significant digits only (``%g``) into its GeoTIFFs.
AZIMUTH_TIME_INTERVAL_TAG = "SAR.AzimuthTimeInterval"


def _annotation_of(measurement) -> Path | None:
    """The annotation XML beside a measurement TIFF of a SAFE folder, if there."""
    path = Path(measurement)
    if path.parent.name != "measurement":
        return None
    annotation = path.parent.parent / "annotation" / f"{path.stem}.xml"
    return annotation if annotation.is_file() else None


@functools.lru_cache(maxsize=64)
def _azimuth_time_interval(annotation: str) -> str | None:
    try:
        text = etree.parse(annotation).findtext("imageAnnotation/imageInformation/azimuthTimeInterval")
        return repr(float(text)) if text else None
    except (OSError, etree.XMLSyntaxError, ValueError):
        return None


def restore_azimuth_time_interval(path, input_files: Iterable[str]) -> bool:
    """Put back the annotation's azimuth time interval into a SAR-geometry GeoTIFF written by
    OTB from the measurement among ``input_files``; return whether it was changed.

    OTB 8.1 writes ``SAR.AzimuthTimeInterval`` with 6 significant digits (0.00149919 for
    1.499191837510891e-03): an OrthoRectification reading such a file places line L at
    L * 1.2e-6 lines from where the annotation puts it, up to 0.02 line at the end of a slice,
    enough to change interpolated values near bright targets by 1 %. Restored in every file the
    ``otbcli_*`` chain writes, it computes the same pixels as the in-memory chain, whose
    metadata never go through a file (``tests/test_otb_cross_check.py``).
    """
    intervals = {_azimuth_time_interval(str(a)) for a in map(_annotation_of, input_files) if a is not None}
    intervals.discard(None)
    if len(intervals) != 1 or not Path(path).is_file():
        return False
    (interval,) = intervals
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "r+") as dataset:
            written = dataset.tags().get(AZIMUTH_TIME_INTERVAL_TAG)
            if written is None or written == interval:
                return False
            dataset.update_tags(**{AZIMUTH_TIME_INTERVAL_TAG: interval})
    logger.debug("%s: %s %s restored as %s", path, AZIMUTH_TIME_INTERVAL_TAG, written, interval)
    return True


def _failure(app: OtbApp, log: str) -> OtbError:
    lines = [line for line in log.splitlines() if "(FATAL)" in line or "ERROR" in line]
    details = "\n".join(lines or log.strip().splitlines()[-5:]) or "no message"
    return OtbError(f"OTB {app.name} failed on {', '.join(app.input_files()) or 'no input file'}: {details}")


class OtbResult:
    """The output image of a chain: ``width``, ``height``, ``count`` (bands), ``transform``
    (affine of the upper-left pixel corner, as rasterio's), and :meth:`read` of band 1 by windows."""

    width: int
    height: int
    count: int
    transform: Affine

    def read(self, window: Window) -> np.ndarray:
        """Band 1 over ``window`` (float32, 2-D)."""
        raise NotImplementedError

    def blocks(self, size: int) -> Iterator[tuple[Window, np.ndarray]]:
        """``(window, values)`` of band 1 by square blocks of ``size`` pixels, row by row."""
        for r0 in range(0, self.height, size):
            for c0 in range(0, self.width, size):
                window = Window(c0, r0, min(size, self.width - c0), min(size, self.height - r0))
                yield window, self.read(window)


class _FileResult(OtbResult):
    def __init__(self, dataset):
        self.dataset = dataset
        self.width, self.height, self.count = dataset.width, dataset.height, dataset.count
        self.transform = dataset.transform

    def read(self, window: Window) -> np.ndarray:
        return self.dataset.read(1, window=window).astype(np.float32, copy=False)


#: Smallest block side :meth:`_MemoryResult.blocks` reads, whatever OTB's memory estimate.
MIN_BLOCK_SIZE = 128
#: Smallest memory budget (bytes) of the in-memory pipeline for one block.
MIN_BLOCK_BUDGET = 64 * 2 ** 20


def _resident_bytes() -> int:
    """Resident memory of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _MemoryResult(OtbResult):
    """An application's output image in memory: each read propagates the requested region up
    the pipeline, which computes only that (OTB's own streaming, driven from here)."""

    def __init__(self, module, handle, key: str, ram_mb: int | None):
        self.module, self.handle, self.key = module, handle, key
        size = handle.GetImageSize(key)
        origin, spacing = handle.GetImageOrigin(key), handle.GetImageSpacing(key)
        self.width, self.height = int(size[0]), int(size[1])
        self.count = int(handle.GetImageNbBands(key))
        # OTB's origin is the centre of the upper-left pixel
        self.transform = Affine(spacing[0], 0.0, origin[0] - spacing[0] / 2,
                                0.0, spacing[1], origin[1] - spacing[1] / 2)
        self.ram_bytes = (ram_mb or 256) * 2 ** 20

    def _region(self, window: Window):
        region = self.module.itkRegion()
        region.GetIndex()[0], region.GetIndex()[1] = int(window.col_off), int(window.row_off)
        region.GetSize()[0], region.GetSize()[1] = int(window.width), int(window.height)
        return region

    def read(self, window: Window) -> np.ndarray:
        self.handle.PropagateRequestedRegion(self.key, self._region(window))
        try:
            values = self.handle.GetVectorImageAsNumpyArray(self.key)  # a view of OTB's buffer
        except RuntimeError as exc:
            raise OtbError(f"OTB failed computing {window} of {self.handle.GetName()}: {exc}") from None
        if values.shape[:2] != (int(window.height), int(window.width)):
            raise OtbError(f"OTB computed {values.shape[:2]} pixels for the window {window}")
        return np.array(values[:, :, 0], dtype=np.float32)  # a copy: the buffer is reused

    def blocks(self, size: int) -> Iterator[tuple[Window, np.ndarray]]:
        """As :meth:`OtbResult.blocks`, split in quarters (again and again) where OTB estimates
        that the pipeline would need more than half of what ``ram_per_process`` leaves to this
        process: a square block of a map grid is an oblique band of the SAR image, whose
        bounding box, the region computed upstream, can be much larger than the block."""
        for r0 in range(0, self.height, size):
            for c0 in range(0, self.width, size):
                window = Window(c0, r0, min(size, self.width - c0), min(size, self.height - r0))
                budget = max(MIN_BLOCK_BUDGET, (self.ram_bytes - _resident_bytes()) // 2)
                for part in self._fitting(window, budget):
                    yield part, self.read(part)

    def _fitting(self, window: Window, budget: int) -> Iterator[Window]:
        needed = self.handle.PropagateRequestedRegion(self.key, self._region(window))
        if needed <= budget or max(window.width, window.height) <= MIN_BLOCK_SIZE:
            yield window
            return
        logger.debug("%s: OTB estimates %.0f MiB for %s (budget %.0f MiB): quartered", self.handle.GetName(),
                     needed / 2 ** 20, window, budget / 2 ** 20)
        w, h = int(window.width), int(window.height)
        c0, r0 = int(window.col_off), int(window.row_off)
        cols = [(c0, w)] if w <= MIN_BLOCK_SIZE else [(c0, w // 2), (c0 + w // 2, w - w // 2)]
        rows = [(r0, h)] if h <= MIN_BLOCK_SIZE else [(r0, h // 2), (r0 + h // 2, h - h // 2)]
        for r, height in rows:
            for c, width in cols:
                yield from self._fitting(Window(c, r, width, height), budget)


@contextlib.contextmanager
def _chain(options: OtbOptions, default_scratch: Path):
    """The chain runner of this machine's interface; the otbcli_* one with a scratch folder for
    its intermediate files, removed on exit."""
    if interface() == "python":
        yield _PythonChain(_python_module(), options)
        return
    parent = Path(options.tmp_dir) if options.tmp_dir else default_scratch
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".otb-", dir=parent))
    try:
        with _CliChain(options, scratch) as chain:
            yield chain
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _CliChain(contextlib.ExitStack):
    """Runs a chain through otbcli_* programs, upstream outputs in temporary files."""

    def __init__(self, options: OtbOptions, scratch: Path):
        super().__init__()
        self.options = options
        self.scratch = scratch
        self.written: dict[OtbApp, Path] = {}

    def write(self, app: OtbApp, out: Path, creation_options=(), pixel_type=None) -> None:
        for up in app.upstream():
            if up not in self.written:
                path = self.scratch / f"{len(self.written):02d}-{up.name}.tif"
                self.write(up, path)
                self.written[up] = path
        argv = app.command_line(out, self.options.ram_mb, creation_options, pixel_type, self.written)
        env = dict(os.environ)
        if self.options.threads:
            env[THREADS_VARIABLE] = str(int(self.options.threads))
        logger.debug("running %s", " ".join(argv))
        start = time.perf_counter()
        try:
            run = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except FileNotFoundError:
            raise MissingApplicationError(f"{argv[0]} not found on PATH: {INSTALL_HINT}") from None
        logger.debug("%s took %.2f s:\n%s", argv[0], time.perf_counter() - start, run.stdout)
        if run.returncode != 0 or "(FATAL)" in run.stdout:
            raise _failure(app, run.stdout)
        restore_azimuth_time_interval(out, app.input_files())

    def open(self, app: OtbApp) -> OtbResult:
        path = self.scratch / f"result-{app.name}.tif"
        self.write(app, path)
        return _FileResult(self.enter_context(rasterio.open(path)))


class _PythonChain:
    """Runs a chain in memory through the otbApplication module: every output image is
    connected to the applications reading it; an application with a ``region`` is followed
    by an in-memory ExtractROI of that region."""

    def __init__(self, module, options: OtbOptions):
        self.module = module
        self.options = options
        self.handles: list = []  # keeps the in-memory pipeline alive until written or read
        self.images: dict[OtbApp, tuple] = {}  # app -> (handle, output key), executed
        if options.threads:  # read by ITK when OTB first starts threads in this process
            os.environ[THREADS_VARIABLE] = str(int(options.threads))

    def write(self, app: OtbApp, out: Path, creation_options=(), pixel_type=None) -> None:
        handle, key = self._image(app, execute=False)
        handle.SetParameterString(key, str(out) + app._extended_filename(creation_options, box=False))
        otb_type = _otb_pixel_type(pixel_type or app.pixel_type)
        handle.SetParameterOutputImagePixelType(key, getattr(self.module, f"ImagePixelType_{otb_type}"))
        start = time.perf_counter()
        try:
            handle.ExecuteAndWriteOutput()
        except RuntimeError as exc:
            raise _failure(app, str(exc)) from None
        logger.debug("%s took %.2f s", app.name, time.perf_counter() - start)
        restore_azimuth_time_interval(out, app.input_files())

    def open(self, app: OtbApp) -> OtbResult:
        handle, key = self._image(app)
        return _MemoryResult(self.module, handle, key, self.options.ram_mb)

    def _image(self, app: OtbApp, execute: bool = True) -> tuple:
        """``(handle, output key)`` of the application giving ``app``'s output (its own, or
        the ExtractROI of its region), executed unless ``execute`` is false (to be written)."""
        if app in self.images:
            return self.images[app]
        if app.name == "Synthetize" and any(isinstance(v, OtbApp) for v in app.params["il"]):
            # Synthetize reads its inputs from files (a StringList): the same merge in memory
            merged = self._image(first_non_zero(app.params["il"]), execute)
            if execute:
                self.images[app] = merged
            return merged
        handle = self._create(app.name)
        for key, value in app.params.items():
            if key in app.inputs and isinstance(value, (list, tuple)):
                self._connect_list(handle, key, value)
            elif key in app.inputs and isinstance(value, OtbApp):
                upstream, out_key = self._image(value)
                handle.SetParameterInputImage(key, upstream.GetParameterOutputImage(out_key))
            elif isinstance(value, (list, tuple)):
                handle.SetParameterStringList(key, [_text(v) for v in value])
            else:
                handle.SetParameterString(key, _text(value))
        if self.options.ram_mb:
            handle.SetParameterString(app.ram_key, str(int(self.options.ram_mb)))
        result = (handle, app.out_key)
        if app.region is not None or execute:
            self._execute(app, handle)
        if app.region is not None:
            w = app.region
            roi = self._create("ExtractROI")
            roi.SetParameterInputImage("in", handle.GetParameterOutputImage(app.out_key))
            for key, value in (("mode", "standard"), ("startx", w.col_off), ("starty", w.row_off),
                               ("sizex", w.width), ("sizey", w.height)):
                roi.SetParameterString(key, str(int(value)) if key != "mode" else value)
            if self.options.ram_mb:
                roi.SetParameterString("ram", str(int(self.options.ram_mb)))
            if execute:
                self._execute(app, roi)
            result = (roi, "out")
        if execute:
            self.images[app] = result
        return result

    def _create(self, name: str):
        handle = self.module.Registry.CreateApplication(name)
        if handle is None:
            raise MissingApplicationError(f"OTB application {name} not found by otbApplication: {INSTALL_HINT}")
        self.handles.append(handle)
        return handle

    @staticmethod
    def _execute(app: OtbApp, handle) -> None:
        try:
            handle.Execute()
        except RuntimeError as exc:
            raise _failure(app, str(exc)) from None

    def _connect_list(self, handle, key: str, values) -> None:
        """An image list of files and in-memory images, in order. OTB 8.1 cannot append a file
        to an image list (AddParameterStringList fails): the list is set as files, then the
        in-memory images replace their placeholders."""
        files = [str(v) for v in values if not isinstance(v, OtbApp)]
        if files:
            handle.SetParameterStringList(key, [files[0] if isinstance(v, OtbApp) else str(v) for v in values])
        for i, v in enumerate(values):
            if isinstance(v, OtbApp):
                upstream, out_key = self._image(v)
                image = upstream.GetParameterOutputImage(out_key)
                if files:
                    handle.SetNthParameterInputImageList(key, i, image)
                else:
                    handle.AddImageToParameterInputImageList(key, image)


# ---------------------------------------------------------------------------- chain steps

def calibrate(measurement: str | Path, calibration: str = "sigma", remove_noise: bool = True,
              lower_signal_value: float = LOWER_SIGNAL_VALUE, region: WindowLike | None = None) -> OtbApp:
    """SARCalibration of a measurement TIFF of an OTB-readable SAFE folder
    (:func:`prepare_safe_for_otb`) to linear power, float32.

    ``calibration``: 'sigma', 'beta', 'gamma' or 'dn'. With ``remove_noise``, a BandMath
    turns values <= 0 into ``lower_signal_value`` and keeps DN == 0 at 0 (no-data).
    ``region``: only this window of the measurement (rasterio Window or (row_off, col_off,
    height, width)) is calibrated; the output is georeferenced as that window.
    """
    if calibration not in CALIBRATIONS:
        raise ValueError(f"OTB calibration {calibration!r}: expected one of {CALIBRATIONS}")
    measurement = str(measurement)
    window = as_window(region) if region is not None else None
    calibrated = OtbApp("SARCalibration", {"in": measurement, "lut": calibration, "removenoise": remove_noise},
                        region=window)
    if not remove_noise:
        return calibrated
    dn: Source = measurement
    if window is not None:
        dn = OtbApp("ExtractROI", {
            "in": measurement, "startx": int(window.col_off), "starty": int(window.row_off),
            "sizex": int(window.width), "sizey": int(window.height),
        }, pixel_type="uint16")
    return OtbApp("BandMath", {"il": [calibrated, dn],
                               "exp": f"im2b1==0?0:(im1b1<=0?{float(lower_signal_value)!r}:im1b1)"},
                  inputs=("il",))


def reset_margin(src: Source, top: int = 0, bottom: int = 0, left: int = 0, right: int = 0) -> OtbApp:
    """ResetMargin: set to 0 the first ``top`` and last ``bottom`` lines and the first
    ``left`` and last ``right`` samples."""
    return OtbApp("ResetMargin", {
        "in": src, "mode": "margin", "margin.top": int(top), "margin.bottom": int(bottom),
        "margin.left": int(left), "margin.right": int(right),
    })


@dataclass(frozen=True)
class OrthoGrid:
    """An output grid: EPSG code, upper-left corner (``ulx``, ``uly``) of the upper-left
    pixel, size in pixels and pixel size in metres (square pixels, north up)."""

    epsg: int
    ulx: float
    uly: float
    width: int
    height: int
    spacing: float


def _map_parameters(epsg: int) -> dict:
    """OrthoRectification's map projection: UTM zone and hemisphere for EPSG 326zz/327zz
    (as S1Tiling), the EPSG code otherwise."""
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        return {"map": "utm", "map.utm.zone": epsg % 100, "map.utm.northhem": epsg < 32700}
    return {"map": "epsg", "map.epsg.code": int(epsg)}


def orthorectify(src: Source, grid: OrthoGrid, dem_dir: str | Path | None = None, geoid_file: str | Path | None = None,
                 gridspacing: float = 40.0,
                 interpolator: str = "nn", default_elevation: float = 0.0) -> OtbApp:
    """OrthoRectification of a calibrated SAR image onto ``grid``.

    ``dem_dir``: folder of DEM tiles (orthometric heights, e.g. SRTM ``N50E010.hgt``);
    ``geoid_file``: the geoid grid (EGM96 .gtx) their heights refer to; ``gridspacing``:
    spacing (m) of the deformation grid; ``interpolator``: 'nn', 'linear' or 'bco';
    ``default_elevation``: height above the ellipsoid used when there is neither DEM nor geoid.
    Pixels outside the SAR image are 0.
    """
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"OTB interpolator {interpolator!r}: expected one of {INTERPOLATORS}")
    params = {
        "io.in": src,
        **_map_parameters(grid.epsg),
        "outputs.ulx": float(grid.ulx), "outputs.uly": float(grid.uly),
        "outputs.sizex": int(grid.width), "outputs.sizey": int(grid.height),
        "outputs.spacingx": float(grid.spacing), "outputs.spacingy": -float(grid.spacing),
        "opt.gridspacing": float(gridspacing),
        "interpolator": interpolator,
        "elev.default": float(default_elevation),
    }
    if dem_dir is not None:
        params["elev.dem"] = str(dem_dir)
    if geoid_file is not None:
        params["elev.geoid"] = str(geoid_file)
    return OtbApp("OrthoRectification", params, inputs=("io.in",), out_key="io.out", ram_key="opt.ram")


def synthetize(inputs: Sequence[Source]) -> OtbApp:
    """Synthetize: merge same-grid images, keeping the first non-zero pixel."""
    if not inputs:
        raise ValueError("Synthetize needs at least one input")
    return OtbApp("Synthetize", {"il": list(inputs)}, inputs=("il",))


def first_non_zero(inputs: Sequence[Source]) -> OtbApp:
    """What Synthetize computes (the first non-zero pixel of the inputs, else the last one's),
    as a BandMath, which accepts in-memory inputs: Synthetize only reads files."""
    inputs = list(inputs)
    expression = f"im{len(inputs)}b1"
    for i in range(len(inputs) - 1, 0, -1):
        expression = f"(im{i}b1!=0?im{i}b1:{expression})"
    return OtbApp("BandMath", {"il": inputs, "exp": expression}, inputs=("il",))


def border_mask(src: Source) -> OtbApp:
    """Border mask of an orthorectified image, as S1Tiling: 1 where the image is non-zero
    (BandMath), smoothed by a binary opening with a ball of radius 5 (uint8)."""
    binary = OtbApp("BandMath", {"il": [src], "exp": "im1b1==0?0:1"}, inputs=("il",), pixel_type="uint8")
    return OtbApp("BinaryMorphologicalOperation", {
        "in": binary, "structype": "ball", "xradius": MASK_OPENING_RADIUS, "yradius": MASK_OPENING_RADIUS,
        "filter": "opening",
    }, pixel_type="uint8")


def despeckle(src: Source, filter: str = "lee", radius: int = 1, nblooks: float = 1.0, deramp: float = 0.1) -> OtbApp:
    """Despeckle with ``filter`` ('lee', 'frost', 'gammamap', 'kuan'): window ``radius``,
    ``nblooks`` (lee, gammamap, kuan) or ``deramp`` (frost)."""
    if filter not in DESPECKLE_FILTERS:
        raise ValueError(f"OTB despeckle filter {filter!r}: expected one of {DESPECKLE_FILTERS}")
    params: dict[str, Any] = {"in": src, "filter": filter, f"filter.{filter}.rad": int(radius)}
    if filter == "frost":
        params["filter.frost.deramp"] = float(deramp)
    else:
        params[f"filter.{filter}.nblooks"] = float(nblooks)
    return OtbApp("Despeckle", params)


# ---------------------------------------------------------------------------- old products

def fix_fm_rate_polynomials(annotation: bytes) -> bytes | None:
    """Annotation XML with ``<azimuthFmRatePolynomial count="3">c0 c1 c2</...>`` added to every
    ``azimuthFmRate`` that only has ``<c0><c1><c2>`` (IPF < 2.43), or None when none lacks it."""
    root = etree.fromstring(annotation)
    fixed = False
    for rate in root.iter("azimuthFmRate"):
        if rate.find("azimuthFmRatePolynomial") is not None:
            continue
        coefficients = [rate.findtext(f"c{i}") for i in range(3)]
        if None in coefficients:
            raise ValueError("azimuthFmRate has neither azimuthFmRatePolynomial nor c0, c1, c2")
        polynomial = etree.SubElement(rate, "azimuthFmRatePolynomial", count="3")
        polynomial.text = " ".join(c.strip() for c in coefficients)
        fixed = True
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") if fixed else None


#: srgr polynomials further than this (in pixels) from the inverse of grsr are refitted.
SRGR_TOLERANCE = 0.05
SRGR_REFIT_DEGREE = 8


def fix_srgr_polynomials(annotation: bytes) -> bytes | None:
    """Annotation XML whose ``srgrCoefficients`` are refitted as the inverse of its
    ``grsrCoefficients``, or None when they already agree within ``SRGR_TOLERANCE`` pixel.

    On some IPF 2.x products (the 2015 ones of the reference data) srgr disagrees with grsr by
    up to 4 pixels while grsr agrees with the ellipsoid geometry and ESA's geolocation grid;
    OTB 8.1 maps ground to SAR with srgr, so it would misplace those products by up to 40 m in
    range. The native engine uses grsr there (:mod:`s1tiling.geometry.sar_model`).
    """
    root = etree.fromstring(annotation)
    spacing = float(root.findtext("imageAnnotation/imageInformation/rangePixelSpacing"))
    samples = int(root.findtext("imageAnnotation/imageInformation/numberOfSamples"))
    ground = np.linspace(0.0, samples * spacing, 129)
    fixed = False
    for record in root.iterfind("coordinateConversion/coordinateConversionList/coordinateConversion"):
        srgr_node = record.find("srgrCoefficients")
        grsr = np.array(record.findtext("grsrCoefficients").split(), dtype=float)
        srgr = np.array(srgr_node.text.split(), dtype=float)
        sr0, gr0 = float(record.findtext("sr0")), float(record.findtext("gr0"))
        slant = np.polynomial.polynomial.polyval(ground - gr0, grsr)
        error = np.abs(np.polynomial.polynomial.polyval(slant - sr0, srgr) - ground).max() / spacing
        if error <= SRGR_TOLERANCE:
            continue
        # The inverse of a degree-4 grsr is not a degree-4 polynomial to the metre: refit with more terms.
        refit = np.polynomial.Polynomial.fit(slant - sr0, ground, SRGR_REFIT_DEGREE).convert().coef
        srgr_node.text = " ".join(f"{c:.15e}" for c in refit)
        srgr_node.set("count", str(refit.size))
        fixed = True
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") if fixed else None


def prepare_safe_for_otb(product_path: str | Path, tmp_dir: str | Path) -> Path:
    """A SAFE folder that OTB 8.1 reads as Sentinel-1, for a product folder or zip.

    An unzipped product whose annotations OTB understands is returned as is. Otherwise
    ``tmp_dir/<name>.SAFE`` is made (or reused when an earlier call made it): annotations
    of IPF < 2.43 copied with :func:`fix_fm_rate_polynomials`, inconsistent range
    polynomials refitted by :func:`fix_srgr_polynomials`, the other files OTB reads
    (manifest, calibration, noise, measurements) linked, or extracted from a zip.
    """
    product = open_product(product_path)
    files = ["manifest.safe"] + [product.relative_path(kind, pol) for pol in product.polarisations
                                 for kind in FILE_KINDS]
    fixed = {}
    for pol in product.polarisations:
        relative = product.relative_path("annotation", pol)
        with _open_member(product, relative) as f:
            try:
                original = f.read()
                content = fix_fm_rate_polynomials(original)
                content = fix_srgr_polynomials(content or original) or content
            except (etree.XMLSyntaxError, ValueError, TypeError, AttributeError) as exc:
                raise ProductError(product.name, relative, f"cannot prepare it for OTB: {exc}") from None
        if content is not None:
            fixed[relative] = content
    if product.path.is_dir() and not fixed:
        return product.path
    target = Path(tmp_dir) / f"{product.name}.SAFE"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".otb-safe-", dir=target.parent))
    try:
        for relative in files:
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if relative in fixed:
                path.write_bytes(fixed[relative])
            elif product.path.is_dir():
                if (product.path / relative).exists():
                    path.symlink_to((product.path / relative).resolve())
            else:
                _extract(product, relative, path)
        try:
            staging.rename(target)
        except OSError:  # made meanwhile by another process: use theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@contextlib.contextmanager
def _open_member(product, relative: str):
    """Binary file object of a file of the product, zipped or not."""
    if product.path.is_dir():
        with open(product.path / relative, "rb") as f:
            yield f
    else:
        with zipfile.ZipFile(product.path) as archive, archive.open(f"{product.name}.SAFE/{relative}") as f:
            yield f


def _extract(product, relative: str, path: Path) -> None:
    try:
        with _open_member(product, relative) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:  # a measurement missing from the zip: OTB will say so if it is needed
        path.unlink(missing_ok=True)


__all__ = [
    "INSTALL_HINT",
    "OrthoGrid",
    "OtbApp",
    "OtbError",
    "OtbOptions",
    "OtbResult",
    "border_mask",
    "calibrate",
    "despeckle",
    "first_non_zero",
    "fix_fm_rate_polynomials",
    "interface",
    "orthorectify",
    "otb_available",
    "prepare_safe_for_otb",
    "require_otb",
    "reset_margin",
    "restore_azimuth_time_interval",
    "synthetize",
]

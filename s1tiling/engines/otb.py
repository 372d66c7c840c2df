"""Orfeo ToolBox engine (``[Processing] engine = otb``): the chain run by OTB 8 applications.

Each step function (:func:`calibrate`, :func:`reset_margin`, :func:`orthorectify`,
:func:`synthetize`, :func:`border_mask`, :func:`despeckle`) returns an :class:`OtbApp`, the
description of one OTB application call whose image inputs are file paths or other
``OtbApp``. Nothing runs before :meth:`OtbApp.write`::

    safe = prepare_safe_for_otb(product_path, tmp_dir)
    cal = calibrate(safe / relative_measurement_path, "sigma", remove_noise=True)
    orthorectify(reset_margin(cal, top=1600), grid, dem_dir, geoid_file).write(out, options)

With the ``otbApplication`` Python module the chain runs in memory; without it (Debian, PyPI)
each upstream application is first written by its ``otbcli_<App>`` program to a temporary
file under ``options.tmp_dir``, deleted afterwards. ``options.threads`` (``nb_otb_threads``)
is passed as ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS and ``options.ram_mb``
(``ram_per_process``) as each application's ``-ram``. Outputs are written under a temporary
name, then renamed.

OTB 8.1 quirks handled here (measured, see ``tests/test_otb_engine.py``):

- products of IPF < 2.43 are not recognised as Sentinel-1: :func:`prepare_safe_for_otb`;
- SARCalibration turns noise-removed values <= 0 into 0 (no-data): :func:`calibrate` adds a
  BandMath that makes them ``lower_signal_value``, as S1Tiling does;
- SARCalibration applies the LUTs at the pixel indices of its input file, so calibrating an
  extract (ExtractROI) of a measurement is wrong: :func:`calibrate` restricts its *output*
  (``region``) instead. OrthoRectification does handle extracts;
- with a geoid and no DEM tile under a point, OrthoRectification uses 0 m above the geoid:
  ``-elev.default`` only counts without a geoid.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from lxml import etree
from rasterio.windows import Window

from ..errors import MissingApplicationError, ProductError, S1TilingError
from ..radiometry import LOWER_SIGNAL_VALUE
from ..s1.manifest import FILE_KINDS
from ..s1.product import WindowLike, as_window, open_product

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the Orfeo ToolBox 8: 'apt-get install otb-bin' on Debian/Ubuntu, or the OTB "
    "binaries from https://www.orfeo-toolbox.org/download/ with their bin/ folder on PATH"
)
THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
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

@functools.lru_cache(maxsize=1)
def _python_module():
    """The ``otbApplication`` module, or None when it cannot be imported."""
    try:
        import otbApplication
    except ImportError:
        return None
    return otbApplication


def otb_available() -> bool:
    """Whether OTB can run here: its Python module, or ``otbcli_SARCalibration`` on PATH."""
    return _python_module() is not None or shutil.which("otbcli_SARCalibration") is not None


def require_otb() -> None:
    """Raise :class:`MissingApplicationError` (exit code 77), with how to install OTB, when
    :func:`otb_available` is false."""
    if not otb_available():
        raise MissingApplicationError(
            "the OTB engine needs the Orfeo ToolBox (no 'otbApplication' Python module, no "
            f"otbcli_SARCalibration on PATH): {INSTALL_HINT}"
        )


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
        require_otb()
        options = options or OtbOptions()
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp{out.suffix or '.tif'}")
        scratch_parent = Path(options.tmp_dir) if options.tmp_dir else out.parent
        scratch_parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".otb-", dir=scratch_parent))
        creation_options = tuple(creation_options)
        try:
            module = _python_module()
            if module is not None:
                _PythonChain(module, options, scratch).write(self, tmp, creation_options, pixel_type)
            else:
                _CliChain(options, scratch).write(self, tmp, creation_options, pixel_type)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            shutil.rmtree(scratch, ignore_errors=True)
        return out

    def _extended_filename(self, creation_options: Iterable[str]) -> str:
        parts = [f"gdal:co:{option}" for option in creation_options]
        if self.region is not None:
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


def _failure(app: OtbApp, log: str) -> OtbError:
    lines = [line for line in log.splitlines() if "(FATAL)" in line or "ERROR" in line]
    details = "\n".join(lines or log.strip().splitlines()[-5:]) or "no message"
    return OtbError(f"OTB {app.name} failed on {', '.join(app.input_files()) or 'no input file'}: {details}")


class _CliChain:
    """Runs a chain through otbcli_* programs, upstream outputs in temporary files."""

    def __init__(self, options: OtbOptions, scratch: Path):
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


class _PythonChain:
    """Runs a chain in memory through the otbApplication module. Applications with a
    ``region`` are written to a temporary file first (a box is a writer option)."""

    def __init__(self, module, options: OtbOptions, scratch: Path):
        self.module = module
        self.options = options
        self.scratch = scratch
        self.handles: list = []  # keeps the in-memory pipeline alive until written
        self.written: dict[OtbApp, Path] = {}
        if options.threads:  # read by ITK when OTB first starts threads in this process
            os.environ[THREADS_VARIABLE] = str(int(options.threads))

    def write(self, app: OtbApp, out: Path, creation_options=(), pixel_type=None) -> None:
        handle = self._build(app)
        handle.SetParameterString(app.out_key, str(out) + app._extended_filename(creation_options))
        otb_type = _otb_pixel_type(pixel_type or app.pixel_type)
        handle.SetParameterOutputImagePixelType(app.out_key, getattr(self.module, f"ImagePixelType_{otb_type}"))
        start = time.perf_counter()
        try:
            handle.ExecuteAndWriteOutput()
        except RuntimeError as exc:
            raise _failure(app, str(exc)) from None
        logger.debug("%s took %.2f s", app.name, time.perf_counter() - start)

    def _build(self, app: OtbApp):
        handle = self.module.Registry.CreateApplication(app.name)
        if handle is None:
            raise MissingApplicationError(f"OTB application {app.name} not found by otbApplication: {INSTALL_HINT}")
        self.handles.append(handle)
        for key, value in app.params.items():
            if key in app.inputs:
                for v in _as_list(value):
                    self._connect(handle, key, v, isinstance(value, (list, tuple)))
            elif isinstance(value, (list, tuple)):
                handle.SetParameterStringList(key, [_text(v) for v in value])
            else:
                handle.SetParameterString(key, _text(value))
        if self.options.ram_mb:
            handle.SetParameterString(app.ram_key, str(int(self.options.ram_mb)))
        return handle

    def _connect(self, handle, key: str, value, is_list: bool) -> None:
        if isinstance(value, OtbApp) and value.region is None:
            upstream = self._build(value)
            try:
                upstream.Execute()
            except RuntimeError as exc:
                raise _failure(value, str(exc)) from None
            image = upstream.GetParameterOutputImage(value.out_key)
            if is_list:
                handle.AddImageToParameterInputImageList(key, image)
            else:
                handle.SetParameterInputImage(key, image)
            return
        if isinstance(value, OtbApp):
            if value not in self.written:
                path = self.scratch / f"{len(self.written):02d}-{value.name}.tif"
                self.write(value, path)
                self.written[value] = path
            value = self.written[value]
        if is_list:
            handle.AddParameterStringList(key, str(value))
        else:
            handle.SetParameterString(key, str(value))


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
    "border_mask",
    "calibrate",
    "despeckle",
    "fix_fm_rate_polynomials",
    "orthorectify",
    "otb_available",
    "prepare_safe_for_otb",
    "require_otb",
    "reset_margin",
    "synthetize",
]

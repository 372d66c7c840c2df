"""OTB engine: command lines and chaining (no OTB needed: fake programs and a fake Python
module), the IPF < 2.43 annotation fix, and real OTB 8.1 runs (skipped without OTB), each
through both interfaces (the in-memory ``otbApplication`` module and the ``otbcli_*``
programs), cross-checked against the native calibration and against ESA's geolocation grid."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from lxml import etree
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from s1tiling.engines import otb
from s1tiling.errors import ConfigurationError, MissingApplicationError
from s1tiling.radiometry import LOWER_SIGNAL_VALUE, calibrate as native_calibrate
from s1tiling.s1.annotation import SPEED_OF_LIGHT
from s1tiling.s1.product import open_product
from s1tiling.samples.testing import build_product
from s1tiling.times import seconds_since

OLD = "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB"  # IPF 2.36
OLD_DEM = "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768"  # 2.36, over N50E010
GREECE = "S1A_IW_GRDH_1SDV_20150203T043109_20150203T043134_004454_00574F_6D00"  # 2.70, old noise
RECENT = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"  # 3.31

#: (row_off, col_off, height, width) windows of the cross-check products.
SPECKLE_WINDOW = (6000, 7000, 256, 384)
CONSTANT_WINDOW = (9000, 15000, 128, 256)
CONSTANT_DN = 150


INTERFACES = ("python", "cli")


def _require_otb_cli():
    if shutil.which("otbcli_SARCalibration") is None:
        pytest.skip("otbcli_SARCalibration not found: apt-get install otb-bin")


def _require_otb_python():
    if otb._python_module() is None:
        pytest.skip(f"OTB's Python module cannot be used ({otb._import_error}): {otb.PYTHON_HINT}")


@pytest.fixture(params=INTERFACES)
def interface(request, monkeypatch):
    """Runs the test once through each interface (S1TILING_OTB_INTERFACE); skips the missing one."""
    (_require_otb_python if request.param == "python" else _require_otb_cli)()
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, request.param)
    return request.param


# ----------------------------------------------------------------------------- command lines

def test_calibrate_command_line():
    app = otb.calibrate("/p/m.tiff", "gamma", remove_noise=False, region=(6000, 7000, 300, 400))
    assert app.command_line("out.tif", ram_mb=256, creation_options=["COMPRESS=DEFLATE"]) == [
        "otbcli_SARCalibration", "-in", "/p/m.tiff", "-lut", "gamma", "-removenoise", "false",
        "-ram", "256", "-out", "out.tif?&gdal:co:COMPRESS=DEFLATE&box=7000:6000:400:300", "float",
    ]
    with pytest.raises(ValueError, match="normlim"):
        otb.calibrate("/p/m.tiff", "normlim")


def test_calibrate_with_noise_removal_chains_a_bandmath():
    app = otb.calibrate("/p/m.tiff", "sigma", remove_noise=True, lower_signal_value=1e-7,
                        region=(10, 20, 30, 40))
    assert app.name == "BandMath"
    assert app.params["exp"] == "im2b1==0?0:(im1b1<=0?1e-07:im1b1)"
    calibrated, dn = app.params["il"]
    assert calibrated.name == "SARCalibration" and calibrated.params["removenoise"] is True
    assert (dn.name, dn.params["startx"], dn.params["starty"], dn.params["sizex"], dn.params["sizey"]) == (
        "ExtractROI", 20, 10, 40, 30)
    assert app.input_files() == ["/p/m.tiff"]
    with pytest.raises(ValueError, match="must be written first"):
        app.command_line("out.tif")
    written = {calibrated: Path("/t/cal.tif"), dn: Path("/t/dn.tif")}
    assert app.command_line("o.tif", written=written)[1:4] == ["-il", "/t/cal.tif", "/t/dn.tif"]
    # without a region the DN come straight from the measurement
    assert otb.calibrate("/p/m.tiff").params["il"][1] == "/p/m.tiff"


@pytest.mark.parametrize("epsg, expected", [
    (32631, ["-map", "utm", "-map.utm.zone", "31", "-map.utm.northhem", "true"]),
    (32737, ["-map", "utm", "-map.utm.zone", "37", "-map.utm.northhem", "false"]),
    (2154, ["-map", "epsg", "-map.epsg.code", "2154"]),
])
def test_orthorectify_command_line(epsg, expected):
    grid = otb.OrthoGrid(epsg, 399960.0, 5000040.0, 10980, 10980, 10.0)
    argv = otb.orthorectify("/t/cal.tif", grid, "/dem", "/g/egm96.gtx", 40, "linear").command_line(
        "/o/t.tif", ram_mb=2048)
    assert argv[:3] == ["otbcli_OrthoRectification", "-io.in", "/t/cal.tif"]
    assert argv[3:3 + len(expected)] == expected
    options = dict(zip(argv[1::2], argv[2::2]))
    assert options["-outputs.ulx"] == "399960.0" and options["-outputs.uly"] == "5000040.0"
    assert options["-outputs.sizex"] == options["-outputs.sizey"] == "10980"
    assert (options["-outputs.spacingx"], options["-outputs.spacingy"]) == ("10.0", "-10.0")
    assert options["-elev.dem"] == "/dem" and options["-elev.geoid"] == "/g/egm96.gtx"
    assert options["-opt.gridspacing"] == "40.0" and options["-interpolator"] == "linear"
    assert options["-opt.ram"] == "2048"
    assert argv[-3:] == ["-io.out", "/o/t.tif", "float"]


def test_mask_merge_and_filter_command_lines():
    mask = otb.border_mask("/t/tile.tif")
    binary = mask.params["in"]
    assert binary.command_line("b.tif") == [
        "otbcli_BandMath", "-il", "/t/tile.tif", "-exp", "im1b1==0?0:1", "-out", "b.tif", "uint8"]
    assert mask.command_line("m.tif", written={binary: "b.tif"}) == [
        "otbcli_BinaryMorphologicalOperation", "-in", "b.tif", "-structype", "ball", "-xradius", "5",
        "-yradius", "5", "-filter", "opening", "-out", "m.tif", "uint8"]
    assert otb.synthetize(["a.tif", "b.tif"]).command_line("s.tif", pixel_type="float32") == [
        "otbcli_Synthetize", "-il", "a.tif", "b.tif", "-out", "s.tif", "float"]
    assert otb.despeckle("s.tif", "frost", 2, deramp=0.2).command_line("f.tif")[1:9] == [
        "-in", "s.tif", "-filter", "frost", "-filter.frost.rad", "2", "-filter.frost.deramp", "0.2"]
    assert otb.reset_margin("c.tif", top=1600, left=1000, right=1000).command_line("r.tif")[3:] == [
        "-mode", "margin", "-margin.top", "1600", "-margin.bottom", "0", "-margin.left", "1000",
        "-margin.right", "1000", "-out", "r.tif", "float"]
    with pytest.raises(ValueError, match="int64"):
        otb.synthetize(["a.tif"]).command_line("s.tif", pixel_type="int64")


def test_require_otb_without_otb(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(otb, "_python_module", lambda: None)
    assert not otb.otb_available()
    with pytest.raises(MissingApplicationError, match="apt-get install otb-bin") as error:
        otb.require_otb()
    assert error.value.exit_code == 77


# ----------------------------------------------------------------------------- chaining, no OTB

_FAKE_PROGRAM = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps({{"app": os.path.basename(sys.argv[0]), "args": args,
                          "threads": os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"),
                          "existing": [a for a in args if os.path.isfile(a)]}}) + "\\n")
if {fail!r}:
    print("2024-01-01 (FATAL) " + os.path.basename(sys.argv[0]) + ": boom")
    sys.exit(1)
out = args[args.index("-out") + 1] if "-out" in args else args[args.index("-io.out") + 1]
open(out.split("?")[0], "w").write("image")
"""


def _fake_otb(directory: Path, log: Path, apps, fail=()):
    directory.mkdir()
    for app in apps:
        program = directory / f"otbcli_{app}"
        program.write_text(_FAKE_PROGRAM.format(python=sys.executable, log=str(log), fail=app in fail))
        program.chmod(program.stat().st_mode | stat.S_IEXEC)


def test_cli_chain_writes_intermediates_then_renames(monkeypatch, tmp_path):
    log = tmp_path / "calls.jsonl"
    _fake_otb(tmp_path / "bin", log, ["SARCalibration", "ExtractROI", "BandMath"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(otb, "_python_module", lambda: None)
    out = tmp_path / "out" / "cal.tif"
    options = otb.OtbOptions(threads=3, ram_mb=64, tmp_dir=tmp_path / "scratch")
    app = otb.calibrate(tmp_path / "m.tiff", remove_noise=True, region=(0, 0, 10, 10))
    assert app.write(out, options) == out
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["app"] for c in calls] == ["otbcli_SARCalibration", "otbcli_ExtractROI", "otbcli_BandMath"]
    assert all(c["threads"] == "3" for c in calls)
    assert all(c["args"][c["args"].index("-ram") + 1] == "64" for c in calls)
    bandmath = calls[2]["args"]
    inputs = bandmath[bandmath.index("-il") + 1:bandmath.index("-exp")]
    assert inputs == [calls[0]["args"][calls[0]["args"].index("-out") + 1].split("?")[0],
                      calls[1]["args"][calls[1]["args"].index("-out") + 1]]
    assert calls[2]["existing"] == inputs  # intermediates existed when BandMath ran
    assert out.read_text() == "image"
    assert list(out.parent.iterdir()) == [out]  # renamed, no temporary left
    assert list((tmp_path / "scratch").iterdir()) == []  # intermediates removed


def test_cli_failure_names_application_and_inputs(monkeypatch, tmp_path):
    _fake_otb(tmp_path / "bin", tmp_path / "calls.jsonl", ["SARCalibration"], fail=["SARCalibration"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(otb, "_python_module", lambda: None)
    with pytest.raises(otb.OtbError, match=r"SARCalibration failed on .*m\.tiff.*boom"):
        otb.calibrate(tmp_path / "m.tiff", remove_noise=False).write(tmp_path / "cal.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "calls.jsonl"]
    # an application missing from an OTB install: exit code 77
    with pytest.raises(MissingApplicationError, match="otbcli_BandMath not found"):
        otb.OtbApp("BandMath", {"il": ["a.tif"], "exp": "im1b1"}, inputs=("il",)).write(tmp_path / "x.tif")


class _FakeHandle:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def GetName(self):  # noqa: N802 - OTB's name
        return self.name

    def __getattr__(self, method):
        def record(*args):
            self.calls.append((self.name, method, *args))
            if method == "ExecuteAndWriteOutput":
                path = next(c[3] for c in reversed(self.calls) if c[:2] == (self.name, "SetParameterString")
                            and c[2] in ("out", "io.out"))
                Path(path.split("?")[0]).write_text("image")
            return f"image-of-{self.name}" if method == "GetParameterOutputImage" else None
        return record


class _FakeOtbApplication:
    ImagePixelType_float = "PT_float"
    ImagePixelType_uint8 = "PT_uint8"

    def __init__(self):
        self.calls = []
        module = self

        class Registry:
            @staticmethod
            def CreateApplication(name):
                module.calls.append((name, "create"))
                return _FakeHandle(name, module.calls)

        self.Registry = Registry


def test_python_chain_runs_in_memory(monkeypatch, tmp_path):
    fake = _FakeOtbApplication()
    monkeypatch.setattr(otb, "_python_module", lambda: fake)
    monkeypatch.delenv(otb.THREADS_VARIABLE, raising=False)
    grid = otb.OrthoGrid(32631, 0.0, 100.0, 10, 10, 10.0)
    chain = otb.orthorectify(otb.reset_margin(otb.calibrate("m.tiff", remove_noise=False), top=5), grid)
    out = chain.write(tmp_path / "t.tif", otb.OtbOptions(threads=2, ram_mb=128))
    assert out.read_text() == "image"
    assert os.environ[otb.THREADS_VARIABLE] == "2"
    calls = fake.calls
    assert ("SARCalibration", "Execute") in calls and ("ResetMargin", "Execute") in calls
    assert ("ResetMargin", "SetParameterInputImage", "in", "image-of-SARCalibration") in calls
    assert ("OrthoRectification", "SetParameterInputImage", "io.in", "image-of-ResetMargin") in calls
    assert ("OrthoRectification", "SetParameterString", "opt.ram", "128") in calls
    assert ("OrthoRectification", "SetParameterOutputImagePixelType", "io.out", "PT_float") in calls
    assert [c[0] for c in calls if c[1] == "ExecuteAndWriteOutput"] == ["OrthoRectification"]


def test_python_chain_extracts_regions_in_memory(monkeypatch, tmp_path):
    """A calibrated region is an in-memory ExtractROI of the calibrated measurement (never a
    file): OTB applies the LUTs at the measurement's own pixel indices."""
    fake = _FakeOtbApplication()
    monkeypatch.setattr(otb, "_python_module", lambda: fake)
    otb.calibrate("m.tiff", remove_noise=True, region=(10, 20, 8, 6)).write(tmp_path / "c.tif")
    calls = fake.calls
    assert [c[0] for c in calls if c[1] == "ExecuteAndWriteOutput"] == ["BandMath"]
    assert ("SARCalibration", "Execute") in calls
    rois = [c[2:] for c in calls if c[0] == "ExtractROI" and c[1] in ("SetParameterString", "SetParameterInputImage")]
    # the region of the calibrated image, then the same region of the DN (read from the file)
    assert rois == [("in", "image-of-SARCalibration"), ("mode", "standard"), ("startx", "20"), ("starty", "10"),
                    ("sizex", "6"), ("sizey", "8"),
                    ("in", "m.tiff"), ("startx", "20"), ("starty", "10"), ("sizex", "6"), ("sizey", "8")]
    # BandMath(il = [calibrated region, DN of the region]): both in memory, no file
    assert [c[2:] for c in calls if c[0] == "BandMath" and c[1] == "AddImageToParameterInputImageList"] == [
        ("il", "image-of-ExtractROI"), ("il", "image-of-ExtractROI")]
    out = next(c[3] for c in calls if c[:3] == ("BandMath", "SetParameterString", "out"))
    assert "box=" not in out and out.split("?")[0].endswith(".tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]


def test_python_chain_mixes_files_and_images_in_a_list(monkeypatch, tmp_path):
    """OTB 8.1 cannot append a file to an image list: the list is set as files, then the
    in-memory images replace their placeholders, in order."""
    fake = _FakeOtbApplication()
    monkeypatch.setattr(otb, "_python_module", lambda: fake)
    otb.calibrate("m.tiff", remove_noise=True).write(tmp_path / "c.tif")
    calls = [c for c in fake.calls if c[0] == "BandMath"]
    assert ("BandMath", "SetParameterStringList", "il", ["m.tiff", "m.tiff"]) in calls
    assert ("BandMath", "SetNthParameterInputImageList", "il", 0, "image-of-SARCalibration") in calls


def test_python_chain_merges_in_memory_with_a_bandmath(monkeypatch, tmp_path):
    """Synthetize only reads files: in memory the slices are merged by the same rule."""
    fake = _FakeOtbApplication()
    monkeypatch.setattr(otb, "_python_module", lambda: fake)
    grid = otb.OrthoGrid(32631, 0.0, 100.0, 10, 10, 10.0)
    slices = [otb.orthorectify(otb.calibrate(f"m{i}.tiff", remove_noise=False), grid) for i in range(3)]
    otb.synthetize(slices).write(tmp_path / "t.tif")
    assert not [c for c in fake.calls if c[0] == "Synthetize"]
    assert ("BandMath", "SetParameterString", "exp",
            "(im1b1!=0?im1b1:(im2b1!=0?im2b1:im3b1))") in fake.calls
    assert [c[3] for c in fake.calls if c[:2] == ("BandMath", "AddImageToParameterInputImageList")] == [
        "image-of-OrthoRectification"] * 3


def test_interface_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "java")
    with pytest.raises(ConfigurationError, match="S1TILING_OTB_INTERFACE='java'"):
        otb.interface()
    fake = _FakeOtbApplication()
    monkeypatch.setattr(otb, "_python_module", lambda: fake)
    monkeypatch.setenv("PATH", str(tmp_path))  # no otbcli_*
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "auto")
    assert otb.interface() == "python"
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "cli")
    with pytest.raises(MissingApplicationError, match="apt-get install otb-bin"):
        otb.interface()
    monkeypatch.setattr(otb, "_python_module", lambda: None)
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "python")
    with pytest.raises(MissingApplicationError, match="build-otb-python.sh") as error:
        otb.require_otb()
    assert error.value.exit_code == 77


# ----------------------------------------------------------------------------- IPF < 2.43 fix

def _annotation(s1_dir, name, pol="vv"):
    return next((s1_dir / f"{name}.SAFE" / "annotation").glob(f"s1?-*-{pol}-*.xml"))


def test_fix_fm_rate_polynomials_on_ipf_2_36(s1_dir):
    raw = _annotation(s1_dir, OLD).read_bytes()
    # read by hand: every <azimuthFmRate> block of the raw text and its c0, c1, c2
    blocks = re.findall(rb"<azimuthFmRate>(.*?)</azimuthFmRate>", raw, re.S)
    expected = [" ".join(re.search(rb"<c%d>(.*?)</c%d>" % (i, i), b).group(1).decode().strip() for i in range(3))
                for b in blocks]
    assert len(expected) > 5
    fixed = otb.fix_fm_rate_polynomials(raw)
    found = re.findall(rb'<azimuthFmRatePolynomial count="3">(.*?)</azimuthFmRatePolynomial>', fixed)
    assert [f.decode() for f in found] == expected
    assert otb.fix_fm_rate_polynomials(fixed) is None
    assert otb.fix_fm_rate_polynomials(_annotation(s1_dir, RECENT).read_bytes()) is None


def test_prepare_safe_for_otb(s1_dir, tmp_path):
    recent = s1_dir / f"{RECENT}.SAFE"
    assert otb.prepare_safe_for_otb(recent, tmp_path) == recent  # readable as is
    prepared = otb.prepare_safe_for_otb(s1_dir / f"{OLD}.SAFE", tmp_path / "otb")
    assert prepared == tmp_path / "otb" / f"{OLD}.SAFE"
    product = open_product(s1_dir / f"{OLD}.SAFE")
    for pol in product.polarisations:
        annotation = prepared / product.relative_path("annotation", pol)
        assert not annotation.is_symlink() and b"azimuthFmRatePolynomial" in annotation.read_bytes()
        calibration = prepared / product.relative_path("calibration", pol)
        assert calibration.resolve() == (s1_dir / f"{OLD}.SAFE" / product.relative_path("calibration", pol)).resolve()
    assert (prepared / "manifest.safe").is_symlink()
    assert otb.prepare_safe_for_otb(s1_dir / f"{OLD}.SAFE", tmp_path / "otb") == prepared  # reused
    assert [p.name for p in (tmp_path / "otb").iterdir()] == [prepared.name]  # no staging left


def test_prepare_zipped_product_extracts_it(s1_dir, tmp_path):
    zipped = build_product(s1_dir / f"{OLD}.SAFE", tmp_path / "in", zipped=True, polarisations=["VV"])
    prepared = otb.prepare_safe_for_otb(zipped, tmp_path / "otb")
    product = open_product(zipped)
    measurement = prepared / product.relative_path("measurement", "VV")
    assert measurement.is_file() and not measurement.is_symlink()
    with rasterio.open(measurement) as ds:
        assert (ds.height, ds.width) == product.shape
    assert not (prepared / product.relative_path("measurement", "VH")).exists()  # not in the zip
    assert b"azimuthFmRatePolynomial" in (prepared / product.relative_path("annotation", "VH")).read_bytes()


# ----------------------------------------------------------------------------- real OTB runs

def _speckle_content(rows, cols):
    """Constant DN, with pseudo-random Rayleigh amplitudes (and a no-data line every 64) in
    SPECKLE_WINDOW: cheap enough for full-size products."""
    r0, c0, h, w = SPECKLE_WINDOW
    inside = (rows >= r0) & (rows < r0 + h) & (cols >= c0) & (cols < c0 + w)
    if not inside.any():
        return CONSTANT_DN
    key = (rows.astype(np.int64) * 73856093) ^ (cols.astype(np.int64) * 19349663)
    u = ((key % 1048573) + 0.5) / 1048573
    dn = np.rint(100 * np.sqrt(-2 * np.log(u)))
    dn = np.where((rows - r0) % 64 == 0, 0, dn)
    return np.where(inside, dn, CONSTANT_DN)


@pytest.fixture(scope="module")
def otb_products(s1_dir, tmp_path_factory):
    """name -> (native product path, OTB-readable SAFE), VV only."""
    if shutil.which("otbcli_SARCalibration") is None and otb._python_module() is None:
        pytest.skip(f"no OTB: {otb.INSTALL_HINT}")
    root = tmp_path_factory.mktemp("otb-products")
    products = {}
    for name in (OLD, GREECE, RECENT):
        path = build_product(s1_dir / f"{name}.SAFE", root / name[17:32], content=_speckle_content,
                             polarisations=["VV"])
        products[name] = (path, otb.prepare_safe_for_otb(path, root / "otb"))
    return products


@pytest.mark.otb
def test_otb_needs_the_fm_rate_fix_on_ipf_2_36(otb_products, tmp_path, interface):
    path, prepared = otb_products[OLD]
    raw = path / open_product(path).relative_path("measurement", "VV")
    with pytest.raises(otb.OtbError, match=rf"SARCalibration failed on {re.escape(str(raw))}"):
        otb.calibrate(raw, remove_noise=False, region=(0, 0, 4, 4)).write(tmp_path / "c.tif")
    assert not (tmp_path / "c.tif").exists()
    assert prepared != path


@pytest.mark.otb
@pytest.mark.parametrize("name", [OLD, GREECE, RECENT])
@pytest.mark.parametrize("remove_noise", [False, True])
def test_calibration_matches_native(otb_products, tmp_path, name, remove_noise, interface):
    path, prepared = otb_products[name]
    product = open_product(path)
    measurement = prepared / product.relative_path("measurement", "VV")
    for label, window in (("constant", CONSTANT_WINDOW), ("speckle", SPECKLE_WINDOW)):
        start = time.perf_counter()
        out = otb.calibrate(measurement, "sigma", remove_noise, region=window).write(
            tmp_path / f"{label}.tif", otb.OtbOptions(threads=1, ram_mb=128, tmp_dir=tmp_path))
        seconds = time.perf_counter() - start
        with rasterio.open(out) as ds:
            assert ds.dtypes[0] == "float32" and (ds.height, ds.width) == window[2:]
            assert (ds.transform.c, ds.transform.f) == (window[1], window[0])
            ours = ds.read(1).astype(np.float64)
        dn = product.read("VV", window)
        native = native_calibrate(product, "VV", window, "sigma", remove_noise, border_cut=False).astype(np.float64)
        floor = native <= LOWER_SIGNAL_VALUE  # no-data, or noise above the signal
        assert np.array_equal(ours[dn == 0], np.zeros(np.count_nonzero(dn == 0)))
        assert np.mean((ours <= LOWER_SIGNAL_VALUE) != floor) < 1e-3
        relative = np.abs(ours[~floor] / native[~floor] - 1)
        print(f"{interface}: {name[17:25]} IPF {product.ipf_version} noise={remove_noise} {label}: "
              f"median |OTB/native - 1| = {np.median(relative):.1e}, max = {relative.max():.1e}, "
              f"floored {np.count_nonzero(floor)} px, OTB {seconds:.2f} s")
        assert np.median(relative) < 1e-3


@pytest.mark.otb
def test_reset_margin_zeroes_the_margins(otb_products, tmp_path, interface):
    path, prepared = otb_products[RECENT]
    measurement = prepared / open_product(path).relative_path("measurement", "VV")
    calibrated = otb.calibrate(measurement, remove_noise=False, region=SPECKLE_WINDOW).write(tmp_path / "c.tif")
    out = otb.reset_margin(calibrated, top=10, bottom=20, left=30, right=40).write(tmp_path / "r.tif")
    with rasterio.open(calibrated) as src, rasterio.open(out) as dst:
        before, after = src.read(1), dst.read(1)
        assert dst.transform == src.transform
    inside = (slice(10, before.shape[0] - 20), slice(30, before.shape[1] - 40))
    assert np.array_equal(after[inside], before[inside])
    after[inside] = 0
    assert not after.any()


def _exact_sar_position(annotation, k):
    """(line, pixel) of geolocation grid point k from its annotated times (DOMAIN.md s.3).

    Ground range comes from inverting the grsr polynomials (bisection), not from srgr: on the
    IPF 2.36 products srgr disagrees with grsr by up to 4 pixels, and grsr is the one that agrees
    with the ellipsoid geometry and ESA's `pixel` field (see engines.otb.fix_srgr_polynomials).
    """
    image, conversion, grid = annotation.image, annotation.coordinate_conversion, annotation.geolocation_grid
    t = seconds_since(grid.azimuth_time[k], image.first_line_time)
    slant_range = SPEED_OF_LIGHT * grid.slant_range_time[k] / 2
    times = seconds_since(conversion.azimuth_time, image.first_line_time)
    j = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))

    def ground_of(i):
        lo, hi = 0.0, 2.0 * image.number_of_samples * image.range_pixel_spacing
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if np.polynomial.polynomial.polyval(mid - conversion.gr0[i], conversion.grsr[i]) < slant_range:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    ground = [ground_of(i) for i in (j, j + 1)]
    w = (t - times[j]) / (times[j + 1] - times[j])
    return t / image.azimuth_time_interval, (ground[0] + w * (ground[1] - ground[0])) / image.range_pixel_spacing


def _bilinear(dataset, lon, lat):
    """Bilinear value of a lon/lat raster whose pixel centres are its posts."""
    t = dataset.transform
    col, row = (lon - t.c) / t.a, (lat - t.f) / t.e
    c0, r0 = int(np.floor(col - 0.5)), int(np.floor(row - 0.5))
    fc, fr = col - 0.5 - c0, row - 0.5 - r0
    a = dataset.read(1, window=((r0, r0 + 2), (c0, c0 + 2))).astype(np.float64)
    return (a[0, 0] * (1 - fc) + a[0, 1] * fc) * (1 - fr) + (a[1, 0] * (1 - fc) + a[1, 1] * fc) * fr


@pytest.mark.otb
def test_orthorectify_matches_esa_geolocation_grid(s1_dir, srtm_dir, geoid_file, tmp_path, interface):
    """Gaussian blobs centred on the exact SAR positions of two geolocation grid points land
    where ESA's grid says: at the grid's own height (flat), and shifted along ground range by
    (h - h_grid) / tan(incidence) with h = N (geoid only) or H_srtm + N (DEM and geoid)."""
    template = open_product(s1_dir / f"{OLD_DEM}.SAFE")
    annotation = template.annotation("VV")
    grid = annotation.geolocation_grid
    points = [32, 33]  # interior points above N50E010
    centres = [_exact_sar_position(annotation, k) for k in points]

    def blobs(rows, cols):
        out = np.ones(np.broadcast_shapes(rows.shape, cols.shape))
        for line, pixel in centres:
            rows_term = np.exp(-((rows - line) ** 2) / 18.0)
            if rows_term.max() > 1e-6:
                out = out + 1000 * rows_term * np.exp(-((cols - pixel) ** 2) / 18.0)
        return out

    path = build_product(template.path, tmp_path, content=blobs, polarisations=["VV"])
    measurement = otb.prepare_safe_for_otb(path, tmp_path / "otb") / template.relative_path("measurement", "VV")
    to_utm = pyproj.Transformer.from_crs(4326, 32632, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(32632, 4326, always_xy=True)
    with rasterio.open(srtm_dir / "N50E010.hgt") as dem, rasterio.open(geoid_file) as geoid:
        for k in points:
            esa = np.array(to_utm.transform(grid.longitude[k], grid.latitude[k]))
            range_direction = np.array(to_utm.transform(grid.longitude[k + 1], grid.latitude[k + 1])) - esa
            range_direction /= np.hypot(*range_direction)
            tan_incidence = np.tan(np.radians(grid.incidence_angle[k]))
            tile = otb.OrthoGrid(32632, 10 * round(esa[0] / 10) - 1000, 10 * round(esa[1] / 10) + 1000, 200, 200, 10.0)
            cases = {
                "flat": (dict(default_elevation=grid.height[k]), None, 0.1),
                "geoid": (dict(geoid_file=geoid_file), lambda lon, lat: _bilinear(geoid, lon, lat), 1.0),
                "dem": (dict(dem_dir=srtm_dir, geoid_file=geoid_file),
                        lambda lon, lat: _bilinear(geoid, lon, lat) + _bilinear(dem, lon, lat), 5.0),
            }
            for label, (elevation, height, tolerance) in cases.items():
                expected = esa
                for _ in range(5 if height else 0):  # the height where the point lands
                    h = height(*to_lonlat.transform(*expected))
                    expected = esa + range_direction * (h - grid.height[k]) / tan_incidence
                out = otb.orthorectify(measurement, tile, gridspacing=20, interpolator="linear",
                                       **elevation).write(tmp_path / f"{k}-{label}.tif")
                with rasterio.open(out) as ds:
                    assert ds.crs.to_epsg() == 32632 and ds.transform == from_origin(tile.ulx, tile.uly, 10, 10)
                    weight = np.clip(ds.read(1).astype(np.float64) - 1, 0, None)
                rows, cols = np.indices(weight.shape)
                found = np.array([tile.ulx + 10 * ((weight * cols).sum() / weight.sum() + 0.5),
                                  tile.uly - 10 * ((weight * rows).sum() / weight.sum() + 0.5)])
                error = np.hypot(*(found - expected))
                print(f"{interface}: grid point {k} {label}: OTB - expected = {error:.2f} m "
                      f"(shift from the grid point {np.hypot(*(expected - esa)):.0f} m)")
                assert error < tolerance


def _recent_chain(otb_products):
    """Calibration (noise removed) of a region of the 2021 product, margins reset, then
    orthorectified (bicubic) onto a 10 m UTM 31N grid around the region's ground position."""
    path, prepared = otb_products[RECENT]
    product = open_product(path)
    grid = product.annotation("VV").geolocation_grid
    r0, c0, h, w = SPECKLE_WINDOW
    k = int(np.argmin(np.hypot(np.asarray(grid.line) - (r0 + h / 2), np.asarray(grid.pixel) - (c0 + w / 2))))
    x, y = pyproj.Transformer.from_crs(4326, 32631, always_xy=True).transform(grid.longitude[k], grid.latitude[k])
    tile = otb.OrthoGrid(32631, 10 * round(x / 10) - 2000, 10 * round(y / 10) + 2000, 400, 400, 10.0)
    measurement = prepared / product.relative_path("measurement", "VV")
    region = (r0 - 300, c0 - 300, h + 600, w + 600)
    chain = otb.reset_margin(otb.calibrate(measurement, "sigma", True, region=region), top=40, left=60)
    return otb.orthorectify(chain, tile, gridspacing=40, interpolator="bco"), measurement


@pytest.mark.otb
def test_in_memory_chain_is_read_by_blocks_without_any_file(otb_products, tmp_path, monkeypatch):
    """OtbApp.open through otbApplication: no file while its blocks are read, blocks quartered
    while OTB's memory estimate exceeds the budget, and the same pixels as the otbcli_* chain."""
    _require_otb_cli()
    _require_otb_python()
    chain, _ = _recent_chain(otb_products)
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "cli")
    with rasterio.open(chain.write(tmp_path / "cli.tif", otb.OtbOptions(threads=2, ram_mb=256))) as ds:
        expected, transform = ds.read(1), ds.transform
    assert np.count_nonzero(expected) > 0.2 * expected.size

    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "python")
    monkeypatch.setattr(otb, "MIN_BLOCK_BUDGET", 2 ** 20)  # 1 MiB: quarter blocks down to their minimum size
    scratch = tmp_path / "scratch"
    image = np.full(expected.shape, np.nan, np.float32)
    windows = []
    with chain.open(otb.OtbOptions(threads=2, ram_mb=1, tmp_dir=scratch)) as result:
        assert (result.width, result.height, result.count) == (400, 400, 1)
        assert result.transform.almost_equals(transform, 1e-9)
        for window, values in result.blocks(256):
            assert not [p for p in scratch.rglob("*") if p.is_file()]  # nothing written
            block = (slice(window.row_off, window.row_off + window.height),
                     slice(window.col_off, window.col_off + window.width))
            assert np.isnan(image[block]).all()  # each pixel read once
            image[block] = values
            windows.append(window)
    # the 256-pixel blocks over the SAR image were quartered (those outside need no memory)
    assert len(windows) > 4 and min(max(w.width, w.height) for w in windows) <= otb.MIN_BLOCK_SIZE
    assert np.array_equal(image, expected)
    assert not scratch.exists() or not any(scratch.iterdir())


@pytest.mark.otb
def test_otb_writes_a_truncated_azimuth_time_interval(otb_products, tmp_path, interface):
    """OTB itself writes SAR.AzimuthTimeInterval with 6 digits; our chains write the annotation's."""
    path, prepared = otb_products[RECENT]
    product = open_product(path)
    measurement = prepared / product.relative_path("measurement", "VV")
    exact = product.annotation("VV").image.azimuth_time_interval
    raw = tmp_path / "raw.tif"
    if interface == "cli":
        subprocess.run(["otbcli_SARCalibration", "-in", str(measurement), "-out", f"{raw}?&box=0:0:50:40"],
                       check=True, capture_output=True)
    else:
        app = otb._python_module().Registry.CreateApplication("SARCalibration")
        app.SetParameterString("in", str(measurement))
        app.SetParameterString("out", f"{raw}?&box=0:0:50:40")
        app.ExecuteAndWriteOutput()

    def written(file):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a SAR image
            with rasterio.open(file) as ds:
                return float(ds.tags()[otb.AZIMUTH_TIME_INTERVAL_TAG])

    assert written(raw) != exact and abs(written(raw) / exact - 1) < 5e-6
    assert otb.restore_azimuth_time_interval(raw, [str(measurement)])
    assert written(raw) == exact
    assert not otb.restore_azimuth_time_interval(raw, [str(measurement)])  # nothing left to restore
    assert written(otb.calibrate(measurement, region=(0, 0, 40, 50)).write(tmp_path / "ours.tif")) == exact


@pytest.mark.otb
def test_otb_logs_go_to_our_logger(tmp_path, monkeypatch, caplog, capfd):
    _require_otb_python()
    monkeypatch.setenv(otb.INTERFACE_VARIABLE, "python")
    caplog.set_level(logging.DEBUG, logger="s1tiling.engines.otb")
    otb.despeckle(_write_tile(tmp_path / "t.tif", np.full((30, 30), 0.25, np.float32))).write(tmp_path / "f.tif")
    messages = [r.getMessage() for r in caplog.records if r.name == "s1tiling.engines.otb"]
    assert any(m.startswith("OTB: Despeckle: ") for m in messages), messages
    assert any(m.startswith("OTB: Writing ") for m in messages)  # progress reports
    assert "Despeckle" not in capfd.readouterr().out  # nothing printed


def _write_tile(path, array, transform=from_origin(500000, 5000000, 10, 10)):  # noqa: B008 - an immutable Affine
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype=array.dtype, crs="EPSG:32631", transform=transform) as ds:
        ds.write(array, 1)
    return path


@pytest.mark.otb
def test_synthetize_keeps_the_first_non_zero_pixel(tmp_path, interface):
    first = np.zeros((20, 30), np.float32)
    first[:12] = 1.5
    second = np.full((20, 30), 2.5, np.float32)
    second[:, :5] = 0
    out = otb.synthetize([_write_tile(tmp_path / "a.tif", first), _write_tile(tmp_path / "b.tif", second)]
                         ).write(tmp_path / "s.tif")
    with rasterio.open(out) as ds:
        merged = ds.read(1)
        assert ds.transform == from_origin(500000, 5000000, 10, 10) and ds.dtypes[0] == "float32"
    assert np.array_equal(merged, np.where(first != 0, first, second))


@pytest.mark.otb
def test_border_mask(tmp_path, interface):
    image = np.zeros((80, 80), np.float32)
    image[:, 40:] = 0.3  # the valid half of a tile
    image[10:13, 10:13] = 0.2  # a speck, smaller than the ball: removed
    out = otb.border_mask(_write_tile(tmp_path / "t.tif", image)).write(tmp_path / "m.tif")
    with rasterio.open(out) as ds:
        mask = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.transform == from_origin(500000, 5000000, 10, 10)
    assert set(np.unique(mask)) <= {0, 1}
    assert not mask[:, :40].any()
    assert mask[6:-6, 46:-6].all()  # deep inside the valid part


@pytest.mark.otb
def test_despeckle_keeps_a_constant_image(tmp_path, interface):
    out = otb.despeckle(_write_tile(tmp_path / "t.tif", np.full((30, 30), 0.25, np.float32)), "lee", 2, 4.0
                        ).write(tmp_path / "f.tif")
    with rasterio.open(out) as ds:
        assert np.allclose(ds.read(1)[3:-3, 3:-3], 0.25, rtol=1e-6)


def _grid_pixel_errors(annotation: bytes) -> np.ndarray:
    """|srgr(c * slantRangeTime / 2) / spacing - pixel| at ESA's geolocation grid points, with the
    srgr record of the first azimuth time at or after each point (nearest record, no time
    interpolation: enough to tell a 4-pixel error from a consistent polynomial)."""
    root = etree.fromstring(annotation)
    spacing = float(root.findtext("imageAnnotation/imageInformation/rangePixelSpacing"))
    records = [(np.datetime64(r.findtext("azimuthTime")), float(r.findtext("sr0")),
                np.array(r.findtext("srgrCoefficients").split(), dtype=float))
               for r in root.iterfind("coordinateConversion/coordinateConversionList/coordinateConversion")]
    errors = []
    for point in root.iter("geolocationGridPoint"):
        t = np.datetime64(point.findtext("azimuthTime"))
        _, sr0, srgr = min(records, key=lambda r: abs(r[0] - t))
        slant = 299792458.0 * float(point.findtext("slantRangeTime")) / 2
        errors.append(np.polynomial.polynomial.polyval(slant - sr0, srgr) / spacing - float(point.findtext("pixel")))
    return np.abs(np.array(errors))


def test_fix_srgr_polynomials_makes_old_range_polynomials_agree_with_esa_grid(s1_dir):
    raw = _annotation(s1_dir, OLD).read_bytes()
    fixed = otb.fix_srgr_polynomials(raw)
    assert fixed is not None
    root = etree.fromstring(fixed)
    spacing = float(root.findtext("imageAnnotation/imageInformation/rangePixelSpacing"))
    ground = np.linspace(0.0, int(root.findtext("imageAnnotation/imageInformation/numberOfSamples")) * spacing, 301)
    for record in root.iterfind("coordinateConversion/coordinateConversionList/coordinateConversion"):
        grsr = np.array(record.findtext("grsrCoefficients").split(), dtype=float)
        srgr = np.array(record.findtext("srgrCoefficients").split(), dtype=float)
        slant = np.polynomial.polynomial.polyval(ground, grsr)  # gr0 is 0 in GRD annotations
        back = np.polynomial.polynomial.polyval(slant - float(record.findtext("sr0")), srgr)
        assert np.abs(back - ground).max() < 0.01 * spacing  # srgr is now the inverse of grsr
    # ESA's rounded `pixel` field (nearest record, no time interpolation): closer on average.
    assert _grid_pixel_errors(fixed).mean() < _grid_pixel_errors(raw).mean() - 0.5
    assert otb.fix_srgr_polynomials(fixed) is None  # consistent now
    assert otb.fix_srgr_polynomials(_annotation(s1_dir, RECENT).read_bytes()) is None

"""OTB's Python module as built by ``scripts/build-otb-python.sh``: OTB's own wrapper tests
(``Modules/Wrappers/SWIG/test/python`` of the OTB source package, run on the test data of the
same package, as OTB's CMake runs them) and the build script's second call.

Skipped, with the reason, when ``otbApplication`` cannot be imported, or was not built by the
script (OTB's binary packages ship the module without these tests).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio

from s1tiling.engines import otb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built():
    """(prefix holding otbApplication, OTB source folder kept by the build script, applications folder)."""
    module = otb._python_module()
    if module is None:
        pytest.skip(f"OTB's Python module cannot be used ({otb._import_error}): {otb.PYTHON_HINT}")
    prefix = Path(module.__file__).resolve().parent
    sources = sorted(prefix.glob("share/otb-*/Modules/Wrappers/SWIG/test/python/PythonTestDriver.py"))
    if not sources:
        pytest.skip(f"{module.__file__} was not built by scripts/build-otb-python.sh: OTB's wrapper tests "
                    "are not beside it")
    source = sources[-1].parents[5]
    applications = os.environ.get("OTB_APPLICATION_PATH") or ":".join(otb._application_folders(module.__file__))
    return prefix, source, applications


# Every test of OTB's test/python/CMakeLists.txt: its name there -> (test module, arguments), {in}
# being Data/Input of the source package and {out} the test's temporary folder. The BandMath XML
# pair is test_bandmath_parameters_saved_to_xml_and_loaded_back.
OTB_TESTS = {
    "pyTvSmoothing": ("PythonSmoothingTest", ["{in}/ToulouseExtract_WithGeom.tif", "{out}/pyTvSmoothing_"]),
    "pyTvRescale": ("PythonRescaleTest", ["{in}/ToulouseExtract_WithGeom.tif", "{out}/pyTvRescale"]),
    "pyTvHyperspectralUnmixingUCLS": ("PythonHyperspectralUnmixing1", [
        "{in}/Hyperspectral/synthetic/hsi_cube.tif", "{out}/pyTvHyperspectralUnmixing_ucls.tif",
        "{in}/Hyperspectral/synthetic/endmembers.tif", "ucls"]),
    "pyTvBug804": ("Bug804", []),
    "pyTvBug823": ("Bug823", []),
    "pyTvBug736": ("Bug736", ["{in}/veryverySmallFSATSW.tif", "{out}/pyTvBug736Output.tif"]),
    "pyTvBug1899": ("Bug1899", ["{in}/veryverySmallFSATSW.tif", "{out}/pyTvBug1899Output.tif"]),
    "pyTvBug2262": ("Bug2262", ["{in}/Capitole_Rasterization.tif", "{out}/pyTvBug2262Output.txt"]),
    "pyTvNumpyIO": ("PythonNumpyTest", ["{in}/ROI_QB_MUL_1_SVN_CLASS_MULTI.png", "{out}/pyTvNumpyIO_SmoothingOut.png"]),
    "pyTvImageInterface": ("PythonImageInterface", ["{in}/QB_Toulouse_Ortho_XS.tif"]),
    "pyTvNewStyleParameters": ("PythonNewStyleParametersTest", [
        "{in}/sensor_stereo_left.tif", "{out}/pyTvNewStyleParametersTest.tif", "{in}/apTvUtSmoothingTest_OutXML.xml"]),
    "pyTvNewStyleParametersInstantiateAll": ("PythonNewStyleParametersInstantiateAllTest", []),
    "pyTvConnectApplications": ("PythonConnectApplications", ["{in}/poupees.tif", "{out}/pyTvConnectApplicationsOutput.tif"]),
    "pyTvBug1498": ("Bug823", ["{in}/poupees.tif", "{out}/Bu1498-output.tif"]),
    "pyTvParametersDict": ("PythonParametersDict", ["{in}/poupees.tif"]),
    "pyTvNoUpdateParameter": ("PythonNoUpdateParameter", ["{in}/poupees.tif", "{in}/training/training.shp"]),
    "pyTuImageMetadata": ("PythonImageMetadataTest", []),
}


def _run_otb_test(built, module, arguments, cwd):
    prefix, source, applications = built
    driver = source / "Modules/Wrappers/SWIG/test/python/PythonTestDriver.py"
    data = source / "Data/Input"
    argv = [a.format(**{"in": data, "out": cwd}) for a in arguments]
    env = dict(os.environ, PYTHONPATH=f"{prefix}{os.pathsep}{driver.parent}", OTB_APPLICATION_PATH=applications)
    run = subprocess.run([sys.executable, str(driver), module, *argv], cwd=cwd, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert run.returncode == 0, f"OTB's {module} failed:\n{run.stdout[-3000:]}"
    return run.stdout


@pytest.mark.otb
@pytest.mark.parametrize("name", sorted(OTB_TESTS))
def test_otb_wrapper_tests(built, name, tmp_path):
    """OTB's test passes (exit status 0, as OTB's test driver checks), and what it writes is
    there (and equal to OTB's baselines where OTB compares them)."""
    module, arguments = OTB_TESTS[name]
    output = _run_otb_test(built, module, arguments, tmp_path)
    baselines = built[1] / "Data/Baseline/OTB"
    if name == "pyTvBug736":  # --compare-image NOTOL against OTB's baseline
        with rasterio.open(tmp_path / "pyTvBug736Output.tif") as ours, \
                rasterio.open(baselines / "Images/apTvRIRadiometricVegetationIndices.tif") as baseline:
            assert ours.count == baseline.count == 3
            assert np.array_equal(ours.read(), baseline.read())
    elif name == "pyTvBug2262":  # the projection survives ExportImage/ImportImage (OTB compares the text)
        ours = (tmp_path / "pyTvBug2262Output.txt").read_text().splitlines()
        baseline = (baselines / "Files/pyTvBug2262Output.txt").read_text().splitlines()
        assert ours[0] == baseline[0] == "Test Bug2262.py"
        assert pyproj.CRS.from_wkt("\n".join(ours[1:])) == pyproj.CRS.from_wkt("\n".join(baseline[1:]))
    elif name == "pyTvSmoothing":
        for kind in ("mean", "gaussian", "anidif"):
            with rasterio.open(tmp_path / f"pyTvSmoothing_{kind}.tif") as ds, \
                    rasterio.open(built[1] / "Data/Input/ToulouseExtract_WithGeom.tif") as src:
                assert (ds.width, ds.height, ds.count) == (src.width, src.height, src.count)
    elif name == "pyTvNumpyIO":
        with rasterio.open(tmp_path / "pyTvNumpyIO_SmoothingOut.png") as ds:
            assert (ds.width, ds.height) == (250, 250)
    elif name == "pyTvNewStyleParametersInstantiateAll":
        assert len(otb._python_module().Registry.GetAvailableApplications()) >= 100
    elif name == "pyTvImageInterface":  # 20 x 25 pixels at (10, 10) asked of a smoothing (radius 1)
        assert "{index:[9,9], size:[22,27]}" in output, output


@pytest.mark.otb
def test_bandmath_parameters_saved_to_xml_and_loaded_back(built, tmp_path):
    """pyTvBandMathOutXML then pyTvBandMathInXML (which depends on it): the same image both ways."""
    data = "{in}"
    _run_otb_test(built, "PythonOutXMLTest", [f"{data}/verySmallFSATSW_r.tif", f"{data}/verySmallFSATSW_nir.tif",
                                              f"{data}/verySmallFSATSW.tif", "{out}/out.tif", "{out}/out.xml"],
                  tmp_path)
    _run_otb_test(built, "PythonInXMLTest", ["{out}/out.xml", "{out}/in.tif"], tmp_path)
    with rasterio.open(tmp_path / "out.tif") as a, rasterio.open(tmp_path / "in.tif") as b:
        assert np.array_equal(a.read(), b.read())


@pytest.mark.otb
def test_build_script_second_call_reuses_the_module(built):
    """A second call finds the module built for this interpreter and OTB and rebuilds nothing."""
    prefix = built[0]
    extension = sorted(prefix.glob("_otbApplication*.so"))
    if not os.access(prefix, os.W_OK):
        pytest.skip(f"{prefix} is not writable here")
    before = {p: p.stat().st_mtime_ns for p in extension}
    run = subprocess.run(["bash", str(ROOT / "scripts/build-otb-python.sh"), "--python", sys.executable,
                          "--prefix", str(prefix), "--no-test"], text=True, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "up to date" in run.stderr
    assert f"export PYTHONPATH={prefix}" in run.stdout and "export OTB_APPLICATION_PATH=" in run.stdout
    assert {p: p.stat().st_mtime_ns for p in extension} == before


@pytest.mark.otb
def test_module_runs_without_its_sources(built, tmp_path):
    """What the Docker image ships: otbApplication.py and the extension alone (no OTB sources,
    no headers, no compiler), the application plugins through OTB_APPLICATION_PATH."""
    prefix = built[0]
    shipped = tmp_path / "otb-python"
    shipped.mkdir()
    for path in [prefix / "otbApplication.py", *prefix.glob("_otbApplication*.so")]:
        (shipped / path.name).write_bytes(path.read_bytes())
    (shipped / "applications").symlink_to(built[2].split(os.pathsep)[0])
    env = dict(os.environ, PYTHONPATH=str(shipped), OTB_APPLICATION_PATH=str(shipped / "applications"))
    run = subprocess.run([sys.executable, "-c", "import otbApplication as o; "
                          "print(o.__file__, o.Registry.CreateApplication('OrthoRectification').GetName())"],
                         env=env, text=True, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(shipped / "otbApplication.py"), "OrthoRectification"]


def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions (continuation lines joined) of each stage of a Dockerfile."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.splitlines() if not line.startswith("#")))
    stages = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line.startswith("FROM "):
            stages.append([line])
        elif line and stages:
            stages[-1].append(line)
    return stages


def test_docker_image_builds_the_module_in_a_build_stage():
    """No Docker engine here: the Dockerfile's text. A build stage compiles the module with the
    script (tested above) for the venv's Python; the final image copies the venv and the module
    only, and checks at build time that the module finds OTB's applications."""
    build, final = _stages((ROOT / "docker/Dockerfile").read_text())
    assert build[0] == "FROM debian:bookworm-slim AS build" and final[0] == "FROM debian:bookworm-slim"
    build_text, final_text = "\n".join(build), "\n".join(final)
    for package in ("otb-bin", "libotb-dev", "swig", "g++", "python3-dev", "xz-utils"):
        assert re.search(rf"apt-get install [^\n]*\b{re.escape(package)}(\s|$)", build_text), package
    assert ("RUN bash /src/scripts/build-otb-python.sh --python /opt/s1tiling/bin/python --prefix /opt/otb-python "
            "--pth") in build
    assert "COPY --from=build /opt/s1tiling /opt/s1tiling" in final
    assert "COPY --from=build /opt/otb-python/otbApplication.py /opt/otb-python/_otbApplication.*.so /opt/otb-python/" \
        in final
    assert "libotb-dev" not in final_text and "swig" not in final_text
    assert "OTB_APPLICATION_PATH=/opt/otb-python/applications" in final_text
    assert "import otbApplication" in final_text  # the image build fails if the module does not load
    for instruction in build + final:  # what is copied from the build context exists
        if instruction.startswith("COPY ") and "--from=" not in instruction:
            for source in instruction.split()[1:-1]:
                assert (ROOT / source).exists(), source
    usage = subprocess.run(["bash", str(ROOT / "scripts/build-otb-python.sh"), "--help"], text=True,
                           capture_output=True)
    assert usage.returncode == 0 and all(option in usage.stderr for option in ("--python", "--prefix", "--pth"))

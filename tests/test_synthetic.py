"""Synthetic metadata-only products (s1tiling.samples.synthetic) and the demo without reference data.

These tests need no shared data. Expected values come from the request itself, from the
annotated files read by hand (lxml), from pyproj's geodesics, or from the chain's own
geometry, which never shares code with the generator.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import rasterio
from lxml import etree
from pyproj import Geod

from s1tiling import cli
from s1tiling.errors import MissingGeoidError
from s1tiling.geometry.geoid import Geoid
from s1tiling.geometry.sar_model import SarModel
from s1tiling.radiometry import calibrate
from s1tiling.s1.annotation import parse_annotation
from s1tiling.s1.product import PRODUCT_NAME, open_product
from s1tiling.samples import demo
from s1tiling.samples.synthetic import SLICE_OVERLAP_LINES, make_safe, write_zero_geoid
from s1tiling.samples.testing import build_product
from s1tiling.times import seconds_since

START = dt.datetime(2021, 8, 9, 17, 39, 53, 250000, tzinfo=dt.timezone.utc)
SMALL = dict(lines=600, samples=800, pixel_spacing=40.0)


@pytest.fixture(scope="module")
def descending(tmp_path_factory):
    return make_safe(tmp_path_factory.mktemp("des"), platform="S1B", start=START, pass_direction="DES",
                     relative_orbit=8, center_lat=-20.0, center_lon=33.0, polarisations=("HH", "HV"), **SMALL)


@pytest.fixture(scope="module")
def ascending(tmp_path_factory):
    return make_safe(tmp_path_factory.mktemp("asc"), **SMALL)


def _xml(safe, pattern):
    (path,) = safe.glob(pattern)
    return etree.parse(str(path)).getroot()


def test_fields_as_requested(descending):
    product = open_product(descending)
    assert (product.platform, product.pass_direction, product.relative_orbit) == ("S1B", "DES", 8)
    assert product.polarisations == ("HH", "HV")
    assert product.shape == (600, 800)
    assert product.ipf_version == pytest.approx(3.31)
    assert product.start_time == START
    name = PRODUCT_NAME.match(product.name).groupdict()
    assert (name["platform"], name["mode"], name["type"], name["pols"]) == ("S1B", "IW", "GRDM", "DH")
    assert name["start"] == "20210809T173953"
    assert (int(name["orbit"]) - 27) % 175 + 1 == 8  # S1B relative orbit formula
    assert int(name["datatake"], 16) == product.manifest.mission_datatake_id
    for pol in product.polarisations:
        annotation = product.annotation(pol)
        assert annotation.pass_direction == "Descending"
        assert (annotation.image.number_of_lines, annotation.image.number_of_samples) == (600, 800)
        assert product.calibration(pol).line[-1] > 599  # the last vector lies past the last line
        assert product.noise(pol).format == "noiseRangeVector"


def test_default_product_is_the_s1a_relative_orbit_59(ascending):
    product = open_product(ascending)
    assert (product.absolute_orbit - 73) % 175 + 1 == product.relative_orbit == 59
    assert product.pass_direction == "ASC" and product.polarisations == ("VV", "VH")


@pytest.mark.parametrize("which", ["ascending", "descending"])
def test_geolocation_grid_geocodes_back_to_its_lines_and_pixels(which, request):
    safe = request.getfixturevalue(which)
    path = next((safe / "annotation").glob("s1*.xml"))
    annotation = parse_annotation(path)
    grid = annotation.geolocation_grid
    assert grid.line.size == 210 and np.all(grid.height == 0)
    line, pixel = SarModel.from_annotation(annotation).ground_to_sar(grid.latitude, grid.longitude, grid.height)
    assert np.max(np.abs(line - grid.line)) < 0.01
    assert np.max(np.abs(pixel - grid.pixel)) < 0.01
    # The annotated times say the same (DOMAIN.md section 3: the oracle of a grid point).
    image = annotation.image
    exact_line = seconds_since(grid.azimuth_time, image.first_line_time) / image.azimuth_time_interval
    assert np.max(np.abs(exact_line - grid.line)) < 1e-3
    assert np.all(np.diff(grid.slant_range_time.reshape(10, 21), axis=1) > 0)
    assert grid.slant_range_time.min() == pytest.approx(image.slant_range_time, abs=1e-12)


def test_geometry_is_physical(ascending):
    product = open_product(ascending)
    annotation = product.annotation()
    grid = annotation.geolocation_grid
    lat, lon = grid.latitude.reshape(10, 21), grid.longitude.reshape(10, 21)
    geod = Geod(ellps="WGS84")
    # Ground range: pixels 40 m apart on the ellipsoid, across the whole swath.
    across = geod.inv(lon[:, 0], lat[:, 0], lon[:, -1], lat[:, -1])[2]
    np.testing.assert_allclose(across, 799 * 40.0, atol=1.0)
    along = geod.inv(lon[0, 10], lat[0, 10], lon[-1, 10], lat[-1, 10])[2]
    assert along == pytest.approx(599 * 40.0, rel=0.01)
    # Scene centre where requested, seen at about 39 degrees.
    assert np.mean(lat) == pytest.approx(45.5, abs=0.02) and np.mean(lon) == pytest.approx(3.3, abs=0.02)
    assert annotation.image.incidence_angle_mid_swath == pytest.approx(39.0, abs=0.3)
    assert np.all(np.diff(grid.incidence_angle.reshape(10, 21), axis=1) > 0)  # increasing with range
    assert np.all(lon[:, 0] < lon[:, -1])  # ascending, right-looking: near range to the west
    assert -16 < annotation.platform_heading < -12
    # Orbit: 693 km circular, 10 s state vectors covering the product with a minute to spare.
    orbit = annotation.orbit
    np.testing.assert_allclose(np.linalg.norm(orbit.positions, axis=1), 6378137.0 + 693e3, rtol=1e-9)
    assert np.all(np.abs(np.linalg.norm(orbit.velocities, axis=1) - 7590) < 10)
    seconds = seconds_since(orbit.times, annotation.image.first_line_time)
    np.testing.assert_allclose(np.diff(seconds), 10.0)
    assert seconds[0] < -59 and seconds[-1] > seconds_since(annotation.image.last_line_time,
                                                             annotation.image.first_line_time) + 59
    # Velocities are the derivatives of the positions (central difference of neighbours).
    derivative = (orbit.positions[2:] - orbit.positions[:-2]) / 20.0
    np.testing.assert_allclose(derivative, orbit.velocities[1:-1], atol=0.5)


def test_footprint_is_the_corners_of_the_grid(ascending):
    product = open_product(ascending)
    grid = product.annotation().geolocation_grid
    lines, samples = product.shape
    expected = []
    for line, pixel in [(lines - 1, 0), (lines - 1, samples - 1), (0, samples - 1), (0, 0)]:
        (i,) = np.flatnonzero((grid.line == line) & (grid.pixel == pixel))
        expected.append((grid.latitude[i], grid.longitude[i]))
    np.testing.assert_allclose(product.manifest.footprint_latlon, expected, atol=1e-5)


def test_consecutive_slices_share_one_geometry(tmp_path):
    first = open_product(make_safe(tmp_path, start=START, **SMALL))
    second = open_product(make_safe(tmp_path, start=START, slice_number=2, **SMALL))
    assert first.manifest.mission_datatake_id == second.manifest.mission_datatake_id
    assert first.relative_orbit == second.relative_orbit
    # A point of the overlap: the second slice sees it (lines - overlap) lines earlier.
    lat, lon = first.sar_model().sar_to_ground(595.0, 400.0, 0.0)
    line1, pixel1 = first.sar_model().ground_to_sar(lat, lon, 0.0)
    line2, pixel2 = second.sar_model().ground_to_sar(lat, lon, 0.0)
    assert line1 - line2 == pytest.approx(600 - SLICE_OVERLAP_LINES, abs=1e-3)
    assert pixel1 == pytest.approx(pixel2, abs=1e-3)


def test_calibration_of_a_built_product(ascending, tmp_path):
    product = open_product(build_product(ascending, tmp_path, content=120))
    values = calibrate(product, "VV", (0, 0, 600, 800), "sigma", remove_thermal_noise=True)
    assert values.dtype == np.float32 and np.all(np.isfinite(values)) and np.all(values > 0)
    # Pixel (0, 0) is a node of every LUT: (DN^2 - eta) / sigma^2, read by hand.
    cal = _xml(product.path, "annotation/calibration/calibration-*-vv-*.xml").find("calibrationVectorList")[0]
    noise = _xml(product.path, "annotation/calibration/noise-*-vv-*.xml")
    sigma = float(cal.findtext("sigmaNought").split()[0])
    eta = (float(noise.find("noiseRangeVectorList")[0].findtext("noiseRangeLut").split()[0])
           * float(noise.find("noiseAzimuthVectorList")[0].findtext("noiseAzimuthLut").split()[0]))
    assert values[0, 0] == pytest.approx((120**2 - eta) / sigma**2, rel=1e-5)
    assert 0 < eta < 0.01 * 120**2
    # ESA's LUT relations: sigma^2 sin(incidence) = beta^2, gamma^2 tan(incidence) = beta^2.
    incidence = math.radians(product.annotation("VV").geolocation_grid.incidence_angle[0])
    beta = float(cal.findtext("betaNought").split()[0])
    gamma = float(cal.findtext("gamma").split()[0])
    assert sigma**2 * math.sin(incidence) == pytest.approx(beta**2, rel=1e-5)
    assert gamma**2 * math.tan(incidence) == pytest.approx(beta**2, rel=1e-5)


def test_old_ipf_layouts(tmp_path):
    safe = make_safe(tmp_path, ipf="002.36", polarisations=("VV",), **SMALL)
    product = open_product(safe)
    assert product.polarisations == ("VV",) and product.noise().format == "noiseVector"
    assert PRODUCT_NAME.match(product.name)["pols"] == "SV"
    rate = _xml(safe, "annotation/s1*.xml").find("generalAnnotation/azimuthFmRateList/azimuthFmRate")
    assert rate.find("azimuthFmRatePolynomial") is None and rate.findtext("c0") is not None


def test_bad_requests(tmp_path):
    with pytest.raises(ValueError, match="polarisations"):
        make_safe(tmp_path, polarisations=("VV", "HH"))
    with pytest.raises(ValueError, match="did not fly"):
        make_safe(tmp_path, platform="S1C")  # 2021: before its launch
    with pytest.raises(ValueError, match="relative orbit"):
        make_safe(tmp_path, relative_orbit=176)


def test_zero_geoid(tmp_path):
    geoid = Geoid(write_zero_geoid(tmp_path / "zero.gtx"))
    assert geoid.wraps
    lat = np.array([-90.0, -45.3, 0.0, 45.5, 89.9, 90.0])
    lon = np.array([-180.0, 179.99, 3.3, -0.01, 12.0, 180.0])
    np.testing.assert_array_equal(geoid.undulation(lat, lon), 0.0)


def test_demo_without_reference_data(tmp_path, monkeypatch):
    """A fresh machine: no reference data, no EGM96 grid in PROJ."""
    def no_geoid(user_file=None):
        raise MissingGeoidError("none")

    with monkeypatch.context() as patch:
        patch.setattr(demo, "find_reference_data", lambda: None)
        patch.setattr(demo, "find_geoid", no_geoid)
        assert demo.main([str(tmp_path), "--resolution", "200"]) == 0
    config = tmp_path / "S1Processor.cfg"
    text = config.read_text()
    assert f"geoid_file : {tmp_path / 'geoid' / 'zero_geoid.gtx'}" in text
    assert f"tiles : {demo.SYNTHETIC_TILE}" in text
    assert len(list((tmp_path / "s1_images").glob("*.SAFE"))) == 2
    assert cli.main([str(config)]) == 0
    for pol in ("vv", "vh"):
        images = [p for p in (tmp_path / "output" / demo.SYNTHETIC_TILE).glob(f"*_{pol}_*.tif")
                  if "BorderMask" not in p.name]
        assert len(images) == 1 and "txxxxxx" in images[0].name  # the two slices merged
        with rasterio.open(images[0]) as dataset:
            values = dataset.read(1)
        assert values.shape == (549, 549)
        valid = values[values > 0]
        assert np.all(np.isfinite(values)) and valid.size > 0.5 * values.size
        assert 1e-3 < np.median(valid) < 1  # sigma0 of DN 80..200 with sigma LUT ~600

"""Reading real Sentinel-1 products, zipped and unzipped, and refusing bad ones.

Expected values were read by hand from each product's manifest.safe, annotation,
calibration and noise XML files (shared/data/s1).
"""
import datetime as dt
import zipfile

import numpy as np
import pytest
from lxml import etree
from shapely.geometry import MultiPolygon

from s1tiling import open_product
from s1tiling.errors import ProductError
from s1tiling.samples.testing import build_product, corrupt, zip_safe

UTC = dt.timezone.utc

# name: platform, mode, type, pols, pass, abs orbit, rel orbit, datatake, start, stop, IPF,
#       (lines, samples), first footprint corner (lon, lat), first sigmaNought, noise format,
#       all-zero noise, number of noise azimuth blocks, first geolocation point (lat, lon, height)
EXPECTED = {
    "S1A_IW_GRDH_1SDV_20150203T043109_20150203T043134_004454_00574F_6D00": dict(
        platform="S1A", mode="IW", product_type="GRDH", polarisations=("VV", "VH"), pass_direction="DES",
        absolute_orbit=4454, relative_orbit=7, datatake_id="00574F",
        start=dt.datetime(2015, 2, 3, 4, 31, 9, 448219, UTC), stop=dt.datetime(2015, 2, 3, 4, 31, 34, 447735, UTC),
        ipf=2.70, shape=(16712, 25560), corner=(24.318159, 37.434208), sigma0=664.0201,
        noise_format="noiseVector", noise_zero=False, azimuth_blocks=0,
        grid0=(38.93700918044588, 24.68898842053311, 3.627602229826152),
    ),
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB": dict(
        platform="S1A", mode="IW", product_type="GRDH", polarisations=("VV", "VH"), pass_direction="ASC",
        absolute_orbit=4739, relative_orbit=117, datatake_id="005DD8",
        start=dt.datetime(2015, 2, 22, 17, 7, 25, 54739, UTC), stop=dt.datetime(2015, 2, 22, 17, 7, 50, 53070, UTC),
        ipf=2.36, shape=(16685, 25357), corner=(8.505673, 50.295170), sigma0=664.0036,
        noise_format="noiseVector", noise_zero=True, azimuth_blocks=0,
        grid0=(48.80049462916010, 8.971267420382350, 399.0575452074409),
    ),
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768": dict(
        platform="S1A", mode="IW", product_type="GRDH", polarisations=("VV", "VH"), pass_direction="ASC",
        absolute_orbit=4739, relative_orbit=117, datatake_id="005DD8",
        start=dt.datetime(2015, 2, 22, 17, 7, 50, 54569, UTC), stop=dt.datetime(2015, 2, 22, 17, 8, 15, 52900, UTC),
        ipf=2.36, shape=(16685, 25368), corner=(8.017178, 51.788181), sigma0=664.5881,
        noise_format="noiseVector", noise_zero=True, azimuth_blocks=0,
        grid0=(50.29526024311632, 8.505644309816008, 339.7099973522127),
    ),
    "S1A_IW_GRDH_1SDV_20210119T031653_20210119T031718_036201_043ED0_8255": dict(
        platform="S1A", mode="IW", product_type="GRDH", polarisations=("VV", "VH"), pass_direction="DES",
        absolute_orbit=36201, relative_orbit=79, datatake_id="043ED0",
        start=dt.datetime(2021, 1, 19, 3, 16, 53, 799379, UTC), stop=dt.datetime(2021, 1, 19, 3, 17, 18, 797132, UTC),
        ipf=3.31, shape=(16854, 25931), corner=(34.613232, -19.203491), sigma0=665.7139,
        noise_format="noiseRangeVector", noise_zero=False, azimuth_blocks=3,
        grid0=(-17.69892962456625, 34.98272513645960, 36.00066032353789),
    ),
    "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8": dict(
        platform="S1A", mode="IW", product_type="GRDH", polarisations=("VV", "VH"), pass_direction="ASC",
        absolute_orbit=39156, relative_orbit=59, datatake_id="049F13",
        start=dt.datetime(2021, 8, 9, 17, 39, 53, 153776, UTC), stop=dt.datetime(2021, 8, 9, 17, 40, 18, 152800, UTC),
        ipf=3.31, shape=(16676, 26144), corner=(1.512143, 46.033890), sigma0=662.8682,
        noise_format="noiseRangeVector", noise_zero=False, azimuth_blocks=3,
        grid0=(44.53525246605311, 1.929931301635841, 330.9828611686826),
    ),
    "S1A_IW_GRDH_1SDV_20260606T181903_20260606T181928_064852_082C02_1C0B": dict(
        platform="S1A", mode="IW", product_type="GRDH", polarisations=("VV", "VH"), pass_direction="DES",
        absolute_orbit=64852, relative_orbit=30, datatake_id="082C02",
        start=dt.datetime(2026, 6, 6, 18, 19, 3, 982386, UTC), stop=dt.datetime(2026, 6, 6, 18, 19, 28, 272661, UTC),
        ipf=4.03, shape=(16200, 25195), corner=(-179.787491 + 360, 50.911373), sigma0=664.7996,
        noise_format="noiseRangeVector", noise_zero=False, azimuth_blocks=10,
        grid0=(52.36211169182780, -179.3096913427005, 3.356300294399261e-04),
    ),
    "S1C_S4_GRDH_1SDH_20250118T171404_20250118T171421_000638_000538_4B8B": dict(
        platform="S1C", mode="S4", product_type="GRDH", polarisations=("HH", "HV"), pass_direction="ASC",
        absolute_orbit=638, relative_orbit=15, datatake_id="000538",
        start=dt.datetime(2025, 1, 18, 17, 14, 4, 727079, UTC), stop=dt.datetime(2025, 1, 18, 17, 14, 21, 971707, UTC),
        ipf=3.90, shape=(11524, 8087), corner=(8.441154, 46.195118), sigma0=225.7734,
        noise_format="noiseRangeVector", noise_zero=False, azimuth_blocks=0,
        grid0=(45.15829803874526, 8.695059233758601, 97.99448957759887),
    ),
}
ANTIMERIDIAN = "S1A_IW_GRDH_1SDV_20260606T181903_20260606T181928_064852_082C02_1C0B"
SMALL = "S1C_S4_GRDH_1SDH_20250118T171404_20250118T171421_000638_000538_4B8B"


@pytest.fixture(scope="module")
def zipped_dir(s1_dir, tmp_path_factory):
    """Every real product zipped as ESA does (metadata only)."""
    out = tmp_path_factory.mktemp("zipped")
    for name in EXPECTED:
        zip_safe(s1_dir / f"{name}.SAFE", out)
    return out


@pytest.fixture(params=sorted(EXPECTED))
def name(request):
    return request.param


@pytest.fixture(params=["SAFE", "zip"])
def product(request, name, s1_dir, zipped_dir):
    path = s1_dir / f"{name}.SAFE" if request.param == "SAFE" else zipped_dir / f"{name}.zip"
    return open_product(path)


def test_all_real_products_are_covered(real_safes):
    assert sorted(p.name[: -len(".SAFE")] for p in real_safes) == sorted(EXPECTED)


def test_manifest_fields(product, name):
    e = EXPECTED[name]
    assert product.name == name
    assert product.platform == e["platform"]
    assert product.flying_unit_code == e["platform"].lower()
    assert product.mode == e["mode"]
    assert product.product_type == e["product_type"]
    assert product.polarisations == e["polarisations"]
    assert product.pass_direction == e["pass_direction"]
    assert product.absolute_orbit == e["absolute_orbit"]
    assert product.relative_orbit == e["relative_orbit"]
    assert product.datatake_id == e["datatake_id"]
    assert product.start_time == e["start"] and product.start_time.tzinfo is not None
    assert product.stop_time == e["stop"]
    assert product.ipf_version == pytest.approx(e["ipf"])
    assert product.footprint.exterior.coords[0] == pytest.approx(e["corner"])


def test_annotation_and_luts(product, name):
    e = EXPECTED[name]
    assert product.shape == e["shape"]
    for pol in product.polarisations:
        assert product.annotation(pol).polarisation == pol
        assert product.annotation(pol.lower()) is product.annotation(pol)  # parsed once
    pol = e["polarisations"][0]
    cal = product.calibration(pol)
    assert cal.line[0] == 0 and cal.line[-1] >= e["shape"][0] - 1  # last vector at or past the last line
    assert cal.sigma_nought.value[0][0] == pytest.approx(e["sigma0"])
    noise = product.noise(pol)
    assert noise.format == e["noise_format"]
    assert noise.all_zero == e["noise_zero"]
    assert len(noise.azimuth) == e["azimuth_blocks"]
    grid = product.geolocation_grid(pol)
    assert len(grid["line"]) == 210
    assert (grid["line"][0], grid["pixel"][0]) == (0, 0)
    assert (grid["latitude"][0], grid["longitude"][0], grid["height"][0]) == pytest.approx(e["grid0"])
    for key in ("incidence_angle", "azimuth_time", "slant_range_time"):
        assert len(grid[key]) == 210


def test_measurement_path(product, name):
    path = product.measurement_path("vv" if "VV" in product.polarisations else "hh")
    assert path.endswith(".tiff") and "/measurement/" in path
    assert path.startswith("/vsizip/") == str(product.path).endswith(".zip")


def test_old_products_have_all_zero_noise(s1_dir):
    for name, e in EXPECTED.items():
        product = open_product(s1_dir / f"{name}.SAFE")
        zero = [product.noise(pol).all_zero for pol in product.polarisations]
        assert zero == [e["noise_zero"]] * 2, name


def test_antimeridian_footprint(s1_dir):
    product = open_product(s1_dir / f"{ANTIMERIDIAN}.SAFE")
    lon_min, lat_min, lon_max, lat_max = product.footprint.bounds
    # manifest: 50.911373,-179.787491 51.302807,176.669022 52.755745,177.031586 52.362110,-179.309692
    assert (lon_min, lon_max) == pytest.approx((176.669022, 180.690308))
    assert (lat_min, lat_max) == pytest.approx((50.911373, 52.755745))
    split = product.footprint_split
    assert isinstance(split, MultiPolygon) and len(split.geoms) == 2
    bounds = sorted(g.bounds for g in split.geoms)
    assert bounds[0][0] == pytest.approx(-180) and bounds[0][2] == pytest.approx(-179.309692)
    assert bounds[1][0] == pytest.approx(176.669022) and bounds[1][2] == pytest.approx(180)
    assert split.area == pytest.approx(product.footprint.area)


def test_ordinary_footprint_split_is_the_footprint(s1_dir):
    product = open_product(s1_dir / f"{SMALL}.SAFE")
    assert len(product.footprint_split.geoms) == 1
    assert product.footprint_split.geoms[0].equals(product.footprint)


def test_read_window_unzipped_and_zipped(s1_dir, tmp_path):
    content = lambda rows, cols: 1 + (3 * rows + cols) % 1000  # noqa: E731
    for zipped in (False, True):
        path = build_product(s1_dir / f"{SMALL}.SAFE", tmp_path / str(zipped), zipped=zipped,
                             content=content, polarisations=["HV"])
        product = open_product(path)
        dn = product.read("HV", (5000, 7000, 3, 4))
        rows, cols = np.mgrid[5000:5003, 7000:7004]
        assert dn.dtype == np.uint16
        np.testing.assert_array_equal(dn, 1 + (3 * rows + cols) % 1000)
        from rasterio.windows import Window
        np.testing.assert_array_equal(product.read("hv", Window(7000, 5000, 4, 3)), dn)


# ---------------------------------------------------------------------------- bad input


def _product_error(excinfo, name, file_part):
    err = excinfo.value
    assert err.product == name
    assert file_part in (err.file or ""), err
    assert name in str(err) and file_part in str(err)


@pytest.fixture
def built_small(s1_dir, tmp_path):
    """The S1C product with its HH measurement written."""
    return build_product(s1_dir / f"{SMALL}.SAFE", tmp_path / "built", polarisations=["HH"])


@pytest.mark.parametrize("kind, method", [("annotation", "annotation"), ("calibration", "calibration"),
                                          ("noise", "noise"), ("measurement", "read")])
@pytest.mark.parametrize("zipped", [False, True])
def test_missing_file(built_small, kind, method, zipped):
    path = corrupt(built_small, kind, "HH", "drop")
    product = open_product(zip_safe(built_small) if zipped else built_small)
    before = sorted(p for p in built_small.parent.rglob("*"))
    with pytest.raises(ProductError, match="missing") as excinfo:
        getattr(product, method)("HH", *([(0, 0, 2, 2)] if method == "read" else []))
    _product_error(excinfo, SMALL, path.name)
    assert sorted(p for p in built_small.parent.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("kind, method", [("annotation", "annotation"), ("calibration", "calibration"),
                                          ("noise", "noise")])
def test_malformed_xml(built_small, kind, method):
    path = corrupt(built_small, kind, "HH", "truncate")
    with pytest.raises(ProductError, match="malformed XML") as excinfo:
        getattr(open_product(built_small), method)("HH")
    _product_error(excinfo, SMALL, path.name)


def test_annotation_missing_an_element(built_small):
    product = open_product(built_small)
    path = built_small / product.relative_path("annotation", "HH")
    tree = etree.parse(str(path))
    grid = tree.getroot().find("geolocationGrid")
    grid.getparent().remove(grid)
    tree.write(str(path))
    with pytest.raises(ProductError, match="geolocationGrid") as excinfo:
        product.annotation("HH")
    _product_error(excinfo, SMALL, path.name)


def test_malformed_manifest(built_small):
    corrupt(built_small, "manifest", how="truncate")
    with pytest.raises(ProductError, match="malformed XML") as excinfo:
        open_product(built_small)
    _product_error(excinfo, SMALL, "manifest.safe")


def test_polarisation_not_in_product(built_small):
    product = open_product(built_small)
    for call in (lambda: product.annotation("VV"), lambda: product.read("VH", (0, 0, 1, 1)),
                 lambda: product.calibration("XX")):
        with pytest.raises(ProductError, match="polarisation .* not in product") as excinfo:
            call()
        assert excinfo.value.product == SMALL


def test_measurement_of_a_polarisation_not_written(built_small):
    with pytest.raises(ProductError, match="missing") as excinfo:
        open_product(built_small).read("HV", (0, 0, 1, 1))
    _product_error(excinfo, SMALL, "s1c-s4-grd-hv-")


@pytest.mark.parametrize("how, message", [("empty", "empty"), ("truncate", "truncated|unreadable|cannot read")])
@pytest.mark.parametrize("zipped", [False, True])
def test_empty_or_truncated_tiff(built_small, how, message, zipped):
    path = corrupt(built_small, "measurement", "HH", how)
    product = open_product(zip_safe(built_small) if zipped else built_small)
    with pytest.raises(ProductError, match=message) as excinfo:
        product.read("HH", (11000, 8000, 500, 80))
    _product_error(excinfo, SMALL, path.name)


def test_tiff_size_disagrees_with_annotation(s1_dir, tmp_path):
    path = build_product(s1_dir / f"{SMALL}.SAFE", tmp_path, polarisations=["HH"], size_override=(100, 8087))
    with pytest.raises(ProductError, match="8087 x 100 pixels.*8087 samples x 11524 lines") as excinfo:
        open_product(path).read("HH", (0, 0, 10, 10))
    _product_error(excinfo, SMALL, "s1c-s4-grd-hh-")


def test_tiff_of_wrong_data_type(s1_dir, tmp_path):
    path = build_product(s1_dir / f"{SMALL}.SAFE", tmp_path, polarisations=["HH"], dtype="float32")
    with pytest.raises(ProductError, match="float32") as excinfo:
        open_product(path).read("HH", (0, 0, 10, 10))
    _product_error(excinfo, SMALL, "s1c-s4-grd-hh-")


def test_zip_without_safe(tmp_path):
    path = tmp_path / "S1A_IW_GRDH_1SDV_nothing.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no SAFE here")
    with pytest.raises(ProductError, match="no .SAFE folder") as excinfo:
        open_product(path)
    assert excinfo.value.product == path.name


def test_not_a_zip_and_not_there(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ProductError, match="not a readable zip"):
        open_product(junk)
    with pytest.raises(ProductError, match="no such product"):
        open_product(tmp_path / "absent.SAFE")


def test_window_outside_the_image(built_small):
    with pytest.raises(ValueError, match="outside"):
        open_product(built_small).read("HH", (11520, 0, 10, 10))


def test_geometry_delegates_to_the_sar_model(s1_dir):
    """Wiring only (the model has its own tests): ESA's grid points map back near their line/pixel."""
    pytest.importorskip("s1tiling.geometry.sar_model")
    product = open_product(s1_dir / f"{SMALL}.SAFE")
    assert product.sar_model("hv") is product.sar_model("HV")
    grid = product.geolocation_grid("HV")
    line, pixel = product.sar_model("HV").ground_to_sar(grid["latitude"][:5], grid["longitude"][:5],
                                                        grid["height"][:5])
    assert np.all(np.abs(line - grid["line"][:5]) < 1) and np.all(np.abs(pixel - grid["pixel"][:5]) < 5)
    lat, lon = product.sar_model("HV").sar_to_ground(grid["line"][:5], grid["pixel"][:5], grid["height"][:5])
    assert np.all(np.abs(lat - grid["latitude"][:5]) < 1e-3) and np.all(np.abs(lon - grid["longitude"][:5]) < 1e-3)

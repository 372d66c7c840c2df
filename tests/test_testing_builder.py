"""The test-product builder writes measurements that look like ESA's.

Expected sizes, names and GCP values were read by hand from the real annotations.
"""
import zipfile

import numpy as np
import pytest
import rasterio

from s1tiling import open_product
from s1tiling.samples.testing import build_product, corrupt, write_measurement, zip_safe

SMALL = "S1C_S4_GRDH_1SDH_20250118T171404_20250118T171421_000638_000538_4B8B"
HH_TIFF = "measurement/s1c-s4-grd-hh-20250118t171404-20250118t171421-000638-000538-001.tiff"
IW = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"


def check_measurement(path, lines, samples, description, software):
    with rasterio.open(path) as ds:
        assert (ds.height, ds.width, ds.count) == (lines, samples, 1)
        assert ds.dtypes[0] == "uint16"
        tags = ds.tags()
        assert tags["TIFFTAG_IMAGEDESCRIPTION"] == description
        assert tags["TIFFTAG_SOFTWARE"] == software
        gcps, crs = ds.gcps
        assert crs.to_epsg() == 4326
        return gcps


@pytest.mark.parametrize("zipped", [False, True])
def test_small_product_looks_like_esa(s1_dir, tmp_path, zipped):
    path = build_product(s1_dir / f"{SMALL}.SAFE", tmp_path, zipped=zipped)
    assert path.name == f"{SMALL}{'.zip' if zipped else '.SAFE'}"
    product = open_product(path)
    for pol in ("HH", "HV"):
        gcps = check_measurement(product.measurement_path(pol), 11524, 8087,
                                 "Sentinel-1C SM GRD HR L1", "Sentinel-1 IPF 003.90")
        assert len(gcps) == 210
    # first geolocationGridPoint of the HV annotation: line 0, pixel 0, lat, lon, height
    first = gcps[0]
    assert (first.row, first.col) == (0, 0)
    assert (first.x, first.y, first.z) == pytest.approx((8.695059233758601, 45.15829803874526, 97.99448957759887))
    assert product.measurement_path("HH").endswith(HH_TIFF)
    if zipped:
        with zipfile.ZipFile(path) as archive:
            tops = {n.split("/", 1)[0] for n in archive.namelist()}
            assert tops == {f"{SMALL}.SAFE"}
            assert f"{SMALL}.SAFE/{HH_TIFF}" in archive.namelist()
            assert f"{SMALL}.SAFE/manifest.safe" in archive.namelist()
        assert product.measurement_path("HH").startswith("/vsizip/")
    else:
        assert not list(tmp_path.glob(".build-*"))  # temporary folder removed


def test_full_size_iw_product(s1_dir, tmp_path):
    """Numbers of lines and samples from the annotation (16676 x 26144); both polarisations."""
    product = open_product(build_product(s1_dir / f"{IW}.SAFE", tmp_path))
    for pol in ("VV", "VH"):
        check_measurement(product.measurement_path(pol), 16676, 26144,
                          "Sentinel-1A IW GRD HR L1", "Sentinel-1 IPF 003.31")
    assert np.all(product.read("VH", (16600, 26000, 76, 144)) == 100)


def test_content_targets_and_borders(s1_dir, tmp_path):
    path = build_product(
        s1_dir / f"{SMALL}.SAFE", tmp_path, polarisations=["hh"],
        content=lambda rows, cols: rows % 100 + 2 * (cols % 100) + 1,
        targets=[(600.4, 700.6, 9000), (2000.5, 3000.49, 7000)], target_radius=1,
        zero_borders=(3, 4, 5, 6),
    )
    product = open_product(path)
    dn = product.read("HH", (595, 695, 10, 10)).astype(int)
    rows, cols = np.mgrid[595:605, 695:705]
    expected = rows % 100 + 2 * (cols % 100) + 1
    expected[4:7, 5:8] = 9000  # 3x3 around line 600, pixel 701
    np.testing.assert_array_equal(dn, expected)
    assert np.all(product.read("HH", (2000, 2999, 3, 3)) == 7000)  # (2000.5, 3000.49) rounds to (2001, 3000)
    top = product.read("HH", (0, 0, 5, 8087))
    assert np.all(top[:3] == 0) and np.all(top[3:, 5:-6] > 0) and np.all(top[:, :5] == 0) and np.all(top[:, -6:] == 0)
    bottom = product.read("HH", (11519, 0, 5, 8087))
    assert np.all(bottom[1:] == 0) and np.all(bottom[0, 5:-6] > 0)
    assert not (path / product.relative_path("measurement", "HV")).exists()  # only HH was asked for


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_speckle_is_seeded_and_never_zero(tmp_path):
    reads = []
    for i, seed in enumerate((1, 1, 2)):
        path = write_measurement(tmp_path / f"{i}.tiff", 1100, 700, content="speckle", seed=seed)
        with rasterio.open(path) as ds:
            assert ds.tags()["TIFFTAG_IMAGEDESCRIPTION"].startswith("Sentinel-1")
            reads.append(ds.read(1))
    np.testing.assert_array_equal(reads[0], reads[1])
    assert np.any(reads[0] != reads[2])
    assert reads[0].min() > 0 and 120 < reads[0].mean() < 130  # Rayleigh, scale 100: mean 125.3
    assert not list(tmp_path.glob("*.tmp"))


def test_builder_refuses_to_overwrite(s1_dir, tmp_path):
    build_product(s1_dir / f"{SMALL}.SAFE", tmp_path, polarisations=["HH"])
    with pytest.raises(FileExistsError):
        build_product(s1_dir / f"{SMALL}.SAFE", tmp_path, polarisations=["HH"])


def test_corrupt_and_zip(s1_dir, tmp_path):
    path = build_product(s1_dir / f"{SMALL}.SAFE", tmp_path, polarisations=["HH"])
    tiff = path / HH_TIFF
    size = tiff.stat().st_size
    assert corrupt(path, "measurement", "HH", "truncate") == tiff and tiff.stat().st_size == size // 2
    assert corrupt(path, "noise", "HV", "empty").stat().st_size == 0
    dropped = corrupt(path, "calibration", "HH", "drop")
    assert not dropped.exists()
    archive = zip_safe(path, tmp_path / "zips")
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert f"{SMALL}.SAFE/{HH_TIFF}" in names
    assert f"{SMALL}.SAFE/{dropped.relative_to(path).as_posix()}" not in names
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(path, "annotation", "HH", "shred")

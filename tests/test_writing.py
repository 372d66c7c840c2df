"""Creation options, atomic GeoTIFF writing and tile metadata."""
import os
import time
from datetime import datetime

import numpy as np
import pytest
import rasterio
import rasterio.errors
import rasterio.io
from rasterio.transform import from_origin
from rasterio.windows import Window

from s1tiling import __version__
from s1tiling.errors import ConfigurationError
from s1tiling.naming import TileProduct
from s1tiling.writing import (
    AtomicRasterWriter,
    cleanup_stale_temporaries,
    creation_options_for,
    parse_creation_options,
    temporary_path,
    tile_metadata,
)

# S2 tile 33NWB at 10 m (S1Tiling's test baseline grid): origin (499980, 200040), 10980 pixels.
CRS = "EPSG:32633"
TRANSFORM = from_origin(499980.0, 200040.0, 10.0, 10.0)

PRODUCT = TileProduct("s1a", "33NWB", "vv", "DES", 7,
                      (datetime(2020, 1, 8, 4, 42, 15), datetime(2020, 1, 8, 4, 41, 50)))
INPUTS = ["S1A_IW_GRDH_1SDV_20200108T044150_20200108T044215_030704_038506_C7F5",
          "S1A_IW_GRDH_1SDV_20200108T044215_20200108T044240_030704_038506_D953"]


def metadata(**extra):
    return tile_metadata(PRODUCT, input_products=INPUTS, absolute_orbit=30704, noise_removed=False,
                         dem_info="SRTM_30_hgt", interpolator="nn", spatial_resolution=10,
                         engine="native", orbit_source="annotation", extra=extra)


@pytest.mark.parametrize("text, expected", [
    ("uint8 COMPRESS=DEFLATE", ("uint8", {"COMPRESS": "DEFLATE"})),
    ("COMPRESS=DEFLATE&gdal:co:PREDICTOR=3", (None, {"COMPRESS": "DEFLATE", "PREDICTOR": "3"})),
    ("?&gdal:co:COMPRESS=LZW&gdal:co:TILED=YES", (None, {"COMPRESS": "LZW", "TILED": "YES"})),
    ("float COMPRESS=ZSTD, zstd_level=9", ("float32", {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "9"})),
    ("double", ("float64", {})),
])
def test_parse_creation_options(text, expected):
    assert parse_creation_options(text) == expected


def test_creation_option_errors_and_defaults():
    with pytest.raises(ConfigurationError, match="DEFLATE"):
        parse_creation_options("uint8 DEFLATE")
    with pytest.raises(ConfigurationError, match="PREDICTOR=3"):
        creation_options_for("lia_deg", {"lia_deg": "COMPRESS=DEFLATE PREDICTOR=3"})
    assert creation_options_for("tiled") == ("float32", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "TILED": "YES"})
    assert creation_options_for("mask") == ("uint8", {"COMPRESS": "DEFLATE"})
    assert creation_options_for("lia_deg") == ("uint16", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "2",
                                                       "TILED": "YES"})
    assert creation_options_for("tiled", {"tiled": "COMPRESS=LZW"}) == ("float32", {"COMPRESS": "LZW"})
    # already parsed by the request-file reader
    assert creation_options_for("mask", {"mask": (None, ("COMPRESS=ZSTD", "ZSTD_LEVEL=1"))}) == (
        "uint8", {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "1"})
    assert (creation_options_for("tiled", {"tiled": ("float64", {"compress": "LZW"})})
            == ("float64", {"COMPRESS": "LZW"}))


def test_tile_metadata_values():
    tags = metadata(PROJECT="demo", CALIBRATION="overridden?")
    # values as S1Tiling's own test baseline has them (tests/test_33NWB_202001.py)
    expected = {
        "ACQUISITION_DATETIME": "2020:01:08T04:41:50Z",
        "ACQUISITION_DATETIME_1": "2020:01:08T04:41:50Z",
        "ACQUISITION_DATETIME_2": "2020:01:08T04:42:15Z",
        "CALIBRATION": "sigma",
        "DEM_INFO": "SRTM_30_hgt",
        "FLYING_UNIT_CODE": "s1a",
        "IMAGE_TYPE": "BACKSCATTERING",
        "INPUT_S1_IMAGES": ", ".join(INPUTS),
        "NOISE_REMOVED": "False",
        "ORBIT_DIRECTION": "DES",
        "ORBIT_NUMBER": "030704",
        "ORTHORECTIFICATION_INTERPOLATOR": "nn",
        "ORTHORECTIFIED": "true",
        "POLARIZATION": "vv",
        "RELATIVE_ORBIT_NUMBER": "007",
        "S2_TILE_CORRESPONDING_CODE": "33NWB",
        "SPATIAL_RESOLUTION": "10.0",
        "TIFFTAG_IMAGEDESCRIPTION": "sigma calibrated orthorectified Sentinel-1A IW GRD",
        "ENGINE": "native",
        "ORBIT_SOURCE": "annotation",
        "PROJECT": "demo",
    }
    assert {k: tags[k] for k in expected} == expected
    # S1Tiling writes 'S1 Tiling v<version>' and its checks look for 'S1 Tiling'; ours also names itself
    software = tags["TIFFTAG_SOFTWARE"]
    assert software.startswith("S1 Tiling v1.4.2") and f"s1tiling {__version__}" in software
    assert "LOWER_SIGNAL_VALUE" not in tags  # no noise removed
    datetime.strptime(tags["TIFFTAG_DATETIME"], "%Y:%m:%d %H:%M:%S")
    single = tile_metadata(TileProduct("s1b", "31TCH", "vh", "ASC", 110, (datetime(2021, 3, 1, 6, 1, 9),)),
                           input_products=INPUTS[:1], absolute_orbit=25000, noise_removed=True, dem_info="x",
                           interpolator="linear", spatial_resolution=20.0, engine="otb", orbit_source="eof",
                           lower_signal_value=1e-7)
    # S1Tiling's LOWER_SIGNAL_VALUE: what replaced the pixels the noise removal made non-positive
    assert float(single["LOWER_SIGNAL_VALUE"]) == 1e-7
    assert single["ACQUISITION_DATETIME"] == single["ACQUISITION_DATETIME_1"] == "2021:03:01T06:01:09Z"
    assert "ACQUISITION_DATETIME_2" not in single
    assert single["INPUT_S1_IMAGES"] == INPUTS[0] and single["NOISE_REMOVED"] == "True"


def test_atomic_writer_block_by_block(tmp_path):
    final = tmp_path / "33NWB" / "s1a_33NWB_vv_DES_007_20200108txxxxxx.tif"
    width, height = 300, 200
    data = np.arange(width * height, dtype=np.float32).reshape(height, width) / 1000
    data[:, :10] = 0  # no-data border
    tags = metadata()
    with AtomicRasterWriter(final, crs=CRS, transform=TRANSFORM, width=width, height=height, tags=tags) as out:
        for top in range(0, height, 64):
            rows = min(64, height - top)
            out.write(data[top:top + rows], Window(0, top, width, rows))
        assert not final.exists()  # not visible before completion
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]
    with rasterio.open(final) as ds:
        assert ds.crs.to_epsg() == 32633
        assert ds.transform == TRANSFORM
        assert (ds.width, ds.height, ds.count) == (width, height, 1)
        assert ds.dtypes == ("float32",)
        assert ds.nodata == 0
        assert ds.profile["compress"] == "deflate" and ds.profile["tiled"]
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") is None
        read_tags = ds.tags()
        np.testing.assert_array_equal(ds.read(1), data)
    for key, value in tags.items():
        assert read_tags[key] == value, key


@pytest.mark.parametrize("configured, compression", [
    (None, "deflate"),  # the default: DEFLATE level 1, what every GeoTIFF reader reads
    ("COMPRESS=DEFLATE PREDICTOR=3 NUM_THREADS=2", "deflate"),  # S1Tiling's options, threaded
    ("COMPRESS=ZSTD ZSTD_LEVEL=1 NUM_THREADS=2", "zstd"),  # opt-in: faster, GDAL >= 2.3 readers
    ("COMPRESS=LERC MAX_Z_ERROR=0", "lerc"),  # opt-in: lossless LERC
])
def test_tile_creation_options_are_lossless(tmp_path, configured, compression):
    """Every documented option for tile images gives back the very pixels written."""
    dtype, options = creation_options_for("tiled", {"tiled": configured} if configured else None)
    rng = np.random.default_rng(3)
    data = (rng.exponential(0.05, (300, 520)) * (rng.random((300, 520)) > 0.1)).astype(np.float32)
    final = tmp_path / "tile.tif"
    with AtomicRasterWriter(final, crs=CRS, transform=TRANSFORM, width=520, height=300, dtype=dtype,
                            creation_options=options) as out:
        out.write(data[:256], Window(0, 0, 520, 256))
        out.write(data[256:], Window(0, 256, 520, 44))
    with rasterio.open(final) as ds:
        assert ds.profile["compress"] == compression
        np.testing.assert_array_equal(ds.read(1), data)


def test_exception_leaves_nothing(tmp_path):
    final = tmp_path / "out.tif"
    with pytest.raises(RuntimeError, match="boom"):
        with AtomicRasterWriter(final, crs=CRS, transform=TRANSFORM, width=10, height=10) as out:
            out.write(np.ones((10, 10)))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# A full disk (exit 69/70, nothing published) is tested on real small file systems: tests/test_full_disk.py


def test_cleanup_stale_temporaries(tmp_path):
    product = tmp_path / "s1a_33NWB_vv_DES_007_20200108t044150.tif"
    product.write_bytes(b"done")
    mine = temporary_path(product)  # this live process: kept
    mine.write_bytes(b"partial")
    dead = tmp_path / f".{product.stem}.{mine.name.split('.')[-5]}.999999999.0123456789ab.tmp.tif"
    dead.write_bytes(b"partial")  # same host, no such pid
    old = tmp_path / f".{product.stem}.otherhost.12.0123456789ab.tmp.tif"
    old.write_bytes(b"partial")
    aged = time.time() - 48 * 3600
    os.utime(old, (aged, aged))
    recent_other = tmp_path / f".{product.stem}.otherhost.13.0123456789ab.tmp.tif"
    recent_other.write_bytes(b"partial")  # another host's run may still be writing it
    removed = cleanup_stale_temporaries(tmp_path, max_age_hours=24)
    assert sorted(removed) == sorted([dead, old])
    assert product.exists() and mine.exists() and recent_other.exists()

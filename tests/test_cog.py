"""``[Processing] output_format = COG``: Cloud Optimized GeoTIFFs through GDAL's COG driver, with
the same names, tags and pixels as the GeoTIFFs, valid per rio-cogeo."""
import os
import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from s1tiling.config import load_config
from s1tiling.errors import ConfigurationError, ExitCode, OutputDiskFullError
from s1tiling.writing import AtomicRasterWriter, cog_options, creation_options_for
from test_config import tile_grid, write_request  # noqa: F401  (tile_grid: autouse fixture)

CRS = "EPSG:32631"
TRANSFORM = from_origin(499980.0, 5100000.0, 100.0, 100.0)
SIZE = 1024


def cog_validate(path):
    cogeo = pytest.importorskip("rio_cogeo.cogeo", reason="rio-cogeo is not installed (pip install -e '.[test]')")
    return cogeo.cog_validate(str(path))


def _write(path, values, output_format, kind="tiled", resampling="AVERAGE"):
    dtype, options = creation_options_for(kind)
    tags = {"ACQUISITION_DATETIME": "2021:08:09T17:39:53Z", "POLARIZATION": "vv", "TIFFTAG_SOFTWARE": "s1tiling 0.1.0",
            "TIFFTAG_DATETIME": "2021:08:10 00:00:00", "TIFFTAG_IMAGEDESCRIPTION": "sigma calibrated"}
    with AtomicRasterWriter(path, crs=CRS, transform=TRANSFORM, width=SIZE, height=SIZE, dtype=dtype,
                            nodata=0 if kind == "tiled" else None, creation_options=options, tags=tags,
                            output_format=output_format, overview_resampling=resampling) as out:
        for row in range(0, SIZE, 100):  # block by block, as the makers write
            out.write(values[row:row + 100], Window(0, row, SIZE, min(100, SIZE - row)))
    return path


def test_cog_has_the_pixels_tags_and_grid_of_the_geotiff(tmp_path):
    values = np.random.default_rng(1).gamma(1.0, 0.1, (SIZE, SIZE)).astype("float32")
    values[:, :37] = 0  # no data
    gtiff = _write(tmp_path / "gtiff" / "s1a_31TEL_vv_ASC_059_20210809t173953.tif", values, "GTiff")
    cog = _write(tmp_path / "cog" / "s1a_31TEL_vv_ASC_059_20210809t173953.tif", values, "COG")
    assert sorted(p.name for p in cog.parent.iterdir()) == [cog.name]  # no temporary left
    valid, errors, _ = cog_validate(cog)
    assert valid, errors
    assert not cog_validate(gtiff)[0]  # the checker does tell a COG from a GeoTIFF
    with rasterio.open(gtiff) as g, rasterio.open(cog) as c:
        assert c.tags() == g.tags()
        assert (c.crs, c.transform, c.nodata, c.dtypes) == (g.crs, g.transform, g.nodata, g.dtypes)
        assert np.array_equal(c.read(1), values)
        assert c.block_shapes == [(512, 512)]
        assert c.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == g.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
        # the GeoTIFF's predictor (tile images: none by default, see writing.DEFAULT_CREATION_OPTIONS)
        assert c.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == g.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR")
        assert "PREDICTOR" not in creation_options_for("tiled")[1]
        assert c.overviews(1) == [2]
        overview = c.read(1, out_shape=(SIZE // 2, SIZE // 2))  # the overview: 2 x 2 averages
    block = values[200:202, 300:302]
    assert overview[100, 150] == pytest.approx(block.mean(), rel=1e-6)


def test_mask_overviews_are_nearest_neighbour(tmp_path):
    rows, cols = np.mgrid[:SIZE, :SIZE]
    mask = ((rows // 3 + cols // 5) % 2).astype("uint8")  # averaging would give fractions
    cog = _write(tmp_path / "m_BorderMask.tif", mask, "COG", kind="mask", resampling="NEAREST")
    assert cog_validate(cog)[0]
    with rasterio.open(cog) as c:
        assert np.array_equal(c.read(1), mask)
        overview = c.read(1, out_shape=(SIZE // 2, SIZE // 2))
    assert set(np.unique(overview)) == {0, 1}
    assert all(overview[i, j] in mask[2 * i:2 * i + 2, 2 * j:2 * j + 2] for i, j in [(10, 10), (100, 7), (300, 411)])


def test_cog_options_keep_the_compression():
    assert cog_options({"COMPRESS": "DEFLATE", "PREDICTOR": "3", "TILED": "YES"}) == {
        "COMPRESS": "DEFLATE", "PREDICTOR": "FLOATING_POINT", "BLOCKSIZE": "512", "OVERVIEW_RESAMPLING": "AVERAGE"}
    assert cog_options({"COMPRESS": "ZSTD", "ZSTD_LEVEL": "9", "BLOCKXSIZE": "256"}, "nearest") == {
        "COMPRESS": "ZSTD", "LEVEL": "9", "BLOCKSIZE": "512", "OVERVIEW_RESAMPLING": "NEAREST"}


@pytest.fixture
def small_disk(tmp_path):
    """A real 6 MiB tmpfs (root only): a 4 MiB GeoTIFF fits, not the GeoTIFF and its COG."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs (needs root): full-disk COG translation not tested")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_during_the_translation_is_exit_69_and_leaves_nothing(small_disk):
    values = np.random.default_rng(2).random((SIZE, SIZE), dtype="float32")  # incompressible: ~4 MiB
    final = small_disk / "out" / "s1a_31TEL_vv_ASC_059_20210809t173953.tif"
    with pytest.raises(OutputDiskFullError) as err:
        _write(final, values, "COG")
    assert err.value.exit_code == ExitCode.OUTPUT_DISK_FULL and str(final) in str(err.value)
    assert list(final.parent.iterdir()) == []
    _write(final, values, "GTiff")  # the GeoTIFF alone fits: it was the COG step that filled the disk
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_output_format_setting(tmp_path):
    assert load_config(write_request(tmp_path)).processing.output_format == "GTiff"
    settings = load_config(write_request(tmp_path, {"Processing": {"output_format": "cog"}}))
    assert settings.processing.output_format == "COG"
    with pytest.raises(ConfigurationError, match=r"\[Processing\] output_format = 'PNG': expected one of GTiff, COG"):
        load_config(write_request(tmp_path, {"Processing": {"output_format": "PNG"}}))

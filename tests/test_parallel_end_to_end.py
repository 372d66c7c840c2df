"""The chain as a dask graph (issue: run from a laptop to a cluster).

A multi-tile, multi-date request (two Germany slices of 2015 over 32UNB and 32UNC, one France
product of 2021 over 31TEL) at 100 m: a LocalCluster with 2 processes gives outputs
bit-identical to a 1-process run, and a product made unreadable fails its own task only
(exit 66, the other tiles produced).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.ops import unary_union

from request_files import write_request
from s1tiling import cli, grid
from s1tiling.samples.testing import build_product, write_dem_folder

PRODUCTS = (
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE",
    "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE",
)
TILES = ("32UNB", "32UNC", "31TEL")
EXPECTED = {
    "32UNB": ["s1a_32UNB_vv_ASC_117_20150222txxxxxx.tif", "s1a_32UNB_vh_ASC_117_20150222txxxxxx.tif"],
    "32UNC": ["s1a_32UNC_vv_ASC_117_20150222t170750.tif", "s1a_32UNC_vh_ASC_117_20150222t170750.tif"],
    "31TEL": ["s1a_31TEL_vv_ASC_059_20210809t173953.tif", "s1a_31TEL_vh_ASC_059_20210809t173953.tif"],
}


def _speckle_free_pattern(rows, cols):
    return (60 + (rows * 7 + cols * 3) % 97).astype(np.uint16)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, s1_dir, srtm_dir, geoid_file):
    root = tmp_path_factory.mktemp("multi")
    images = root / "s1_images"
    images.mkdir()
    for name in PRODUCTS:
        build_product(s1_dir / name, images, content=_speckle_free_pattern)
    region = unary_union([grid.tile(t).footprint for t in TILES])
    write_dem_folder(root / "dem", region, srtm_dir)
    return root, geoid_file


def _config(root, geoid, output, processes):
    return write_request(root, output, tiles=TILES, first_date="2015-01-01", last_date="2021-12-31", geoid=geoid,
                         Processing={"output_spatial_resolution": 100,
                                     "orthorectification_interpolation_method": "linear",
                                     "nb_parallel_processes": processes})


def _outputs(folder):
    return {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*.tif"))}


@pytest.fixture(scope="module")
def runs(inputs):
    root, geoid = inputs
    codes = {n: cli.main([str(_config(root, geoid, f"out{n}", n))]) for n in (1, 2)}
    return root, codes


def test_every_tile_and_date_is_produced(runs):
    root, codes = runs
    assert codes == {1: 0, 2: 0}
    produced = _outputs(root / "out1")
    for tile, names in EXPECTED.items():
        for name in names:
            assert f"{tile}/{name}" in produced
            with rasterio.open(produced[f"{tile}/{name}"]) as src:
                assert (src.read(1) > 0).mean() > 0.3


def test_two_processes_give_bit_identical_outputs(runs):
    root, _ = runs
    one, two = _outputs(root / "out1"), _outputs(root / "out2")
    assert sorted(one) == sorted(two) and len(one) == 6
    for key in one:
        with rasterio.open(one[key]) as a, rasterio.open(two[key]) as b:
            assert a.profile == b.profile
            assert np.array_equal(a.read(1), b.read(1)), key
            tags_a, tags_b = a.tags(), b.tags()
            tags_a.pop("TIFFTAG_DATETIME"), tags_b.pop("TIFFTAG_DATETIME")
            assert tags_a == tags_b


def test_a_failing_task_does_not_stop_the_others(inputs, tmp_path, capsys):
    root, geoid = inputs
    # Same inputs, but the France product's VH measurement is truncated: its task must fail alone.
    broken = tmp_path / "s1_images"
    shutil.copytree(root / "s1_images", broken, symlinks=True)
    france = next(broken.glob("*6FF8.SAFE"))
    vh = next((france / "measurement").glob("*-vh-*.tiff"))
    data = vh.read_bytes()
    vh.write_bytes(data[: len(data) // 3])
    cfg = _config(root, geoid, "out_broken", 2)
    cfg.write_text(cfg.read_text().replace(str(root / "s1_images"), str(broken)))
    code = cli.main([str(cfg)])
    assert code == 71  # the failed task's own code: a corrupt (truncated) product
    produced = _outputs(root / "out_broken")
    for tile in ("32UNB", "32UNC"):
        for name in EXPECTED[tile]:
            assert f"{tile}/{name}" in produced
    assert not any(key.startswith("31TEL/") for key in produced)
    assert not list((root / "out_broken").rglob("*.tmp*"))
    err = capsys.readouterr()
    assert "31TEL" in err.out + err.err and "6FF8" in err.out + err.err

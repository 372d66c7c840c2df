"""Speckle-filtered products through the CLI, with and without keeping the unfiltered images.

Runs on synthetic products (s1tiling.samples.synthetic), so it needs no shared reference data.
"""
from __future__ import annotations

import pytest
import rasterio

from request_files import SYNTHETIC_DAY, SYNTHETIC_TILE as TILE, synthetic_inputs, write_request
from s1tiling import cli


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("filtered")
    return root, synthetic_inputs(root)


def _request(root, geoid, output, keep):
    return write_request(root, output, tiles=TILE, first_date=SYNTHETIC_DAY, last_date=SYNTHETIC_DAY, geoid=geoid,
                         DataSource={"polarisation": "VV"}, Processing={"output_spatial_resolution": 200},
                         Quicklook={"generate": True},
                         Filtering={"filter": "lee", "window_radius": 1, "nblooks": 1,
                                    "keep_non_filtered_products": keep})


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_filtered_products_replace_the_images_when_not_kept(inputs):
    root, geoid = inputs
    cfg = _request(root, geoid, "drop", keep=False)
    assert cli.main([str(cfg)]) == 0
    made = _files(root / "drop")
    filtered = [k for k in made if k.startswith(f"filtered/{TILE}/") and k.endswith("_filtered.tif")]
    assert len(filtered) == 1
    assert not any(k.startswith(f"{TILE}/") and k.endswith(".tif") for k in made)  # unfiltered image removed
    assert any(k.startswith("_QL/") and k.endswith("_quicklook.jpg") for k in made)
    with rasterio.open(root / "drop" / filtered[0]) as src:
        values = src.read(1)
        assert (values > 0).mean() > 0.3 and src.dtypes[0] == "float32"
    # A rerun finds the filtered product and makes nothing again.
    assert cli.main([str(cfg)]) == 0
    assert _files(root / "drop") == made


def test_filtered_products_come_beside_the_images_by_default(inputs):
    root, geoid = inputs
    assert cli.main([str(_request(root, geoid, "keep", keep=True))]) == 0
    made = _files(root / "keep")
    images = [k for k in made if k.startswith(f"{TILE}/") and k.endswith(".tif")]
    filtered = [k for k in made if k.startswith(f"filtered/{TILE}/")]
    assert len(images) == 1 and len(filtered) == 1
    with rasterio.open(root / "keep" / images[0]) as a, rasterio.open(root / "keep" / filtered[0]) as b:
        raw, smooth = a.read(1), b.read(1)
    valid = (raw > 0) & (smooth > 0)
    assert valid.mean() > 0.3
    assert smooth[valid].var() < raw[valid].var()  # speckle reduced

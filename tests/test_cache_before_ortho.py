"""``--cache-before-ortho``: calibrated products cached in {tmp}/S1, same tile images, reused.

Runs on synthetic products (s1tiling.samples.synthetic), so it needs no shared reference data.
"""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from request_files import SYNTHETIC_DAY, SYNTHETIC_TILE as TILE, synthetic_inputs, write_request
from s1tiling import cli


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return root, synthetic_inputs(root)


def _request(root, geoid, output, noise=True):
    return write_request(root, output, tiles=TILE, first_date=SYNTHETIC_DAY, last_date=SYNTHETIC_DAY, geoid=geoid,
                         DataSource={"polarisation": "VV-VH"},
                         Processing={"output_spatial_resolution": 200, "remove_thermal_noise": noise})


def _images(folder):
    return {p.name: p for p in (folder / TILE).glob("*.tif")}


def _caches(root):
    return {p.name: p.stat().st_mtime_ns for p in (root / "tmp" / "S1").rglob("*.tif")}


def test_cached_calibration_gives_the_same_images_and_is_reused(inputs, capsys):
    root, geoid = inputs
    product = next((root / "s1_images").iterdir()).name.removesuffix(".SAFE")
    assert cli.main([str(_request(root, geoid, "plain"))]) == 0
    assert not (root / "tmp" / "S1").exists()  # nothing cached without the option

    cached_cfg = _request(root, geoid, "cached")
    assert cli.main([str(cached_cfg), "--dry-run", "--cache-before-ortho"]) == 0
    listed = capsys.readouterr().out
    expected = {f"{product}_vv_sigma_NoiseRemoved.tif", f"{product}_vh_sigma_NoiseRemoved.tif"}
    for name in expected:
        assert f"{root / 'tmp' / 'S1' / product / name}" in listed
    assert not (root / "tmp" / "S1").exists()  # a dry run writes nothing

    assert cli.main([str(cached_cfg), "--cache-before-ortho"]) == 0
    caches = _caches(root)
    assert set(caches) == expected
    with rasterio.open(root / "tmp" / "S1" / product / f"{product}_vv_sigma_NoiseRemoved.tif") as src:
        assert src.dtypes[0] == "float32" and src.shape == (2000, 2500)
        assert (src.read(1) > 0).mean() > 0.5

    plain, cached = _images(root / "plain"), _images(root / "cached")
    assert set(plain) == set(cached) and len(plain) == 2
    for name in plain:
        with rasterio.open(plain[name]) as a, rasterio.open(cached[name]) as b:
            first, second = a.read(1), b.read(1)
        assert (first > 0).mean() > 0.3
        np.testing.assert_array_equal(first, second)  # bit-identical

    # A rerun (output deleted) reads the cache and does not write it again.
    for path in cached.values():
        path.unlink()
    assert cli.main([str(cached_cfg), "--dry-run", "--cache-before-ortho"]) == 0
    assert "to cache before orthorectification" not in capsys.readouterr().out
    assert cli.main([str(cached_cfg), "--cache-before-ortho"]) == 0
    assert _caches(root) == caches
    for name, path in _images(root / "cached").items():
        with rasterio.open(plain[name]) as a, rasterio.open(path) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))

    # The tile images are made from the cached values: a cache of 0.5 everywhere gives 0.5.
    vv = root / "tmp" / "S1" / product / f"{product}_vv_sigma_NoiseRemoved.tif"
    with rasterio.open(vv, "r+") as dst:
        dst.write(np.full(dst.shape, 0.5, dtype=np.float32), 1)
    for path in _images(root / "cached").values():
        path.unlink()
    assert cli.main([str(cached_cfg), "--cache-before-ortho"]) == 0
    image = next(p for n, p in _images(root / "cached").items() if "_vv_" in n)
    with rasterio.open(image) as src:
        values = src.read(1)
    assert (values > 0).mean() > 0.3 and set(np.unique(values[values > 0])) == {np.float32(0.5)}


def test_other_radiometry_never_reuses_the_cache(inputs):
    root, geoid = inputs
    assert cli.main([str(_request(root, geoid, "raw_plain", noise=False))]) == 0
    assert cli.main([str(_request(root, geoid, "raw_cached", noise=False)), "--cache-before-ortho"]) == 0
    product = next((root / "s1_images").iterdir()).name.removesuffix(".SAFE")
    assert {f"{product}_vv_sigma.tif", f"{product}_vh_sigma.tif"} <= set(_caches(root))
    plain, cached = _images(root / "raw_plain"), _images(root / "raw_cached")
    assert set(plain) == set(cached) and len(plain) == 2
    for name in plain:
        with rasterio.open(plain[name]) as a, rasterio.open(cached[name]) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))

"""Multitemporal speckle filter (Quegan & Yu 2001): statistics with known answers on synthetic
speckle, the file-level filter, and ``filter = quegan`` in a run (distinct names, incremental).

Expected values: N dates of a constant scene of mean m with independent single-look speckle
(exponential intensities, L = 1). The filter keeps the mean (E[I / <I>] = 1 for the box mean
<I> of a window of n pixels that includes I, by symmetry), and the coefficient of variation of
its output, to first order in the noise of the box means, is
sqrt(1 / (N L) + (N - 1) / (N n L)): the average of N independent ratios (1 / (N L)) plus the
noise of the target date's box mean, less the part of it the target's own ratio cancels.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from affine import Affine

from s1tiling.multitemporal import quegan_file, quegan_padded

MEAN = 0.05


def _speckle(dates, shape=(360, 360), seed=1):
    rng = np.random.default_rng(seed)
    return [(MEAN * rng.exponential(1.0, shape)).astype(np.float32) for _ in range(dates)]


@pytest.mark.parametrize("dates,radius", [(10, 7), (5, 5), (20, 9)])
def test_constant_scene_keeps_its_mean_and_the_speckle_drops_as_expected(dates, radius):
    images = _speckle(dates)
    padded = [np.pad(i, radius, mode="edge") for i in images]
    out = quegan_padded(padded, dates - 1, radius).astype(np.float64)
    inner = out[radius:-radius, radius:-radius]  # away from the replicated edges
    n = (2 * radius + 1) ** 2
    expected_cv = math.sqrt(1 / dates + (dates - 1) / (dates * n))
    assert inner.mean() == pytest.approx(MEAN, rel=0.01)
    assert inner.std() / inner.mean() == pytest.approx(expected_cv, rel=0.04)
    single = images[-1].astype(np.float64)
    assert single.std() / single.mean() == pytest.approx(1.0, rel=0.02)  # L = 1 before


def test_one_date_is_the_image_itself():
    """N = 1: E[I] x I / E[I] = I."""
    image = _speckle(1)[0]
    out = quegan_padded([np.pad(image, 3, mode="edge")], 0, 3)
    np.testing.assert_allclose(out, image, rtol=1e-6)


def test_no_data_is_left_out(tmp_path):
    """A date with no data on a strip: there the others are averaged over one date less; the
    date being filtered keeps 0 where it has no data. The file filter (strips, halo) equals the
    filter of the whole arrays."""
    images = _speckle(4, shape=(300, 200), seed=2)
    images[1][100:150] = 0
    images[3][:, :20] = 0
    paths = []
    for k, image in enumerate(images):
        path = tmp_path / f"date{k}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=200, height=300, count=1, dtype="float32", nodata=0,
                           transform=Affine(10, 0, 500000, 0, -10, 5000000), crs="EPSG:32631",
                           tiled=True) as dst:
            dst.write(image, 1)
            dst.update_tags(FLYING_UNIT_CODE="s1a", CALIBRATION="sigma")
        paths.append(path)
    out_path = quegan_file(paths, tmp_path / "out.tif", 4, strip_rows=64)
    with rasterio.open(out_path) as src:
        out = src.read(1)
        tags = src.tags()
    whole = quegan_padded([np.pad(i, 4, mode="edge") for i in images], 3, 4)
    np.testing.assert_allclose(out, whole, rtol=1e-5)
    assert (out[:, :20] == 0).all() and (out[:, 20:] > 0).all()
    assert tags["FILTERING_METHOD"] == "quegan" and tags["FILTERING_DATES"] == "4"
    assert tags["FILTERING_INPUTS"].split(", ") == [p.name for p in paths]


# ---------------------------------------------------------------------------- in a run

@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    from request_files import synthetic_inputs
    root = tmp_path_factory.mktemp("quegan")
    return root, synthetic_inputs(root)


def _quegan_request(root, geoid, dates):
    from request_files import SYNTHETIC_DAY, SYNTHETIC_TILE, write_request
    return write_request(root, "out", tiles=SYNTHETIC_TILE, first_date=SYNTHETIC_DAY, last_date=SYNTHETIC_DAY,
                         geoid=geoid, DataSource={"polarisation": "VV"},
                         Processing={"output_spatial_resolution": 200},
                         Filtering={"filter": "quegan", "window_radius": 2, "quegan_dates": dates,
                                    "keep_non_filtered_products": False})


def test_filter_quegan_in_a_run_uses_the_earlier_dates_and_is_incremental(run_inputs):
    """``filter = quegan``: the image of the run's date is filtered with the images of the same
    tile, orbit and polarisation of the dates before it (at most ``quegan_dates`` in all), under a
    name of its own (``..._quegan_filtered.tif``); the unfiltered images stay (later dates need
    them); a rerun makes nothing; a window of 2 dates reads one earlier image."""
    from request_files import SYNTHETIC_TILE
    from s1tiling import cli
    root, geoid = run_inputs
    cfg = _quegan_request(root, geoid, 3)
    assert cli.main([str(cfg)]) == 0
    folder = root / "out" / SYNTHETIC_TILE
    (image,) = folder.glob("*.tif")
    stamp = image.name.split("_")[5]
    (first,) = (root / "out" / "filtered" / SYNTHETIC_TILE).glob("*_quegan_filtered.tif")
    assert first.name == image.name.replace(".tif", "_quegan_filtered.tif")
    with rasterio.open(first) as src:
        assert src.tags()["FILTERING_INPUTS"] == image.name  # no earlier date yet
    first.unlink()
    # three earlier dates (the same scene, other speckle), as a longer series would have them
    rng = np.random.default_rng(3)
    with rasterio.open(image) as src:
        values, profile, tags = src.read(1), src.profile, src.tags()
    earlier = []
    for day in ("20210721", "20210802", "20210708"):
        path = folder / image.name.replace(stamp, day + stamp[8:])
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.where(values > 0, values * rng.exponential(1.0, values.shape), 0).astype(np.float32), 1)
            dst.update_tags(**tags)
        earlier.append(path)
    assert cli.main([str(cfg)]) == 0
    filtered = sorted((root / "out" / "filtered" / SYNTHETIC_TILE).glob("*_quegan_filtered.tif"))
    assert [p.name for p in filtered] == [first.name]  # only the run's date: the others are not its work
    window = sorted(earlier)[-2:] + [image]  # quegan_dates = 3: two earlier dates and its own
    with rasterio.open(first) as src:
        made, made_tags = src.read(1), src.tags()
    assert made_tags["FILTERING_INPUTS"].split(", ") == [p.name for p in window]
    expected = quegan_file(window, root / "expected.tif", 2)
    with rasterio.open(expected) as src:
        np.testing.assert_allclose(made, src.read(1), rtol=1e-6)
    assert image.exists()  # kept although keep_non_filtered_products = False
    mtime = first.stat().st_mtime_ns
    assert cli.main([str(cfg)]) == 0
    assert first.stat().st_mtime_ns == mtime  # nothing made again
    first.unlink()
    assert cli.main([str(_quegan_request(root, geoid, 2))]) == 0
    with rasterio.open(first) as src:
        assert src.tags()["FILTERING_INPUTS"].split(", ") == [sorted(earlier)[-1].name, image.name]

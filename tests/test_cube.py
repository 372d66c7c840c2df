"""From files to a time series, end to end: COG outputs, the STAC catalog, open_timeseries, Zarr.

One module-wide run of the CLI (synthetic products, no shared data): tiles 31TEL and 31TEK at
200 m, COG output, border masks and quicklooks, two dates of ascending orbit 59 and one of
descending orbit 8; then a rerun after a third ascending date arrived. Between the two, the
catalog and the Zarr stores are snapshotted, so that what the rerun changes can be checked.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

import s1tiling
from cube_inputs import TILES, add_date, dem_and_geoid
from request_files import write_request
from s1tiling import cli, logs

pytestmark = pytest.mark.slow
pystac = pytest.importorskip("pystac", reason="pystac missing (pip install -e '.[test]')")
xr = pytest.importorskip("xarray", reason="xarray missing: the cube extra (pip install -e '.[test]')")
pytest.importorskip("stackstac", reason="stackstac missing: the cube extra (pip install -e '.[test]')")

REPO = Path(__file__).resolve().parent.parent
EXTENSION_SCHEMAS = ("projection_v2.0.0", "raster_v1.1.0", "sat_v1.0.0", "sar_v1.0.0", "processing_v1.2.0")


def _run(cfg) -> int:
    try:
        return cli.main([str(cfg)])
    finally:
        logs.reset_logging()


def _copy_catalog(output: Path, to: Path) -> Path:
    shutil.copytree(output / "stac", to / "stac")
    shutil.copy2(output / "catalog.json", to / "catalog.json")
    return to


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("cube")
    geoid = dem_and_geoid(root)
    for direction, cycle in (("ASC", 0), ("ASC", 1), ("DES", 0)):
        add_date(root, direction, cycle)
    cfg = write_request(root, "out", tiles=list(TILES), first_date="2021-08-01", last_date="2021-09-30", geoid=geoid,
                        Processing={"output_spatial_resolution": 200, "output_format": "COG",
                                    "ia_maps_to_produce": "deg, cos"},
                        Mask={"generate_border_mask": True}, Quicklook={"generate": True})
    assert _run(cfg) == 0
    try:
        assert cli.ia_main([str(cfg)]) == 0  # IA maps of both orbits: items of their own
    finally:
        logs.reset_logging()
    output = root / "out"
    first = _copy_catalog(output, root / "first")
    from s1tiling.timeseries import export_zarr
    export_zarr(output, folder=root / "zarr_incremental")
    add_date(root, "ASC", 2)  # a new date arrives
    assert _run(cfg) == 0
    export_zarr(output, folder=root / "zarr_incremental")
    export_zarr(output, folder=root / "zarr_at_once")
    return SimpleNamespace(root=root, output=output, first=first)


def _products(output: Path) -> list[Path]:
    return sorted(p for p in output.rglob("*") if p.is_file() and p.suffix in (".tif", ".jpg")
                  and "stac" not in p.parts and "zarr" not in p.parts)


# --------------------------------------------------------------------------- COG


def test_outputs_are_valid_cogs_with_s1tiling_names(series):
    cogeo = pytest.importorskip("rio_cogeo.cogeo", reason="rio-cogeo missing (pip install -e '.[test]')")
    stamps = {("ASC", "059"): ["20210809t173953", "20210821t173953", "20210902t173953"],
              ("DES", "008"): ["20210811t055010"]}
    expected = set()
    for tile in TILES:
        for (direction, orbit), days in stamps.items():
            for stamp in days:
                for pol in ("vv", "vh"):
                    stem = f"s1a_{tile}_{pol}_{direction}_{orbit}_{stamp}"
                    expected |= {f"{tile}/{stem}.tif", f"{tile}/{stem}_BorderMask.tif", f"_QL/{stem}_quicklook.jpg"}
    found = {str(p.relative_to(series.output)) for p in _products(series.output)}
    expected |= {f"_IA/{kind}_{tile}_{orbit}.tif" for kind in ("IA", "cos_IA") for tile in TILES
                 for orbit in ("059", "008")}
    assert found == expected
    for path in _products(series.output):
        if path.suffix != ".tif":
            continue
        valid, errors, _ = cogeo.cog_validate(str(path))
        assert valid, (path, errors)
        with rasterio.open(path) as src:
            assert src.block_shapes == [(512, 512)] and src.overviews(1) == [2]
            tags = src.tags()
            assert tags["S2_TILE_CORRESPONDING_CODE"] in path.name
            assert f"(s1tiling {s1tiling.__version__})" in tags["TIFFTAG_SOFTWARE"]
            if path.name.endswith("_BorderMask.tif"):  # nearest-neighbour overviews: still 0 or 1
                assert tags["IMAGE_TYPE"] == "MASK"
                assert set(np.unique(src.read(1, out_shape=(275, 275)))) <= {0, 1}


# --------------------------------------------------------------------------- STAC catalog


def _schema_validator():
    """pystac's validator with the STAC core schemas pystac ships and the extension schemas ESA's
    eopf wheel ships (downloaded by scripts/test.sh, never installed), network access forbidden."""
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    pytest.importorskip("jsonschema", reason="jsonschema missing (pip install -e '.[test]')")
    wheels = sorted((Path(sys.prefix) / "stac-schemas").glob("eopf-*.whl"))
    if not wheels:
        pytest.skip(f"no STAC extension schemas: run scripts/test.sh, or pip download --no-deps -d "
                    f"{Path(sys.prefix) / 'stac-schemas'} eopf==2.8.1")
    validator = JsonSchemaSTACValidator()
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in EXTENSION_SCHEMAS:
            schema = json.loads(wheel.read(f"eopf/product/stac_extensions/extensions/{name}.json"))
            validator.schema_cache[schema["$id"].rstrip("#")] = schema
    return validator


@pytest.fixture
def offline_validation(monkeypatch):
    import pystac.validation

    validator = _schema_validator()

    def no_network(self, href, *args, **kwargs):
        if re.match(r"^https?://", str(href)):
            raise AssertionError(f"validation tried the network: {href}")
        return original(self, href, *args, **kwargs)

    original = pystac.StacIO.default().__class__.read_text_from_href
    monkeypatch.setattr(pystac.StacIO.default().__class__, "read_text_from_href", no_network)
    monkeypatch.setattr(pystac.validation.RegisteredValidator, "_validator", validator)
    return validator


def _validate_all(catalog_file: Path) -> int:
    """Validate the catalog, its collections and items; return how many items were validated."""
    return pystac.Catalog.from_file(str(catalog_file)).validate_all()


def test_catalog_validates_against_the_stac_schemas(series, offline_validation, tmp_path):
    assert _validate_all(series.first / "catalog.json") == 2 * (3 + 2)  # (3 acquisitions, 2 IA maps) x 2 tiles
    assert _validate_all(series.output / "catalog.json") == 2 * (4 + 2)  # after the rerun: one more date
    # the validation is no formality: a wrong extension value fails it
    broken = _copy_catalog(series.output, tmp_path)
    item_file = next((broken / "stac" / "31TEL" / "items").glob("*.json"))
    item = json.loads(item_file.read_text())
    item["properties"]["sar:polarizations"] = ["VX"]
    item_file.write_text(json.dumps(item))
    with pytest.raises(pystac.errors.STACValidationError):
        _validate_all(broken / "catalog.json")


def _items(folder: Path, tile: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((folder / "stac" / tile / "items").glob("*.json"))}


def test_catalog_items_describe_every_product(series):
    items = _items(series.output, "31TEL")
    assert sorted(items) == ["IA_31TEL_008", "IA_31TEL_059",
                             "s1a_31TEL_ASC_059_20210809t173953", "s1a_31TEL_ASC_059_20210821t173953",
                             "s1a_31TEL_ASC_059_20210902t173953", "s1a_31TEL_DES_008_20210811t055010"]
    ia = items["IA_31TEL_059"]
    assert sorted(ia["assets"]) == ["IA", "cos_IA"]
    band = ia["assets"]["IA"]["raster:bands"][0]
    assert band["unit"] == "deg" and band["scale"] == 0.01
    assert ia["properties"]["sat:relative_orbit"] == 59 and ia["properties"]["datetime"] == "2021-08-09T17:39:53Z"
    assert ia["assets"]["cos_IA"]["raster:bands"][0]["nodata"] == "nan"
    items = {name: item for name, item in items.items() if not name.startswith("IA_")}
    item = items["s1a_31TEL_DES_008_20210811t055010"]
    props = item["properties"]
    assert props["datetime"] == "2021-08-11T05:50:10Z"
    assert (props["sat:relative_orbit"], props["sat:orbit_state"], props["platform"]) == (8, "descending",
                                                                                         "sentinel-1a")
    assert props["sar:polarizations"] == ["VH", "VV"] and props["sar:instrument_mode"] == "IW"
    assert (props["sar:frequency_band"], props["sar:product_type"]) == ("C", "GRD")
    assert props["processing:software"] == {"s1tiling": s1tiling.__version__}
    assert (props["s1tiling:calibration"], props["s1tiling:engine"]) == ("sigma", "native")
    assert props["s1tiling:input_products"][0].startswith("S1A_IW_GRDM_1SDV_20210811T055010")
    assert (props["proj:code"], props["proj:shape"]) == ("EPSG:32631", [549, 549])
    assert props["proj:transform"] == [200.0, 0.0, 499980.0, 0.0, -200.0, 5100000.0]
    assert sorted(item["assets"]) == ["vh", "vh_mask", "vh_quicklook", "vv", "vv_mask", "vv_quicklook"]
    vv = item["assets"]["vv"]
    assert vv["roles"] == ["data", "backscatter"] and vv["type"].endswith("profile=cloud-optimized")
    assert vv["raster:bands"] == [{"data_type": "float32", "spatial_resolution": 200.0, "nodata": 0, "unit": "m2/m2"}]
    assert item["assets"]["vv_mask"]["roles"] == ["data-mask"]
    assert item["assets"]["vv_quicklook"]["type"] == "image/jpeg"
    # every link and href is relative: the folder can be moved or served
    for path in [series.output / "catalog.json", *series.output.glob("stac/*/*.json"),
                 *series.output.glob("stac/*/items/*.json")]:
        assert str(series.root) not in path.read_text(), path
    for key, asset in item["assets"].items():
        assert (series.output / "stac" / "31TEL" / "items" / asset["href"]).resolve().is_file(), key
    collection = json.loads((series.output / "stac" / "31TEL" / "collection.json").read_text())
    assert collection["extent"]["temporal"]["interval"] == [["2021-08-09T17:39:53Z", "2021-09-02T17:39:53Z"]]
    assert sorted(link["href"] for link in collection["links"] if link["rel"] == "item") == sorted(
        f"items/{name}.json" for name in [*items, "IA_31TEL_008", "IA_31TEL_059"])


def test_a_rerun_adds_the_new_item_and_keeps_the_others(series):
    for tile in TILES:
        before, after = _items(series.first, tile), _items(series.output, tile)
        assert set(after) - set(before) == {f"s1a_{tile}_ASC_059_20210902t173953"}
        assert all(after[name] == item for name, item in before.items())


def test_catalog_command_rebuilds_the_same_items_from_the_files(series, tmp_path, capsys):
    copy = tmp_path / "out"
    for path in _products(series.output):
        target = copy / path.relative_to(series.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        if Path(f"{path}.aux.xml").exists():
            shutil.copy2(f"{path}.aux.xml", f"{target}.aux.xml")
    assert cli.main(["catalog", str(copy)]) == 0
    assert "12 item(s), 12 written" in capsys.readouterr().out
    for tile in TILES:
        assert _items(copy, tile) == _items(series.output, tile)
    assert json.loads((copy / "catalog.json").read_text()) == json.loads((series.output / "catalog.json").read_text())


def test_catalog_of_s1tiling_made_files(series, tmp_path):
    """Files as S1Tiling writes them (no ENGINE/ORBIT_SOURCE tags, its software tag), S1Tiling names."""
    for path in _products(series.output):
        target = tmp_path / "out" / path.relative_to(series.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jpg":
            continue
        with rasterio.open(path) as src:
            profile = src.profile
            tags = {k: v for k, v in src.tags().items() if k not in ("ENGINE", "ORBIT_SOURCE")}
            data = src.read()
        profile.update(driver="GTiff", tiled=True, blockxsize=256, blockysize=256)
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(data)
            dst.update_tags(**{**tags, "TIFFTAG_SOFTWARE": "S1 Tiling v1.1.0"})
    assert cli.main(["catalog", str(tmp_path / "out")]) == 0
    ours, theirs = _items(series.output, "31TEK"), _items(tmp_path / "out", "31TEK")
    assert sorted(theirs) == sorted(ours)
    for name, item in theirs.items():
        props = item["properties"]
        assert props["processing:software"] == {"S1 Tiling": "1.1.0"} and "s1tiling:engine" not in props
        if name.startswith("IA_"):
            continue
        assert props["datetime"] == ours[name]["properties"]["datetime"]
        assert props["sat:relative_orbit"] == ours[name]["properties"]["sat:relative_orbit"]
        assert sorted(item["assets"]) == ["vh", "vh_mask", "vv", "vv_mask"]
        assert item["assets"]["vv"]["type"] == "image/tiff; application=geotiff"


def test_catalog_command_errors(tmp_path):
    assert cli.main(["catalog", str(tmp_path / "missing")]) == 72
    assert cli.main(["export-zarr", str(tmp_path)]) == 72  # no catalog there


# --------------------------------------------------------------------------- time series


def _tiff_time(text: str) -> np.datetime64:
    return np.datetime64(datetime.strptime(text, "%Y:%m:%dT%H:%M:%SZ"), "us")


def test_open_timeseries_is_the_geotiff_pixels(series):
    ts = s1tiling.open_timeseries(series.output, "31TEL")
    assert list(ts.data_vars) == ["vv", "vh"] and ts.vv.dims == ("time", "y", "x")
    assert type(ts.vv.data).__module__.startswith("dask")  # lazy
    items = {name: item for name, item in _items(series.output, "31TEL").items() if not name.startswith("IA_")}
    names = list(ts.item_id.values)
    assert names == sorted(items, key=lambda n: items[n]["properties"]["datetime"])
    assert list(ts.orbit.values) == [59, 8, 59, 59] and list(ts.direction.values) == ["ASC", "DES", "ASC", "ASC"]
    assert list(ts.platform.values) == ["sentinel-1a"] * 4
    rng = np.random.default_rng(7)
    rows, cols = rng.integers(0, 549, 400), rng.integers(0, 549, 400)
    first = series.output / "31TEL" / "s1a_31TEL_vv_ASC_059_20210809t173953"
    with rasterio.open(f"{first}.tif") as src, rasterio.open(f"{first}_BorderMask.tif") as msk:
        border_rows, border_cols = np.nonzero((msk.read(1) == 0) & (src.read(1) != 0))  # what the mask removes
    rows, cols = np.concatenate([rows, border_rows]), np.concatenate([cols, border_cols])
    picked = {pol: ts[pol].isel(y=xr.DataArray(rows, dims="p"), x=xr.DataArray(cols, dims="p")).values
              for pol in ("vv", "vh")}
    checked = masked = 0
    for k, name in enumerate(names):
        for pol in ("vv", "vh"):
            image = series.output / "31TEL" / f"s1a_31TEL_{pol}_{name.split('_31TEL_')[1]}.tif"
            with rasterio.open(image) as src, rasterio.open(str(image).replace(".tif", "_BorderMask.tif")) as msk:
                assert _tiff_time(src.tags()["ACQUISITION_DATETIME"]) == ts.time.values[k].astype("datetime64[us]")
                assert src.transform == rasterio.Affine(*items[name]["properties"]["proj:transform"])
                values, mask = src.read(1)[rows, cols], msk.read(1)[rows, cols]
            expected = np.where((mask == 1) & (values != 0), values, np.float32(np.nan)).astype(np.float32)
            got = picked[pol][k]
            assert np.array_equal(np.isnan(got), np.isnan(expected))
            assert np.array_equal(got[~np.isnan(got)].view(np.uint32), expected[~np.isnan(expected)].view(np.uint32))
            checked += int((~np.isnan(expected)).sum())
            masked += int(((mask == 0) & (values != 0)).sum())
    assert checked > 1000 and masked > 0  # values compared, and border pixels the mask removes


def test_the_catalog_works_in_users_odc_stac_and_stackstac_code(series):
    """The same items, loaded by odc-stac and by stackstac with nothing but the catalog, give the
    pixels open_timeseries gives (no-data 0 and masks aside)."""
    odc_stac = pytest.importorskip("odc.stac", reason="odc-stac missing (pip install -e '.[test]')")
    stackstac = pytest.importorskip("stackstac", reason="stackstac missing: the cube extra")
    catalog = pystac.Catalog.from_file(str(series.output / "catalog.json"))
    catalog.make_all_asset_hrefs_absolute()  # stackstac opens hrefs as they are
    items = sorted((i for i in catalog.get_items(recursive=True)
                    if i.collection_id == "s1tiling-31TEK" and "vv" in i.assets), key=lambda i: i.datetime)
    ours = s1tiling.open_timeseries(series.output, "31TEK", "vv", masks=False).vv.values
    by_odc = odc_stac.load(items, bands=["vv"], chunks={}, groupby="id").vv.values  # the native grid
    grid = items[0].properties  # stackstac reads proj:epsg, which pystac migrates to proj:code: give the grid
    by_stackstac = stackstac.stack(items, assets=["vv"], epsg=32631, resolution=grid["proj:transform"][0],
                                   bounds=tuple(grid["proj:bbox"]), snap_bounds=False, rescale=False,
                                   xy_coords="center").sel(band="vv").values
    assert by_odc.shape == by_stackstac.shape == ours.shape == (4, 549, 549)
    assert np.array_equal(np.where(by_odc == 0, np.float32(np.nan), by_odc), ours, equal_nan=True)
    assert np.array_equal(np.where(by_stackstac == 0, np.nan, by_stackstac), ours, equal_nan=True)


def test_open_timeseries_filters(series):
    from s1tiling.timeseries import open_timeseries

    assert list(open_timeseries(series.output, "31TEL", orbit=8).orbit.values) == [8]
    assert list(open_timeseries(series.output, "T31TEL", orbit="ASC").orbit.values) == [59, 59, 59]
    assert list(open_timeseries(series.output, "31TEL", orbit=[8, 59]).orbit.values) == [59, 8, 59, 59]
    window = open_timeseries(series.output, "31TEL", "vh", start="2021-08-10", end="2021-08-21")
    assert list(window.data_vars) == ["vh"]
    assert [str(t)[:19] for t in window.time.values] == ["2021-08-11T05:50:10", "2021-08-21T17:39:53"]
    linear = open_timeseries(series.output, "31TEL", calibration="sigma")
    assert linear.sizes["time"] == 4 and linear.vv.attrs["units"] == "m2/m2"
    db = open_timeseries(series.output, "31TEL", db=True)
    assert db.vv.attrs["units"] == "dB" and db.vv.dtype == np.float32
    np.testing.assert_allclose(db.vh[2, 300:340].values, 10 * np.log10(linear.vh[2, 300:340].values), rtol=1e-6)
    with pytest.raises(LookupError, match="no acquisition of tile 31TEL"):
        open_timeseries(series.output, "31TEL", calibration="normlim")
    with pytest.raises(LookupError, match="no hh image"):
        open_timeseries(series.output, "31TEL", ["hh"])
    with pytest.raises(FileNotFoundError, match="s1tiling catalog"):
        open_timeseries(series.root / "first" / "nowhere", "31TEL")


def test_zarr_store_appended_with_a_new_date_equals_one_written_at_once(series):
    for tile in TILES:
        for orbit, dates in ((59, 3), (8, 1)):
            for suffix, chunks in (("", (1, 512, 512)), ("_time", (64, 128, 128))):
                name = f"{tile}_{orbit:03d}{suffix}.zarr"
                appended = xr.open_zarr(series.root / "zarr_incremental" / name, consolidated=True)
                at_once = xr.open_zarr(series.root / "zarr_at_once" / name, consolidated=True)
                assert appended.sizes["time"] == dates
                assert appended.vv.encoding["chunks"] == tuple(min(c, n) if i else c for i, (c, n) in
                                                             enumerate(zip(chunks, (dates, 549, 549))))
                xr.testing.assert_identical(appended.load(), at_once.load())
    zarr_values = xr.open_zarr(series.root / "zarr_incremental" / "31TEL_059.zarr").vv.values
    assert np.array_equal(zarr_values, s1tiling.open_timeseries(series.output, "31TEL", orbit=59).vv.values,
                          equal_nan=True)
    assert (series.root / "zarr_incremental" / "31TEL_059.zarr" / ".zmetadata").is_file()  # consolidated


def test_export_zarr_command(series, tmp_path, capsys):
    assert cli.main(["export-zarr", str(series.output), "--tile", "31TEK", "--orbit", "8", "--layout", "spatial",
                     "--folder", str(tmp_path)]) == 0
    assert f"{tmp_path / '31TEK_008.zarr'}: 1 date(s), 1 added" in capsys.readouterr().out.splitlines()
    assert cli.main(["export-zarr", str(series.output), "--tile", "31TEK", "--orbit", "8", "--layout", "spatial",
                     "--folder", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("1 date(s), 0 added")


def test_readme_example_runs(series, tmp_path):
    """The README's five lines, as written, on this run's output (MPLBACKEND=Agg)."""
    text = (REPO / "README.md").read_text()
    code = re.search(r"<!-- timeseries-example -->\s*```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    (tmp_path / "output").symlink_to(series.output)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "timeseries.png").stat().st_size > 10000


def test_the_package_import_stays_light():
    code = ("import sys, s1tiling, s1tiling.pipeline, s1tiling.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'xarray', 'odc', 'stackstac', 'zarr', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _publish_and_catalog(files, output, barrier, failures):
    """One 'run': its products appear in ``output``, then it updates the catalog, at the same time as the others."""
    try:
        from s1tiling.catalog import update_catalog

        barrier.wait(timeout=60)
        for source, relative in files:
            target = output / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        update_catalog(output)
    except BaseException as err:  # reported to the parent
        failures.put(repr(err))
        raise


def test_concurrent_runs_leave_a_complete_catalog(series, tmp_path):
    """Four processes, each publishing the products of other dates into one output folder and
    updating its catalog at the same moment, three times: every item ends up in the catalog."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    products = [p for p in _products(series.output) if p.suffix == ".tif" and "_IA" not in p.parts]
    stamps = sorted({p.name.split("_")[-1].removesuffix(".tif") if "BorderMask" not in p.name
                     else p.name.split("_")[-2] for p in products})
    for round_ in range(3):
        output = tmp_path / f"out{round_}"
        output.mkdir()
        barrier, failures = context.Barrier(len(stamps)), context.Queue()
        workers = [context.Process(target=_publish_and_catalog, args=(
            [(p, p.relative_to(series.output)) for p in products if f"_{stamp}" in p.name], output, barrier, failures))
            for stamp in stamps]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert failures.empty() and all(w.exitcode == 0 for w in workers), \
            failures.get() if not failures.empty() else ""
        for tile in TILES:
            collection = json.loads((output / "stac" / tile / "collection.json").read_text())
            linked = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
            assert linked == sorted(f"items/s1a_{tile}_{s}.json" for s in (
                "ASC_059_20210809t173953", "ASC_059_20210821t173953", "ASC_059_20210902t173953",
                "DES_008_20210811t055010"))
        catalog = json.loads((output / "catalog.json").read_text())
        assert sorted(link["href"] for link in catalog["links"] if link["rel"] == "child") == [
            "./stac/31TEK/collection.json", "./stac/31TEL/collection.json"]
        assert not [p for p in output.rglob(".*") if p.name != ".lock"]  # no temporary left


def test_catalog_follows_removed_files(series, tmp_path):
    from s1tiling.catalog import update_catalog

    out = tmp_path / "out"
    for path in _products(series.output):
        target = out / path.relative_to(series.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    assert update_catalog(out).items == 12
    for path in out.rglob("s1a_31TEL_*_DES_008_20210811t055010*"):
        path.unlink()  # a whole date goes
    for path in out.rglob("s1a_31TEK_vh_ASC_059_20210809t173953_BorderMask.tif"):
        path.unlink()  # one mask goes
    report = update_catalog(out)
    assert report.removed == ("31TEL/s1a_31TEL_DES_008_20210811t055010",)
    assert report.written == ("31TEK/s1a_31TEK_ASC_059_20210809t173953",) and report.items == 11
    item = _items(out, "31TEK")["s1a_31TEK_ASC_059_20210809t173953"]
    assert "vh_mask" not in item["assets"] and "vv_mask" in item["assets"]

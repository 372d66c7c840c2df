"""S1Tiling users' request files, flags and habits, through the real commands.

Each request below is written the way S1Tiling's released templates write them
(``s1tiling/resources/S1Processor.cfg`` of S1Tiling 0.2, 0.3 and 1.1, its documentation's Copernicus
DEM and Theia examples, a NORMLIM request with only a platform and a relative orbit); each
expectation cites the S1Tiling file or page it comes from. S1Tiling 1.4.2 is the reference.

Inputs: a synthetic product over S2 tile 31TEL (s1tiling.samples.synthetic: S1A, ascending,
relative orbit 059, absolute 039156, first line 2021-08-09T17:39:53), flat DEM tiles, a zero geoid.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely import to_wkb
from shapely.geometry import box

from download_fixtures import eodag_env, no_internet, stac_servers  # noqa: F401 (fixtures)
from s1tiling import __version__, cli, grid, logs
from s1tiling.config import load_config
from s1tiling.samples.synthetic import make_safe, write_eof, write_zero_geoid
from s1tiling.samples.testing import build_product, write_dem_folder

TILE = "31TEL"
DAY = "2021-08-09"
SCENE = dict(center_lat=45.2, center_lon=3.79, pixel_spacing=40.0)
STEM = "s1a_31TEL_{pol}_ASC_059_20210809t173953"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """S1Tiling writes its logs (and --graphs its task graphs) in the current directory."""
    monkeypatch.chdir(tmp_path)
    yield
    logs.reset_logging()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("s1tiling_requests")
    template = make_safe(root / "templates", **SCENE)
    product = build_product(template, root / "s1_images", content="speckle")
    write_dem_folder(root / "SRTM_30_hgt", grid.tile(TILE).footprint)
    return {"root": root, "product": product, "s1_images": root / "s1_images", "srtm": root / "SRTM_30_hgt",
            "geoid": write_zero_geoid(root / "zero_geoid.gtx"), "template": template}


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _tags(path: Path) -> dict:
    with rasterio.open(path) as src:
        return src.tags()


# ------------------------------------------------------------------------------ S1Tiling 0.2 / 0.3 / 1.1 templates

def test_s1tiling_0_2_style_request(inputs, tmp_path):
    """S1Tiling 0.2's template: [Paths] srtm, [Processing] with tile_to_product_overlap_ratio and
    mode 'debug logging', [Filtering] filtering_activated / reset_outcore (keys S1Tiling 1.x no
    longer reads: warnings here, exit 0)."""
    cfg = _write(tmp_path / "S1Processor.cfg", f"""
        [Paths]
        # Path for result tiled images
        output : {tmp_path / 'data_out'}
        # Path to store the S1 images to be processed
        s1_images : {inputs['s1_images']}
        # Path to SRTM files
        srtm : {inputs['srtm']}
        # Path to a temporary file
        tmp : {tmp_path / 'tmp'}
        geoid_file : {inputs['geoid']}

        [DataSource]
        download : False
        roi_by_tiles : ALL
        polarisation : VV-VH
        first_date : {DAY}
        last_date : {DAY}

        [Mask]
        generate_border_mask: False

        [Processing]
        calibration: sigma
        remove_thermal_noise: True
        output_spatial_resolution : 200.
        orthorectification_gridspacing : 800
        orthorectification_interpolation_method : nn
        tiles : {TILE}
        tile_to_product_overlap_ratio : 0.5
        mode : debug logging
        nb_parallel_processes : 1
        ram_per_process : 2048
        nb_otb_threads: 1

        [Filtering]
        filtering_activated : False
        reset_outcore : True
        window_radius : 2
        """)
    assert cli.main([str(cfg)]) == 0
    folder = tmp_path / "data_out" / TILE
    # S1Tiling's file name (docs/files.rst): s1<a|b>_<tile>_<pol>_<ASC|DES>_<orbit>_<YYYYMMDD>t<hhmmss>.tif
    assert sorted(p.name for p in folder.glob("*.tif")) == [f"{STEM.format(pol='vh')}.tif",
                                                            f"{STEM.format(pol='vv')}.tif"]
    tags = _tags(folder / f"{STEM.format(pol='vv')}.tif")
    # S1Tiling's tile metadata (docs/files.rst, "Orthorectified S2 tiles")
    assert {k: tags[k] for k in ("CALIBRATION", "FLYING_UNIT_CODE", "IMAGE_TYPE", "NOISE_REMOVED", "ORBIT_DIRECTION",
                                 "ORBIT_NUMBER", "ORTHORECTIFIED", "POLARIZATION", "RELATIVE_ORBIT_NUMBER",
                                 "S2_TILE_CORRESPONDING_CODE", "SPATIAL_RESOLUTION", "DEM_INFO")} == {
        "CALIBRATION": "sigma", "FLYING_UNIT_CODE": "s1a", "IMAGE_TYPE": "BACKSCATTERING", "NOISE_REMOVED": "True",
        "ORBIT_DIRECTION": "ASC", "ORBIT_NUMBER": "039156", "ORTHORECTIFIED": "true", "POLARIZATION": "vv",
        "RELATIVE_ORBIT_NUMBER": "059", "S2_TILE_CORRESPONDING_CODE": TILE, "SPATIAL_RESOLUTION": "200.0",
        "DEM_INFO": "SRTM_30_hgt"}
    # 'S1 Tiling v<version>' (S1Tiling's checks look for 'S1 Tiling'), naming this project too
    assert tags["TIFFTAG_SOFTWARE"] == f"S1 Tiling v1.4.2 compatible (s1tiling {__version__})"
    assert tags["TIFFTAG_IMAGEDESCRIPTION"] == "sigma calibrated orthorectified Sentinel-1A IW GRD"
    # S1Tiling's LOWER_SIGNAL_VALUE when the thermal noise is removed (default 1e-7)
    assert float(tags["LOWER_SIGNAL_VALUE"]) == 1e-7
    assert tags["ACQUISITION_DATETIME"] == "2021:08:09T17:39:53Z"  # UTC, S1Tiling >= 1.1
    # mode 'debug logging': S1Processor-main.debug.log and S1Processor-main.warning.log (logging.conf.yaml)
    logs.reset_logging()
    main_log = (tmp_path / "S1Processor-main.debug.log").read_text()
    warnings = (tmp_path / "S1Processor-main.warning.log").read_text()
    assert "[Filtering] filtering_activated: unknown key" in warnings
    assert "[Processing] tile_to_product_overlap_ratio: unknown key" in warnings  # S1Tiling 1.x reads [DataSource]
    assert "DEBUG" in main_log and "[Paths] srtm is deprecated, use dem_dir" in warnings


def test_s1tiling_0_3_style_request_with_border_masks(inputs, tmp_path):
    """S1Tiling 0.3's template adds nb_parallel_downloads and cache_srtm_by; border masks are
    <tile stem>_BorderMask.tif, uint8 (S1Tiling's SmoothBorderMask: '{rootname}_BorderMask.tif')."""
    cfg = _write(tmp_path / "S1Processor.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        srtm : {inputs['srtm']}
        tmp : {tmp_path / 'tmp'}
        geoid_file : {inputs['geoid']}

        [DataSource]
        download : False
        nb_parallel_downloads : 2
        roi_by_tiles : ALL
        polarisation : VV
        first_date : {DAY}
        last_date : {DAY}

        [Mask]
        generate_border_mask: True

        [Processing]
        cache_srtm_by: symlink
        calibration: beta
        remove_thermal_noise: False
        output_spatial_resolution : 200.
        orthorectification_gridspacing : 800
        orthorectification_interpolation_method : linear
        tiles : {TILE}
        mode : Normal
        nb_parallel_processes : 1
        ram_per_process : 2048
        nb_otb_threads: 1
        """)
    assert cli.main(["--dryrun", str(cfg)]) == 0  # S1Tiling's spelling of --dry-run
    assert not (tmp_path / "data_out" / TILE).exists()
    assert cli.main(["--debug-otb", str(cfg)]) == 0
    folder = tmp_path / "data_out" / TILE
    image, mask = folder / f"{STEM.format(pol='vv')}.tif", folder / f"{STEM.format(pol='vv')}_BorderMask.tif"
    assert sorted(p.name for p in folder.glob("*.tif")) == [image.name, mask.name]
    with rasterio.open(mask) as src:
        assert src.dtypes[0] == "uint8" and set(np.unique(src.read(1))) <= {0, 1}
    tags = _tags(image)
    assert tags["CALIBRATION"] == "beta" and tags["NOISE_REMOVED"] == "False" and "LOWER_SIGNAL_VALUE" not in tags
    # S1Tiling's masks keep the image's metadata with IMAGE_TYPE=MASK (docs/files.rst, "Border masks")
    assert _tags(mask)["IMAGE_TYPE"] == "MASK" and _tags(mask)["CALIBRATION"] == "beta"


def test_s1tiling_1_1_style_normlim_request_with_filtering(inputs, tmp_path):
    """S1Tiling 1.1's template ([Paths] dem_dir and lia, platform_list left empty, cache_dem_by,
    lower_signal_value, produce_lia_map, [Filtering] filter) with calibration normlim and the Lee
    filter: the S2 image is <stem>_NormLim.tif (DEFAULT_FNAME_FMTS['lia_corrected']), the filtered
    one <stem>_Normlim_filtered.tif (DEFAULT_FNAME_FMTS['filtered_calib'], calibration_type
    'Normlim'), the map sin_LIA_<tile>_<orbit>.tif in [Paths] lia, named in the image's LIA_FILE."""
    cfg = _write(tmp_path / "S1Processor.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        lia : {tmp_path / 'data_lia'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        tmp : {tmp_path / 'tmp'}
        geoid_file : {inputs['geoid']}

        [DataSource]
        download : False
        nb_parallel_downloads : 2
        roi_by_tiles : ALL
        platform_list :
        polarisation : VV-VH
        first_date : {DAY}
        last_date : {DAY}

        [Mask]
        generate_border_mask: False

        [Processing]
        cache_dem_by: symlink
        calibration: normlim
        remove_thermal_noise: True
        lower_signal_value : 1e-7
        output_spatial_resolution : 200.
        orthorectification_gridspacing : 800
        orthorectification_interpolation_method : nn
        tiles : {TILE}
        mode : Normal
        nb_parallel_processes : 1
        ram_per_process : 2048
        nb_otb_threads: 1
        produce_lia_map : False

        [Filtering]
        filter : Lee
        window_radius : 2
        deramp : 0.1
        nblooks: 1.0
        keep_non_filtered_products : True

        [Quicklook]
        generate : True
        """)
    assert cli.main(["--debug-otb", str(cfg)]) == 0
    out = tmp_path / "data_out"
    vv = STEM.format(pol="vv")
    assert sorted(p.name for p in (out / TILE).glob("*.tif")) == [f"{STEM.format(pol='vh')}_NormLim.tif",
                                                                 f"{vv}_NormLim.tif"]
    assert (out / "filtered" / TILE / f"{vv}_Normlim_filtered.tif").is_file()
    assert sorted(p.name for p in (tmp_path / "data_lia").glob("*.tif")) == [f"sin_LIA_{TILE}_059.tif"]
    tags = _tags(out / TILE / f"{vv}_NormLim.tif")
    assert tags["CALIBRATION"] == "Normlim" and tags["LIA_FILE"] == f"sin_LIA_{TILE}_059.tif"
    assert tags["TIFFTAG_IMAGEDESCRIPTION"] == "Sigma0 Normlim Calibrated Sentinel-1A IW GRD"
    # quicklooks (our [Quicklook] section): <stem>_quicklook.jpg, no calibration suffix, with the tile's
    # tags plus IMAGE_TYPE=QUICKLOOK, QUICKLOOK_SCALE and QUICKLOOK_PIXEL_RANGE
    quicklook = out / "_QL" / f"{vv}_quicklook.jpg"
    ql_tags = _tags(quicklook)
    assert ql_tags["IMAGE_TYPE"] == "QUICKLOOK" and ql_tags["QUICKLOOK_SCALE"] == "0.5"
    assert ql_tags["QUICKLOOK_PIXEL_RANGE"] == "1 255" and ql_tags["CALIBRATION"] == "Normlim"
    assert ql_tags["S2_TILE_CORRESPONDING_CODE"] == TILE


# ------------------------------------------------------------------------------ naming

def test_theia_naming_request(inputs, tmp_path):
    """S1Tiling's configuration documentation (fname_fmt): 'Theia filename format (ex.
    S1A_L1ORT_31TCH_VH_SIG_ASC_132_20250218t174708.tif) would be expressed' with these templates."""
    cfg = _write(tmp_path / "Theia.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        tmp : {tmp_path / 'tmp'}
        geoid_file : {inputs['geoid']}
        [DataSource]
        polarisation : VH
        first_date : {DAY}
        last_date : {DAY}
        [Mask]
        generate_border_mask : True
        [Processing]
        calibration : sigma
        tiles : {TILE}
        output_spatial_resolution : 200
        orthorectification_gridspacing : 800
        fname_fmt.concatenation : {{flying_unit_code!u}}_L1ORT_{{tile_name}}_{{polarisation!u}}_{{calibration_type!u:.3}}_{{orbit_direction}}_{{orbit}}_{{acquisition_start}}.tif
        fname_fmt.filtered      : {{flying_unit_code!u}}_L1ORT_{{tile_name}}_{{polarisation!u}}_{{calibration_type!u:.3}}_{{orbit_direction}}_{{orbit}}_{{acquisition_start}}_filtered_{{filter_method!u:.3}}.tif
        [Filtering]
        filter : lee
        window_radius : 1
        """)
    assert cli.main(["--debug-otb", str(cfg)]) == 0
    out = tmp_path / "data_out"
    theia = "S1A_L1ORT_31TEL_VH_SIG_ASC_059_20210809t173953"
    assert sorted(p.name for p in (out / TILE).glob("*.tif")) == [f"{theia}.tif", f"{theia}_BorderMask.tif"]
    assert [p.name for p in (out / "filtered" / TILE).glob("*.tif")] == [f"{theia}_filtered_LEE.tif"]


def test_every_s1tiling_template_field(inputs, tmp_path):
    """S1Tiling's fields (configuration.rst, fname_fmt): absolute_orbit (5 digits), basename /
    rootname (the S1 image), polarless_basename / polarless_rootname, filter_method, acquisition_*."""
    cfg = _write(tmp_path / "fields.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        geoid_file : {inputs['geoid']}
        [DataSource]
        polarisation : VV
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        output_spatial_resolution : 200
        fname_fmt.concatenation : {{absolute_orbit}}_{{acquisition_day}}_{{polarless_rootname}}_{{rootname}}.tif
        [Filtering]
        filter : frost
        """)
    assert cli.main(["--dryrun", str(cfg)]) == 0
    logs.reset_logging()
    image = "s1a-iw-grd-vv-20210809t173953-20210809t174004-039156-04c7a0-001"
    expected = (f"39156_20210809txxxxxx_s1a-iw-grd-20210809t173953-20210809t174004-039156-04c7a0-001_{image}.tif")
    settings = load_config(cfg)
    from s1tiling.discovery import group_products, open_matching_products
    from s1tiling.plan import image_path, tile_product

    (group,) = group_products(open_matching_products(settings.paths.s1_images, settings.data_source), [TILE],
                              settings.data_source)
    assert image_path(settings, tile_product(settings, group, "VV")).name == expected
    assert image_path(settings, tile_product(settings, group, "VV"), "filtered").name == (
        f"{STEM.format(pol='vv')}_filtered.tif")


def test_templates_are_checked_when_the_request_is_loaded(inputs, tmp_path, capsys):
    """A wrong template stops the run (and --dryrun) at once, exit 72; S1Tiling's keys of its OTB
    chain's intermediate files are accepted (warning): no such file is made here."""
    base = f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        [DataSource]
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        """
    cfg = _write(tmp_path / "bad.cfg", base + "fname_fmt.concatenation : {tile_name}_{acquisition_date}.tif\n")
    assert cli.main(["--dryrun", str(cfg)]) == 72
    out = capsys.readouterr().out
    assert "[Processing] fname_fmt.concatenation = '{tile_name}_{acquisition_date}.tif'" in out
    assert "unknown field {acquisition_date}" in out
    cfg = _write(tmp_path / "internal.cfg", base + "fname_fmt.orthorectification : {rootname}_OrthoReady.tiff\n")
    assert cli.main(["--dryrun", str(cfg)]) == 0
    assert "fname_fmt.orthorectification names an intermediate file of S1Tiling's OTB chain" in capsys.readouterr().out


# ------------------------------------------------------------------------------ request values

def test_request_values_s1tiling_accepts(inputs, tmp_path):
    """Values S1Tiling 1.4 reads (libs/configuration.py): nodata.* ('nan' for LIA/IA, SAR, XYZ), any S1*
    platform, dem_warp_resampling_method among gdalwarp's (qum included), relative_orbit_list split on
    any non-digit (re.findall(r'\\d+'))."""
    cfg = _write(tmp_path / "values.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        [DataSource]
        platform_list : S1A S1D
        relative_orbit_list : 59;161
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        dem_warp_resampling_method : qum
        nodata.LIA : nan
        nodata.IA : nan
        nodata.SAR : 0
        nodata.XYZ : nan
        """)
    settings = load_config(cfg)
    ds, proc = settings.data_source, settings.processing
    assert ds.platform_list == ("S1A", "S1D") and ds.relative_orbit_list == (59, 161)
    assert proc.dem_warp_resampling_method == "qum"
    assert np.isnan(proc.nodata["LIA"]) and np.isnan(proc.nodata["IA"]) and proc.nodata["SAR"] == 0
    assert cli.main(["--dryrun", str(cfg)]) == 0


def test_tiles_all_are_those_the_products_cover(inputs, tmp_path, capsys):
    """S1Tiling's extract_tiles_to_process: 'tiles : ALL' -> get_tiles_covered_by_products(); 'Can not
    request to download ROI_by_tiles : ALL if Tiles : ALL' (exit 72); none covered: exit 73."""
    from shapely.geometry import shape

    from s1tiling.s1.product import open_product

    def request(name, s1_images, ratio="0", download="False"):
        return _write(tmp_path / f"{name}.cfg", f"""
            [Paths]
            output : {tmp_path / name}
            s1_images : {s1_images}
            dem_dir : {inputs['srtm']}
            [DataSource]
            download : {download}
            roi_by_tiles : ALL
            first_date : {DAY}
            last_date : {DAY}
            tile_to_product_overlap_ratio : {ratio}
            [Processing]
            tiles : ALL
            """)
    assert cli.main(["--dryrun", str(request("all", inputs["s1_images"], "30"))]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("tiles = ALL"))
    tiles = line.split(": ", 2)[-1].split(", ")
    # independently (lon/lat areas, shapely): the S2 tiles 30% or more of which the product covers
    footprint = shape(open_product(inputs["product"]).footprint)
    cover = {name: grid.tile(name).footprint.intersection(footprint).area / grid.tile(name).footprint.area
             for name in grid.tiles_intersecting(footprint)}
    assert TILE in tiles and tiles == sorted(tiles) and len(cover) > len(tiles)  # some tiles only touched
    assert {name for name, c in cover.items() if c > 0.35} <= set(tiles)
    assert not {name for name, c in cover.items() if c < 0.25} & set(tiles)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([str(request("none", empty))]) == 73
    assert cli.main(["--dryrun", str(request("both", empty, download="True"))]) == 72
    assert "tiles = ALL needs the products first" in capsys.readouterr().out


def test_copernicus_dem_request(inputs, tmp_path, capsys):
    """A Copernicus DEM request as S1Tiling's documentation has it: dem_database a GeoPackage of the
    layout of S1Tiling's CopernicusDEM-CNES.gpkg (attributes GeoCellID and FileID, no SRS defined:
    read as EPSG:4326 with a warning), dem_format '{FileID}' (the main id: the first field whose
    name contains 'id'), DEM GeoTIFFs in nested folders, an EGM2008 geoid (S1Tiling: 'Make sure to
    use an EGM2008 model for Copernicus DEM files')."""
    dem = tmp_path / "COP30"
    rows_ids, geometries = [], []
    for lat in (45, 46):  # 31TEL: 45.06..46.06 N, 3.0..4.4 E
        for lon in (3, 4):
            cell = f"N{lat:02d}E{lon:03d}"
            file_id = (f"E{lon:03d}/Copernicus_DSM_10_N{lat:02d}_00_E{lon:03d}_00/DEM/"
                       f"Copernicus_DSM_10_N{lat:02d}_00_E{lon:03d}_00_DEM.tif")
            path = dem / file_id
            path.parent.mkdir(parents=True)
            with rasterio.open(path, "w", driver="GTiff", width=600, height=600, count=1, dtype="float32",
                               crs="EPSG:4326", transform=from_origin(lon, lat + 1, 1 / 600, 1 / 600)) as dst:
                dst.write(np.full((1, 600, 600), 120.0, dtype=np.float32))
            rows_ids.append((cell, file_id))
            geometries.append(to_wkb(box(lon, lat, lon + 1, lat + 1)))
    database = tmp_path / "CopernicusDEM-CNES.gpkg"
    pyogrio.raw.write(database, np.array(geometries, dtype=object), [np.array([r[0] for r in rows_ids], dtype=object),
                                                                      np.array([r[1] for r in rows_ids], dtype=object)],
                      fields=["GeoCellID", "FileID"], geometry_type="Polygon", crs=None, driver="GPKG",
                      layer="CopernicusDEM")
    egm2008 = tmp_path / "us_nga_egm08_25.tif"
    with rasterio.open(egm2008, "w", driver="GTiff", width=37, height=19, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(-185, 95, 10, 10)) as dst:
        dst.write(np.full((1, 19, 37), 50.0, dtype=np.float32))
    cfg = _write(tmp_path / "Copernicus.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        lia : {tmp_path / 'data_lia'}
        s1_images : {inputs['s1_images']}
        dem_dir : {dem}
        dem_database : {database}
        dem_format : {{FileID}}
        dem_info : Copernicus DEM GLO-30
        geoid_file : {egm2008}
        [DataSource]
        polarisation : VV
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        calibration : sigma
        output_spatial_resolution : 300
        orthorectification_gridspacing : 900
        produce_lia_map : True
        """)
    assert cli.main(["--debug-otb", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"dem_database {database}: no spatial reference system defined, read as EPSG:4326" in out
    assert _tags(tmp_path / "data_out" / TILE / f"{STEM.format(pol='vv')}.tif")["DEM_INFO"] == "Copernicus DEM GLO-30"
    assert cli.lia_main(["--debug-otb", str(cfg)]) == 0
    tags = _tags(tmp_path / "data_lia" / f"LIA_{TILE}_059.tif")
    # S1Tiling 1.4's LIA maps: DEM_LIST (the DEM tiles, by their main id), DEM_RESAMPLING_METHOD
    footprint = grid.tile(TILE).footprint
    under = sorted(file_id for (cell, file_id) in rows_ids
                   if box(int(cell[4:7]), int(cell[1:3]), int(cell[4:7]) + 1, int(cell[1:3]) + 1).intersects(footprint))
    assert len(under) == 4 and tags["DEM_LIST"].split(", ") == under
    assert tags["DEM_RESAMPLING_METHOD"] == "cubic" and tags["DEM_INFO"] == "Copernicus DEM GLO-30"


def test_srtm_tiles_gpkg_layout(inputs, tmp_path):
    """S1Tiling's own srtm_tiles.gpkg: layer SRTM, attribute 'id' (N45E003...), EPSG:4326 polygons,
    dem_format '{id}.hgt' (the default)."""
    from s1tiling.geometry.dem import DemCatalog

    ids = [f"N{lat:02d}E{lon:03d}" for lat in (44, 45) for lon in (3, 4)]
    geometries = [to_wkb(box(int(i[4:7]), int(i[1:3]), int(i[4:7]) + 1, int(i[1:3]) + 1)) for i in ids]
    database = tmp_path / "srtm_tiles.gpkg"
    pyogrio.raw.write(database, np.array(geometries, dtype=object), [np.array(ids, dtype=object)], fields=["id"],
                      geometry_type="Polygon", crs="EPSG:4326", driver="GPKG", layer="SRTM")
    catalog = DemCatalog(inputs["srtm"], dem_database=database)
    footprint = grid.tile(TILE).footprint
    assert catalog.tiles_for_region(footprint) == sorted(t for t in ids if box(int(t[4:7]), int(t[1:3]), int(t[4:7])
                                                                                + 1, int(t[1:3]) + 1)
                                                          .intersects(footprint))
    assert catalog.path("N45E003") == inputs["srtm"] / "N45E003.hgt"
    assert catalog.missing_tiles(footprint) == []


# ------------------------------------------------------------------------------ NORMLIM with only platform and orbit

def test_normlim_request_with_only_platform_and_orbit(inputs, tmp_path, stac_servers):
    """S1Tiling's NORMLIM scenario (docs/use.rst, scenario.S1ProcessorLIA): S1LIAMap makes the
    sin(LIA) maps from [DataSource] platform_list and relative_orbit_list alone, downloading the
    orbit files; S1Processor with calibration normlim then uses those same maps (LIA_FILE)."""
    eof = write_eof(tmp_path / "served", **SCENE)
    _, eodag_config = stac_servers({}, orbit_files=[eof])
    empty = tmp_path / "nothing_yet"
    empty.mkdir()
    body = f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        lia : {tmp_path / 'data_lia'}
        eof_dir : {tmp_path / 'eof'}
        dem_dir : {inputs['srtm']}
        geoid_file : {inputs['geoid']}
        [DataSource]
        download : True
        eodag_config : {eodag_config}
        platform_list : S1A
        relative_orbit_list : 59
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        calibration : normlim
        output_spatial_resolution : 300
        orthorectification_gridspacing : 900
        """
    lia_cfg = _write(tmp_path / "lia.cfg", body.replace("[DataSource]", f"s1_images : {empty}\n        [DataSource]"))
    assert cli.lia_main(["--debug-otb", str(lia_cfg)]) == 0
    sin_lia = tmp_path / "data_lia" / f"sin_LIA_{TILE}_059.tif"
    assert _tags(sin_lia)["EOF_FILE"] == eof.name
    made = sin_lia.stat().st_mtime_ns
    s1_images = tmp_path / "s1_images"
    shutil.copytree(inputs["product"], s1_images / inputs["product"].name)
    normlim_cfg = _write(tmp_path / "normlim.cfg", body.replace("[DataSource]", f"s1_images : {s1_images}\n"
                                                                               "        [DataSource]")
                         .replace("download : True", "download : False"))
    assert cli.main(["--debug-otb", str(normlim_cfg)]) == 0
    assert sin_lia.stat().st_mtime_ns == made  # the same map
    tags = _tags(tmp_path / "data_out" / TILE / f"{STEM.format(pol='vv')}_NormLim.tif")
    assert tags["LIA_FILE"] == sin_lia.name and tags["CALIBRATION"] == "Normlim"


# ------------------------------------------------------------------------------ flags

def test_s1processor_flags(inputs, tmp_path, capsys):
    """S1Tiling 1.4.2's S1Processor options, with their meaning."""
    parser = cli._parser("s1tiling")
    text = parser.format_help()
    for flag in ("--dryrun", "--dry-run", "--cache-before-ortho", "--no-cache-before-ortho",
                 "--searched_items_per_page", "--nb_max_search_retries", "--eodag_download_timeout",
                 "--eodag_download_wait", "--trace-errors", "--debug-otb", "--debug-caches", "--watch-ram",
                 "--graphs", "--version", "-h"):
        assert flag in text, flag
    for program in ("S1LIAMap", "S1IAMap", "S1GammaAreaMap"):
        text = cli._parser(program).format_help()
        for flag in ("--dryrun", "--trace-errors", "--debug-otb", "--debug-caches", "--watch-ram", "--graphs"):
            assert flag in text, (program, flag)
    # the search and download options override the request's values (minutes -> our keys)
    args = parser.parse_args(["x.cfg", "--searched_items_per_page", "7", "--nb_max_search_retries", "2",
                              "--eodag_download_timeout", "3", "--eodag_download_wait", "1.5", "--no-cache-before-ortho",
                              "--debug-caches"])
    assert cli._overrides(args) == {
        "DataSource": {"searched_items_per_page": "7", "nb_max_search_retries": "2", "offline_timeout": "3",
                       "offline_poll_interval": "90"},
        "Processing": {"cache_before_ortho": "False", "debug_caches": "True"}}


def test_graphs_watch_ram_and_debug_caches(inputs, tmp_path, capsys):
    """--graphs writes the task graph (S1Tiling: 'Generate SVG images showing task graphs'), as DOT
    (and SVG with graphviz); --watch-ram logs the workers' memory; --debug-caches keeps the
    intermediate files ('intermediary cached files are not purged'); logging mode gives per-worker
    log files S1Processor-worker-<n>.log, as S1Tiling's {kind}."""
    cfg = _write(tmp_path / "S1Processor.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        tmp : {tmp_path / 'tmp'}
        geoid_file : {inputs['geoid']}
        [DataSource]
        polarisation : VV
        first_date : {DAY}
        last_date : {DAY}
        [Mask]
        generate_border_mask : True
        [Processing]
        tiles : {TILE}
        output_spatial_resolution : 300
        orthorectification_gridspacing : 900
        mode : Normal logging
        nb_parallel_processes : 1
        """)
    assert cli.main(["--graphs", "--watch-ram", "--debug-caches", str(cfg)]) == 0
    out = capsys.readouterr().out
    (dot,) = tmp_path.glob("tasks-*.dot")
    graph = dot.read_text()
    ortho, mask = f"ortho/{STEM.format(pol='vv')}", f"mask/{STEM.format(pol='vv')}_BorderMask.tif"
    assert f'"{ortho}"' in graph and f'"{ortho}" -> "{mask}"' in graph
    assert dot.with_suffix(".svg").exists() == bool(shutil.which("dot"))  # the SVG: test_graphs_as_svg
    assert "RAM: worker" in out and "MiB" in out and "RAM: peak of worker" in out
    assert "kept in" in out and any((tmp_path / "tmp").glob("s1tiling-*"))  # the run's folder stayed
    logs.reset_logging()
    workers = sorted(p.name for p in tmp_path.glob("S1Processor-worker-*.log"))
    assert workers and any(name.endswith(".warning.log") for name in workers)


def test_graphs_as_svg(tmp_path):
    """--graphs renders the task graph as SVG with graphviz (S1Tiling's --graphs writes SVG images)."""
    if not shutil.which("dot"):
        pytest.skip("graphviz's dot is not installed (apt-get install graphviz): no SVG rendering to check")
    from s1tiling.scheduling import Task, write_task_graph

    tasks = [Task("ortho/a", print, kind="ortho"), Task("mask/a", print, deps=("ortho/a",), kind="mask")]
    dot, svg = write_task_graph(tasks, tmp_path, "tasks-test")
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and "ortho/a" in text and "mask/a" in text


def test_trace_errors_shows_tracebacks_of_failed_tasks(inputs, tmp_path, capsys):
    """--trace-errors: 'Display error full traceback, if any'."""
    broken = tmp_path / "s1_broken"
    product = build_product(inputs["template"], broken, content="speckle")
    for tiff in (product / "measurement").glob("*.tiff"):
        with open(tiff, "r+b") as stream:
            stream.truncate(tiff.stat().st_size // 3)
    cfg = _write(tmp_path / "broken.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {broken}
        dem_dir : {inputs['srtm']}
        geoid_file : {inputs['geoid']}
        [DataSource]
        polarisation : VV
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        output_spatial_resolution : 300
        """)
    # a truncated measurement is a corrupt product: exit 71 (README, exit codes)
    assert cli.main(["--debug-otb", str(cfg)]) == 71
    assert "Traceback" not in capsys.readouterr().out
    assert cli.main(["--debug-otb", "--trace-errors", str(cfg)]) == 71
    assert "Traceback (most recent call last)" in capsys.readouterr().out


def test_docker_first_argument_switch(tmp_path):
    """S1Tiling's image (docker/entrypoint.sh): '--lia' runs S1LIAMap, anything else S1Processor; we
    add '--ia' and '--gamma_area'."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "S1LIAMap").exists():
        pytest.skip(f"the console scripts are not installed beside {sys.executable} (pip install -e .)")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for switch, program in (("--lia", "S1LIAMap"), ("--ia", "S1IAMap"), ("--gamma_area", "S1GammaAreaMap"),
                            (None, "s1tiling")):
        done = subprocess.run(["sh", str(REPO / "docker" / "entrypoint.sh"), *([switch] if switch else []),
                               "--version"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{program} {__version__}"
    done = subprocess.run(["sh", str(REPO / "docker" / "entrypoint.sh"), str(tmp_path / "absent.cfg")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 72


def test_user_logging_conf_placeholders(inputs, tmp_path):
    """S1Tiling's logging.conf.yaml next to the request: '{kind} will be replaced with "main" or
    "worker-%d"', '{mode} will be replaced with ".debug" or nothing'; logging mode adds its file
    handlers to the root logger."""
    pytest.importorskip("yaml")
    (tmp_path / "logging.conf.yaml").write_text(textwrap.dedent("""
        version: 1
        disable_existing_loggers: false
        formatters:
            simple: {format: '%(levelname)s - %(message)s'}
        handlers:
            console: {class: logging.StreamHandler, level: INFO, formatter: simple, stream: ext://sys.stdout}
            file: {class: logging.FileHandler, level: INFO, formatter: simple, filename: 'S1Processor-{kind}{mode}.log', mode: w}
            important: {class: logging.FileHandler, level: WARNING, formatter: simple, filename: 'S1Processor-{kind}.warning.log', mode: w}
        loggers:
            s1tiling: {level: DEBUG, propagate: yes}
        root:
            level: INFO
            handlers: [console]
        """))
    cfg = _write(tmp_path / "S1Processor.cfg", f"""
        [Paths]
        output : {tmp_path / 'data_out'}
        s1_images : {inputs['s1_images']}
        dem_dir : {inputs['srtm']}
        [DataSource]
        first_date : {DAY}
        last_date : {DAY}
        [Processing]
        tiles : {TILE}
        output_spatial_resolution : 300
        mode : debug logging
        """)
    import logging

    try:  # a real run: a dry run writes nothing, log files included
        assert cli.main([str(cfg)]) == 0
        logging.getLogger("s1tiling.test").warning("a warning for the important file")
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)
                handler.close()
    assert (tmp_path / "S1Processor-main.debug.log").is_file()
    assert "a warning for the important file" in (tmp_path / "S1Processor-main.warning.log").read_text()


def test_missing_eodag_config_uses_eodags_default(caplog, eodag_env):  # noqa: F811
    """S1Tiling: eodag_config defaults to $EODAG_CFG_FILE > $EODAG_CFG_DIR/eodag.yml >
    ~/.config/eodag/eodag.yml; without any, EODAG's own default configuration (said in the log)."""
    import logging

    from s1tiling.download import open_gateway

    with caplog.at_level(logging.INFO, logger="s1tiling"):
        assert open_gateway(None) is not None
    assert "EODAG's own default configuration is used" in caplog.text

"""Product names and folders (INTERFACE.md "Products", S1Tiling's fname_fmt/dname_fmt)."""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from s1tiling.errors import ConfigurationError
from s1tiling.naming import (
    NameFormatter,
    TileProduct,
    acquisition_stamp,
    check_name_formats,
    parse_output_name,
    product_path,
)

T1 = datetime(2020, 1, 8, 4, 41, 50)
T2 = datetime(2020, 1, 8, 4, 42, 15)
DIRS = {"out_dir": "/out", "tmp_dir": "/tmp/s1", "lia_dir": "/out/_LIA", "ia_dir": "/out/_IA",
        "gamma_area_dir": "/out/_GAMMA_AREA"}


def product(times=(T1,), calibration="sigma", **kw):
    args = dict(flying_unit_code="S1A", tile_name="33NWB", polarisation="VV", orbit_direction="DES",
                orbit=7, acquisition_times=times, calibration=calibration)
    args.update(kw)
    return TileProduct(**args)


def test_stamp_single_and_merged():
    assert acquisition_stamp([T1]) == "20200108t044150"
    assert acquisition_stamp([T2, T1]) == "20200108txxxxxx"
    # aware datetimes and numpy datetime64 are read as UTC
    assert acquisition_stamp([datetime(2020, 1, 8, 5, 41, 50,
                                       tzinfo=timezone(timedelta(hours=1)))]) == "20200108t044150"
    assert acquisition_stamp([np.datetime64("2020-01-08T04:41:50.123456789")]) == "20200108t044150"
    with pytest.raises(ValueError):
        acquisition_stamp([])


def test_default_tile_names():
    single, merged = product(), product(times=(T2, T1))
    assert single.path(dirs=DIRS) == Path("/out/33NWB/s1a_33NWB_vv_DES_007_20200108t044150.tif")
    assert merged.path(dirs=DIRS) == Path("/out/33NWB/s1a_33NWB_vv_DES_007_20200108txxxxxx.tif")
    assert merged.path("mask", dirs=DIRS) == Path("/out/33NWB/s1a_33NWB_vv_DES_007_20200108txxxxxx_BorderMask.tif")
    assert merged.path("filtered", dirs=DIRS) == Path(
        "/out/filtered/33NWB/s1a_33NWB_vv_DES_007_20200108txxxxxx_filtered.tif")
    assert merged.path("quicklook", dirs=DIRS) == Path(
        "/out/_QL/s1a_33NWB_vv_DES_007_20200108txxxxxx_quicklook.jpg")


def test_calibration_specific_names():
    normlim = product(times=(T1, T2), calibration="normlim")
    assert normlim.path(dirs=DIRS).name == "s1a_33NWB_vv_DES_007_20200108txxxxxx_NormLim.tif"
    # S1Tiling 1.4 (libs/configuration.py, DEFAULT_FNAME_FMTS['filtered_calib']):
    # '..._{acquisition_stamp}_{calibration_type}_filtered.tif', calibration_type 'Normlim' after NORMLIM
    assert normlim.path("filtered", dirs=DIRS).name == "s1a_33NWB_vv_DES_007_20200108txxxxxx_Normlim_filtered.tif"
    # quicklooks carry no calibration suffix
    assert normlim.path("quicklook", dirs=DIRS).name == "s1a_33NWB_vv_DES_007_20200108txxxxxx_quicklook.jpg"
    rtc = product(calibration="gamma_naught_rtc", polarisation="vh")
    assert rtc.path(dirs=DIRS).name == "s1a_33NWB_vh_DES_007_20200108t044150_GammaNaughtRTC.tif"
    assert rtc.path("mask", dirs=DIRS).name == "s1a_33NWB_vh_DES_007_20200108t044150_GammaNaughtRTC_BorderMask.tif"
    # the gamma0 RTC step sets calibration_type 'GammaNaughtRTC' (S1Tiling's ApplyGammaNaughtRTCCalibration)
    assert rtc.path("filtered", dirs=DIRS).name == "s1a_33NWB_vh_DES_007_20200108t044150_GammaNaughtRTC_filtered.tif"


def test_map_names():
    fields = {"tile_name": "33NWB", "orbit": "007"}
    assert product_path("lia_product", {**fields, "LIA_kind": "LIA"}, dirs=DIRS) == Path("/out/_LIA/LIA_33NWB_007.tif")
    assert product_path("lia_product", {**fields, "LIA_kind": "sin_LIA"}, dirs=DIRS).name == "sin_LIA_33NWB_007.tif"
    assert (product_path("ia_product", {**fields, "IA_kind": "tan_IA"}, dirs=DIRS)
            == Path("/out/_IA/tan_IA_33NWB_007.tif"))
    assert product_path("gamma_area", fields, dirs=DIRS) == Path("/out/_GAMMA_AREA/GAMMA_AREA_33NWB_007.tif")


def test_overrides_with_case_conversions():
    # the example of S1Tiling's documentation
    fname = {"concatenation": "{flying_unit_code!u}_L1ORT_{tile_name}_{polarisation!u}_{calibration_type!u:.3}"
                              "_{orbit_direction}_{orbit}_{acquisition_start}.tif"}
    dname = {"tiled": "{out_dir}/{tile_name!l}/{polarisation}", "mask": "{out_dir}/masks"}
    merged = product(times=(T2, T1))
    assert merged.path(fname_fmt=fname, dname_fmt=dname, dirs=DIRS) == Path(
        "/out/33nwb/vv/S1A_L1ORT_33NWB_VV_SIG_DES_007_20200108t044150.tif")
    # the mask follows the tile's actual name, in its own folder
    assert merged.path("mask", fname, dname, DIRS) == Path(
        "/out/masks/S1A_L1ORT_33NWB_VV_SIG_DES_007_20200108t044150_BorderMask.tif")
    assert NameFormatter().format("{x!c}", x="normLIM") == "Normlim"


def test_bad_templates_are_configuration_errors():
    with pytest.raises(ConfigurationError, match=r"fname_fmt.concatenation.*\{nope\}"):
        product().path(fname_fmt={"concatenation": "{nope}.tif"}, dirs=DIRS)
    with pytest.raises(ConfigurationError, match="dname_fmt.tiled"):
        product().path(dname_fmt={"tiled": "{out_dir}/{tile_name!z}"}, dirs=DIRS)
    with pytest.raises(ConfigurationError, match="fname_fmt.bogus"):
        check_name_formats({"bogus": "x"}, {})
    with pytest.raises(ConfigurationError):
        check_name_formats({"filtered": "{rootname}_{unknown}.tif"}, {})
    check_name_formats({"filtered": "{flying_unit_code}_{tile_name}_{acquisition_stamp}_f.tif"},
                       {"quicklook": "{out_dir}/ql/{tile_name}"})


def test_parse_output_name_roundtrip():
    merged = product(times=(T2, T1), calibration="normlim")
    for kind in (None, "mask", "filtered", "quicklook"):
        parsed = parse_output_name(merged.path(kind, dirs=DIRS).name)
        assert parsed.kind == (kind or "s2_lia_corrected")
        # a quicklook's name does not say its calibration
        assert parsed.fields["tile_kind"] == ("concatenation" if kind == "quicklook" else "s2_lia_corrected")
        assert parsed.fields["merged"] is True
        assert parsed.fields["acquisition_stamp"] == "20200108txxxxxx"
        assert parsed.fields["orbit"] == "007" and parsed.fields["polarisation"] == "vv"
    assert parse_output_name("s1a_33NWB_vh_DES_007_20200108t044150.tif").kind == "concatenation"
    assert parse_output_name("sin_LIA_33NWB_007.tif") == ("lia_product", {"LIA_kind": "sin_LIA",
                                                                          "tile_name": "33NWB", "orbit": "007"})
    assert parse_output_name("cos_IA_33NWB_007.tif").kind == "ia_product"
    assert parse_output_name(".s1a_33NWB_vh_DES_007_20200108t044150.vm.12.0123456789ab.tmp.tif") is None
    assert parse_output_name("readme.txt") is None

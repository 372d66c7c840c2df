"""Request file loading: defaults, types, interpolation, warnings and collected errors."""
import datetime
import logging
import pickle
import re
import sys
import types
from pathlib import Path

import pytest

from s1tiling.config import load_config
from s1tiling.errors import ConfigurationError, ExitCode

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "S1Processor.cfg"


@pytest.fixture(autouse=True)
def tile_grid(monkeypatch):
    """Uses s1tiling.grid when available, else a stand-in accepting well-formed MGRS names."""
    try:
        from s1tiling.grid import is_valid_tile_name  # noqa: F401
    except ImportError:
        fake = types.ModuleType("s1tiling.grid")
        fake.is_valid_tile_name = lambda name: bool(
            re.fullmatch(r"(0[1-9]|[1-5]\d|60)[C-HJ-NP-X][A-HJ-NP-Z][A-HJ-NP-V]", name))
        monkeypatch.setitem(sys.modules, "s1tiling.grid", fake)


def write_request(tmp_path, changes=None, drop=(), extra=""):
    """Writes a minimal valid request file; ``changes`` = {section: {key: value}}."""
    sections = {
        "Paths": {"output": str(tmp_path / "out"), "s1_images": str(tmp_path / "raw"),
                  "dem_dir": str(tmp_path / "SRTM_30_hgt")},
        "DataSource": {"first_date": "2020-01-01", "last_date": "2020-01-31"},
        "Processing": {"tiles": "33NWB"},
    }
    for section, keys in (changes or {}).items():
        sections.setdefault(section, {}).update(keys)
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} : {value}" for key, value in keys.items() if (section, key) not in drop]
    path = tmp_path / "request.cfg"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def error_lines(path):
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert info.value.exit_code == ExitCode.CONFIG_ERROR == 72
    return str(info.value).splitlines()[1:]


def test_minimal_file_gets_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("EODAG_CFG_FILE", raising=False)
    monkeypatch.setenv("EODAG_CFG_DIR", str(tmp_path / "eodag"))
    s = load_config(write_request(tmp_path))
    out = tmp_path / "out"
    assert s.config_file == tmp_path / "request.cfg" and s.config_dir == tmp_path
    assert s.paths.output == out and out.is_dir()
    assert s.paths.s1_images == tmp_path / "raw"
    assert s.paths.dem_dir == tmp_path / "SRTM_30_hgt"
    assert s.paths.dem_format == "{id}.hgt" and s.paths.dem_info == "SRTM_30_hgt"
    assert (s.paths.eof_dir, s.paths.ia, s.paths.lia, s.paths.gamma_area) == (
        out / "_EOF", out / "_IA", out / "_LIA", out / "_GAMMA_AREA")
    assert s.paths.geoid_file is None and s.paths.dem_database is None
    assert s.paths.tmp.is_dir()

    ds = s.data_source
    assert (ds.first_date, ds.last_date) == (datetime.date(2020, 1, 1), datetime.date(2020, 1, 31))
    assert ds.download is False and ds.roi_by_tiles == "ALL"
    # no file at EODAG's default place: EODAG's own default configuration, as S1Tiling
    assert ds.eodag_config is None
    (tmp_path / "eodag").mkdir()
    (tmp_path / "eodag" / "eodag.yml").write_text("{}\n")
    assert load_config(write_request(tmp_path)).data_source.eodag_config == tmp_path / "eodag" / "eodag.yml"
    # no platform filter by default (S1Tiling: "By default (when left unspecified), no filter is applied")
    assert ds.platform_list == () and ds.polarisation == "VV-VH"
    assert ds.orbit_direction is None and ds.relative_orbit_list == ()
    assert (ds.nb_parallel_downloads, ds.tile_to_product_overlap_ratio) == (2, 0)
    assert (ds.offline_timeout, ds.offline_poll_interval, ds.download_keep) == (120, 60, 1000)

    p = s.processing
    assert p.tiles == ("33NWB",) and p.engine == "native" and p.calibration == "sigma"
    assert p.remove_thermal_noise is True and p.lower_signal_value == 1e-7
    assert p.output_spatial_resolution == 10.0 and p.orthorectification_gridspacing == 40
    assert p.orthorectification_interpolation_method == "nn" and p.mode == frozenset({"normal"})
    assert (p.nb_parallel_processes, p.ram_per_process, p.nb_otb_threads) == (1, 4096, 1)
    assert p.cache_dem_by == "symlink" and p.override_azimuth_cut_threshold_to is None
    assert p.produce_lia_map is False and p.ia_maps_to_produce == ()
    assert dict(p.nodata) == dict(p.fname_fmt) == dict(p.dname_fmt) == dict(p.creation_options) == {}

    assert s.mask.generate_border_mask is False
    q = s.quicklook
    assert (q.generate, q.ratio, q.scale_vv, q.scale_vh, q.scale_hh, q.scale_hv) == (False, 5, 0.5, 0.05, 0.5, 0.5)
    f = s.filtering
    assert (f.filter, f.window_radius, f.deramp, f.nblooks, f.keep_non_filtered_products) == ("none", 2, 0.1, 1.0, True)
    c = s.cluster
    assert (c.scheduler, c.jobs, c.address, c.cores, c.memory) == ("local", (1, 1), None, None, None)
    assert (c.worker_timeout, c.dashboard_address, c.log_directory) == (600.0, None, None)
    assert dict(s.metadata) == {}


def test_values_are_typed_and_normalised(tmp_path):
    s = load_config(write_request(tmp_path, {
        "Paths": {"tmp": str(tmp_path / "tmp"), "geoid_file": str(tmp_path / "egm96.gtx"), "dem_info": "SRTM 1 arcsec"},
        "DataSource": {"download": "yes", "platform_list": "s1a, S1C", "polarisation": "hh-hv",
                       "orbit_direction": "DSC", "relative_orbit_list": "7, 80 7",
                       "roi_by_tiles": "33NWB", "tile_to_product_overlap_ratio": "50.5",
                       "nb_parallel_processes": "3"},
        "Processing": {"tiles": " t33nwb, 31TCH 33NWB", "calibration": "NormLim", "mode": "debug logging",
                       "output_spatial_resolution": "20.", "override_azimuth_cut_threshold_to": "False",
                       "orthorectification_interpolation_method": "linear", "ia_maps_to_produce": "deg, tan",
                       "nodata.IA": "-32768", "nodata.lia": "0", "engine": "Native",
                       "fname_fmt.concatenation": "{tile_name}_{orbit}.tif",
                       "dname_fmt.tiled": "{out_dir}/{tile_name}",
                       "creation_options.mask": "uint8 COMPRESS=DEFLATE",
                       "creation_options.tiled": "COMPRESS=DEFLATE&gdal:co:PREDICTOR=3",
                       "creation_options.s1_on_dem": "float COMPRESS=DEFLATE, BIGTIFF=YES, TILED=YES"},
        "Filtering": {"filter": "Lee", "window_radius": "3", "nblooks": "4"},
        "Cluster": {"scheduler": "slurm", "cores": "8", "memory": "32 GiB", "jobs": "4",
                    "job_extra_directives": "--qos=normal\n    --mail-type=END,FAIL\n    --exclude=n1,n2",
                    "walltime": "02:00:00", "worker_timeout": "30", "dashboard_address": "0.0.0.0:8787"},
        "Metadata": {"Contact": "Me <me@here.eu>", "Accuracy": "95%"},
    }))
    ds, p = s.data_source, s.processing
    assert s.paths.tmp == tmp_path / "tmp" and (tmp_path / "tmp").is_dir()
    assert s.paths.geoid_file == tmp_path / "egm96.gtx" and s.paths.dem_info == "SRTM 1 arcsec"
    assert (tmp_path / "raw").is_dir()  # created because download is on
    assert ds.download is True and ds.platform_list == ("S1A", "S1C") and ds.polarisation == "HH-HV"
    assert ds.orbit_direction == "DES" and ds.relative_orbit_list == (7, 80)
    assert ds.roi_by_tiles == ("33NWB",) and ds.tile_to_product_overlap_ratio == 50.5
    assert ds.nb_parallel_downloads == 3  # deprecated [DataSource] nb_parallel_processes
    assert p.tiles == ("33NWB", "31TCH") and p.calibration == "normlim" and p.engine == "native"
    assert p.mode == frozenset({"debug", "logging"}) and p.output_spatial_resolution == 20.0
    assert p.override_azimuth_cut_threshold_to is False
    assert p.orthorectification_interpolation_method == "linear" and p.ia_maps_to_produce == ("deg", "tan")
    assert dict(p.nodata) == {"IA": -32768.0, "LIA": 0.0}
    assert dict(p.fname_fmt) == {"concatenation": "{tile_name}_{orbit}.tif"}
    assert dict(p.dname_fmt) == {"tiled": "{out_dir}/{tile_name}"}
    assert dict(p.creation_options) == {
        "mask": ("uint8", ("COMPRESS=DEFLATE",)),
        "tiled": (None, ("COMPRESS=DEFLATE", "PREDICTOR=3")),
        "s1_on_dem": ("float32", ("COMPRESS=DEFLATE", "BIGTIFF=YES", "TILED=YES")),
    }
    assert (s.filtering.filter, s.filtering.window_radius, s.filtering.nblooks) == ("lee", 3, 4.0)
    c = s.cluster
    assert (c.scheduler, c.cores, c.memory, c.jobs, c.walltime) == ("slurm", 8, "32 GiB", (4, 4), "02:00:00")
    # one directive per line, never split on its commas
    assert c.job_extra_directives == ("--qos=normal", "--mail-type=END,FAIL", "--exclude=n1,n2")
    assert (c.worker_timeout, c.dashboard_address) == (30.0, "0.0.0.0:8787")
    assert dict(s.metadata) == {"Contact": "Me <me@here.eu>", "Accuracy": "95%"}


@pytest.mark.parametrize("text, expected", [("True", True), ("false", False), ("None", None), ("", None)])
def test_override_azimuth_cut_threshold_is_tri_state(tmp_path, text, expected):
    s = load_config(write_request(tmp_path, {"Processing": {"override_azimuth_cut_threshold_to": text}}))
    assert s.processing.override_azimuth_cut_threshold_to is expected


def test_settings_are_immutable_and_picklable(tmp_path):
    s = load_config(write_request(tmp_path, {"Processing": {"nodata.RTC": "0"}, "Metadata": {"k": "v"}}))
    with pytest.raises(AttributeError):
        s.processing.calibration = "beta"
    with pytest.raises(TypeError):
        s.processing.nodata["RTC"] = 1.0
    with pytest.raises(TypeError):
        s.metadata["k"] = "w"
    assert pickle.loads(pickle.dumps(s)) == s
    hash(s)


def test_tiles_list_in_file(tmp_path):
    (tmp_path / "tiles.txt").write_text("33NWB\n\n# a comment\n31tch\n", encoding="utf-8")
    path = write_request(tmp_path, {"Processing": {"tiles_list_in_file": str(tmp_path / "tiles.txt")}},
                         drop={("Processing", "tiles")})
    assert load_config(path).processing.tiles == ("33NWB", "31TCH")


def test_tiles_list_file_errors(tmp_path):
    missing = tmp_path / "nope.txt"
    path = write_request(tmp_path, {"Processing": {"tiles_list_in_file": str(missing)}}, drop={("Processing", "tiles")})
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: [Processing] tiles_list_in_file = '{missing}': cannot read the tile list")
    (tmp_path / "bad.txt").write_text("33NWB\nXX123\n", encoding="utf-8")
    path = write_request(tmp_path, {"Processing": {"tiles_list_in_file": str(tmp_path / "bad.txt")}},
                         drop={("Processing", "tiles")})
    (line,) = error_lines(path)
    assert "[Processing] tiles_list_in_file" in line and "XX123" in line


def test_environment_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("S1_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = load_config(write_request(tmp_path, {
        "Paths": {"output": "%(S1_DATA)s/out", "s1_images": "%(HOME)s/raw", "eof_dir": "%(output)s/orbits"},
        "Metadata": {"Ratio": "100%% sure", "Note": "50% done", "Where": "%(S1_DATA)s"},
    }))
    assert s.paths.output == tmp_path / "data" / "out"
    assert s.paths.s1_images == tmp_path / "home" / "raw"
    assert s.paths.eof_dir == tmp_path / "data" / "out" / "orbits"
    assert dict(s.metadata) == {"Ratio": "100% sure", "Note": "50% done", "Where": str(tmp_path / "data")}


def test_home_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    s = load_config(write_request(tmp_path, {"Paths": {"output": "~/o"}}))
    assert s.paths.output == tmp_path / "o"


def test_undefined_environment_variable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("S1_NOWHERE", raising=False)
    path = write_request(tmp_path, {"Paths": {"output": "%(S1_NOWHERE)s/out"}})
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: [Paths] output = '%(S1_NOWHERE)s/out': ")
    assert "S1_NOWHERE" in line.split(": ", 2)[2]


def test_unknown_sections_and_keys_are_warnings(tmp_path, caplog):
    # border_threshold: a key of S1Tiling 0.x request files, far from any known key
    path = write_request(tmp_path, {"Processing": {"border_threshold": "1e-3", "thermal_noise": "False"},
                                    "Foo": {"bar": "1"}})
    with caplog.at_level(logging.WARNING, logger="s1tiling"):
        s = load_config(path)
    assert s.processing.remove_thermal_noise is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and "[Processing] border_threshold" in w and "unknown" in w
               and "did you mean" not in w for w in warnings)
    assert any("[Processing] thermal_noise: unknown key, ignored (did you mean remove_thermal_noise?)" in w
               for w in warnings)
    assert any(str(path) in w and "[Foo]" in w and "unknown" in w for w in warnings)


@pytest.mark.parametrize("changes, key, meant", [
    ({"Processing": {"output_spatial_resolutoin": "20"}}, "[Processing] output_spatial_resolutoin",
     "output_spatial_resolution"),
    ({"Processing": {"calibraton": "beta"}}, "[Processing] calibraton", "calibration"),
    ({"Mask": {"generate_border_masks": "True"}}, "[Mask] generate_border_masks", "generate_border_mask"),
    ({"Processing": {"fnme_fmt.concatenation": "{tile_name}.tif"}}, "[Processing] fnme_fmt.concatenation",
     "fname_fmt"),
    ({"Processsing": {"calibration": "beta"}}, "[Processsing]:", "Processing"),
])
def test_a_close_misspelling_is_an_error(tmp_path, changes, key, meant):
    """The default would be used silently: a wrong run with exit 0 (issue 12 #7)."""
    (line,) = error_lines(write_request(tmp_path, changes))
    assert line.startswith(f"{tmp_path / 'request.cfg'}: {key}") and f"did you mean {meant}?" in line


def test_strict_turns_unknown_keys_into_errors(tmp_path):
    changes = {"Processing": {"border_threshold": "1e-3", "strict": "True"}, "Foo": {"bar": "1"}}
    lines = error_lines(write_request(tmp_path, changes))
    assert len(lines) == 2
    assert "[Processing] border_threshold: unknown key (strict = True)" in lines[1 if "Foo" in lines[0] else 0]
    assert any("[Foo]: unknown section (strict = True)" in line for line in lines)
    assert load_config(write_request(tmp_path, {"Processing": {"strict": "True"}})).processing.strict is True


def test_an_empty_reference_in_a_path_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("S1_EMPTY", "")
    path = write_request(tmp_path, {"Paths": {"output": "%(S1_EMPTY)s/out"}})
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: [Paths] output = '%(S1_EMPTY)s/out': %(S1_EMPTY)s expands to nothing")
    assert "'/out'" in line
    assert not Path("/out").exists() or Path("/out").stat().st_mtime < path.stat().st_mtime


def test_relative_paths_are_from_the_current_directory(tmp_path, monkeypatch):
    """As in S1Tiling; but one that exists only from the request file's folder is an error saying so."""
    request_dir, elsewhere = tmp_path / "requests", tmp_path / "cwd"
    (request_dir / "dem").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write_request(tmp_path, {"Paths": {"output": "out", "dem_dir": "dem"}})
    path = path.rename(request_dir / "request.cfg")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: [Paths] dem_dir = 'dem': relative paths are relative to the current directory "
                           f"({elsewhere})")
    assert f"{elsewhere / 'dem'} does not exist, while {request_dir / 'dem'}" in line
    (elsewhere / "dem").mkdir()
    s = load_config(path)
    assert s.paths.dem_dir == elsewhere / "dem" and s.paths.output == elsewhere / "out"
    assert "[Paths] output" in s.folders() and all(p.is_absolute() for p in s.folders().values())


@pytest.mark.parametrize("paths, key, expected", [
    ({"output": "/"}, "output", "not the root of the file system"),
    ({"tmp": "{out}"}, "tmp", "same folder as [Paths] output"),
    ({"s1_images": "{out}/"}, "s1_images", "same folder as [Paths] output"),
    ({"tmp": "{raw}", "s1_images": "{raw}"}, "s1_images", "same folder as [Paths] tmp"),
])
def test_output_tmp_and_s1_images_are_distinct_folders(tmp_path, paths, key, expected):
    values = {k: v.format(out=tmp_path / "out", raw=tmp_path / "raw") for k, v in paths.items()}
    path = write_request(tmp_path, {"Paths": values})
    lines = [line for line in error_lines(path) if f"[Paths] {key} " in line]
    assert len(lines) == 1 and expected in lines[0]


def test_resolution_must_divide_the_tile(tmp_path):
    path = write_request(tmp_path, {"Processing": {"output_spatial_resolution": "7"}})
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: [Processing] output_spatial_resolution = '7': ")
    assert "does not divide 109800 m" in line


def test_without_creating_directories_nothing_is_written(tmp_path):
    path = write_request(tmp_path)
    s = load_config(path, create_directories=False)
    assert s.paths.output == tmp_path / "out" and not (tmp_path / "out").exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    (line,) = error_lines_without_creating(write_request(tmp_path, {"Paths": {"output": str(blocker / "out")}}))
    assert "[Paths] output" in line and "cannot create the directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "request.cfg"]


def error_lines_without_creating(path):
    with pytest.raises(ConfigurationError) as info:
        load_config(path, create_directories=False)
    return str(info.value).splitlines()[1:]


def test_srtm_is_a_deprecated_alias_of_dem_dir(tmp_path, caplog):
    path = write_request(tmp_path, {"Paths": {"srtm": str(tmp_path / "SRTM")}}, drop={("Paths", "dem_dir")})
    with caplog.at_level(logging.WARNING, logger="s1tiling"):
        s = load_config(path)
    assert s.paths.dem_dir == tmp_path / "SRTM" and s.paths.dem_info == "SRTM"
    assert any("srtm" in r.getMessage() and "deprecated" in r.getMessage() for r in caplog.records)


def test_section_names_are_case_insensitive(tmp_path):
    path = write_request(tmp_path)
    path.write_text(path.read_text().replace("[Paths]", "[PATHS]").replace("tiles :", "Tiles :"))
    assert load_config(path).processing.tiles == ("33NWB",)


@pytest.mark.parametrize("section, key", [
    ("Paths", "output"), ("Paths", "s1_images"), ("Paths", "dem_dir"),
    ("DataSource", "first_date"), ("DataSource", "last_date"), ("Processing", "tiles"),
])
def test_missing_mandatory_key(tmp_path, section, key):
    path = write_request(tmp_path, drop={(section, key)})
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: [{section}] {key}: mandatory key is missing")


# (changes, section, key, value, words expected in the explanation)
WRONG_VALUES = [
    ({"Processing": {"nb_parallel_processes": "two"}}, "Processing", "nb_parallel_processes", "two", "integer"),
    ({"Processing": {"ram_per_process": "0"}}, "Processing", "ram_per_process", "0", "integer >= 1"),
    ({"Processing": {"output_spatial_resolution": "ten"}}, "Processing", "output_spatial_resolution", "ten",
     "number > 0"),
    ({"Processing": {"remove_thermal_noise": "maybe"}}, "Processing", "remove_thermal_noise", "maybe", "boolean"),
    ({"Processing": {"calibration": "sigma0"}}, "Processing", "calibration", "sigma0", "sigma, beta, gamma"),
    ({"Processing": {"orthorectification_interpolation_method": "cubic"}}, "Processing",
     "orthorectification_interpolation_method", "cubic", "nn, linear, bco"),
    ({"Processing": {"mode": "verbose"}}, "Processing", "mode", "verbose", "Normal, debug, logging"),
    ({"Processing": {"nodata.FOO": "0"}}, "Processing", "nodata.FOO", "0", "nodata.IA, nodata.LIA, nodata.RTC"),
    ({"Processing": {"creation_options.tiled": "int12 COMPRESS=LZW"}}, "Processing", "creation_options.tiled",
     "int12 COMPRESS=LZW", "pixel type"),
    ({"Processing": {"fname_fmt.concatenation": "{tile_name.tif"}}, "Processing", "fname_fmt.concatenation",
     "{tile_name.tif", "format string"),
    ({"DataSource": {"polarisation": "VV+VH"}}, "DataSource", "polarisation", "VV+VH", "VV-VH"),
    ({"DataSource": {"orbit_direction": "NORTH"}}, "DataSource", "orbit_direction", "NORTH", "ASC, DES"),
    ({"DataSource": {"platform_list": "S1A, S2A"}}, "DataSource", "platform_list", "S1A, S2A", "S1A, S1B, S1C, S1D"),
    ({"DataSource": {"relative_orbit_list": "7, 176"}}, "DataSource", "relative_orbit_list", "7, 176", "in 1..175"),
    ({"DataSource": {"tile_to_product_overlap_ratio": "101"}}, "DataSource", "tile_to_product_overlap_ratio",
     "101", "<= 100"),
    ({"DataSource": {"first_date": "2020/01/01"}}, "DataSource", "first_date", "2020/01/01", "YYYY-MM-DD"),
    ({"DataSource": {"last_date": "2020-02-30"}}, "DataSource", "last_date", "2020-02-30", "not a valid date"),
    ({"DataSource": {"first_date": "2020-03-01"}}, "DataSource", "last_date", "2020-01-31", "not before first_date"),
    ({"Processing": {"tiles": "33NWB, 99ZZZ"}}, "Processing", "tiles", "33NWB, 99ZZZ", "99ZZZ"),
    ({"DataSource": {"roi_by_tiles": "XYZ"}}, "DataSource", "roi_by_tiles", "XYZ", "XYZ"),
    ({"Filtering": {"filter": "median"}}, "Filtering", "filter", "median", "lee, frost"),
    ({"Quicklook": {"ratio": "0"}}, "Quicklook", "ratio", "0", "> 0"),
    ({"Cluster": {"scheduler": "sge"}}, "Cluster", "scheduler", "sge", "local, slurm, pbs, address"),
    ({"Cluster": {"memory": "lots"}}, "Cluster", "memory", "lots", "memory"),
    ({"Cluster": {"jobs": "20-2"}}, "Cluster", "jobs", "20-2", "range MIN-MAX"),
    ({"Cluster": {"jobs": "0"}}, "Cluster", "jobs", "0", "jobs >= 1"),
    ({"Cluster": {"walltime": "4h"}}, "Cluster", "walltime", "4h", "HH:MM:SS"),
    ({"Cluster": {"worker_timeout": "0"}}, "Cluster", "worker_timeout", "0", "> 0"),
    ({"Cluster": {"dashboard_address": "every:where"}}, "Cluster", "dashboard_address", "every:where", "HOST:PORT"),
    ({"Cluster": {"job_extra_directives": "['--qos=normal', 3]"}}, "Cluster", "job_extra_directives",
     "['--qos=normal', 3]", "one directive per line"),
]


@pytest.mark.parametrize("changes, section, key, value, expected", WRONG_VALUES,
                         ids=[f"{w[1]}.{w[2]}={w[3]}" for w in WRONG_VALUES])
def test_wrong_value_names_file_section_key_and_value(tmp_path, changes, section, key, value, expected):
    path = write_request(tmp_path, changes)
    (line,) = error_lines(path)
    prefix = f"{path}: [{section}] {key} = {value!r}: "
    assert line.startswith(prefix), line
    assert expected in line[len(prefix):]


def test_address_scheduler_needs_an_address(tmp_path):
    (line,) = error_lines(write_request(tmp_path, {"Cluster": {"scheduler": "address"}}))
    assert "[Cluster] address" in line and "mandatory" in line


def test_all_errors_are_reported_at_once(tmp_path):
    path = write_request(tmp_path, {
        "Processing": {"nb_parallel_processes": "x", "calibration": "foo", "tiles": "ABC"},
        "DataSource": {"first_date": "yesterday"},
    }, drop={("Paths", "output")})
    lines = error_lines(path)
    assert len(lines) == 5
    for fragment in ("[Processing] nb_parallel_processes = 'x'", "[Processing] calibration = 'foo'",
                     "[Processing] tiles = 'ABC'", "[DataSource] first_date = 'yesterday'", "[Paths] output:"):
        assert sum(fragment in line for line in lines) == 1, fragment
    assert all(line.startswith(f"{path}: [") for line in lines)


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigurationError, match="nope.cfg: cannot read"):
        load_config(tmp_path / "nope.cfg")
    bad = tmp_path / "bad.cfg"
    bad.write_text("output = /tmp\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="bad.cfg: not a valid INI"):
        load_config(bad)


def test_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    path = write_request(tmp_path, {"Paths": {"output": str(blocker / "out"), "tmp": str(blocker)}})
    lines = error_lines(path)
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: [Paths] output = '{blocker / 'out'}': cannot create the directory")
    assert lines[1].startswith(f"{path}: [Paths] tmp = '{blocker}': cannot create the directory")


def test_s1_images_is_created_only_when_downloading(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    load_config(write_request(tmp_path, {"Paths": {"s1_images": str(blocker / "raw")}}))
    (line,) = error_lines(write_request(tmp_path, {"Paths": {"s1_images": str(blocker / "raw")},
                                                   "DataSource": {"download": "True"}}))
    assert "[Paths] s1_images" in line and "cannot create the directory" in line


def test_example_request_file_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    s = load_config(EXAMPLE)
    assert s.processing.tiles == ("33NWB",)
    assert s.paths.output == tmp_path / "s1tiling" / "data_out" and s.paths.output.is_dir()
    assert s.data_source.first_date == datetime.date(2020, 1, 1)

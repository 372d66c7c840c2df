"""Request file (S1Processor.cfg, INI) loading and validation.

:func:`load_config` reads the file, checks every key and returns an immutable
:class:`Settings`.  All the problems found are reported at once in one
:class:`~s1tiling.errors.ConfigurationError`, one line per problem:
``<file>: [Section] key = 'value': <what was expected>``.
Unknown sections and keys are logged as warnings.

Values may reference environment variables (or other keys of the same section)
as ``%(NAME)s``; ``%%`` is a literal ``%`` and any other ``%`` is kept as is.
"""
from __future__ import annotations

import configparser
import dataclasses
import datetime
import logging
import os
import re
import string
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigurationError
from .grid import for_tile_file

logger = logging.getLogger(__name__)

_LIST_SEPARATOR = re.compile(r"[\s,]+")
_REFERENCE = re.compile(r"%(?:%|\(([^()]*)\)s)")
_MAX_INTERPOLATION_DEPTH = 10
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([kKMGTP]i?)?B?")

PIXEL_TYPES = {
    "uint8": "uint8", "int8": "int8", "uint16": "uint16", "int16": "int16",
    "uint32": "uint32", "int32": "int32", "uint64": "uint64", "int64": "int64",
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
}
GDAL_RESAMPLINGS = ("near", "bilinear", "cubic", "cubicspline", "lanczos", "average", "rms",
                    "mode", "max", "min", "med", "q1", "q3", "sum")


class FrozenMap(Mapping):
    """Read-only, hashable and picklable mapping (settings travel to dask workers)."""

    __slots__ = ("_data",)

    def __init__(self, data=()):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


# ---------------------------------------------------------------- value parsers
# A parser turns the text of a value into a Python value, or raises ValueError
# whose message says what was expected.

def _text(value: str) -> str:
    return value.strip()


def _optional_text(value: str) -> str | None:
    return value.strip() or None


def _path(value: str) -> Path:
    if not value.strip():
        raise ValueError("expected a path")
    return Path(value.strip()).expanduser().absolute()


def _optional_path(value: str) -> Path | None:
    return _path(value) if value.strip() else None


def _boolean(value: str) -> bool:
    state = configparser.ConfigParser.BOOLEAN_STATES.get(value.strip().lower())
    if state is None:
        raise ValueError("expected a boolean (True/False, yes/no, on/off, 1/0)")
    return state


def _optional_boolean(value: str) -> bool | None:
    if value.strip().lower() in ("", "none"):
        return None
    try:
        return _boolean(value)
    except ValueError:
        raise ValueError("expected True, False or None") from None


def _number(kind: type, minimum=None, maximum=None, *, strict_minimum=False) -> Callable[[str], Any]:
    name = "an integer" if kind is int else "a number"
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if strict_minimum else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = f"expected {name}" + (f" {' and '.join(bounds)}" if bounds else "")

    def parse(value: str):
        try:
            number = kind(value.strip())
        except ValueError:
            raise ValueError(expected) from None
        too_small = minimum is not None and (number <= minimum if strict_minimum else number < minimum)
        if number != number or too_small or (maximum is not None and number > maximum):
            raise ValueError(expected)
        return number
    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda value: parse(value) if value.strip() else None


def _choice(*choices: str, aliases: Mapping[str, str] | None = None,
            normalize: Callable[[str], str] = str.lower) -> Callable[[str], str]:
    table = {normalize(c): c for c in choices}
    table.update({normalize(k): v for k, v in (aliases or {}).items()})

    def parse(value: str) -> str:
        try:
            return table[normalize(value.strip())]
        except KeyError:
            raise ValueError(f"expected one of {', '.join(choices)}") from None
    return parse


def _split(value: str) -> list[str]:
    return [item for item in _LIST_SEPARATOR.split(value.strip()) if item]


def _list_of(parse_item: Callable[[str], Any]) -> Callable[[str], tuple]:
    def parse(value: str) -> tuple:
        items = []
        for item in _split(value):
            parsed = parse_item(item)
            if parsed not in items:
                items.append(parsed)
        return tuple(items)
    return parse


def _date(value: str) -> datetime.date:
    text = value.strip()
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None


def _format_string(value: str) -> str:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError:
        raise ValueError("expected a Python format string such as '{tile_name}_{orbit}.tif'") from None
    if any(name == "" or name.isdigit() for name in fields):
        raise ValueError("expected named fields only, such as {tile_name}")
    return value.strip()


def _dem_format(value: str) -> str:
    value = _format_string(value)
    if not any(name for _, name, _, _ in string.Formatter().parse(value)):
        raise ValueError("expected a file name pattern with at least one field, such as '{id}.hgt'")
    return value


def _mode(value: str) -> frozenset:
    modes = _list_of(_choice("Normal", "debug", "logging"))(value)
    if not modes:
        raise ValueError("expected Normal, debug and/or logging")
    return frozenset(m.lower() for m in modes)


def _memory(value: str) -> str | None:
    text = value.strip()
    if text and not _MEMORY.fullmatch(text):
        raise ValueError("expected an amount of memory such as '16GB' or '64 GiB'")
    return text or None


def canonical_tile_name(name: str) -> str:
    """'t33nwb' -> '33NWB' (upper case, optional leading 'T' removed)."""
    name = name.strip().upper()
    return name[1:] if re.fullmatch(r"T\d{1,2}[A-Z]{3}", name) else name


def _tiles(value: str) -> tuple[str, ...]:
    """Tile names; whether the run's grid has them is checked by :func:`_check_tile_names`."""
    names = _list_of(canonical_tile_name)(value)
    if not names:
        raise ValueError("expected a comma separated list of Sentinel-2 tile names such as 33NWB")
    return names


def _roi(value: str):
    return "ALL" if value.strip().upper() == "ALL" else _tiles(value)


def _creation_options(value: str) -> tuple[str | None, tuple[str, ...]]:
    """'uint16 COMPRESS=DEFLATE, PREDICTOR=2' -> ('uint16', ('COMPRESS=DEFLATE', 'PREDICTOR=2')).

    The OTB extended file name syntax ``COMPRESS=DEFLATE&gdal:co:PREDICTOR=3`` is also accepted.
    """
    tokens = _split(value.replace("&gdal:co:", " "))
    pixel_type = None
    if tokens and "=" not in tokens[0]:
        pixel_type = PIXEL_TYPES.get(tokens.pop(0).lower())
        if pixel_type is None:
            raise ValueError(f"expected an optional pixel type ({', '.join(PIXEL_TYPES)}) "
                             "followed by GDAL creation options KEY=VALUE")
    if any(not re.fullmatch(r"[A-Za-z0-9_]+=\S+", t) for t in tokens):
        raise ValueError("expected GDAL creation options as KEY=VALUE, separated by commas or spaces")
    return pixel_type, tuple(tokens)


def _option(parse: Callable[[str], Any], default: Any = None, **metadata) -> Any:
    """A settings field read from the key of the same name."""
    return field(default=default, metadata={"parse": parse, **metadata})


def _group(parse: Callable[[str], Any], kinds: tuple[str, ...] = ()) -> Any:
    """A settings field gathering the dotted keys ``<field>.<kind>`` into a mapping."""
    return field(default_factory=FrozenMap, metadata={"group": parse, "kinds": kinds})


# ---------------------------------------------------------------- sections

@dataclass(frozen=True)
class PathsSettings:
    """[Paths]; ``None`` defaults are resolved by :func:`load_config`."""

    s1_images: Path = _option(_path)
    output: Path = _option(_path)
    dem_dir: Path = _option(_path)
    tmp: Path = _option(_path)
    dem_database: Path | None = _option(_optional_path)
    dem_format: str = _option(_dem_format, "{id}.hgt")
    dem_info: str = _option(_text)
    geoid_file: Path | None = _option(_optional_path)
    eof_dir: Path = _option(_path)
    ia: Path = _option(_path)
    lia: Path = _option(_path)
    gamma_area: Path = _option(_path)


@dataclass(frozen=True)
class DataSourceSettings:
    """[DataSource]."""

    first_date: datetime.date = _option(_date)
    last_date: datetime.date = _option(_date)
    download: bool = _option(_boolean, False)
    eodag_config: Path = _option(_path)
    nb_parallel_downloads: int = _option(_number(int, 1), 2)
    roi_by_tiles: str | tuple[str, ...] = _option(_roi, "ALL")
    platform_list: tuple[str, ...] = _option(
        _list_of(_choice("S1A", "S1B", "S1C", normalize=str.upper)), ("S1A", "S1B", "S1C"))
    polarisation: str = _option(
        _choice("VV-VH", "HH-HV", "VV", "VH", "HH", "HV", normalize=str.upper), "VV-VH")
    orbit_direction: str | None = _option(
        _optional(_choice("ASC", "DES", aliases={"DSC": "DES"}, normalize=str.upper)))
    relative_orbit_list: tuple[int, ...] = _option(_list_of(_number(int, 1, 175)), ())
    tile_to_product_overlap_ratio: float = _option(_number(float, 0, 100), 0.0)
    offline_timeout: int = _option(_number(int, 0), 120)
    offline_poll_interval: int = _option(_number(int, 1), 60)
    download_keep: int = _option(_number(int, 1), 1000)


@dataclass(frozen=True)
class ProcessingSettings:
    """[Processing]; dotted keys (``nodata.LIA``...) are gathered in mappings."""

    tiles: tuple[str, ...] = _option(_tiles)
    tiles_list_in_file: Path | None = _option(_optional_path)
    engine: str = _option(_choice("native", "otb"), "native")
    calibration: str = _option(
        _choice("sigma", "beta", "gamma", "dn", "normlim", "gamma_naught_rtc"), "sigma")
    remove_thermal_noise: bool = _option(_boolean, True)
    lower_signal_value: float = _option(_number(float, 0, strict_minimum=True), 1e-7)
    output_spatial_resolution: float = _option(_number(float, 0, strict_minimum=True), 10.0)
    orthorectification_gridspacing: float = _option(_number(float, 0, strict_minimum=True), 40.0)
    orthorectification_interpolation_method: str = _option(_choice("nn", "linear", "bco"), "nn")
    tiles_shapefile: Path | None = _option(_optional_path)
    mode: frozenset = _option(_mode, frozenset({"normal"}))
    nb_parallel_processes: int = _option(_number(int, 1), 1)
    ram_per_process: int = _option(_number(int, 1), 4096)
    nb_otb_threads: int = _option(_number(int, 1), 1)
    cache_dem_by: str = _option(_choice("symlink", "copy"), "symlink")
    override_azimuth_cut_threshold_to: bool | None = _option(_optional_boolean)
    cache_before_ortho: bool = _option(_boolean, False)
    output_format: str = _option(_choice("GTiff", "COG", aliases={"GeoTIFF": "GTiff", "tif": "GTiff"}), "GTiff")
    produce_lia_map: bool = _option(_boolean, False)
    ia_maps_to_produce: tuple[str, ...] = _option(_list_of(_choice("deg", "cos", "sin", "tan")), ())
    dem_warp_resampling_method: str = _option(_choice(*GDAL_RESAMPLINGS), "cubic")
    nodata: Mapping[str, float] = _group(_number(float), kinds=("IA", "LIA", "RTC"))
    fname_fmt: Mapping[str, str] = _group(_format_string)
    dname_fmt: Mapping[str, str] = _group(_format_string)
    creation_options: Mapping[str, tuple] = _group(_creation_options)


@dataclass(frozen=True)
class MaskSettings:
    """[Mask]."""

    generate_border_mask: bool = _option(_boolean, False)


@dataclass(frozen=True)
class QuicklookSettings:
    """[Quicklook]."""

    generate: bool = _option(_boolean, False)
    ratio: float = _option(_number(float, 0, 100, strict_minimum=True), 5.0)
    scale_vv: float = _option(_number(float, 0, strict_minimum=True), 0.5)
    scale_vh: float = _option(_number(float, 0, strict_minimum=True), 0.05)
    scale_hh: float = _option(_number(float, 0, strict_minimum=True), 0.5)
    scale_hv: float = _option(_number(float, 0, strict_minimum=True), 0.5)


@dataclass(frozen=True)
class FilteringSettings:
    """[Filtering]."""

    filter: str = _option(_choice("none", "lee", "frost", "gammamap", "kuan", aliases={"": "none"}), "none")
    window_radius: int = _option(_number(int, 1), 2)
    deramp: float = _option(_number(float, 0), 0.1)
    nblooks: float = _option(_number(float, 0, strict_minimum=True), 1.0)
    keep_non_filtered_products: bool = _option(_boolean, True)


@dataclass(frozen=True)
class ClusterSettings:
    """[Cluster]: where the dask workers run (``local`` machine by default)."""

    scheduler: str = _option(_choice("local", "slurm", "pbs", "address"), "local")
    address: str | None = _option(_optional_text)
    queue: str | None = _option(_optional_text)
    account: str | None = _option(_optional_text)
    walltime: str | None = _option(_optional_text)
    cores: int | None = _option(_optional(_number(int, 1)))
    memory: str | None = _option(_memory)
    processes: int | None = _option(_optional(_number(int, 1)))
    jobs: int = _option(_number(int, 1), 1)
    job_extra_directives: tuple[str, ...] = _option(
        lambda v: tuple(d.strip() for d in v.split(",") if d.strip()), ())
    local_directory: Path | None = _option(_optional_path)


@dataclass(frozen=True)
class Settings:
    """Everything a request file says, validated; sections mirror the INI sections."""

    config_file: Path
    paths: PathsSettings
    data_source: DataSourceSettings
    processing: ProcessingSettings
    mask: MaskSettings
    quicklook: QuicklookSettings
    filtering: FilteringSettings
    cluster: ClusterSettings
    metadata: Mapping[str, str] = field(default_factory=FrozenMap)

    @property
    def config_dir(self) -> Path:
        return self.config_file.parent

    def describe(self) -> str:
        """Human-readable summary of what a run would do (used by ``--dry-run``)."""
        ds, proc, paths = self.data_source, self.processing, self.paths
        roi = ds.roi_by_tiles if isinstance(ds.roi_by_tiles, str) else ", ".join(ds.roi_by_tiles)
        lines = [
            f"Request file     : {self.config_file}",
            f"Tiles            : {', '.join(proc.tiles)}",
            f"Tile grid        : {proc.tiles_shapefile or 'Sentinel-2 MGRS grid'}",
            f"Dates            : {ds.first_date.isoformat()} to {ds.last_date.isoformat()}",
            f"Download         : {ds.download} (roi_by_tiles: {roi})",
            f"Platforms        : {', '.join(ds.platform_list)}",
            f"Polarisation     : {ds.polarisation}",
            f"Orbit direction  : {ds.orbit_direction or 'any'}",
            f"Relative orbits  : {', '.join(map(str, ds.relative_orbit_list)) or 'all'}",
            f"Min tile coverage: {ds.tile_to_product_overlap_ratio:g}%",
            f"Calibration      : {proc.calibration} (thermal noise removed: {proc.remove_thermal_noise})",
            f"Resolution       : {proc.output_spatial_resolution:g} m, "
            f"interpolation {proc.orthorectification_interpolation_method}",
            f"Border masks     : {self.mask.generate_border_mask}",
            f"Speckle filter   : {self.filtering.filter}",
            f"Quicklooks       : {self.quicklook.generate}",
        ]
        lines += [f"{name:<17}: {getattr(paths, name)}" for name in ("s1_images", "output", "tmp", "dem_dir")]
        lines += [f"{'geoid_file':<17}: {paths.geoid_file or 'default EGM96 grid'}",
                  f"{'eof_dir':<17}: {paths.eof_dir}"]
        return "\n".join(lines)


_SECTIONS = {
    "Paths": ("paths", PathsSettings),
    "DataSource": ("data_source", DataSourceSettings),
    "Processing": ("processing", ProcessingSettings),
    "Mask": ("mask", MaskSettings),
    "Quicklook": ("quicklook", QuicklookSettings),
    "Filtering": ("filtering", FilteringSettings),
    "Cluster": ("cluster", ClusterSettings),
}
_METADATA = "Metadata"
# Deprecated key names of S1Tiling: (section, old name) -> new name.
_ALIASES = {
    ("Paths", "srtm"): "dem_dir",
    ("DataSource", "eodagconfig"): "eodag_config",
    ("DataSource", "nb_parallel_processes"): "nb_parallel_downloads",
    ("Processing", "cache_srtm_by"): "cache_dem_by",
}
_MANDATORY = {
    "Paths": ("s1_images", "output", "dem_dir"),
    "DataSource": ("first_date", "last_date"),
}


# ---------------------------------------------------------------- reading

class _EnvironmentInterpolation(configparser.Interpolation):
    """``%(NAME)s`` -> key of the same section, else environment variable (case-sensitive)."""

    def before_get(self, parser, section, option, value, defaults):
        return self._expand(value, defaults, section, option, 0)

    def _expand(self, value, lookup, section, option, depth):
        if depth > _MAX_INTERPOLATION_DEPTH:
            raise configparser.InterpolationDepthError(option, section, value)

        def substitute(match):
            name = match.group(1)
            if name is None:
                return "%"
            if name in lookup:
                return self._expand(lookup[name], lookup, section, option, depth + 1)
            if name in os.environ:
                return os.environ[name]
            raise configparser.InterpolationMissingOptionError(option, section, value, name)
        return _REFERENCE.sub(substitute, value)


class _Problems:
    """Collects the errors of one request file, formatted the same way."""

    def __init__(self, config_file: Path):
        self.file = config_file
        self.lines: list[str] = []

    def add(self, section: str, key: str, value: str | None, expected: str) -> None:
        shown = f" = {value!r}" if value is not None else ""
        self.lines.append(f"{self.file}: [{section}] {key}{shown}: {expected}")

    def raise_if_any(self) -> None:
        if self.lines:
            count = len(self.lines)
            raise ConfigurationError(
                f"{count} error{'s' if count > 1 else ''} in request file {self.file}:\n"
                + "\n".join(self.lines))


def _read_ini(config_file: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=_EnvironmentInterpolation())
    parser.optionxform = str  # keep key case: [Metadata] keys are written as given
    try:
        with open(config_file, encoding="utf-8") as stream:
            parser.read_file(stream, source=str(config_file))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"{config_file}: cannot read the request file: {err}") from err
    except configparser.Error as err:
        raise ConfigurationError(f"{config_file}: not a valid INI request file: {err}") from err
    return parser


def _own_keys(parser: configparser.ConfigParser, section: str) -> list[str]:
    """Keys of a section as written, [DEFAULT] keys excluded."""
    return [key for key in parser.options(section) if key not in parser.defaults()]


def _value(parser, section: str, key: str, problems: _Problems) -> str | None:
    """The value with its %(NAME)s references expanded; None (and a problem) if they cannot be."""
    try:
        return parser.get(section, key)
    except configparser.InterpolationMissingOptionError as err:
        problems.add(section, key, parser.get(section, key, raw=True),
                     f"'%({err.reference})s' is neither an environment variable nor a key of this section")
    except configparser.InterpolationError as err:
        problems.add(section, key, parser.get(section, key, raw=True),
                     f"cannot expand %(...)s references: {err.message}")
    return None


def _parse_section(parser, section: str, cls: type, problems: _Problems, present: set[str],
                   raws: dict[str, str]) -> dict[str, Any]:
    """Parsed values of the valid keys of ``section``, keyed by field name; adds the names seen to
    ``present`` and their values as written to ``raws``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    keys = _own_keys(parser, section)
    values: dict[str, Any] = {}
    groups: dict[str, dict] = {}
    for key in keys:
        name = key.lower()
        if (section, name) in _ALIASES:
            new = _ALIASES[section, name]
            logger.warning("%s: [%s] %s is deprecated, use %s", problems.file, section, key, new)
            if any(k.lower() == new for k in keys):
                continue  # the new name wins
            name = new
        prefix, _, kind = name.partition(".")
        spec = fields.get(prefix if kind else name)
        parse = spec and spec.metadata.get("group" if kind else "parse")
        if not parse:
            logger.warning("%s: [%s] %s: unknown key, ignored", problems.file, section, key)
            continue
        present.add(prefix if kind else name)
        raw = parser.get(section, key, raw=True)
        raws[name] = raw
        if kind and spec.metadata["kinds"]:
            kind = next((k for k in spec.metadata["kinds"] if k.lower() == kind), None)
            if kind is None:
                problems.add(section, key, raw, f"expected one of "
                             f"{', '.join(prefix + '.' + k for k in spec.metadata['kinds'])}")
                continue
        value = _value(parser, section, key, problems)
        if value is None:
            continue
        try:
            parsed = parse(value)
        except ValueError as err:
            problems.add(section, key, raw, str(err))
            continue
        if kind:
            groups.setdefault(prefix, {})[kind] = parsed
        else:
            values[name] = parsed
    values.update({name: FrozenMap(group) for name, group in groups.items()})
    return values


def _read_tiles_file(path: Path, problems: _Problems) -> tuple[str, ...] | None:
    raw = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        problems.add("Processing", "tiles_list_in_file", raw, f"cannot read the tile list: {err}")
        return None
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    try:
        return _tiles(" ".join(lines))
    except ValueError as err:
        problems.add("Processing", "tiles_list_in_file", raw, f"{path}: {err}")
        return None


def _default_eodag_config() -> Path:
    if os.environ.get("EODAG_CFG_FILE"):
        return Path(os.environ["EODAG_CFG_FILE"]).expanduser().absolute()
    if os.environ.get("EODAG_CFG_DIR"):
        return Path(os.environ["EODAG_CFG_DIR"]).expanduser().absolute() / "eodag.yml"
    return Path.home() / ".config" / "eodag" / "eodag.yml"


def _make_directory(path: Path, section: str, key: str, problems: _Problems) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problems.add(section, key, str(path), f"cannot create the directory: {err.strerror or err}")
        return
    if not os.access(path, os.W_OK | os.X_OK):
        problems.add(section, key, str(path), "expected a writable directory")


def _prepare_directories(paths: dict[str, Any], download: bool, problems: _Problems) -> None:
    """Creates output and tmp (and s1_images when downloading) now, so that a run fails early."""
    wanted = ("output", "tmp", "s1_images") if download else ("output", "tmp")
    for key in wanted:
        if key in paths:
            _make_directory(paths[key], "Paths", key, problems)
    if not download and "s1_images" in paths and not paths["s1_images"].is_dir():
        logger.warning("%s: [Paths] s1_images = '%s' does not exist and download is off: "
                       "no product will be found", problems.file, paths["s1_images"])


def _check_tile_names(values: dict[str, dict[str, Any]], raws: dict[str, dict[str, str]], problems: _Problems) -> None:
    """The requested tiles must be tiles of the run's grid: that of ``tiles_shapefile``, else the MGRS grid."""
    proc, roi = values["Processing"], values["DataSource"].get("roi_by_tiles")
    try:
        tile_grid = for_tile_file(proc.get("tiles_shapefile"))
    except ConfigurationError as err:
        problems.add("Processing", "tiles_shapefile", raws["Processing"]["tiles_shapefile"], str(err))
        return
    tiles_file = proc.get("tiles_list_in_file")
    requested = (("Processing", "tiles_list_in_file" if tiles_file else "tiles", proc.get("tiles", ())),
                 ("DataSource", "roi_by_tiles", roi if isinstance(roi, tuple) else ()))
    for section, key, names in requested:
        unknown = [name for name in names if not tile_grid.is_valid_tile_name(name)]
        if unknown:
            where = f"{tiles_file}: " if key == "tiles_list_in_file" else ""
            named = [f"{name} (closest: {', '.join(closest)})" if (closest := tile_grid.closest_names(name)) else name
                     for name in unknown[:20]] + ([f"... ({len(unknown) - 20} more)"] if len(unknown) > 20 else [])
            problems.add(section, key, raws[section][key], f"{where}unknown tile name(s) {', '.join(named)} "
                         f"(expected names of {tile_grid.description})")


def _complete(values: dict[str, dict[str, Any]], present: dict[str, set[str]], raws: dict[str, dict[str, str]],
              problems: _Problems) -> None:
    """Checks mandatory keys and cross-key constraints; fills derived defaults in place."""
    for section, keys in _MANDATORY.items():
        for key in keys:
            if key not in present[section]:
                problems.add(section, key, None, "mandatory key is missing")

    paths, source, proc = values["Paths"], values["DataSource"], values["Processing"]
    if "output" in paths:
        output = paths["output"]
        for key, sub in (("eof_dir", "_EOF"), ("ia", "_IA"), ("lia", "_LIA"), ("gamma_area", "_GAMMA_AREA")):
            paths.setdefault(key, output / sub)
    if "dem_dir" in paths:
        paths.setdefault("dem_info", paths["dem_dir"].name)
    paths.setdefault("tmp", Path(tempfile.gettempdir()))
    source.setdefault("eodag_config", _default_eodag_config())

    first, last = source.get("first_date"), source.get("last_date")
    if first and last and first > last:
        problems.add("DataSource", "last_date", last.isoformat(),
                     f"expected a date not before first_date ({first.isoformat()})")

    tiles_file = proc.get("tiles_list_in_file")
    if tiles_file is not None:
        if "tiles" in proc:
            logger.warning("%s: [Processing] tiles is ignored as tiles_list_in_file is given", problems.file)
        tiles = _read_tiles_file(tiles_file, problems)
        if tiles:
            proc["tiles"] = tiles
    elif not present["Processing"] & {"tiles", "tiles_list_in_file"}:
        problems.add("Processing", "tiles", None, "mandatory key is missing (or give tiles_list_in_file)")
    _check_tile_names(values, raws, problems)

    cluster = values["Cluster"]
    if cluster.get("scheduler") == "address" and not cluster.get("address"):
        problems.add("Cluster", "address", None, "mandatory when scheduler = address "
                     "(expected a dask scheduler address such as tcp://host:8786)")

    engine, calibration = proc.get("engine", "native"), proc.get("calibration", "sigma")
    if engine == "otb" and calibration in ("normlim", "gamma_naught_rtc"):
        problems.add("Processing", "calibration", raws["Processing"].get("calibration", calibration),
                     f"not supported by the {engine} engine (use engine = native)")
    if engine == "otb" and proc.get("cache_before_ortho"):
        logger.warning("%s: [Processing] cache_before_ortho (--cache-before-ortho) is ignored by the otb engine",
                       problems.file)
        proc["cache_before_ortho"] = False

    if values["Mask"].get("generate_border_mask") and values["Filtering"].get("keep_non_filtered_products") is False:
        logger.warning("%s: [Filtering] keep_non_filtered_products = False is ignored "
                       "as [Mask] generate_border_mask = True", problems.file)
        values["Filtering"]["keep_non_filtered_products"] = True


def load_config(path, overrides: Mapping[str, Mapping[str, str]] | None = None) -> Settings:
    """Reads and validates a request file; raises ConfigurationError listing every problem.

    ``overrides`` (section -> key -> value as text, e.g. from command-line options) replace or
    add keys of the file before it is validated.
    """
    config_file = Path(path).expanduser().absolute()
    problems = _Problems(config_file)
    parser = _read_ini(config_file)
    for section, items in (overrides or {}).items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in items.items():
            parser.set(section, key, value)

    canonical = {name.lower(): name for name in (*_SECTIONS, _METADATA)}
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    present: dict[str, set[str]] = {name: set() for name in _SECTIONS}
    raws: dict[str, dict[str, str]] = {name: {} for name in _SECTIONS}
    metadata: dict[str, str] = {}
    for section in parser.sections():
        name = canonical.get(section.lower())
        if name is None:
            logger.warning("%s: [%s]: unknown section, ignored", config_file, section)
        elif name == _METADATA:
            for key in _own_keys(parser, section):
                value = _value(parser, section, key, problems)
                if value is not None:
                    metadata[key] = value.strip()
        else:
            values[name].update(_parse_section(parser, section, _SECTIONS[name][1], problems, present[name],
                                               raws[name]))

    _complete(values, present, raws, problems)
    _prepare_directories(values["Paths"], values["DataSource"].get("download", False), problems)
    problems.raise_if_any()

    sections = {attr: cls(**values[name]) for name, (attr, cls) in _SECTIONS.items()}
    return Settings(config_file=config_file, metadata=FrozenMap(metadata), **sections)

"""Request file (S1Processor.cfg, INI) loading and validation.

:func:`load_config` reads the file, checks every key and returns an immutable
:class:`Settings`.  All the problems found are reported at once in one
:class:`~s1tiling.errors.ConfigurationError`, one line per problem:
``<file>: [Section] key = 'value': <what was expected>``.

Unknown sections and keys are logged as warnings (with "did you mean ...?" when a known key is
close), except a close misspelling of a known key (``output_spatial_resolutoin``), which is an
error: the run would silently use the default. With ``[Processing] strict = True`` (or
``--strict``) every unknown section or key is an error.

Values may reference environment variables (or other keys of the same section)
as ``%(NAME)s``; ``%%`` is a literal ``%`` and any other ``%`` is kept as is. A reference that
expands to nothing in a path is an error (``%(DATA)s/out`` would become ``/out``).

Relative paths are relative to the current directory, as in S1Tiling; a relative path that does
not exist from there while it does from the request file's folder is an error saying so. Every
folder is made absolute (and logged so by the run, listed so by ``--dry-run``); ``output``,
``tmp`` and ``s1_images`` may not be ``/`` nor the same folder. :func:`load_config` creates
``output`` and ``tmp`` (not with ``create_directories=False``: ``--dry-run`` writes nothing).
"""
from __future__ import annotations

import configparser
import dataclasses
import datetime
import difflib
import logging
import os
import re
import string
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import naming
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
                    "mode", "max", "min", "med", "q1", "q3", "sum", "qum")


class FrozenMap(Mapping):
    """Read-only, hashable and picklable mapping (settings travel to dask workers)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()):
        self._data = dict(data)

    def __getitem__(self, key: Any) -> Any:
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
    return Path(os.path.normpath(Path(value.strip()).expanduser().absolute()))


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
    if not _DATE.fullmatch(text):
        raise ValueError("expected a date as YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"not a valid date ({err})") from None


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


def _jobs(value: str) -> tuple[int, int]:
    """'4' -> (4, 4); '2-20' -> (2, 20): the least and the most batch jobs of workers at once."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
    low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
    if not match or low < 1 or high < low:
        raise ValueError("expected a number of jobs >= 1, or a range MIN-MAX such as 2-20 (1 <= MIN <= MAX)")
    return low, high


def _directives(value: str) -> tuple[str, ...]:
    """Extra batch directives, one per line (commas belong to the directives: --mail-type=END,FAIL),
    or a list: ["--qos=normal", "--exclude=n1,n2"]."""
    text = value.strip()
    if text.startswith("["):
        import ast
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            items = None
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ValueError('expected one directive per line, or a list of quoted directives '
                             'such as ["--qos=normal", "--mail-type=END,FAIL"]')
        return tuple(i.strip() for i in items if i.strip())
    return tuple(line.strip() for line in text.splitlines() if line.strip())


_WALLTIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?")


def walltime_seconds(text: str) -> int:
    """A batch walltime in seconds: 'HH:MM:SS', 'D-HH:MM:SS', 'D-HH', or minutes 'MM' / 'MM:SS' (SLURM)."""
    match = _WALLTIME.fullmatch(text.strip())
    if not match:
        raise ValueError("expected a walltime such as 04:00:00 (HH:MM:SS), 1-12:00:00 (D-HH:MM:SS) or 90 (minutes)")
    days, first_group, second, third = (int(g) if g else None for g in match.groups())
    first = first_group or 0  # the one group the pattern always matches
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = first * 3600 + (second or 0) * 60 + third
    else:  # MM[:SS]
        seconds = first * 60 + (second or 0)
    if seconds <= 0:
        raise ValueError("expected a walltime longer than 0")
    return seconds


def _walltime(value: str) -> str | None:
    text = value.strip()
    if text:
        walltime_seconds(text)
    return text or None


def _dashboard_address(value: str) -> str | None:
    text = value.strip()
    if text and not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*)?:\d{1,5}|\d{1,5}", text):
        raise ValueError("expected HOST:PORT, :PORT (every interface) or PORT (0: a free port), "
                         "such as 0.0.0.0:8787")
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


def _processing_tiles(value: str) -> tuple[str, ...]:
    """``tiles``: tile names, or ``ALL`` (S1Tiling's ``extract_tiles_to_process``: every tile the
    products cover, resolved when the products are known)."""
    return ("ALL",) if value.strip().upper() == "ALL" else _tiles(value)


def _platform(value: str) -> str:
    """Any Sentinel-1 unit (``S1A``...``S1D``...), as S1Tiling accepts any ``S1*`` name."""
    name = value.strip().upper()
    if not re.fullmatch(r"S1[A-Z]", name):
        raise ValueError("expected Sentinel-1 platforms such as S1A, S1B, S1C, S1D")
    return name


def _relative_orbits(value: str) -> tuple[int, ...]:
    """Relative orbit numbers with any separator (``7, 80``, ``80;161``), as S1Tiling reads them
    (every run of digits is a number); each in 1..175."""
    orbits: list[int] = []
    for text in re.findall(r"\d+", value):
        number = int(text)
        if not 1 <= number <= 175:
            raise ValueError("expected relative orbit numbers in 1..175")
        if number not in orbits:
            orbits.append(number)
    if re.sub(r"[\d\s,;:/|+-]", "", value):
        raise ValueError("expected relative orbit numbers in 1..175 such as '7, 80' or '80;161'")
    return tuple(orbits)


def _nodata(value: str) -> float:
    """A no-data value: a number, or ``nan`` (S1Tiling's default for LIA and IA maps)."""
    if value.strip().lower() in ("nan", "+nan", "-nan"):
        return float("nan")
    try:
        return float(value.strip())
    except ValueError:
        raise ValueError("expected a number or nan") from None


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
    eodag_config: Path | None = _option(_path)  # None: EODAG's own default configuration
    nb_parallel_downloads: int = _option(_number(int, 1), 2)
    roi_by_tiles: str | tuple[str, ...] = _option(_roi, "ALL")
    platform_list: tuple[str, ...] = _option(_list_of(_platform), ())  # empty: any unit, as S1Tiling
    polarisation: str = _option(
        _choice("VV-VH", "HH-HV", "VV", "VH", "HH", "HV", normalize=str.upper), "VV-VH")
    orbit_direction: str | None = _option(
        _optional(_choice("ASC", "DES", aliases={"DSC": "DES"}, normalize=str.upper)))
    relative_orbit_list: tuple[int, ...] = _option(_relative_orbits, ())
    tile_to_product_overlap_ratio: float = _option(_number(float, 0, 100), 0.0)
    offline_timeout: int = _option(_number(int, 0), 120)
    offline_poll_interval: int = _option(_number(int, 1), 60)
    download_keep: int = _option(_number(int, 1), 1000)
    #: EODAG search page size and retries on search time-outs (S1Tiling's ``--searched_items_per_page``
    #: and ``--nb_max_search_retries``; the command-line options override them)
    searched_items_per_page: int = _option(_number(int, 1), 20)
    nb_max_search_retries: int = _option(_number(int, 0), 5)


@dataclass(frozen=True)
class ProcessingSettings:
    """[Processing]; dotted keys (``nodata.LIA``...) are gathered in mappings."""

    tiles: tuple[str, ...] = _option(_processing_tiles)
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
    #: keep the intermediate files of a run (S1Tiling's ``--debug-caches``)
    debug_caches: bool = _option(_boolean, False)
    output_format: str = _option(_choice("GTiff", "COG", aliases={"GeoTIFF": "GTiff", "tif": "GTiff"}), "GTiff")
    produce_lia_map: bool = _option(_boolean, False)
    ia_maps_to_produce: tuple[str, ...] = _option(_list_of(_choice("deg", "cos", "sin", "tan")), ())
    dem_warp_resampling_method: str = _option(_choice(*GDAL_RESAMPLINGS), "cubic")
    strict: bool = _option(_boolean, False)
    nodata: Mapping[str, float] = _group(_nodata, kinds=("IA", "LIA", "RTC", "SAR", "XYZ", "DEM"))
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
    walltime: str | None = _option(_walltime)
    cores: int | None = _option(_optional(_number(int, 1)))
    memory: str | None = _option(_memory)
    processes: int | None = _option(_optional(_number(int, 1)))
    jobs: tuple[int, int] = _option(_jobs, (1, 1))
    job_extra_directives: tuple[str, ...] = _option(_directives, ())
    local_directory: Path | None = _option(_optional_path)
    # seconds to wait for a first worker (and for a new one when all are lost) before giving up
    worker_timeout: float = _option(_number(float, 0, strict_minimum=True), 600.0)
    dashboard_address: str | None = _option(_dashboard_address)  # default: 127.0.0.1, a free port
    log_directory: Path | None = _option(_optional_path)  # batch job logs; default {output}/_WORKER_LOGS


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

    def folders(self) -> dict[str, Path]:
        """Every folder and file of ``[Paths]`` (and the tile files) that is set, as absolute paths."""
        paths, proc = self.paths, self.processing
        found = {f"[Paths] {f.name}": getattr(paths, f.name) for f in dataclasses.fields(paths)
                 if isinstance(getattr(paths, f.name), Path)}
        found.update({f"[Processing] {name}": getattr(proc, name) for name in ("tiles_list_in_file", "tiles_shapefile")
                      if getattr(proc, name) is not None})
        if self.data_source.download:
            found["[DataSource] eodag_config"] = self.data_source.eodag_config
        if self.cluster.local_directory is not None:
            found["[Cluster] local_directory"] = self.cluster.local_directory
        return found

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
        lines.append("Folders and files (absolute; relative ones in the request file are relative to the "
                     "current directory):")
        lines += [f"  {key:<31}: {path}" for key, path in self.folders().items()]
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
    """``%(NAME)s`` -> key of the same section, else environment variable (case-sensitive).

    :attr:`empty` records the references that expanded to nothing, by (section, key).
    """

    def __init__(self):
        self.empty: dict[tuple[str, str], list[str]] = {}

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
                expanded = self._expand(lookup[name], lookup, section, option, depth + 1)
            elif name in os.environ:
                expanded = os.environ[name]
            else:
                raise configparser.InterpolationMissingOptionError(option, section, value, name)
            if not expanded.strip():
                self.empty.setdefault((section, option), []).append(name)
            return expanded
        return _REFERENCE.sub(substitute, value)


def _distance(a: str, b: str) -> int:
    """Edit distance between two keys, a swap of two neighbours counting as one edit."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def _misspelling_of(name: str, known) -> str | None:
    """The known key (or section) ``name`` is a close misspelling of: one or two typing errors in a
    long name, one in a short one; None when there is none or more than one."""
    name = name.lower()
    allowed = 2 if len(name) >= 9 else 1 if len(name) >= 4 else 0
    close = {k for k in known if _distance(name, k.lower()) <= allowed}
    return close.pop() if len(close) == 1 else None


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1, cutoff=0.75)
    if not close:
        return ""
    original = next(k for k in known if k.lower() == close[0])
    return f" (did you mean {original}?)"


class _Problems:
    """Collects the errors of one request file, formatted the same way."""

    def __init__(self, config_file: Path):
        self.file = config_file
        self.lines: list[str] = []

    def add(self, section: str, key: str, value: str | None, expected: str) -> None:
        shown = f" = {value!r}" if value is not None else ""
        self.lines.append(f"{self.file}: [{section}]{' ' + key if key else ''}{shown}: {expected}")

    def raise_if_any(self) -> None:
        if self.lines:
            count = len(self.lines)
            raise ConfigurationError(
                f"{count} error{'s' if count > 1 else ''} in request file {self.file}:\n"
                + "\n".join(self.lines))


def _relative_trap(value: str, config_dir: Path) -> str | None:
    """The problem with a relative path that does not exist from the current directory while it does
    from the request file's folder (the user meant the latter); None otherwise."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return None
    cwd = Path.cwd()
    from_cwd, from_config = cwd / path, config_dir / path
    if from_cwd.exists() or not from_config.exists() or os.path.realpath(cwd) == os.path.realpath(config_dir):
        return None
    return (f"relative paths are relative to the current directory ({cwd}), as in S1Tiling: {from_cwd} does not "
            f"exist, while {os.path.normpath(from_config)} (from the request file's folder) does; write the "
            f"absolute path, or run from {config_dir}")


def _read_ini(config_file: Path) -> configparser.ConfigParser:
    interpolation = _EnvironmentInterpolation()
    parser = configparser.ConfigParser(interpolation=interpolation)
    # the references that expanded to nothing, read by _parse_section
    parser.s1_interpolation = interpolation  # type: ignore[attr-defined]
    # keep key case: [Metadata] keys are written as given (configparser's documented way; typeshed calls it a method)
    parser.optionxform = str  # type: ignore[method-assign, assignment]
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
                   raws: dict[str, str], unknown: list[tuple[str, str, tuple[str, ...]]]) -> dict[str, Any]:
    """Parsed values of the valid keys of ``section``, keyed by field name; adds the names seen to
    ``present``, their values as written to ``raws`` and the unknown keys to ``unknown`` (section,
    key, the known keys of the section)."""
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
        if not parse or spec is None:  # (spec is None only when parse is)
            known = tuple(f.name for f in fields.values() if ("group" if kind else "parse") in f.metadata)
            known += tuple(old for (sec, old) in _ALIASES if sec == section and not kind)
            unknown.append((section, key, known))
            continue
        present.add(prefix if kind else name)
        raw = parser.get(section, key, raw=True)
        raws[name] = raw
        if kind and spec.metadata["kinds"]:
            # (None only until the check just below)
            kind = next((k for k in spec.metadata["kinds"] if k.lower() == kind), None)  # type: ignore[assignment]
            if kind is None:
                problems.add(section, key, raw, f"expected one of "
                             f"{', '.join(prefix + '.' + k for k in spec.metadata['kinds'])}")
                continue
        value = _value(parser, section, key, problems)
        if value is None:
            continue
        empty = parser.s1_interpolation.empty.get((section, key))
        if empty and parse in (_path, _optional_path):
            problems.add(section, key, raw, f"{', '.join(f'%({n})s' for n in empty)} expands to nothing "
                         f"(the path would be {value.strip()!r}): set it, or write the path in full")
            continue
        try:
            parsed = parse(value)
        except ValueError as err:
            problems.add(section, key, raw, str(err))
            continue
        if parse in (_path, _optional_path) and parsed is not None:
            where = _relative_trap(value.strip(), problems.file.parent)
            if where:
                problems.add(section, key, raw, where)
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
        return _processing_tiles(" ".join(lines))
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


def _check_creatable(path: Path, section: str, key: str, problems: _Problems) -> None:
    """What :func:`_make_directory` checks, without creating anything (``--dry-run``)."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        problems.add(section, key, str(path), f"cannot create the directory: {existing} is not a directory")
    elif not os.access(existing, os.W_OK | os.X_OK):
        problems.add(section, key, str(path), f"expected a writable directory ({existing} is not writable)")


def _prepare_directories(paths: dict[str, Any], download: bool, problems: _Problems, create: bool = True) -> None:
    """Creates output and tmp (and s1_images when downloading) now, so that a run fails early
    (``create`` False: only checks that they could be)."""
    wanted = ("output", "tmp", "s1_images") if download else ("output", "tmp")
    for key in wanted:
        if key in paths:
            (_make_directory if create else _check_creatable)(paths[key], "Paths", key, problems)
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
    tiles = proc.get("tiles", ())
    requested = (("Processing", "tiles_list_in_file" if tiles_file else "tiles", () if tiles == ("ALL",) else tiles),
                 ("DataSource", "roi_by_tiles", roi if isinstance(roi, tuple) else ()))
    resolution = proc.get("output_spatial_resolution", 10.0)
    for name in [n for _, _, names in requested for n in names if tile_grid.is_valid_tile_name(n)][:1]:
        try:
            tile_grid.tile(name).shape(resolution)
        except ValueError as err:
            problems.add("Processing", "output_spatial_resolution",
                         raws["Processing"].get("output_spatial_resolution", str(resolution)),
                         f"{err} (the tiles must be a whole number of pixels: 10, 20, 60, 100, 200... m)")
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
    if "eodag_config" not in source:
        default = _default_eodag_config()
        # S1Tiling lets EODAG use its own default configuration when there is no file: so do we
        source["eodag_config"] = default if default.is_file() else None
    seen: dict[str, str] = {}
    for key in ("output", "tmp", "s1_images"):
        if key not in paths:
            continue
        real = os.path.realpath(paths[key])
        shown = raws["Paths"].get(key, str(paths[key]))
        if real == os.path.realpath(os.sep):
            problems.add("Paths", key, shown, "expected a folder of its own, not the root of the file system")
        elif real in seen:
            problems.add("Paths", key, shown, f"is the same folder as [Paths] {seen[real]} ({real}): output, tmp "
                         "and s1_images must be different folders")
        else:
            seen[real] = key

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
    if proc.get("tiles") == ("ALL",) and source.get("download") and source.get("roi_by_tiles", "ALL") == "ALL":
        # S1Tiling's Configuration refuses the same combination
        problems.add("Processing", "tiles", "ALL", "tiles = ALL needs the products first: it cannot be combined with "
                     "[DataSource] download = True and roi_by_tiles = ALL (give roi_by_tiles, or download = False)")
    _check_nodata(proc, problems)
    _check_name_templates(proc, values["Filtering"], raws["Processing"], problems)

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


def _check_nodata(proc: dict[str, Any], problems: _Problems) -> None:
    """``nodata.SAR`` / ``nodata.XYZ`` / ``nodata.DEM`` name no-data values of S1Tiling's OTB
    intermediate files: accepted; tile images keep no-data 0 (S1Tiling's ``nodata.SAR`` default)."""
    nodata = proc.get("nodata") or {}
    for kind in ("XYZ", "DEM"):
        if kind in nodata:
            logger.info("%s: [Processing] nodata.%s is accepted and ignored: no such intermediate file is made",
                        problems.file, kind)
    if "SAR" in nodata and nodata["SAR"] != 0:
        logger.warning("%s: [Processing] nodata.SAR = %s: tile images keep no-data 0", problems.file, nodata["SAR"])


def _check_name_templates(proc: dict[str, Any], filtering: dict[str, Any], raws: dict[str, str],
                          problems: _Problems) -> None:
    """``fname_fmt.*`` / ``dname_fmt.*`` are formatted once on a sample product now, so that a wrong
    template stops the run (and ``--dry-run``) before anything is made (S1Tiling's own keys of
    intermediate files are accepted with a warning: this chain makes no such file)."""
    for group in ("fname_fmt", "dname_fmt"):
        templates = dict(proc.get(group) or {})
        for key in list(templates):
            alias = naming.TEMPLATE_ALIASES.get((group, key))
            if alias:
                templates.setdefault(alias, templates[key])
                del templates[key]
            elif key in naming.S1TILING_INTERMEDIATE_KEYS[group]:
                logger.warning("%s: [Processing] %s.%s names an intermediate file of S1Tiling's OTB chain, "
                               "which is not made here: ignored", problems.file, group, key)
                del templates[key]
        if group in proc:
            proc[group] = FrozenMap(templates)
    filter_method = filtering.get("filter", "none")
    for key, template, problem in naming.check_templates(
            proc.get("fname_fmt") or {}, proc.get("dname_fmt") or {}, proc.get("calibration", "sigma"),
            None if filter_method == "none" else filter_method):
        problems.add("Processing", key, raws.get(key.lower(), template), problem)


def _report_unknown(unknown: list[tuple[str, str, tuple[str, ...]]], strict: bool, problems: _Problems) -> None:
    """Unknown sections (key '') and keys: errors with ``strict`` or when close to a known one, else warnings."""
    for section, key, known in unknown:
        name = key.partition(".")[0]
        what = f"[{section}] {key}" if key else f"[{section}]"
        kind = "key" if key else "section"
        close = _misspelling_of(name or section, known)
        if close is not None:
            ignored = f"the run would use the default of {close}" if key else "with all its keys"
            problems.add(section, key or "", None, f"unknown {kind}: did you mean {close}? (a misspelt {kind} "
                         f"is ignored: {ignored})")
        elif strict:
            hint = _did_you_mean(name or section, known)
            problems.add(section, key or "", None, f"unknown {kind} (strict = True){hint}")
        else:
            logger.warning("%s: %s: unknown %s, ignored%s", problems.file, what, kind,
                           _did_you_mean(name or section, known))


def load_config(path: str | Path, overrides: Mapping[str, Mapping[str, str]] | None = None, *,
                create_directories: bool = True) -> Settings:
    """Reads and validates a request file; raises ConfigurationError listing every problem.

    ``overrides`` (section -> key -> value as text, e.g. from command-line options) replace or
    add keys of the file before it is validated. ``create_directories`` False (``--dry-run``):
    ``output`` and ``tmp`` are only checked, not created.
    """
    config_file = Path(path).expanduser().absolute()
    problems = _Problems(config_file)
    parser = _read_ini(config_file)
    for section, items in (overrides or {}).items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, text in items.items():
            parser.set(section, key, text)

    canonical = {name.lower(): name for name in (*_SECTIONS, _METADATA)}
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    present: dict[str, set[str]] = {name: set() for name in _SECTIONS}
    raws: dict[str, dict[str, str]] = {name: {} for name in _SECTIONS}
    metadata: dict[str, str] = {}
    unknown: list[tuple[str, str, tuple[str, ...]]] = []
    for section in parser.sections():
        name = canonical.get(section.lower())
        if name is None:
            unknown.append((section, "", tuple(canonical.values())))
        elif name == _METADATA:
            for key in _own_keys(parser, section):
                value = _value(parser, section, key, problems)
                if value is not None:
                    metadata[key] = value.strip()
        else:
            values[name].update(_parse_section(parser, section, _SECTIONS[name][1], problems, present[name],
                                               raws[name], unknown))

    _report_unknown(unknown, values["Processing"].get("strict", False), problems)
    _complete(values, present, raws, problems)
    _prepare_directories(values["Paths"], values["DataSource"].get("download", False), problems, create_directories)
    problems.raise_if_any()

    sections = {attr: cls(**values[name]) for name, (attr, cls) in _SECTIONS.items()}
    return Settings(config_file=config_file, metadata=FrozenMap(metadata), **sections)

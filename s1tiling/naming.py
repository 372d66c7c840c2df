"""Names and folders of the products, as S1Tiling writes them.

Names come from ``str.format`` templates (``[Processing] fname_fmt.<kind>`` and
``dname_fmt.<kind>`` of the request file override the defaults below). Templates
also accept S1Tiling's extra conversions ``!l`` (lower), ``!u`` (upper) and
``!c`` (capitalize), e.g. ``{polarisation!u}`` or ``{calibration_type!u:.3}``.

Product kinds (= ``fname_fmt`` keys) and their folders (``dname_fmt`` keys):

- ``concatenation`` (sigma/beta/gamma/dn tile), ``s2_lia_corrected`` (``_NormLim``),
  ``s2_gamma_area_corrected`` (``_GammaNaughtRTC``): folder ``tiled`` = ``{out_dir}/{tile_name}``;
- ``mask`` (``{rootname}_BorderMask.tif``): folder ``mask`` = ``{out_dir}/{tile_name}``;
- ``filtered`` (S1Tiling 1.4's defaults: ``<tile stem>_filtered.tif`` after sigma/beta/gamma/dn
  calibration, ``<tile stem>_{calibration_type}_filtered.tif``, i.e. ``..._Normlim_filtered.tif`` and
  ``..._GammaNaughtRTC_filtered.tif``, after NORMLIM and gamma0 RTC): ``{out_dir}/filtered/{tile_name}``;
- ``quicklook`` (``<tile stem>_quicklook.jpg``, without calibration suffix): ``{out_dir}/_QL``;
- ``lia_product`` (``{LIA_kind}_{tile_name}_{orbit}.tif``, LIA_kind ``LIA``/``sin_LIA``): ``{lia_dir}``;
- ``ia_product`` (``{IA_kind}_{tile_name}_{orbit}.tif``, IA_kind ``IA``/``cos_IA``/``sin_IA``/``tan_IA``):
  ``{ia_dir}``;
- ``gamma_area`` (``GAMMA_AREA_{tile_name}_{orbit}.tif``): folder ``gamma_area_product`` = ``{gamma_area_dir}``.

``<tile stem>`` is ``{flying_unit_code}_{tile_name}_{polarisation}_{orbit_direction}_{orbit}_{acquisition_stamp}``.

Fields (S1Tiling's, :data:`TILE_FIELDS`): ``flying_unit_code``, ``tile_name``, ``polarisation``,
``orbit_direction``, ``orbit`` (relative, 3 digits), ``absolute_orbit`` (5 digits),
``acquisition_time`` / ``acquisition_start`` / ``acquisition_day`` / ``acquisition_stamp``,
``calibration_type`` (``sigma``... ``Normlim``, ``GammaNaughtRTC``), ``filter_method`` (``lee``...,
empty without filter), and, as in S1Tiling's chain of steps where they name the file a step reads:
``basename`` / ``rootname`` (with / without extension) and ``polarless_basename`` /
``polarless_rootname`` (the same without the polarisation field). A tile image is made from S1
images: there they name the measurement file of its first slice
(``s1a-iw-grd-vv-20200108t044150-...-001.tiff``); masks, filtered images and quicklooks are made
from the tile image: there ``rootname`` is its stem (``{rootname}_BorderMask.tif``).
"""
from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigurationError, ExitCode, S1TilingError
from .times import as_utc

if TYPE_CHECKING:
    import numpy as np

    from .config import PathsSettings

class UnsafePathError(S1TilingError):
    """An output path would leave its configured folder (a name field holding a path separator or
    ``..``, e.g. from a hostile manifest): nothing is written."""

    exit_code = ExitCode.CORRUPT_PRODUCT

_TILE_STEM = "{flying_unit_code}_{tile_name}_{polarisation}_{orbit_direction}_{orbit}_{acquisition_stamp}"

DEFAULT_FNAME_FMT: dict[str, str] = {
    "concatenation": _TILE_STEM + ".tif",
    "s2_lia_corrected": _TILE_STEM + "_NormLim.tif",
    "s2_gamma_area_corrected": _TILE_STEM + "_GammaNaughtRTC.tif",
    "mask": "{rootname}_BorderMask.tif",
    "filtered": _TILE_STEM + "_filtered.tif",
    "quicklook": _TILE_STEM + "_quicklook.jpg",
    "lia_product": "{LIA_kind}_{tile_name}_{orbit}.tif",
    "ia_product": "{IA_kind}_{tile_name}_{orbit}.tif",
    "gamma_area": "GAMMA_AREA_{tile_name}_{orbit}.tif",
}

DEFAULT_DNAME_FMT: dict[str, str] = {
    "tiled": "{out_dir}/{tile_name}",
    "mask": "{out_dir}/{tile_name}",
    "filtered": "{out_dir}/filtered/{tile_name}",
    "quicklook": "{out_dir}/_QL",
    "lia_product": "{lia_dir}",
    "ia_product": "{ia_dir}",
    "gamma_area_product": "{gamma_area_dir}",
}

#: product kind -> dname_fmt key of its folder
KIND_FOLDER: dict[str, str] = {
    "concatenation": "tiled",
    "s2_lia_corrected": "tiled",
    "s2_gamma_area_corrected": "tiled",
    "mask": "mask",
    "filtered": "filtered",
    "quicklook": "quicklook",
    "lia_product": "lia_product",
    "ia_product": "ia_product",
    "gamma_area": "gamma_area_product",
}

#: kinds whose name derives from the tile product's name (field ``rootname``)
DERIVED_KINDS = ("mask", "filtered", "quicklook")

#: S1Tiling's default filtered name after NORMLIM and gamma0 RTC calibration (``filtered_calib``)
FILTERED_CALIBRATED_FMT = _TILE_STEM + "_{calibration_type}_filtered.tif"

#: the template fields of tile products and of the products derived from them
TILE_FIELDS = ("flying_unit_code", "tile_name", "polarisation", "orbit_direction", "orbit", "absolute_orbit",
               "acquisition_time", "acquisition_start", "acquisition_day", "acquisition_stamp", "calibration_type",
               "filter_method", "basename", "rootname", "polarless_basename", "polarless_rootname")

#: S1Tiling's other spellings of a template key -> ours
TEMPLATE_ALIASES = {("fname_fmt", "gamma_area_product"): "gamma_area",
                    ("fname_fmt", "lia_corrected"): "s2_lia_corrected",
                    ("fname_fmt", "gamma_area_corrected"): "s2_gamma_area_corrected"}

#: S1Tiling 1.4's template keys of intermediate files of its OTB chain (accepted, ignored here)
S1TILING_INTERMEDIATE_KEYS = {
    "fname_fmt": frozenset({
        "calibration", "correct_denoising", "cut_borders", "orthorectification", "dem_s2_agglomeration", "dem_on_s2",
        "geoid_on_s2", "height_on_s2", "ground_and_sat_s2", "normals_on_s2", "ground_and_sat_s2_ellipsoid",
        "normals_wgs84_on_s2", "dem_s1_agglomeration", "xyz", "normals_on_s1", "s1_lia", "s1_sin_lia",
        "lia_orthorectification", "lia_concatenation", "s1_on_dem", "s1_on_geoid_dem", "resampled_dem",
        "gamma_area_concatenation", "gamma_area_orthorectification"}),
    "dname_fmt": frozenset({"s1_lia", "s1_sin_lia", "eof_product"}),
}

#: ``[Processing] calibration`` -> kind of the tile product it gives
TILE_KIND_BY_CALIBRATION: dict[str, str] = {
    "sigma": "concatenation",
    "beta": "concatenation",
    "gamma": "concatenation",
    "dn": "concatenation",
    "normlim": "s2_lia_corrected",
    "gamma_naught_rtc": "s2_gamma_area_corrected",
}

#: ``[Processing] calibration`` -> ``{calibration_type}`` field (and CALIBRATION metadata)
CALIBRATION_TYPE: dict[str, str] = {
    "sigma": "sigma",
    "beta": "beta",
    "gamma": "gamma",
    "dn": "dn",
    "normlim": "Normlim",
    "gamma_naught_rtc": "GammaNaughtRTC",
}

DIR_FIELDS = ("out_dir", "tmp_dir", "lia_dir", "ia_dir", "gamma_area_dir", "eof_dir")


def layout(paths: PathsSettings) -> dict[str, str]:
    """The folder fields of the templates (``{out_dir}``...) from a request's ``[Paths]``."""
    return {"out_dir": str(paths.output), "tmp_dir": str(paths.tmp), "lia_dir": str(paths.lia),
            "ia_dir": str(paths.ia), "gamma_area_dir": str(paths.gamma_area), "eof_dir": str(paths.eof_dir)}


class NameFormatter(string.Formatter):
    """``str.format`` plus S1Tiling's conversions ``!l`` (lower), ``!u`` (upper), ``!c`` (capitalize)."""

    _CONVERSIONS = {"l": str.lower, "u": str.upper, "c": str.capitalize}

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in self._CONVERSIONS:
            return self._CONVERSIONS[conversion](str(value))
        return super().convert_field(value, conversion)


_FORMATTER = NameFormatter()


def format_template(template: str, fields: Mapping[str, object], setting: str = "template") -> str:
    """Format ``template`` with ``fields``; a wrong template raises :class:`ConfigurationError`.

    ``setting`` names the request-file key the template comes from, for the message.
    """
    try:
        return _FORMATTER.vformat(template, (), fields)
    except KeyError as exc:
        raise ConfigurationError(
            f"{setting} = {template!r}: unknown field {{{exc.args[0]}}}; "
            f"known fields: {', '.join(sorted(fields))}") from exc
    except (ValueError, IndexError, AttributeError) as exc:
        raise ConfigurationError(f"{setting} = {template!r}: invalid template ({exc})") from exc


def acquisition_time_stamp(time: datetime | np.datetime64) -> str:
    """``yyyymmddtHHMMSS`` (S1Tiling's ``acquisition_time``) of one product start time."""
    return as_utc(time).strftime("%Y%m%dt%H%M%S")


def acquisition_stamp(times: Sequence) -> str:
    """Stamp of an output made from ``times`` (start times of its input products).

    One input: ``yyyymmddtHHMMSS``; two or more merged slices: ``yyyymmddtxxxxxx``
    (day of the earliest one).
    """
    if len(times) == 0:
        raise ValueError("acquisition_stamp needs at least one acquisition time")
    first = min(as_utc(t) for t in times)
    return acquisition_time_stamp(first) if len(times) == 1 else first.strftime("%Y%m%dtxxxxxx")


@dataclass(frozen=True)
class TileProduct:
    """What identifies one S2 tile product: the fields of its name.

    ``acquisition_times`` are the start times of the input products (UTC),
    ``orbit`` the relative orbit, ``calibration`` the ``[Processing] calibration`` value.
    """

    flying_unit_code: str
    tile_name: str
    polarisation: str
    orbit_direction: str
    orbit: int
    acquisition_times: tuple
    calibration: str = "sigma"
    absolute_orbit: int | None = None
    #: the measurement file of the first slice this image is made from (``{basename}``)
    s1_image: str | None = None

    def __post_init__(self) -> None:
        direction = self.orbit_direction.upper()[:3]
        if direction not in ("ASC", "DES"):
            raise ValueError(f"orbit direction must be ASC or DES, got {self.orbit_direction!r}")
        if self.calibration not in TILE_KIND_BY_CALIBRATION:
            raise ValueError(f"unknown calibration {self.calibration!r}; "
                             f"expected one of {', '.join(TILE_KIND_BY_CALIBRATION)}")
        times = tuple(sorted(as_utc(t) for t in self.acquisition_times))
        if not times:
            raise ValueError("a tile product needs at least one acquisition time")
        object.__setattr__(self, "flying_unit_code", self.flying_unit_code.lower())
        object.__setattr__(self, "polarisation", self.polarisation.lower())
        object.__setattr__(self, "orbit_direction", direction)
        object.__setattr__(self, "orbit", int(self.orbit))
        object.__setattr__(self, "acquisition_times", times)

    @property
    def kind(self) -> str:
        """Product kind of the tile itself (``concatenation``, ``s2_lia_corrected``...)."""
        return TILE_KIND_BY_CALIBRATION[self.calibration]

    def fields(self) -> dict[str, str]:
        """The template fields of this product (S1Tiling's names)."""
        first = self.acquisition_times[0]
        image = self.s1_image or ""
        polarless = re.sub(r"(?i)-(hh|hv|vh|vv)-", "-", image, count=1)
        return {
            "absolute_orbit": f"{self.absolute_orbit:05d}" if self.absolute_orbit is not None else "",
            "basename": image,
            "rootname": _stem(image),
            "polarless_basename": polarless,
            "polarless_rootname": _stem(polarless),
            "filter_method": "",
            "flying_unit_code": self.flying_unit_code,
            "tile_name": self.tile_name,
            "polarisation": self.polarisation,
            "orbit_direction": self.orbit_direction,
            "orbit": f"{self.orbit:03d}",
            "acquisition_time": acquisition_time_stamp(first),
            "acquisition_start": acquisition_time_stamp(first),
            "acquisition_day": first.strftime("%Y%m%dtxxxxxx"),
            "acquisition_stamp": acquisition_stamp(self.acquisition_times),
            "calibration_type": CALIBRATION_TYPE[self.calibration],
        }

    def path(self, kind: str | None = None, fname_fmt: Mapping[str, str] | None = None,
             dname_fmt: Mapping[str, str] | None = None, dirs: Mapping[str, str] | None = None,
             filter_method: str | None = None) -> Path:
        """Path of this tile product (``kind=None``) or of a product derived from it
        (``mask``, ``filtered``, ``quicklook``); ``filter_method``: ``{filter_method}``."""
        fields = {**self.fields(), "filter_method": filter_method or ""}
        tile = product_path(self.kind, fields, fname_fmt, dname_fmt, dirs)
        if kind is None or kind == self.kind:
            return tile
        if kind not in DERIVED_KINDS:
            raise ValueError(f"{kind!r} is not a product derived from a tile ({', '.join(DERIVED_KINDS)})")
        if kind == "filtered" and self.kind != "concatenation" and "filtered" not in (fname_fmt or {}):
            fname_fmt = {**(fname_fmt or {}), "filtered": FILTERED_CALIBRATED_FMT}
        polarless = re.sub(r"(?i)_(hh|hv|vh|vv)_", "_", tile.name, count=1)
        return product_path(kind, {**fields, "rootname": _stem(tile.name), "basename": tile.name,
                                   "polarless_basename": polarless, "polarless_rootname": _stem(polarless)},
                            fname_fmt, dname_fmt, dirs)


def product_path(kind: str, fields: Mapping[str, object], fname_fmt: Mapping[str, str] | None = None,
                 dname_fmt: Mapping[str, str] | None = None, dirs: Mapping[str, str] | None = None) -> Path:
    """Path of a product of ``kind`` (see the module table).

    ``fields`` fill the file name template; ``dirs`` (``out_dir``, ``tmp_dir``,
    ``lia_dir``, ``ia_dir``, ``gamma_area_dir``, ``eof_dir``) and ``fields`` fill
    the folder template. ``fname_fmt`` / ``dname_fmt`` are the request file's
    overrides, keyed like S1Tiling (``concatenation``, ``tiled``...).
    """
    if kind not in KIND_FOLDER:
        raise ValueError(f"unknown product kind {kind!r}; expected one of {', '.join(KIND_FOLDER)}")
    fname_fmt = fname_fmt or {}
    dname_fmt = dname_fmt or {}
    dirs = dict(dirs or {})
    folder_key = KIND_FOLDER[kind]
    fname_template = fname_fmt.get(kind, DEFAULT_FNAME_FMT[kind])
    dname_template = dname_fmt.get(folder_key, DEFAULT_DNAME_FMT[folder_key])
    for field_name, value in fields.items():
        if field_name not in dirs and not _is_name_part(str(value)):
            raise UnsafePathError(f"name field {{{field_name}}} = {str(value)!r} is not a plain name (it holds a "
                                  f"path separator or is '..'): refusing to make a {kind} path from it")
    name = format_template(fname_template, fields, f"fname_fmt.{kind}")
    if not _is_name_part(name):
        raise ConfigurationError(f"fname_fmt.{kind} = {fname_template!r} gives {name!r}, which is not a file name "
                                 "(folders belong in dname_fmt)")
    folder = format_template(dname_template, {**fields, **dirs}, f"dname_fmt.{folder_key}")
    root = _fixed_root(dname_template, dirs)
    path = os.path.normpath(os.path.join(folder, name))
    if root and os.path.commonpath([path, root]) != root:
        raise UnsafePathError(f"{path} lies outside {root}, the folder of dname_fmt.{folder_key} = "
                              f"{dname_template!r}: refusing to write it")
    return Path(path)


def _is_name_part(text: str) -> bool:
    """Whether ``text`` can only be (part of) one component of a path: no separator, not '.' or '..'
    (an empty field, e.g. ``{filter_method}`` without a filter, leaves the path where it is)."""
    return not any(c in text for c in ("/", "\\", "\0")) and text not in (".", "..")


def _fixed_root(template: str, dirs: Mapping[str, str]) -> str | None:
    """The folder a ``dname_fmt`` template names before its first field that is not a configured folder
    (``{out_dir}/{tile_name}`` -> the output folder), normalised; None when it names none."""
    prefix = ""
    try:
        for literal, field_name, _, _ in string.Formatter().parse(template):
            prefix += literal
            if field_name is None:
                continue
            if field_name not in dirs:
                break
            prefix += str(dirs[field_name])
    except ValueError:
        return None
    folder = prefix if prefix.endswith(("/", os.sep)) or prefix == template else os.path.dirname(prefix)
    return os.path.normpath(folder) if folder else None


def _stem(name: str) -> str:
    suffix = Path(name).suffix
    return name[:-len(suffix)] if suffix else name


def check_templates(fname_fmt: Mapping[str, str], dname_fmt: Mapping[str, str], calibration: str = "sigma",
                    filter_method: str | None = None) -> list[tuple[str, str, str]]:
    """The problems of the request's templates, as ``(key, template, what is wrong)``: unknown
    keys, and templates that cannot be formatted with the fields of a sample product of the
    request's calibration (so that a wrong template fails when the request is loaded)."""
    problems = []
    for group, keys, defaults in (("fname_fmt", fname_fmt, DEFAULT_FNAME_FMT), ("dname_fmt", dname_fmt,
                                                                               DEFAULT_DNAME_FMT)):
        for key in keys:
            if key not in defaults:
                what = "product" if group == "fname_fmt" else "folder"
                problems.append((f"{group}.{key}", keys[key], f"unknown {what}; expected one of {', '.join(defaults)}"))
    fname_fmt = {k: v for k, v in fname_fmt.items() if k in DEFAULT_FNAME_FMT}
    dname_fmt = {k: v for k, v in dname_fmt.items() if k in DEFAULT_DNAME_FMT}
    sample = TileProduct("s1a", "33NWB", "vv", "DES", 7, (datetime(2020, 1, 8, 4, 41, 50),), calibration, 30704,
                         "s1a-iw-grd-vv-20200108t044150-20200108t044215-030704-038506-001.tiff")
    dirs = {d: d for d in DIR_FIELDS}
    extra = {"LIA_kind": "LIA", "IA_kind": "IA", "GAMMA_AREA_kind": "GAMMA_AREA"}
    reported = set()
    for kind in (sample.kind, *DERIVED_KINDS, "lia_product", "ia_product", "gamma_area"):
        try:
            if kind in DERIVED_KINDS:
                sample.path(kind, fname_fmt, dname_fmt, dirs, filter_method)
            else:
                product_path(kind, {**sample.fields(), **extra, "filter_method": filter_method or ""}, fname_fmt,
                             dname_fmt, dirs)
        except ConfigurationError as err:
            key, _, rest = str(err).partition(" = ")
            if key not in reported:
                reported.add(key)
                template, _, problem = rest.partition(": ")
                problems.append((key, template.strip("'\""), problem))
    return problems


def check_name_formats(fname_fmt: Mapping[str, str], dname_fmt: Mapping[str, str]) -> None:
    """Raise :class:`ConfigurationError` for an unknown key or a template that cannot be
    formatted (checked on a sample product, so the request file fails early)."""
    problems = check_templates(fname_fmt, dname_fmt)
    if problems:
        key, template, problem = problems[0]
        raise ConfigurationError(f"{key} = {template!r}: {problem}")


class ParsedName(NamedTuple):
    kind: str
    fields: dict


_TILE_RE = re.compile(
    r"^(?P<rootname>(?P<flying_unit_code>s1[a-z])_(?P<tile_name>\d{2}[A-Z]{3})_(?P<polarisation>[hv]{2})"
    r"_(?P<orbit_direction>ASC|DES)_(?P<orbit>\d{3})_(?P<acquisition_stamp>\d{8}t(?:\d{6}|x{6}))"
    r"(?P<calibration>_NormLim|_GammaNaughtRTC|_Normlim)?)"
    r"(?P<derived>_BorderMask\.tif|_filtered\.tif|_quicklook\.jpg|\.tif)$")
_MAP_RES = {
    "lia_product": re.compile(r"^(?P<LIA_kind>LIA|sin_LIA)_(?P<tile_name>\d{2}[A-Z]{3})_(?P<orbit>\d{3})\.tif$"),
    "ia_product": re.compile(r"^(?P<IA_kind>IA|cos_IA|sin_IA|tan_IA)"
                             r"_(?P<tile_name>\d{2}[A-Z]{3})_(?P<orbit>\d{3})\.tif$"),
    "gamma_area": re.compile(r"^GAMMA_AREA_(?P<tile_name>\d{2}[A-Z]{3})_(?P<orbit>\d{3})\.tif$"),
}
_DERIVED_SUFFIX = {"_BorderMask.tif": "mask", "_filtered.tif": "filtered", "_quicklook.jpg": "quicklook"}
_CALIBRATION_SUFFIX = {None: "concatenation", "_NormLim": "s2_lia_corrected", "_Normlim": "s2_lia_corrected",
                       "_GammaNaughtRTC": "s2_gamma_area_corrected"}


def parse_output_name(name: str) -> ParsedName | None:
    """Recognise a product file name written with the default templates.

    Returns its kind and fields (``tile_kind`` tells which tile a derived product
    comes from), or ``None`` for any other name (temporary files included).
    """
    match = _TILE_RE.match(name)
    if match:
        fields = match.groupdict()
        tile_kind = _CALIBRATION_SUFFIX[fields.pop("calibration")]
        kind = _DERIVED_SUFFIX.get(fields.pop("derived"), tile_kind)
        fields["tile_kind"] = tile_kind
        fields["merged"] = fields["acquisition_stamp"].endswith("xxxxxx")
        return ParsedName(kind, fields)
    for kind, regex in _MAP_RES.items():
        match = regex.match(name)
        if match:
            return ParsedName(kind, match.groupdict())
    return None

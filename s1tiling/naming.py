"""Names and folders of the products, as S1Tiling writes them.

Names come from ``str.format`` templates (``[Processing] fname_fmt.<kind>`` and
``dname_fmt.<kind>`` of the request file override the defaults below). Templates
also accept S1Tiling's extra conversions ``!l`` (lower), ``!u`` (upper) and
``!c`` (capitalize), e.g. ``{polarisation!u}`` or ``{calibration_type!u:.3}``.

Product kinds (= ``fname_fmt`` keys) and their folders (``dname_fmt`` keys):

- ``concatenation`` (sigma/beta/gamma/dn tile), ``s2_lia_corrected`` (``_NormLim``),
  ``s2_gamma_area_corrected`` (``_GammaNaughtRTC``): folder ``tiled`` = ``{out_dir}/{tile_name}``;
- ``mask`` (``{rootname}_BorderMask.tif``): folder ``mask`` = ``{out_dir}/{tile_name}``;
- ``filtered`` (``{rootname}_filtered.tif``): ``{out_dir}/filtered/{tile_name}``;
- ``quicklook`` (``{rootname}_quicklook.jpg``): ``{out_dir}/_QL``;
- ``lia_product`` (``{LIA_kind}_{tile_name}_{orbit}.tif``, LIA_kind ``LIA``/``sin_LIA``): ``{lia_dir}``;
- ``ia_product`` (``{IA_kind}_{tile_name}_{orbit}.tif``, IA_kind ``IA``/``cos_IA``/``sin_IA``/``tan_IA``):
  ``{ia_dir}``;
- ``gamma_area`` (``GAMMA_AREA_{tile_name}_{orbit}.tif``): folder ``gamma_area_product`` = ``{gamma_area_dir}``.

``rootname`` is the stem of the tile product the derived product comes from
(``s1a_33NWB_vv_DES_007_20200108txxxxxx``, or ``..._NormLim``), so derived names
follow the tile's actual name; with the default templates this gives exactly
S1Tiling's names (``..._NormLim_filtered.tif``, ``..._BorderMask.tif``).
"""
from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

from .errors import ConfigurationError, ExitCode, S1TilingError
from .times import as_utc


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
    "filtered": "{rootname}_filtered.tif",
    "quicklook": "{rootname}_quicklook.jpg",
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


def layout(paths) -> dict[str, str]:
    """The folder fields of the templates (``{out_dir}``...) from a request's ``[Paths]``."""
    return {"out_dir": str(paths.output), "tmp_dir": str(paths.tmp), "lia_dir": str(paths.lia),
            "ia_dir": str(paths.ia), "gamma_area_dir": str(paths.gamma_area), "eof_dir": str(paths.eof_dir)}


class NameFormatter(string.Formatter):
    """``str.format`` plus S1Tiling's conversions ``!l`` (lower), ``!u`` (upper), ``!c`` (capitalize)."""

    _CONVERSIONS = {"l": str.lower, "u": str.upper, "c": str.capitalize}

    def convert_field(self, value, conversion):
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


def acquisition_time_stamp(time) -> str:
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

    def __post_init__(self):
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
        return {
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
             dname_fmt: Mapping[str, str] | None = None, dirs: Mapping[str, str] | None = None) -> Path:
        """Path of this tile product (``kind=None``) or of a product derived from it
        (``mask``, ``filtered``, ``quicklook``)."""
        fields = self.fields()
        tile = product_path(self.kind, fields, fname_fmt, dname_fmt, dirs)
        if kind is None or kind == self.kind:
            return tile
        if kind not in DERIVED_KINDS:
            raise ValueError(f"{kind!r} is not a product derived from a tile ({', '.join(DERIVED_KINDS)})")
        stem = tile.name[:-len(tile.suffix)] if tile.suffix else tile.name
        return product_path(kind, {**fields, "rootname": stem, "basename": tile.name},
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
    """Whether ``text`` can only be one component of a path (no separator, not '.' or '..')."""
    return bool(text) and not any(c in text for c in ("/", "\\", "\0")) and text not in (".", "..")


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


def check_name_formats(fname_fmt: Mapping[str, str], dname_fmt: Mapping[str, str]) -> None:
    """Raise :class:`ConfigurationError` for an unknown key or a template that cannot be
    formatted (checked on a sample product, so the request file fails early)."""
    for key in fname_fmt:
        if key not in DEFAULT_FNAME_FMT:
            raise ConfigurationError(f"fname_fmt.{key}: unknown product; expected one of {', '.join(DEFAULT_FNAME_FMT)}")
    for key in dname_fmt:
        if key not in DEFAULT_DNAME_FMT:
            raise ConfigurationError(f"dname_fmt.{key}: unknown folder; expected one of {', '.join(DEFAULT_DNAME_FMT)}")
    sample = TileProduct("s1a", "33NWB", "vv", "DES", 7, (datetime(2020, 1, 8, 4, 41, 50),))
    dirs = {d: d for d in DIR_FIELDS}
    extra = {"LIA_kind": "LIA", "IA_kind": "IA"}
    for kind in KIND_FOLDER:
        if kind in DERIVED_KINDS:
            sample.path(kind, fname_fmt, dname_fmt, dirs)
        else:
            product_path(kind, {**sample.fields(), **extra}, fname_fmt, dname_fmt, dirs)


class ParsedName(NamedTuple):
    kind: str
    fields: dict


_TILE_RE = re.compile(
    r"^(?P<rootname>(?P<flying_unit_code>s1[a-z])_(?P<tile_name>\d{2}[A-Z]{3})_(?P<polarisation>[hv]{2})"
    r"_(?P<orbit_direction>ASC|DES)_(?P<orbit>\d{3})_(?P<acquisition_stamp>\d{8}t(?:\d{6}|x{6}))"
    r"(?P<calibration>_NormLim|_GammaNaughtRTC)?)"
    r"(?P<derived>_BorderMask\.tif|_filtered\.tif|_quicklook\.jpg|\.tif)$")
_MAP_RES = {
    "lia_product": re.compile(r"^(?P<LIA_kind>LIA|sin_LIA)_(?P<tile_name>\d{2}[A-Z]{3})_(?P<orbit>\d{3})\.tif$"),
    "ia_product": re.compile(r"^(?P<IA_kind>IA|cos_IA|sin_IA|tan_IA)_(?P<tile_name>\d{2}[A-Z]{3})_(?P<orbit>\d{3})\.tif$"),
    "gamma_area": re.compile(r"^GAMMA_AREA_(?P<tile_name>\d{2}[A-Z]{3})_(?P<orbit>\d{3})\.tif$"),
}
_DERIVED_SUFFIX = {"_BorderMask.tif": "mask", "_filtered.tif": "filtered", "_quicklook.jpg": "quicklook"}
_CALIBRATION_SUFFIX = {None: "concatenation", "_NormLim": "s2_lia_corrected",
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

"""The SAFE ``manifest.safe``: platform, mode, orbit, times, footprint, IPF version, file list.

:func:`parse_manifest` reads the bytes of a manifest into a :class:`Manifest`. It raises
``ValueError`` (or ``lxml.etree.XMLSyntaxError``) naming what is missing; the product reader
wraps that into a :class:`~s1tiling.errors.ProductError` naming product and file.
"""
from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass

from lxml import etree

from ..times import parse_utc
from .names import relative_orbit

#: ``repID`` of the manifest data objects, by the kind of file the product reader asks for.
FILE_KINDS = {
    "annotation": "s1Level1ProductSchema",
    "calibration": "s1Level1CalibrationSchema",
    "noise": "s1Level1NoiseSchema",
    "measurement": "s1Level1MeasurementSchema",
}

_POLARISATION_IN_NAME = re.compile(r"-(hh|hv|vh|vv)-", re.IGNORECASE)
#: ``<safe:number>`` of the platform: Sentinel-1A to 1D (it becomes part of output names and paths)
_PLATFORM_NUMBER = re.compile(r"[A-Da-d]")

@dataclass(frozen=True)
class DataObject:
    """One file listed by the manifest: its path relative to the SAFE root and its ``repID``."""

    href: str
    rep_id: str

    @property
    def polarisation(self) -> str | None:
        """Polarisation encoded in the file name (``s1a-iw-grd-vv-...``), upper-case, or None."""
        found = _POLARISATION_IN_NAME.search(posixpath.basename(self.href))
        return found.group(1).upper() if found else None


@dataclass(frozen=True)
class Manifest:
    platform: str  # "S1A", "S1B", "S1C", ...
    instrument_mode: str  # "IW", "EW", "SM"
    swath: str  # "IW", "EW", "S1" .. "S6"
    product_type: str  # "GRD"
    polarisations: tuple[str, ...]  # upper-case, in manifest order
    pass_direction: str  # "ASC" / "DES"
    absolute_orbit: int
    relative_orbit: int
    mission_datatake_id: int
    start_time: dt.datetime  # UTC, aware
    stop_time: dt.datetime
    footprint_latlon: tuple[tuple[float, float], ...]  # (lat, lon) pairs as written
    ipf_version_text: str  # "003.31"
    data_objects: tuple[DataObject, ...]

    @property
    def ipf_version(self) -> float:
        """IPF version as a number: "002.36" -> 2.36."""
        return float(self.ipf_version_text)

    def file(self, kind: str, polarisation: str) -> str:
        """Path (relative to the SAFE root) of the ``kind`` file of one polarisation.

        ``kind`` is one of :data:`FILE_KINDS`. Raises ``KeyError`` when the manifest lists none.
        """
        rep_id = FILE_KINDS[kind]
        for obj in self.data_objects:
            if obj.rep_id == rep_id and obj.polarisation == polarisation.upper():
                return obj.href
        raise KeyError(f"the manifest lists no {kind} file for polarisation {polarisation}")


def _one(root, path: str) -> str:
    found = root.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise ValueError(f"missing element <{path.replace('{*}', '')}>")
    return found.text.strip()


def _ipf_version(root) -> str:
    for software in root.iter("{*}software"):
        if software.get("name") == "Sentinel-1 IPF" and software.get("version"):
            return software.get("version")
    raise ValueError('missing <safe:software name="Sentinel-1 IPF" version="..."/>')


def _relative_orbit(root, platform: str, absolute: int) -> int:
    text = root.findtext(".//{*}orbitReference/{*}relativeOrbitNumber")
    if text and text.strip():
        return int(text)
    computed = relative_orbit(platform, absolute)
    if computed is None:
        raise ValueError(f"missing <relativeOrbitNumber> and no known formula for {platform}")
    return computed


def _footprint(text: str) -> tuple[tuple[float, float], ...]:
    pairs = []
    for token in text.split():
        lat, lon = token.split(",")
        pairs.append((float(lat), float(lon)))
    if len(pairs) < 3:
        raise ValueError(f"footprint has {len(pairs)} points, expected at least 3")
    return tuple(pairs)


def _data_objects(root) -> tuple[DataObject, ...]:
    objects = []
    for obj in root.iter("{*}dataObject"):
        location = obj.find(".//{*}fileLocation")
        if location is None or not location.get("href"):
            continue
        href = posixpath.normpath(location.get("href"))  # "./annotation/x.xml" -> "annotation/x.xml"
        objects.append(DataObject(href=href, rep_id=obj.get("repID", "")))
    return tuple(objects)


def parse_manifest(data: bytes) -> Manifest:
    """Parse the bytes of a ``manifest.safe``."""
    root = etree.fromstring(data)
    platform = _one(root, ".//{*}platform/{*}familyName")
    number = _one(root, ".//{*}platform/{*}number")
    if platform.upper() != "SENTINEL-1":
        raise ValueError(f"platform {platform!r} is not SENTINEL-1")
    if not _PLATFORM_NUMBER.fullmatch(number):
        raise ValueError(f"platform number {number!r} is not one of A, B, C, D (Sentinel-1A to 1D)")
    platform = f"S1{number.upper()}"

    absolute = int(_one(root, ".//{*}orbitReference/{*}orbitNumber"))
    polarisations = tuple(
        e.text.strip().upper() for e in root.iter("{*}transmitterReceiverPolarisation") if e.text
    )
    if not polarisations:
        raise ValueError("missing <transmitterReceiverPolarisation>")
    pass_text = _one(root, ".//{*}orbitProperties/{*}pass").upper()
    if pass_text not in ("ASCENDING", "DESCENDING"):
        raise ValueError(f"unknown pass {pass_text!r}")

    return Manifest(
        platform=platform,
        instrument_mode=_one(root, ".//{*}instrumentMode/{*}mode"),
        swath=_one(root, ".//{*}instrumentMode/{*}swath"),
        product_type=_one(root, ".//{*}standAloneProductInformation/{*}productType"),
        polarisations=polarisations,
        pass_direction=pass_text[:3],
        absolute_orbit=absolute,
        relative_orbit=_relative_orbit(root, platform, absolute),
        mission_datatake_id=int(_one(root, ".//{*}standAloneProductInformation/{*}missionDataTakeID")),
        start_time=parse_utc(_one(root, ".//{*}acquisitionPeriod/{*}startTime")),
        stop_time=parse_utc(_one(root, ".//{*}acquisitionPeriod/{*}stopTime")),
        footprint_latlon=_footprint(_one(root, ".//{*}footPrint/{*}coordinates")),
        ipf_version_text=_ipf_version(root),
        data_objects=_data_objects(root),
    )

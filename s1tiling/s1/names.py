"""Sentinel-1 product names: the one regular expression, what a name says, relative orbits.

``S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8``: platform, mode
(``IW``, ``EW``, ``WV``, stripmap ``S1``..``S6``), product type and resolution (``GRDH``),
level, class and polarisations (``1SDV``), start and stop (UTC), absolute orbit, datatake id
(hexadecimal) and a checksum, optionally followed by ``.SAFE`` or ``.zip``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

#: ESA product name: S1A_IW_GRDH_1SDV_<start>_<stop>_<orbit>_<datatake>_<crc>
PRODUCT_NAME = re.compile(
    r"^(?P<platform>S1[A-Z])_(?P<mode>IW|EW|WV|S[1-6])_(?P<type>[A-Z]{3}[A-Z_])_"
    r"(?P<level>\d)(?P<class>[SA])(?P<pols>SH|SV|DH|DV|HH|HV|VV|VH)_"
    r"(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})_(?P<orbit>\d{6})_(?P<datatake>[0-9A-F]{6})_"
    r"(?P<crc>[0-9A-F]{4})$"
)
#: polarisation code of a name -> polarisations of the product
POLARISATIONS = {"SV": ("VV",), "DV": ("VV", "VH"), "SH": ("HH",), "DH": ("HH", "HV"),
                 "VV": ("VV",), "VH": ("VH",), "HH": ("HH",), "HV": ("HV",)}
#: Relative orbit = (absolute - offset) % 175 + 1, used only where no relative orbit is given;
#: S1C's offset comes from a real S1C manifest (absolute 638 -> relative 15).
RELATIVE_ORBIT_OFFSET = {"S1A": 73, "S1B": 27, "S1C": 99}


@dataclass(frozen=True)
class ProductName:
    """What a product's name says, without opening it."""

    name: str
    platform: str
    mode: str
    product_type: str
    polarisations: tuple[str, ...]
    start: str  # yyyymmddTHHMMSS, UTC
    stop: str
    absolute_orbit: int
    datatake: str

    @property
    def day(self) -> date:
        return date(int(self.start[:4]), int(self.start[4:6]), int(self.start[6:8]))

    @property
    def start_time(self) -> datetime:
        return datetime.strptime(self.start, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)

    @property
    def stop_time(self) -> datetime:
        return datetime.strptime(self.stop, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)

    @property
    def is_grd(self) -> bool:
        return self.product_type.startswith("GRD")


def strip_suffix(name: str) -> str:
    """A product name without ``.zip`` / ``.SAFE``."""
    for suffix in (".zip", ".SAFE"):
        name = name.removesuffix(suffix)
    return name


def parse_product_name(path: str | Path) -> ProductName | None:
    """Parse an ESA product name (with or without .SAFE/.zip, or a path ending with one); None if not one."""
    name = strip_suffix(Path(path).name)
    m = PRODUCT_NAME.match(name)
    if not m:
        return None
    return ProductName(name, m["platform"], m["mode"], m["type"], POLARISATIONS[m["pols"]], m["start"], m["stop"],
                       int(m["orbit"]), m["datatake"])


def relative_orbit(platform: str, absolute_orbit: int) -> int | None:
    """The relative orbit of an absolute orbit of ``platform``; None for an unknown platform."""
    offset = RELATIVE_ORBIT_OFFSET.get(platform.upper())
    return None if offset is None else (int(absolute_orbit) - offset) % 175 + 1

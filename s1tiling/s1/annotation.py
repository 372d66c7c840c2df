"""The product annotation XML (``annotation/s1?-*.xml``): what the geometry needs.

Times are kept as ``numpy.datetime64[ns]``; geometry code converts them to float
seconds relative to a reference time of its choosing (see :func:`s1tiling.times.seconds_since`).
Everything is parsed once, into plain arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lxml import etree

from ..geometry.orbit import StateVectors
from ..times import parse_time

SPEED_OF_LIGHT = 299792458.0


@dataclass(frozen=True)
class GeolocationGrid:
    """ESA's geolocation grid, as annotated (flat arrays, one entry per grid point)."""

    azimuth_time: np.ndarray  # datetime64[ns]
    slant_range_time: np.ndarray  # two-way, seconds
    line: np.ndarray
    pixel: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    height: np.ndarray
    incidence_angle: np.ndarray
    elevation_angle: np.ndarray

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class CoordinateConversion:
    """Slant-range <-> ground-range polynomials, one record per ~1 s of azimuth time.

    ``srgr[i]`` (resp. ``grsr[i]``) are the coefficients of record i, padded with zeros
    to a common length: gr = sum_k srgr[i, k] * (sr - sr0[i])**k and
    sr = sum_k grsr[i, k] * (gr - gr0[i])**k.
    """

    azimuth_time: np.ndarray  # datetime64[ns]
    slant_range_time: np.ndarray
    sr0: np.ndarray
    srgr: np.ndarray
    gr0: np.ndarray
    grsr: np.ndarray


@dataclass(frozen=True)
class ImageInformation:
    first_line_time: np.datetime64
    last_line_time: np.datetime64
    slant_range_time: float  # two-way time of the first sample (near range)
    range_pixel_spacing: float
    azimuth_pixel_spacing: float
    azimuth_time_interval: float
    number_of_samples: int
    number_of_lines: int
    incidence_angle_mid_swath: float
    pixel_value: str
    output_pixels: str


@dataclass(frozen=True)
class ProductAnnotation:
    """The parts of a product annotation the chain uses."""

    mission: str
    product_type: str
    polarisation: str
    mode: str
    swath: str
    start_time: np.datetime64
    stop_time: np.datetime64
    absolute_orbit: int
    mission_datatake_id: int
    image_number: str
    pass_direction: str  # "Ascending" / "Descending"
    radar_frequency: float
    range_sampling_rate: float
    platform_heading: float
    image: ImageInformation
    orbit: StateVectors
    geolocation_grid: GeolocationGrid
    coordinate_conversion: CoordinateConversion
    ellipsoid_semi_major_axis: float
    ellipsoid_semi_minor_axis: float
    bistatic_delay_correction_applied: bool
    thermal_noise_correction_performed: bool


def _text(node, path):
    found = node.find(path)
    if found is None or found.text is None:
        raise ValueError(f"missing element <{path}>")
    return found.text.strip()


def _float(node, path):
    return float(_text(node, path))


def _floats(text) -> np.ndarray:
    return np.array(text.split(), dtype=np.float64)


def _padded(rows):
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def parse_annotation(source: str | Path | bytes | etree._Element) -> ProductAnnotation:
    """Parse a product annotation from a path, bytes or an already parsed tree.

    Raises ``ValueError`` (or ``lxml.etree.XMLSyntaxError``) with the missing element
    named; the product reader wraps it into an error naming product and file.
    """
    if isinstance(source, (bytes, bytearray)):
        root = etree.fromstring(source)
    elif isinstance(source, etree._Element):
        root = source
    else:
        root = etree.parse(str(source)).getroot()

    hdr = root.find("adsHeader")
    if hdr is None:
        raise ValueError("missing element <adsHeader>: not a Sentinel-1 product annotation")
    info = root.find("generalAnnotation/productInformation")
    img = root.find("imageAnnotation/imageInformation")
    proc = root.find("imageAnnotation/processingInformation")
    if info is None or img is None or proc is None:
        raise ValueError("missing generalAnnotation/productInformation or imageAnnotation")

    image = ImageInformation(
        first_line_time=parse_time(_text(img, "productFirstLineUtcTime")),
        last_line_time=parse_time(_text(img, "productLastLineUtcTime")),
        slant_range_time=_float(img, "slantRangeTime"),
        range_pixel_spacing=_float(img, "rangePixelSpacing"),
        azimuth_pixel_spacing=_float(img, "azimuthPixelSpacing"),
        azimuth_time_interval=_float(img, "azimuthTimeInterval"),
        number_of_samples=int(_text(img, "numberOfSamples")),
        number_of_lines=int(_text(img, "numberOfLines")),
        incidence_angle_mid_swath=_float(img, "incidenceAngleMidSwath"),
        pixel_value=_text(img, "pixelValue"),
        output_pixels=_text(img, "outputPixels"),
    )

    orbits = root.findall("generalAnnotation/orbitList/orbit")
    if not orbits:
        raise ValueError("no orbit state vector in generalAnnotation/orbitList")
    orbit = StateVectors(
        times=np.array([parse_time(_text(o, "time")) for o in orbits]),
        positions=np.array([[_float(o, f"position/{a}") for a in "xyz"] for o in orbits]),
        velocities=np.array([[_float(o, f"velocity/{a}") for a in "xyz"] for o in orbits]),
    )

    points = root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    if not points:
        raise ValueError("no geolocationGridPoint in geolocationGrid")

    def column(tag, conv=float):
        return np.array([conv(_text(p, tag)) for p in points])

    grid = GeolocationGrid(
        azimuth_time=column("azimuthTime", parse_time).astype("datetime64[ns]"),
        slant_range_time=column("slantRangeTime"),
        line=column("line"),
        pixel=column("pixel"),
        latitude=column("latitude"),
        longitude=column("longitude"),
        height=column("height"),
        incidence_angle=column("incidenceAngle"),
        elevation_angle=column("elevationAngle"),
    )

    records = root.findall("coordinateConversion/coordinateConversionList/coordinateConversion")
    if not records:
        raise ValueError("no coordinateConversion record (not a GRD product?)")
    conversion = CoordinateConversion(
        azimuth_time=np.array([parse_time(_text(r, "azimuthTime")) for r in records]),
        slant_range_time=np.array([_float(r, "slantRangeTime") for r in records]),
        sr0=np.array([_float(r, "sr0") for r in records]),
        srgr=_padded([_floats(_text(r, "srgrCoefficients")) for r in records]),
        gr0=np.array([_float(r, "gr0") for r in records]),
        grsr=_padded([_floats(_text(r, "grsrCoefficients")) for r in records]),
    )

    return ProductAnnotation(
        mission=_text(hdr, "missionId"),
        product_type=_text(hdr, "productType"),
        polarisation=_text(hdr, "polarisation"),
        mode=_text(hdr, "mode"),
        swath=_text(hdr, "swath"),
        start_time=parse_time(_text(hdr, "startTime")),
        stop_time=parse_time(_text(hdr, "stopTime")),
        absolute_orbit=int(_text(hdr, "absoluteOrbitNumber")),
        mission_datatake_id=int(_text(hdr, "missionDataTakeId")),
        image_number=_text(hdr, "imageNumber"),
        pass_direction=_text(info, "pass"),
        radar_frequency=_float(info, "radarFrequency"),
        range_sampling_rate=_float(info, "rangeSamplingRate"),
        platform_heading=_float(info, "platformHeading"),
        image=image,
        orbit=orbit,
        geolocation_grid=grid,
        coordinate_conversion=conversion,
        ellipsoid_semi_major_axis=_float(proc, "ellipsoidSemiMajorAxis"),
        ellipsoid_semi_minor_axis=_float(proc, "ellipsoidSemiMinorAxis"),
        bistatic_delay_correction_applied=_text(proc, "bistaticDelayCorrectionApplied").lower() == "true",
        thermal_noise_correction_performed=(
            proc.findtext("thermalNoiseCorrectionPerformed", "false").strip().lower() == "true"
        ),
    )

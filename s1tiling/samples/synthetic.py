"""Synthetic Sentinel-1 IW GRD products (metadata only), for tests and the demo without reference data.

:func:`make_safe` writes a SAFE folder like those of ``shared/data/s1``: ``manifest.safe``,
and per polarisation the product annotation, calibration and noise XML; no measurement
(:func:`s1tiling.samples.testing.build_product` writes the TIFFs from it)::

    from s1tiling.samples.synthetic import make_safe
    from s1tiling.samples.testing import build_product
    template = make_safe(tmp_path / "templates", center_lat=45.5, center_lon=3.3)
    product = build_product(template, tmp_path / "s1", content="speckle")

Geometry, computed here from first principles (never from the chain's own geometry code):

- a circular orbit (693 km above the equatorial radius, inclination 98.18 degrees), placed
  so that the scene centre of slice 1 lies at (``center_lat``, ``center_lon``) at an
  incidence of 39 degrees, right of the track; ECEF state vectors (Earth rotation included,
  velocities the exact derivatives of the positions) every 10 s, 60 s around the product;
- zero Doppler in ECEF, ground points on the WGS84 ellipsoid (height 0);
- ground range: arc length on the ellipsoid, in the zero-Doppler plane, from the first
  sample; ``rangePixelSpacing`` apart. ``coordinateConversion`` records (every second) hold
  degree-8 srgr/grsr fits of that relation (residuals below 1 mm);
- geolocation grid (10 lines x 21 pixels on whole lines and pixels, height 0): the exact
  geometry at each point's own time, not the fitted polynomials;
- calibration: betaNought constant (474, as in ESA's IPF 3 products), sigmaNought =
  beta / sqrt(sin(incidence)), gamma = beta / sqrt(tan(incidence)), dn = beta; noise in
  the format of the IPF version (``noiseRangeVector`` x ``noiseAzimuthVector`` from 2.90,
  ``noiseVector`` before), small values (tens of DN^2).

Consecutive slices of one datatake (``slice_number`` 1, 2, ...) share the orbit, the
timing and the near range, and overlap by :data:`SLICE_OVERLAP_LINES` lines, as ESA's do.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
from lxml import etree
from numpy.typing import ArrayLike
from rasterio.transform import Affine

from ..geometry.ellipsoid import WGS84_A, WGS84_B

__all__ = ["make_safe", "write_eof", "write_zero_geoid", "SLICE_OVERLAP_LINES"]

SPEED_OF_LIGHT = 299792458.0
GM = 3.986004418e14  # m^3 / s^2
EARTH_ROTATION = 7.2921151467e-5  # rad / s
ALTITUDE = 693e3  # metres above the equatorial radius
INCLINATION = 98.18  # degrees
MID_SWATH_INCIDENCE = 39.0  # degrees, at the scene centre
RADAR_FREQUENCY = 5.405000454334350e9
RANGE_SAMPLING_RATE = 6.434523812571428e7
BETA_NOUGHT = 474.0
NOISE_LEVEL = 50.0  # DN^2, mean of the range noise LUT
STATE_VECTOR_STEP = 10  # seconds
ORBIT_MARGIN = 60  # seconds of state vectors before and after the product
RECORD_STEP = 1.0  # seconds between coordinateConversion records and LUT vectors
RANGE_POLYNOMIAL_DEGREE = 8  # 9 coefficients, as in ESA's recent annotations
GRID_SHAPE = (10, 21)  # geolocation grid lines x pixels
LUT_PIXEL_STEP = 40  # samples between LUT nodes
NOISE_AZIMUTH_STEP = 25  # lines between noiseAzimuthLut nodes
SLICE_OVERLAP_LINES = 10
_TABLE_SIZE = 2001  # slant/ground range pairs per azimuth time
_POLARISATION_CODES = {("VV", "VH"): "DV", ("HH", "HV"): "DH", ("VV",): "SV", ("HH",): "SH"}
#: One known orbit per unit: (UTC time, absolute orbit, relative orbit), consistent with the
#: relative orbit formulas (absolute - 73) % 175 + 1 (S1A), (absolute - 27) % 175 + 1 (S1B);
#: S1A and S1C from real products, S1B made up. 175 orbits every 12 days.
_ORBIT_REFERENCES = {
    "S1A": ("2021-08-09T17:27:46", 39156, 59),
    "S1B": ("2021-08-09T00:00:00", 28100, 74),
    "S1C": ("2025-01-18T17:01:49", 638, 15),
}


# ------------------------------------------------------------------------------ geometry


@functools.cache
def _transformers():
    """(geodetic -> ECEF, ECEF -> geodetic) on WGS84, lon/lat in degrees."""
    return (pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True),
            pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True))


def _ecef(lat, lon, height=0.0) -> np.ndarray:
    x, y, z = _transformers()[0].transform(lon, lat, height)
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1).astype(np.float64)


def _geodetic(points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon, height) of ECEF points (..., 3)."""
    points = np.asarray(points, dtype=np.float64)
    lon, lat, height = _transformers()[1].transform(points[..., 0], points[..., 1], points[..., 2])
    return np.asarray(lat), np.asarray(lon), np.asarray(height)


def _unit(v) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class _CircularOrbit:
    """A circular Keplerian orbit seen in ECEF: argument of latitude ``u0`` and ascending node
    longitude ``raan`` (radians) at ``centre_time``, when the inertial and ECEF frames coincide."""

    raan: float
    u0: float
    centre_time: float = 0.0  # seconds from the product epoch
    radius: float = WGS84_A + ALTITUDE
    inclination: float = math.radians(INCLINATION)

    @property
    def mean_motion(self) -> float:
        return math.sqrt(GM / self.radius**3)

    def state(self, t) -> tuple[np.ndarray, np.ndarray]:
        """ECEF positions and velocities (shape ``t.shape + (3,)``) at ``t`` seconds from the epoch."""
        tau = np.asarray(t, dtype=np.float64) - self.centre_time
        ci, si = math.cos(self.inclination), math.sin(self.inclination)
        p = np.array([math.cos(self.raan), math.sin(self.raan), 0.0])
        q = np.array([-ci * math.sin(self.raan), ci * math.cos(self.raan), si])
        u = (self.u0 + self.mean_motion * tau)[..., None]
        r = self.radius * (np.cos(u) * p + np.sin(u) * q)
        v = self.radius * self.mean_motion * (-np.sin(u) * p + np.cos(u) * q)
        v = v - EARTH_ROTATION * np.stack([-r[..., 1], r[..., 0], np.zeros_like(r[..., 0])], axis=-1)
        theta = EARTH_ROTATION * tau
        c, s = np.cos(theta), np.sin(theta)

        def to_ecef(w):  # rotate by -theta about z
            return np.stack([c * w[..., 0] + s * w[..., 1], -s * w[..., 0] + c * w[..., 1], w[..., 2]], axis=-1)

        return to_ecef(r), to_ecef(v)


def _ground_points(position, velocity, slant_range) -> np.ndarray:
    """ECEF points on the ellipsoid (height 0) at ``slant_range`` from ``position``, in the
    zero-Doppler plane, right of the track (Newton on the look angle)."""
    slant = np.asarray(slant_range, dtype=np.float64)[..., None]
    along = _unit(velocity)
    down = _unit(-(position - np.sum(position * along, axis=-1, keepdims=True) * along))
    right = np.cross(down, along)
    rs = np.linalg.norm(position, axis=-1, keepdims=True)
    earth = WGS84_B  # first guess of the local radius: Newton does the rest
    look = np.arccos(np.clip((rs**2 + slant**2 - earth**2) / (2 * rs * slant), -1, 1))
    scale = np.array([WGS84_A**-2, WGS84_A**-2, WGS84_B**-2])
    for _ in range(30):
        point = position + slant * (np.cos(look) * down + np.sin(look) * right)
        tangent = slant * (-np.sin(look) * down + np.cos(look) * right)
        g = np.sum(point**2 * scale, axis=-1, keepdims=True) - 1.0
        dg = 2 * np.sum(point * tangent * scale, axis=-1, keepdims=True)
        step = g / dg
        look = look - step
        if np.max(np.abs(step)) < 1e-14:
            break
    return position + slant * (np.cos(look) * down + np.sin(look) * right)


def _incidence(points, position) -> np.ndarray:
    """Incidence angles (degrees) between the geocentric radius and the direction to the satellite
    (the convention of ESA's annotated incidenceAngle)."""
    return np.degrees(np.arccos(np.sum(_unit(points) * _unit(position - points), axis=-1)))


def _elevation(points, position) -> np.ndarray:
    """Off-nadir angles (degrees) at the satellite."""
    return np.degrees(np.arccos(np.sum(_unit(-position) * _unit(points - position), axis=-1)))


@dataclass(frozen=True)
class _Swath:
    """The geometry across the swath at one azimuth time: slant range <-> ground range tables."""

    position: np.ndarray
    velocity: np.ndarray
    slant: np.ndarray  # increasing, from the near range
    ground: np.ndarray  # arc length from the near-range point

    @classmethod
    def at(cls, orbit: _CircularOrbit, t: float, near_range: float, width: float) -> _Swath:
        position, velocity = orbit.state(t)
        # d(slant)/d(ground) = sin(incidence) < 1: a slant span of ``width`` covers it.
        slant = near_range + np.linspace(0.0, width, _TABLE_SIZE)
        points = _ground_points(position, velocity, slant)
        ground = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        return cls(position, velocity, slant, ground)

    def slant_range(self, ground) -> np.ndarray:
        return np.interp(ground, self.ground, self.slant)

    def points(self, ground) -> np.ndarray:
        return _ground_points(self.position, self.velocity, self.slant_range(ground))

    def polynomials(self, width: float) -> tuple[np.ndarray, np.ndarray]:
        """(srgr, grsr) coefficients fitted over ground ranges [0, width]: gr = srgr(sr - sr0),
        sr = grsr(gr)."""
        keep = self.ground <= width * 1.01
        x, y = self.slant[keep] - self.slant[0], self.ground[keep]
        fit = np.polynomial.Polynomial.fit
        srgr = fit(x, y, RANGE_POLYNOMIAL_DEGREE).convert().coef
        grsr = fit(y, self.slant[keep], RANGE_POLYNOMIAL_DEGREE).convert().coef
        return srgr, grsr


def _place_orbit(lat: float, lon: float, ascending: bool) -> tuple[_CircularOrbit, float]:
    """The orbit that sees (lat, lon) at time 0 at the mid-swath incidence, and that slant range."""
    target = _ecef(lat, lon)
    g = target / np.linalg.norm(target)
    earth, radius = float(np.linalg.norm(target)), WGS84_A + ALTITUDE
    incidence = math.radians(MID_SWATH_INCIDENCE)
    psi = incidence - math.asin(earth * math.sin(incidence) / radius)  # Earth angle, nadir to target
    slant = math.sqrt(earth**2 + radius**2 - 2 * earth * radius * math.cos(psi))
    # First guess on a sphere without rotation: the orbit normal h satisfies g . h = -sin(psi).
    i = math.radians(INCLINATION)
    k = (-math.sin(psi) - g[2] * math.cos(i)) / (math.hypot(g[0], g[1]) * math.sin(i))
    if abs(k) > 1:
        raise ValueError(f"latitude {lat} is out of reach of a Sentinel-1 orbit at {MID_SWATH_INCIDENCE} deg "
                         "incidence")
    for delta in (math.asin(k), math.pi - math.asin(k)):
        raan = math.atan2(g[1], g[0]) + delta
        h = np.array([math.sin(i) * math.sin(raan), -math.sin(i) * math.cos(raan), math.cos(i)])
        sub = (g + math.sin(psi) * h) / math.cos(psi)
        p = np.array([math.cos(raan), math.sin(raan), 0.0])
        u0 = math.atan2(sub @ np.cross(h, p), sub @ p)
        if (math.cos(u0) > 0) == ascending:
            break
    # Newton on (raan, u0) with the rotating Earth and the ellipsoid.
    goal = np.radians([lat, lon])

    def miss(params):
        orbit = _CircularOrbit(*params)
        point = _ground_points(*orbit.state(0.0), slant)
        la, lo, _ = _geodetic(point)
        d = np.radians([la, lo]) - goal
        d[1] = (d[1] + math.pi) % (2 * math.pi) - math.pi
        return d

    params = np.array([raan, u0])
    for _ in range(20):
        d = miss(params)
        if np.max(np.abs(d)) < 1e-13:
            return _CircularOrbit(*params), slant
        jacobian = np.column_stack([(miss(params + e) - d) / 1e-7 for e in np.eye(2) * 1e-7])
        params = params - np.linalg.solve(jacobian, d)
    raise ValueError(f"no orbit found that sees latitude {lat}, longitude {lon}")


@dataclass(frozen=True)
class _Scene:
    """The timing and range geometry of one slice; times in seconds from ``epoch``."""

    orbit: _CircularOrbit
    epoch: np.datetime64  # first line of slice 1 (datetime64[us])
    first_line: float
    interval: float  # azimuthTimeInterval
    near_range: float
    spacing: float
    lines: int
    samples: int

    @property
    def width(self) -> float:
        return (self.samples - 1) * self.spacing

    @property
    def last_line(self) -> float:
        return float(self.line_time(self.lines - 1))

    def line_time(self, line: ArrayLike) -> np.ndarray:
        return self.first_line + np.asarray(line, dtype=np.float64) * self.interval

    def swath(self, t: float) -> _Swath:
        return _Swath.at(self.orbit, t, self.near_range, self.width)

    @property
    def near_range_time(self) -> float:
        """Two-way slant range time of the first sample."""
        return 2 * self.near_range / SPEED_OF_LIGHT

    def time(self, t: float | np.ndarray) -> np.datetime64:
        """The epoch plus ``t`` seconds, to the microsecond."""
        return self.epoch + np.timedelta64(round(t * 1e6), "us")  # type: ignore[arg-type, call-overload]  # 0-d t

    def utc(self, t: float | np.ndarray) -> str:
        """An annotation time (``2021-08-09T17:39:53.153776``)."""
        return str(np.datetime_as_string(self.time(t), unit="us"))


def _scene(start: dt.datetime, center_lat, center_lon, ascending, lines, samples, spacing, slice_number) -> _Scene:
    orbit, centre_slant = _place_orbit(center_lat, center_lon, ascending)
    half = (samples - 1) / 2 * spacing
    # Near range: the ground range from it to the scene centre is half the swath.
    swath = _Swath.at(orbit, 0.0, centre_slant - half, half)
    near_range = float(np.interp(swath.ground[-1] - half, swath.ground, swath.slant))
    centre = _ground_points(*orbit.state(np.array([-0.5, 0.5])), centre_slant)
    interval = spacing / float(np.linalg.norm(centre[1] - centre[0]))
    centre_time = (lines - 1) / 2 * interval
    first_line = round((slice_number - 1) * (lines - SLICE_OVERLAP_LINES) * interval, 6)
    epoch = np.datetime64(start.astimezone(dt.timezone.utc).replace(tzinfo=None), "us")
    return _Scene(_CircularOrbit(orbit.raan, orbit.u0, centre_time), epoch, first_line, interval,
                  near_range, spacing, lines, samples)


# ------------------------------------------------------------------------------ XML


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.15e}"
    return " ".join(_text(v) for v in value)


def _el(parent, tag: str, value=None, **attrib):
    node = etree.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if value is not None:
        node.text = _text(value)
    return node


def _fields(parent, **fields):
    for tag, value in fields.items():
        _el(parent, tag, value)
    return parent


def _array(parent, tag: str, values, fmt: str | None = None):
    """A list element with its ``count`` attribute; ``fmt`` formats each value (default: _text)."""
    text = " ".join(format(v, fmt) for v in values) if fmt else _text(list(values))
    return _el(parent, tag, text, count=len(values))


def _xml_bytes(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@dataclass(frozen=True)
class _Identity:
    """Names and numbers of one product."""

    platform: str
    pass_direction: str  # "ASC" / "DES"
    absolute_orbit: int
    relative_orbit: int
    datatake: int
    ipf: str
    polarisations: tuple[str, ...]
    slice_number: int
    start: str  # annotation times of the first and last lines
    stop: str

    def name(self, product_type: str) -> str:
        """``S1A_IW_GRDH_1SDV_<start>_<stop>_<orbit>_<datatake>_<crc>``."""
        body = (f"{self.platform}_IW_{product_type}_1S{_POLARISATION_CODES[self.polarisations]}_"
                f"{_stamp(self.start)}_{_stamp(self.stop)}_{self.absolute_orbit:06d}_{self.datatake:06X}")
        return f"{body}_{zlib.crc32(body.encode()) & 0xFFFF:04X}"

    def stem(self, pol: str) -> str:
        """``s1a-iw-grd-vv-<start>-<stop>-<orbit>-<datatake>-<image number>``."""
        return (f"{self.platform.lower()}-iw-grd-{pol.lower()}-{_stamp(self.start).lower()}-"
                f"{_stamp(self.stop).lower()}-{self.absolute_orbit:06d}-{self.datatake:06x}-{self.image_number(pol)}")

    def image_number(self, pol: str) -> str:
        return f"{self.polarisations.index(pol) + 1:03d}"

    @property
    def ipf_number(self) -> float:
        return float(self.ipf)


def _stamp(utc: str) -> str:
    """'2021-08-09T17:39:53.153776' -> '20210809T173953'."""
    return utc[:19].replace("-", "").replace(":", "")


def _ads_header(root, ident: _Identity, pol: str):
    _fields(_el(root, "adsHeader"), missionId=ident.platform, productType="GRD", polarisation=pol, mode="IW",
            swath="IW", startTime=ident.start, stopTime=ident.stop, absoluteOrbitNumber=ident.absolute_orbit,
            missionDataTakeId=ident.datatake, imageNumber=ident.image_number(pol))


def _record_times(scene: _Scene) -> np.ndarray:
    """Times of the coordinateConversion and azimuthFmRate records: every second, from one
    second before the first line to one second after the last."""
    count = math.ceil((scene.last_line - scene.first_line) / RECORD_STEP) + 3
    return scene.first_line + RECORD_STEP * (np.arange(count) - 1)


def _vector_lines(scene: _Scene, past_the_end: bool) -> np.ndarray:
    """Lines of the LUT vectors, one per second; the last one past the last line (calibration)
    or on it (noise)."""
    step = max(1, round(RECORD_STEP / scene.interval))
    lines = np.arange(0, scene.lines - 1, step)
    return np.append(lines, lines[-1] + step if past_the_end else scene.lines - 1)


def _lut_pixels(samples: int) -> np.ndarray:
    return np.append(np.arange(0, samples - 1, LUT_PIXEL_STEP), samples - 1)


def _annotation(scene: _Scene, ident: _Identity, pol: str) -> bytes:
    root = etree.Element("product")
    _ads_header(root, ident, pol)
    records = _record_times(scene)
    _general_annotation(_el(root, "generalAnnotation"), scene, ident, records)
    _image_annotation(_el(root, "imageAnnotation"), scene, ident)
    # Zero-Doppler processing of a perfectly steered antenna: null Doppler centroids.
    estimates = _el(_el(root, "dopplerCentroid"), "dcEstimateList", count=len(records))
    for t in records:
        estimate = _fields(_el(estimates, "dcEstimate"), azimuthTime=scene.utc(t), t0=scene.near_range_time)
        _array(estimate, "geometryDcPolynomial", [0.0, 0.0, 0.0])
        _array(estimate, "dataDcPolynomial", [0.0, 0.0, 0.0])
    _el(_fields(_el(root, "swathTiming"), linesPerBurst=0, samplesPerBurst=0), "burstList", count=0)
    _geolocation_grid(_el(root, "geolocationGrid"), scene)
    conversions = _el(_el(root, "coordinateConversion"), "coordinateConversionList", count=len(records))
    for t in records:
        srgr, grsr = scene.swath(t).polynomials(scene.width)
        record = _fields(_el(conversions, "coordinateConversion"), azimuthTime=scene.utc(t),
                         slantRangeTime=scene.near_range_time, sr0=scene.near_range)
        _array(record, "srgrCoefficients", srgr)
        _el(record, "gr0", 0.0)
        _array(record, "grsrCoefficients", grsr)
    return _xml_bytes(root)


def _general_annotation(general, scene: _Scene, ident: _Identity, records: np.ndarray) -> None:
    """productInformation, orbitList, terrainHeightList and azimuthFmRateList."""
    position, velocity = scene.orbit.state(scene.orbit.centre_time)
    east, north, _ = _enu(position, velocity)  # platformHeading: of the satellite, where it is
    _fields(_el(general, "productInformation"), **{
        "pass": "Ascending" if ident.pass_direction == "ASC" else "Descending", "timelinessCategory": "NRT-3h",
        "platformHeading": math.degrees(math.atan2(east, north)), "projection": "Ground Range",
        "rangeSamplingRate": RANGE_SAMPLING_RATE, "radarFrequency": RADAR_FREQUENCY,
        "azimuthSteeringRate": 1.590368784})

    # State vectors on whole UTC seconds, ORBIT_MARGIN around the product.
    first = math.floor(scene.first_line - ORBIT_MARGIN)
    times = np.arange(first, scene.last_line + ORBIT_MARGIN + STATE_VECTOR_STEP, STATE_VECTOR_STEP, dtype=float)
    times -= (scene.epoch - scene.epoch.astype("datetime64[s]")).astype(np.float64) * 1e-6
    orbits = _el(general, "orbitList", count=len(times))
    for t, p, v in zip(times, *scene.orbit.state(times)):
        orbit = _fields(_el(orbits, "orbit"), time=scene.utc(t), frame="Earth Fixed")
        _fields(_el(orbit, "position"), x=p[0], y=p[1], z=p[2])
        _fields(_el(orbit, "velocity"), x=v[0], y=v[1], z=v[2])

    # Several records, as ESA's (OTB's XML reader names a lone child differently).
    terrain = _el(general, "terrainHeightList", count=len(records))
    for t in records:
        _fields(_el(terrain, "terrainHeight"), azimuthTime=scene.utc(t), value=0.0)

    # Azimuth FM rate -2 V Vg / (lambda R), R growing with the range time.
    rates = _el(general, "azimuthFmRateList", count=len(records))
    tau = scene.near_range_time
    for t, v in zip(records, scene.orbit.state(records)[1]):
        rate = (-2 * float(np.linalg.norm(v)) * (scene.spacing / scene.interval) * RADAR_FREQUENCY
                / SPEED_OF_LIGHT / scene.near_range)
        coefficients = (rate, -rate / tau, rate / tau**2)
        node = _fields(_el(rates, "azimuthFmRate"), azimuthTime=scene.utc(t), t0=tau)
        if ident.ipf_number >= 2.43:
            _array(node, "azimuthFmRatePolynomial", coefficients)
        else:  # the old layout
            _fields(node, c0=coefficients[0], c1=coefficients[1], c2=coefficients[2])


def _image_annotation(image, scene: _Scene, ident: _Identity) -> None:
    """imageInformation and processingInformation."""
    centre = scene.orbit.centre_time
    mid_swath = scene.swath(centre).points(scene.width / 2)
    _fields(_el(image, "imageInformation"),
            productFirstLineUtcTime=ident.start, productLastLineUtcTime=ident.stop,
            ascendingNodeTime=scene.utc(_ascending_node_time(scene)), anchorTime=scene.utc(0.0),
            productComposition="Slice", sliceNumber=ident.slice_number, slantRangeTime=scene.near_range_time,
            pixelValue="Detected", outputPixels="16 bit Unsigned Integer", rangePixelSpacing=scene.spacing,
            azimuthPixelSpacing=scene.spacing, azimuthTimeInterval=scene.interval,
            azimuthFrequency=1.0 / scene.interval, numberOfSamples=scene.samples, numberOfLines=scene.lines,
            zeroDopMinusAcqTime=0.0,
            incidenceAngleMidSwath=float(_incidence(mid_swath, scene.orbit.state(centre)[0])))
    _fields(_el(image, "processingInformation"),
            rawDataAnalysisUsed=True, orbitDataFileUsed=False, attitudeDataFileUsed=False,
            rxVariationCorrectionApplied=True, antennaElevationPatternApplied=True,
            antennaAzimuthPatternApplied=True, antennaAzimuthElementPatternApplied=True,
            dcMethod="Data Analysis", dcInputData="Range Compressed", rangeSpreadingLossCompensationApplied=True,
            srgrConversionApplied=True, detectionPerformed=True, thermalNoiseCorrectionPerformed=False,
            chirpSource="Nominal", pgSource="Extracted", rrfSpectrum="Extended Tapered",
            applicationLutId="IW_Default", referenceRange=8.0e5, ellipsoidName="WGS84",
            ellipsoidSemiMajorAxis=WGS84_A, ellipsoidSemiMinorAxis=WGS84_B,
            bistaticDelayCorrectionApplied=True, topsFilterConvention="Only Echo Lines",
            orbitSource="Downlink", attitudeSource="Downlink")


def _geolocation_grid(node, scene: _Scene) -> None:
    """GRID_SHAPE points on whole lines and pixels, from the exact geometry at each line's time."""
    grid_lines = np.round(np.linspace(0, scene.lines - 1, GRID_SHAPE[0])).astype(int)
    grid_pixels = np.round(np.linspace(0, scene.samples - 1, GRID_SHAPE[1])).astype(int)
    grid = _el(node, "geolocationGridPointList", count=grid_lines.size * grid_pixels.size)
    for line in grid_lines:
        t = float(scene.line_time(line))
        swath = scene.swath(t)
        slant = swath.slant_range(grid_pixels * scene.spacing)
        points = _ground_points(swath.position, swath.velocity, slant)
        lat, lon, _ = _geodetic(points)
        incidence = _incidence(points, swath.position)
        elevation = _elevation(points, swath.position)
        for j, pixel in enumerate(grid_pixels):
            _fields(_el(grid, "geolocationGridPoint"), azimuthTime=scene.utc(t),
                    slantRangeTime=2 * slant[j] / SPEED_OF_LIGHT, line=int(line), pixel=int(pixel),
                    latitude=lat[j], longitude=lon[j], height=0.0, incidenceAngle=incidence[j],
                    elevationAngle=elevation[j])


def _enu(origin, vector) -> np.ndarray:
    """(east, north, up) components of an ECEF ``vector`` at the geodetic position of ``origin``."""
    lat, lon, _ = _geodetic(origin)
    la, lo = math.radians(float(lat)), math.radians(float(lon))
    east = np.array([-math.sin(lo), math.cos(lo), 0.0])
    north = np.array([-math.sin(la) * math.cos(lo), -math.sin(la) * math.sin(lo), math.cos(la)])
    up = np.cross(east, north)
    return np.array([vector @ east, vector @ north, vector @ up])


def _ascending_node_time(scene: _Scene) -> float:
    """Seconds from the epoch of the last ascending node before the scene centre."""
    return scene.orbit.centre_time - (scene.orbit.u0 % (2 * math.pi)) / scene.orbit.mean_motion


def _incidence_at_nodes(scene: _Scene, line: float, pixels: np.ndarray) -> np.ndarray:
    swath = scene.swath(float(scene.line_time(line)))
    return _incidence(swath.points(pixels * scene.spacing), swath.position)


def _calibration(scene: _Scene, ident: _Identity, pol: str) -> bytes:
    root = etree.Element("calibration")
    _ads_header(root, ident, pol)
    _el(_el(root, "calibrationInformation"), "absoluteCalibrationConstant", "1.000000e+00")
    lines = _vector_lines(scene, past_the_end=True)
    pixels = _lut_pixels(scene.samples)
    vectors = _el(root, "calibrationVectorList", count=len(lines))
    for line in lines:
        incidence = np.radians(_incidence_at_nodes(scene, line, pixels))
        beta = np.full(pixels.size, BETA_NOUGHT)
        vector = _fields(_el(vectors, "calibrationVector"), azimuthTime=scene.utc(scene.line_time(line)),
                         line=int(line))
        _array(vector, "pixel", pixels)
        _array(vector, "sigmaNought", beta / np.sqrt(np.sin(incidence)), ".6e")
        _array(vector, "betaNought", beta, ".6e")
        _array(vector, "gamma", beta / np.sqrt(np.tan(incidence)), ".6e")
        _array(vector, "dn", beta, ".6e")
    return _xml_bytes(root)


def _noise(scene: _Scene, ident: _Identity, pol: str) -> bytes:
    root = etree.Element("noise")
    _ads_header(root, ident, pol)
    lines = _vector_lines(scene, past_the_end=False)
    pixels = _lut_pixels(scene.samples)
    # Three bumps across the swath, like the three IW sub-swaths.
    range_lut = NOISE_LEVEL * (1.0 + 0.4 * np.cos(2 * np.pi * 3 * pixels / scene.samples))
    new_format = ident.ipf_number >= 2.90
    vectors = _el(root, "noiseRangeVectorList" if new_format else "noiseVectorList", count=len(lines))
    for line in lines:
        vector = _fields(_el(vectors, "noiseRangeVector" if new_format else "noiseVector"),
                         azimuthTime=scene.utc(scene.line_time(line)), line=int(line))
        _array(vector, "pixel", pixels)
        _array(vector, "noiseRangeLut" if new_format else "noiseLut", range_lut, ".6e")
    if new_format:
        bounds = np.linspace(0, scene.samples, 4).round().astype(int)
        az_lines = np.append(np.arange(0, scene.lines - 1, NOISE_AZIMUTH_STEP), scene.lines - 1)
        blocks = _el(root, "noiseAzimuthVectorList", count=3)
        for k in range(3):
            block = _fields(_el(blocks, "noiseAzimuthVector"), swath=f"IW{k + 1}", firstAzimuthLine=0,
                            firstRangeSample=int(bounds[k]), lastAzimuthLine=scene.lines - 1,
                            lastRangeSample=int(bounds[k + 1] - 1))
            _array(block, "line", az_lines)
            _array(block, "noiseAzimuthLut", 1.0 + 0.05 * np.sin(2 * np.pi * az_lines / 400.0 + k), ".6e")
    return _xml_bytes(root)


# ------------------------------------------------------------------------------ manifest

_NS = {
    "xfdu": "urn:ccsds:schema:xfdu:1",
    "gml": "http://www.opengis.net/gml",
    "safe": "http://www.esa.int/safe/sentinel-1.0",
    "s1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1",
    "s1sarl1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1",
}
_REP_IDS = {"annotation": "s1Level1ProductSchema", "noise": "s1Level1NoiseSchema",
            "calibration": "s1Level1CalibrationSchema", "measurement": "s1Level1MeasurementSchema"}


def _q(prefix: str, tag: str) -> str:
    return f"{{{_NS[prefix]}}}{tag}"


def _manifest(scene: _Scene, ident: _Identity, files: dict[tuple[str, str], tuple[str, bytes | None]],
              footprint: list[tuple[float, float]]) -> bytes:
    """``files``: (kind, pol) -> (path relative to the SAFE root, content or None for a measurement)."""
    root = etree.Element(_q("xfdu", "XFDU"), nsmap=_NS,
                         version="esa/safe/sentinel-1.0/sentinel-1/sar/level-1/grd/standard/iwdp")
    package = etree.SubElement(etree.SubElement(root, "informationPackageMap"), _q("xfdu", "contentUnit"),
                               unitType="SAFE Archive Information Package",
                               textInfo="Sentinel-1 IW Level-1 GRD Product")
    metadata = etree.SubElement(root, "metadataSection")
    objects = etree.SubElement(root, "dataObjectSection")
    for (kind, pol), (href, content) in files.items():
        object_id = f"{kind}-{pol.lower()}"
        unit = etree.SubElement(package, _q("xfdu", "contentUnit"), repID=_REP_IDS[kind],
                                unitType="Measurement Data Unit" if content is None else "Metadata Unit")
        etree.SubElement(unit, "dataObjectPointer", dataObjectID=object_id)
        data = etree.SubElement(objects, "dataObject", ID=object_id, repID=_REP_IDS[kind])
        if content is None:
            stream = etree.SubElement(data, "byteStream", mimeType="application/octet-stream")
            etree.SubElement(stream, "fileLocation", locatorType="URL", href=f"./{href}")
        else:
            stream = etree.SubElement(data, "byteStream", mimeType="text/xml", size=str(len(content)))
            etree.SubElement(stream, "fileLocation", locatorType="URL", href=f"./{href}")
            etree.SubElement(stream, "checksum", checksumName="MD5").text = hashlib.md5(content).hexdigest()

    def wrapped(object_id: str, text_info: str, classification: str = "DESCRIPTION", category: str = "DMD"):
        node = etree.SubElement(metadata, "metadataObject", ID=object_id, classification=classification,
                                category=category)
        wrap = etree.SubElement(node, "metadataWrap", mimeType="text/xml", vocabularyName="SAFE", textInfo=text_info)
        return etree.SubElement(wrap, "xmlData")

    def sub(parent, prefix, tag, value=None, **attrib):
        node = etree.SubElement(parent, _q(prefix, tag), {k: str(v) for k, v in attrib.items()})
        if value is not None:
            node.text = _text(value)
        return node

    processing = sub(wrapped("processing", "Processing", "PROVENANCE", "PDI"), "safe", "processing",
                     name="GRD Post Processing", start=scene.utc(scene.last_line + 3600.0),
                     stop=scene.utc(scene.last_line + 3900.0))
    facility = sub(processing, "safe", "facility", name="s1tiling.synthetic", organisation="none")
    sub(facility, "safe", "software", name="Sentinel-1 IPF", version=ident.ipf)

    platform = sub(wrapped("platform", "Platform Description"), "safe", "platform")
    sub(platform, "safe", "familyName", "SENTINEL-1")
    sub(platform, "safe", "number", ident.platform[-1])
    instrument = sub(platform, "safe", "instrument")
    sub(instrument, "safe", "familyName", "Synthetic Aperture Radar", abbreviation="SAR")
    mode = sub(sub(instrument, "safe", "extension"), "s1sarl1", "instrumentMode")
    sub(mode, "s1sarl1", "mode", "IW")
    sub(mode, "s1sarl1", "swath", "IW")

    orbit = sub(wrapped("measurementOrbitReference", "Orbit Reference"), "safe", "orbitReference")
    for kind in ("start", "stop"):
        sub(orbit, "safe", "orbitNumber", ident.absolute_orbit, type=kind)
    for kind in ("start", "stop"):
        sub(orbit, "safe", "relativeOrbitNumber", ident.relative_orbit, type=kind)
    properties = sub(sub(orbit, "safe", "extension"), "s1", "orbitProperties")
    sub(properties, "s1", "pass", "ASCENDING" if ident.pass_direction == "ASC" else "DESCENDING")
    sub(properties, "s1", "ascendingNodeTime", scene.utc(_ascending_node_time(scene)))

    info = sub(wrapped("generalProductInformation", "General Product Information"),
               "s1sarl1", "standAloneProductInformation")
    sub(info, "s1sarl1", "missionDataTakeID", ident.datatake)
    for pol in ident.polarisations:
        sub(info, "s1sarl1", "transmitterReceiverPolarisation", pol)
    for tag, value in (("productClass", "S"), ("productComposition", "Slice"), ("productType", "GRD"),
                       ("productTimelinessCategory", "NRT-3h"), ("sliceProductFlag", True),
                       ("segmentStartTime", scene.utc(0.0)), ("sliceNumber", ident.slice_number),
                       ("totalSlices", max(ident.slice_number, 2))):
        sub(info, "s1sarl1", tag, value)

    period = sub(wrapped("acquisitionPeriod", "Acquisition Period"), "safe", "acquisitionPeriod")
    sub(period, "safe", "startTime", ident.start)
    sub(period, "safe", "stopTime", ident.stop)

    frame = sub(sub(wrapped("measurementFrameSet", "Frame Set"), "safe", "frameSet"), "safe", "frame")
    sub(sub(frame, "safe", "footPrint", srsName="http://www.opengis.net/gml/srs/epsg.xml#4326"),
        "gml", "coordinates", " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in footprint))
    return _xml_bytes(root)


# ------------------------------------------------------------------------------ public API


def _absolute_orbit(platform: str, relative: int, when: np.datetime64) -> int:
    """The absolute orbit of relative orbit ``relative`` nearest to what the unit flies at ``when``."""
    ref_time, ref_absolute, ref_relative = _ORBIT_REFERENCES[platform]
    days = (when - np.datetime64(ref_time, "us")).astype(np.float64) / 86400e6
    estimate = ref_absolute + days * 175 / 12
    base = ref_absolute + (relative - ref_relative)
    absolute = int(base + 175 * round((estimate - base) / 175))
    if absolute < 1:
        raise ValueError(f"{platform} did not fly yet on {when}")
    return absolute


def make_safe(out_dir: str | Path, *, platform: str = "S1A",
              start: dt.datetime = dt.datetime(2021, 8, 9, 17, 39, 53, tzinfo=dt.timezone.utc),
              pass_direction: str = "ASC", relative_orbit: int = 59, center_lat: float = 45.5,
              center_lon: float = 3.3, lines: int = 2000, samples: int = 2500,
              polarisations: tuple[str, ...] = ("VV", "VH"), ipf: str = "003.31",
              pixel_spacing: float = 40.0, slice_number: int = 1, datatake_id: int | None = None) -> Path:
    """Write a metadata-only IW GRD SAFE folder into ``out_dir``; return its path.

    ``start`` is the first line time of slice 1 of the datatake (naive times are UTC),
    (``center_lat``, ``center_lon``) its scene centre; ``slice_number`` > 1 gives the
    following slices of the same datatake. ``pixel_spacing`` (metres, range and azimuth):
    10 makes a GRDH product, anything else a GRDM one (ESA's IW GRDM has 40 m pixels).
    ``datatake_id`` defaults to a number derived from the absolute orbit.
    """
    platform = platform.upper()
    if isinstance(polarisations, str):  # "VV VH", "VV-VH", "HH"
        polarisations = polarisations.replace("-", " ").split()
    pols = tuple(p.upper() for p in polarisations)
    if pols not in _POLARISATION_CODES:
        raise ValueError(f"polarisations {polarisations} are not one of {sorted(_POLARISATION_CODES)}")
    pass_direction = pass_direction.upper()[:3]
    if pass_direction not in ("ASC", "DES"):
        raise ValueError(f"pass_direction must be 'ASC' or 'DES', not {pass_direction!r}")
    if platform not in _ORBIT_REFERENCES:
        raise ValueError(f"unknown platform {platform!r}, expected one of {sorted(_ORBIT_REFERENCES)}")
    if not 1 <= relative_orbit <= 175:
        raise ValueError(f"relative orbit {relative_orbit} is not in 1..175")
    if lines < 2 * SLICE_OVERLAP_LINES or samples < 2 * LUT_PIXEL_STEP or slice_number < 1:
        raise ValueError("lines, samples or slice_number too small")
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)

    scene = _scene(start, center_lat, center_lon, pass_direction == "ASC", lines, samples, pixel_spacing,
                   slice_number)
    absolute = _absolute_orbit(platform, relative_orbit, scene.time(scene.first_line))
    datatake = datatake_id if datatake_id is not None else (absolute * 8) % 0x1000000
    ident = _Identity(platform, pass_direction, absolute, relative_orbit, datatake, ipf, pols, slice_number,
                      scene.utc(scene.first_line), scene.utc(scene.last_line))

    files: dict[tuple[str, str], tuple[str, bytes | None]] = {}
    for pol in pols:
        stem = ident.stem(pol)
        files[("annotation", pol)] = (f"annotation/{stem}.xml", _annotation(scene, ident, pol))
        files[("calibration", pol)] = (f"annotation/calibration/calibration-{stem}.xml",
                                       _calibration(scene, ident, pol))
        files[("noise", pol)] = (f"annotation/calibration/noise-{stem}.xml", _noise(scene, ident, pol))
        files[("measurement", pol)] = (f"measurement/{stem}.tiff", None)
    corners = [(lines - 1, 0), (lines - 1, samples - 1), (0, samples - 1), (0, 0)]  # ESA's order
    footprint = []
    for line, pixel in corners:
        swath = scene.swath(float(scene.line_time(line)))
        lat, lon, _ = _geodetic(swath.points(pixel * pixel_spacing))
        footprint.append((float(lat), float(lon)))
    manifest = _manifest(scene, ident, files, footprint)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{ident.name('GRDH' if pixel_spacing == 10.0 else 'GRDM')}.SAFE"
    if final.exists():
        raise FileExistsError(final)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".synthetic-") as tmp:
        safe = Path(tmp) / final.name
        for href, content in [*files.values(), ("manifest.safe", manifest)]:
            if content is not None:
                (safe / href).parent.mkdir(parents=True, exist_ok=True)
                (safe / href).write_bytes(content)
        os.replace(safe, final)
    return final


def write_eof(out_dir, *, platform: str = "S1A",
              start: dt.datetime = dt.datetime(2021, 8, 9, 17, 39, 53, tzinfo=dt.timezone.utc),
              pass_direction: str = "ASC", relative_orbit: int = 59, center_lat: float = 45.5,
              center_lon: float = 3.3, lines: int = 2000, pixel_spacing: float = 40.0,
              hours_before: float = 2.0, hours_after: float = 2.0, kind: str = "POEORB",
              created: dt.datetime = dt.datetime(2021, 8, 29, 12, 0, 0)) -> Path:
    """Write an orbit file (``S1A_OPER_AUX_POEORB_OPOD_<created>_V<start>_<stop>.EOF``, ESA's Earth
    Explorer layout) of the circular orbit :func:`make_safe` gives the same arguments: ECEF state
    vectors every 10 s on whole UTC seconds from ``hours_before`` before the product's first line
    to ``hours_after`` after, each with its absolute orbit (incremented at each ascending node,
    the product's own at its first line, as ESA numbers them)."""
    platform, pass_direction = platform.upper(), pass_direction.upper()[:3]
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    scene = _scene(start, center_lat, center_lon, pass_direction == "ASC", lines, 100, pixel_spacing, 1)
    absolute = _absolute_orbit(platform, relative_orbit, scene.time(scene.first_line))
    epoch_second = scene.epoch.astype("datetime64[s]")
    offset = (scene.epoch - epoch_second).astype(np.float64) * 1e-6  # epoch - its whole second
    first = math.floor(scene.first_line - hours_before * 3600)
    times = np.arange(first, scene.first_line + hours_after * 3600 + STATE_VECTOR_STEP, STATE_VECTOR_STEP,
                      dtype=float) - offset
    orbit = scene.orbit

    def revolutions(t):
        return np.floor((orbit.u0 + orbit.mean_motion * (np.asarray(t) - orbit.centre_time)) / (2 * math.pi))

    numbers = absolute + (revolutions(times) - revolutions(scene.first_line)).astype(int)
    positions, velocities = orbit.state(times)
    stamps = [scene.time(t) for t in times]

    def eof_time(when: np.datetime64) -> str:
        return str(np.datetime_as_string(when, unit="s")).replace("-", "").replace(":", "")

    valid_from, valid_to = stamps[0], stamps[-1]
    name = (f"{platform}_OPER_AUX_{kind}_OPOD_{created:%Y%m%dT%H%M%S}_V{eof_time(valid_from)}_"
            f"{eof_time(valid_to)}")
    root = etree.Element("Earth_Explorer_File")
    fixed = _el(_el(root, "Earth_Explorer_Header"), "Fixed_Header")
    _fields(fixed, File_Name=name, File_Description="Precise Orbit Ephemerides (POE) Orbit File", Notes="",
            Mission=f"Sentinel-{platform[1:]}", File_Class="OPER", File_Type=f"AUX_{kind}")
    validity = _el(fixed, "Validity_Period")
    _fields(validity, Validity_Start=f"UTC={np.datetime_as_string(valid_from, unit='s')}",
            Validity_Stop=f"UTC={np.datetime_as_string(valid_to, unit='s')}")
    _fields(fixed, File_Version="0001")
    _fields(_el(fixed, "Source"), System="OPOD", Creator="OPOD", Creator_Version="synthetic",
            Creation_Date=f"UTC={created:%Y-%m-%dT%H:%M:%S}")
    block = _el(root, "Data_Block", type="xml")
    osvs = _el(block, "List_of_OSVs", count=str(len(times)))
    for when, number, p, v in zip(stamps, numbers, positions, velocities):
        utc = np.datetime_as_string(when, unit="us")
        osv = _el(osvs, "OSV")
        _fields(osv, TAI=f"TAI={np.datetime_as_string(when + np.timedelta64(37, 's'), unit='us')}",
                UTC=f"UTC={utc}", UT1=f"UT1={utc}", Absolute_Orbit=f"{int(number):+d}")
        for axis, value in zip(("X", "Y", "Z"), p):
            _el(osv, axis, f"{value:.6f}", unit="m")
        for axis, value in zip(("VX", "VY", "VZ"), v):
            _el(osv, axis, f"{value:.6f}", unit="m/s")
        _fields(osv, Quality="NOMINAL")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.EOF"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(_xml_bytes(root))
    os.replace(tmp, path)
    return path


def write_zero_geoid(path: str | Path, step: float = 10.0) -> Path:
    """Write a world-wide geoid grid of zero undulation (GTX, posts every ``step`` degrees)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = round(180 / step) + 1, round(360 / step) + 1
    tmp = path.with_name(path.name + ".tmp.gtx")
    transform = Affine(step, 0.0, -180 - step / 2, 0.0, -step, 90 + step / 2)  # posts on whole degrees
    with rasterio.open(tmp, "w", driver="GTX", width=cols, height=rows, count=1, dtype="float32",
                       crs="EPSG:4326", transform=transform) as dst:
        dst.write(np.zeros((1, rows, cols), dtype=np.float32))
    os.replace(tmp, path)
    return path

"""Numba kernels of the range-Doppler geometry of a GRD product.

Times are float seconds from the first line (line = t / azimuth_time_interval). The
orbit comes as the arrays of :attr:`Orbit.arrays`; the slant/ground range conversion
as ``(record_times, sr0, srgr, gr0, grsr)`` (see :class:`CoordinateConversion`).

- Backward geocoding (ground -> SAR): the zero-Doppler time t and satellite position S(t)
  (:mod:`~s1tiling.geometry.zero_doppler`), then slant range |P - S(t)|, then ground range from
  the srgr polynomials of the records around t, evaluated at that slant range and
  interpolated in time (or, with ``use_grsr``, the inverse of grsr).

Interpolation of the range conversion in azimuth time (:func:`record_weights`): the records
(one every second) are values of the conversion at their times; between them the converted
value follows the cubic Hermite curve through the records whose slopes are the three-point
(centred) differences of the records, so the mapping (x, y, h) -> (line, pixel) is smooth
(continuous first derivative). A linear interpolation in time, the old convention (and OTB's),
has a kink at every record: the records vary by a few pixels from one second to the next
(ESA adapts them to the terrain), so the slope of pixel over line jumps there, and a coarse
geometry grid whose cell straddles a record errs by up to a tenth of a pixel at 1 km node
spacing. At the records both conventions give the records' own values; ESA's geolocation grid
(computed with the nearest record) is matched as well by one as by the other (README).
- Forward geocoding (SAR -> ground): t from the line, slant range by the exact inverse
  of the above, then the point at that range in the zero-Doppler plane, on the right
  of the track, at the requested ellipsoidal height (Newton on the look angle).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import zero_doppler
from .ellipsoid import ecef_to_geodetic_rad, geodetic_to_ecef_rad, normal_rad
from .orbit import OrbitArrays, orbit_state

_MAX_ITER = 30
_HEIGHT_TOL = 1e-5  # metres
_RANGE_TOL = 1e-6  # metres

#: The slant/ground range conversion of an annotation: (record_times, sr0, srgr, gr0, grsr)
RangeConversion = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@njit(cache=True, nogil=True)
def _polynomial(c, x):
    """Value and derivative of sum c[k] x**k."""
    acc = 0.0
    der = 0.0
    for k in range(c.size - 1, -1, -1):
        der = der * x + acc
        acc = acc * x + c[k]
    return acc, der


@njit(cache=True, nogil=True)
def record_weights(t: float, record_times: np.ndarray) -> tuple[int, float, float, float, float]:
    """Weights of the records in the converted value at time t: (first record k, w0..w3), the
    value being sum w_i * value_of_record(k + i) (records past the ends have weight 0).

    Inside [first, last record]: the cubic Hermite curve between the two records around t
    with three-point slopes (one-sided at the end records); outside: the straight line
    through the end record with its slope (the curve continues with a continuous slope).
    """
    n = record_times.size
    if n == 1:
        return 0, 1.0, 0.0, 0.0, 0.0
    j = min(max(np.searchsorted(record_times, t, side="right") - 1, 0), n - 2)
    h = record_times[j + 1] - record_times[j]
    w = (t - record_times[j]) / h
    # Hermite basis (value at j, slope at j, value at j+1, slope at j+1); beyond the ends only
    # the end record's value and slope count.
    if w < 0.0:
        b00, b10, b01, b11 = 1.0, w, 0.0, 0.0
    elif w > 1.0:
        b00, b10, b01, b11 = 0.0, 0.0, 1.0, w - 1.0
    else:
        w2 = w * w
        w3 = w2 * w
        b00, b10 = 2.0 * w3 - 3.0 * w2 + 1.0, w3 - 2.0 * w2 + w
        b01, b11 = 3.0 * w2 - 2.0 * w3, w3 - w2
    # Slopes (per unit of w, i.e. times h) as weights of records j-1 .. j+2.
    sj = _slope_weights(record_times, j, h)
    sk = _slope_weights(record_times, j + 1, h)
    # sj covers records j-1, j, j+1; sk covers j, j+1, j+2.
    w0 = b10 * sj[0]
    w1 = b00 + b10 * sj[1] + b11 * sk[0]
    w2_ = b01 + b10 * sj[2] + b11 * sk[1]
    w3_ = b11 * sk[2]
    return j - 1, w0, w1, w2_, w3_


@njit(cache=True, nogil=True)
def _slope_weights(record_times: np.ndarray, j: int, h: float) -> tuple[float, float, float]:
    """Slope at record j, times h, as weights of records j-1, j, j+1 (three-point differences,
    one-sided at the end records)."""
    n = record_times.size
    if j == 0:
        d = record_times[1] - record_times[0]
        return 0.0, -h / d, h / d
    if j == n - 1:
        d = record_times[j] - record_times[j - 1]
        return -h / d, h / d, 0.0
    a = record_times[j] - record_times[j - 1]
    b = record_times[j + 1] - record_times[j]
    return -h * b / (a * (a + b)), h * (b - a) / (a * b), h * a / (b * (a + b))


@njit(cache=True, nogil=True)
def convert_range(t: float, value: float, record_times: np.ndarray, origin: np.ndarray,
                  coefficients: np.ndarray) -> tuple[float, float]:
    """Apply the range conversion (srgr or grsr) of the records around time t.

    The records' polynomials are evaluated at ``value - origin[record]`` and combined with
    the weights of :func:`record_weights` (smooth in time).
    Returns the converted value and its derivative with respect to ``value``.
    """
    n = record_times.size
    k, w0, w1, w2, w3 = record_weights(t, record_times)
    acc = 0.0
    der = 0.0
    for i, weight in enumerate((w0, w1, w2, w3)):
        r = k + i
        if weight != 0.0 and 0 <= r < n:
            v, d = _polynomial(coefficients[r], value - origin[r])
            acc += weight * v
            der += weight * d
    return acc, der


@njit(cache=True, nogil=True)
def invert_range(t: float, target: float, guess: float, record_times: np.ndarray, origin: np.ndarray,
                 coefficients: np.ndarray) -> float:
    """The x with convert_range(t, x, ...) == target (metres; Newton from ``guess``)."""
    x = guess
    for _ in range(_MAX_ITER):
        value, slope = convert_range(t, x, record_times, origin, coefficients)
        step = (value - target) / slope
        x -= step
        if abs(step) < _RANGE_TOL:
            return x
    return np.nan


@njit(cache=True, nogil=True)
def slant_to_ground_range(t: float, slant: float, conversion: RangeConversion, use_grsr: bool) -> float:
    """Ground range of a slant range at time t: srgr, or the inverse of grsr."""
    record_times, sr0, srgr, gr0, grsr = conversion
    ground = convert_range(t, slant, record_times, sr0, srgr)[0]
    if use_grsr:
        ground = invert_range(t, slant, ground, record_times, gr0, grsr)
    return ground


@njit(cache=True, nogil=True)
def ground_to_slant_range(t: float, ground: float, conversion: RangeConversion, use_grsr: bool) -> float:
    """Slant range of a ground range at time t: grsr, or the inverse of srgr (exact inverse
    of :func:`slant_to_ground_range` either way)."""
    record_times, sr0, srgr, gr0, grsr = conversion
    slant = convert_range(t, ground, record_times, gr0, grsr)[0]
    if not use_grsr:
        slant = invert_range(t, ground, slant, record_times, sr0, srgr)
    return slant


@njit(parallel=True, cache=True, nogil=True)
def convert_ranges(t: np.ndarray, values: np.ndarray, conversion: RangeConversion, use_grsr: bool, to_ground: bool,
                   out: np.ndarray) -> None:
    """:func:`slant_to_ground_range` (``to_ground``) or :func:`ground_to_slant_range` over arrays."""
    for i in prange(t.size):
        if to_ground:
            out[i] = slant_to_ground_range(t[i], values[i], conversion, use_grsr)
        else:
            out[i] = ground_to_slant_range(t[i], values[i], conversion, use_grsr)


@njit(cache=True)
def _ecef(a, b, c, geodetic):
    if geodetic:
        return geodetic_to_ecef_rad(math.radians(a), math.radians(b), c)
    return a, b, c


@njit(parallel=True, cache=True, nogil=True)
def _to_ecef(a, b, c, geodetic, out):
    for i in prange(a.size):
        out[i, 0], out[i, 1], out[i, 2] = _ecef(a[i], b[i], c[i], geodetic)


def ecef_points(a: np.ndarray, b: np.ndarray, c: np.ndarray, geodetic: bool) -> np.ndarray:
    """ECEF points (n x 3) of lat, lon (deg), height if ``geodetic``, else of ECEF coordinates."""
    points = np.empty((a.size, 3))
    _to_ecef(a, b, c, geodetic, points)
    return points


@njit(parallel=True, cache=True, nogil=True)
def _sar_positions(points, times, satellites, conversion, use_grsr, azimuth_time_interval, range_spacing, line, pixel):
    for i in prange(times.size):
        t = times[i]
        if math.isnan(t):
            line[i] = np.nan
            pixel[i] = np.nan
            continue
        slant = math.sqrt((points[i, 0] - satellites[i, 0]) ** 2 + (points[i, 1] - satellites[i, 1]) ** 2
                          + (points[i, 2] - satellites[i, 2]) ** 2)
        line[i] = t / azimuth_time_interval
        pixel[i] = slant_to_ground_range(t, slant, conversion, use_grsr) / range_spacing


def ground_to_sar(a: np.ndarray, b: np.ndarray, c: np.ndarray, geodetic: bool, t_start: float, orbit: OrbitArrays,
                  conversion: RangeConversion, use_grsr: bool, azimuth_time_interval: float, range_spacing: float,
                  line: np.ndarray, pixel: np.ndarray) -> None:
    """Fill ``line``, ``pixel`` for points (a, b, c): lat, lon (deg), height if geodetic, else ECEF.

    ``orbit`` = Orbit.arrays, ``conversion`` = (record_times, sr0, srgr, gr0, grsr).
    NaN where the zero-Doppler time cannot be found.
    """
    points = ecef_points(a, b, c, geodetic)
    times, satellites = np.empty(a.size), np.empty((a.size, 3))
    zero_doppler.solve(points, t_start, orbit, times, satellites)
    _sar_positions(points, times, satellites, conversion, use_grsr, azimuth_time_interval, range_spacing, line, pixel)


@njit(cache=True)
def _point_at_height(s, v, slant, height):
    """ECEF point at range ``slant`` from S, in the zero-Doppler plane, right-looking, at height."""
    sx, sy, sz = s
    vx, vy, vz = v
    vn = math.sqrt(vx * vx + vy * vy + vz * vz)
    ux, uy, uz = vx / vn, vy / vn, vz / vn
    r = math.sqrt(sx * sx + sy * sy + sz * sz)
    # e1: towards the Earth's centre, within the plane; e2 = unit(V x S): to the right.
    d = -(sx * ux + sy * uy + sz * uz) / r
    e1x, e1y, e1z = -sx / r - d * ux, -sy / r - d * uy, -sz / r - d * uz
    n1 = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    e1x, e1y, e1z = e1x / n1, e1y / n1, e1z / n1
    e2x, e2y, e2z = vy * sz - vz * sy, vz * sx - vx * sz, vx * sy - vy * sx
    n2 = math.sqrt(e2x * e2x + e2y * e2y + e2z * e2z)
    e2x, e2y, e2z = e2x / n2, e2y / n2, e2z / n2
    # Look angle from a sphere through the sub-satellite point, then Newton on the height.
    _, _, altitude = ecef_to_geodetic_rad(sx, sy, sz)
    radius = r - altitude + height
    cos0 = (r * r + slant * slant - radius * radius) / (2.0 * r * slant)
    theta = math.acos(min(1.0, max(-1.0, cos0)))
    for _ in range(_MAX_ITER):
        ct, st = math.cos(theta), math.sin(theta)
        px = sx + slant * (ct * e1x + st * e2x)
        py = sy + slant * (ct * e1y + st * e2y)
        pz = sz + slant * (ct * e1z + st * e2z)
        lat, lon, h = ecef_to_geodetic_rad(px, py, pz)
        nx, ny, nz = normal_rad(lat, lon)
        slope = slant * (nx * (e2x * ct - e1x * st) + ny * (e2y * ct - e1y * st) + nz * (e2z * ct - e1z * st))
        theta -= (h - height) / slope
        if abs(h - height) < _HEIGHT_TOL:
            return lat, lon
    return np.nan, np.nan


@njit(parallel=True, cache=True, nogil=True)
def sar_to_ground(
    line: np.ndarray, pixel: np.ndarray, height: np.ndarray, orbit: OrbitArrays, conversion: RangeConversion,
    use_grsr: bool, azimuth_time_interval: float, range_spacing: float, lat: np.ndarray, lon: np.ndarray
) -> None:
    """Fill ``lat``, ``lon`` (degrees) of SAR positions (line, pixel) at ellipsoidal ``height``."""
    node_times, origins, scales, coefs = orbit
    for i in prange(line.size):
        t = line[i] * azimuth_time_interval
        slant = ground_to_slant_range(t, pixel[i] * range_spacing, conversion, use_grsr)
        if math.isnan(t) or math.isnan(slant):
            lat[i] = np.nan
            lon[i] = np.nan
            continue
        s, v, _ = orbit_state(t, node_times, origins, scales, coefs)
        la, lo = _point_at_height(s, v, slant, height[i])
        lat[i] = math.degrees(la)
        lon[i] = math.degrees(lo)

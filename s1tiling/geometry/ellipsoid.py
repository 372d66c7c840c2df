"""The WGS84 ellipsoid: geodetic <-> Earth-centred Earth-fixed (ECEF) coordinates, normals.

Scalar ``njit`` functions (angles in radians) are the building blocks of the geocoding
kernels; the array functions (angles in degrees) are for everything else.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numpy.typing import ArrayLike

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)  # first eccentricity squared
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)  # second eccentricity squared


@njit(cache=True)
def geodetic_to_ecef_rad(lat: float, lon: float, h: float) -> tuple[float, float, float]:
    """ECEF (x, y, z) metres of geodetic latitude, longitude (radians) and ellipsoidal height h."""
    slat = math.sin(lat)
    clat = math.cos(lat)
    n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * slat * slat)
    return (
        (n + h) * clat * math.cos(lon),
        (n + h) * clat * math.sin(lon),
        (n * (1.0 - WGS84_E2) + h) * slat,
    )


@njit(cache=True)
def ecef_to_geodetic_rad(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Geodetic (lat, lon) in radians and ellipsoidal height of an ECEF point.

    Heikkinen's closed form (exact up to rounding, no iteration), valid everywhere
    except within a few km of the Earth's centre.
    """
    a2 = WGS84_A * WGS84_A
    b2 = WGS84_B * WGS84_B
    e4 = WGS84_E2 * WGS84_E2
    p = math.sqrt(x * x + y * y)
    f = 54.0 * b2 * z * z
    g = p * p + (1.0 - WGS84_E2) * z * z - WGS84_E2 * (a2 - b2)
    c = e4 * f * p * p / (g * g * g)
    s = (1.0 + c + math.sqrt(c * c + 2.0 * c)) ** (1.0 / 3.0)
    k = s + 1.0 + 1.0 / s
    pp = f / (3.0 * k * k * g * g)
    q = math.sqrt(1.0 + 2.0 * e4 * pp)
    r0 = -pp * WGS84_E2 * p / (1.0 + q) + math.sqrt(
        max(0.0, 0.5 * a2 * (1.0 + 1.0 / q) - pp * (1.0 - WGS84_E2) * z * z / (q * (1.0 + q)) - 0.5 * pp * p * p)
    )
    dp = p - WGS84_E2 * r0
    u = math.sqrt(dp * dp + z * z)
    v = math.sqrt(dp * dp + (1.0 - WGS84_E2) * z * z)
    z0 = b2 * z / (WGS84_A * v)
    h = u * (1.0 - b2 / (WGS84_A * v))
    lat = math.atan2(z + WGS84_EP2 * z0, p)
    lon = math.atan2(y, x)
    return lat, lon, h


@njit(cache=True)
def normal_rad(lat: float, lon: float) -> tuple[float, float, float]:
    """Unit outward ellipsoid normal (ECEF) at geodetic latitude, longitude (radians)."""
    clat = math.cos(lat)
    return clat * math.cos(lon), clat * math.sin(lon), math.sin(lat)


@njit(parallel=True, cache=True, nogil=True)
def _to_ecef(lat, lon, h, x, y, z):
    for i in prange(lat.size):
        x[i], y[i], z[i] = geodetic_to_ecef_rad(math.radians(lat[i]), math.radians(lon[i]), h[i])


def _flat(*arrays: ArrayLike) -> tuple[tuple[int, ...], list[np.ndarray]]:
    b = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in arrays])
    return b[0].shape, [np.ascontiguousarray(a).ravel() for a in b]


def geodetic_to_ecef(lat: ArrayLike, lon: ArrayLike, h: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF x, y, z (metres, arrays of the broadcast shape) of lat, lon (degrees), h (ellipsoidal m)."""
    shape, (lat, lon, h) = _flat(lat, lon, h)
    x, y, z = (np.empty(lat.size) for _ in range(3))
    _to_ecef(lat, lon, h, x, y, z)
    return x.reshape(shape), y.reshape(shape), z.reshape(shape)


def ellipsoid_normal(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Unit ellipsoid normals (ECEF), shape ``broadcast(lat, lon).shape + (3,)``; degrees in."""
    lat, lon = np.broadcast_arrays(np.radians(lat), np.radians(lon))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)

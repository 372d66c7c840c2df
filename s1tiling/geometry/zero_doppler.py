"""Zero-Doppler geometry of ground points: when the satellite sees them, from where, at which angle.

A ground point P (ECEF) is seen at the zero-Doppler time t, the root of
f(t) = (P - S(t)) . V(t), S and V the satellite's position and velocity (the orbit of
:class:`~s1tiling.geometry.orbit.Orbit`). :func:`zero_doppler` solves it by Newton for one
point; :func:`solve` for many, in contiguous chunks of :data:`CHUNK` points (one parallel task
each) in which every solve starts from the linear extrapolation of the two previous solutions:
grids are spatially coherent, so a solve takes one or two orbit evaluations. Every geometry
kernel of the package (geocoding, incidence angles, gamma area) starts from these solutions.

Incidence angles (:func:`incidence_cosines`): the angle at P between a surface normal n and
the direction P -> S. For S1Tiling's maps (``SARComputeIncidenceAngle``) n is first projected
onto the range plane (the plane through S, P and the Earth's centre), so that along-track tilts
of the terrain do not count; without projection it is the plain angle between n and the look
direction (the convention of the annotated ``incidenceAngle`` with n = P / |P|).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .orbit import Orbit, OrbitArrays, orbit_state

#: Points per parallel task (and per chain of extrapolated first guesses).
CHUNK = 2048
_MAX_ITER = 30
# Newton on f(t) stops after a step below _TIME_TOL: it converges quadratically, or linearly
# with a ratio < 1e-4 where the annotated velocities differ slightly from the derivative
# of the positions, so the remaining error is below 1e-9 s (7 micrometres, 1e-6 line).
_TIME_TOL = 1e-5  # seconds


@numba.njit(cache=True)
def zero_doppler(px: float, py: float, pz: float, t: float, node_times: np.ndarray, origins: np.ndarray,
                 scales: np.ndarray, coefs: np.ndarray) -> tuple[float, float, float, float]:
    """Zero-Doppler time of ECEF point P (Newton from t) and the satellite position then.

    Returns (t, sx, sy, sz); t is NaN when Newton does not converge.
    """
    for _ in range(_MAX_ITER):
        s, v, a = orbit_state(t, node_times, origins, scales, coefs)
        dx = px - s[0]
        dy = py - s[1]
        dz = pz - s[2]
        f = dx * v[0] + dy * v[1] + dz * v[2]
        df = dx * a[0] + dy * a[1] + dz * a[2] - (v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        dt = -f / df
        t += dt
        if abs(dt) < _TIME_TOL:
            return t, s[0] + v[0] * dt, s[1] + v[1] * dt, s[2] + v[2] * dt
        if not abs(t) < 1e6:
            break
    return np.nan, np.nan, np.nan, np.nan


@numba.njit(cache=True)
def predict_time(t_start: float, before_last: float, last: float) -> float:
    """Initial guess from the last two solutions (NaN when unknown)."""
    if math.isnan(last):
        return t_start
    if math.isnan(before_last):
        return last
    return 2.0 * last - before_last


@numba.njit(parallel=True, cache=True, nogil=True)
def solve(points: np.ndarray, t_start: float, orbit: OrbitArrays, times: np.ndarray, satellites: np.ndarray) -> None:
    """Zero-Doppler time (``times``, NaN where Newton fails) and satellite position
    (``satellites``, n x 3) of each ECEF point of ``points`` (n x 3); ``t_start`` is the first
    guess of each chunk, ``orbit`` = :attr:`Orbit.arrays`."""
    node_times, origins, scales, coefs = orbit
    count = points.shape[0]
    for chunk in numba.prange((count + CHUNK - 1) // CHUNK):
        before_last = last = np.nan
        for i in range(chunk * CHUNK, min(count, (chunk + 1) * CHUNK)):
            guess = predict_time(t_start, before_last, last)
            t, sx, sy, sz = zero_doppler(points[i, 0], points[i, 1], points[i, 2], guess,
                                         node_times, origins, scales, coefs)
            before_last, last = last, t
            times[i] = t
            satellites[i, 0], satellites[i, 1], satellites[i, 2] = sx, sy, sz


@numba.njit(cache=True, inline="always", nogil=True)
def incidence_cosine(px: float, py: float, pz: float, nx: float, ny: float, nz: float, sx: float, sy: float,
                     sz: float, project: bool) -> float:
    """Cosine of the angle at point P between the normal n (any length) and P -> S; with
    ``project``, n is first projected onto the range plane (S, P, Earth's centre)."""
    lx, ly, lz = sx - px, sy - py, sz - pz
    if project:
        # m = P x S is normal to the range plane; remove n's component along it.
        mx, my, mz = py * sz - pz * sy, pz * sx - px * sz, px * sy - py * sx
        d = (nx * mx + ny * my + nz * mz) / (mx * mx + my * my + mz * mz)
        nx, ny, nz = nx - d * mx, ny - d * my, nz - d * mz
    return (nx * lx + ny * ly + nz * lz) / math.sqrt((nx * nx + ny * ny + nz * nz) * (lx * lx + ly * ly + lz * lz))


@numba.njit(parallel=True, cache=True, nogil=True)
def incidence_cosines(points: np.ndarray, normals: np.ndarray, satellites: np.ndarray, project: bool,
                      out: np.ndarray) -> None:
    """Cosine of the angle at each point P between its normal n (any length) and P -> S;
    with ``project``, n is first projected onto the range plane (S, P, Earth's centre).
    NaN where the satellite position is NaN."""
    for i in numba.prange(points.shape[0]):
        out[i] = incidence_cosine(points[i, 0], points[i, 1], points[i, 2], normals[i, 0], normals[i, 1],
                                  normals[i, 2], satellites[i, 0], satellites[i, 1], satellites[i, 2], project)


class ZeroDopplerOrbit:
    """An orbit seen from the ground: zero-Doppler solutions and incidence angles of points.

    ``first_guess``: a time (seconds from the orbit's reference time) near the points' ones.
    ``time_range``: the span of the orbit's state vectors (seconds); solutions outside it are
    extrapolated, which callers treat as no-data.
    """

    def __init__(self, orbit: Orbit, first_guess: float = 0.0):
        self.orbit = orbit
        self.arrays = orbit.arrays
        self.source = orbit.source
        self.time_range = (float(orbit.node_times[0]), float(orbit.node_times[-1]))
        self.first_guess = float(first_guess)

    def solve(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zero-Doppler times (``shape``) and satellite positions (``shape + (3,)``) of ECEF
        ``points`` (``shape + (3,)``); NaN where Newton fails."""
        shape = points.shape[:-1]
        p = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        times, satellites = np.empty(p.shape[0]), np.empty(p.shape)
        solve(p, self.first_guess, self.arrays, times, satellites)
        return times.reshape(shape), satellites.reshape(shape + (3,))

    def cosines(self, points: np.ndarray, normals: np.ndarray, project: bool = True) -> np.ndarray:
        """Cosines of the incidence angles at ECEF ``points`` (``shape + (3,)``) of surfaces of
        ECEF ``normals`` (same shape, any length), normals projected onto the range plane
        unless ``project`` is False; NaN where the zero-Doppler time is not within the orbit."""
        shape = points.shape[:-1]
        p = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        n = np.ascontiguousarray(normals, dtype=np.float64).reshape(-1, 3)
        times, satellites = np.empty(p.shape[0]), np.empty(p.shape)
        solve(p, self.first_guess, self.arrays, times, satellites)
        outside = ~((times >= self.time_range[0]) & (times <= self.time_range[1]))  # NaN too
        satellites[outside] = np.nan
        out = np.empty(p.shape[0])
        incidence_cosines(p, n, satellites, project, out)
        return out.reshape(shape)

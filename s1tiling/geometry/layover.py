"""Layover and shadow of a terrain seen from an orbit (the mask of ``LAYOVER_SHADOW`` maps).

Along each zero-Doppler (range) line, ground points are ordered by their ground range, measured
here as the geocentric angle between the point and the satellite's nadir. With the slant range r
and the off-nadir angle theta (at the satellite, between the nadir and the look to the point):

- layover (:data:`LAYOVER`): the point shares its slant range with another point of its line,
  i.e. a nearer point has a larger r or a farther one a smaller r (the slope facing the radar
  steeper than the incidence angle, the ground in front of it whose range it overlaps, and the
  part of the back slope in the same ranges);
- shadow (:data:`SHADOW`): the look ray to the point is blocked, i.e. a nearer point has a larger
  theta (the slope turned away from the radar steeper than 90 degrees minus the incidence angle,
  and the ground hidden behind it).

The terrain is sampled on a map grid, not along the lines: each line is the set of grid points
whose zero-Doppler time falls within one grid pixel's worth of azimuth time, and a point is
compared with the points of its line at least ``gap`` metres nearer (or farther) on the ground,
so that points side by side along the track (whose height differs by the along-track slope) do
not mark each other; a point's own slope ("active" layover and shadow) is decided from its
terrain normal in the range plane, as the local incidence angle is: slope towards the radar
steeper than the ellipsoid incidence angle (layover), local incidence angle above 90 degrees
(shadow).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .ellipsoid import ellipsoid_normal, geodetic_to_ecef
from .zero_doppler import ZeroDopplerOrbit

#: bit of the layover points, of the shadowed points; value of the points the orbit does not see
LAYOVER, SHADOW, OUTSIDE = 1, 2, 255


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between vectors (last axis), accurate for small angles."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.einsum("...i,...i->...", a, b))


def layover_shadow(orbit: ZeroDopplerOrbit, lat: np.ndarray, lon: np.ndarray, heights: np.ndarray,
                   spacing: float, gap: float | None = None) -> np.ndarray:
    """Layover and shadow bits (uint8, :data:`OUTSIDE` where the zero-Doppler time is not within
    the orbit) of the interior of a north-up grid of ``spacing`` metres whose pixel centres'
    latitudes, longitudes (degrees) and ellipsoidal ``heights`` include a one-pixel border; the
    result is 2 rows and 2 columns smaller. Points whose layover or shadow comes from terrain
    outside the grid are not marked: callers give a border as wide as the layover and shadow reach.
    ``gap``: the smallest ground distance (m) between the points compared along a line (default
    1.5 pixels)."""
    points = np.stack(geodetic_to_ecef(lat, lon, heights), axis=-1)
    times, satellites = orbit.solve(points)
    inside = (times >= orbit.time_range[0]) & (times <= orbit.time_range[1])  # False for NaN
    look = satellites - points
    slant = np.linalg.norm(look, axis=-1)
    ground = _angle(points, satellites) * 6371000.0  # ground range from the nadir (m)
    off_nadir = _angle(look, satellites)  # angle between the look to the point and the nadir (-S)
    # active: the point's own slope, in the range plane
    east = points[1:-1, 2:] - points[1:-1, :-2]
    north = points[:-2, 1:-1] - points[2:, 1:-1]
    normal = np.cross(east, north)
    inner = (slice(1, -1), slice(1, -1))
    up = ellipsoid_normal(lat[inner], lon[inner])
    to_sat = _unit(look[inner])
    plane = np.cross(to_sat, up)  # normal of the range plane
    plane = _unit(plane)
    normal = normal - np.einsum("...i,...i->...", normal, plane)[..., None] * plane
    towards = _unit(to_sat - np.einsum("...i,...i->...", to_sat, up)[..., None] * up)  # horizontal, to the radar
    incidence = np.arctan2(np.einsum("...i,...i->...", to_sat, towards), np.einsum("...i,...i->...", to_sat, up))
    slope = np.arctan2(np.einsum("...i,...i->...", normal, towards), np.einsum("...i,...i->...", normal, up))
    with np.errstate(invalid="ignore"):
        flags = np.where(slope > incidence, LAYOVER, 0) | np.where(incidence - slope > math.pi / 2, SHADOW, 0)
    # passive: along the lines
    step = np.gradient(np.where(inside, times, np.nan))
    dt = float(np.nanmedian(np.hypot(step[0], step[1]))) if inside.any() else 1.0
    valid = np.flatnonzero(inside.ravel())
    passive = np.zeros(times.size, np.uint8)
    if valid.size and math.isfinite(dt) and dt > 0:
        line = np.floor(times.ravel()[valid] / dt).astype(np.int64)
        g = ground.ravel()[valid]
        order = valid[np.lexsort((g, line))]
        _passive(order, np.floor(times.ravel() / dt).astype(np.int64), ground.ravel(), slant.ravel(),
                 off_nadir.ravel(), 1.5 * spacing if gap is None else float(gap), passive)
    result = flags.astype(np.uint8) | passive.reshape(times.shape)[inner]
    result[~inside[inner]] = OUTSIDE
    return result


@numba.njit(cache=True)
def _passive(order, line, ground, slant, off_nadir, gap, flags):  # pragma: no cover - compiled
    """Layover and shadow bits of the points ``order`` (sorted by line, then ground range)."""
    n = order.size
    start = 0
    while start < n:
        end = start
        b = line[order[start]]
        while end < n and line[order[end]] == b:
            end += 1
        k = start
        r_max = -np.inf
        theta_max = -np.inf
        for i in range(start, end):
            p = order[i]
            while k < i and ground[order[k]] <= ground[p] - gap:
                q = order[k]
                r_max = max(r_max, slant[q])
                theta_max = max(theta_max, off_nadir[q])
                k += 1
            if slant[p] < r_max:
                flags[p] |= LAYOVER
            if off_nadir[p] < theta_max:
                flags[p] |= SHADOW
        k = end - 1
        r_min = np.inf
        for i in range(end - 1, start - 1, -1):
            p = order[i]
            while k > i and ground[order[k]] >= ground[p] + gap:
                r_min = min(r_min, slant[order[k]])
                k -= 1
            if slant[p] > r_min:
                flags[p] |= LAYOVER
        start = end


def reach(relief: float, min_incidence: float, max_incidence: float) -> float:
    """How far (m, on the ground) layover or shadow reaches from terrain of ``relief`` metres:
    the layover of a peak over the ground in front of it (relief / tan(IA)) or its shadow behind
    it (relief x tan(IA)), at the smallest and largest incidence angles (radians)."""
    relief = max(relief, 0.0)
    return max(relief / math.tan(max(min_incidence, math.radians(10.0))),
               relief * math.tan(min(max_incidence, math.radians(80.0))))

"""When an orbit flies over a region: the pass of one absolute orbit, from an orbit file alone.

Angle maps depend on the orbit track, not on the date: S1Tiling's ``S1LIAMap`` and ``S1IAMap``
make them from precise orbit files, before any Sentinel-1 product is downloaded. Given the state
vectors of an orbit file (with the absolute orbit of each vector, as ESA's .EOF files give it)
and a few ground points of a region (its corners and centre, on the ellipsoid):

1. the revolution of the absolute orbit is the span of its vectors (ascending node to ascending
   node); its zero-Doppler solutions for the region's centre are the sign changes of
   ``f(t) = (P - S(t)) . V(t)`` sampled every vector, with the satellite within
   :data:`MAX_SLANT_RANGE` of the point (the other root is on the far side of the Earth), refined
   by Newton (:class:`~s1tiling.geometry.zero_doppler.ZeroDopplerOrbit`);
2. the region is seen when one of its points lies on the right of the track (Sentinel-1 looks
   right: ``(P - S) . (V x S) > 0``) at an incidence angle, on the ellipsoid, within
   :data:`INCIDENCE_RANGE` (IW's swath, 29.1 to 46.0 degrees, with a margin);
3. the pass is ascending when the satellite moves north (ECEF ``V_z > 0``); its time window
   spans the zero-Doppler times of every point, :data:`WINDOW_MARGIN` seconds around.

The relative orbit of an absolute one is S1Tiling's and ESA's formula
(:func:`s1tiling.s1.names.relative_orbit`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..s1.names import relative_orbit
from .ellipsoid import ellipsoid_normal, geodetic_to_ecef
from .orbit import Orbit, StateVectors
from .zero_doppler import ZeroDopplerOrbit

#: incidence angles (degrees, on the ellipsoid) where a point counts as seen by IW
INCIDENCE_RANGE = (27.0, 48.5)
#: farthest satellite-to-ground distance of a zero-Doppler solution in view (metres)
MAX_SLANT_RANGE = 3.0e6
#: seconds added around the zero-Doppler times of a region
WINDOW_MARGIN = 10.0


@dataclass(frozen=True)
class OrbitPass:
    """One pass of an absolute orbit over a region: ``start`` / ``stop`` (datetime64[ns]) span the
    zero-Doppler times of its points; ``incidence``: at the region's centre (degrees)."""

    platform: str
    absolute_orbit: int
    relative_orbit: int | None
    direction: str
    start: np.datetime64
    stop: np.datetime64
    incidence: float


def absolute_orbits_of(vectors: StateVectors) -> list[int]:
    """The absolute orbits an orbit file covers (empty when it does not say)."""
    if vectors.absolute_orbits is None:
        return []
    return sorted(int(a) for a in np.unique(vectors.absolute_orbits))


def _ecef(points_lonlat) -> np.ndarray:
    lon, lat = np.array(points_lonlat, dtype=np.float64).T.copy()
    return np.stack(geodetic_to_ecef(lat, lon, np.zeros_like(lat)), axis=-1)


def find_pass(vectors: StateVectors, platform: str, absolute_orbit: int, points_lonlat) -> OrbitPass | None:
    """The pass of ``absolute_orbit`` over the points (``[(lon, lat), ...]``, the region's centre
    first), or None when that revolution does not see them (module documentation)."""
    if vectors.absolute_orbits is None:
        raise ValueError("the orbit file gives no absolute orbit numbers")
    inside = np.flatnonzero(vectors.absolute_orbits == absolute_orbit)
    if inside.size < 2:
        return None
    # the revolution and one vector on each side (the Lagrange pieces of its ends see the same vectors)
    first, last = max(inside[0] - 4, 0), min(inside[-1] + 4, vectors.times.size - 1)
    span = slice(first, last + 1)
    orbit = Orbit(StateVectors(vectors.times[span], vectors.positions[span], vectors.velocities[span],
                               vectors.source), reference_time=vectors.times[inside[0]])
    begin, end = float(orbit.seconds(vectors.times[inside[0]])), float(orbit.seconds(vectors.times[inside[-1]]))
    points = _ecef(points_lonlat)
    lon, lat = np.asarray(points_lonlat, dtype=np.float64).T
    normals = ellipsoid_normal(lat, lon)
    samples = np.arange(begin, end + 1e-9, 10.0)
    positions, velocities = orbit.position(samples), orbit.velocity(samples)
    centre = points[0]
    f = np.einsum("ij,ij->i", centre - positions, velocities)
    distance = np.linalg.norm(centre - positions, axis=1)
    roots = np.flatnonzero((np.sign(f[:-1]) != np.sign(f[1:])) & (distance[:-1] < MAX_SLANT_RANGE))
    for k in roots:
        guess = samples[k] + (samples[k + 1] - samples[k]) * f[k] / (f[k] - f[k + 1])
        times, satellites = ZeroDopplerOrbit(orbit, guess).solve(points)
        if not np.all(np.isfinite(times)):
            continue
        look = satellites - points
        velocity = orbit.velocity(times)
        right = np.einsum("ij,ij->i", -look, np.cross(velocity, satellites)) > 0
        cosines = np.einsum("ij,ij->i", normals, look) / np.linalg.norm(look, axis=1)
        incidence = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
        seen = right & (incidence >= INCIDENCE_RANGE[0]) & (incidence <= INCIDENCE_RANGE[1])
        if not seen.any():
            continue
        margin = np.timedelta64(int(WINDOW_MARGIN * 1e9), "ns")
        reference = orbit.reference_time
        start = reference + np.timedelta64(int(round(times.min() * 1e9)), "ns") - margin
        stop = reference + np.timedelta64(int(round(times.max() * 1e9)), "ns") + margin
        return OrbitPass(platform.upper(), int(absolute_orbit), relative_orbit(platform, absolute_orbit),
                         "ASC" if velocity[0, 2] > 0 else "DES", start, stop, float(incidence[0]))
    return None


def find_passes(vectors: StateVectors, platform: str, points_lonlat, relative_orbits=(),
                direction: str | None = None) -> list[OrbitPass]:
    """The passes over the points of the absolute orbits the file covers whose relative orbit is
    in ``relative_orbits`` (all when empty) and whose direction is ``direction`` (any when None)."""
    found = []
    for absolute in absolute_orbits_of(vectors):
        relative = relative_orbit(platform, absolute)
        if relative_orbits and relative not in relative_orbits:
            continue
        found_pass = find_pass(vectors, platform, absolute, points_lonlat)
        if found_pass is not None and (direction is None or found_pass.direction == direction):
            found.append(found_pass)
    return found

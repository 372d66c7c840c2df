"""Orbit state vectors: interpolation, precise orbit files (.EOF), choosing the file of a product.

Interpolation is piecewise Lagrange: on each interval between two consecutive state
vectors, the polynomial of degree 7 through the 8 nearest vectors (4 on each side
where possible), for positions and, separately, for velocities. The orbit passes
exactly through every vector; the velocity is the interpolated annotated velocity,
which is what ESA's processor uses (the annotated velocities of some products differ
from the derivative of the positions by up to 4 cm/s, enough to move the zero-Doppler
time by 0.03 line). Acceleration is the derivative of the velocity. On 10 s vectors
held-out positions are reproduced within the time-tag rounding of the annotations
(a few mm) and within 0.2 mm on precise orbits.

Outside the vectors, the curves continue as the cubic (position) and quadratic
(velocity) Taylor expansions at the end vector: bounded, for points geocoded outside
the product. Pieces are stored as coefficient arrays so that numba kernels evaluate
the orbit (:func:`orbit_state`); times are float seconds relative to
``Orbit.reference_time``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from math import comb
from pathlib import Path

import numpy as np
from lxml import etree
from numba import njit
from numpy.typing import ArrayLike

from ..errors import ProductError
from ..times import TimeLike, seconds_since

log = logging.getLogger(__name__)

_WINDOW = 8  # state vectors per Lagrange piece (degree _WINDOW - 1)
#: Seconds of orbit kept around a product or a pass when state vectors are selected from a
#: longer orbit (a precise orbit file): the Lagrange pieces inside it see the same vectors.
ORBIT_MARGIN = 60.0

#: What the numba kernels take for an orbit: (node_times, origins, scales, coefficients), see :attr:`Orbit.arrays`
OrbitArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class StateVectors:
    """Orbit state vectors: times (datetime64[ns], N), positions and velocities (N x 3, ECEF metres).

    ``source`` says where they come from: ``annotation``, ``POEORB`` or ``RESORB``;
    ``absolute_orbits`` (N, or None): the absolute orbit of each vector, as orbit files give it.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    source: str = "annotation"
    absolute_orbits: np.ndarray | None = None


class Orbit:
    """Satellite position, velocity and acceleration at any time, from state vectors.

    ``t`` arguments are float seconds relative to :attr:`reference_time` (datetime64[ns],
    default: the first state vector); results have shape ``t.shape + (3,)`` (ECEF).
    """

    def __init__(self, state_vectors: StateVectors, reference_time: TimeLike | None = None):
        order = np.argsort(state_vectors.times)
        times = np.asarray(state_vectors.times, dtype="datetime64[ns]")[order]
        if times.size < 2 or np.any(np.diff(times) <= np.timedelta64(0, "ns")):
            raise ValueError("an orbit needs at least 2 state vectors with distinct times")
        # (numpy's stubs lack datetime64(datetime64, unit), the unit conversion used here)
        self.reference_time = np.datetime64(times[0] if reference_time is None else reference_time,  # type: ignore[call-overload]
                                            "ns")
        self.source = state_vectors.source
        self.node_times = seconds_since(times, self.reference_time)
        positions = np.asarray(state_vectors.positions, dtype=np.float64)[order]
        velocities = np.asarray(state_vectors.velocities, dtype=np.float64)[order]
        self.origins, self.scales, self.coefficients = _lagrange_pieces(self.node_times, positions, velocities)

    @property
    def arrays(self) -> OrbitArrays:
        """What :func:`orbit_state` needs: (node_times, origins, scales, coefficients)."""
        return self.node_times, self.origins, self.scales, self.coefficients

    def seconds(self, times: ArrayLike) -> np.ndarray:
        """Float seconds from :attr:`reference_time` to datetime64 ``times``."""
        return seconds_since(times, self.reference_time)

    def _evaluate(self, t, derivative):
        t = np.asarray(t, dtype=np.float64)
        flat = np.ascontiguousarray(t).ravel()
        out = np.empty((flat.size, 3))
        _evaluate_many(flat, *self.arrays, derivative, out)
        return out.reshape(t.shape + (3,))

    def position(self, t: ArrayLike) -> np.ndarray:
        return self._evaluate(t, 0)

    def velocity(self, t: ArrayLike) -> np.ndarray:
        return self._evaluate(t, 1)

    def acceleration(self, t: ArrayLike) -> np.ndarray:
        return self._evaluate(t, 2)


def _lagrange_pieces(t, p, v):
    """Coefficients of the pieces in the scaled local time u = (t - origin) / scale.

    ``coefs[k]`` is 6 x m: rows 0-2 the position, rows 3-5 the velocity polynomials.
    Piece 0 extrapolates before the first vector, pieces 1..n-1 are the intervals,
    piece n extrapolates after the last vector (see :func:`orbit_state`).
    """
    n = t.size
    m = min(_WINDOW, n)
    origins = np.empty(n + 1)
    scales = np.empty(n + 1)
    coefs = np.zeros((n + 1, 6, m))
    values = np.hstack([p, v])
    for i in range(n - 1):
        first = min(max(i - (m - 2) // 2, 0), n - m)
        nodes = slice(first, first + m)
        h = t[i + 1] - t[i]
        u = (t[nodes] - t[i]) / h
        coefs[i + 1] = np.linalg.solve(np.vander(u, m, increasing=True), values[nodes]).T
        origins[i + 1], scales[i + 1] = t[i], h
    # Taylor continuations at both ends (cubic positions, quadratic velocities).
    keep = np.zeros((6, m), dtype=bool)
    keep[:3, :4] = keep[3:, :3] = True
    origins[0], scales[0] = t[0], scales[1]
    coefs[0] = np.where(keep, coefs[1], 0.0)
    # Re-expand the last interval's polynomials around its end (u = 1).
    shift = np.array([[comb(j, k) for j in range(m)] for k in range(m)])
    origins[n], scales[n] = t[n - 1], scales[n - 1]
    coefs[n] = np.where(keep, coefs[n - 1] @ shift.T, 0.0)
    return origins, scales, coefs


@njit(cache=True)
def _horner(c, u):
    """Value, first and second derivative of sum c[k] u**k."""
    p = c[c.size - 1]
    dp = 0.0
    ddp = 0.0
    for k in range(c.size - 2, -1, -1):
        ddp = ddp * u + 2.0 * dp
        dp = dp * u + p
        p = p * u + c[k]
    return p, dp, ddp


@njit(cache=True)
def orbit_state(t: float, node_times: np.ndarray, origins: np.ndarray, scales: np.ndarray, coefs: np.ndarray
                ) -> tuple[Vector3, Vector3, Vector3]:
    """Position, velocity, acceleration (three 3-tuples) at time t (seconds)."""
    piece = np.searchsorted(node_times, t, side="right")
    h = scales[piece]
    u = (t - origins[piece]) / h
    c = coefs[piece]
    px = _horner(c[0], u)[0]
    py = _horner(c[1], u)[0]
    pz = _horner(c[2], u)[0]
    vx, ax, _ = _horner(c[3], u)
    vy, ay, _ = _horner(c[4], u)
    vz, az, _ = _horner(c[5], u)
    return (px, py, pz), (vx, vy, vz), (ax / h, ay / h, az / h)


@njit(cache=True)
def _evaluate_many(ts, node_times, origins, scales, coefs, derivative, out):
    for i in range(ts.size):
        state = orbit_state(ts[i], node_times, origins, scales, coefs)
        vec = state[derivative]
        out[i, 0] = vec[0]
        out[i, 1] = vec[1]
        out[i, 2] = vec[2]


# --------------------------------------------------------------------------- .EOF files

_EOF_NAME = re.compile(
    r"^(?P<platform>S1[A-Z_])_OPER_AUX_(?P<kind>POEORB|RESORB)_OPOD_(?P<created>\d{8}T\d{6})"
    r"_V(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})\.EOF$",
    re.IGNORECASE,
)
#: the name of an orbit file: platform, kind (POEORB/RESORB), production, validity start and stop
EOF_NAME = _EOF_NAME


def _eof_time(text: str) -> np.datetime64:
    """'UTC=2014-10-03T22:59:44.000000' (or a bare ISO time) as datetime64[ns]."""
    return np.datetime64(text.strip().split("=", 1)[-1], "ns")


def _utc(value) -> np.datetime64:
    """datetime64[ns] of a datetime64, an ISO string or a (naive UTC or aware) datetime."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(value, "ns")


def _name_time(stamp: str) -> np.datetime64:
    return np.datetime64(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}", "ns")


def read_eof(path: str | Path) -> StateVectors:
    """State vectors (UTC times, ECEF) of a POEORB/RESORB orbit file.

    Tolerates files whose ``count`` attribute exceeds the vectors actually present and
    files cut short (incomplete trailing vectors are dropped). ``source`` is 'POEORB' or
    'RESORB', from the header's File_Type, else from the file name.
    """
    path = Path(path)
    parser = etree.XMLParser(recover=True, huge_tree=True, remove_blank_text=True)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ProductError(path.name, path, f"cannot read orbit file: {exc}") from exc
    if root is None:
        raise ProductError(path.name, path, "not an XML orbit file")
    file_type = root.findtext(".//Fixed_Header/File_Type") or path.name
    source = next((k for k in ("POEORB", "RESORB") if k in file_type.upper()), None)
    if source is None:
        raise ProductError(path.name, path, "neither a POEORB nor a RESORB orbit file")
    times, states, orbits = [], [], []
    for osv in root.iter("OSV"):
        fields = [osv.findtext(tag) for tag in ("UTC", "X", "Y", "Z", "VX", "VY", "VZ")]
        if any(f is None or not f.strip() for f in fields):
            continue  # truncated vector
        times.append(_eof_time(fields[0]))
        states.append([float(f) for f in fields[1:]])
        orbit = (osv.findtext("Absolute_Orbit") or "").strip()
        orbits.append(int(orbit) if orbit.lstrip("+-").isdigit() else -1)
    if not states:
        raise ProductError(path.name, path, "no complete orbit state vector (<OSV>) in the file")
    declared = root.find(".//List_of_OSVs")
    if declared is not None and declared.get("count", "").isdigit() and int(declared.get("count")) != len(states):
        log.info("%s: %s state vectors declared, %d present", path.name, declared.get("count"), len(states))
    time_array = np.array(times, dtype="datetime64[ns]")
    state_array = np.array(states)
    time_array, unique = np.unique(time_array, return_index=True)
    state_array = state_array[unique]
    absolute = np.array(orbits, dtype=np.int64)[unique]
    return StateVectors(times=time_array, positions=state_array[:, :3], velocities=state_array[:, 3:], source=source,
                        absolute_orbits=None if np.any(absolute < 0) else absolute)


def select_state_vectors(vectors: StateVectors, start: TimeLike, stop: TimeLike,
                         margin: float = ORBIT_MARGIN) -> StateVectors:
    """The vectors within [start - margin, stop + margin] (margin in seconds).

    Raises ``ValueError`` when they do not cover [start, stop] or leave a gap there
    (more than twice the usual spacing).
    """
    start, stop = _utc(start), _utc(stop)
    pad = np.timedelta64(int(round(margin * 1e9)), "ns")
    times = np.asarray(vectors.times, dtype="datetime64[ns]")
    keep = (times >= start - pad) & (times <= stop + pad)
    # One more vector on each side, so that [start, stop] is inside the kept span.
    idx = np.flatnonzero(keep)
    if idx.size:
        keep[max(idx[0] - 1, 0)] = keep[min(idx[-1] + 1, times.size - 1)] = True
    kept = times[keep]
    if kept.size < 2 or kept[0] > start or kept[-1] < stop:
        span = f"{times[0]} .. {times[-1]}" if times.size else "nothing"
        raise ValueError(f"the {vectors.source} state vectors ({span}) do not cover {start} .. {stop}")
    steps = np.diff(seconds_since(kept, kept[0]))
    if steps.max() > 2.0 * np.median(steps):
        raise ValueError(
            f"the {vectors.source} state vectors have a gap of {steps.max():.0f} s around {start} .. {stop}"
        )
    return StateVectors(
        times=kept, positions=vectors.positions[keep], velocities=vectors.velocities[keep], source=vectors.source,
        absolute_orbits=None if vectors.absolute_orbits is None else vectors.absolute_orbits[keep],
    )


def find_orbit_file(eof_dir: str | Path, platform: str, start: TimeLike, stop: TimeLike,
                    margin: float = ORBIT_MARGIN) -> Path | None:
    """The .EOF file in ``eof_dir`` (searched recursively) whose vectors cover [start, stop].

    ``platform`` is 'S1A', 'S1B', 'S1C'... Candidates are chosen by the validity in
    their names (with ``margin`` seconds each side), POEORB before RESORB, newest
    production first; the first one whose vectors really cover the product wins (some
    files are truncated). None when there is none.
    """
    start, stop = _utc(start), _utc(stop)
    pad = np.timedelta64(int(round(margin * 1e9)), "ns")
    candidates = []
    for path in Path(eof_dir).rglob("*"):
        match = _EOF_NAME.match(path.name)
        if not match or match["platform"].upper() != platform.upper():
            continue
        if _name_time(match["start"]) <= start - pad and _name_time(match["stop"]) >= stop + pad:
            preference = 0 if match["kind"].upper() == "POEORB" else 1
            candidates.append((preference, -_name_time(match["created"]).astype(np.int64), path))
    for _, _, path in sorted(candidates):
        try:
            select_state_vectors(read_eof(path), start, stop, margin)
        except (ValueError, ProductError) as exc:
            log.warning("orbit file %s not used: %s", path, exc)
            continue
        return path
    return None

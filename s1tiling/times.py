"""Time helpers shared by every floor: annotation times, seconds between times, UTC datetimes.

Annotation and orbit times are kept as ``numpy.datetime64[ns]``; geometry code works in float
seconds from a reference time of its choosing (:func:`seconds_since`); names and metadata use
naive UTC ``datetime`` objects (:func:`as_utc`).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.typing import ArrayLike

#: A time the helpers take: datetime64, ISO text or datetime (naive = UTC)
TimeLike = np.datetime64 | dt.datetime | str


def parse_time(text: str) -> np.datetime64:
    """An annotation UTC time (``2021-08-09T17:39:53.153776``) as datetime64[ns]."""
    return np.datetime64(text.strip().rstrip("Z"), "ns")


def seconds_since(times: ArrayLike, reference: TimeLike) -> np.ndarray:
    """Float seconds from ``reference`` (datetime64) to ``times`` (datetime64 array)."""
    # numpy's stubs lack datetime64(datetime64, unit), the unit conversion used here
    delta = np.asarray(times, dtype="datetime64[ns]") - np.datetime64(reference, "ns")  # type: ignore[call-overload]
    return delta.astype("timedelta64[ns]").astype(np.float64) * 1e-9


def parse_utc(text: str) -> dt.datetime:
    """An ISO time of a manifest (``2021-08-09T17:39:53.153776Z``) as an aware UTC datetime."""
    return dt.datetime.fromisoformat(text.strip().rstrip("Z")).replace(tzinfo=dt.timezone.utc)


def as_utc(time: dt.datetime | np.datetime64) -> dt.datetime:
    """A ``datetime`` (naive = UTC) or ``numpy.datetime64`` as a naive UTC datetime."""
    if isinstance(time, np.datetime64):
        time = time.astype("datetime64[us]").item()
    if not isinstance(time, dt.datetime):
        raise TypeError(f"expected a datetime, got {time!r}")
    if time.tzinfo is not None:
        time = time.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return time

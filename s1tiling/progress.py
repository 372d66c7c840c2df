"""Progress within a task: a maker says how far it is, the run's progress bar and log lines show it.

A maker calls :func:`report` as it goes (``report(blocks_done, blocks)``). Inside a task run by
:mod:`s1tiling.scheduling` the fraction reaches the run's progress meter: directly when the task
runs in this process, as a dask structured event (``Worker.log_event`` on :data:`TOPIC`, which the
driver's client subscribes to) when it runs on a worker. Outside a task it does nothing, so makers
called from a notebook or a test need nothing set up. At most one report per task every
:data:`MIN_INTERVAL` seconds leaves the maker (the last one always does).
"""
from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: the dask event topic of the reports sent by workers
TOPIC = "s1tiling-progress"
#: seconds between two reports of one task (the meter redraws at most this often)
MIN_INTERVAL = 1.0

Sink = Callable[[str, float], None]


@dataclass
class _Current:
    key: str
    sink: Sink
    last: float = float("-inf")


_CURRENT: contextvars.ContextVar[_Current | None] = contextvars.ContextVar("s1tiling_progress", default=None)


@contextlib.contextmanager
def task(key: str, sink: Sink) -> Iterator[None]:
    """Within the block, :func:`report` sends ``(key, fraction)`` to ``sink``."""
    token = _CURRENT.set(_Current(key, sink))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def report(done: float, total: float) -> None:
    """The running task has done ``done`` of ``total`` (blocks, lines, pixels...)."""
    current = _CURRENT.get()
    if current is None or total <= 0:
        return
    now = time.monotonic()
    if done < total and now - current.last < MIN_INTERVAL:
        return
    current.last = now
    with contextlib.suppress(Exception):  # progress is never worth a failed task
        current.sink(current.key, min(1.0, max(0.0, done / total)))


def worker_sink(key: str, fraction: float) -> None:
    """On a dask worker: the report as a structured event for the driver's client."""
    from distributed import get_worker

    get_worker().log_event(TOPIC, {"key": key, "fraction": fraction})

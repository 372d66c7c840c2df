"""Raster grids made block by block, the blocks computed by several threads, used in order.

A maker (tile images, angle maps) cuts its output grid into blocks (:func:`block_windows`),
computes them with :func:`in_order` and writes each as it comes. The threads run numba kernels
that release the GIL; numba runs its parallel kernels from several threads at once only with a
thread-safe threading layer (TBB or OpenMP, not ``workqueue``, which aborts the process):
:func:`concurrent_kernels_safe` says whether it is in use, and :func:`block_threads` gives the
threads to use (one when it is not).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numba
import numpy as np


def block_windows(rows: int, cols: int, block_rows: int, block_cols: int) -> list[tuple[int, int, int, int]]:
    """(row, col, height, width) of the blocks of a rows x cols grid, row after row, every other row
    from right to left: each block is next to the previous one (what they share is still at hand)."""
    windows = []
    for n, r0 in enumerate(range(0, rows, block_rows)):
        starts = list(range(0, cols, block_cols))
        for c0 in (starts if n % 2 == 0 else starts[::-1]):
            windows.append((r0, c0, min(block_rows, rows - r0), min(block_cols, cols - c0)))
    return windows


@numba.njit(parallel=True, cache=True, nogil=True)
def _count(values):
    total = 0
    for i in numba.prange(values.size):
        total += values[i]
    return total


def concurrent_kernels_safe() -> bool:
    """Whether numba's parallel kernels may run in several threads at once: true with the TBB
    and OpenMP threading layers, not with ``workqueue``."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is chosen on the first
        _count(np.ones(2, dtype=np.int64))
        layer = numba.threading_layer()
    return layer in ("tbb", "omp")


def block_threads(threads: int) -> int:
    """Threads to compute blocks with, for a task of ``threads`` threads."""
    return threads if threads > 1 and concurrent_kernels_safe() else 1


def _one_numba_thread() -> None:
    """Each block thread runs numba's kernels on one thread (the blocks are the parallelism)."""
    numba.set_num_threads(1)


def in_order(func: Callable, items: Iterable, threads: int) -> Generator[Any, None, None]:
    """``func(item)`` for each item, in order, computed by ``threads`` threads (a few items ahead);
    an exception is raised where its item comes. Closing the iterator stops the threads."""
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        for item in items:
            yield func(item)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="s1tiling-block", initializer=_one_numba_thread) as pool:
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(pool.submit(func, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

"""s1tiling: Sentinel-1 GRD products orthorectified onto the Sentinel-2 tile grid."""
from __future__ import annotations

import atexit
import gc
import os
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .s1.product import Product

__version__ = "0.1.0"

__all__ = ["__version__", "open_product", "open_timeseries"]


def _writable(folder: str) -> bool:
    """``folder`` exists and is writable, or can be created (its nearest existing parent is writable)."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def numba_cache_dir() -> str:
    """Where numba keeps the compiled kernels of this package: ``$NUMBA_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/s1tiling/numba`` (``~/.cache/s1tiling/numba``), else, when that cannot be
    written (a read-only or missing home), ``<temporary folder>/s1tiling-numba-<uid>``."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return configured
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(home, ".cache") if home != "~" else "")
    folder = os.path.join(base, "s1tiling", "numba") if base else ""
    if not folder or not _writable(folder):
        folder = os.path.join(tempfile.gettempdir(), f"s1tiling-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")
    return folder


def _use_own_numba_cache() -> None:
    """numba's cache of compiled kernels (``cache=True``) never goes into the installed package.

    Without ``NUMBA_CACHE_DIR`` numba writes ``*.nbi``/``*.nbc`` files into the ``__pycache__``
    folders beside the package's modules, files pip does not know: a later ``pip install -e``
    leaves them in ``site-packages/s1tiling``, which then shadows the editable install as a
    namespace package (``cannot import name '__version__'``). Set here, before any module of the
    package imports numba, so it holds for the console scripts, ``python -m s1tiling``, dask
    workers (which import this package to unpickle their tasks, and inherit the environment) and
    the Docker image alike; a ``NUMBA_CACHE_DIR`` set by the user is kept.
    """
    folder = numba_cache_dir()
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_CACHE_DIR"] = folder
    else:
        # numba was imported before this package (e.g. by dask in a worker) and read its
        # configuration already. Its environment is left as it is: numba re-reads the whole
        # environment at its next compilation when it changed, and then refuses a NUMBA_NUM_THREADS
        # that differs from its running thread pool. Its setting is changed instead.
        numba.config.CACHE_DIR = folder


_use_own_numba_cache()


def _no_tbb_on_one_cpu() -> None:
    """On one CPU, numba prefers its OpenMP threading layer to TBB.

    With a single CPU TBB starts no worker thread; numba's TBB pool queues a task on the thread
    that first runs a parallel kernel and waits for it, when Python exits, on another: a dask
    worker (kernels run in its executor threads, exit on its main thread) pinned to one CPU, as
    SLURM or ``taskset`` allocate it, then never exits and is killed by its nanny 48 s later
    (oneTBB issue 2056, numba issue 10556). The order is changed only when the user set no
    threading layer and numba's threads have not started yet.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return
    if cpus != 1 or "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return
    numba = sys.modules.get("numba")
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", False):
        return  # a layer is running already
    os.environ["NUMBA_THREADING_LAYER_PRIORITY"] = "omp tbb workqueue"
    if numba is not None:
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


_no_tbb_on_one_cpu()


def _quick_exit() -> None:
    """Python's last garbage collection, at exit, skips the objects that exist when the exit starts.

    A process that imported numba, llvmlite, rasterio and dask holds hundreds of thousands of
    objects (116,000 after the imports alone, more once kernels are loaded); the collection the
    interpreter runs while it shuts down walked them all: 0.3 to 0.5 s of every command's and
    every dask worker's exit, most of a run's cost after its last task. Freezing them
    (:func:`gc.freeze`) empties that walk. Atexit handlers run after it or before it, either way
    unaffected; objects freed by their reference counts are still freed, and nothing of ours
    relies on a collection at exit: files are closed, checked and renamed by the code that
    writes them.
    """
    gc.freeze()


atexit.register(_quick_exit)


def open_product(path: str | Path) -> Product:
    """Open a Sentinel-1 product (``.SAFE`` folder or ``.zip``); see :mod:`s1tiling.s1.product`."""
    from .s1.product import open_product as _open

    return _open(path)


def open_timeseries(output, tile, polarisations=None, **options):
    """The time series of S2 tile ``tile`` in the output folder ``output`` as a lazy, dask-backed
    ``xarray.Dataset`` (time, y, x), from its STAC catalog; options ``start``, ``end``, ``orbit``,
    ``calibration``, ``filtered``, ``masks``, ``db``, ``chunks``: see :func:`s1tiling.timeseries.open_timeseries`
    (needs ``pip install 's1tiling[cube]'``)."""
    from .timeseries import open_timeseries as _open

    return _open(output, tile, polarisations, **options)

"""Tiles made block by block in threads, from shared calibrated chunks: same pixels however made.

The tile images of a pass must not depend on how the work is shared: one thread or several, a
chunk cache that keeps everything or nothing. Runs on a synthetic product (no shared data needed).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rasterio

from request_files import SYNTHETIC_DAY, SYNTHETIC_TILE, synthetic_inputs, write_request
from s1tiling import grid, production
from s1tiling.blocks import block_windows, concurrent_kernels_safe, in_order
from s1tiling.config import load_config
from s1tiling.context import Context
from s1tiling.discovery import group_products, open_matching_products
from s1tiling.plan import plan_products
from s1tiling.radiometry import border_cut_params, calibrate


def test_block_windows_cover_the_grid_once_each_next_to_the_last():
    windows = block_windows(1000, 700, 300, 256)
    seen = np.zeros((1000, 700), dtype=int)
    for r0, c0, h, w in windows:
        seen[r0:r0 + h, c0:c0 + w] += 1
    assert (seen == 1).all()
    assert [w[:2] for w in windows[:6]] == [(0, 0), (0, 256), (0, 512), (300, 512), (300, 256), (300, 0)]
    for (r0, c0, *_), (r1, c1, *_) in zip(windows, windows[1:]):
        assert (r0 == r1 and abs(c0 - c1) == 256) or (c0 == c1 and r1 - r0 == 300)


def test_in_order_runs_in_threads_keeps_order_and_raises_where_it_fails():
    names = set()

    def work(n):
        names.add(threading.current_thread().name)
        time.sleep(0.01 * ((7 * n) % 5))  # later items often finish first
        if n == 13:
            raise ValueError("item 13")
        return n * n

    results = []
    with pytest.raises(ValueError, match="item 13"):
        for value in in_order(work, range(30), 3):
            results.append(value)
    assert results == [n * n for n in range(13)]
    assert len(names) > 1 and all(name.startswith("s1tiling-block") for name in names)
    assert list(in_order(lambda n: -n, range(5), 1)) == [0, -1, -2, -3, -4]


@pytest.fixture(scope="module")
def pass_job(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    geoid = synthetic_inputs(root)

    def job_for(output, **processing):
        cfg = write_request(root, output, tiles=SYNTHETIC_TILE, first_date=SYNTHETIC_DAY, last_date=SYNTHETIC_DAY,
                            geoid=geoid, DataSource={"polarisation": "VV-VH"},
                            Processing={"output_spatial_resolution": 60, "orthorectification_interpolation_method":
                                        "bco", **processing})
        settings = load_config(cfg)
        products = open_matching_products(settings.paths.s1_images, settings.data_source)
        groups = group_products(products, settings.processing.tiles, settings.data_source, grid.for_settings(settings))
        (job,) = plan_products(settings, groups).tile_jobs
        return job, Context(settings)

    return job_for


def _read(paths):
    out = {}
    for path in paths:
        with rasterio.open(path) as ds:
            out[os.path.basename(path)] = ds.read(1)
    return out


def test_threads_and_chunk_cache_give_identical_images(pass_job, monkeypatch):
    if not concurrent_kernels_safe():
        pytest.skip("numba's threading layer is workqueue: blocks are computed by one thread only")
    job, context = pass_job("one", nb_otb_threads=1, nb_parallel_processes=4096)  # cores // 4096 = 0: one thread
    assert context.threads == 1
    one = _read(production.produce(job, context))
    job, context = pass_job("three", nb_otb_threads=3)
    assert context.threads >= 3
    three = _read(production.produce(job, context))
    monkeypatch.setattr(production, "CHUNK_CACHE_BYTES", 0)  # every chunk read and calibrated again
    job, context = pass_job("uncached", nb_otb_threads=3)
    uncached = _read(production.produce(job, context))
    assert set(one) == set(three) == set(uncached) and len(one) == 2
    for name, values in one.items():
        assert (values > 0).mean() > 0.3
        np.testing.assert_array_equal(values, three[name])
        np.testing.assert_array_equal(values, uncached[name])


def test_chunks_put_together_are_the_window_calibrated_at_once(pass_job):
    job, context = pass_job("chunks")
    tile = production._Tile(job, context, production._PerThread())
    product = tile.slices[0].product
    window = (300, 700, 900, 1300)  # across chunk boundaries, not aligned to them
    out = np.empty(window[2:], dtype=np.float32)
    with tile.datasets.scope():
        tile.read(0, "VV", window, out)
    direct = calibrate(product, "VV", window, calibration="sigma", remove_thermal_noise=True,
                       border_cut=border_cut_params(product, "VV"))
    np.testing.assert_array_equal(out, direct)


def test_task_threads_follow_the_cores_it_may_use(pass_job):
    job, context = pass_job("threads", nb_otb_threads=1, nb_parallel_processes=1)
    config = context.settings.config_file
    code = ("import os, sys; os.sched_setaffinity(0, {0}); from s1tiling.config import load_config; "
            "from s1tiling.context import Context; print(Context(load_config(sys.argv[1])).threads)")
    alone = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, check=True)
    assert alone.stdout.strip() == "1"  # one core: one thread
    assert context.threads == max(1, len(os.sched_getaffinity(0)))  # one process: every core it may use


_KERNEL_IN_A_THREAD = """
import sys, threading
if sys.argv[1] == "s1tiling":
    import s1tiling  # noqa: F401
import numba, numpy as np

@numba.njit(parallel=True)
def total(values):
    s = 0.0
    for i in numba.prange(values.size):
        s += values[i]
    return s

worker = threading.Thread(target=lambda: print(total(np.ones(8)), numba.threading_layer(), flush=True))
worker.start()
worker.join()
"""


def _one_cpu() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def test_a_process_on_one_cpu_exits_after_kernels_ran_in_a_thread():
    """A dask worker pinned to one CPU runs numba's parallel kernels in its executor threads and
    exits from its main thread. With numba's TBB layer such a process never exits (TBB starts no
    worker thread on one CPU: numba's start-up task waits for ever); importing s1tiling first
    chooses OpenMP there. Real processes, pinned to one CPU, that must exit on their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    run = subprocess.run([sys.executable, "-c", _KERNEL_IN_A_THREAD, "s1tiling"], capture_output=True, text=True,
                         env=env, preexec_fn=_one_cpu, timeout=120)
    assert run.returncode == 0, run.stderr
    value, layer = run.stdout.split()
    assert float(value) == 8.0 and layer != "tbb"
    try:  # the fault itself, where numba would choose TBB here
        bare = subprocess.run([sys.executable, "-c", _KERNEL_IN_A_THREAD, "numba"], capture_output=True, text=True,
                              env=env, preexec_fn=_one_cpu, timeout=20)
    except subprocess.TimeoutExpired as hung:
        assert "tbb" in (hung.stdout or b"").decode()  # printed its layer, then never exited
    else:  # no TBB here, or a TBB that exits
        assert bare.returncode == 0, bare.stderr

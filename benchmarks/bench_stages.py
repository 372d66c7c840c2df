"""Where the time of one tile goes: the main job's stages, on one core, in-process, before/after.

    python benchmarks/bench_stages.py [--runs 3] [--before DIR] [--workdir DIR]

Runs :func:`s1tiling.production.produce` for the main job (the France product of 2021-08-09 onto
31TEL at 10 m, VV+VH, sigma0 with noise removal, nn; inputs as ``bench_ortho.py`` builds them) in a
fresh process on one thread (``NUMBA_NUM_THREADS=1``, one block thread, GDAL compressing on the
calling thread) and times its stages by wrapping the functions that do them: the DEM heights of
the blocks, the geometry nodes, reading + calibrating SAR samples, positions + resampling, and
writing (GDAL compresses as blocks are written and when the files are closed); the rest is the
difference to the whole. CPU seconds of the process (on one thread they add up), medians of
``--runs`` runs.

``--before DIR``: the same measurement, alternating run by run, on another checkout of the
package (``git worktree add /tmp/s1tiling-before <commit>``), so that both columns share the load.
Stages are matched by what they do, whatever the functions are called in that version.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import common

#: (class or module path, attribute, stage): those a version has are wrapped; a call made inside
#: a timed one counts in the outer one
STAGES = [
    ("s1tiling.geometry.dem:DemCatalog", "heights_on_grid", "DEM heights"),
    ("s1tiling.ortho:GeometryGrid", "for_block", "geometry nodes"),
    ("s1tiling.ortho:GeometryGrid", "compute", "geometry nodes"),
    ("s1tiling.production:_Slice", "calibrated_chunk", "read + calibrate"),
    ("s1tiling.production:_Slice", "read", "read + calibrate"),
    ("s1tiling.ortho:GeometryGrid", "sample", "positions + resampling"),
    ("s1tiling.ortho:GeometryGrid", "sar_positions", "positions + resampling"),
    ("s1tiling.production", "sample", "positions + resampling"),
    ("s1tiling.writing:AtomicRasterWriter", "write", "write (compression)"),
    ("s1tiling.writing:AtomicRasterWriter", "__exit__", "write (compression)"),
]
ORDER = ["DEM heights", "geometry nodes", "read + calibrate", "positions + resampling", "write (compression)"]


def _owner(path: str):
    module, _, name = path.partition(":")
    __import__(module)
    owner = sys.modules[module]
    return getattr(owner, name) if name else owner


def _wrap(times: dict, active: list, owner, name: str, stage: str) -> None:
    raw = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    is_classmethod = isinstance(raw, classmethod)
    func = raw.__func__ if is_classmethod else raw

    @functools.wraps(func)
    def timed(*args, **kwargs):
        if active:  # inside another stage: counted there
            return func(*args, **kwargs)
        active.append(stage)
        start = time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            times[stage] = times.get(stage, 0.0) + time.process_time() - start
            active.pop()

    setattr(owner, name, classmethod(timed) if is_classmethod else timed)


def measure(workdir: Path, data: Path, resolution: float) -> dict:
    """One run in this process: stage -> CPU seconds, with 'total' and 'rest'."""
    from s1tiling import context as context_module, grid, production
    from s1tiling.config import load_config
    from s1tiling.discovery import group_products, open_matching_products
    from s1tiling.plan import plan_products

    times: dict[str, float] = {}
    active: list[str] = []  # the stage being timed: what it calls counts in it
    for path, name, stage in STAGES:
        owner = _owner(path)
        if owner is not None and hasattr(owner, name):
            _wrap(times, active, owner, name, stage)
    if hasattr(context_module.Context, "threads"):
        context_module.Context.threads = property(lambda self: 1)
    output = workdir / f"stages-{os.getpid()}"
    config = common.write_request(output / "S1Processor.cfg", workdir=workdir, output=output / "output", data=data,
                                  tiles=[common.TILE], day="2021-08-09",
                                  processing={"output_spatial_resolution": resolution})
    settings = load_config(config)
    products = open_matching_products(settings.paths.s1_images, settings.data_source)
    groups = group_products(products, settings.processing.tiles, settings.data_source, grid.for_settings(settings))
    (job,) = plan_products(settings, groups).tile_jobs
    start = time.process_time()
    production.produce(job, context_module.Context(settings))
    total = time.process_time() - start
    for path in output.rglob("*.tif"):
        path.unlink()
    return {**times, "rest": total - sum(times.values()), "total": total}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.default_data())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout of the package, measured alternately")
    parser.add_argument("--workdir", type=Path, help="inputs are built here once (default: a temporary folder)")
    parser.add_argument("--measure", type=float, help=argparse.SUPPRESS)  # one run at this resolution, JSON out
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-stages-"))
    if args.measure:
        print("RESULT " + json.dumps(measure(workdir, args.data, args.measure)))
        return 0
    common.prepare(args.data, workdir, [common.FRANCE], [common.TILE])
    sources = {"after": common.REPO}
    if args.before:
        sources = {"before": args.before.resolve(), **sources}
    env = {name: {"PYTHONPATH": str(path), "NUMBA_NUM_THREADS": "1"} for name, path in sources.items()}
    command = [sys.executable, __file__, "--workdir", str(workdir), "--data", str(args.data), "--measure"]
    for name in sources:  # compile (or load) the numba kernels of each version first
        common.run_json([*command, "200"], env=env[name])
    load_before = common.load()
    results: dict[str, list[dict]] = {name: [] for name in sources}
    for n in range(args.runs):
        for name in sources:
            measured, _ = common.run_json([*command, "10"], env=env[name])
            results[name].append(measured)
            print(f"  {name} run {n + 1}: {measured['total']:.1f} s CPU (load {common.load()})", flush=True)
    print(f"\nStages of the main job on one core (CPU s, median of {args.runs}; load before {load_before}, "
          f"after {common.load()})")
    header = f"{'stage':24}" + "".join(f"{name:>16}" for name in sources)
    print(header)
    for stage in [*ORDER, "rest", "total"]:
        cells = []
        for name in sources:
            value = common.median(r.get(stage, 0.0) for r in results[name])
            share = value / common.median(r["total"] for r in results[name])
            cells.append(f"{value:8.1f} ({100 * share:3.0f}%)")
        print(f"{stage:24}" + "".join(f"{c:>16}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

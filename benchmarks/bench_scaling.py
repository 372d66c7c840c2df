"""Scaling: two tiles at 10 m, VV+VH, in one process on one core, in two processes, in one process on every core.

    python benchmarks/bench_scaling.py [--runs 3] [--tiles 31TEL 31TDL] [--workdir DIR]

One request (the France product of 2021-08-09 over 31TEL and 31TDL, which it covers, at 10 m,
VV+VH, sigma0 with noise removal, nn; inputs as ``bench_ortho.py`` builds them), made as a fresh
``s1tiling`` command ``--runs`` times each way (medians, min-max):

- ``1 process, 1 core``: ``nb_parallel_processes = 1``, the command pinned to one CPU;
- ``2 processes``: ``nb_parallel_processes = 2`` on the first two CPUs (one tile each);
- ``1 process, 2 cores``: ``nb_parallel_processes = 1`` on the first two CPUs (its task's blocks
  in threads, :attr:`s1tiling.context.Context.threads`).

Speed-ups are wall-time ratios to the first way; outputs are compared, bit for bit.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import common
import numpy as np
import rasterio

WAYS = {"1 process, 1 core": (1, [0]), "2 processes": (2, [0, 1]), "1 process, 2 cores": (1, [0, 1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.default_data())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tiles", nargs="+", default=["31TEL", "31TDL"])
    parser.add_argument("--workdir", type=Path, help="keep inputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("this benchmark needs two CPUs")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    try:
        common.prepare(args.data, workdir, [common.FRANCE], args.tiles)
        before = common.load()
        results: dict[str, list[dict]] = {way: [] for way in WAYS}
        images: dict[str, dict[str, Path]] = {}
        for n in range(args.runs):
            for way, (processes, cpus) in WAYS.items():
                name = way.replace(" ", "").replace(",", "-")
                output = workdir / name / "output"
                shutil.rmtree(output.parent, ignore_errors=True)
                config = common.write_request(workdir / name / "S1Processor.cfg", workdir=workdir, output=output,
                                              data=args.data, tiles=args.tiles, day="2021-08-09",
                                              processing={"nb_parallel_processes": processes, "nb_otb_threads": 1})
                result = common.run(common.s1tiling_command(config), cpus=cpus)
                if result["status"] != 0:
                    raise SystemExit(f"s1tiling exited with {result['status']} ({way}):\n{result['output']}")
                results[way].append(result)
                images[way] = {p.name: p for p in output.rglob("*.tif")}
                print(f"  {way} run {n + 1}: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s "
                      f"(load {common.load()})", flush=True)
            first = images[next(iter(WAYS))]
            for way, found in images.items():
                assert set(found) == set(first) and len(first) == 2 * len(args.tiles), (way, sorted(found))
                for key, path in found.items():
                    with rasterio.open(path) as a, rasterio.open(first[key]) as b:
                        if not np.array_equal(a.read(1), b.read(1)):
                            raise SystemExit(f"{key}: {way} differs from {next(iter(WAYS))}")
        print(f"\n{len(args.tiles)} tiles ({', '.join(args.tiles)}) at 10 m, VV+VH (load before {before}, after "
              f"{common.load()}; median (min-max) of the runs; outputs bit-identical)")
        print(f"{'':20} {'wall s':>18} {'CPU s':>18} {'speed-up':>9}")
        base = common.median(r["wall_s"] for r in results[next(iter(WAYS))])
        for way, runs in results.items():
            print(f"{way:20} {common.summary(runs, 'wall_s'):>18} {common.summary(runs, 'cpu_s'):>18} "
                  f"{base / common.median(r['wall_s'] for r in runs):9.2f}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

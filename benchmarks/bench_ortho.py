"""The main job, whole chain: one full-size product onto one S2 tile at 10 m, VV+VH, against OTB and the write floor.

One command (run by hand; tests never time anything)::

    python benchmarks/bench_ortho.py [--runs 3] [--otb-runs 1] [--tile 31TEL] [--workdir DIR]
                                     [--creation-options "COMPRESS=ZSTD ZSTD_LEVEL=1"] [--processing key=value ...]

Inputs (built once in ``--workdir``, default a temporary folder): the France product of 2021-08-09
(16,676 x 26,144 samples, speckle pixels from :func:`s1tiling.samples.testing.build_product`, both
polarisations) and a DEM folder where the real SRTM tile of the shared data stands for every DEM
tile 31TEL needs. The request: tile 31TEL at 10 m, VV+VH, sigma0 with thermal noise removal,
``nn``, every other key at its default.

Measured, each in a fresh process, ``--runs`` times (medians, min-max): the ``s1tiling`` command
with the native engine; the write floor, i.e. the time to merely write the two output images of
that run (read into memory first) with the same creation options, block by block as production
writes them; and ``--otb-runs`` times the same request with ``engine = otb`` when OTB is installed.
Times are wall and CPU (user + system of the process and of every process it waited for: dask
workers, otbcli_*), memory is the peak RSS of the largest of them; the load of the machine is
printed before and after.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import common

FLOOR = """
import json, resource, sys, time
import numpy as np, rasterio
from rasterio.windows import Window
from s1tiling.blocks import block_windows
from s1tiling.context import usable_cores
from s1tiling.production import BLOCK_HEIGHT, BLOCK_WIDTH
from s1tiling.writing import AtomicRasterWriter, creation_options_for
images, configured, out = json.loads(sys.argv[1])
dtype, options = creation_options_for("tiled", {"tiled": configured} if configured else None)
if usable_cores() > 1:
    options.setdefault("NUM_THREADS", str(usable_cores()))
data = []
for path in images:
    with rasterio.open(path) as ds:
        data.append((ds.read(1), ds.profile))
rows, cols = data[0][0].shape
res = data[0][1]["transform"].a
windows = block_windows(rows, cols, int(BLOCK_HEIGHT // res), int(BLOCK_WIDTH // res))
c0, w0 = time.process_time(), time.perf_counter()
with AtomicRasterWriter(out + "/vv.tif", crs=data[0][1]["crs"], transform=data[0][1]["transform"], width=cols,
                        height=rows, dtype=dtype, creation_options=options) as a, \\
     AtomicRasterWriter(out + "/vh.tif", crs=data[1][1]["crs"], transform=data[1][1]["transform"], width=cols,
                        height=rows, dtype=dtype, creation_options=options) as b:
    for r0, c0_, h, w in windows:
        a.write(data[0][0][r0:r0 + h, c0_:c0_ + w], Window(c0_, r0, w, h))
        b.write(data[1][0][r0:r0 + h, c0_:c0_ + w], Window(c0_, r0, w, h))
print("RESULT " + json.dumps({"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
                              "options": options}))
"""


def native_runs(args, workdir: Path, day: str) -> tuple[list[dict], list[str]]:
    runs = []
    images: list[str] = []
    processing = dict(kv.split("=", 1) for kv in args.processing)
    if args.creation_options:
        processing["creation_options.tiled"] = args.creation_options
    for n in range(args.runs):
        output = workdir / "native" / "output"
        shutil.rmtree(output.parent, ignore_errors=True)
        config = common.write_request(workdir / "native" / "S1Processor.cfg", workdir=workdir, output=output,
                                      data=args.data, tiles=[args.tile], day=day, processing=processing)
        result = common.run(common.s1tiling_command(config))
        if result["status"] != 0:
            raise SystemExit(f"s1tiling exited with {result['status']}:\n{result['output']}")
        runs.append(result)
        images = sorted(str(p) for p in output.rglob("*.tif"))
        print(f"  native run {n + 1}: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, "
              f"peak RSS {result['maxrss_mib']:.0f} MiB (load {common.load()})", flush=True)
    return runs, images


def floor_runs(args, workdir: Path, images: list[str]) -> list[dict]:
    runs = []
    for n in range(args.runs):
        out = workdir / "floor"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        measured, result = common.python_json(FLOOR.replace("sys.argv[1]", repr(json.dumps(
            [images, args.creation_options, str(out)]))))
        runs.append({**measured, "maxrss_mib": result["maxrss_mib"]})
        print(f"  write floor {n + 1}: wall {measured['wall_s']:.1f} s, CPU {measured['cpu_s']:.1f} s "
              f"({' '.join(f'{k}={v}' for k, v in measured['options'].items())})", flush=True)
    return runs


def otb_runs(args, workdir: Path, day: str) -> list[dict]:
    runs = []
    for n in range(args.otb_runs):
        output = workdir / "otb" / "output"
        shutil.rmtree(output.parent, ignore_errors=True)
        config = common.write_request(workdir / "otb" / "S1Processor.cfg", workdir=workdir, output=output,
                                      data=args.data, tiles=[args.tile], day=day, processing={"engine": "otb"})
        result = common.run(common.s1tiling_command(config))
        if result["status"] != 0:
            raise SystemExit(f"s1tiling (OTB engine) exited with {result['status']}:\n{result['output']}")
        runs.append(result)
        print(f"  OTB run {n + 1}: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, "
              f"peak RSS {result['maxrss_mib']:.0f} MiB (load {common.load()})", flush=True)
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.default_data(), help="the shared reference data")
    parser.add_argument("--tile", default=common.TILE)
    parser.add_argument("--runs", type=int, default=3, help="runs of the native engine and of the write floor")
    parser.add_argument("--otb-runs", type=int, default=1, help="runs of the OTB engine (0: none)")
    parser.add_argument("--creation-options", default=None, help="creation_options.tiled of the request")
    parser.add_argument("--processing", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other [Processing] keys of the request (e.g. nb_otb_threads=2)")
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)

    from s1tiling.engines.otb import otb_available

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ortho-"))
    try:
        common.prepare(args.data, workdir, [common.FRANCE], [args.tile])
        day = f"{common.FRANCE[17:21]}-{common.FRANCE[21:23]}-{common.FRANCE[23:25]}"
        before = common.load()
        print(f"load before: {before}", flush=True)
        native, images = native_runs(args, workdir, day)
        floor = floor_runs(args, workdir, images)
        otb = otb_runs(args, workdir, day) if args.otb_runs and otb_available() else []
        if args.otb_runs and not otb:
            print("  OTB engine: not installed (otbcli_* not found), skipped")
        after = common.load()
        print(f"\n{common.FRANCE[:32]} onto {args.tile} at 10 m, VV+VH, sigma0 + noise removal, nn "
              f"(load before {before}, after {after}; median (min-max) of the runs)")
        print(f"{'':14} {'runs':>4} {'wall s':>18} {'CPU s':>18} {'peak RSS MiB':>14}")
        rows = [("native", native), ("write floor", floor), ("OTB engine", otb)]
        for name, runs in rows:
            if runs:
                rss = f"{common.median(r['maxrss_mib'] for r in runs):.0f}"
                print(f"{name:14} {len(runs):4d} {common.summary(runs, 'wall_s'):>18} "
                      f"{common.summary(runs, 'cpu_s'):>18} {rss:>14}")

        def ratio(a, b, key):
            return common.median(r[key] for r in a) / common.median(r[key] for r in b)

        print(f"native / write floor: wall {ratio(native, floor, 'wall_s'):.2f}, "
              f"CPU {ratio(native, floor, 'cpu_s'):.2f}")
        if otb:
            print(f"native / OTB: wall {ratio(native, otb, 'wall_s'):.3f}, CPU {ratio(native, otb, 'cpu_s'):.3f}, "
                  f"peak RSS {ratio(native, otb, 'maxrss_mib'):.3f}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

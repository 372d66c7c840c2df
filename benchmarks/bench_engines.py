"""Native engine against OTB engine: one full-size product onto one S2 tile, whole chain.

Builds (in ``--workdir``, default a temporary folder) a full-size product from a real
metadata-only SAFE (both polarisations, speckle content), a DEM folder (the real SRTM tile of
the shared data linked under the name of every DEM tile the S2 tile needs: real relief, not the
real terrain) and one request file per engine, then runs ``s1tiling`` on each in a fresh process
and reports, per engine: wall time, CPU time (user + system of the process and of its children:
dask workers, otbcli_* programs) and peak resident memory (``ru_maxrss`` of the process, and
of its largest child), the machine's load average around each run, and the ratios to native.

The OTB engine runs twice: ``otb-python``, in memory through OTB's Python module
(``S1TILING_OTB_INTERFACE=python``; build it with ``scripts/build-otb-python.sh`` and put it
on PYTHONPATH), and ``otb-cli``, through the ``otbcli_*`` programs and intermediate files
(``S1TILING_OTB_INTERFACE=cli``). Both must write the same pixels: checked at the end::

    python benchmarks/bench_engines.py [--tile 31TEL] [--resolution 10] [--workdir DIR]

Defaults: the 2021 France product onto 31TEL (fully covered), 10 m, sigma0 with noise removal,
nn interpolation, 40 m deformation grid, ``nb_otb_threads`` = the CPU count.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRODUCT = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"
#: Label -> (engine of the request file, S1TILING_OTB_INTERFACE of the run).
ENGINES = {"native": ("native", None), "otb-python": ("otb", "python"), "otb-cli": ("otb", "cli")}


def _prepare(data: Path, workdir: Path, product: str, tile: str) -> Path:
    """Product and DEM folder under ``workdir`` (reused when present); returns the product folder."""
    from s1tiling import grid
    from s1tiling.geometry.dem import DemCatalog
    from s1tiling.samples.testing import build_product

    s1_images = workdir / "s1"
    if not (s1_images / f"{product}.SAFE").exists():
        start = time.perf_counter()
        build_product(data / "s1" / f"{product}.SAFE", s1_images, content="speckle")
        print(f"built {product} in {time.perf_counter() - start:.0f} s")
    dem_dir = workdir / "dem"
    dem_dir.mkdir(exist_ok=True)
    for tid in DemCatalog(dem_dir).tiles_for_region(grid.tile(tile).footprint):
        link = dem_dir / f"{tid}.hgt"
        if not link.is_symlink():
            link.symlink_to((data / "dem" / "N50E010.hgt").resolve())
    return s1_images


def _request(workdir: Path, label: str, args, day: datetime.date) -> Path:
    engine = ENGINES[label][0]
    folder = workdir / label
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = folder / "S1Processor.cfg"
    config.write_text(f"""[Paths]
s1_images : {workdir / 's1'}
output : {folder / 'output'}
tmp : {folder / 'tmp'}
dem_dir : {workdir / 'dem'}
geoid_file : {args.data / 'geoid' / 'egm96_15.gtx'}

[DataSource]
download : False
first_date : {day}
last_date : {day + datetime.timedelta(days=1)}
polarisation : VV-VH

[Processing]
engine : {engine}
tiles : {args.tile}
calibration : sigma
remove_thermal_noise : True
output_spatial_resolution : {args.resolution:g}
orthorectification_gridspacing : {args.gridspacing:g}
orthorectification_interpolation_method : {args.interpolation}
nb_parallel_processes : 1
nb_otb_threads : {args.threads}
ram_per_process : {args.ram}
""")
    return config


def _measure(config: str) -> None:
    """Run the chain on ``config`` in this process and print its resource use as JSON."""
    from s1tiling import cli

    start = time.perf_counter()
    status = cli.main([config])
    wall = time.perf_counter() - start
    usage = {}
    for who in ("SELF", "CHILDREN"):
        r = resource.getrusage(getattr(resource, f"RUSAGE_{who}"))
        usage[who.lower()] = {"cpu_s": r.ru_utime + r.ru_stime, "maxrss_mib": r.ru_maxrss / 1024}
    print("RESULT " + json.dumps({"status": status, "wall_s": wall, **usage}))


def _run(config: Path, interface: str | None) -> dict:
    env = dict(os.environ)
    if interface:
        env["S1TILING_OTB_INTERFACE"] = interface
    load = os.getloadavg()[0]
    run = subprocess.run([sys.executable, __file__, "--measure", str(config)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        raise SystemExit(f"run of {config} failed:\n{run.stdout[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if result["status"] != 0:
        raise SystemExit(f"s1tiling exited with {result['status']} on {config}:\n{run.stdout[-3000:]}")
    result["load"] = (load, os.getloadavg()[0])
    return result


def _same_pixels(workdir: Path, labels) -> str:
    """Whether the output images of the runs ``labels`` are identical, pixel for pixel."""
    import numpy as np
    import rasterio

    first, *others = labels
    images = sorted(p.relative_to(workdir / first / "output") for p in (workdir / first / "output").rglob("*.tif"))
    differing = []
    for name in images:
        with rasterio.open(workdir / first / "output" / name) as a:
            reference = a.read(1)
        for label in others:
            with rasterio.open(workdir / label / "output" / name) as b:
                if not np.array_equal(reference, b.read(1)):
                    differing.append(f"{label}/{name}")
    return "identical" if not differing else "DIFFERENT: " + ", ".join(differing)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("S1TILING_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data), help="the shared reference data")
    parser.add_argument("--product", default=PRODUCT)
    parser.add_argument("--tile", default="31TEL")
    parser.add_argument("--resolution", type=float, default=10.0)
    parser.add_argument("--gridspacing", type=float, default=40.0)
    parser.add_argument("--interpolation", default="nn", choices=("nn", "linear", "bco"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="nb_otb_threads")
    parser.add_argument("--ram", type=int, default=4096, help="ram_per_process (MB)")
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        _measure(args.measure)
        return 0

    from s1tiling.engines import otb

    for label in args.engines:
        interface = ENGINES[label][1]
        if interface:
            os.environ[otb.INTERFACE_VARIABLE] = interface
            if not otb.otb_available():
                raise SystemExit(f"{label}: OTB cannot run through {interface}: "
                                 f"{otb.PYTHON_HINT if interface == 'python' else otb.INSTALL_HINT}")
    os.environ.pop(otb.INTERFACE_VARIABLE, None)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        _prepare(args.data, workdir, args.product, args.tile)
        day = datetime.datetime.strptime(args.product[17:25], "%Y%m%d").date()
        results = {}
        print(f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for label in args.engines:
            results[label] = _run(_request(workdir, label, args, day), ENGINES[label][1])
            r = results[label]
            print(f"{label:>10}: wall {r['wall_s']:7.1f} s | CPU {r['self']['cpu_s'] + r['children']['cpu_s']:7.1f} s "
                  f"(self {r['self']['cpu_s']:.1f} + children {r['children']['cpu_s']:.1f}) | peak RSS self "
                  f"{r['self']['maxrss_mib']:.0f} MiB, largest child {r['children']['maxrss_mib']:.0f} MiB | "
                  f"load {r['load'][0]:.2f} -> {r['load'][1]:.2f}", flush=True)

        def cpu(r):
            return r["self"]["cpu_s"] + r["children"]["cpu_s"]

        def peak(r):
            return max(r["self"]["maxrss_mib"], r["children"]["maxrss_mib"])

        if "native" in results:
            native = results["native"]
            for label, r in results.items():
                if label != "native":
                    print(f"native/{label}: wall {native['wall_s'] / r['wall_s']:.2f}, CPU {cpu(native) / cpu(r):.2f}, "
                          f"peak memory {peak(native) / peak(r):.2f}")
        otb_runs = [label for label in results if label != "native"]
        if len(otb_runs) > 1:
            print(f"outputs of {' and '.join(otb_runs)}: {_same_pixels(workdir, otb_runs)}")
        print(f"{args.product} onto {args.tile} at {args.resolution:g} m, {args.interpolation}, "
              f"grid spacing {args.gridspacing:g} m, {args.threads} thread(s), inputs in {workdir}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scaling of the dask graph: the same multi-tile, multi-date request with 1 and 2 worker processes.

Run by hand (not a test):  python benchmarks/bench_scaling.py [--resolution 20] [--workdir DIR]

Inputs: the two Germany slices of 2015-02-22 (tiles 32UNB merged, 32UNC) and the France
product of 2021-08-09 (tile 31TEL), built from the shared reference data with synthetic
pixels; DEM = real N50E010 + flat tiles. Prints wall time per process count and the speed-up.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from shapely.ops import unary_union

from s1tiling import cli, grid
from s1tiling.samples.demo import find_reference_data
from s1tiling.samples.testing import build_product, write_dem_folder

PRODUCTS = (
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE",
    "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE",
)
TILES = ("32UNB", "32UNC", "31TEL")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    data = find_reference_data()
    if data is None:
        sys.exit("reference data not found (set S1TILING_TEST_DATA)")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="s1tiling-bench-"))
    images = root / "s1_images"
    images.mkdir(parents=True, exist_ok=True)
    for name in PRODUCTS:
        if not (images / name).exists():
            build_product(data / "s1" / name, images, content="speckle")
    write_dem_folder(root / "dem", unary_union([grid.tile(t).footprint for t in TILES]), data / "dem")
    timings = {}
    for n in args.processes:
        out = root / f"out{n}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = root / f"bench{n}.cfg"
        cfg.write_text(f"""[Paths]
s1_images : {images}
output : {out}
tmp : {root / 'tmp'}
dem_dir : {root / 'dem'}
geoid_file : {data / 'geoid' / 'egm96_15.gtx'}
[DataSource]
first_date : 2015-01-01
last_date : 2021-12-31
[Processing]
tiles : {', '.join(TILES)}
output_spatial_resolution : {args.resolution:g}
nb_parallel_processes : {n}
nb_otb_threads : 1
ram_per_process : 6000
""")
        start = time.perf_counter()
        code = cli.main([str(cfg)])
        timings[n] = time.perf_counter() - start
        print(f"{n} process(es): {timings[n]:.1f} s wall (exit {code})", flush=True)
    base = timings.get(1)
    if base:
        for n, t in timings.items():
            print(f"speed-up with {n} process(es): {base / t:.2f}x on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())

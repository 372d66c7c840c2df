"""Time and memory of the whole chain on one full-size product and one S2 tile (native engine).

Builds, in a temporary folder, a full-size product from a real metadata-only SAFE with
:func:`s1tiling.samples.testing.build_product` (speckle content, both polarisations), SRTM-like DEM
tiles with smooth synthetic relief, and a request file for one tile; then runs the
``s1tiling`` command in this process (one dask worker process) and reports wall time, CPU
time (this process and its children: the dask workers) and peak resident memory::

    python benchmarks/bench_ortho.py [--tile 31TEL] [--resolution 10] [--method nn]
                                     [--threads 1] [--content speckle] [--data ../shared/data]

The default product (France, 2021) covers the default tile 31TEL entirely.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from s1tiling import grid
from s1tiling.cli import main as s1tiling_main
from s1tiling.geometry.dem import DemCatalog
from s1tiling.samples.testing import build_product

PRODUCT = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE"
TILE = "31TEL"


def write_relief(dem_dir: Path, tile: str) -> None:
    """3" .hgt tiles under ``tile``: hills of a few hundred metres (int16 big-endian, 1201 x 1201)."""
    dem_dir.mkdir(parents=True, exist_ok=True)
    posts = np.linspace(0.0, 1.0, 1201)
    for tid in DemCatalog(dem_dir).tiles_for_region(grid.tile(tile).footprint):
        lat0 = int(tid[1:3]) * (1 if tid[0] == "N" else -1)
        lon0 = int(tid[4:7]) * (1 if tid[3] == "E" else -1)
        lon, lat = np.meshgrid(lon0 + posts, lat0 + 1 - posts)
        relief = 400 + 250 * np.sin(lon * 2 * math.pi * 7) * np.cos(lat * 2 * math.pi * 5)
        relief.astype(">i2").tofile(dem_dir / f"{tid}.hgt")


def write_request(root: Path, args, day: str) -> Path:
    config = root / "S1Processor.cfg"
    config.write_text(f"""[Paths]
s1_images : {root / 's1'}
output : {root / 'output'}
tmp : {root / 'tmp'}
dem_dir : {root / 'dem'}
geoid_file : {args.data / 'geoid' / 'egm96_15.gtx'}

[DataSource]
download : False
first_date : {day}
last_date : {day}
polarisation : VV-VH

[Processing]
tiles : {args.tile}
calibration : sigma
remove_thermal_noise : True
output_spatial_resolution : {args.resolution:g}
orthorectification_interpolation_method : {args.method}
nb_parallel_processes : 1
nb_otb_threads : {args.threads}
""")
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--product", default=PRODUCT)
    parser.add_argument("--tile", default=TILE)
    parser.add_argument("--resolution", type=float, default=10.0)
    parser.add_argument("--method", default="nn", choices=("nn", "linear", "bco"))
    parser.add_argument("--threads", type=int, default=1, help="threads of the dask worker (nb_otb_threads)")
    parser.add_argument("--content", default="speckle", help="'speckle' or a constant DN")
    default_data = os.environ.get("S1TILING_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args()
    content = args.content if args.content == "speckle" else int(args.content)

    with tempfile.TemporaryDirectory(prefix="bench_ortho-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build_product(args.data / "s1" / args.product, root / "s1", content=content)
        write_relief(root / "dem", args.tile)
        print(f"inputs built in {time.perf_counter() - start:.1f} s ({args.product}, DEM under {args.tile})")
        day = f"{args.product[17:21]}-{args.product[21:23]}-{args.product[23:25]}"
        config = write_request(root, args, day)

        before_self = resource.getrusage(resource.RUSAGE_SELF)
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        status = s1tiling_main([str(config)])
        wall = time.perf_counter() - start
        after_self = resource.getrusage(resource.RUSAGE_SELF)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if status != 0:
            raise SystemExit(f"s1tiling exited with status {status}")

        def cpu(before, after):
            return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

        outputs = sorted((root / "output").rglob("*.tif"))
        rows, cols = grid.tile(args.tile).shape(args.resolution)
        pixels = len(outputs) * rows * cols
        main_cpu, workers_cpu = cpu(before_self, after_self), cpu(before_children, after_children)
        print(f"tile {args.tile} at {args.resolution:g} m, {args.method}, {len(outputs)} image(s): "
              + ", ".join(p.name for p in outputs))
        print(f"wall {wall:.1f} s; CPU {main_cpu + workers_cpu:.1f} s (main process {main_cpu:.1f} s, "
              f"workers {workers_cpu:.1f} s); {pixels / wall / 1e6:.2f} output Mpixels/s")
        print(f"peak RSS: main process {after_self.ru_maxrss / 1024:.0f} MiB, "
              f"largest child (dask worker) {after_children.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

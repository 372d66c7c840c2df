"""Throughput of backward geocoding (ground -> SAR) on a Sentinel-2 tile grid.

Geocodes the pixel centres of the first ``--rows`` rows of tile 32UNB at 10 m
(10980 columns) with the real annotation of the product that covers it, once per
numba thread count, and extrapolates to the whole 10980 x 10980 tile::

    python benchmarks/bench_geocoding.py [--rows 1000] [--threads 1 2] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numba
import numpy as np
from pyproj import Transformer

from s1tiling.geometry import SarModel
from s1tiling.s1.annotation import parse_annotation

PRODUCT = "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE"
TILE = ("EPSG:32632", 499980.0, 5700000.0)  # 32UNB upper-left corner
SIDE = 10980
HEIGHT = 300.0  # ellipsoidal metres, constant (the DEM does not change the solver's work)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    default_data = os.environ.get("S1TILING_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args()

    annotation = next((args.data / "s1" / PRODUCT / "annotation").glob("s1a-iw-grd-vv-*.xml"))
    model = SarModel.from_annotation(parse_annotation(annotation))
    crs, ulx, uly = TILE
    x = ulx + 10.0 * (np.arange(SIDE) + 0.5)
    y = uly - 10.0 * (np.arange(args.rows) + 0.5)
    xx, yy = np.meshgrid(x, y)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    height = np.full(lat.shape, HEIGHT)
    model.ground_to_sar(lat[:2, :2], lon[:2, :2], height[:2, :2])  # compile or load the cache

    print(f"{lat.size} points ({args.rows} x {SIDE}), range polynomial {model.range_polynomial}")
    for threads in args.threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        start = time.perf_counter()
        line, pixel = model.ground_to_sar(lat, lon, height)
        elapsed = time.perf_counter() - start
        rate = lat.size / elapsed
        inside = np.mean(
            (line >= 0) & (line < model.number_of_lines) & (pixel >= 0) & (pixel < model.number_of_samples)
        )
        print(
            f"threads={numba.get_num_threads()}: {elapsed:.2f} s, {rate / 1e6:.2f} Mpoints/s, "
            f"{rate / numba.get_num_threads() / 1e6:.2f} Mpoints/s/thread, "
            f"full tile {SIDE * SIDE / rate:.1f} s ({100 * inside:.0f}% of points inside the image)"
        )


if __name__ == "__main__":
    main()

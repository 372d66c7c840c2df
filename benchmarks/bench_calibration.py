"""Time and memory of calibrating a full-size product window by window.

Builds a full-size product (both polarisations, speckle content) from a real metadata-only
SAFE with :func:`s1tiling.samples.testing.build_product` in a temporary folder, then calibrates it
(sigma0, thermal noise removed, border cut) in strips of ``--strip`` lines::

    python benchmarks/bench_calibration.py [--strip 1024] [--zipped] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from s1tiling import open_product
from s1tiling.radiometry import border_cut_params, calibrate
from s1tiling.samples.testing import build_product

PRODUCT = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strip", type=int, default=1024, help="lines per window")
    parser.add_argument("--zipped", action="store_true", help="read the product from its zip")
    parser.add_argument("--product", default=PRODUCT)
    default_data = os.environ.get("S1TILING_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = build_product(args.data / "s1" / args.product, tmp, zipped=args.zipped, content="speckle")
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        print(f"build: {time.perf_counter() - start:.1f} s, {size / 2**20:.0f} MiB on disk ({path.name})")

        product = open_product(path)
        lines, samples = product.shape
        calibrate(product, product.polarisations[0], (0, 0, 2, 2), border_cut=False)  # compile or load the cache
        print(f"{lines} lines x {samples} samples, windows of {args.strip} lines")
        tracemalloc.start()
        total = 0.0
        for pol in product.polarisations:
            start = time.perf_counter()
            cut = border_cut_params(product, pol)
            for row in range(0, lines, args.strip):
                calibrate(product, pol, (row, 0, min(args.strip, lines - row), samples), border_cut=cut)
            elapsed = time.perf_counter() - start
            total += elapsed
            print(f"{pol}: {elapsed:.2f} s, {lines * samples / elapsed / 1e6:.0f} Mpixels/s")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"total {total:.2f} s; peak traced allocations {peak / 2**20:.0f} MiB; peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()

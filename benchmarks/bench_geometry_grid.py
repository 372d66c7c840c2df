"""Accuracy of the coarse geometry grid against exact per-pixel geocoding, for every product.

For each real product of the shared data (``s1/*.SAFE``, annotated orbit), blocks of the
production size (``BLOCK_HEIGHT`` x ``BLOCK_WIDTH`` of :mod:`s1tiling.production`, 10 m pixels) are
laid in the UTM zone of the product, inside its footprint. Each block gets random heights
(uniform 0-1500 m above the EGM96 geoid, a new one for every pixel: the worst case for the
interpolation in height) and its nodes exactly as production makes them
(:meth:`s1tiling.ortho.GeometryGrid.for_block` at ``orthorectification_gridspacing``, default 40 m);
then, at random pixels of the block, the interpolated SAR position is compared with the exact one
(:meth:`SarModel.ground_to_sar` of the pixel centre at its own ellipsoidal height). Prints, per
product, the largest and the median distance (SAR samples) and the node spacings used::

    python benchmarks/bench_geometry_grid.py [--gridspacing 40] [--fixed] [--blocks 8] [--pixels 200000]

``--fixed`` geocodes the nodes at ``--gridspacing`` exactly (no adaptive spacing), e.g.
``--gridspacing 1000 --fixed`` for the 1 km grid of the README's table.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import MultiPoint, box

from s1tiling.geometry.geoid import Geoid
from s1tiling.geometry.sar_model import SarModel
from s1tiling.ortho import GeometryGrid
from s1tiling.production import BLOCK_HEIGHT, BLOCK_WIDTH, MIN_NODE_PIXELS
from s1tiling.s1.annotation import parse_annotation

RESOLUTION = 10.0
MAX_HEIGHT = 1500.0


def utm_of(lat: float, lon: float) -> CRS:
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def product_blocks(annotation, crs: CRS, count: int, rng) -> list[Affine]:
    """Transforms of up to ``count`` blocks inside the footprint (its geolocation grid), spread over it."""
    g = annotation.geolocation_grid
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(g.longitude, g.latitude)
    footprint = MultiPoint(np.column_stack([x, y])).convex_hull.buffer(-1000.0)
    xmin, ymin, xmax, ymax = footprint.bounds
    inside = []
    for top in np.arange(ymax, ymin, -BLOCK_HEIGHT):
        for left in np.arange(xmin, xmax, BLOCK_WIDTH):
            if footprint.contains(box(left, top - BLOCK_HEIGHT, left + BLOCK_WIDTH, top)):
                inside.append(Affine(RESOLUTION, 0, round(left), 0, -RESOLUTION, round(top)))
    if len(inside) > count:
        inside = [inside[i] for i in sorted(rng.choice(len(inside), count, replace=False))]
    return inside


def block_errors(model, geoid, crs, transform, step, fixed, pixels, rng):
    rows, cols = int(BLOCK_HEIGHT // RESOLUTION), int(BLOCK_WIDTH // RESOLUTION)
    heights = rng.uniform(0.0, MAX_HEIGHT, (rows, cols)).astype(np.float32)
    x0, y0 = transform * (0, 0)
    x1, y1 = transform * (cols, rows)
    half = RESOLUTION / 2
    centres = (x0 + half, y1 + half, x1 - half, y0 - half)
    height_range = (float(heights.min()), float(heights.max()))
    if fixed:
        grid = GeometryGrid.compute(model, geoid, crs, centres, step, height_range)
    else:
        grid = GeometryGrid.for_block(model, geoid, crs, centres, step, height_range)
    lines, pix = grid.sar_positions(transform, 0, 0, heights)
    k = rng.choice(rows * cols, min(pixels, rows * cols), replace=False)
    r, c = np.divmod(k, cols)
    x, y = transform * (c + 0.5, r + 0.5)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    h = heights[r, c].astype(np.float64) + geoid.undulation(lat, lon)
    exact_l, exact_p = model.ground_to_sar(lat, lon, h)
    inside = (exact_l >= 0) & (exact_l < model.number_of_lines) & (exact_p >= 0) & (exact_p < model.number_of_samples)
    error = np.hypot(lines[r, c] - exact_l, pix[r, c] - exact_p)[inside]
    return error, grid.step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("S1TILING_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--gridspacing", type=float, default=40.0, help="orthorectification_gridspacing (m)")
    parser.add_argument("--fixed", action="store_true", help="nodes at --gridspacing exactly (no adaptive spacing)")
    parser.add_argument("--blocks", type=int, default=8, help="blocks per product")
    parser.add_argument("--pixels", type=int, default=200_000, help="pixels checked per block")
    args = parser.parse_args(argv)
    geoid = Geoid(args.data / "geoid" / "egm96_15.gtx")
    step = max(args.gridspacing, MIN_NODE_PIXELS * RESOLUTION)
    print(f"load {' '.join(f'{v:.1f}' for v in os.getloadavg())}; node spacing "
          f"{'fixed ' if args.fixed else 'from '}{step:g} m; {args.blocks} blocks x {args.pixels} pixels per product")
    print(f"{'product':<36} {'max px':>8} {'median px':>10} {'spacings (m)':>14} {'s':>5}")
    rng = np.random.default_rng(2024)
    for safe in sorted((args.data / "s1").glob("*.SAFE")):
        start = time.perf_counter()
        annotation = parse_annotation(sorted((safe / "annotation").glob("*.xml"))[0])
        model = SarModel.from_annotation(annotation)
        g = annotation.geolocation_grid
        lon = np.degrees(np.angle(np.mean(np.exp(1j * np.radians(g.longitude)))))
        crs = utm_of(float(np.mean(g.latitude)), float(lon))
        errors, spacings = [], set()
        for transform in product_blocks(annotation, crs, args.blocks, rng):
            error, used = block_errors(model, geoid, crs, transform, step, args.fixed, args.pixels, rng)
            errors.append(error)
            spacings.add(used)
        error = np.concatenate(errors)
        used = "/".join(f"{s:g}" for s in sorted(spacings))
        print(f"{safe.name[:36]:<36} {error.max():8.5f} {np.median(error):10.6f} {used:>14} "
              f"{time.perf_counter() - start:5.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

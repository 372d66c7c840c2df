"""Time series access: opening a 50-date tile lazily, and the bytes one pixel's curve reads.

    python benchmarks/bench_timeseries.py [--dates 50] [--resolution 60] [--repeat 5] [--work DIR]

Builds, once, ``--dates`` acquisitions of S2 tile 31TEL (ascending orbit 59, every 12 days):
VV images (float32, 4-look speckle, a no-data strip) and their border masks, written by the
chain's own writer (:class:`s1tiling.writing.AtomicRasterWriter`, tags of
:func:`s1tiling.writing.tile_metadata`, S1Tiling names), as GeoTIFFs (256-pixel tiles, the
default) and as COGs (512-pixel tiles); then the STAC catalog of each (``s1tiling catalog``).

Each measure runs in a fresh Python process, repeated ``--repeat`` times; medians are printed
with the machine's load:

- import: ``import s1tiling.timeseries`` and the libraries it loads on first use (xarray,
  odc-stac, pystac, dask.array), which a notebook has loaded already;
- open: then ``s1tiling.open_timeseries(output, "31TEL")``, the first call of the process
  (reads the items, builds the dask graph, no pixel), then a second call; also on ``--dates``
  full-size 10 m tiles (sparse files: opening reads no pixel), with odc-stac's ``load`` of the
  same items for comparison;
- curve: ``ts.vv.sel(x=..., y=..., method="nearest").compute()`` with dask's synchronous
  scheduler and GDAL's block cache at 1 MB, after a warm-up read in another chunk (the lazy
  imports of the reading code): the bytes the process read during the call (``rchar`` of
  ``/proc/self/io``: every read system call), against the compressed size of the blocks
  holding the pixel in each image and mask, of the blocks under the 512 x 512 dask chunk
  holding it (``block_size`` of rasterio), and of the files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

TILE, ORBIT = "31TEL", 59
FIRST = dt.datetime(2021, 3, 2, 17, 39, 53, tzinfo=dt.timezone.utc)
PIXEL = (560030.0, 5030030.0)  # (x, y) in the tile, inside the data

_CHILD = r"""
import json, os, sys, time
what, output = sys.argv[1], sys.argv[2]
out = {}
start = time.perf_counter()
import s1tiling.timeseries
s1tiling.timeseries._require()  # xarray, odc-stac, pystac: what a notebook has imported already
out["import_s"] = time.perf_counter() - start
if what == "open":
    start = time.perf_counter()
    ts = s1tiling.open_timeseries(output, "31TEL")
    out["first_s"] = time.perf_counter() - start
    start = time.perf_counter()
    s1tiling.open_timeseries(output, "31TEL")
    out["second_s"] = time.perf_counter() - start
    out["dates"], out["chunks"] = int(ts.sizes["time"]), int(ts.vv.data.npartitions)
elif what == "odc":  # the same catalog through odc-stac, for comparison
    import odc.stac, pystac
    from s1tiling.timeseries import select_items
    start = time.perf_counter()
    items = select_items(output, "31TEL")
    odc.stac.load(items, bands=["vv", "vv_mask"], chunks={"x": 512, "y": 512}, groupby="id")
    out["first_s"] = time.perf_counter() - start
else:
    import dask, rasterio
    x, y = json.loads(sys.argv[3])
    with rasterio.Env(GDAL_CACHEMAX=1):
        ts = s1tiling.open_timeseries(output, "31TEL")
        point = ts.vv.sel(x=x, y=y, method="nearest")
        with dask.config.set(scheduler="synchronous"):  # warm-up in another chunk: lazy imports, not counted
            ts.vv.isel(x=-1, y=-1).compute()
        def rchar():
            with open("/proc/self/io") as f:
                return int(next(l for l in f if l.startswith("rchar")).split()[1])
        with dask.config.set(scheduler="synchronous"):
            before = rchar()
            start = time.perf_counter()
            curve = point.compute()
            out["curve_s"] = time.perf_counter() - start
            out["bytes_read"] = rchar() - before
    out["valid_dates"] = int((~curve.isnull()).sum())
print(json.dumps(out))
"""


def _write_dates(folder: Path, dates: int, resolution: float, output_format: str, sparse: bool = False) -> None:
    """``dates`` VV images and masks; ``sparse``: no pixel written (empty GeoTIFF blocks, for
    measures that read no pixel: full-size 10 m tiles at no cost)."""
    import numpy as np
    from rasterio.windows import Window

    from s1tiling import grid
    from s1tiling.naming import TileProduct
    from s1tiling.writing import AtomicRasterWriter, creation_options_for, tile_metadata

    tile = grid.tile(TILE)
    transform = tile.transform(resolution)
    rows, cols = tile.shape(resolution)
    for k in range(dates):
        when = FIRST + dt.timedelta(days=12 * k)
        product = TileProduct("s1a", TILE, "vv", "ASC", ORBIT, (when,))
        path = product.path(dirs={"out_dir": str(folder)})
        if path.exists():
            continue
        absolute = 36 + 175 * k
        tags = tile_metadata(product, input_products=[f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_synthetic"],
                             absolute_orbit=absolute, noise_removed=True, dem_info="flat", interpolator="linear",
                             spatial_resolution=resolution, engine="native", orbit_source="annotation")
        rng = np.random.default_rng(k)
        edge = cols // 10  # a no-data strip, as beyond a swath
        for name, dtype, kind, resampling, nodata in (("image", "float32", "tiled", "AVERAGE", 0),
                                                      ("mask", "uint8", "mask", "NEAREST", None)):
            target = path if name == "image" else product.path("mask", dirs={"out_dir": str(folder)})
            _, options = creation_options_for(kind)
            if sparse:
                options = {**options, "TILED": "YES", "SPARSE_OK": "TRUE"}
            with AtomicRasterWriter(target, crs=tile.crs, transform=transform, width=cols, height=rows, dtype=dtype,
                                    nodata=nodata, creation_options=options, tags=tags, output_format=output_format,
                                    overview_resampling=resampling) as out:
                for r0 in range(0, 0 if sparse else rows, 512):
                    h = min(512, rows - r0)
                    if name == "image":
                        values = (0.05 * rng.gamma(4.0, 0.25, (h, cols))).astype("float32")
                        values[:, :edge] = 0
                    else:
                        values = np.ones((h, cols), "uint8")
                        values[:, :edge + 2] = 0
                    out.write(values, Window(0, r0, cols, h))


def _needed_bytes(output: Path) -> tuple[int, int, int, int]:
    """Compressed bytes of the blocks holding PIXEL in every image and mask, of the blocks under
    the 512 x 512 dask chunk holding it (what odc-stac reads), of all those files; and their count."""
    import rasterio

    pixel_blocks = chunk_blocks = total = count = 0
    for path in sorted((output / TILE).glob("*.tif")):
        with rasterio.open(path) as src:
            row, col = src.index(*PIXEL)
            bh, bw = src.block_shapes[0]
            pixel_blocks += src.block_size(1, row // bh, col // bw)
            r0, c0 = row // 512 * 512, col // 512 * 512  # the chunk: rows r0..r1-1, columns c0..c1-1
            r1, c1 = min(r0 + 512, src.height), min(c0 + 512, src.width)
            chunk_blocks += sum(src.block_size(1, i, j) for i in range(r0 // bh, (r1 - 1) // bh + 1)
                                for j in range(c0 // bw, (c1 - 1) // bw + 1))
        total += path.stat().st_size
        count += 1
    return pixel_blocks, chunk_blocks, total, count


def _child(what: str, output: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, what, str(output), json.dumps(PIXEL)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=50)
    parser.add_argument("--resolution", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", default="_work/bench-timeseries")
    args = parser.parse_args()
    from s1tiling.catalog import update_catalog

    print(f"load average before: {os.getloadavg()}")
    for output_format in ("GTiff", "COG"):
        output = Path(args.work).resolve() / f"{output_format}-{args.dates}d-{args.resolution:g}m"
        _write_dates(output, args.dates, args.resolution, output_format)
        report = update_catalog(output)
        needed, chunk, total, files = _needed_bytes(output)
        opens = [_child("open", output) for _ in range(args.repeat)]
        curves = [_child("curve", output) for _ in range(args.repeat)]
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        print(f"\n{output_format}: {opens[0]['dates']} dates of {TILE} at {args.resolution:g} m, {files} files "
              f"({total / 1e6:.0f} MB), catalog of {report.items} items")
        print(f"  import s1tiling.timeseries (cold): {med(opens, 'import_s'):.2f} s")
        print(f"  open_timeseries, lazy: first call {med(opens, 'first_s'):.3f} s, "
              f"second {med(opens, 'second_s'):.3f} s")
        print(f"  one pixel's curve ({curves[0]['valid_dates']} valid dates): {med(curves, 'curve_s'):.3f} s, "
              f"read {med(curves, 'bytes_read') / 1e6:.2f} MB; the blocks holding the pixel: {needed / 1e6:.2f} MB, "
              f"those under its 512 x 512 chunk: {chunk / 1e6:.2f} MB (read / chunk blocks: "
              f"{med(curves, 'bytes_read') / chunk:.2f}); all the files: {total / 1e6:.0f} MB "
              f"(read {100 * med(curves, 'bytes_read') / total:.2f}% of them)")
    # Opening only, at full resolution: 10 m tiles, sparse files (nothing is read when opening).
    output = Path(args.work).resolve() / f"sparse-{args.dates}d-10m"
    _write_dates(output, args.dates, 10.0, "GTiff", sparse=True)
    update_catalog(output)
    opens = [_child("open", output) for _ in range(args.repeat)]
    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    print(f"\n{opens[0]['dates']} dates of {TILE} at 10 m ({opens[0]['chunks']} chunks of 512 x 512 per band):")
    print(f"  open_timeseries, lazy: first call {med(opens, 'first_s'):.3f} s, second {med(opens, 'second_s'):.3f} s")
    try:
        import odc.stac  # noqa: F401
        odc = [_child("odc", output) for _ in range(max(1, args.repeat // 2))]
        print(f"  odc.stac.load of the same items (vv and its mask, 512 x 512 chunks): {med(odc, 'first_s'):.3f} s")
    except ImportError:
        print("  (odc-stac not installed: no comparison)")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

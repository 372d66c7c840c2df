"""Gamma area map (terrain flattening) of one S2 tile: time and memory; the ridge residual against
the oversampling; the layover/shadow mask and before/after numbers of the DEM void filling.

    python benchmarks/bench_gamma_area.py [--resolution 10] [--oversampling 2.5] [--repeat 3] [--work DIR]
    python benchmarks/bench_gamma_area.py --ridge
    python benchmarks/bench_gamma_area.py --voids [--resolution 20]

Inputs: the 2015 Germany pass (relative orbit 117, real annotations, no pixels) over S2 tile
32UNB, on the real SRTM N50E010 tile (flat tiles around it) and the EGM96 geoid of the shared
data (``S1TILING_TEST_DATA``, default ``../shared/data``).

Default: ``s1tiling-gamma-area`` (S1GammaAreaMap) on the whole tile, then the sin(LIA) map of
the same tile, then the write floor (a float32 tile of the same size written with the map's
creation options), each in a fresh process from an empty output folder, ``--repeat`` times (the median run is
reported): wall time, CPU time and peak resident memory of the
process, with the machine's load before and after.

``--ridge``: the 99th percentile of |10 log10(R_k / R_12)| over the steepest part of the tile
(Thuringian Forest, 2 km square around 50.859 N 10.452 E at 10 m), R_k the gamma area ratio at
oversampling k: the residual terrain signal a coarser computation leaves, which chooses the
default oversampling (the smallest bringing it under 0.3 dB).

``--voids``: LIA and layover/shadow maps of the tile with the voids of N50E010 filled (the
default) and set to the geoid (``dem_fill_max_distance = 0``, the behaviour before filling):
LIA > 90 degrees counts, those outside layover/shadow, and the heights near the former voids.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("S1TILING_TEST_DATA", ROOT.parent / "shared" / "data"))
SLICES = ("S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
          "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE")
TILE, ORBIT = "32UNB", 117


def _inputs(work: Path) -> None:
    from s1tiling import grid
    from s1tiling.samples.testing import build_product, write_dem_folder
    if not (work / "metadata").is_dir():
        for name in SLICES:
            build_product(DATA / "s1" / name, work / "metadata", polarisations=[])
    write_dem_folder(work / "dem", grid.tile(TILE).footprint, DATA / "dem")


def _request(work: Path, name: str, resolution: float, **processing) -> Path:
    values = {"tiles": TILE, "output_spatial_resolution": f"{resolution:g}", "nb_parallel_processes": 1,
              **processing}
    text = (f"[Paths]\noutput : {work / name}\ns1_images : {work / 'metadata'}\ndem_dir : {work / 'dem'}\n"
            f"tmp : {work / 'tmp'}\ngeoid_file : {DATA / 'geoid' / 'egm96_15.gtx'}\n"
            "[DataSource]\nfirst_date : 2015-02-22\nlast_date : 2015-02-22\npolarisation : VV\n"
            "[Processing]\n" + "".join(f"{k} : {v}\n" for k, v in values.items()))
    cfg = work / f"{name}.cfg"
    cfg.write_text(text)
    return cfg


def _timed(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python process: wall and CPU seconds, its peak RSS (MiB)."""
    before = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        prologue = ("import atexit, resource\n"
                    f"atexit.register(lambda: open({rss.name!r}, 'w').write("
                    "str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))\n")
        start = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", prologue + code, *args], check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = int(Path(rss.name).read_text() or 0)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mib": round(peak / 1024, 1),
            "load_before": round(before, 2), "load_after": round(os.getloadavg()[0], 2)}


_FLOOR = r"""
import sys, numpy as np, rasterio
from affine import Affine
from s1tiling.writing import creation_options_for
n = int(sys.argv[2])
dtype, options = creation_options_for("gamma_area")
data = np.random.default_rng(0).random((512, n), dtype=np.float32) * 100
with rasterio.open(sys.argv[1], "w", driver="GTiff", width=n, height=n, count=1, dtype=dtype,
                   transform=Affine(10, 0, 0, 0, -10, 0), crs="EPSG:32632", tiled=True, **options) as dst:
    for r in range(0, n, 512):
        h = min(512, n - r)
        dst.write(data[:h], 1, window=rasterio.windows.Window(0, r, n, h))
"""


def _median_run(code: str, cfg: Path, output: Path, repeat: int) -> dict:
    """``code`` run ``repeat`` times, from an empty output folder each time: the run of median wall
    time, with every run's wall time."""
    runs = []
    for _ in range(repeat):
        shutil.rmtree(output, ignore_errors=True)
        runs.append(_timed(code, str(cfg)))
    runs.sort(key=lambda run: run["wall_s"])
    return {**runs[len(runs) // 2], "runs_wall_s": [run["wall_s"] for run in runs]}


def bench_map(work: Path, resolution: float, oversampling: float, repeat: int) -> None:
    import numba
    _inputs(work)
    rows = int(109800 / resolution)
    print(json.dumps({"tile": TILE, "resolution_m": resolution, "pixels": rows * rows, "oversampling": oversampling,
                      "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(), "repeat": repeat}))
    name = f"ga_{resolution:g}_{oversampling:g}"
    cfg = _request(work, name, resolution, gamma_area_oversampling=oversampling)
    gamma = _median_run("import sys; from s1tiling import cli; sys.exit(cli.gamma_area_main([sys.argv[1]]))", cfg,
                        work / name, repeat)
    print(json.dumps({"gamma_area_map": gamma}))
    name = f"lia_{resolution:g}"
    cfg = _request(work, name, resolution)
    lia = _median_run("import sys; from s1tiling import cli; sys.exit(cli.lia_main([sys.argv[1]]))", cfg,
                      work / name, repeat)
    print(json.dumps({"sin_lia_map": lia}))
    floors = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            floors.append(_timed(_FLOOR, str(Path(tmp) / "floor.tif"), str(rows)))
    floors.sort(key=lambda run: run["wall_s"])
    floor = floors[len(floors) // 2]
    print(json.dumps({"write_floor": floor, "gamma_area_over_floor": round(gamma["wall_s"] / floor["wall_s"], 2),
                      "gamma_area_over_sin_lia": round(gamma["wall_s"] / lia["wall_s"], 2)}))


def bench_ridge(work: Path) -> None:
    import numpy as np
    from affine import Affine
    from pyproj import Transformer

    from s1tiling import config, grid
    from s1tiling.context import Context, pass_orbit
    from s1tiling.s1.product import open_product
    from s1tiling.terrain_flattening import RadarBins, facet_factor, gamma_area_ratio
    _inputs(work)
    context = Context(config.load_config(_request(work, "ridge", 10.0)))
    orbit = pass_orbit([open_product(work / "metadata" / name) for name in SLICES])
    tile = grid.tile(TILE)
    transform = tile.transform(10.0)
    col, row = ~transform @ Transformer.from_crs("EPSG:4326", tile.crs, always_xy=True).transform(10.452, 50.859)
    bins = RadarBins.for_grid(orbit, tile.crs, transform, tile.shape(10.0))
    margin = 160
    corner = transform @ Affine.translation(round(col) - 100 - margin, round(row) - 100 - margin)
    heights = context.dem.heights_on_grid(tile.crs, corner, (200 + 2 * margin,) * 2, "cubic", geoid=context.geoid)
    print(json.dumps({"relief_m": round(float(np.ptp(heights)), 1), "load": round(os.getloadavg()[0], 2)}))
    results, times = {}, {}
    for k in (12, 1, 1.5, 2, 2.5, 3, 4, 6):
        start = time.perf_counter()
        results[k] = gamma_area_ratio(orbit, tile.crs, corner, heights, margin, bins, k)
        times[k] = time.perf_counter() - start
    ok = results[12] > 0.1
    for k in (1, 1.5, 2, 2.5, 3, 4, 6):
        residual = np.abs(10 * np.log10(results[k][ok] / results[12][ok]))
        print(json.dumps({"oversampling": k, "facets_per_pixel_side": facet_factor(k),
                          "p99_db": round(float(np.percentile(residual, 99)), 3),
                          "p95_db": round(float(np.percentile(residual, 95)), 3),
                          "max_db": round(float(residual.max()), 3), "seconds": round(times[k], 2),
                          "load": round(os.getloadavg()[0], 2)}))


def bench_voids(work: Path, resolution: float) -> None:
    import numpy as np
    import rasterio

    from s1tiling import cli, config
    from s1tiling.context import Context
    _inputs(work)
    maps = {}
    for name, distance in (("filled", 10000), ("geoid", 0)):
        cfg = _request(work, f"voids_{name}_{resolution:g}", resolution, produce_lia_map="True",
                       produce_layover_shadow_mask="True", dem_fill_max_distance=distance)
        folder = work / f"voids_{name}_{resolution:g}" / "_LIA"
        if not (folder / f"LAYOVER_SHADOW_{TILE}_{ORBIT}.tif").exists():
            assert cli.lia_main([str(cfg)]) == 0
        with rasterio.open(folder / f"LIA_{TILE}_{ORBIT}.tif") as src:
            lia = src.read(1, masked=True)
            transform, crs = src.transform, src.crs
        with rasterio.open(folder / f"LAYOVER_SHADOW_{TILE}_{ORBIT}.tif") as src:
            mask = src.read(1)
        context = Context(config.load_config(cfg))
        heights = context.dem.heights_on_grid(str(crs), transform, lia.shape, "bilinear")
        maps[name] = (lia, mask, heights, context)
    # pixels near the former voids: within 160 m of a void post
    catalog = maps["filled"][3].dem
    areas = catalog.filled_areas(maps["filled"][3].tile_grid.tile(TILE).footprint)
    lia_f, mask_f, h_f, _ = maps["filled"]
    lia_g, mask_g, h_g, _ = maps["geoid"]
    near = np.abs(h_f - h_g) > 0.5  # pixels whose height the filling changed: near the former voids
    for name, (lia, mask, heights, _) in maps.items():
        valid = ~np.ma.getmaskarray(lia)
        steep = valid & (lia.filled(0) > 9000)
        print(json.dumps({"dem_voids": name, "resolution_m": resolution, "lia_above_90": int(steep.sum()),
                          "lia_above_90_outside_mask": int((steep & ((mask & 2) == 0)).sum()),
                          "layover_pixels": int(((mask & 1) != 0).sum() - (mask == 255).sum()),
                          "shadow_pixels": int(((mask & 2) != 0).sum() - (mask == 255).sum()),
                          "lia_above_90_near_voids": int((steep & near).sum()),
                          "min_height_near_voids_m": round(float(heights[near].min()), 1) if near.any() else None}))
    print(json.dumps({"filled_areas": len(areas), "filled_posts": sum(a.posts for a in areas),
                      "pixels_changed": int(near.sum()),
                      "height_change_m": {"max": round(float(np.abs(h_f - h_g)[near].max()), 1) if near.any() else 0,
                                          "median": round(float(np.median(np.abs(h_f - h_g)[near])), 1)
                                          if near.any() else 0}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=float, default=10.0)
    parser.add_argument("--oversampling", type=float, default=2.5)
    parser.add_argument("--ridge", action="store_true")
    parser.add_argument("--voids", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (the median is reported)")
    args = parser.parse_args()
    if not (DATA / "dem" / "N50E010.hgt").is_file():
        sys.exit(f"shared data not found in {DATA} (set S1TILING_TEST_DATA)")
    work = args.work or Path(tempfile.gettempdir()) / "s1tiling_bench_gamma_area"
    work.mkdir(parents=True, exist_ok=True)
    if args.ridge:
        bench_ridge(work)
    elif args.voids:
        bench_voids(work, args.resolution)
    else:
        bench_map(work, args.resolution, args.oversampling, args.repeat)


if __name__ == "__main__":
    main()

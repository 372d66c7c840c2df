"""Time of the Sentinel-2 tile grid: one tile lookup, and the tiles of a country-sized polygon.

Each measure runs in a fresh Python process (cold: nothing cached but the imports) and is repeated
``--repeat`` times; medians are printed with the machine's load::

    python benchmarks/bench_grid.py [--repeat 7]

- lookup: the first ``grid.tile(name)`` of the process (it also builds the UTM lattice the rules
  read, about 4 000 points projected once per hemisphere); then 200 names drawn from all over the
  grid, first call for each (every call computes its tile), then the same names again (cached);
- France: ``grid.tiles_intersecting`` of a rough outline of metropolitan France and Corsica
  (about 30 vertices), first call in the process, then a second call;
- all tiles: ``grid.tile_names()``, the whole grid enumerated (first call).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# A rough outline of metropolitan France (lon, lat), clockwise from Dunkirk, and Corsica.
FRANCE = [(2.55, 51.09), (3.97, 50.28), (4.83, 50.14), (4.87, 49.80), (5.77, 49.55), (6.36, 49.46),
          (7.94, 49.05), (8.23, 48.97), (7.80, 48.58), (7.59, 47.59), (6.98, 47.45), (6.13, 46.41),
          (6.86, 45.83), (7.13, 45.25), (6.63, 45.11), (7.00, 44.23), (7.53, 43.78), (5.93, 43.12),
          (4.60, 43.35), (3.17, 42.43), (1.73, 42.50), (-0.75, 42.95), (-1.79, 43.37), (-1.25, 44.66),
          (-1.15, 46.16), (-2.20, 47.27), (-4.79, 48.38), (-3.98, 48.73), (-2.00, 48.65), (-1.62, 49.65),
          (0.10, 49.49), (1.08, 49.93), (1.61, 50.73)]
CORSICA = [(8.56, 41.90), (8.70, 42.60), (9.34, 43.00), (9.55, 42.10), (9.20, 41.37), (8.80, 41.60)]

_CHILD = r"""
import json, sys, time
from shapely.geometry import MultiPolygon, Polygon
from s1tiling import grid
france, corsica = json.loads(sys.argv[1])
what = sys.argv[2]
out = {}
if what == "lookup":
    start = time.perf_counter()
    grid.tile("33XVM")
    out["first_us"] = (time.perf_counter() - start) * 1e6
    names = grid.tile_names()[::283]
    grid._tile.cache_clear()
    start = time.perf_counter()
    for name in names:
        grid.tile(name)
    out["cold_us"] = (time.perf_counter() - start) / len(names) * 1e6
    start = time.perf_counter()
    for name in names:
        grid.tile(name)
    out["warm_us"] = (time.perf_counter() - start) / len(names) * 1e6
elif what == "france":
    area = MultiPolygon([Polygon(france), Polygon(corsica)])
    start = time.perf_counter()
    names = grid.tiles_intersecting(area)
    out["first_s"] = time.perf_counter() - start
    start = time.perf_counter()
    grid.tiles_intersecting(area)
    out["second_s"] = time.perf_counter() - start
    out["count"] = len(names)
else:
    start = time.perf_counter()
    out["count"] = len(grid.tile_names())
    out["all_s"] = time.perf_counter() - start
print(json.dumps(out))
"""


def _run(what: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([FRANCE, CORSICA]), what],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for what, keys in (("lookup", ("first_us", "cold_us", "warm_us")), ("france", ("first_s", "second_s", "count")),
                       ("all", ("all_s", "count"))):
        runs = [_run(what) for _ in range(args.repeat)]
        medians = {key: statistics.median(run[key] for run in runs) for key in keys}
        print(what, ", ".join(f"{key} {value:.4g}" for key, value in medians.items()))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

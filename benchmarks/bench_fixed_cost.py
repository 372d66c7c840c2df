"""Fixed cost of an ``s1tiling`` run: process start -> first task starts, last task ends -> exit.

Builds a synthetic product over 31TEL (no shared data needed) and runs the real command (the
installed ``s1tiling`` script) on two requests, ``--repeat`` times each, in debug mode (tasks log
their start and end):

- ``one-task``: one tile, one pass (no cluster is needed: the task runs in the command's process);
- ``three-tasks``: the same with border masks and quicklooks (a LocalCluster of 2 processes).

Prints medians, the machine's load, and the wall time of the tasks themselves::

    python benchmarks/bench_fixed_cost.py [--repeat 5] [--resolution 20] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - DEBUG - s1tiling\.scheduling - Task (.+) "
                   r"(started|ended after)", re.M)


def build_inputs(root: Path) -> Path:
    from s1tiling import grid
    from s1tiling.samples.synthetic import make_safe, write_zero_geoid
    from s1tiling.samples.testing import build_product, write_dem_folder

    template = make_safe(root / "templates", center_lat=45.2, center_lon=3.79, pixel_spacing=40.0)
    build_product(template, root / "s1_images", content="speckle")
    write_dem_folder(root / "dem", grid.tile("31TEL").footprint)
    return write_zero_geoid(root / "geoid.gtx")


def write_request(root: Path, name: str, geoid: Path, resolution: float, derived: bool) -> Path:
    text = f"""[Paths]
s1_images : {root / 's1_images'}
output : {root / name}
tmp : {root / 'tmp'}
dem_dir : {root / 'dem'}
geoid_file : {geoid}
[DataSource]
first_date : 2021-08-01
last_date : 2021-08-31
[Processing]
tiles : 31TEL
output_spatial_resolution : {resolution}
nb_parallel_processes : 2
mode : debug
[Mask]
generate_border_mask : {derived}
[Quicklook]
generate : {derived}
"""
    cfg = root / f"{name}.cfg"
    cfg.write_text(text)
    return cfg


#: the installed ``s1tiling`` command (its console script: what users run, and what dask's spawned
#: workers run again as ``__mp_main__``), else ``python -m s1tiling``
SCRIPT = Path(sys.executable).with_name("s1tiling")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "s1tiling"]


def run_once(cfg: Path, output: Path) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    start = time.time()
    done = subprocess.run([*COMMAND, str(cfg)], capture_output=True, text=True)
    end = time.time()
    log = done.stdout + done.stderr  # the console log is on stdout, dask's messages on stderr
    if done.returncode != 0:
        raise SystemExit(f"{cfg}: exit {done.returncode}\n{log[-3000:]}")
    stamps = [(datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f").timestamp(), what)
              for t, _, what in STAMP.findall(log)]
    starts = [t for t, what in stamps if what == "started"]
    ends = [t for t, what in stamps if what != "started"]
    if not starts or len(starts) != len(ends):
        raise SystemExit(f"{cfg}: no task timing in the debug log (is scheduling._execute logging?)")
    return {"wall": end - start, "to_first": min(starts) - start, "after_last": end - max(ends),
            "tasks": len(starts), "work": max(ends) - min(starts),
            "killed": "still alive after" in log}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--resolution", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, help="build the inputs here and keep them (reused when present)")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="s1tiling-fixed-cost-"))
    root.mkdir(parents=True, exist_ok=True)
    geoid = root / "geoid.gtx"
    if not geoid.exists():
        geoid = build_inputs(root)
    print(f"{os.cpu_count()} CPUs; load before {os.getloadavg()[0]:.2f}; command: {' '.join(COMMAND)}")
    for name, derived in (("one-task", False), ("three-tasks", True)):
        cfg = write_request(root, name, geoid, args.resolution, derived)
        run_once(cfg, root / name)  # warm caches (numba, page cache)
        runs = [run_once(cfg, root / name) for _ in range(args.repeat)]
        med = {key: statistics.median(r[key] for r in runs) for key in ("wall", "to_first", "after_last", "work")}
        print(f"{name:12s} {runs[0]['tasks']} task(s): wall {med['wall']:.2f} s = start->first task "
              f"{med['to_first']:.2f} s + tasks {med['work']:.2f} s + last task->exit {med['after_last']:.2f} s; "
              f"fixed cost {med['to_first'] + med['after_last']:.2f} s (median of {args.repeat}); "
              f"'still alive after' in {sum(r['killed'] for r in runs)} run(s)")
    print(f"load after {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

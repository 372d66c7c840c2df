"""What SLURM costs: bringing up scripts/slurm.sh's single-node SLURM, and a run whose dask workers are
SLURM jobs against the same request run with a local cluster.

The request is bench_fixed_cost's synthetic 31TEL product with border masks and quicklooks (5 tasks),
run alternately ``--repeat`` times with ``scheduler = local`` (2 worker processes) and ``scheduler =
slurm`` (2 jobs of 1 worker process); medians, with the machine's load. Needs root (or a running
SLURM)::

    python benchmarks/bench_slurm_overhead.py [--repeat 3] [--resolution 20] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fixed_cost import build_inputs, write_request  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm.sh"


def slurm(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True)


def timed_run(cfg: Path, output: Path) -> float:
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "s1tiling", str(cfg)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cfg}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--resolution", type=float, default=20.0)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    was_running = slurm("status").returncode == 0
    if was_running:
        print("SLURM already running: start time not measured")
    else:
        start = time.perf_counter()
        result = slurm("start")
        if result.returncode != 0:
            raise SystemExit(f"SLURM did not start: {result.stderr}")
        print(f"scripts/slurm.sh start: {time.perf_counter() - start:.2f} s (packages already installed or not)")
    os.environ["SLURM_CONF"] = slurm("env").stdout.strip().split("=", 1)[1]

    root = args.keep or Path(tempfile.mkdtemp(prefix="s1tiling-slurm-overhead-"))
    root.mkdir(parents=True, exist_ok=True)
    geoid = root / "geoid.gtx"
    if not geoid.exists():
        geoid = build_inputs(root)
    local = write_request(root, "local", geoid, args.resolution, True)
    batch = write_request(root, "slurm", geoid, args.resolution, True)
    text = batch.read_text().replace("mode : debug\n", "")
    batch.write_text(text + "[Cluster]\nscheduler : slurm\njobs : 2\ncores : 1\nprocesses : 1\n"
                     "memory : 2GiB\nwalltime : 00:30:00\n")
    local.write_text(local.read_text().replace("mode : debug\n", ""))
    timed_run(local, root / "local")  # warm caches
    times = {"local": [], "slurm": []}
    for _ in range(args.repeat):
        times["local"].append(timed_run(local, root / "local"))
        times["slurm"].append(timed_run(batch, root / "slurm"))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"local (2 processes): {med['local']:.2f} s; slurm (2 jobs x 1 worker): {med['slurm']:.2f} s; "
          f"SLURM adds {med['slurm'] - med['local']:.2f} s ({med['slurm'] / med['local']:.2f}x), "
          f"medians of {args.repeat}; load {os.getloadavg()[0]:.2f}")
    if not was_running:
        slurm("stop")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

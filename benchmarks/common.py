"""What the benchmarks share: inputs (a full-size product built from real metadata, a DEM folder),
request files, running a command in a fresh process with its resource use, medians, the load.

The benchmarks are run by hand, one command each (``python benchmarks/bench_....py``); they print
a compact table with the machine's load before and after, since timings on a shared machine vary:
compare CPU times (user + system, of the process and every process it waited for) as well as
wall times, and medians of several runs.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The France product (2021, IPF 3.31) that covers tile 31TEL entirely: the issues' main job.
FRANCE = "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8"
TILE = "31TEL"
REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path:
    return Path(os.environ.get("S1TILING_TEST_DATA", REPO.parent / "shared" / "data"))


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def prepare(data: Path, workdir: Path, products: list[str], tiles: list[str]) -> None:
    """Full-size products (speckle pixels, both polarisations) under ``workdir/s1`` and a DEM
    folder ``workdir/dem`` in which the real SRTM tile of the shared data stands for every DEM
    tile the S2 tiles need (real relief, not the real terrain); kept when already there."""
    from s1tiling import grid
    from s1tiling.geometry.dem import DemCatalog
    from s1tiling.samples.testing import build_product

    for product in products:
        if not (workdir / "s1" / f"{product}.SAFE").exists():
            start = time.perf_counter()
            build_product(data / "s1" / f"{product}.SAFE", workdir / "s1", content="speckle")
            print(f"built {product} in {time.perf_counter() - start:.0f} s", flush=True)
    dem_dir = workdir / "dem"
    dem_dir.mkdir(parents=True, exist_ok=True)
    for tile in tiles:
        for tid in DemCatalog(dem_dir).tiles_for_region(grid.tile(tile).footprint):
            link = dem_dir / f"{tid}.hgt"
            if not link.is_symlink():
                link.symlink_to((data / "dem" / "N50E010.hgt").resolve())


def write_request(path: Path, *, workdir: Path, output: Path, data: Path, tiles: list[str], day: str,
                  processing: dict[str, object] | None = None) -> Path:
    """A request file for the products of ``workdir/s1`` acquired on ``day`` (YYYY-MM-DD) over
    ``tiles``; ``processing`` adds or replaces ``[Processing]`` keys."""
    keys = {"tiles": ", ".join(tiles), "calibration": "sigma", "remove_thermal_noise": "True",
            "output_spatial_resolution": "10", "orthorectification_interpolation_method": "nn"}
    keys.update({k: str(v) for k, v in (processing or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""[Paths]
s1_images : {workdir / 's1'}
output : {output}
tmp : {output.parent / (output.name + '-tmp')}
dem_dir : {workdir / 'dem'}
geoid_file : {data / 'geoid' / 'egm96_15.gtx'}

[DataSource]
download : False
first_date : {day}
last_date : {day}
polarisation : VV-VH

[Processing]
""" + "".join(f"{k} : {v}\n" for k, v in keys.items()))
    return path


def run(command: list[str], *, cpus: list[int] | None = None, env: dict | None = None) -> dict:
    """Run ``command`` in a fresh process (on the CPUs ``cpus`` only, if given); its exit status,
    wall time, CPU time and peak RSS (of itself and of every process it waited for: dask
    workers, otbcli_* programs), and the last lines it printed.

    The package imported is this checkout's unless ``env`` gives another ``PYTHONPATH``; the
    command runs in the temporary folder (``python -c`` puts the current folder first on the
    import path: a checkout there would shadow it)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, cwd=tempfile.gettempdir(),
                               preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"status": process.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_mib": usage.ru_maxrss / 1024, "output": output[-3000:]}


def s1tiling_command(config: Path, *args: str) -> list[str]:
    """The ``s1tiling`` command of this checkout (as its console script runs it)."""
    return [sys.executable, "-c", "import sys; from s1tiling.cli import main; sys.exit(main())", str(config), *args]


def python_json(code: str, **kwargs) -> tuple[dict, dict]:
    """Run Python ``code`` that prints one JSON line starting with 'RESULT '; (that JSON, :func:`run`'s)."""
    return run_json([sys.executable, "-c", code], **kwargs)


def run_json(command: list[str], **kwargs) -> tuple[dict, dict]:
    """Run ``command``, which prints one JSON line starting with 'RESULT '; (that JSON, :func:`run`'s)."""
    result = run(command, **kwargs)
    lines = [line for line in result["output"].splitlines() if line.startswith("RESULT ")]
    if result["status"] != 0 or not lines:
        raise SystemExit(f"benchmark step failed:\n{result['output']}")
    return json.loads(lines[-1][len("RESULT "):]), result


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def summary(runs: list[dict], key: str) -> str:
    """'median (min-max)' of a key over runs."""
    values = [r[key] for r in runs]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

"""Terrain maps and their use: LIA + sin(LIA) maps of one tile, and an RTC tile against a sigma0 tile.

    python benchmarks/bench_maps.py [--runs 3] [--before DIR] [--workdir DIR] [--skip rtc]

Inputs as ``bench_ortho.py`` builds them (the France product of 2021-08-09, tile 31TEL at 10 m, a
DEM folder of real SRTM relief). Each measurement is a command in a fresh process, ``--runs``
times (medians, min-max), wall and CPU seconds (of the process and of every process it waited
for), peak RSS:

- ``lia``: ``S1LIAMap`` making the ``sin_LIA`` and ``LIA`` maps of 31TEL (``produce_lia_map``);
- ``sigma0``: ``s1tiling`` making the VV and VH sigma0 images of the tile (the main job);
- ``rtc``: ``s1tiling`` making the gamma0 RTC images of the tile from an existing gamma area map
  (made by ``S1GammaAreaMap`` once beforehand, not timed: what is measured is applying it, not
  making it), and the ratio rtc / sigma0.

``--before DIR`` runs the ``lia`` measurement on another checkout as well (``PYTHONPATH=DIR``),
alternating run by run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import common

DAY = "2021-08-09"


def _request(workdir: Path, data: Path, name: str, **processing) -> Path:
    output = workdir / name / "output"
    shutil.rmtree(output.parent, ignore_errors=True)
    return common.write_request(workdir / name / "S1Processor.cfg", workdir=workdir, output=output, data=data,
                                tiles=[common.TILE], day=DAY, processing=processing)


def _gamma_area_map(config: Path, workdir: Path) -> None:
    """The tile's gamma area map where the RTC request expects it: made by ``S1GammaAreaMap`` the
    first time (not timed), kept in ``workdir`` and copied in place for the next runs."""
    from s1tiling import grid
    from s1tiling.config import load_config
    from s1tiling.discovery import group_products, open_matching_products
    from s1tiling.plan import map_path

    settings = load_config(config)
    products = open_matching_products(settings.paths.s1_images, settings.data_source)
    (group,) = group_products(products, settings.processing.tiles, settings.data_source, grid.for_settings(settings))
    target = Path(map_path(settings, "GAMMA_AREA", group))
    kept = workdir / "gamma_area_map" / target.name
    if not kept.is_file():
        code = "import sys; from s1tiling.cli import gamma_area_main; sys.exit(gamma_area_main())"
        result = common.run([sys.executable, "-c", code, str(config)])
        if result["status"] != 0:
            raise SystemExit(f"S1GammaAreaMap exited with {result['status']}:\n{result['output']}")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, kept)
        print(f"  gamma area map made once: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(kept, target)


def _measure(name: str, command: list[str], runs: int, env: dict | None = None) -> list[dict]:
    results = []
    for n in range(runs):
        result = common.run(command, env=env)
        if result["status"] != 0:
            raise SystemExit(f"{name} exited with {result['status']}:\n{result['output']}")
        results.append(result)
        print(f"  {name} run {n + 1}: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, "
              f"peak RSS {result['maxrss_mib']:.0f} MiB (load {common.load()})", flush=True)
    return results


def _lia_command(config: Path, source: Path | None = None) -> tuple[list[str], dict | None]:
    code = "import sys; from s1tiling.cli import lia_main; sys.exit(lia_main())"
    return [sys.executable, "-c", code, str(config)], ({"PYTHONPATH": str(source)} if source else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.default_data())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout: its LIA maps are timed too")
    parser.add_argument("--skip", nargs="*", default=[], choices=["lia", "rtc"])
    parser.add_argument("--workdir", type=Path, help="keep inputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-maps-"))
    try:
        common.prepare(args.data, workdir, [common.FRANCE], [common.TILE])
        before = common.load()
        rows = []
        if "lia" not in args.skip:
            sources = {"lia": None, **({"lia (before)": args.before.resolve()} if args.before else {})}
            lia = {name: [] for name in sources}
            for _ in range(args.runs):
                for name, source in sources.items():
                    config = _request(workdir, args.data, name.replace(" ", "").replace("(", "-").strip(")"),
                                      produce_lia_map="True")
                    command, env = _lia_command(config, source)
                    lia[name] += _measure(name, command, 1, env)
            rows += list(lia.items())
        if "rtc" not in args.skip:
            sigma0, rtc = [], []
            for _ in range(args.runs):  # a new request (empty output folder) each run: nothing is skipped
                sigma0 += _measure("sigma0", common.s1tiling_command(_request(workdir, args.data, "sigma0")), 1)
                config = _request(workdir, args.data, "rtc", calibration="gamma_naught_rtc")
                _gamma_area_map(config, workdir)
                rtc += _measure("rtc", common.s1tiling_command(config), 1)
            rows += [("sigma0", sigma0), ("rtc", rtc)]
        print(f"\n{common.FRANCE[:32]} over {common.TILE} at 10 m (load before {before}, after {common.load()}; "
              f"median (min-max) of the runs)")
        print(f"{'':14} {'runs':>4} {'wall s':>18} {'CPU s':>18} {'peak RSS MiB':>14}")
        for name, runs in rows:
            rss = f"{common.median(r['maxrss_mib'] for r in runs):.0f}"
            print(f"{name:14} {len(runs):4d} {common.summary(runs, 'wall_s'):>18} {common.summary(runs, 'cpu_s'):>18} "
                  f"{rss:>14}")
        found = dict(rows)
        if "rtc" in found:
            for key in ("wall_s", "cpu_s"):
                ratio = common.median(r[key] for r in found["rtc"]) / common.median(r[key] for r in found["sigma0"])
                print(f"rtc / sigma0 ({key[:-2]}): {ratio:.2f}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

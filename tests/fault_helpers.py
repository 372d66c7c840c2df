"""Real faults for the reliability tests (issue 12): small file systems that fill up, a two-slice pass of
synthetic products, and the comparison of a run's outputs with those of an undisturbed run.

Nothing here mocks a fault: a full disk is a real tmpfs mounted for the test (skipped, saying why, where
mounting is not permitted), corrupt inputs are real files damaged on disk.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from request_files import SYNTHETIC_DAY, SYNTHETIC_TILE, write_request
from s1tiling import grid
from s1tiling.samples.synthetic import make_safe, write_zero_geoid
from s1tiling.samples.testing import build_product, write_dem_folder
from s1tiling.writing import is_complete

TILE = SYNTHETIC_TILE
DAY = SYNTHETIC_DAY
#: The tags that differ between two runs making the same product: the production time.
VOLATILE_TAGS = {"TIFFTAG_DATETIME"}
REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` (``mount -o size=``) mounted on ``path`` for the block; skips the test,
    saying why, where mounting is not permitted (not root, no CAP_SYS_ADMIN...)."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system to fill up")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False,
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a {size} tmpfs on {path} to fill it up: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def resize(path: Path, size: str) -> None:
    """Give a mounted tmpfs another size (the repair after a full disk); its files stay."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def two_slices(root: Path) -> tuple[Path, Path, Path]:
    """Slices 1 and 2 of one synthetic datatake over ``TILE`` (each covers ~45% of it, ~91% together),
    with VV and VH speckle pixels, in ``root/slices``; flat DEM tiles in ``root/dem``. Returns the two
    SAFE folders and a zero geoid."""
    templates = root / "templates"
    safes = []
    for number in (1, 2):
        template = make_safe(templates, center_lat=45.2, center_lon=3.79, slice_number=number)
        safes.append(build_product(template, root / "slices", content="speckle", seed=number))
    write_dem_folder(root / "dem", grid.tile(TILE).footprint)
    return safes[0], safes[1], write_zero_geoid(root / "geoid.gtx")


def request(root: Path, output: str, geoid: Path, *, s1_images: Path | None = None, **sections) -> Path:
    """A small request over ``TILE`` at 200 m (VV-VH, border masks and quicklooks), writing ``root/<output>``."""
    extra = {name: dict(values) for name, values in sections.items()}
    paths = {**({"s1_images": s1_images} if s1_images else {}), **extra.pop("Paths", {})}
    return write_request(root, output, tiles=TILE, first_date=DAY, last_date=DAY, geoid=geoid,
                         Paths=paths, DataSource={"polarisation": "VV-VH", **extra.pop("DataSource", {})},
                         Processing={"output_spatial_resolution": 200, **extra.pop("Processing", {})},
                         Mask={"generate_border_mask": True, **extra.pop("Mask", {})},
                         Quicklook={"generate": True, **extra.pop("Quicklook", {})}, **extra)


def products(folder: Path) -> dict[str, Path]:
    """The products under ``folder`` by relative path: every file but temporaries, locks, side-cars,
    log files and the STAC catalog's JSON files (see :func:`catalog_files`)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".aux.xml", ".log", ".json"))}


def catalog_files(folder: Path) -> list[Path]:
    """The STAC catalog's JSON files under ``folder`` (written by every run, atomically)."""
    return sorted(p for p in folder.rglob("*.json") if not p.name.startswith("."))


def assert_all_verified(folder: Path) -> None:
    """No file under a product's name that is not complete (checked, tagged) in ``folder``, and no
    catalog file that is not whole JSON."""
    unverified = [name for name, path in products(folder).items()
                  if not name.endswith(".corrupt") and not is_complete(path)]
    assert not unverified, f"unverified files under final names: {unverified}"
    for path in catalog_files(folder):
        json.loads(path.read_text(encoding="utf-8"))  # a cut file would not parse


def assert_same_products(folder: Path, reference: Path, ignore=(".corrupt",)) -> None:
    """``folder`` holds exactly the products of ``reference`` (an undisturbed run): same names, pixels,
    and tags but the production time."""
    made = {k: v for k, v in products(folder).items() if not k.endswith(ignore)}
    expected = products(reference)
    assert sorted(made) == sorted(expected)
    for name, path in expected.items():
        with rasterio.open(path) as a, rasterio.open(made[name]) as b:
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=name)
            tags_a = {k: v for k, v in a.tags().items() if k not in VOLATILE_TAGS}
            tags_b = {k: v for k, v in b.tags().items() if k not in VOLATILE_TAGS}
            assert tags_a == tags_b, name
            assert (a.crs, a.transform, a.dtypes, a.nodata) == (b.crs, b.transform, b.dtypes, b.nodata), name


def run_cli(*args, log: Path, **popen) -> subprocess.Popen:
    """Start ``python -m s1tiling *args`` with its output into ``log``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    stream = open(log, "wb")  # noqa: SIM115 - closed by the caller through the process's end
    return subprocess.Popen([sys.executable, "-m", "s1tiling", *map(str, args)], stdout=stream,
                            stderr=subprocess.STDOUT, env=env, **popen)


def console(capfd: pytest.CaptureFixture[str]) -> str:
    """What the run printed on the console since the last read: stdout (S1Tiling's console, where
    log messages go) and stderr."""
    captured = capfd.readouterr()
    return captured.out + captured.err

"""Exit codes that say what failed (issue 12 #8): a run's status is its failures' own code, and DEM
tiles and the geoid are opened and read before any worker starts.

Real faults: a truncated zip (71), a tmpfs filled up (69), a truncated DEM tile (75), a geoid file of
garbage (76). Before the fix every task failure ended as 66, and a DEM tile or geoid that did not open
failed inside the tasks.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from rasterio.transform import from_origin

from fault_helpers import assert_same_products, console, products, request, tmpfs
from s1tiling import cli
from s1tiling.config import load_config
from s1tiling.errors import ExitCode
from s1tiling.s1.product import open_product
from s1tiling.samples.testing import zip_safe
from s1tiling.scheduling import EXIT_CODE_PRIORITY, Task, most_specific_exit_code, run_tasks
from s1tiling.writing import AtomicRasterWriter


def test_most_specific_exit_code():
    assert most_specific_exit_code([]) == most_specific_exit_code([0, 0]) == 0
    assert most_specific_exit_code([71, 71, 0]) == 71  # shared: their own
    assert most_specific_exit_code([66, 71]) == 71  # 66 ("a task failed") is the least specific
    assert most_specific_exit_code([71, 69, 66]) == 69  # a full disk first: everything fails until it is fixed
    assert most_specific_exit_code([75, 76]) == 76
    assert EXIT_CODE_PRIORITY[-1] == ExitCode.TASKS_FAILED and len(set(EXIT_CODE_PRIORITY)) == len(EXIT_CODE_PRIORITY)


def _open(path):
    return open_product(path).name


def _write(path):
    with AtomicRasterWriter(path, crs="EPSG:32631", transform=from_origin(0, 0, 10, 10), width=400, height=400) as out:
        out.write(np.random.default_rng(0).random((400, 400), dtype=np.float32))
    return str(path)


def _parse(text):
    return int(text)


def test_the_run_report_keeps_the_failures_own_codes(two_slice_pass, tmp_path):
    root, first, _, geoid, _ = two_slice_pass
    settings = load_config(request(root, "out_codes", geoid))
    archive = zip_safe(first, tmp_path)
    with open(archive, "r+b") as f:
        f.truncate(archive.stat().st_size // 2)
    with tmpfs(tmp_path / "full", "64k") as full:
        corrupt = Task("corrupt", _open, (archive,))
        disk = Task("disk", _write, (full / "x.tif",))
        bug = Task("bug", _parse, ("x",))
        fine = Task("fine", _parse, ("1",))
        assert run_tasks([corrupt, fine], settings, client="sequential").exit_code == 71
        assert run_tasks([corrupt, disk, bug, fine], settings, client="sequential").exit_code == 69
        assert run_tasks([corrupt, bug], settings, client="sequential").exit_code == 71
        report = run_tasks([bug, fine], settings, client="sequential")
        assert report.exit_code == 66 and report["fine"].status == "done"
        assert os.listdir(full) == []


@pytest.mark.parametrize("fault, status, named", [("dem", 75, "N45E003.hgt"), ("geoid", 76, "geoid.gtx")])
def test_unreadable_dem_or_geoid_stops_the_run_before_any_worker(two_slice_pass, tmp_path, capfd, fault, status,
                                                                  named):
    root, _, _, geoid, reference = two_slice_pass
    dem = tmp_path / "dem"
    shutil.copytree(root / "dem", dem)
    if fault == "dem":  # cut short: GDAL cannot even tell it is an SRTM tile
        with open(dem / named, "r+b") as f:
            f.truncate(1_000_000)
    else:
        geoid = tmp_path / named
        geoid.write_bytes(np.random.default_rng(0).bytes(5000))
    output = tmp_path / "out"
    cfg = request(tmp_path, "out", geoid, s1_images=root / "slices", Paths={"dem_dir": dem})
    assert cli.main([str(cfg)]) == status
    err = console(capfd)
    assert str(dem / named if fault == "dem" else geoid) in err
    assert ("DEM tile" if fault == "dem" else "cannot read geoid file") in err
    assert "Dask LocalCluster" not in err  # before any worker started
    assert products(output) == {}

    if fault == "dem":  # repaired, the rerun makes exactly the undisturbed outputs
        shutil.copy2(root / "dem" / named, dem / named)
        assert cli.main([str(cfg)]) == 0
        assert_same_products(output, reference)

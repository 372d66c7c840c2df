"""A full disk never publishes a product, and a rerun never trusts a file it did not verify (issue 12 #1).

Real faults only: small tmpfs file systems filled by the writers themselves (the test is skipped, saying
why, where mounting is not permitted), and products truncated or emptied on disk. Before the fix, a failed
libtiff flush at ``close()`` was only printed by GDAL: a truncated tile and a 0-byte mask were renamed to
their final names, the run exited 66, and every rerun kept the broken files.
"""
from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin
from rasterio.windows import Window

from fault_helpers import TILE, assert_all_verified, assert_same_products, console, products, request, resize, tmpfs
from s1tiling import cli
from s1tiling.errors import CacheDiskFullError, ExitCode, OutputDiskFullError
from s1tiling.masks import border_mask_file
from s1tiling.quicklook import write_quicklook
from s1tiling.writing import COMPLETE_TAG, AtomicRasterWriter, check_raster, is_complete

CRS = "EPSG:32631"
TRANSFORM = from_origin(500000.0, 5000040.0, 200.0, 200.0)
SIZE = 549  # 31TEL at 200 m
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs to fill up needs root")


@pytest.fixture(scope="module")
def inputs(two_slice_pass):
    """Two slices of one pass (synthetic, VV and VH); the outputs of an undisturbed run over them are in
    ``root / "reference"``."""
    root, _, _, geoid, _ = two_slice_pass
    return root, geoid


def _speckle(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((SIZE, SIZE), dtype=np.float32)  # ~1.1 MB, incompressible


def _write(path, data, **options):
    with AtomicRasterWriter(path, crs=CRS, transform=TRANSFORM, width=SIZE, height=SIZE, tags={"A": "1"},
                            **options) as out:
        for top in range(0, SIZE, 100):
            out.write(data[top:top + 100], Window(0, top, SIZE, min(100, SIZE - top)))


def _fill(path: Path) -> None:
    """Fill the file system of ``path`` up with it."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_a_writer_that_cannot_flush_publishes_nothing(tmp_path):
    """GDAL flushes the last blocks and the directory at close: on a full disk that fails, and only
    GDAL's error stack tells. The write is exit 69 (70 for a cache) and leaves nothing behind."""
    with tmpfs(tmp_path / "small", "500k") as folder:
        with pytest.raises(OutputDiskFullError) as info:
            _write(folder / "one.tif", _speckle())
        assert info.value.exit_code == ExitCode.OUTPUT_DISK_FULL == 69
        assert "one.tif: output disk full" in str(info.value) and "nothing published" in str(info.value)
        assert os.listdir(folder) == []
        with pytest.raises(CacheDiskFullError) as info:
            _write(folder / "cache.tif", _speckle(), cache=True)
        assert info.value.exit_code == ExitCode.CACHE_DISK_FULL == 70 and "cache disk full" in str(info.value)
        assert os.listdir(folder) == []


def test_two_writers_open_at_once_never_publish_a_broken_file(tmp_path):
    """Both images of a pass are written at once: the one that fits is published (and complete), the
    one that does not is not, and the failure is exit 69."""
    with tmpfs(tmp_path / "small", "1500k") as folder:
        with pytest.raises(OutputDiskFullError), ExitStack() as stack:
            writers = [stack.enter_context(AtomicRasterWriter(
                folder / f"{n}.tif", crs=CRS, transform=TRANSFORM, width=SIZE, height=SIZE)) for n in range(2)]
            for n, writer in enumerate(writers):
                data = _speckle(n)
                for top in range(0, SIZE, 100):
                    writer.write(data[top:top + 100], Window(0, top, SIZE, min(100, SIZE - top)))
        left = os.listdir(folder)
        assert len(left) <= 1 and all(not name.startswith(".") for name in left)
        assert all(is_complete(folder / name) for name in left)


def test_derived_writers_on_a_full_disk(tmp_path):
    """Masks (strip writer) and JPEG quicklooks fail the same way: exit 69, nothing under their names."""
    source = tmp_path / "tile.tif"
    _write(source, _speckle())
    with tmpfs(tmp_path / "small", "64k") as folder:
        _fill(folder / "filler")
        with pytest.raises(OutputDiskFullError):
            border_mask_file(source, folder / "mask.tif")
        with pytest.raises(OutputDiskFullError):
            write_quicklook(source, folder / "quicklook.jpg", ratio_percent=100)
        assert sorted(os.listdir(folder)) == ["filler"]
        (folder / "filler").unlink()
        border_mask_file(source, folder / "mask.tif")
        write_quicklook(source, folder / "quicklook.jpg", ratio_percent=10)
        assert is_complete(folder / "mask.tif") and is_complete(folder / "quicklook.jpg")


def test_full_output_disk_exits_69_and_the_rerun_makes_exactly_the_undisturbed_outputs(inputs, tmp_path, capfd):
    root, geoid = inputs
    cfg = request(root, "full", geoid, s1_images=root / "slices")
    with tmpfs(root / "full", "1500k") as output:
        assert cli.main([str(cfg)]) == 69
        err = console(capfd)
        assert f"{output / TILE}/s1a_{TILE}_v" in err and "output disk full while writing it" in err
        assert_all_verified(output)  # nothing unverified under a final name (a complete image may be there)
        assert len([name for name in products(output) if name.endswith(".tif")]) < 2

        resize(output, "16m")  # the repair: space
        assert cli.main([str(cfg)]) == 0
        assert_same_products(output, root / "reference")
        # no temporary or output lock left (the catalog's flock file, stac/.lock, is meant to stay)
        assert not [p for p in output.rglob(".*") if p.is_file() and p != output / "stac" / ".lock"]


def test_full_tmp_disk_is_exit_70(inputs, tmp_path, capfd):
    """``--cache-before-ortho`` keeps calibrated products under ``tmp``: when it is full, exit 70."""
    root, geoid = inputs
    tmp = root / "tmp_full"
    cfg = request(root, "cached", geoid, s1_images=root / "slices", Paths={"tmp": tmp})
    with tmpfs(tmp, "2m"):
        assert cli.main([str(cfg), "--cache-before-ortho"]) == 70
        err = console(capfd)
        assert "cache disk full while writing it" in err and str(tmp / "S1") in err
        assert not [p for p in tmp.rglob("*.tif") if not p.name.startswith(".")]
        assert not [p for p in (root / "cached").rglob("*.tif")]

        resize(tmp, "200m")
        assert cli.main([str(cfg), "--cache-before-ortho"]) == 0
        assert_same_products(root / "cached", root / "reference")


def test_check_raster_sees_cut_blocks_under_an_intact_directory_and_missing_tags(tmp_path):
    """A GeoTIFF whose directory comes first (cloud-optimised layout) still opens when its end is cut:
    only the block offsets tell; and a complete file written by another program lacks the tag."""
    whole = tmp_path / "whole.tif"
    _write(whole, _speckle())
    assert check_raster(whole, complete_tag=True) is None and is_complete(whole)
    cog = tmp_path / "cog.tif"
    rasterio.shutil.copy(whole, cog, driver="COG")
    with open(cog, "r+b") as f:
        f.truncate(cog.stat().st_size // 3)
    with rasterio.open(cog) as ds:  # GDAL opens it...
        assert ds.shape == (SIZE, SIZE)
    assert check_raster(cog).startswith("truncated: band 1 block")
    other = tmp_path / "other.tif"
    with rasterio.open(whole) as src, rasterio.open(other, "w", **src.profile) as dst:
        dst.write(src.read())
    assert check_raster(other) is None and not is_complete(other)
    assert "no PRODUCTION_STATUS=COMPLETE tag" in check_raster(other, complete_tag=True)


def test_a_rerun_moves_unverified_products_aside_and_makes_them_again(inputs, tmp_path, capfd):
    """What the full disk used to leave under final names: a truncated tile (its directory lost with its
    end) and a 0-byte mask; and a quicklook of another writer, without the completion tag. The rerun says
    so, keeps them as ``*.corrupt`` and makes exactly the undisturbed outputs."""
    root, geoid = inputs
    output = root / "damaged"
    shutil.copytree(root / "reference", output)
    made = products(output)
    stem = "_ASC_059_20210809txxxxxx"
    image = next(p for name, p in made.items() if name.endswith(f"_vv{stem}.tif"))
    mask = next(p for name, p in made.items() if name.endswith(f"_vh{stem}_BorderMask.tif"))
    quicklook = next(p for name, p in made.items() if name.endswith(f"_vh{stem}_quicklook.jpg"))
    with open(image, "r+b") as f:  # the first third, as the full disk left it
        f.truncate(image.stat().st_size // 3)
    mask.write_bytes(b"")
    sidecar = Path(f"{quicklook}.aux.xml")
    sidecar.write_text("\n".join(line for line in sidecar.read_text().splitlines() if COMPLETE_TAG[0] not in line))
    assert "unreadable" in check_raster(image) and "empty" in check_raster(mask)
    assert check_raster(quicklook) is None and not is_complete(quicklook)

    cfg = request(root, "damaged", geoid, s1_images=root / "slices")
    assert cli.main([str(cfg)]) == 0
    err = console(capfd)
    for path in (image, mask, quicklook):
        assert f"{path} is not a complete product" in err and f"moved aside to {path.name}.corrupt" in err
        assert path.with_name(path.name + ".corrupt").exists()
    assert "empty file (0 bytes)" in err and f"no {COMPLETE_TAG[0]}={COMPLETE_TAG[1]} tag" in err
    assert_same_products(output, root / "reference")
    assert_all_verified(output)

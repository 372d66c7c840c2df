"""Unreadable slices, products whose name lies, hostile manifests (issue 12 #2, #3, #8).

Real corrupt inputs: zips cut short, zips and ``.SAFE`` folders without a manifest, manifests and
annotations edited on disk. Before the fix, a pass with an unreadable slice was made from its other slice
alone under a single-acquisition name (exit 0), a repaired slice then added the merged tile beside the
partial one, and a manifest's platform number decided output paths (``A/../../../../escaped/x``).
"""
from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from fault_helpers import TILE, assert_all_verified, assert_same_products, console, products, request
from s1tiling import cli
from s1tiling.errors import ProductError
from s1tiling.naming import TileProduct, UnsafePathError, product_path
from s1tiling.s1.product import open_product
from s1tiling.samples.testing import zip_safe
from s1tiling.writing import check_output_path

STEM = f"s1a_{TILE}_{{pol}}_ASC_059_20210809{{stamp}}"


def _folder(root: Path, name: str, *safes: Path) -> Path:
    """A fresh ``s1_images`` folder holding (symbolic links to) ``safes``."""
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for safe in safes:
        (folder / safe.name).symlink_to(safe)
    return folder


def _copy(safe: Path, folder: Path, name: str | None = None) -> Path:
    """A real copy of a SAFE folder (to damage it), under ``name`` if given."""
    target = folder / (name or safe.name)
    shutil.copytree(safe, target, symlinks=False)
    return target


def _edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    edited, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"{pattern} not in {path}"
    path.write_text(edited)


def _damage(kind: str, second: Path, folder: Path) -> tuple[str, str]:
    """Put slice 2, damaged as ``kind`` says, in ``folder``; return the name the error must give and
    what it must say."""
    name = second.name.removesuffix(".SAFE")
    if kind == "truncated zip":
        archive = zip_safe(second, folder)
        with open(archive, "r+b") as f:
            f.truncate(archive.stat().st_size // 2)
        return f"{name}.zip", "not a readable zip file"
    if kind == "zip without manifest":
        copy = _copy(second, folder.parent / "work")
        (copy / "manifest.safe").unlink()
        zip_safe(copy, folder)
        shutil.rmtree(copy)
        return f"{name}.zip", "no .SAFE folder with a manifest.safe inside the zip"
    if kind == "not a product":
        (folder / second.name).mkdir()
        (folder / second.name / "README.txt").write_text("an empty folder with a product's name\n")
        return name, "manifest.safe: file missing"
    if kind == "name lies":  # the absolute orbit of its name is not that of its manifest
        lying = name.replace("_039156_", "_039157_")
        _copy(second, folder, f"{lying}.SAFE")
        return lying, "does not match its manifest: absolute orbit 039157 (manifest: 39156)"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated zip", "zip without manifest", "not a product", "name lies"])
def test_a_pass_with_an_unreadable_slice_is_not_produced(two_slice_pass, kind, capfd):
    root, first, second, geoid, reference = two_slice_pass
    folder = _folder(root, f"s1_{kind.replace(' ', '_')}", first)
    named, problem = _damage(kind, second, folder)
    cfg = request(root, f"out_{kind.replace(' ', '_')}", geoid, s1_images=folder)
    assert cli.main([str(cfg)]) == 71
    err = console(capfd)
    assert named in err and problem in err
    assert f"pass {TILE}/S1A/059/" in err and "not produced, it has unreadable slice(s)" in err
    output = root / f"out_{kind.replace(' ', '_')}"
    assert products(output) == {}  # in particular no single-slice tile of the readable slice
    assert cli.main([str(cfg), "--dry-run"]) == 0
    assert f"A real run would not produce the pass of {named.removesuffix('.zip')} (exit 71)" in capfd.readouterr().out

    if kind == "truncated zip":  # the repair: a good copy of the slice; the rerun makes the merged pass
        for path in folder.glob("*.zip"):
            path.unlink()
        zip_safe(second, folder)
        assert cli.main([str(cfg)]) == 0
        assert_same_products(output, reference)


def test_a_pass_that_gains_a_slice_replaces_its_single_slice_products(two_slice_pass, single_slice_run, capfd):
    """Slice 2 arrives after slice 1 was made alone: the merged products are published and the
    single-slice ones removed as they are, said so; the outputs are exactly those of a run over both."""
    root, first, second, geoid, reference = two_slice_pass
    folder = _folder(root, "s1_gains", first)
    cfg = request(root, "out_gains", geoid, s1_images=folder)
    output = root / "out_gains"
    shutil.copytree(single_slice_run, output)  # what a run over slice 1 alone made
    kept = single_slice_run
    single = products(output)
    assert sorted(single) == sorted(name.replace("txxxxxx", "t173953") for name in products(reference))
    assert cli.main([str(cfg)]) == 0
    assert "every requested product is already present" in console(capfd)

    (folder / second.name).symlink_to(second)
    assert cli.main([str(cfg), "--dry-run"]) == 0
    out = capfd.readouterr().out
    assert "6 single-slice product(s) replaced by the merged product of their pass:" in out
    assert cli.main([str(cfg)]) == 0
    err = console(capfd)
    for name in single:
        merged = Path(name.replace("t173953", "txxxxxx")).name
        assert f"removed {output / name}: replaced by {merged}" in err
    assert_same_products(output, reference)
    assert_all_verified(output)

    # A run stopped after publishing the merged products, before removing the old ones: the rerun does it.
    for name, path in products(kept).items():
        shutil.copy2(path, output / name)
    assert cli.main([str(cfg)]) == 0
    err = console(capfd)
    assert "every requested product is already present" in err
    assert all(f"removed {output / name}" in err for name in single)
    assert_same_products(output, reference)


def test_a_hostile_manifest_never_writes_outside_output(two_slice_pass, single_slice_run, capfd):
    """The platform number of a manifest becomes part of output names and paths: one that is not A-D
    makes the product corrupt (71), and nothing is written anywhere; repaired, the rerun makes it."""
    root, first, _, geoid, _ = two_slice_pass
    folder = root / "s1_hostile"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    copy = _copy(first, folder)
    original = (copy / "manifest.safe").read_text()
    _edit(copy / "manifest.safe", r"<safe:number>A</safe:number>", "<safe:number>A/../../../../escaped/x</safe:number>")
    cfg = request(root, "out_hostile", geoid, s1_images=folder)
    before = {p for p in root.parent.rglob("*")}
    assert cli.main([str(cfg)]) == 71
    err = console(capfd)
    assert first.name.removesuffix(".SAFE") in err
    assert "platform number 'A/../../../../escaped/x' is not one of A, B, C, D" in err
    created = {p for p in root.parent.rglob("*")} - before
    assert all(p.is_relative_to(root / "out_hostile") for p in created), created
    assert not [p for p in created if p.is_file()]
    assert not [ancestor / "escaped" for ancestor in list(root.parents)[:4] if (ancestor / "escaped").exists()]

    (copy / "manifest.safe").write_text(original)
    assert cli.main([str(cfg)]) == 0
    assert_same_products(root / "out_hostile", single_slice_run)


def test_an_annotation_of_another_product_fails_its_task_with_71(two_slice_pass, capfd):
    """Annotations are read by the workers: a task failing on a corrupt product ends the run with 71 (not
    66), naming the product and the file; nothing is published; repaired, the rerun makes the pass."""
    root, first, second, geoid, reference = two_slice_pass
    folder = root / "s1_annotation"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / first.name).symlink_to(first)
    copy = _copy(second, folder)
    (annotation,) = (copy / "annotation").glob("s1a-iw-grd-vh-*.xml")
    original = annotation.read_text()
    _edit(annotation, r"<absoluteOrbitNumber>39156</absoluteOrbitNumber>",
          "<absoluteOrbitNumber>39157</absoluteOrbitNumber>")
    cfg = request(root, "out_annotation", geoid, s1_images=folder)
    output = root / "out_annotation"
    assert cli.main([str(cfg)]) == 71
    err = console(capfd)
    assert f"{second.name.removesuffix('.SAFE')}: annotation/{annotation.name}: does not describe" in err
    assert "absolute orbit 39157 (manifest: 39156)" in err
    assert_all_verified(output)
    assert not [name for name in products(output) if name.endswith(".tif")]

    annotation.write_text(original)
    assert cli.main([str(cfg)]) == 0
    assert_same_products(output, reference)


# ---------------------------------------------------------------------------- product identity, unit level

@pytest.mark.parametrize("pattern, replacement, expected", [
    (r"<safe:number>A</safe:number>", "<safe:number>E</safe:number>", "platform number 'E' is not one of A, B, C, D"),
    (r"<safe:number>A</safe:number>", "<safe:number>B</safe:number>", "platform S1A (manifest: S1B)"),
    (r"<safe:orbitNumber type=\"start\">39156</safe:orbitNumber>",
     "<safe:orbitNumber type=\"start\">39160</safe:orbitNumber>", "absolute orbit 039156 (manifest: 39160)"),
    (r"<s1sarl1:missionDataTakeID>\d+</s1sarl1:missionDataTakeID>",
     "<s1sarl1:missionDataTakeID>1</s1sarl1:missionDataTakeID>", "datatake 04C7A0 (manifest: 000001)"),
    (r"<safe:startTime>2021-08-09T17:39:53", "<safe:startTime>2021-08-10T17:39:53", "start time 20210809T173953"),
    (r"<s1sarl1:transmitterReceiverPolarisation>VH</s1sarl1:transmitterReceiverPolarisation>",
     "<s1sarl1:transmitterReceiverPolarisation>HV</s1sarl1:transmitterReceiverPolarisation>",
     "polarisations VV/VH (manifest: VV/HV)"),
])
def test_the_name_must_match_the_manifest(two_slice_pass, tmp_path, pattern, replacement, expected):
    _, first, _, _, _ = two_slice_pass
    copy = _copy(first, tmp_path)
    _edit(copy / "manifest.safe", pattern, replacement)
    with pytest.raises(ProductError) as info:
        open_product(copy)
    assert info.value.exit_code == 71 and info.value.product == first.name.removesuffix(".SAFE")
    assert expected in str(info.value)


def test_a_zip_must_hold_the_product_it_is_named_after(two_slice_pass, tmp_path):
    _, first, second, _, _ = two_slice_pass
    archive = zip_safe(second, tmp_path)
    renamed = archive.with_name(first.name.replace(".SAFE", ".zip"))
    os.replace(archive, renamed)
    with pytest.raises(ProductError, match=f"{renamed.name} does not match its manifest"):
        open_product(renamed)


def test_output_paths_never_leave_their_folder():
    dirs = {"out_dir": "/data/out", "lia_dir": "/data/out/_LIA"}
    sample = TileProduct("s1a", "31TEL", "vv", "ASC", 59, (datetime(2021, 8, 9, 17, 39, 53),))
    assert sample.path(None, None, None, dirs) == Path("/data/out/31TEL/s1a_31TEL_vv_ASC_059_20210809t173953.tif")
    for hostile in ("a/../../../../escaped/x", "..", "x\\..\\y"):
        with pytest.raises(UnsafePathError, match="is not a plain name") as info:
            hostile_product = TileProduct(hostile, "31TEL", "vv", "ASC", 59, (datetime(2021, 8, 9, 17, 39, 53),))
            hostile_product.path(None, None, None, dirs)
        assert info.value.exit_code == 71
    with pytest.raises(UnsafePathError):
        product_path("lia_product", {"LIA_kind": "../LIA", "tile_name": "31TEL", "orbit": "059"}, dirs=dirs)
    with pytest.raises(UnsafePathError, match="'..' in an output path"):
        check_output_path("/data/out/31TEL/../../etc/x.tif")
    assert check_output_path("/data/out/31TEL/x.tif") == Path("/data/out/31TEL/x.tif")

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TEST_DATA = Path(os.environ.get("S1TILING_TEST_DATA", _DEFAULT))


def _require(sub):
    path = TEST_DATA / sub
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (set S1TILING_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def test_data():
    """Root of the shared read-only reference data (../shared/data by default)."""
    return _require("")


@pytest.fixture(scope="session")
def s1_dir():
    return _require("s1")


@pytest.fixture(scope="session")
def real_safes():
    """All real metadata-only SAFE folders, sorted by name."""
    return sorted(_require("s1").glob("*.SAFE"))


@pytest.fixture(scope="session")
def srtm_dir():
    return _require("dem")


@pytest.fixture(scope="session")
def geoid_file():
    return _require("geoid/egm96_15.gtx")


@pytest.fixture(scope="session")
def orbits_dir():
    return _require("orbits")


@pytest.fixture(scope="session")
def two_slice_pass(tmp_path_factory):
    """Two synthetic slices of one pass over tests/fault_helpers.TILE (no shared data needed), and the
    outputs of an undisturbed run over them (200 m, VV and VH, border masks and quicklooks): what the
    reliability tests compare their reruns with. Returns (root, slice 1, slice 2, geoid, outputs)."""
    from fault_helpers import request, two_slices  # noqa: PLC0415 - test helpers, only for these tests
    from s1tiling import cli  # noqa: PLC0415

    root = tmp_path_factory.mktemp("two_slice_pass")
    first, second, geoid = two_slices(root)
    assert cli.main([str(request(root, "reference", geoid, s1_images=root / "slices"))]) == 0
    return root, first, second, geoid, root / "reference"


@pytest.fixture(scope="session")
def single_slice_run(two_slice_pass):
    """The outputs of an undisturbed run over slice 1 of ``two_slice_pass`` alone (single-acquisition
    names): the reference of the tests whose faults hit that slice."""
    from fault_helpers import request  # noqa: PLC0415 - test helpers, only for these tests
    from s1tiling import cli  # noqa: PLC0415

    root, first, _, geoid, _ = two_slice_pass
    folder = root / "s1_single"
    folder.mkdir(exist_ok=True)
    if not (folder / first.name).exists():
        (folder / first.name).symlink_to(first)
    assert cli.main([str(request(root, "single_reference", geoid, s1_images=folder))]) == 0
    return root / "single_reference"

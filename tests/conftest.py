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


# --------------------------------------------------------------------------- a real SLURM

_REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def slurm():
    """A real single-node SLURM brought up by ``scripts/slurm.sh`` (``scripts/test.sh`` starts it; a
    test session started by hand starts it when SLURM is installed and we are root, and stops it at the
    end). ``SLURM_CONF`` is set for the session, so sbatch/squeue/scancel (and dask-jobqueue) use it."""
    import shutil
    import subprocess
    from types import SimpleNamespace

    script = _REPO / "scripts" / "slurm.sh"
    run = lambda *args: subprocess.run(["bash", str(script), *args], capture_output=True, text=True)  # noqa: E731
    started = False
    if run("status").returncode != 0:
        if not all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged")):
            pytest.skip("SLURM is not installed (slurmctld, slurmd, slurm-client, munge): "
                        "`bash scripts/slurm.sh start` installs and starts it (root + apt)")
        if os.geteuid() != 0:
            pytest.skip("SLURM is not running and only root can start its daemons: `sudo bash scripts/slurm.sh start`")
        result = run("start")
        if result.returncode != 0:
            pytest.skip(f"SLURM did not start: {result.stderr.strip()}")
        started = True
    conf = run("env").stdout.strip().split("=", 1)[1]
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield SimpleNamespace(conf=Path(conf), jobcomp=Path(conf).parent / "jobcomp.txt")
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if started:
            run("stop")

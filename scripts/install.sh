#!/usr/bin/env bash
# The virtual environment of the README's commands: .venv with s1tiling installed in it, editable
# (`pip install -e '.[EXTRAS]'`), shared by scripts/demo.sh (no extra) and scripts/test.sh ('test').
#
#   bash scripts/install.sh [EXTRAS]     e.g. bash scripts/install.sh test
#
# Either script may run first, and again: the install is skipped when it is already there (same
# pyproject.toml, the extras asked for among those installed, `s1tiling --version` working from
# outside the repository). Files an earlier install left in site-packages/s1tiling that pip does
# not know (e.g. numba caches of an old regular install, which turned that folder into a namespace
# package hiding the editable install) are removed. Ends with the `s1tiling` command checked from /.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
extras=${1:-}
python=.venv/bin/python
stamp=.venv/.s1tiling-install

works() {  # the installed command, run from outside the repository (the source folder is not on sys.path)
    (cd / && "$repo/.venv/bin/s1tiling" --version) >/dev/null 2>&1
}

remove_leftovers() {  # a site-packages/s1tiling without __init__.py: unrecorded files of an old install
    local purelib
    purelib=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -d "$purelib/s1tiling" ] && [ ! -e "$purelib/s1tiling/__init__.py" ]; then
        echo "NOTE: removing $purelib/s1tiling (files left by an earlier install, e.g. numba caches)" >&2
        rm -rf "${purelib:?}/s1tiling"
    fi
}

wanted="$(sha256sum pyproject.toml | cut -c1-16)"
if [ -x "$python" ] && [ -f "$stamp" ]; then
    read -r installed_hash installed_extras < "$stamp" || true
    missing=""
    for extra in ${extras//,/ }; do
        case " ${installed_extras:-} " in *" $extra "*) ;; *) missing="$missing $extra" ;; esac
    done
    if [ "${installed_hash:-}" = "$wanted" ] && [ -z "$missing" ]; then
        remove_leftovers
        if works; then
            exit 0  # already installed: nothing changed
        fi
    fi
    # what the stamp says stays installed (pip install -e '.[test]' then -e . keeps the test tools)
    [ "${installed_hash:-}" = "$wanted" ] && extras="$(echo "${installed_extras:-} ${extras//,/ }" | xargs -n1 | sort -u | xargs)"
fi

[ -x "$python" ] || python3 -m venv .venv
"$python" -m pip install -q --upgrade pip
rm -f "$stamp"
spec="."
[ -z "$extras" ] || spec=".[$(echo "$extras" | xargs | tr ' ' ',')]"
"$python" -m pip install -q -e "$spec"
remove_leftovers
if ! works; then
    echo "ERROR: s1tiling was installed in .venv but '.venv/bin/s1tiling --version' fails:" >&2
    (cd / && "$repo/.venv/bin/s1tiling" --version) >&2 || true
    exit 1
fi
echo "$wanted $(echo "$extras" | tr ',' ' ' | xargs)" > "$stamp"

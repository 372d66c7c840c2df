#!/usr/bin/env bash
# Build the Orfeo ToolBox Python module (otbApplication.py + _otbApplication*.so) for one
# Python interpreter, from Debian's OTB source package, against the installed Debian OTB.
#
# Debian packages OTB 8.1 without its Python bindings; this builds them the way OTB's own
# CMake does (SWIG, then one C++ extension), for the interpreter given (a virtual
# environment's python works: the bindings need numpy in it).
#
#   scripts/build-otb-python.sh [--python PYTHON] [--prefix DIR] [--pth] [--force] [--no-test]
#
#   --python PYTHON  interpreter to build for (default: $PYTHON, else the repository's .venv, else python3)
#   --prefix DIR     where the module goes (default: $OTB_PYTHON_PREFIX, else /opt/otb-python)
#   --pth            also add DIR to that interpreter's sys.path with a .pth file in its site-packages
#   --force          rebuild even if DIR already holds a module built for this interpreter and OTB
#   --no-test        skip OTB's own Python wrapper tests run after a build
#
# Idempotent: a second call finds the module built for the same OTB version, Python ABI and
# numpy major version, checks that it imports, and returns in about 2 seconds. Messages go to
# stderr; stdout gets only the shell lines that make the module usable, so that
#   eval "$(scripts/build-otb-python.sh --python .venv/bin/python)"
# sets PYTHONPATH and OTB_APPLICATION_PATH in the calling shell.
#
# What a first build needs and costs (Debian 12, 2 cores):
# - root or sudo, for apt-get install --no-install-recommends libotb-dev swig (and python3-dev
#   when the interpreter is Debian's): about 260 packages, 165 MB downloaded, 0.9 GiB installed,
#   when only otb-bin is there (1 to 2 minutes);
# - the OTB source package, fetched with apt-get source from the deb-src twin of the Debian
#   mirror in use, through a private apt state (the system's apt configuration is not touched):
#   701 MB downloaded into a temporary folder ($TMPDIR, else /var/tmp) and deleted afterwards;
#   only Modules/Wrappers/SWIG and the test data of its Python tests are extracted (1 minute:
#   the .tar.xz must be read whole) and kept under DIR/share (about 10 MB);
#   OTB_SOURCE_TARBALL=/path/to/otb_8.1.1+dfsg.orig.tar.xz skips the download;
# - compilation: about 2 CPU-minutes, 1 to 2 minutes on 2 cores. The module itself is 2.6 MB.
set -euo pipefail

RECIPE=1  # bump when the way of building changes: modules built by an older recipe are rebuilt
here="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${OTB_PYTHON_PREFIX:-/opt/otb-python}"
PY="${PYTHON:-}"
PTH=0
FORCE=0
RUN_TESTS=1

say() { echo "build-otb-python: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY="${2:?--python needs an interpreter}"; shift 2 ;;
        --python=*) PY="${1#*=}"; shift ;;
        --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --pth) PTH=1; shift ;;
        --force) FORCE=1; shift ;;
        --no-test) RUN_TESTS=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
if [ -z "$PY" ]; then
    if [ -x "$here/.venv/bin/python" ]; then PY="$here/.venv/bin/python"; else PY=python3; fi
fi
PY="$(command -v "$PY")" || die "Python interpreter '$PY' not found"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, links kept (a venv's python is one)
mkdir -p "$PREFIX" 2>/dev/null || true
PREFIX="$(cd "$PREFIX" 2>/dev/null && pwd)" || die "cannot create $PREFIX: choose another --prefix"

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
fi
apt_install() {  # packages...
    [ "$SUDO" != none ] || die "cannot install $* (not root, no sudo): install them, then run this again"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: this script builds against Debian's OTB packages"
    say "apt-get install --no-install-recommends $*"
    local log
    log="$(mktemp)"
    if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
             --no-install-recommends "$@" >"$log" 2>&1 \
           || { $SUDO apt-get update -q -o DPkg::Lock::Timeout=600 >>"$log" 2>&1 \
                && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
                     --no-install-recommends "$@" >>"$log" 2>&1; }; }; then
        tail -20 "$log" >&2; rm -f "$log"; die "apt-get install $* failed"
    fi
    rm -f "$log"
}

# ------------------------------------------------------------------ the interpreter
pyinfo="$("$PY" - <<'EOF'
import sys, sysconfig
try:
    import numpy
except ImportError:
    print("NONUMPY")
    raise SystemExit(0)
print(sysconfig.get_config_var("EXT_SUFFIX"))
print(sysconfig.get_paths()["include"])
print(numpy.get_include())
print(numpy.__version__)
print(sysconfig.get_paths()["purelib"])
print("%d.%d" % sys.version_info[:2])
print(sys.base_prefix)
EOF
)" || die "$PY does not run"
[ "$pyinfo" != NONUMPY ] || die "numpy is not installed for $PY: the OTB bindings need it (pip install numpy)"
{ read -r EXT_SUFFIX; read -r PY_INCLUDE; read -r NUMPY_INCLUDE; read -r NUMPY_VERSION; read -r PURELIB
  read -r PY_VERSION; read -r PY_BASE; } <<<"$pyinfo"
NUMPY_MAJOR="${NUMPY_VERSION%%.*}"

# ------------------------------------------------------------------ OTB
APP_DIR=""
otb_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
find_app_dir() {
    local so
    so="$(dpkg -L libotb-apps 2>/dev/null | grep -m1 '/otb/applications/otbapp_.*\.so$' || true)"
    [ -n "$so" ] && APP_DIR="$(dirname "$so")"
}
find_app_dir

usable() {  # the module in PREFIX imports with this interpreter and lists applications
    PYTHONPATH="$PREFIX" OTB_APPLICATION_PATH="$APP_DIR" "$PY" -c '
import otbApplication
n = len(otbApplication.Registry.GetAvailableApplications())
assert n > 0, "no OTB application found"
print(n)' 2>/dev/null
}
print_usage() {
    [ "$PTH" = 0 ] || { echo "$PREFIX" >"$PURELIB/otb-python.pth"; say "added $PREFIX to $PY's sys.path ($PURELIB/otb-python.pth)"; }
    say "use it with:"
    say "  export PYTHONPATH=$PREFIX\${PYTHONPATH:+:\$PYTHONPATH} OTB_APPLICATION_PATH=$APP_DIR"
    echo "export PYTHONPATH=$PREFIX\${PYTHONPATH:+:\$PYTHONPATH}"
    echo "export OTB_APPLICATION_PATH=$APP_DIR"
}

# ------------------------------------------------------------------ sources
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/otb-python-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
set_sources() {  # OTB Debian version -> where its sources are kept
    local upstream="${1%%+*}"; upstream="${upstream%%-*}"; upstream="${upstream#*:}"
    SRC="$PREFIX/share/otb-$upstream"
    SWIG_DIR="$SRC/Modules/Wrappers/SWIG"
}
# OTB's Python wrapper tests (Modules/Wrappers/SWIG/test/python) and the inputs they read.
TEST_DATA=(
    Data/Input/ToulouseExtract_WithGeom.tif Data/Input/poupees.tif Data/Input/veryverySmallFSATSW.tif
    Data/Input/verySmallFSATSW.tif Data/Input/verySmallFSATSW_r.tif Data/Input/verySmallFSATSW_nir.tif
    Data/Input/QB_Toulouse_Ortho_XS.tif Data/Input/ROI_QB_MUL_1_SVN_CLASS_MULTI.png
    Data/Input/sensor_stereo_left.tif Data/Input/sensor_stereo_left.geom Data/Input/Capitole_Rasterization.tif
    Data/Input/Hyperspectral/synthetic/hsi_cube.tif Data/Input/Hyperspectral/synthetic/endmembers.tif
    Data/Input/training/training.shp Data/Input/training/training.shx Data/Input/training/training.dbf
    Data/Input/training/training.prj
    Data/Baseline/OTB/Images/apTvRIRadiometricVegetationIndices.tif Data/Baseline/OTB/Files/pyTvBug2262Output.txt
)

debian_mirror() {  # the URI of the Debian mirror of this system's main suite (deb822 or one-line sources)
    local codename
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    [ -n "$codename" ] || return 1
    local files=(/etc/apt/sources.list.d/*.sources)
    [ -e "${files[0]}" ] && awk -v suite="$codename" '
        BEGIN { RS = ""; FS = "\n" }
        {
            types = uris = suites = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^Types:/) types = $i
                else if ($i ~ /^URIs:/) uris = $i
                else if ($i ~ /^Suites:/) suites = $i
            }
            if (types ~ /[ \t]deb([ \t]|$)/ && (" " suites " ") ~ ("[ \t]" suite "[ \t]")) {
                split(uris, u, /[ \t]+/); print u[2]; exit
            }
        }' "${files[@]}" | grep . && return 0
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk -v suite="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++;
                                                    if ($(i + 1) == suite) { print $i; exit } }' | grep .
}

fetch_tarball() {  # OTB Debian version -> prints the path of its orig tarball
    if [ -n "${OTB_SOURCE_TARBALL:-}" ]; then
        [ -f "$OTB_SOURCE_TARBALL" ] || die "OTB_SOURCE_TARBALL=$OTB_SOURCE_TARBALL: no such file"
        echo "$OTB_SOURCE_TARBALL"; return
    fi
    local version="$1" mirror codename apt_dir opts
    mirror="$(debian_mirror)" || die "cannot find the Debian mirror in /etc/apt/sources.list*: set OTB_SOURCE_TARBALL"
    codename="$(. /etc/os-release && echo "$VERSION_CODENAME")"
    apt_dir="$WORK/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$WORK/download"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\n' "$mirror" "$codename" >"$apt_dir/sources.sources"
    if [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
        echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" >>"$apt_dir/sources.sources"
    fi
    # A private apt state: no change to the system's sources, no lock shared with other apt users.
    opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.sources" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Debug::NoLocking=1
          -o "APT::Sandbox::User=$(id -un)")
    say "downloading the source package otb=$version (701 MB) from $mirror (deb-src $codename main)"
    apt-get "${opts[@]}" update -qq >&2 || die "apt-get update of deb-src $mirror $codename main failed"
    (cd "$WORK/download" && apt-get "${opts[@]}" source --download-only -qq "otb=$version" >&2) \
        || die "apt-get source otb=$version failed (is that version still on $mirror?)"
    ls "$WORK"/download/otb_*.orig.tar.* | head -1
}

sources_complete() {
    [ -f "$SWIG_DIR/src/otbApplication.i" ] || return 1
    local f
    for f in "${TEST_DATA[@]}"; do [ -f "$SRC/$f" ] || return 1; done
}
get_sources() {  # OTB Debian version: extract what is needed from its source package, when missing
    set_sources "$1"
    sources_complete && return 0
    local tarball
    tarball="$(fetch_tarball "$1")"
    say "extracting Modules/Wrappers/SWIG and its test data from $(basename "$tarball")"
    mkdir -p "$WORK/src"
    tar -xf "$tarball" -C "$WORK/src" Modules/Wrappers/SWIG "${TEST_DATA[@]}" \
        || die "cannot extract Modules/Wrappers/SWIG from $tarball"
    rm -rf "$WORK/download"
    mkdir -p "$PREFIX/share"
    rm -rf "$SRC"
    mv "$WORK/src" "$SRC"
}

# ------------------------------------------------------------------ up to date?
stamp="$PREFIX/.otbApplication${EXT_SUFFIX%.so}.build"
installed_otb="$(otb_version libotb-dev)"
if [ -z "$installed_otb" ]; then  # the libraries may be there (otb-bin) without the headers
    installed_otb="$(otb_version libotbapplicationengine-8.1-1)"
fi
key="recipe=$RECIPE otb=$installed_otb abi=$EXT_SUFFIX numpy=$NUMPY_MAJOR"
if [ "$FORCE" = 0 ] && [ -n "$installed_otb" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] \
        && [ -n "$APP_DIR" ] && n="$(usable)"; then
    say "up to date: $PREFIX/_otbApplication$EXT_SUFFIX for $PY (OTB $installed_otb, $n applications)"
    get_sources "$installed_otb"  # OTB's wrapper tests and their data, if deleted since
    print_usage
    exit 0
fi

start=$SECONDS
needed=()
[ -n "$(otb_version libotb-dev)" ] && [ -n "$(otb_version libotb-apps)" ] || needed+=(libotb-dev libotb-apps)
command -v swig >/dev/null 2>&1 || needed+=(swig)
command -v g++ >/dev/null 2>&1 || needed+=(g++)
if [ ! -f "$PY_INCLUDE/Python.h" ]; then
    case "$PY_BASE" in
        /usr) needed+=("libpython$PY_VERSION-dev") ;;
        *) die "$PY_INCLUDE/Python.h is missing: the development headers of $PY are needed" ;;
    esac
fi
[ ${#needed[@]} = 0 ] || apt_install "${needed[@]}"
find_app_dir
OTB_DEB="$(otb_version libotb-dev)"
OTB_INCLUDE="$(ls -d /usr/include/OTB-* 2>/dev/null | sort -V | tail -1)"
ITK_INCLUDE="$(ls -d /usr/include/ITK-* 2>/dev/null | sort -V | tail -1)"
[ -n "$OTB_INCLUDE" ] && [ -n "$ITK_INCLUDE" ] && [ -n "$APP_DIR" ] || die "OTB headers or applications not found after installing libotb-dev"
OTB_MM="${OTB_INCLUDE##*/OTB-}"; ITK_MM="${ITK_INCLUDE##*/ITK-}"
key="recipe=$RECIPE otb=$OTB_DEB abi=$EXT_SUFFIX numpy=$NUMPY_MAJOR"
say "building otbApplication for $PY (Python $PY_VERSION, numpy $NUMPY_VERSION) against OTB $OTB_DEB into $PREFIX"
get_sources "$OTB_DEB"

# ------------------------------------------------------------------ build
B="$WORK/build"
mkdir -p "$B"
say "swig: generating the wrapper"
# SWIG 4.1 no longer emits the flattened Class_Method names of static methods unless asked;
# otbApplication.i calls PythonLogOutput_New, Registry_CreateApplicationWithoutLogger...
flat=()
swig -python -help 2>&1 | grep -q -- -flatstaticmethod && flat=(-flatstaticmethod)
swig -python -c++ "${flat[@]}" -DOTB_SWIGNUMPY=1 -I"$SWIG_DIR/src" -I"$SWIG_DIR/src/python" \
    -I"$OTB_INCLUDE" -I"$ITK_INCLUDE" -outdir "$B" -o "$B/otbApplicationPYTHON_wrap.cxx" "$SWIG_DIR/src/otbApplication.i"
includes=(-I"$SWIG_DIR/src" -I"$SWIG_DIR/src/python" -I"$OTB_INCLUDE" -I"$ITK_INCLUDE" -I"$PY_INCLUDE"
          -I"$NUMPY_INCLUDE")
[ -d /usr/include/gdal ] && includes+=(-I/usr/include/gdal)
flags=(-std=c++14 -fPIC -O2 -DNDEBUG -DOTB_SWIGNUMPY=1 -w)
say "g++: compiling (about a minute on 2 cores)"
pids=()
for unit in "$B/otbApplicationPYTHON_wrap.cxx" "$SWIG_DIR"/src/python/itkPyCommand.cxx \
            "$SWIG_DIR"/src/python/otbPythonLogOutput.cxx "$SWIG_DIR"/src/python/otbProgressReporterManager.cxx; do
    g++ "${flags[@]}" "${includes[@]}" -c "$unit" -o "$B/$(basename "${unit%.cxx}").o" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || die "compilation failed"; done
g++ -shared -o "$B/_otbApplication$EXT_SUFFIX" "$B"/*.o \
    -lOTBApplicationEngine-"$OTB_MM" -lOTBCommon-"$OTB_MM" -lITKCommon-"$ITK_MM" \
    || die "link failed"

# ------------------------------------------------------------------ install
old="$PREFIX/otbApplication.py"
if [ -f "$old" ] && ! cmp -s "$old" "$B/otbApplication.py"; then
    # another OTB or SWIG: the extensions built for other interpreters go with the old module
    say "replacing the module of another OTB/SWIG build: removing its extensions"
    rm -f "$PREFIX"/_otbApplication*.so "$PREFIX"/.otbApplication*.build
fi
rm -f "$stamp"
cp "$B/otbApplication.py" "$PREFIX/.otbApplication.py.tmp" && mv "$PREFIX/.otbApplication.py.tmp" "$old"
cp "$B/_otbApplication$EXT_SUFFIX" "$PREFIX/._otbApplication.tmp" \
    && mv "$PREFIX/._otbApplication.tmp" "$PREFIX/_otbApplication$EXT_SUFFIX"
rm -rf "$PREFIX/__pycache__"
n="$(usable)" || { PYTHONPATH="$PREFIX" "$PY" -c 'import otbApplication' || true; die "the module built does not import"; }
say "built in $((SECONDS - start)) s: $PREFIX/_otbApplication$EXT_SUFFIX ($n applications in $APP_DIR)"

# ------------------------------------------------------------------ OTB's own wrapper tests
if [ "$RUN_TESTS" = 1 ]; then
    # The tests of Modules/Wrappers/SWIG/test/python that need neither data nor baseline;
    # tests/test_otb_python.py runs the others on the test data extracted above.
    T="$WORK/tests"
    mkdir -p "$T"
    for t in Bug804 Bug823 PythonImageMetadataTest; do
        if ! (cd "$T" && PYTHONPATH="$PREFIX:$SWIG_DIR/test/python" OTB_APPLICATION_PATH="$APP_DIR" \
                "$PY" "$SWIG_DIR/test/python/PythonTestDriver.py" "$t" >"$T/$t.log" 2>&1); then
            cat "$T/$t.log" >&2
            rm -f "$PREFIX/_otbApplication$EXT_SUFFIX"
            die "OTB's wrapper test $t failed: module removed"
        fi
    done
    say "OTB's wrapper tests Bug804, Bug823, PythonImageMetadataTest passed"
fi
echo "$key" >"$stamp"
print_usage

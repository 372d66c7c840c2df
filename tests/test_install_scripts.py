"""The README's two commands, ``bash scripts/demo.sh`` and ``bash scripts/test.sh``, in either order in
one clone, leave a working ``s1tiling`` command (issue: numba's cache written into the installed
package turned site-packages/s1tiling into a namespace package hiding the editable install).

Each test copies the repository's files into a scratch folder and runs the real scripts there, in
real processes: ``scripts/demo.sh`` entirely (the synthetic demo: no reference data beside the
copy), and the install step of ``scripts/test.sh`` (``bash scripts/install.sh test``), then calls
``.venv/bin/s1tiling --version`` from outside the copy. To stay lean, the scratch ``.venv`` is
created beforehand with a ``.pth`` line putting this environment's site-packages behind its own:
the dependencies are then already there and pip installs only s1tiling itself (editable, from the
copy), as it would in a clone where they were installed before; pip's cache serves the build tools.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _scratch_copy(root: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, copied under ``root``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                                capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the repository's file list is needed (git ls-files): {exc}")
    copy = root / "clone"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def _prepared_venv(copy: Path) -> None:
    """``copy/.venv`` whose dependencies are those of the running environment (see the module's docstring)."""
    python3 = shutil.which("python3") or sys.executable  # what the scripts use
    subprocess.run([python3, "-m", "venv", str(copy / ".venv")], check=True, capture_output=True)
    purelib = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "zz-outer-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               S1TILING_TEST_DATA=str(tmp_path / "no-reference-data"), CI="true")
    return env


def _run(command: list[str], copy: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _installed_command_works(copy: Path, env: dict[str, str]) -> None:
    """``s1tiling --version`` from outside the copy (the source folder is then not on sys.path)."""
    done = subprocess.run([str(copy / ".venv" / "bin" / "s1tiling"), "--version"], cwd="/", env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "0." in done.stdout + done.stderr
    where = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c",
                            "import s1tiling; print(s1tiling.__file__)"], cwd="/", env=env,
                           capture_output=True, text=True, timeout=300)
    assert Path(where.stdout.strip()).resolve() == (copy / "s1tiling" / "__init__.py").resolve(), where


def _no_numba_cache_in_package(copy: Path, tmp_path: Path) -> None:
    purelib = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    for folder in (Path(purelib) / "s1tiling", copy / "s1tiling"):
        found = sorted(p.name for p in folder.rglob("*.nb[ic]")) if folder.exists() else []
        assert found == [], f"numba cache files inside the package {folder}: {found[:5]}"
    assert sorted((tmp_path / "cache" / "s1tiling" / "numba").rglob("*.nbi")), "numba cached nothing"


def _demo(copy: Path, env: dict[str, str]) -> str:
    return _run(["bash", "scripts/demo.sh", "demo", "200"], copy, env)


def test_demo_then_tests_install(tmp_path):
    """The README's order: the demo (its install, a full demo run writing numba's caches), then the
    test script's install step; and the demo again: no reinstall, nothing new listed."""
    copy = _scratch_copy(tmp_path)
    _prepared_venv(copy)
    env = _environment(tmp_path)
    first = _demo(copy, env)
    made = [line.strip() for line in first.splitlines() if line.startswith("  ") and "/output/" in line]
    assert any(line.endswith(".tif") and "_31TEL_vv_" in line for line in made), first
    assert any(line.endswith("_quicklook.jpg") for line in made), first
    assert "xdg-open " in first and "_QL/" in first, first  # where to look
    _no_numba_cache_in_package(copy, tmp_path)
    _installed_command_works(copy, env)
    stamp = copy / ".venv" / ".s1tiling-install"
    _run(["bash", "scripts/install.sh", "test"], copy, env)  # what scripts/test.sh runs first
    _installed_command_works(copy, env)
    assert stamp.read_text().split()[1:] == ["test"]
    installed = stamp.stat().st_mtime_ns
    again = _demo(copy, env)  # nothing changed: no reinstall (the stamp stays), nothing new listed
    assert stamp.stat().st_mtime_ns == installed
    assert "This run made nothing new" in again, again
    _installed_command_works(copy, env)


def test_tests_install_then_demo_and_old_leftovers(tmp_path):
    """The other order; and a clone broken by the old scripts (a regular install whose numba caches
    stayed behind in site-packages/s1tiling after ``pip install -e``) is repaired."""
    copy = _scratch_copy(tmp_path)
    _prepared_venv(copy)
    env = _environment(tmp_path)
    _run(["bash", "scripts/install.sh", "test"], copy, env)
    _installed_command_works(copy, env)
    purelib = Path(subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    leftover = purelib / "s1tiling" / "geometry" / "__pycache__"  # what the old demo.sh left
    leftover.mkdir(parents=True)
    (leftover / "orbit._horner-142.py311.1.nbi").write_bytes(b"\x00" * 16)
    broken = subprocess.run([str(copy / ".venv" / "bin" / "s1tiling"), "--version"], cwd="/", env=env,
                            capture_output=True, text=True, timeout=300)
    assert broken.returncode != 0 and "__version__" in broken.stderr  # the fault is real
    first = _demo(copy, env)
    assert "removing" in first and "site-packages/s1tiling" in first, first
    assert not (purelib / "s1tiling").exists()
    _no_numba_cache_in_package(copy, tmp_path)
    _installed_command_works(copy, env)

"""Helpers of the cluster tests: the ``s1tiling`` command as a real process, SLURM's view of its
jobs (squeue, the jobcomp file of finished jobs), and output comparison."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import rasterio


class CliRun:
    """``python -m s1tiling CONFIG`` in its own session (process group), stdout+stderr in a file."""

    def __init__(self, cfg: Path, cwd: Path, env: dict | None = None):
        self.cfg = Path(cfg)
        self.log = Path(cwd) / f"{self.cfg.stem}-{uuid.uuid4().hex[:6]}.log"
        self.stream = open(self.log, "w")
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "s1tiling", str(cfg)], cwd=cwd, stdout=self.stream,
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                        start_new_session=True)
        self.elapsed = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = 900) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"s1tiling {self.cfg} still running after {timeout} s:\n{self.output[-3000:]}") from None
        finally:
            self.stream.close()
        self.elapsed = time.monotonic() - self.started
        return code

    def signal(self, sig: int) -> None:
        os.kill(self.process.pid, sig)

    def group_gone(self, timeout: float = 30) -> bool:
        """Whether every process of the run's session (dask workers included) ended within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def wait_until(condition, timeout: float, what: str, interval: float = 0.2, run: CliRun | None = None):
    """Polls ``condition()`` until it returns something true; fails naming ``what`` after ``timeout`` s
    (or as soon as ``run`` ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if run is not None and not run.running():
            raise AssertionError(f"the run ended (status {run.process.returncode}) before {what}:\n"
                                 f"{run.output[-3000:]}")
        time.sleep(interval)
    raise AssertionError(f"no {what} within {timeout} s" + (f":\n{run.output[-3000:]}" if run else ""))


# --------------------------------------------------------------------------- SLURM's view

def squeue(name: str) -> dict[str, str]:
    """{job id: state} of the queued and running jobs named ``name``."""
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def jobcomp(path: Path, name: str) -> dict[str, str]:
    """{job id: final state} of the finished jobs named ``name`` (SLURM's jobcomp/filetxt record)."""
    if not path.exists():
        return {}
    jobs = {}
    for line in path.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("Name") == name:
            jobs[fields["JobId"]] = fields["JobState"]
    return jobs


class JobWatcher:
    """Remembers every job of ``name`` seen in squeue, with the states it was seen in."""

    def __init__(self, name: str):
        self.name = name
        self.seen: dict[str, set[str]] = {}

    def poll(self) -> dict[str, str]:
        now = squeue(self.name)
        for job, state in now.items():
            self.seen.setdefault(job, set()).add(state)
        return now

    def running(self) -> list[str]:
        return [job for job, state in self.poll().items() if state == "RUNNING"]

    def follow(self, run: CliRun, interval: float = 0.5, timeout: float = 900) -> int:
        """Polls squeue until the run ends; returns its exit status."""
        deadline = time.monotonic() + timeout
        while run.running() and time.monotonic() < deadline:
            self.poll()
            time.sleep(interval)
        return run.wait(max(1.0, deadline - time.monotonic()))


def unique_job_name(prefix: str = "s1t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- outputs

def tif_outputs(folder: Path) -> dict[str, Path]:
    """The products of a run: GeoTIFFs under ``folder``, by relative path (temporaries excluded)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*.tif"))
            if not p.name.startswith(".")}


def assert_same_products(reference: Path, other: Path) -> None:
    """Same files, same profile, identical pixels and tags (production time aside)."""
    expected, got = tif_outputs(reference), tif_outputs(other)
    assert sorted(got) == sorted(expected), f"{other}: {sorted(got)} != {sorted(expected)}"
    for key in expected:
        with rasterio.open(expected[key]) as a, rasterio.open(got[key]) as b:
            assert a.profile == b.profile, key
            assert np.array_equal(a.read(), b.read()), key
            tags_a, tags_b = a.tags(), b.tags()
            tags_a.pop("TIFFTAG_DATETIME", None), tags_b.pop("TIFFTAG_DATETIME", None)
            assert tags_a == tags_b, key


def temporaries(folder: Path) -> list[Path]:
    """Files written under a temporary name (``.<name>.<host>.<pid>.<random>.tmp<ext>``) left in ``folder``."""
    return [p for p in Path(folder).rglob(".*") if ".tmp" in p.name]

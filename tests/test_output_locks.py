"""Overlapping runs on the same outputs (issue 12 #6): a lock per output, beside its temporaries.

Real concurrent processes only: two ``s1tiling`` runs started together, a process holding a lock while a
run waits for it, a process killed while holding one. Before the fix both runs did all the work and
nothing said another run was producing a tile.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fault_helpers import REPO, TILE, assert_all_verified, assert_same_products, request, run_cli
from s1tiling.writing import OutputLock, lock_path, read_lock

IMAGE = f"s1a_{TILE}_vv_ASC_059_20210809txxxxxx.tif"
HOLD = ("import sys; from s1tiling.writing import OutputLock; lock = OutputLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); sys.stdin.read(); lock.release()")
HOST = socket.gethostname().split(".")[0]


def _holder(path: Path) -> subprocess.Popen:
    """Another process holding the lock of ``path`` until its stdin is closed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=env, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        assert process.poll() is None, f"the run ended ({process.returncode}) without saying {text!r}:\n{content}"
        assert time.monotonic() < deadline, f"{text!r} not said after {timeout} s:\n{content}"
        time.sleep(0.2)


def test_a_lock_is_held_across_processes_and_taken_over_when_its_holder_dies(tmp_path, caplog):
    target = tmp_path / "out" / "image.tif"
    holder = _holder(target)
    lock = OutputLock(target)
    assert lock.acquire(wait=False) is False
    assert read_lock(lock_path(target)) == {"host": HOST, "pid": holder.pid, "start": read_lock(lock.path)["start"]}
    holder.stdin.close()
    assert holder.wait(60) == 0
    assert lock.acquire(wait=False) is True and read_lock(lock.path)["pid"] == os.getpid()
    lock.release()
    assert not lock.path.exists()

    holder = _holder(target)
    os.kill(holder.pid, signal.SIGKILL)  # dies holding it: its lock file stays, naming it
    holder.wait(60)
    assert read_lock(lock.path)["pid"] == holder.pid
    with caplog.at_level("WARNING", logger="s1tiling"):
        assert lock.acquire(wait=False) is True
    assert f"taking over the lock of a run that is gone (host {HOST}, pid {holder.pid}" in caplog.text
    lock.release()


def test_a_run_waits_for_what_another_live_run_is_producing(two_slice_pass, tmp_path):
    root, _, _, geoid, reference = two_slice_pass
    cfg = request(root, "out_wait", geoid, s1_images=root / "slices")
    output = root / "out_wait"
    holder = _holder(output / TILE / IMAGE)
    log = tmp_path / "run.log"
    run = run_cli(cfg, log=log)
    try:
        _wait_for(log, f"{output / TILE / IMAGE} is being produced by another run (host {HOST}, pid {holder.pid}, "
                       "since ", run)
        time.sleep(2)
        assert run.poll() is None and not (output / TILE / IMAGE).exists()  # still waiting
    finally:
        holder.stdin.close()
        holder.wait(60)
    assert run.wait(600) == 0, log.read_text()
    assert_same_products(output, reference)
    assert not list(output.rglob(".*.lock"))


def test_a_dead_run_lock_is_taken_over_and_said_so(two_slice_pass, tmp_path):
    root, _, _, geoid, reference = two_slice_pass
    cfg = request(root, "out_dead", geoid, s1_images=root / "slices")
    output = root / "out_dead"
    holder = _holder(output / TILE / IMAGE)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(60)
    log = tmp_path / "run.log"
    assert run_cli(cfg, log=log).wait(600) == 0, log.read_text()
    text = log.read_text()
    assert (f"{output / TILE / IMAGE}: taking over the lock of a run that is gone (host {HOST}, "
            f"pid {holder.pid}, since ") in text
    assert_same_products(output, reference)


def test_two_overlapping_runs_make_each_output_once(two_slice_pass, tmp_path):
    root, _, _, geoid, reference = two_slice_pass
    cfg = request(root, "out_twice", geoid, s1_images=root / "slices")
    output = root / "out_twice"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    runs = [run_cli(cfg, log=log) for log in logs]
    assert [run.wait(900) for run in runs] == [0, 0], "\n".join(log.read_text() for log in logs)
    texts = [log.read_text() for log in logs]
    wrote = [line for text in texts for line in text.splitlines() if f"{TILE}: wrote " in line]
    assert len(wrote) == 1, wrote  # the tile images were made by one run only
    other = texts[1] if f"{TILE}: wrote " in texts[0] else texts[0]
    assert ("is being produced by another run" in other or "made meanwhile by another run" in other
            or "every requested product is already present" in other)
    assert_same_products(output, reference)
    assert_all_verified(output)
    assert not list(output.rglob(".*.lock"))

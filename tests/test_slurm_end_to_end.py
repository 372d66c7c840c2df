"""The HPC path through the real ``s1tiling`` command: a real single-node SLURM (scripts/slurm.sh),
and a real ``dask scheduler`` / ``dask worker`` pair.

The request is the multi-tile, multi-date one of test_parallel_end_to_end (two 2015 Germany slices
over 32UNB and 32UNC, the 2021 France product over 31TEL, 100 m), built from real annotations.
Every run is compared pixel by pixel with a local run of the same request.

- ``scheduler = slurm``: worker jobs are real SLURM jobs (seen in squeue, recorded by jobcomp),
  their logs land in the run's own folder, and they are gone when the run ends;
- a worker job cancelled (scancel) in the middle of the run: the run still produces everything, or
  exits 66 naming the lost tasks and a rerun completes them;
- a worker job that reaches its walltime: the same;
- sbatch refusing the job (unknown partition, more memory than the node has): exit 72 with
  sbatch's own message, without waiting; a job that cannot start within ``worker_timeout``: exit 66
  with the job's state and pending reason, the job cancelled;
- ``scheduler = address`` against a ``dask scheduler`` and a ``dask worker`` started here.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shapely.ops import unary_union

from cluster_helpers import (CliRun, JobWatcher, assert_same_products, jobcomp, squeue, temporaries, tif_outputs,
                             unique_job_name, wait_until)
from request_files import write_request
from s1tiling import grid
from s1tiling.testing import build_product, write_dem_folder

pytest.importorskip("dask_jobqueue")

PRODUCTS = (
    "S1A_IW_GRDH_1SDV_20150222T170725_20150222T170750_004739_005DD8_CEAB.SAFE",
    "S1A_IW_GRDH_1SDV_20150222T170750_20150222T170815_004739_005DD8_3768.SAFE",
    "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE",
)
TILES = ("32UNB", "32UNC", "31TEL")
PROCESSING = {"output_spatial_resolution": 100, "orthorectification_interpolation_method": "linear",
              "nb_parallel_processes": 1, "ram_per_process": 1024}
#: one worker process of one thread and 1 GiB per job: two jobs fill the 2-core CI machine
ONE_WORKER_JOBS = {"scheduler": "slurm", "cores": 1, "processes": 1, "memory": "1GiB", "walltime": "00:15:00"}


def _pattern(rows, cols):
    import numpy as np
    return (60 + (rows * 7 + cols * 3) % 97).astype(np.uint16)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, s1_dir, srtm_dir, geoid_file):
    root = tmp_path_factory.mktemp("cluster")
    for name in PRODUCTS:
        build_product(s1_dir / name, root / "s1_images", content=_pattern)
    write_dem_folder(root / "dem", unary_union([grid.tile(t).footprint for t in TILES]), srtm_dir)
    return root, geoid_file


def request(inputs, output, **sections):
    root, geoid = inputs
    processing = {**PROCESSING, **sections.pop("Processing", {})}
    return write_request(root, output, tiles=TILES, first_date="2015-01-01", last_date="2021-12-31", geoid=geoid,
                         Processing=processing, **sections)


@pytest.fixture(scope="module")
def reference(inputs):
    """The request run locally (2 worker processes): the outputs every other run must match."""
    root, _ = inputs
    run = CliRun(request(inputs, "local", Processing={"nb_parallel_processes": 2}), cwd=root)
    assert run.wait() == 0, run.output
    assert len(tif_outputs(root / "local")) == 6
    return root / "local"


def slurm_request(inputs, output, job_name, **cluster):
    keys = {**ONE_WORKER_JOBS, **cluster}
    return request(inputs, output, Cluster=keys), {"DASK_JOBQUEUE__SLURM__NAME": job_name}


# --------------------------------------------------------------------------- SLURM


@pytest.mark.slow
def test_slurm_run_matches_a_local_run_and_leaves_no_job(slurm, inputs, reference, tmp_path):
    name = unique_job_name()
    # two directives with commas, one per line: neither is split
    cfg, env = slurm_request(inputs, "slurm", name, jobs=2,
                             job_extra_directives="--comment=s1tiling,e2e\n    --mail-type=END,FAIL")
    run = CliRun(cfg, cwd=tmp_path, env=env)
    watcher = JobWatcher(name)
    code = watcher.follow(run)
    assert code == 0, run.output
    assert_same_products(reference, inputs[0] / "slurm")

    ran = {job for job, states in watcher.seen.items() if "RUNNING" in states}
    assert ran, f"no job named {name} was seen running in squeue"
    assert wait_until(lambda: not squeue(name), 15, "empty queue"), "worker jobs outlived the run"
    finished = jobcomp(slurm.jobcomp, name)
    assert ran <= set(finished), f"jobs {ran} not all recorded as finished: {finished}"

    # worker logs in the run's own folder, none in the current directory
    (folder,) = (inputs[0] / "slurm" / "_WORKER_LOGS").iterdir()
    assert f"-{run.process.pid}" in folder.name
    assert {f"{name}-{job}.out" for job in ran} <= {p.name for p in folder.iterdir()}
    assert not list(tmp_path.glob("slurm-*.out"))
    assert "Dask workers in slurm batch jobs (2 at once)" in run.output
    print(f"\nSLURM run: {run.elapsed:.1f} s, jobs {sorted(ran)}")


@pytest.mark.slow
def test_a_cancelled_worker_job_is_replaced_or_its_tasks_reported(slurm, inputs, reference, tmp_path):
    name = unique_job_name()
    cfg, env = slurm_request(inputs, "scancel", name, jobs=1)
    output = inputs[0] / "scancel"
    run = CliRun(cfg, cwd=tmp_path, env=env)
    watcher = JobWatcher(name)
    # once a first product is written, the other tasks are still to do: cancel the job running them
    wait_until(lambda: tif_outputs(output), 300, "first product", run=run)
    (victim,) = wait_until(watcher.running, 30, "running worker job", run=run)
    subprocess.run(["scancel", victim], check=True)
    code = watcher.follow(run)
    assert jobcomp(slurm.jobcomp, name).get(victim) == "CANCELLED"
    assert "Lost every dask worker" in run.output
    if code == 66:  # the lost tasks are named, a rerun does them
        assert "ortho" in run.output and "KilledWorker" in run.output, run.output
        rerun = CliRun(cfg, cwd=tmp_path, env=env)
        assert rerun.wait() == 0, rerun.output
    else:
        assert code == 0, run.output
        assert set(watcher.seen) - {victim}, "no job replaced the cancelled one"
    assert_same_products(reference, output)
    assert not temporaries(output)
    assert wait_until(lambda: not squeue(name), 15, "empty queue")


@pytest.mark.slow
def test_a_worker_job_reaching_its_walltime_is_replaced(slurm, inputs, reference, tmp_path):
    """walltime = 1 minute (SLURM's smallest). In the middle of a task, the job's processes are
    stopped (``scancel --signal=STOP --full``, SLURM delivering SIGSTOP): a task that cannot finish in
    what is left of the walltime, whatever the speed of the machine. SLURM kills the job at its
    walltime (SIGCONT, SIGTERM, SIGKILL; jobcomp records TIMEOUT); the run goes on with a new job."""
    name = unique_job_name()
    cfg, env = slurm_request(inputs, "walltime", name, jobs=1, walltime="1")
    output = inputs[0] / "walltime"
    run = CliRun(cfg, cwd=tmp_path, env=env)
    watcher = JobWatcher(name)
    (first,) = wait_until(watcher.running, 120, "running worker job", run=run)
    wait_until(lambda: temporaries(output), 120, "task writing its product", interval=0.05, run=run)
    subprocess.run(["scancel", "--signal=STOP", "--full", first], check=True)
    wait_until(lambda: jobcomp(slurm.jobcomp, name).get(first), 150, "end of the frozen job", run=run)
    assert jobcomp(slurm.jobcomp, name)[first] == "TIMEOUT"
    code = watcher.follow(run)
    if code == 66:  # the lost tasks are named, a rerun does them
        assert "KilledWorker" in run.output, run.output
        rerun = CliRun(cfg, cwd=tmp_path, env=env)
        assert rerun.wait() == 0, rerun.output
    else:
        assert code == 0, run.output
        assert set(watcher.seen) - {first}, "no job replaced the one that reached its walltime"
    assert "Lost every dask worker" in run.output
    assert_same_products(reference, output)
    assert not temporaries(output)
    assert wait_until(lambda: not squeue(name), 15, "empty queue")


@pytest.mark.parametrize("cluster, message", [
    ({"queue": "nosuch"}, "Invalid partition name specified"),
    ({"memory": "4000GiB"}, "Requested node configuration is not available"),
], ids=["unknown-partition", "too-much-memory"])
def test_a_refused_worker_job_exits_72_with_sbatchs_message(slurm, inputs, tmp_path, cluster, message):
    name = unique_job_name()
    cfg, env = slurm_request(inputs, "refused", name, jobs=1, **cluster)
    run = CliRun(cfg, cwd=tmp_path, env=env)
    assert run.wait(120) == 72, run.output
    assert "sbatch refused the dask worker job" in run.output and message in run.output
    assert str(cfg) in run.output
    assert "Traceback" not in run.output and "Exception in callback" not in run.output
    assert not squeue(name)


def test_a_worker_job_that_cannot_start_in_time_exits_66(slurm, inputs, tmp_path):
    name = unique_job_name()
    cfg, env = slurm_request(inputs, "pending", name, jobs=1, worker_timeout=6,
                             job_extra_directives="--begin=now+1hour")
    run = CliRun(cfg, cwd=tmp_path, env=env)
    assert run.wait(120) == 66, run.output
    assert "No dask worker joined the run within" in run.output
    assert "worker_timeout = 6" in run.output and "PENDING (BeginTime)" in run.output
    assert wait_until(lambda: not squeue(name), 15, "empty queue"), "the pending job was left in the queue"
    assert set(jobcomp(slurm.jobcomp, name).values()) == {"CANCELLED"}
    assert not tif_outputs(inputs[0] / "pending")


@pytest.mark.slow
def test_sigterm_to_the_driver_cancels_its_jobs_at_once(slurm, inputs, tmp_path):
    """Ctrl-C / SIGTERM in slurm mode: exit 78 (not 0: dask_jobqueue's SIGINT handler is not kept),
    the worker jobs cancelled at once (not after the workers' 60 s death timeout)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        name = unique_job_name()
        cfg, env = slurm_request(inputs, f"interrupted-{sig.name}", name, jobs=1)
        run = CliRun(cfg, cwd=tmp_path, env=env)
        watcher = JobWatcher(name)
        wait_until(watcher.running, 120, "running worker job", run=run)
        time.sleep(2)
        run.signal(sig)
        assert run.wait(60) == 78, run.output
        assert f"Terminated by signal {sig.name}" in run.output
        gone = time.monotonic()
        wait_until(lambda: not squeue(name), 15, "empty queue")
        assert time.monotonic() - gone < 15
        assert set(jobcomp(slurm.jobcomp, name).values()) == {"CANCELLED"}
        assert not temporaries(inputs[0] / f"interrupted-{sig.name}")


# --------------------------------------------------------------------------- an existing dask scheduler


@pytest.fixture
def dask_scheduler(tmp_path):
    """``dask scheduler`` on a free port; yields (address, start_worker, processes)."""
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
    if dask is None:
        pytest.skip("the `dask` command is not installed")
    scheduler_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    def start_worker():
        processes.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
                                           "--nthreads", "1", "--memory-limit", "2GiB", "--resources", "memory=1024"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        wait_until(scheduler_file.exists, 60, "dask scheduler file")
        import json
        address = wait_until(lambda: json.loads(scheduler_file.read_text() or "{}").get("address"), 30,
                             "scheduler address")
        yield address, start_worker, processes
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
def test_address_scheduler_runs_on_the_workers_it_has(dask_scheduler, inputs, reference, tmp_path):
    address, start_worker, processes = dask_scheduler
    start_worker()
    run = CliRun(request(inputs, "address", Cluster={"scheduler": "address", "address": address}), cwd=tmp_path)
    assert run.wait() == 0, run.output
    assert_same_products(reference, inputs[0] / "address")
    assert f"Connected to the dask scheduler {address}" in run.output
    assert all(p.poll() is None for p in processes), "the scheduler and its worker outlive the run"


def test_address_scheduler_without_worker_exits_66_in_time(dask_scheduler, inputs, tmp_path):
    address, _, processes = dask_scheduler
    run = CliRun(request(inputs, "address-empty", Cluster={"scheduler": "address", "address": address,
                                                           "worker_timeout": 4}), cwd=tmp_path)
    assert run.wait(120) == 66, run.output
    assert "No dask worker joined the run within" in run.output
    assert f"start dask workers for {address}" in run.output
    assert processes[0].poll() is None

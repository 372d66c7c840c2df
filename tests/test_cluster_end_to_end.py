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

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shapely.ops import unary_union

from cluster_helpers import (
    CliRun,
    JobWatcher,
    assert_same_products,
    jobcomp,
    squeue,
    temporaries,
    tif_outputs,
    unique_job_name,
    wait_until,
)
from request_files import write_request
from s1tiling import grid
from s1tiling.samples.testing import build_product, write_dem_folder

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
def local_run(inputs):
    """The request run locally (2 worker processes, log files): the outputs every other run must match."""
    root, _ = inputs
    run = CliRun(request(inputs, "local", Processing={"nb_parallel_processes": 2, "mode": "Normal, logging"}),
                 cwd=root)
    assert run.wait() == 0, run.output
    assert len(tif_outputs(root / "local")) == 6
    return run


@pytest.fixture(scope="module")
def reference(inputs, local_run):
    return inputs[0] / "local"


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
def test_workers_lost_for_good_leave_their_tasks_reported_not_run(slurm, inputs, reference, tmp_path):
    """The partition goes down (maintenance) and the only worker job is cancelled mid-run: its
    replacement stays PENDING (PartitionDown); after worker_timeout the run stops, exit 66, naming the
    tasks not run; once the partition is back, a rerun produces them."""
    name = unique_job_name()
    cfg, env = slurm_request(inputs, "lost", name, jobs=1, worker_timeout=15)
    output = inputs[0] / "lost"
    run = CliRun(cfg, cwd=tmp_path, env=env)
    watcher = JobWatcher(name)
    wait_until(lambda: tif_outputs(output), 300, "first product", run=run)
    (victim,) = wait_until(watcher.running, 30, "running worker job", run=run)
    partition = ["scontrol", "update", "PartitionName=debug"]
    subprocess.run([*partition, "State=DOWN"], check=True)
    try:
        subprocess.run(["scancel", victim], check=True)
        code = watcher.follow(run)
    finally:
        subprocess.run([*partition, "State=UP"], check=True)
    assert code == 66, run.output
    assert "No dask worker came back within" in run.output and "PENDING (PartitionDown)" in run.output
    assert "not run: " in run.output and "Failed (" in run.output
    assert len(tif_outputs(output)) < 6
    assert wait_until(lambda: not squeue(name), 15, "empty queue")
    rerun = CliRun(cfg, cwd=tmp_path, env=env)
    assert rerun.wait() == 0, rerun.output
    assert_same_products(reference, output)


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


@pytest.mark.slow
def test_the_driver_job_example_runs_the_whole_request_in_slurm(slurm, inputs, reference, tmp_path):
    """examples/slurm_driver.sh: s1tiling itself in a batch job, submitting its worker jobs."""
    name = unique_job_name()
    cfg, env = slurm_request(inputs, "driver", name, jobs=1)
    script = Path(__file__).resolve().parents[1] / "examples" / "slurm_driver.sh"
    driver_name = f"{name}-driver"
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={driver_name}", "--time=00:20:00", "--mem=2G",
         f"--output={tmp_path}/driver-%j.log", str(script), str(cfg)],
        capture_output=True, text=True, cwd=tmp_path, check=True,
        env={**os.environ, **env, "S1TILING_VENV": sys.prefix})
    driver = submitted.stdout.strip().split(";")[0]
    state = wait_until(lambda: jobcomp(slurm.jobcomp, driver_name).get(driver), 600, "end of the driver job",
                       interval=1)
    log = (tmp_path / f"driver-{driver}.log").read_text()
    assert state == "COMPLETED", log
    assert f"s1tiling driver: job {driver}" in log and "Run report: 3 tasks: 3 done" in log
    assert set(jobcomp(slurm.jobcomp, name).values()) == {"CANCELLED"}  # its workers' jobs, ended by it
    assert_same_products(reference, inputs[0] / "driver")


def test_the_pbs_driver_example_says_how_it_is_run():
    """PBS is not packaged for Debian: its driver example is only read here."""
    text = (Path(__file__).resolve().parents[1] / "examples" / "pbs_driver.sh").read_text()
    directives = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#PBS ")]
    assert "-l select=1:ncpus=1:mem=4gb" in directives and any(d.startswith("-l walltime=") for d in directives)
    assert 'source "$S1TILING_VENV/bin/activate"' in text and 'exec s1tiling "$CONFIG"' in text
    assert subprocess.run(["bash", "-n", "-c", text]).returncode == 0


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
        wait_until(lambda: not squeue(name), 15, "empty queue")  # noqa: B023 - called within this iteration
        assert time.monotonic() - gone < 15
        assert set(jobcomp(slurm.jobcomp, name).values()) == {"CANCELLED"}
        assert not temporaries(inputs[0] / f"interrupted-{sig.name}")


def test_a_job_range_scales_up_with_the_work_and_down_when_the_queue_drains(slurm, tmp_path):
    """``jobs = 1-2``: dask-jobqueue's adapt(minimum_jobs=1, maximum_jobs=2): a second job while tasks
    wait, released once the queue is empty (the cluster still open), every job gone at the end."""
    import dask

    from s1tiling.scheduling import Task, executor_for, run_tasks
    from test_scheduling import make_settings

    name = unique_job_name()
    settings = make_settings(tmp_path, {"nb_parallel_processes": 1, "ram_per_process": 512},
                             {"scheduler": "slurm", "jobs": "1-2", "cores": 1, "processes": 1, "memory": "512MiB",
                              "walltime": "00:10:00", "worker_timeout": 120})
    watcher = JobWatcher(name)
    with dask.config.set({"jobqueue.slurm.name": name}), executor_for(settings, n_tasks=6) as client:
        import threading
        done = threading.Event()

        def watch():
            while not done.is_set():
                watcher.poll()
                time.sleep(0.3)
        thread = threading.Thread(target=watch)
        thread.start()
        try:
            report = run_tasks([Task(f"sleep/{i}", time.sleep, (4,)) for i in range(6)], settings, client=client)
        finally:
            done.set()
            thread.join()
        assert report.exit_code == 0
        running = [job for job, states in watcher.seen.items() if "RUNNING" in states]
        assert len(running) == 2, watcher.seen
        wait_until(lambda: len(squeue(name)) == 1, 60, "release of the idle job")
    assert wait_until(lambda: not squeue(name), 15, "empty queue")


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


# --------------------------------------------------------------------------- local runs


def test_a_local_run_shuts_its_workers_down_cleanly(inputs, local_run):
    """No 'Worker process still alive after 4.0 seconds, killing' (console or warnings log), and the
    dashboard is announced only when it works (bokeh importable), on loopback."""
    from importlib.util import find_spec

    # S1Tiling's warnings log, in the run's working directory (mode 'logging')
    errors_log = inputs[0] / "S1Processor-main.warning.log"
    for text in (local_run.output, errors_log.read_text()):
        assert "still alive" not in text and "killing" not in text
        assert "Traceback" not in text
    if find_spec("bokeh") is None:
        assert "dashboard" not in local_run.output.lower()
    else:
        assert "Dask dashboard: http://127.0.0.1:" in local_run.output


def test_a_single_task_runs_in_process_with_the_same_output(inputs, reference, tmp_path):
    """One tile, one pass: one task, no dask cluster (its start and stop would be most of the run)."""
    root, geoid = inputs
    cfg = write_request(root, "single", tiles="31TEL", first_date="2021-08-01", last_date="2021-08-31", geoid=geoid,
                        Processing={**PROCESSING, "nb_parallel_processes": 2})
    run = CliRun(cfg, cwd=tmp_path)
    assert run.wait() == 0, run.output
    assert "One task: run in this process, without a dask cluster" in run.output
    assert "LocalCluster" not in run.output
    single = tif_outputs(root / "single")
    assert sorted(single) == sorted(k for k in tif_outputs(reference) if k.startswith("31TEL/"))
    for key, path in single.items():
        import numpy as np
        import rasterio
        with rasterio.open(path) as a, rasterio.open(reference / key) as b:
            assert a.profile == b.profile and np.array_equal(a.read(), b.read()), key
            tags_a, tags_b = a.tags(), b.tags()
            tags_a.pop("TIFFTAG_DATETIME"), tags_b.pop("TIFFTAG_DATETIME")
            assert tags_a == tags_b, key



@pytest.mark.slow
def test_sigterm_stops_a_local_run_cleanly_and_a_rerun_completes_it(inputs, reference, tmp_path):
    """A real SIGTERM (what scancel, a walltime and docker stop send) in the middle of the tasks of a
    local run: exit 78 with 'Terminated by signal SIGTERM', no worker process left, no temporary file,
    no scratch folder; the rerun produces exactly the outputs of an undisturbed run."""
    root, _ = inputs
    cfg = request(inputs, "sigterm", Processing={"nb_parallel_processes": 2})
    output = root / "sigterm"
    run = CliRun(cfg, cwd=tmp_path)
    wait_until(lambda: temporaries(output), 120, "task writing its product", interval=0.05, run=run)
    run.signal(signal.SIGTERM)
    assert run.wait(60) == 78, run.output
    assert "Terminated by signal SIGTERM" in run.output
    assert run.group_gone(30), "dask worker processes outlived the run"
    assert not temporaries(output), temporaries(output)
    assert not list((root / "tmp").glob("s1tiling-*")), "the run's scratch folder was left"
    rerun = CliRun(cfg, cwd=tmp_path)
    assert rerun.wait() == 0, rerun.output
    assert_same_products(reference, output)

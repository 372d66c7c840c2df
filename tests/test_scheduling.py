"""The task-graph runner: same results on 1 and 2 worker processes, failures isolated, job scripts."""
import logging
import os
import re
import sys
import threading
import time
import types

import pytest

from s1tiling import progress as progress_events, scheduling
from s1tiling.config import load_config
from s1tiling.errors import ProductError
from s1tiling.scheduling import Task, executor_for, job_script, run_tasks, run_temporary_dir

pytest.importorskip("distributed")


# ---------------------------------------------------------------- toy task functions (top-level: picklable)

def square(x):
    return x * x


def total(inputs):
    return sum(inputs.values())


def write_number(path, inputs):
    value = sum(inputs.values())
    path.write_text(str(value), encoding="utf-8")
    return path


def broken(message):
    raise ProductError("S1A_IW_GRDH_FAKE", "annotation/s1a-iw-grd-vv.xml", message)


def interval(seconds):
    """(start, end) wall-clock times of a task that sleeps; used to see whether tasks overlapped."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def environment(name):
    return os.environ.get(name)


def say(text):
    logging.getLogger("s1tiling.tests").info(text)
    return text


# ---------------------------------------------------------------- settings from a request file

def make_settings(directory, processing=(), cluster=()):
    """Settings read by load_config from a request file with the given [Processing]/[Cluster] keys."""
    directory.mkdir(parents=True, exist_ok=True)
    sections = {
        "Paths": {"output": directory / "out", "s1_images": directory / "raw", "dem_dir": directory / "dem",
                  "tmp": directory / "tmp"},
        "DataSource": {"first_date": "2020-01-01", "last_date": "2020-01-31"},
        "Processing": {"tiles": "33NWB", **dict(processing)},
        "Cluster": dict(cluster),
    }
    text = "".join(f"[{name}]\n" + "".join(f"{k} : {v}\n" for k, v in keys.items())
                   for name, keys in sections.items())
    path = directory / "request.cfg"
    path.write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        try:
            import s1tiling.grid  # noqa: F401
        except ImportError:  # the tile grid module is not there yet: accept well-formed names
            fake = types.ModuleType("s1tiling.grid")
            fake.is_valid_tile_name = lambda name: bool(re.fullmatch(r"\d{2}[C-X][A-Z]{2}", name))
            patch.setitem(sys.modules, "s1tiling.grid", fake)
        return load_config(path)


@pytest.fixture(scope="module")
def settings1(tmp_path_factory):
    """One worker process with 2 threads (nb_otb_threads) and 1 GiB."""
    return make_settings(tmp_path_factory.mktemp("one"),
                         {"nb_parallel_processes": 1, "nb_otb_threads": 2, "ram_per_process": 1024})


@pytest.fixture(scope="module")
def settings2(tmp_path_factory):
    """Two worker processes with 1 thread and 1 GiB each."""
    return make_settings(tmp_path_factory.mktemp("two"),
                         {"nb_parallel_processes": 2, "nb_otb_threads": 1, "ram_per_process": 1024})


@pytest.fixture(scope="module")
def local1(settings1):
    with executor_for(settings1) as client:
        yield client


@pytest.fixture(scope="module")
def local2(settings2):
    with executor_for(settings2) as client:
        yield client


def numbers_graph(directory):
    """squares of 1..6, two partial sums, a total written to a file."""
    squares = [Task(f"square/{i}", square, (i,), kind="prepare") for i in range(1, 7)]
    low = Task("sum/low", total, deps=("square/1", "square/2", "square/3"), kind="ortho")
    high = Task("sum/high", total, deps=("square/4", "square/5", "square/6"), kind="ortho")
    out = Task("write/total", write_number, (directory / "total.txt",), deps=("sum/low", "sum/high"), kind="mask")
    return [*squares, low, high, out]


# ---------------------------------------------------------------- results

def test_one_and_two_processes_give_the_same_results(local1, local2, settings1, settings2, tmp_path):
    reports = {}
    for name, client, settings in (("one", local1, settings1), ("two", local2, settings2),
                                   ("sequential", "sequential", settings2)):
        (tmp_path / name).mkdir()
        report = run_tasks(numbers_graph(tmp_path / name), settings, client=client)
        assert report.exit_code == 0 and not report.failed and not report.skipped
        reports[name] = report

    expected = {f"square/{i}": i * i for i in range(1, 7)}
    expected.update({"sum/low": 1 + 4 + 9, "sum/high": 16 + 25 + 36})
    for name, report in reports.items():
        results = {key: outcome.result for key, outcome in report.outcomes.items()}
        assert results.pop("write/total") == tmp_path / name / "total.txt"
        assert results == expected
        assert (tmp_path / name / "total.txt").read_text() == "91"
        assert report.produced == [tmp_path / name / "total.txt"]
        assert str(tmp_path / name / "total.txt") in report.summary()


@pytest.mark.parametrize("executor", ["local2", "sequential"])
def test_a_failed_task_skips_its_dependents_only(executor, request, settings2):
    client = request.getfixturevalue(executor) if executor != "sequential" else "sequential"
    tasks = [
        Task("a", square, (3,)),
        Task("bad", broken, ("measurement file truncated",), deps=("a",), kind="ortho"),
        Task("after-bad", total, deps=("bad",), kind="mask"),
        Task("after-after-bad", total, deps=("after-bad", "a"), kind="quicklook"),
        Task("independent", square, (5,)),
        Task("after-a", total, deps=("a", "independent")),
    ]
    report = run_tasks(tasks, settings2, client=client)

    assert report.exit_code == 71  # the failed task's own code (a corrupt product), not a generic 66
    assert [o.key for o in report.done] == ["a", "independent", "after-a"]
    assert report["after-a"].result == 9 + 25
    (failed,) = report.failed
    assert failed.key == "bad" and failed.exit_code == 71  # ProductError's code survives the trip back
    assert failed.error.startswith("ProductError: S1A_IW_GRDH_FAKE") and "measurement file truncated" in failed.error
    assert "broken" in failed.details  # the traceback names the function that raised
    assert {o.key: o.error for o in report.skipped} == {
        "after-bad": "dependency bad failed", "after-after-bad": "dependency bad failed"}
    summary = report.summary()
    assert "1 failed" in summary and "2 skipped" in summary
    assert "bad: ProductError" in summary and "measurement file truncated" in summary


def test_a_worker_runs_one_task_at_a_time_unless_they_fit_in_its_memory(local1, settings1):
    """1 worker with 2 threads and 1024 MB: default tasks need ram_per_process, so they never overlap."""
    tasks = [Task(f"heavy/{i}", interval, (0.4,)) for i in range(2)]
    tasks.append(Task("bigger-than-any-worker", square, (2,), resources={"memory": 10 ** 6}))
    tasks.append(Task("threads", environment, ("NUMBA_NUM_THREADS",)))
    report = run_tasks(tasks, settings1, client=local1)
    assert report.exit_code == 0
    (s1, e1), (s2, e2) = report["heavy/0"].result, report["heavy/1"].result
    assert e1 <= s2 or e2 <= s1
    assert report["bigger-than-any-worker"].result == 4  # asked more than exists: runs, alone, anyway
    assert report["threads"].result == "2"  # nb_otb_threads


def test_tasks_of_a_limited_kind_do_not_overlap(local2, settings2):
    tasks = [Task(f"download/{i}", interval, (0.4,), kind="download") for i in range(2)]
    report = run_tasks(tasks, settings2, client=local2, limits={"download": 1})
    (s1, e1), (s2, e2) = (o.result for o in report.done)
    assert e1 <= s2 or e2 <= s1


def test_worker_logs_reach_the_main_process(local2, settings2, caplog):
    caplog.set_level(logging.INFO, logger="s1tiling")
    run_tasks([Task("say", say, ("hello from a worker",))], settings2, client=local2)
    assert any(r.name == "s1tiling.tests" and r.getMessage() == "hello from a worker" for r in caplog.records)


def test_progress_lines_are_logged_periodically(settings2, caplog, monkeypatch):
    monkeypatch.setattr(scheduling, "PROGRESS_LOG_INTERVAL", 0.05)
    caplog.set_level(logging.INFO, logger="s1tiling")
    tasks = [Task(f"wait/{i}", interval, (0.3,)) for i in range(2)]
    run_tasks(tasks, settings2, client="sequential", progress=False)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress: ")]
    assert progress and re.fullmatch(r"Progress: [012]/2 tasks finished \(\d done, 0 failed, 0 skipped\)"
                                     r"(, \d+% of the work, about \d+ s left)?", progress[0])


def stepwise(steps, seconds):
    """A task that reports its progress after each of its ``steps`` (as a maker does per block)."""
    for step in range(steps):
        time.sleep(seconds)
        progress_events.report(step + 1, steps)
    return steps


def _shares_before_the_end(caplog) -> list[int]:
    """The shares of the work (%) in the progress lines logged while no task had finished."""
    found = (re.fullmatch(r"Progress: 0/1 tasks finished \(0 done, 0 failed, 0 skipped\), (\d+)% of the work, "
                          r"about \d+ (s|min) left", r.getMessage()) for r in caplog.records)
    return [int(m.group(1)) for m in found if m]


@pytest.mark.parametrize("where", ["in process", "on a worker"])
def test_progress_within_a_task_moves_the_meter(where, local2, settings2, caplog, monkeypatch):
    """One task (one tile) that reports its blocks: the progress lines say how much of it is done,
    with the time left, long before it finishes; from a worker through dask's events."""
    monkeypatch.setattr(scheduling, "PROGRESS_LOG_INTERVAL", 0.2)
    caplog.set_level(logging.INFO, logger="s1tiling")
    client = "sequential" if where == "in process" else local2
    report = run_tasks([Task("tile", stepwise, (4, 1.2))], settings2, client=client, progress=False)
    assert report.exit_code == 0
    shares = _shares_before_the_end(caplog)
    assert shares, [r.getMessage() for r in caplog.records]
    assert all(0 < share < 100 for share in shares) and shares == sorted(shares)
    assert max(shares) >= 50  # 2 of 4 blocks reported at least


_HELD: list = []


def hold_memory(mib):
    """A task whose worker keeps ``mib`` MiB after it ends (as OTB's in-memory chain keeps its caches)."""
    import numpy as np

    _HELD.append(np.ones(mib * 2**20, dtype=np.uint8))
    return mib


def test_a_worker_holding_more_than_ram_per_process_still_runs_the_next_task(tmp_path):
    """ram_per_process is a hint (OTB's), not a cap: dask must neither pause the worker above 80 %
    of it (it would never get busy again: the run waited for ever) nor kill it above 95 %."""
    settings = make_settings(tmp_path, {"nb_parallel_processes": 1, "nb_otb_threads": 1, "ram_per_process": 300})
    tasks = [Task("hold", hold_memory, (280,)), Task("next", square, (3,), deps=("hold",)),
             Task("other", square, (4,))]
    result = {}
    runner = threading.Thread(target=lambda: result.update(report=run_tasks(tasks, settings, progress=False)),
                              daemon=True)
    runner.start()
    runner.join(300)
    assert not runner.is_alive(), "the run still waits on its worker after 300 s"
    report = result["report"]
    assert report.exit_code == 0, report.summary()


def test_connecting_to_a_running_scheduler(local2, tmp_path):
    settings = make_settings(tmp_path, cluster={"scheduler": "address", "address": local2.scheduler.address})
    with executor_for(settings) as client:
        report = run_tasks(numbers_graph(tmp_path), settings, client=client)
    assert report["sum/high"].result == 16 + 25 + 36
    assert local2.submit(square, 7).result() == 49  # the cluster outlives the connection


def test_bad_graphs_are_refused(settings2):
    with pytest.raises(ValueError, match="two tasks have the key 'a'"):
        run_tasks([Task("a", square, (1,)), Task("a", square, (2,))], settings2, client="sequential")
    with pytest.raises(ValueError, match="'missing'"):
        run_tasks([Task("a", total, deps=("missing",))], settings2, client="sequential")
    with pytest.raises(ValueError, match="cycle"):
        run_tasks([Task("a", total, deps=("b",)), Task("b", total, deps=("a",))], settings2, client="sequential")
    with pytest.raises(ValueError, match="memory"):
        Task("a", square, (1,), resources={"gpu": 1})


# ---------------------------------------------------------------- temporary directories

def test_run_temporary_directories_are_unique_and_removed(settings2):
    with run_temporary_dir(settings2) as first, run_temporary_dir(settings2) as second:
        assert first != second and first.is_dir() and second.is_dir()
        assert first.parent == second.parent == settings2.paths.tmp
        assert first.name.startswith("s1tiling-") and f"-{os.getpid()}-" in first.name
        (first / "partial.tif").write_bytes(b"x")
    assert not first.exists() and not second.exists()


def test_debug_mode_keeps_the_temporary_directory(tmp_path):
    settings = make_settings(tmp_path, {"mode": "debug"})
    with run_temporary_dir(settings) as path:
        pass
    assert path.is_dir()


# ---------------------------------------------------------------- batch job scripts

def directives(script, prefix):
    return [line[len(prefix):].strip() for line in script.splitlines() if line.startswith(prefix)]


@pytest.fixture
def batch_keys():
    return {"cores": 8, "memory": "32 GiB", "processes": 2, "walltime": "02:00:00",
            "queue": "short", "account": "s1proj", "job_extra_directives": "--qos=normal"}


def test_slurm_job_script(tmp_path, batch_keys):
    pytest.importorskip("dask_jobqueue")
    script = job_script(make_settings(tmp_path, {"nb_otb_threads": 4}, {"scheduler": "slurm", **batch_keys}))
    sbatch = directives(script, "#SBATCH")
    assert {"--cpus-per-task=8", "--mem=32G", "-t 02:00:00", "-p short", "-A s1proj", "--qos=normal"} <= set(sbatch)
    worker = next(line for line in script.splitlines() if "--nthreads" in line)  # the worker command
    # 2 worker processes of 8 / 2 threads and 32 GiB / 2 = 16384 MiB each
    assert "--nworkers 2" in worker and "--nthreads 4" in worker
    assert "--memory-limit 16.00GiB" in worker and "--resources memory=16384" in worker
    assert "export NUMBA_NUM_THREADS=4" in script.splitlines()


def test_pbs_job_script(tmp_path, batch_keys):
    pytest.importorskip("dask_jobqueue")
    script = job_script(make_settings(tmp_path, {}, {"scheduler": "pbs", **batch_keys}))
    pbs = directives(script, "#PBS")
    assert {"-l select=1:ncpus=8:mem=32GB", "-l walltime=02:00:00", "-q short", "-A s1proj"} <= set(pbs)


def test_batch_job_defaults_come_from_processing(tmp_path):
    """Without [Cluster] sizes, a job holds nb_parallel_processes workers of ram_per_process MiB."""
    pytest.importorskip("dask_jobqueue")
    settings = make_settings(tmp_path, {"nb_parallel_processes": 3, "nb_otb_threads": 2, "ram_per_process": 2048},
                             {"scheduler": "slurm"})
    script = job_script(settings)
    assert {"--cpus-per-task=6", "--mem=6G"} <= set(directives(script, "#SBATCH"))
    assert "--resources memory=2048" in script


# ---------------------------------------------------------------- batch jobs: directives, walltime, logs

def test_extra_directives_keep_their_commas(tmp_path):
    pytest.importorskip("dask_jobqueue")
    settings = make_settings(tmp_path, {}, {"scheduler": "slurm", "walltime": "01:00:00",
                                            "job_extra_directives": "--mail-type=END,FAIL\n  --exclude=n1,n2"})
    sbatch = directives(job_script(settings), "#SBATCH")
    assert "--mail-type=END,FAIL" in sbatch and "--exclude=n1,n2" in sbatch
    assert "FAIL" not in sbatch and "n2" not in sbatch  # never split into directives of their own


def test_unset_walltime_is_estimated_from_the_work_and_logged(tmp_path, caplog):
    pytest.importorskip("dask_jobqueue")
    caplog.set_level(logging.INFO, logger="s1tiling")
    settings = make_settings(tmp_path, {"nb_parallel_processes": 2}, {"scheduler": "slurm", "jobs": "1-3"})
    # 100 tasks on at most 3 jobs x 2 workers: 17 waves + 1 of 10 min = 3 h
    options = scheduling._batch_job_options(settings, n_tasks=100)
    assert options["walltime"] == "03:00:00"
    assert "walltime is not set: each worker job asks for 03:00:00" in caplog.text
    assert scheduling._batch_job_options(settings, n_tasks=2)["walltime"] == "01:00:00"  # at least 1 h
    assert scheduling._batch_job_options(settings, n_tasks=10 ** 5)["walltime"] == "12:00:00"  # at most 12 h
    given = make_settings(tmp_path / "given", {}, {"scheduler": "pbs", "walltime": "2-00:00:00"})
    assert scheduling._batch_job_options(given, n_tasks=100)["walltime"] == "48:00:00"  # PBS: HH:MM:SS only
    assert "-t 01:00:00" in directives(job_script(settings), "#SBATCH")  # job_script: work unknown


def test_job_script_sends_logs_to_the_run_folder_and_keeps_malloc_dynamic(tmp_path):
    pytest.importorskip("dask_jobqueue")
    settings = make_settings(tmp_path, {}, {"scheduler": "slurm", "walltime": "10"})
    folder = scheduling.worker_log_folder(settings)
    assert folder.parent == tmp_path / "out" / "_WORKER_LOGS" and folder.name.endswith(f"-{os.getpid()}")
    with scheduling._batch_cluster(settings, log_directory=folder) as cluster:
        script = cluster.job_script()
    assert f"-o {folder}/dask-worker-%J.out" in " ".join(directives(script, "#SBATCH"))
    assert "MALLOC_TRIM_THRESHOLD_': None" in script  # the worker's nanny does not set it
    assert "dashboard_address" not in script
    assert cluster.scheduler_spec["options"]["dashboard_address"] == "127.0.0.1:0"


def test_importing_dask_jobqueue_keeps_the_sigint_handler(tmp_path):
    """dask_jobqueue 0.9's import sets SIGINT's handler to sys.exit (Ctrl-C -> status 0, no cleanup):
    through s1tiling, a SIGINT still raises KeyboardInterrupt."""
    pytest.importorskip("dask_jobqueue")
    code = """
import os, signal, sys
from s1tiling import progress as progress_events
from s1tiling import scheduling
class Settings:
    config_file = 'x.cfg'
    class cluster:
        scheduler = 'slurm'
scheduling._import_jobqueue(Settings)
try:
    os.kill(os.getpid(), signal.SIGINT)
    import time; time.sleep(5)
except KeyboardInterrupt:
    print('KeyboardInterrupt')
"""
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "KeyboardInterrupt", out.stdout + out.stderr


# ---------------------------------------------------------------- local cluster: dashboard, environment

def _can_connect(host, port):
    import socket
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _dashboard_port(client):
    return client.scheduler_info()["services"]["dashboard"]


def test_dashboard_listens_on_loopback_only_by_default(local2, tmp_path):
    from distributed.utils import get_ip
    ip = get_ip()
    if ip.startswith("127."):
        pytest.skip("this machine has no address other than loopback")
    port = _dashboard_port(local2)
    assert port != 8787 and _can_connect("127.0.0.1", port) and not _can_connect(ip, port)
    settings = make_settings(tmp_path, {"nb_parallel_processes": 2}, {"dashboard_address": "0.0.0.0:0"})
    with executor_for(settings) as client:  # opted in: every interface
        port = _dashboard_port(client)
        assert _can_connect(ip, port)


def test_workers_run_without_malloc_trim_threshold(local2, settings2):
    """distributed sets MALLOC_TRIM_THRESHOLD_=65536 in its workers (glibc then maps and unmaps every
    large numpy temporary: ~40% slower stages); our workers do not get it."""
    report = run_tasks([Task("env", environment, ("MALLOC_TRIM_THRESHOLD_",)),
                        Task("threads", environment, ("NUMBA_NUM_THREADS",))], settings2, client=local2)
    assert report["env"].result is None and report["threads"].result == "1"


def test_more_threads_than_cores_is_warned_once(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="s1tiling")
    monkeypatch.setattr(scheduling, "_oversubscription_warned", False)
    monkeypatch.setattr(scheduling, "available_cores", lambda: 2)
    settings = make_settings(tmp_path, {"nb_parallel_processes": 2, "nb_otb_threads": 2, "ram_per_process": 512})
    for _ in range(2):
        run_tasks([Task("one", square, (3,))], settings)  # one task: in this process
        scheduling._warn_oversubscription(settings, 2)
    warnings = [r.getMessage() for r in caplog.records if "threads for 2 cores" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 x 2 = 4 threads for 2 cores" in warnings[0] and "each running slower" in warnings[0]


def test_a_single_task_runs_in_this_process(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="s1tiling")
    settings = make_settings(tmp_path, {"nb_parallel_processes": 2})
    report = run_tasks([Task("pid", os.getpid)], settings)
    assert report["pid"].result == os.getpid()
    assert "without a dask cluster" in caplog.text


# ---------------------------------------------------------------- scratch folders of dead runs

def _dead_pid():
    import subprocess
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_scratch_folders_of_dead_runs_are_removed_on_any_host(tmp_path):
    settings = make_settings(tmp_path, {})
    tmp = settings.paths.tmp
    host = scheduling._host()
    dead = tmp / f"s1tiling-{host}-{_dead_pid()}-0123456789ab"
    alive = tmp / f"s1tiling-{host}-{os.getpid()}-0123456789ab"
    other_dead = tmp / "s1tiling-node-17.cluster-4242-0123456789ab"  # another host, no heartbeat for 2 h
    other_alive = tmp / "s1tiling-node-18-4242-0123456789ab"         # another host, heartbeat just now
    kept = tmp / f"s1tiling-{host}-{_dead_pid()}-ba9876543210"       # a debug run's, kept on purpose
    unrelated = tmp / "s1tiling-notes"
    for folder in (dead, alive, other_dead, other_alive, kept, unrelated):
        (folder / "dask-scratch-space").mkdir(parents=True)
        (folder / scheduling.HEARTBEAT).touch()
    old = time.time() - 2 * 3600
    os.utime(other_dead / scheduling.HEARTBEAT, (old, old))
    (kept / scheduling._KEEP).touch()
    with run_temporary_dir(settings) as mine:
        assert mine.is_dir() and (mine / scheduling.HEARTBEAT).exists()
        assert not dead.exists() and not other_dead.exists()
        assert alive.exists() and other_alive.exists() and kept.exists() and unrelated.exists()
    assert not mine.exists()


from distributed import WorkerPlugin  # noqa: E402


class SlowExit(WorkerPlugin):
    """A worker plugin whose teardown takes 6 s (a worker flushing to a slow file system, or a loaded
    machine): dask's own close gives a worker 4 s, then kills it."""

    name = "slow-exit"

    def setup(self, worker):
        pass

    def teardown(self, worker):
        time.sleep(6)


def test_workers_are_given_time_to_exit_cleanly(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, {"nb_parallel_processes": 1, "ram_per_process": 512})
    with executor_for(settings) as client:
        client.register_plugin(SlowExit())
        (pid,) = client.run(os.getpid).values()
        assert run_tasks([Task("a", square, (4,))], settings, client=client)["a"].result == 16
    assert not scheduling._pid_alive(pid) or scheduling._zombie(pid)
    assert "still alive" not in caplog.text and "killing" not in caplog.text

"""Runs a graph of tasks with dask.distributed, on this machine or on a cluster.

The pipeline describes its work as :class:`Task` objects (a top-level function, its
arguments and the keys of the tasks it needs) and hands them to :func:`run_tasks`,
which returns a :class:`RunReport`.  A failed task does not stop the others: the
tasks that need it are *skipped*, every other branch goes on::

    tasks = [Task("download/S1A_X", download, (settings, "S1A_X"), kind="download"),
             Task("ortho/33NWB/S1A_X", orthorectify, (settings, "33NWB"),
                  deps=("download/S1A_X",), kind="ortho")]
    report = run_tasks(tasks, settings)
    print(report.summary()); sys.exit(report.exit_code)   # 66 when a task failed

Conventions for task functions:

- ``func`` is a top-level (picklable) function called as ``func(*args, **kwargs)``.
  When it has a parameter named ``inputs`` it also receives ``inputs={dep_key: result}``
  (the return values of its dependencies); otherwise dependencies only order the work.
- Return small values (paths, lists of paths: they are listed as produced); big
  arrays belong in files.  Raise to fail; an :class:`~s1tiling.errors.S1TilingError`
  keeps its exit code in :attr:`TaskOutcome.exit_code`.
- ``resources={"memory": MB}`` states the memory a task needs (default
  ``ram_per_process``): a worker runs several tasks at once only while their needs fit
  in its memory, so by default each worker runs one task at a time and that task may use
  ``nb_otb_threads`` threads (``OMP_NUM_THREADS``/``NUMBA_NUM_THREADS`` are set so).
  At most ``nb_parallel_downloads`` tasks of kind 'download' run at once (``limits``).

Where tasks run (:func:`executor_for`, ``[Cluster] scheduler``): ``local`` starts a
``LocalCluster`` of ``nb_parallel_processes`` worker processes with ``ram_per_process``
MiB each; ``slurm``/``pbs`` submit ``jobs`` batch jobs of dask workers through
dask-jobqueue; ``address`` connects to a running dask scheduler.  For debugging,
``run_tasks(..., client="sequential")`` runs everything in this process, in order
(breakpoints and tracebacks work as usual).
"""
from __future__ import annotations

import contextlib
import graphlib
import inspect
import logging
import os
import shutil
import socket
import sys
import threading
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, ExitCode, MissingApplicationError, S1TilingError

if TYPE_CHECKING:  # dask's modules are imported when a run needs them
    from dask_jobqueue import JobQueueCluster
    from distributed import Client

    from .config import Settings

logger = logging.getLogger(__name__)

#: Seconds between two progress lines in the logs.
PROGRESS_LOG_INTERVAL = 60.0
#: The logger whose records are forwarded from the dask workers to this process.
FORWARDED_LOGGER = "s1tiling"
SEQUENTIAL = "sequential"
_MiB = 2 ** 20


# ---------------------------------------------------------------------------- tasks

@dataclass(frozen=True, eq=False)
class Task:
    """One unit of work: ``func(*args, **kwargs)`` once the tasks named in ``deps`` succeeded."""

    key: str
    func: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    kind: str = "task"
    resources: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"task key must be a non-empty string, got {self.key!r}")
        if not callable(self.func):
            raise ValueError(f"task {self.key}: func {self.func!r} is not callable")
        if isinstance(self.deps, str):
            raise ValueError(f"task {self.key}: deps must be a sequence of keys, got the string {self.deps!r}")
        object.__setattr__(self, "deps", tuple(dict.fromkeys(self.deps)))
        object.__setattr__(self, "args", tuple(self.args))
        unknown = set(self.resources or ()) - {"memory"}
        if unknown:
            raise ValueError(f"task {self.key}: unknown resources {sorted(unknown)} (only 'memory', in MB)")
        if "inputs" in self.kwargs:
            raise ValueError(f"task {self.key}: 'inputs' is reserved for the results of the dependencies")


@dataclass(frozen=True)
class TaskOutcome:
    """What became of a task: ``status`` is 'done', 'failed' or 'skipped'."""

    key: str
    kind: str
    status: str
    result: Any = None
    error: str | None = None        # failed: "ErrorType: message"; skipped: why
    exit_code: int | None = None    # failed: the S1TilingError's exit code, else 66
    details: str | None = None      # failed: the traceback, as text


class TaskFailure(Exception):
    """A task's exception turned into plain text, so that it always travels back from a worker."""

    def __init__(self, error: str, exit_code: int, details: str):
        super().__init__(error, exit_code, details)
        self.error, self.exit_code, self.details = error, exit_code, details

    def __str__(self) -> str:
        return self.error

    @classmethod
    def from_exception(cls, err: BaseException) -> TaskFailure:
        code = int(err.exit_code) if isinstance(err, S1TilingError) else int(ExitCode.TASKS_FAILED)
        return cls(f"{type(err).__name__}: {err}", code, "".join(traceback.format_exception(err)))


def _wants_inputs(func: Callable) -> bool:
    try:
        parameter = inspect.signature(func).parameters.get("inputs")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


def _execute(func, args, kwargs, inputs, log_level=None):
    """Runs one task (on a worker); any exception comes out as a :class:`TaskFailure`."""
    if log_level is not None:
        logging.getLogger(FORWARDED_LOGGER).setLevel(log_level)
    try:
        if inputs is None:
            return func(*args, **kwargs)
        return func(*args, inputs=inputs, **kwargs)
    except Exception as err:  # noqa: BLE001 - every failure is reported, none stops the run
        failure = TaskFailure.from_exception(err)
    raise failure  # outside the except block: the original exception (maybe unpicklable) is not chained


# ---------------------------------------------------------------------------- report

def _paths_in(value) -> list[Path]:
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [path for item in value for path in _paths_in(item)]
    return []


#: Exit codes from the most specific (what a supervisor must fix first) to the least: a run whose failures
#: have different codes ends with the first of them in this order (66, "some task failed", is the last).
EXIT_CODE_PRIORITY = (
    ExitCode.OUTPUT_DISK_FULL, ExitCode.CACHE_DISK_FULL, ExitCode.MISSING_APPLICATION, ExitCode.MISSING_GEOID,
    ExitCode.MISSING_DEM, ExitCode.CONFIG_ERROR, ExitCode.CORRUPT_PRODUCT, ExitCode.DOWNLOAD_ERROR,
    ExitCode.OFFLINE_TIMEOUT, ExitCode.NO_PRODUCT_FOUND, ExitCode.NO_PRODUCT_INTERSECTS, ExitCode.TASKS_FAILED,
)


def most_specific_exit_code(codes: Iterable[int]) -> int:
    """The status of a run from those of its failures (0s are successes): their own code when they
    share one, else the first of :data:`EXIT_CODE_PRIORITY` among them; 0 when nothing failed."""
    failed = {int(code) for code in codes if code}
    if not failed:
        return int(ExitCode.OK)
    if len(failed) == 1:
        return failed.pop()
    rank = {int(code): n for n, code in enumerate(EXIT_CODE_PRIORITY)}
    return min(failed, key=lambda code: (rank.get(code, -1), code))


class RunReport:
    """Outcome of every task of a run, in the order the tasks were given."""

    def __init__(self, outcomes: Iterable[TaskOutcome]):
        self.outcomes: dict[str, TaskOutcome] = {o.key: o for o in outcomes}

    def __getitem__(self, key: str) -> TaskOutcome:
        return self.outcomes[key]

    def __len__(self) -> int:
        return len(self.outcomes)

    def _with(self, status: str) -> list[TaskOutcome]:
        return [o for o in self.outcomes.values() if o.status == status]

    @property
    def done(self) -> list[TaskOutcome]:
        return self._with("done")

    @property
    def failed(self) -> list[TaskOutcome]:
        return self._with("failed")

    @property
    def skipped(self) -> list[TaskOutcome]:
        return self._with("skipped")

    @property
    def produced(self) -> list[Path]:
        """The paths returned by the tasks that succeeded (a path, or a list of paths)."""
        return [path for o in self.done for path in _paths_in(o.result)]

    @property
    def exit_code(self) -> int:
        """0, or the failed tasks' own exit code when they share one (a full disk: 69...), else the most
        specific of theirs (:func:`most_specific_exit_code`); 66 for failures without one."""
        return most_specific_exit_code(o.exit_code or ExitCode.TASKS_FAILED for o in self.failed)

    def totals(self) -> str:
        return (f"{len(self)} tasks: {len(self.done)} done, {len(self.failed)} failed, "
                f"{len(self.skipped)} skipped")

    def summary(self) -> str:
        """The final report: files produced, tasks failed (with their error) and skipped (with why)."""
        lines = [f"Run report: {self.totals()}"]
        produced = self.produced
        if produced:
            lines.append(f"Produced ({len(produced)} files):")
            lines += [f"  {path}" for path in produced]
        for title, outcomes in (("Failed", self.failed), ("Skipped", self.skipped)):
            if outcomes:
                lines.append(f"{title} ({len(outcomes)} tasks):")
                lines += [f"  {o.key}: {o.error}" for o in outcomes]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- graph

class _Graph:
    """Dependency bookkeeping shared by the sequential and the distributed runs."""

    def __init__(self, tasks: Iterable[Task]):
        self.tasks: dict[str, Task] = {}
        for task in tasks:
            if task.key in self.tasks:
                raise ValueError(f"two tasks have the key {task.key!r}")
            self.tasks[task.key] = task
        self.children: dict[str, list[str]] = {key: [] for key in self.tasks}
        for task in self.tasks.values():
            for dep in task.deps:
                if dep not in self.tasks:
                    raise ValueError(f"task {task.key} depends on {dep!r}, which is not a task of the graph")
                self.children[dep].append(task.key)
        try:
            self.order = tuple(graphlib.TopologicalSorter(
                {key: task.deps for key, task in self.tasks.items()}).static_order())
        except graphlib.CycleError as err:
            raise ValueError(f"the tasks depend on each other in a cycle: {' -> '.join(err.args[1])}") from None
        self.depth: dict[str, int] = {}
        for key in self.order:
            self.depth[key] = 1 + max((self.depth[d] for d in self.tasks[key].deps), default=-1)
        self.waiting = {key: len(task.deps) for key, task in self.tasks.items()}
        self.outcomes: dict[str, TaskOutcome] = {}

    def roots(self) -> list[str]:
        return [key for key in self.order if not self.tasks[key].deps]

    def record(self, outcome: TaskOutcome) -> tuple[list[str], list[TaskOutcome]]:
        """Records a finished task; returns the keys now ready to run and the tasks now skipped."""
        self.outcomes[outcome.key] = outcome
        ready, skipped = [], []
        for child in self.children[outcome.key]:
            self.waiting[child] -= 1
            if outcome.status == "done" and self.waiting[child] == 0 and child not in self.outcomes:
                ready.append(child)
        if outcome.status == "failed":
            stack = list(self.children[outcome.key])
            while stack:
                key = stack.pop()
                if key not in self.outcomes:
                    skip = TaskOutcome(key, self.tasks[key].kind, "skipped",
                                       error=f"dependency {outcome.key} failed")
                    self.outcomes[key] = skip
                    skipped.append(skip)
                    stack.extend(self.children[key])
        return ready, skipped

    def report(self) -> RunReport:
        return RunReport(self.outcomes[key] for key in self.tasks)


# ---------------------------------------------------------------------------- progress

class _ConsoleBarHandler(logging.Handler):
    """Writes log lines above the progress bar (same level, format and filters as the one it replaces)."""

    def __init__(self, replaced: logging.Handler, write: Callable[[str], None]):
        super().__init__(replaced.level)
        self.setFormatter(replaced.formatter)
        self.filters = list(replaced.filters)
        self._write = write

    def emit(self, record):
        try:
            self._write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


class _Progress:
    """Counts finished tasks; a tqdm bar on a terminal, and a log line every PROGRESS_LOG_INTERVAL s."""

    def __init__(self, total: int, bar: bool | None):
        self.total = total
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._bar = None
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []
        if bar is None:
            bar = sys.stderr.isatty()
        if bar and find_spec("tqdm"):
            from tqdm import tqdm
            self._bar = tqdm(total=total, unit="task", file=sys.stderr, dynamic_ncols=True)
            self._redirect_console_logging(lambda text: tqdm.write(text, file=sys.stderr))
        self._thread = threading.Thread(target=self._log_periodically, name="s1tiling-progress", daemon=True)
        self._thread.start()

    def _redirect_console_logging(self, write):
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.stdout):
                above_bar = _ConsoleBarHandler(handler, write)
                root.removeHandler(handler)
                root.addHandler(above_bar)
                self._swapped.append((handler, above_bar))

    def line(self) -> str:
        c = self.counts
        return (f"{sum(c.values())}/{self.total} tasks finished "
                f"({c['done']} done, {c['failed']} failed, {c['skipped']} skipped)")

    def _log_periodically(self):
        while not self._stop.wait(PROGRESS_LOG_INTERVAL):
            logger.info("Progress: %s", self.line())

    def add(self, outcomes: Iterable[TaskOutcome]):
        for outcome in outcomes:
            self.counts[outcome.status] += 1
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(failed=self.counts["failed"], skipped=self.counts["skipped"], refresh=False)

    def close(self):
        self._stop.set()
        self._thread.join()
        if self._bar is not None:
            self._bar.close()
        root = logging.getLogger()
        for original, above_bar in self._swapped:
            root.removeHandler(above_bar)
            root.addHandler(original)


# ---------------------------------------------------------------------------- running

def _outcome_of(task: Task, call: Callable[[], Any]) -> TaskOutcome:
    """Runs ``call`` (which returns the task's result or raises) and describes what happened."""
    try:
        return TaskOutcome(task.key, task.kind, "done", result=call())
    except TaskFailure as failure:
        return TaskOutcome(task.key, task.kind, "failed", error=failure.error,
                           exit_code=failure.exit_code, details=failure.details)
    except Exception as err:  # noqa: BLE001 - dask's own failures: worker killed, future cancelled...
        return TaskOutcome(task.key, task.kind, "failed", error=f"{type(err).__name__}: {err}",
                           exit_code=int(ExitCode.TASKS_FAILED))


def _log_failure(outcome: TaskOutcome) -> None:
    if outcome.status == "failed":
        logger.error("Task %s failed: %s", outcome.key, outcome.error)
        if outcome.details:
            logger.debug("Task %s failed:\n%s", outcome.key, outcome.details)


def _run_sequentially(graph: _Graph, progress: _Progress) -> None:
    for key in graph.order:
        if key in graph.outcomes:  # skipped
            continue
        task = graph.tasks[key]
        inputs = {d: graph.outcomes[d].result for d in task.deps} if _wants_inputs(task.func) else None
        # called at once by _outcome_of, within this iteration
        outcome = _outcome_of(task, lambda: _execute(task.func, task.args, task.kwargs, inputs))  # noqa: B023
        _log_failure(outcome)
        _, skipped = graph.record(outcome)
        progress.add([outcome, *skipped])


def _worker_memory_budget(client: Client) -> int | None:
    """The smallest 'memory' resource (MB) of the workers, None when they do not all declare one."""
    workers = client.scheduler_info()["workers"]
    if not workers:
        logger.info("Waiting for a first dask worker (batch jobs may still be queued)")
        client.wait_for_workers(1)
        workers = client.scheduler_info()["workers"]
    budgets = [info.get("resources", {}).get("memory") for info in workers.values()]
    if any(budget is None for budget in budgets):
        logger.info("The dask workers declare no 'memory' resource: each runs as many tasks as it has threads")
        return None
    return int(min(budgets))


def _run_distributed(graph: _Graph, client: Client, settings: Settings, progress: _Progress,
                     limits: Mapping[str, int]) -> None:
    from distributed import as_completed

    budget = _worker_memory_budget(client)
    default_need = settings.processing.ram_per_process
    log_level = logging.getLogger(FORWARDED_LOGGER).getEffectiveLevel()
    run_id = uuid.uuid4().hex[:8]

    live: dict[str, Any] = {}          # task key -> Future, kept while a dependent may still need it
    owner: dict[Any, str] = {}         # dask key -> task key
    launched: set[str] = set()
    running: Counter[str] = Counter()  # kind -> tasks submitted and not finished
    held: dict[str, deque[str]] = {kind: deque() for kind in limits}  # ready tasks waiting for a slot of their kind
    finished = as_completed(loop=client.loop)

    def launch(key: str) -> None:
        task = graph.tasks[key]
        if task.kind in limits and running[task.kind] >= limits[task.kind]:
            held[task.kind].append(key)
            return
        inputs = {d: live[d] for d in task.deps} if _wants_inputs(task.func) else None
        resources = None
        if budget is not None:
            resources = {"memory": min(budget, (task.resources or {}).get("memory", default_need))}
        future = client.submit(_execute, task.func, task.args, dict(task.kwargs), inputs, log_level,
                               key=f"{task.kind}-{task.key}-{run_id}", priority=graph.depth[key],
                               resources=resources, pure=False)
        live[key], owner[future.key] = future, key
        launched.add(key)
        running[task.kind] += 1
        finished.add(future)

    def settled(key: str) -> bool:
        return all(c in launched or c in graph.outcomes for c in graph.children[key])

    client.forward_logging(FORWARDED_LOGGER, level=log_level)
    try:
        for key in graph.roots():
            launch(key)
        for future in finished:
            key = owner.pop(future.key)
            task = graph.tasks[key]
            running[task.kind] -= 1
            outcome = _outcome_of(task, future.result)
            _log_failure(outcome)
            ready, skipped = graph.record(outcome)
            progress.add([outcome, *skipped])
            if held.get(task.kind):
                launch(held[task.kind].popleft())
            for child in ready:
                launch(child)
            skipped_deps = (d for skip in skipped for d in graph.tasks[skip.key].deps)
            for done_key in {key, *task.deps, *skipped_deps}:
                if done_key in graph.outcomes and settled(done_key):
                    live.pop(done_key, None)  # its result is no longer needed on the workers
            del future  # nor held while waiting for the next one (dask would recompute it if lost)
    except BaseException:  # interrupted: nothing more of this run must go on
        client.cancel(list(live.values()))
        raise
    finally:
        live.clear()
        client.unforward_logging(FORWARDED_LOGGER)


def run_tasks(tasks: Iterable[Task], settings: Settings, *, client: Client | str | None = None,
              progress: bool | None = None,
              limits: Mapping[str, int] | None = None) -> RunReport:
    """Runs the tasks, each after its dependencies; returns the outcome of every one.

    ``client``: a ``distributed.Client`` to use, ``"sequential"`` to run in this process,
    or None to start the executor of ``settings`` (:func:`executor_for`) for this call.
    ``progress``: True for a progress bar, False for log lines only, None for a bar on a
    terminal.  ``limits``: the most tasks of a kind running at once (default: at most
    ``nb_parallel_downloads`` 'download' tasks).
    """
    graph = _Graph(tasks)
    if limits is None:
        limits = {"download": settings.data_source.nb_parallel_downloads}
    meter = _Progress(len(graph.tasks), progress)
    try:
        if client == SEQUENTIAL:
            _run_sequentially(graph, meter)
        elif client is not None:  # (the one str client, SEQUENTIAL, is handled above)
            _run_distributed(graph, client, settings, meter, limits)  # type: ignore[arg-type]
        else:
            with executor_for(settings) as own_client:
                _run_distributed(graph, own_client, settings, meter, limits)
    finally:
        meter.close()
    report = graph.report()
    logger.info("Finished: %s", report.totals())
    return report


# ---------------------------------------------------------------------------- temporary files

@contextlib.contextmanager
def run_temporary_dir(settings: Settings) -> Iterator[Path]:
    """A new directory ``{tmp}/s1tiling-<host>-<pid>-<random>``, removed on exit (kept in debug mode).

    Concurrent runs, on one machine or on a cluster, never share temporary files.
    """
    name = f"s1tiling-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path = Path(settings.paths.tmp) / name
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        if "debug" in settings.processing.mode or settings.processing.debug_caches:
            logger.info("Temporary files kept in %s (debug mode or --debug-caches)", path)
        else:
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------- executors

def _worker_environment(settings: Settings) -> dict[str, str]:
    """Thread counts of the numerical libraries inside a worker: nb_otb_threads per task."""
    threads = str(settings.processing.nb_otb_threads)
    return {name: threads for name in
            ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def _memory_bytes(text: str) -> int:
    """'32 GiB' -> bytes; a bare number is in MB (MiB), as ram_per_process."""
    from dask.utils import parse_bytes
    text = text.strip()
    return int(float(text) * _MiB) if text.replace(".", "", 1).isdigit() else parse_bytes(text)


def _batch_job_options(settings: Settings) -> dict[str, Any]:
    """dask-jobqueue keyword arguments from [Cluster] and [Processing]; unset keys keep dask's config."""
    import dask

    cluster, processing = settings.cluster, settings.processing
    name = cluster.scheduler
    processes = cluster.processes or processing.nb_parallel_processes
    cores = cluster.cores or processes * processing.nb_otb_threads
    memory = _memory_bytes(cluster.memory) if cluster.memory else processes * processing.ram_per_process * _MiB
    if cores < processes:
        raise ConfigurationError(f"{settings.config_file}: [Cluster] cores = {cores}: expected at least "
                                 f"as many cores as worker processes per job ({processes})")
    exports = [f"export {k}={v}" for k, v in _worker_environment(settings).items()]
    options = {
        "cores": cores,
        "processes": processes,
        "memory": f"{memory // _MiB}MiB",
        "queue": cluster.queue,
        "account": cluster.account,
        "walltime": cluster.walltime,
        "local_directory": str(cluster.local_directory) if cluster.local_directory else None,
        "job_extra_directives": list(cluster.job_extra_directives) or None,
        "job_script_prologue": list(dask.config.get(f"jobqueue.{name}.job-script-prologue") or []) + exports,
        "worker_extra_args": list(dask.config.get(f"jobqueue.{name}.worker-extra-args") or [])
        + ["--resources", f"memory={memory // processes // _MiB}"],
    }
    return {key: value for key, value in options.items() if value is not None}


def _batch_cluster(settings: Settings) -> JobQueueCluster:
    """A dask-jobqueue SLURMCluster or PBSCluster (no job submitted yet)."""
    try:
        import dask_jobqueue
    except ImportError:
        raise MissingApplicationError(
            f"{settings.config_file}: [Cluster] scheduler = {settings.cluster.scheduler} needs dask-jobqueue: "
            "pip install 's1tiling[cluster]'") from None
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[settings.cluster.scheduler]
    return cls(**_batch_job_options(settings))


def job_script(settings: Settings) -> str:
    """The batch script dask-jobqueue would submit for ``[Cluster] scheduler = slurm|pbs``; submits nothing."""
    if settings.cluster.scheduler not in ("slurm", "pbs"):
        raise ValueError(f"no job script for [Cluster] scheduler = {settings.cluster.scheduler}")
    with _batch_cluster(settings) as cluster:
        return cluster.job_script()


def _log_dashboard(client: Client) -> None:
    if "dashboard" in client.scheduler_info().get("services", {}):
        logger.info("Dask dashboard: %s", client.dashboard_link)
    else:
        logger.info("Dask dashboard unavailable (install bokeh to get it)")


@contextlib.contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Only dask's warnings and errors in our logs (its INFO lines are for debug mode)."""
    dask_logger = logging.getLogger("distributed")
    level = dask_logger.level
    dask_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        dask_logger.setLevel(level)


@contextlib.contextmanager
def executor_for(settings: Settings) -> Iterator[Client]:
    """A ``distributed.Client`` on the cluster ``[Cluster] scheduler`` names; closed (with its cluster) on exit."""
    from distributed import Client, LocalCluster

    cluster_settings, processing = settings.cluster, settings.processing
    with contextlib.ExitStack() as stack:
        if "debug" not in processing.mode:
            stack.enter_context(_quiet_dask_logs())
        if cluster_settings.scheduler == "address":
            try:
                client = stack.enter_context(Client(cluster_settings.address, set_as_default=False))
            except OSError as err:
                raise ConfigurationError(f"{settings.config_file}: [Cluster] address = "
                                         f"{cluster_settings.address!r}: cannot reach the dask scheduler: {err}"
                                         ) from err
            logger.info("Connected to the dask scheduler %s", cluster_settings.address)
        elif cluster_settings.scheduler == "local":
            workspace = cluster_settings.local_directory or stack.enter_context(run_temporary_dir(settings))
            cluster = stack.enter_context(LocalCluster(
                n_workers=processing.nb_parallel_processes,
                threads_per_worker=processing.nb_otb_threads,
                memory_limit=processing.ram_per_process * _MiB,
                resources={"memory": processing.ram_per_process},
                processes=True,
                dashboard_address=":0",  # a free port: several runs may share the machine
                local_directory=str(workspace),
                env=_worker_environment(settings),
            ))
            client = stack.enter_context(Client(cluster, set_as_default=False))
            logger.info("Dask LocalCluster: %d worker processes (%d threads, %d MiB each)",
                        processing.nb_parallel_processes, processing.nb_otb_threads, processing.ram_per_process)
        else:
            cluster = stack.enter_context(_batch_cluster(settings))
            logger.debug("Batch job script:\n%s", cluster.job_script())
            cluster.scale(jobs=cluster_settings.jobs)
            client = stack.enter_context(Client(cluster, set_as_default=False))
            logger.info("Submitted %d %s job(s) of dask workers", cluster_settings.jobs, cluster_settings.scheduler)
        _log_dashboard(client)
        yield client


# ---------------------------------------------------------------------------- task graphs

def task_graph_dot(tasks: Iterable[Task], title: str = "s1tiling") -> str:
    """The graph of ``tasks`` in graphviz's DOT language: one node per task (its key, coloured by
    kind), one edge per dependency (S1Tiling's ``--graphs``)."""
    colours = {"download": "lightblue", "calibrate": "khaki", "ortho": "palegreen", "lia": "plum", "ia": "plum",
               "gamma_area": "plum", "mask": "lightgrey", "quicklook": "lightgrey", "filtered": "lightsalmon"}

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {quoted(title)} {{", "  rankdir=LR;", "  node [shape=box, style=filled];"]
    for task in tasks:
        colour = colours.get(task.kind, "white")
        lines.append(f"  {quoted(task.key)} [fillcolor={colour}, tooltip={quoted(task.kind)}];")
        lines += [f"  {quoted(dep)} -> {quoted(task.key)};" for dep in task.deps]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_task_graph(tasks: Iterable[Task], directory, stem: str) -> list[Path]:
    """Write ``<stem>.dot`` in ``directory``, and ``<stem>.svg`` when graphviz's ``dot`` is installed;
    returns the files written."""
    import subprocess

    path = Path(directory) / f"{stem}.dot"
    path.write_text(task_graph_dot(list(tasks), stem), encoding="utf-8")
    written = [path]
    dot = shutil.which("dot")
    if dot is None:
        logger.info("Task graph written to %s (install graphviz for an SVG rendering)", path)
        return written
    svg = path.with_suffix(".svg")
    done = subprocess.run([dot, "-Tsvg", str(path), "-o", str(svg)], capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        written.append(svg)
        logger.info("Task graph written to %s and %s", path, svg)
    else:
        logger.warning("graphviz could not render %s: %s", path, done.stderr.strip()[:300])
    return written

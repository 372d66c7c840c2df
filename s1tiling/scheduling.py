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

import asyncio
import contextlib
import graphlib
import inspect
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import progress as progress_events
from .config import walltime_seconds
from .errors import ConfigurationError, ExitCode, MissingApplicationError, NoWorkerError, S1TilingError
from .writing import cleanup_stale_temporaries

if TYPE_CHECKING:  # dask's modules are imported when a run needs them
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


def _execute(func, args, kwargs, inputs, log_level=None, key=None, sink=None):
    """Runs one task (on a worker); any exception comes out as a :class:`TaskFailure`.

    ``sink``: where :func:`s1tiling.progress.report` sends the task's progress (None: as a dask
    event to the driver, :func:`s1tiling.progress.worker_sink`)."""
    if log_level is not None:
        logging.getLogger(FORWARDED_LOGGER).setLevel(log_level)
    start = time.perf_counter()
    logger.debug("Task %s started (process %d)", key, os.getpid())
    try:
        with progress_events.task(str(key), sink or progress_events.worker_sink):
            if inputs is None:
                return func(*args, **kwargs)
            return func(*args, inputs=inputs, **kwargs)
    except Exception as err:  # noqa: BLE001 - every failure is reported, none stops the run
        failure = TaskFailure.from_exception(err)
    finally:
        logger.debug("Task %s ended after %.2f s", key, time.perf_counter() - start)
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


def _duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class _Progress:
    """Counts finished tasks, and the fractions running tasks report (:mod:`s1tiling.progress`);
    a tqdm bar on a terminal, and a log line every PROGRESS_LOG_INTERVAL s with the share of
    the work done and an estimate of the time left."""

    def __init__(self, total: int, bar: bool | None):
        self.total = total
        self.counts: Counter[str] = Counter()
        self.partial: dict[str, float] = {}  # task key -> fraction done, while it runs
        self.counts_keys: set[str] = set()   # the finished tasks' keys
        self.started = time.monotonic()
        self._lock = threading.Lock()
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

    def fraction(self) -> float:
        """The share of the run's work done: finished tasks, plus what running tasks reported."""
        with self._lock:
            done = sum(self.counts.values()) + sum(self.partial.values())
        return min(1.0, done / self.total) if self.total else 1.0

    def line(self) -> str:
        c = self.counts
        text = (f"{sum(c.values())}/{self.total} tasks finished "
                f"({c['done']} done, {c['failed']} failed, {c['skipped']} skipped)")
        share = self.fraction()
        if 0.0 < share < 1.0:
            left = (time.monotonic() - self.started) * (1.0 - share) / share
            text += f", {share:.0%} of the work, about {_duration(left)} left"
        return text

    def advance(self, key: str, fraction: float) -> None:
        """A running task reports ``fraction`` of its work done."""
        with self._lock:
            if key in self.counts_keys:
                return  # a late report of a finished task
            self.partial[key] = fraction
        self._redraw()

    def on_event(self, event) -> None:
        """Handler of the workers' :data:`s1tiling.progress.TOPIC` events: ``(time, {key, fraction})``."""
        with contextlib.suppress(Exception):
            message = event[1]
            self.advance(str(message["key"]), float(message["fraction"]))

    def _redraw(self) -> None:
        if self._bar is not None:
            with self._lock:
                target = sum(self.counts.values()) + sum(self.partial.values())
                self._bar.update(target - self._bar.n)

    def _log_periodically(self):
        while not self._stop.wait(PROGRESS_LOG_INTERVAL):
            logger.info("Progress: %s", self.line())

    def add(self, outcomes: Iterable[TaskOutcome]):
        for outcome in outcomes:
            with self._lock:
                self.counts[outcome.status] += 1
                self.counts_keys.add(outcome.key)
                self.partial.pop(outcome.key, None)
            if self._bar is not None:
                self._bar.set_postfix(failed=self.counts["failed"], skipped=self.counts["skipped"], refresh=False)
            self._redraw()

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
        outcome = _outcome_of(task, lambda: _execute(task.func, task.args, task.kwargs, inputs,  # noqa: B023
                                                     key=key, sink=progress.advance))  # noqa: B023
        _log_failure(outcome)
        _, skipped = graph.record(outcome)
        progress.add([outcome, *skipped])


def _worker_memory_budget(client, watch: _ClusterWatch) -> int | None:
    """The smallest 'memory' resource (MB) of the workers, None when they do not all declare one."""
    if not client.scheduler_info()["workers"]:
        watch.wait_for_first_worker(client)
    workers = client.scheduler_info()["workers"]
    budgets = [info.get("resources", {}).get("memory") for info in workers.values()]
    if any(budget is None for budget in budgets):
        logger.info("The dask workers declare no 'memory' resource: each runs as many tasks as it has threads")
        return None
    return int(min(budgets))


def _watch_workers(client, watch: _ClusterWatch, stop: threading.Event, give_up: Callable[[str, str], None],
                   interval: float = 1.0) -> None:
    """Thread body: while the run goes on, gives up (``give_up(reason, in_short)``) when the batch system refuses
    a replacement job, or when no worker has been there for ``worker_timeout`` s."""
    lost_since = None
    while not stop.wait(interval):
        try:
            refusal = watch.refusal()
            if refusal:
                give_up(str(watch.refused_error(refusal)), "the batch system refused the replacement worker job")
                return
            count = len(client.nthreads())
        except Exception:  # noqa: BLE001 - the client is closing: the run is ending anyway
            return
        now = time.monotonic()
        if count:
            if lost_since is not None:
                logger.info("%d dask worker(s) back after %.0f s", count, now - lost_since)
            lost_since = None
        elif lost_since is None:
            lost_since = now
            logger.warning("Lost every dask worker (batch jobs ended: walltime, scancel, node failure...); "
                           "waiting up to %g s for new ones ([Cluster] worker_timeout)", watch.timeout)
        elif now - lost_since >= watch.timeout:
            waited = round(now - lost_since)
            give_up(watch.no_worker_message(waited, "No dask worker came back"),
                    f"no dask worker for {waited} s ([Cluster] worker_timeout)")
            return


def _run_distributed(graph: _Graph, client, settings, progress: _Progress, limits: Mapping[str, int]) -> None:
    from distributed import as_completed

    watch = _WATCHES.get(client) or _ClusterWatch(settings)
    budget = _worker_memory_budget(client, watch)
    default_need = settings.processing.ram_per_process
    log_level = logging.getLogger(FORWARDED_LOGGER).getEffectiveLevel()
    run_id = uuid.uuid4().hex[:8]

    live: dict[str, Any] = {}          # task key -> Future, kept while a dependent may still need it
    owner: dict[Any, str] = {}         # dask key -> task key
    launched: set[str] = set()
    running: Counter[str] = Counter()  # kind -> tasks submitted and not finished
    held: dict[str, deque[str]] = {kind: deque() for kind in limits}  # ready tasks waiting for a slot of their kind
    not_run: deque[str] = deque()      # ready tasks that cannot run any more (no worker)
    finished = as_completed(loop=client.loop)

    def give_up(reason: str, in_short: str) -> None:  # from the watching thread
        if watch.reason is None:
            watch.reason = in_short
            logger.error("%s. The tasks not finished are not run: rerun the request later to make them", reason)
        futures = list(live.values())  # one C-level copy: the main thread changes ``live`` meanwhile
        client.cancel([f for f in futures if not f.done()])

    def launch(key: str) -> None:
        task = graph.tasks[key]
        if watch.reason is not None:
            not_run.append(key)
            return
        if task.kind in limits and running[task.kind] >= limits[task.kind]:
            held[task.kind].append(key)
            return
        inputs = {d: live[d] for d in task.deps} if _wants_inputs(task.func) else None
        resources = None
        if budget is not None:
            resources = {"memory": min(budget, (task.resources or {}).get("memory", default_need))}
        future = client.submit(_execute, task.func, task.args, dict(task.kwargs), inputs, log_level, key,
                               key=f"{task.kind}-{task.key}-{run_id}", priority=graph.depth[key],
                               resources=resources, pure=False)
        live[key], owner[future.key] = future, key
        launched.add(key)
        running[task.kind] += 1
        finished.add(future)
        if watch.reason is not None:  # gave up while this one was being submitted
            client.cancel([future])

    def settled(key: str) -> bool:
        return all(c in launched or c in graph.outcomes for c in graph.children[key])

    def record(task: Task, outcome: TaskOutcome) -> None:
        _log_failure(outcome)
        ready, skipped = graph.record(outcome)
        progress.add([outcome, *skipped])
        if held.get(task.kind):
            launch(held[task.kind].popleft())
        for child in ready:
            launch(child)
        skipped_deps = (d for skip in skipped for d in graph.tasks[skip.key].deps)
        for done_key in {task.key, *task.deps, *skipped_deps}:
            if done_key in graph.outcomes and settled(done_key):
                live.pop(done_key, None)  # its result is no longer needed on the workers

    def record_not_run() -> None:
        while not_run:
            key = not_run.popleft()
            if key not in graph.outcomes:
                task = graph.tasks[key]
                record(task, TaskOutcome(key, task.kind, "failed", error=f"not run: {watch.reason}",
                                         exit_code=int(ExitCode.TASKS_FAILED)))

    stop = threading.Event()
    watcher = threading.Thread(target=_watch_workers, args=(client, watch, stop, give_up),
                               name="s1tiling-workers", daemon=True)
    client.forward_logging(FORWARDED_LOGGER, level=log_level)
    client.subscribe_topic(progress_events.TOPIC, progress.on_event)
    try:
        for key in graph.roots():
            launch(key)
        watcher.start()
        for future in finished:
            key = owner.pop(future.key)
            task = graph.tasks[key]
            running[task.kind] -= 1
            if future.cancelled() and watch.reason is not None:
                outcome = TaskOutcome(key, task.kind, "failed", error=f"not run: {watch.reason}",
                                      exit_code=int(ExitCode.TASKS_FAILED))
            else:
                outcome = _outcome_of(task, future.result)
            record(task, outcome)
            record_not_run()
            del future  # nor held while waiting for the next one (dask would recompute it if lost)
        record_not_run()
    except BaseException:  # interrupted: nothing more of this run must go on
        client.cancel(list(live.values()))
        raise
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
        live.clear()
        with contextlib.suppress(Exception):
            client.unforward_logging(FORWARDED_LOGGER)
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(progress_events.TOPIC)


@contextlib.contextmanager
def _in_process_threads(settings) -> Iterator[None]:
    """A task run in this process uses nb_otb_threads numba threads, as it would on a worker."""
    numba = sys.modules.get("numba")
    if numba is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(settings.processing.nb_otb_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def run_tasks(tasks: Iterable[Task], settings: Settings, *, client: Client | str | None = None,
              progress: bool | None = None,
              limits: Mapping[str, int] | None = None) -> RunReport:
    """Runs the tasks, each after its dependencies; returns the outcome of every one.

    ``client``: a ``distributed.Client`` to use, ``"sequential"`` to run in this process,
    or None to start the executor of ``settings`` (:func:`executor_for`) for this call; with
    the local scheduler, a single task runs in this process (a cluster would only add its
    start and stop).  ``progress``: True for a progress bar, False for log lines only, None
    for a bar on a terminal.  ``limits``: the most tasks of a kind running at once (default:
    at most ``nb_parallel_downloads`` 'download' tasks).
    """
    graph = _Graph(tasks)
    if limits is None:
        limits = {"download": settings.data_source.nb_parallel_downloads}
    if client is None and settings.cluster.scheduler == "local" and len(graph.tasks) <= 1:
        client = SEQUENTIAL
        logger.info("One task: run in this process, without a dask cluster")
        _warn_oversubscription(settings, 1)
    meter = _Progress(len(graph.tasks), progress)
    try:
        if client == SEQUENTIAL:
            with _in_process_threads(settings):
                _run_sequentially(graph, meter)
        elif client is not None:
            _run_distributed(graph, client, settings, meter, limits)
        else:
            with executor_for(settings, n_tasks=len(graph.tasks)) as own_client:
                _run_distributed(graph, own_client, settings, meter, limits)
    finally:
        meter.close()
    report = graph.report()
    logger.info("Finished: %s", report.totals())
    return report


# ---------------------------------------------------------------------------- temporary files

#: A run's scratch folder: ``s1tiling-<host>-<pid>-<random>``.
_SCRATCH_RE = re.compile(r"^s1tiling-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{12}$")
#: Touched every HEARTBEAT_INTERVAL s by the run owning a scratch folder.
HEARTBEAT = ".heartbeat"
HEARTBEAT_INTERVAL = 60.0
#: A scratch folder of another host whose heartbeat is older than this (s) belongs to a dead run.
STALE_SCRATCH_AGE = 3600.0
_KEEP = ".kept-for-debug"


def _host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_scratch_folders(tmp: Path) -> list[Path]:
    """Removes the scratch folders of dead runs in ``tmp``; returns them.

    A folder is stale when its run ran on this host and its process is gone, or, for a run of
    another host (a shared ``tmp`` on a cluster), when its heartbeat file has not been touched for
    :data:`STALE_SCRATCH_AGE` seconds.  Folders kept by a debug run are left alone.
    """
    removed: list[Path] = []
    host, now = _host(), time.time()
    try:
        entries = list(Path(tmp).iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _SCRATCH_RE.match(path.name)
        if not match or not path.is_dir() or (path / _KEEP).exists():
            continue
        if match["host"] == host:
            stale = not _pid_alive(int(match["pid"]))
        else:
            try:
                beat = (path / HEARTBEAT).stat().st_mtime
            except OSError:
                try:
                    beat = path.stat().st_mtime
                except OSError:
                    continue
            stale = now - beat > STALE_SCRATCH_AGE
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
                logger.info("Removed the scratch folder of a dead run: %s", path)
    return removed


@contextlib.contextmanager
def run_temporary_dir(settings: Settings) -> Iterator[Path]:
    """A new directory ``{tmp}/s1tiling-<host>-<pid>-<random>``, removed on exit (kept in debug mode).

    Concurrent runs, on one machine or on a cluster, never share temporary files; the folders
    of dead runs (on this host: their process is gone; on another: no heartbeat for an hour)
    are removed first.
    """
    tmp = Path(settings.paths.tmp)
    remove_stale_scratch_folders(tmp)
    path = tmp / f"s1tiling-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    (path / HEARTBEAT).touch()
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_INTERVAL):
            with contextlib.suppress(OSError):
                (path / HEARTBEAT).touch()

    heart = threading.Thread(target=beat, name="s1tiling-heartbeat", daemon=True)
    heart.start()
    try:
        yield path
    finally:
        stop.set()
        heart.join()
        if "debug" in settings.processing.mode or settings.processing.debug_caches:
            with contextlib.suppress(OSError):
                (path / _KEEP).touch()
            logger.info("Temporary files kept in %s (debug mode or --debug-caches)", path)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _remove_temporaries_of_dead_processes(settings) -> None:
    """After an interrupted run: the temporaries (``.<name>.<host>.<pid>.<random>.tmp*``) that its
    killed worker processes left in the output, map and cache folders."""
    paths = settings.paths
    roots = {Path(p) for p in (paths.output, getattr(paths, "lia", None), getattr(paths, "ia", None),
                               getattr(paths, "gamma_area", None), Path(paths.tmp) / "S1") if p}
    removed = 0
    for root in roots:
        for folder, _, files in os.walk(root):
            if any(".tmp" in name for name in files):
                removed += len(cleanup_stale_temporaries(folder))
    if removed:
        logger.info("Removed %d temporary file(s) of the interrupted tasks", removed)


# ---------------------------------------------------------------------------- executors

#: Budget of one task (s) to estimate a worker job's walltime when [Cluster] walltime is not set.
TASK_SECONDS_ESTIMATE = 600
MIN_DEFAULT_WALLTIME = 3600
MAX_DEFAULT_WALLTIME = 12 * 3600
#: dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which disables glibc's
#: dynamic mmap threshold: every large numpy temporary is then mmapped and unmapped, ~40% slower.
_NO_MALLOC_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
#: Dask's memory management of workers, off: our tasks keep no data in dask's memory (nothing to
#: spill), and a worker paused above 80 % of ``ram_per_process`` (an OTB-style hint, not a cap:
#: the OTB chain in memory alone takes about that) never gets busy again, so the run would wait
#: for ever; the batch system, or the kernel, enforces real memory limits.
_NO_MEMORY_MANAGEMENT = {f"distributed.worker.memory.{step}": False
                         for step in ("target", "spill", "pause", "terminate")}
_oversubscription_warned = False
DEFAULT_LOG_FOLDER = "_WORKER_LOGS"
#: How long a batch job's worker may be gone before its job is taken for lost and replaced.
LOST_JOB_DELAY = "3s"


def _worker_environment(settings) -> dict[str, str]:
    """Thread counts of the numerical libraries inside a worker: nb_otb_threads per task."""
    threads = str(settings.processing.nb_otb_threads)
    return {name: threads for name in
            ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def available_cores() -> int:
    """Cores this process may use (its CPU affinity: a batch allocation, taskset), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _warn_oversubscription(settings, processes: int) -> None:
    """Once per process: more threads asked than cores."""
    global _oversubscription_warned
    threads, cores = processes * settings.processing.nb_otb_threads, available_cores()
    if threads <= cores or _oversubscription_warned:
        return
    _oversubscription_warned = True
    logger.warning(
        "nb_parallel_processes x nb_otb_threads = %d x %d = %d threads for %d cores: the tasks will share "
        "the cores, each running slower and none finishing sooner, while %d x ram_per_process = %d MiB of "
        "memory is reserved; set nb_parallel_processes x nb_otb_threads <= %d",
        processes, settings.processing.nb_otb_threads, threads, cores, processes,
        processes * settings.processing.ram_per_process, cores)


def _memory_bytes(text: str) -> int:
    """'32 GiB' -> bytes; a bare number is in MB (MiB), as ram_per_process."""
    from dask.utils import parse_bytes
    text = text.strip()
    return int(float(text) * _MiB) if text.replace(".", "", 1).isdigit() else parse_bytes(text)


def _format_walltime(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def default_walltime(settings, n_tasks: int | None) -> tuple[str, str]:
    """(walltime, why) of a worker job when ``[Cluster] walltime`` is not set: the tasks in waves of
    (most jobs x processes per job) at :data:`TASK_SECONDS_ESTIMATE` s each, plus one wave of margin,
    between 1 and 12 hours.  A job that reaches it is replaced; its running task runs again."""
    cluster = settings.cluster
    slots = cluster.jobs[1] * (cluster.processes or settings.processing.nb_parallel_processes)
    waves = -(-max(n_tasks or 1, 1) // slots) + 1
    seconds = min(max(waves * TASK_SECONDS_ESTIMATE, MIN_DEFAULT_WALLTIME), MAX_DEFAULT_WALLTIME)
    why = (f"[Cluster] walltime is not set: each worker job asks for {_format_walltime(seconds)} "
           f"({n_tasks if n_tasks is not None else 'unknown number of'} tasks on at most {slots} workers, "
           f"{TASK_SECONDS_ESTIMATE // 60} min per task, between {MIN_DEFAULT_WALLTIME // 3600} and "
           f"{MAX_DEFAULT_WALLTIME // 3600} h); set walltime to what your queue allows")
    return _format_walltime(seconds), why


def dashboard_address(settings) -> str:
    """``[Cluster] dashboard_address``, else loopback only on a free port (never 8787 taken by another run)."""
    address = settings.cluster.dashboard_address or "127.0.0.1:0"
    return f":{address}" if address.isdigit() else address


def _batch_job_options(settings, *, n_tasks: int | None = None, log_directory: Path | None = None) -> dict[str, Any]:
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
    walltime = cluster.walltime
    if not walltime:
        walltime, why = default_walltime(settings, n_tasks)
        logger.info("%s", why)
    elif name == "pbs":  # PBS knows [[HH:]MM:]SS only
        walltime = _format_walltime(walltime_seconds(walltime))
    exports = [f"export {k}={v}" for k, v in _worker_environment(settings).items()]
    exports.append("export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=\"{'MALLOC_TRIM_THRESHOLD_': None}\"")
    exports += [f"export DASK_{key.upper().replace('.', '__')}=False" for key in _NO_MEMORY_MANAGEMENT]
    options = {
        "cores": cores,
        "processes": processes,
        "memory": f"{memory // _MiB}MiB",
        "queue": cluster.queue,
        "account": cluster.account,
        "walltime": walltime,
        "local_directory": str(cluster.local_directory) if cluster.local_directory else None,
        "log_directory": str(log_directory) if log_directory else None,
        "job_extra_directives": list(cluster.job_extra_directives) or None,
        "job_script_prologue": list(dask.config.get(f"jobqueue.{name}.job-script-prologue") or []) + exports,
        "worker_extra_args": list(dask.config.get(f"jobqueue.{name}.worker-extra-args") or [])
        + ["--resources", f"memory={memory // processes // _MiB}"],
        "scheduler_options": {**(dask.config.get(f"jobqueue.{name}.scheduler-options", None) or {}),
                              "dashboard_address": dashboard_address(settings)},
    }
    return {key: value for key, value in options.items() if value is not None}


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """Importing dask_jobqueue replaces SIGINT's handler with ``sys.exit()`` (its runner module):
    Ctrl-C would then end the run with status 0 and no cleanup.  The handlers are put back."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)


def _import_jobqueue(settings):
    with _keep_signal_handlers():
        try:
            import dask_jobqueue
        except ImportError:
            raise MissingApplicationError(
                f"{settings.config_file}: [Cluster] scheduler = {settings.cluster.scheduler} needs dask-jobqueue: "
                "pip install 's1tiling[cluster]'") from None
    return dask_jobqueue


def _refusal_message(error: BaseException) -> str:
    """The batch system's own words from dask-jobqueue's 'Command exited with non-zero exit code' error."""
    text = str(error)
    if "stderr:" in text:
        stderr = text.split("stderr:", 1)[1]
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        if lines:
            return " | ".join(lines)
    return f"{type(error).__name__}: {text.strip()}"


def _batch_cluster(settings: Settings, *, n_tasks: int | None = None, log_directory: Path | None = None) -> Any:
    """A dask-jobqueue SLURMCluster or PBSCluster (no job submitted yet) whose job submissions that the
    batch system refuses are recorded in its ``s1tiling_refusals`` list."""
    dask_jobqueue = _import_jobqueue(settings)
    base = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[settings.cluster.scheduler]
    refusals: list[str] = []

    class RecordedJob(base.job_cls):  # type: ignore[name-defined]  # the batch cluster's own job class
        async def start(self):
            from distributed.core import Status
            try:
                await super().start()
            except Exception as err:
                refusals.append(_refusal_message(err))
                self.status = Status.failed  # so that the cluster closes without complaint
                err.s1tiling_recorded = True  # type: ignore[attr-defined]  # reported by the run, not by tornado
                raise

    cluster = base(job_cls=RecordedJob, **_batch_job_options(settings, n_tasks=n_tasks, log_directory=log_directory))
    cluster.s1tiling_refusals = refusals
    return cluster


def job_script(settings: Settings) -> str:
    """The batch script dask-jobqueue would submit for ``[Cluster] scheduler = slurm|pbs``; submits nothing."""
    if settings.cluster.scheduler not in ("slurm", "pbs"):
        raise ValueError(f"no job script for [Cluster] scheduler = {settings.cluster.scheduler}")
    with _quiet_dask_logs(), _batch_cluster(settings) as cluster:
        return cluster.job_script()


def _bokeh_available() -> bool:
    return find_spec("bokeh") is not None


def _log_dashboard(client) -> None:
    """The dashboard's address, only when it works (bokeh installed)."""
    if _bokeh_available() and "dashboard" in client.scheduler_info().get("services", {}):
        logger.info("Dask dashboard: %s", client.dashboard_link)
    else:
        logger.debug("No dask dashboard (pip install bokeh to get one)")


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


def worker_log_folder(settings) -> Path:
    """Where this run's batch jobs write their logs: ``{log_directory}/<date>T<time>-<host>-<pid>``,
    ``log_directory`` defaulting to ``{output}/_WORKER_LOGS`` (the output is on a shared file system)."""
    base = settings.cluster.log_directory or Path(settings.paths.output) / DEFAULT_LOG_FOLDER
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return Path(base) / f"{stamp}-{_host()}-{os.getpid()}"


class _RecordedErrorsFilter(logging.Filter):
    """Drops tornado's 'Exception in callback' records of the job submissions we report ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, "s1tiling_recorded", False)


@contextlib.contextmanager
def _recorded_errors_unlogged() -> Iterator[None]:
    tornado_logger, quiet = logging.getLogger("tornado.application"), _RecordedErrorsFilter()
    tornado_logger.addFilter(quiet)
    try:
        yield
    finally:
        tornado_logger.removeFilter(quiet)


class _ClusterWatch:
    """What the run knows about its workers' supply: batch jobs submitted, refused, or none for too long."""

    def __init__(self, settings, cluster=None):
        self.settings = settings
        self.cluster = cluster
        self.timeout = settings.cluster.worker_timeout
        self.reason: str | None = None  # set once the run can no longer get workers

    @property
    def scheduler(self) -> str:
        return self.settings.cluster.scheduler

    def refusal(self) -> str | None:
        refusals = getattr(self.cluster, "s1tiling_refusals", None)
        return refusals[0] if refusals else None

    def refused_error(self, refusal: str) -> ConfigurationError:
        command = {"slurm": "sbatch", "pbs": "qsub"}.get(self.scheduler, "the batch system")
        return ConfigurationError(
            f"{self.settings.config_file}: [Cluster]: {command} refused the dask worker job: {refusal} "
            f"(check queue, account, walltime, cores, memory and job_extra_directives)")

    def job_ids(self) -> list[str]:
        workers = getattr(self.cluster, "workers", None) or {}
        return [str(job.job_id) for job in list(workers.values()) if getattr(job, "job_id", None)]

    def job_states(self) -> str:
        """'job 12 PENDING (BeginTime), job 13 RUNNING' from squeue (SLURM), else the job ids."""
        ids = self.job_ids()
        if not ids:
            return "no batch job submitted" if self.cluster is not None else ""
        if self.scheduler == "slurm" and shutil.which("squeue"):
            import subprocess
            try:
                out = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %r"], capture_output=True,
                                     text=True, timeout=20).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            states = [f"job {i} {state} ({why})" for i, state, why in
                      (line.split(None, 2) for line in out.splitlines() if len(line.split(None, 2)) == 3)]
            if states:
                return ", ".join(states)
        return f"{self.scheduler} job(s) {', '.join(ids)}"

    def no_worker_message(self, waited: float, what: str) -> str:
        states = self.job_states()
        hint = {"address": f"start dask workers for {self.settings.cluster.address}",
                "local": "the local worker processes did not start"}.get(
            self.scheduler, "the worker jobs are still queued or cannot start: check them, or raise worker_timeout")
        return (f"{what} within {waited:g} s ([Cluster] worker_timeout = {self.timeout:g})"
                + (f": {states}" if states else "") + f"; {hint}")

    def wait_for_first_worker(self, client) -> None:
        """Returns once a worker joined; raises ConfigurationError (72) when the batch system refused the
        jobs, NoWorkerError (66) when none joined within worker_timeout."""
        start = time.monotonic()
        announced = False
        while True:
            refusal = self.refusal()
            if refusal:
                raise self.refused_error(refusal)
            try:
                client.wait_for_workers(1, timeout=0.5)
                return
            except (TimeoutError, asyncio.TimeoutError):
                pass
            waited = time.monotonic() - start
            if waited >= self.timeout:
                raise NoWorkerError(self.no_worker_message(round(waited), "No dask worker joined the run"))
            if not announced and waited > 2:
                announced = True
                logger.info("Waiting for a first dask worker (up to %g s, [Cluster] worker_timeout)", self.timeout)

    def cancel_jobs(self) -> None:
        """Cancels this run's batch jobs at once (scancel/qdel), before the cluster is closed."""
        adaptive = getattr(self.cluster, "_adaptive", None)
        if adaptive is not None:
            with contextlib.suppress(Exception):
                adaptive.stop()
        ids = self.job_ids()
        command = {"slurm": "scancel", "pbs": "qdel"}.get(self.scheduler)
        if ids and command and shutil.which(command):
            import subprocess
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([command, *ids], capture_output=True, timeout=30)
            logger.debug("Cancelled batch job(s) %s", ", ".join(ids))


#: Seconds a worker process has to exit once asked to (dask's own close gives it 4 s, then kills it:
#: not enough on a loaded machine, which then logs 'Worker process still alive after 4.0 seconds').
WORKER_CLOSE_TIMEOUT = 60.0


def _close_workers(cluster, timeout: float = WORKER_CLOSE_TIMEOUT) -> None:
    """Asks every worker process of a LocalCluster to exit, and waits for it (up to ``timeout`` s)."""
    async def close_all():
        nannies = [w for w in list(cluster.workers.values()) if hasattr(w, "close")]
        await asyncio.gather(*(w.close(timeout=timeout) for w in nannies), return_exceptions=True)

    with contextlib.suppress(Exception):
        cluster.sync(close_all)


def _kill(pids: Iterable[int]) -> None:
    """SIGKILL to the processes, then waits (up to 2 s each) until they are gone."""
    import signal

    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:  # wait until they are gone: their temporaries are then stale
        for _ in range(100):
            if not _pid_alive(pid) or _zombie(pid):
                break
            time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _remove_if_empty(folder: Path) -> None:
    """The run's worker log folder when no job wrote into it (and the default parent, when empty)."""
    for path in (folder, folder.parent) if folder.parent.name == DEFAULT_LOG_FOLDER else (folder,):
        with contextlib.suppress(OSError):
            path.rmdir()  # only when empty


_WATCHES: weakref.WeakKeyDictionary[Any, _ClusterWatch] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def executor_for(settings, *, n_tasks: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster ``[Cluster] scheduler`` names, with at least one worker;
    closed (with its cluster, its batch jobs cancelled) on exit.  ``n_tasks`` sizes the default
    walltime of batch jobs."""
    import dask
    from distributed import Client, LocalCluster

    cluster_settings, processing = settings.cluster, settings.processing
    with contextlib.ExitStack() as stack:
        if "debug" not in processing.mode:
            stack.enter_context(_quiet_dask_logs())
        stack.enter_context(dask.config.set({**_NO_MALLOC_TRIM, **_NO_MEMORY_MANAGEMENT}))
        stack.enter_context(_on_interrupt(lambda: _remove_temporaries_of_dead_processes(settings)))
        watch = _ClusterWatch(settings)
        if cluster_settings.scheduler == "address":
            try:
                client = stack.enter_context(Client(cluster_settings.address, set_as_default=False,
                                                    timeout=min(cluster_settings.worker_timeout, 30)))
            except (OSError, TimeoutError) as err:
                raise ConfigurationError(f"{settings.config_file}: [Cluster] address = "
                                         f"{cluster_settings.address!r}: cannot reach the dask scheduler: {err}"
                                         ) from err
            logger.info("Connected to the dask scheduler %s", cluster_settings.address)
        elif cluster_settings.scheduler == "local":
            _warn_oversubscription(settings, processing.nb_parallel_processes)
            workspace = cluster_settings.local_directory or stack.enter_context(run_temporary_dir(settings))
            cluster = stack.enter_context(LocalCluster(
                n_workers=processing.nb_parallel_processes,
                threads_per_worker=processing.nb_otb_threads,
                memory_limit=processing.ram_per_process * _MiB,
                resources={"memory": processing.ram_per_process},
                processes=True,
                dashboard_address=dashboard_address(settings),
                local_directory=str(workspace),
                env=_worker_environment(settings),
            ))
            stack.callback(_close_workers, cluster)  # after the client, before the cluster
            client = stack.enter_context(Client(cluster, set_as_default=False))
            # interrupted: the workers are killed at once (their tasks' work is lost anyway), not asked
            # to stop and killed 4 s later; their temporaries are then removed (_on_interrupt above)
            pids = client.run(os.getpid)
            stack.enter_context(_on_interrupt(lambda: _kill(pids.values())))
            logger.info("Dask LocalCluster: %d worker processes (%d threads, %d MiB each)",
                        processing.nb_parallel_processes, processing.nb_otb_threads, processing.ram_per_process)
        else:
            logs = worker_log_folder(settings)
            stack.callback(_remove_if_empty, logs)  # no job ran: no log folder left behind
            # a worker whose job ended does not come back: replace its job after 3 s, not dask's 15 s
            stack.enter_context(dask.config.set({"distributed.deploy.lost-worker-timeout": LOST_JOB_DELAY}))
            stack.enter_context(_recorded_errors_unlogged())
            cluster = stack.enter_context(_batch_cluster(settings, n_tasks=n_tasks, log_directory=logs))
            watch.cluster = cluster
            stack.callback(watch.cancel_jobs)  # runs before the cluster is closed
            logger.debug("Batch job script:\n%s", cluster.job_script())
            low, high = cluster_settings.jobs
            # adapt (not scale): jobs that end (walltime, scancel, node failure) are replaced
            cluster.adapt(minimum_jobs=low, maximum_jobs=high)
            client = stack.enter_context(Client(cluster, set_as_default=False))
            logger.info("Dask workers in %s batch jobs (%s at once); their logs in %s",
                        cluster_settings.scheduler, f"{low}" if low == high else f"{low} to {high}", logs)
        _WATCHES[client] = watch
        watch.wait_for_first_worker(client)
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


@contextlib.contextmanager
def _on_interrupt(action: Callable[[], None]) -> Iterator[None]:
    """Runs ``action`` after the contexts entered later are closed, when leaving on an interruption."""
    try:
        yield None
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            with contextlib.suppress(Exception):
                action()
        raise

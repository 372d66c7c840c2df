"""What runs on the workers: a maker holding the locks of its job's outputs (the task of each job
of the plan), and the workers' log files.

Kept apart from :mod:`s1tiling.pipeline` so that a worker imports only the makers its tasks use
(not the catalog, the download and the OTB engine: 0.4 s less before each worker's first task).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from . import logs
from .context import Context
from .plan import CalibrationJob
from .writing import disk_full_error, is_complete, output_locks

logger = logging.getLogger(__name__)


def outputs_of(job) -> tuple[str, ...]:
    """The files a job of the plan writes."""
    if hasattr(job, "images"):
        return tuple(image.path for image in job.images)
    if hasattr(job, "outputs"):
        return tuple(path for _, path in job.outputs)
    return (job.path,)


def output_identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def run_locked(make, job, context: Context, before: dict[str, tuple[int, int] | None]):
    """Run ``make(job, context)`` holding the locks of the job's outputs (a task of the graph).

    Another live run producing one of them is waited for (and said so); when the outputs are then
    all there, complete and new (not the files ``before`` recorded when the run was planned, which
    are being replaced), the other run made them: they are kept, not made twice.
    """
    outputs = outputs_of(job)
    try:
        with output_locks(outputs):
            if all(output_identity(p) != before.get(p) and is_complete(p) for p in outputs):
                logger.info("%s: made meanwhile by another run, kept", ", ".join(Path(p).name for p in outputs))
                return list(outputs)
            return make(job, context)
    except OSError as exc:  # a folder or a lock file that cannot be made: a full disk is 69 (70 under tmp)
        full = disk_full_error(exc, Path(outputs[0]).parent, outputs[0], cache=isinstance(job, CalibrationJob))
        if full is None:
            raise
        raise full from exc



class WorkerLogs(WorkerPlugin):
    """S1Tiling's per-worker log files (``S1Processor-worker-<name>...``) on every dask worker."""

    name = "s1tiling-worker-logs"

    def __init__(self, directory: str, debug: bool):
        self.directory, self.debug = directory, debug

    def setup(self, worker):
        logs.install_worker_logs(self.directory, worker.name, self.debug)

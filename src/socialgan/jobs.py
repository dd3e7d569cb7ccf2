"""Long-running jobs (scrapes, training runs) in background threads, watchable and cancellable.

A service starts a job with a function that does the work and reports progress through
Job.update(); gRPC Watch* methods stream Job.watch() snapshots; Cancel* sets a flag
that the work function sees at its next update() and stops cleanly (Cancelled).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from socialgan.errors import FailedPrecondition, NotFound

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued", "running", "succeeded", "failed", "cancelled",
)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


class Cancelled(Exception):
    """Raised inside a job's work function when someone cancelled the job."""


@dataclass
class JobSnapshot:
    job_id: str
    kind: str
    state: str
    message: str
    created: float
    updated: float
    fraction_done: float
    progress: dict[str, Any]
    version: int

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


@dataclass
class Job:
    job_id: str
    kind: str
    state: str = QUEUED
    message: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    fraction_done: float = 0.0
    progress: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def update(self, message: str | None = None, fraction_done: float | None = None,
               **progress: Any) -> None:
        """Record progress and wake watchers; raises Cancelled once cancel() was called."""
        with self._changed:
            if message is not None:
                self.message = message
            if fraction_done is not None:
                self.fraction_done = max(0.0, min(1.0, fraction_done))
            self.progress.update(progress)
            self._bump()
        self.check_cancelled()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"{self.kind} {self.job_id} was cancelled")

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _bump(self) -> None:
        self.version += 1
        self.updated = time.time()
        self._changed.notify_all()

    def _set_state(self, state: str, message: str | None = None) -> None:
        with self._changed:
            self.state = state
            if message is not None:
                self.message = message
            if state == SUCCEEDED:
                self.fraction_done = 1.0
            self._bump()

    def snapshot(self) -> JobSnapshot:
        with self._changed:
            return JobSnapshot(
                self.job_id, self.kind, self.state, self.message, self.created, self.updated,
                self.fraction_done, copy.deepcopy(self.progress), self.version,
            )

    def watch(self, is_active: Callable[[], bool] = lambda: True,
              poll: float = 0.5) -> Iterator[JobSnapshot]:
        """Yield a snapshot now and after every change, until the job ends or the
        watcher goes away (is_active() false)."""
        seen = -1
        while is_active():
            with self._changed:
                if self.version == seen:
                    self._changed.wait(timeout=poll)
                if self.version == seen:
                    continue
                snap = self.snapshot()
            seen = snap.version
            yield snap
            if snap.done:
                return


class JobRunner:
    """Runs jobs on a small thread pool and keeps them addressable by id."""

    def __init__(self, max_concurrent: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, job_id: str, work: Callable[[Job], str | None]) -> Job:
        """Queue work(job); its return value becomes the final message."""
        with self._lock:
            existing = self._jobs.get(job_id)
            if existing and existing.state not in TERMINAL:
                raise FailedPrecondition(f"{kind} {job_id} is already running")
            job = Job(job_id=job_id, kind=kind)
            self._jobs[job_id] = job
        self._pool.submit(self._run, job, work)
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], str | None]) -> None:
        import logging

        log = logging.getLogger("socialgan.jobs")
        if job.state == CANCELLED:  # cancelled while queued
            return
        job._set_state(RUNNING)
        try:
            job.check_cancelled()
            message = work(job)
        except Cancelled as exc:
            job._set_state(CANCELLED, str(exc))
        except Exception as exc:  # the job fails, the service stays up
            log.exception("%s %s failed", job.kind, job.job_id)
            job._set_state(FAILED, f"{type(exc).__name__}: {exc}")
        else:
            job._set_state(SUCCEEDED, message or "done")

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} on this server")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job._cancel.set()
        with job._changed:
            if job.state == QUEUED:
                job.state = CANCELLED
                job.message = "cancelled before it started"
                job._bump()
        return job

    def shutdown(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job._cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

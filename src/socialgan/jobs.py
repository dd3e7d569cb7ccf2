"""Long-running jobs (scrapes, filters, training runs) in background threads, watchable,
cancellable, and - given a JobStore - recorded in storage so they outlive the process.

A service starts a job with a function that does the work and reports progress through
Job.update(); gRPC Watch* methods stream snapshots; Cancel* sets a flag that the work
function sees at its next update() and stops cleanly (Cancelled). With a JobStore, a job
an earlier process ran is answered from its record (socialgan.job_store), and recover()
resumes the jobs a restart or a kill interrupted.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from socialgan.errors import FailedPrecondition, NotFound, Unavailable, clip, quote

if TYPE_CHECKING:
    from socialgan.job_store import JobStore

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "succeeded", "failed", "cancelled", "interrupted",
)
# Not running (any more): a watch ends, the id can be started again. INTERRUPTED jobs
# (stopped by a shutdown or a lost process) are the ones recover() resumes.
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
# The request field that names a job of each kind, for messages that name the field.
_ID_FIELDS = {"scrape": "job_id", "training": "run_id", "filter": "dataset_id", "cycle": "run_id"}
MAX_AUTO_RESUMES = 3  # crashes in a row (each within HEALTHY_RUN_S) before recover() gives up
HEALTHY_RUN_S = 600.0
STORED_WATCH_POLL_S = 1.0

log = logging.getLogger("socialgan.jobs")
Work = Callable[["Job"], "str | None"]
Resumer = Callable[[dict[str, Any]], Work]  # a recorded request -> its work, checked again


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
    request: dict[str, Any] = field(default_factory=dict)  # what started it (to resume it)

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
    request: dict[str, Any] = field(default_factory=dict)
    resumes: int = 0  # automatic resumes since the job last ran HEALTHY_RUN_S
    error: BaseException | None = field(default=None, repr=False)  # why it FAILED
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _shutdown: bool = field(default=False, repr=False)  # cancelled by the service stopping
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _persisting: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _attempt_started: float = field(default_factory=time.time, repr=False)
    _save: Callable[[], None] = field(default=lambda: None, repr=False)  # set by JobRunner

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

    def save_now(self) -> None:
        """Write the job's record to its store now, not at the next heartbeat: for work
        whose progress names something a resume must not start twice."""
        self._save()

    @property
    def stopping_for_shutdown(self) -> bool:
        """Cancelled because its service is stopping: it resumes on the next start."""
        return self._shutdown

    def wait_for_cancel(self, timeout: float) -> bool:
        """Sleep up to timeout seconds, waking at once on a cancel; True if cancelled."""
        return self._cancel.wait(timeout)

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
                copy.deepcopy(self.request),
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
    """Runs jobs on a small thread pool and keeps them addressable by id; with a JobStore,
    also by jobs other (earlier) processes ran."""

    def __init__(self, max_concurrent: int = 2, store: JobStore | None = None):
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="job")
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self.store = store
        self._closing = False  # shutdown() began: no new jobs
        self._stopping = threading.Event()  # shutdown() ended: heartbeats stop
        self._recovering = threading.Event()  # recover_in_background's first pass runs
        if store is not None:
            threading.Thread(target=self._heartbeat, name="job-heartbeat", daemon=True).start()

    # -- starting and running ------------------------------------------------------------------

    def start(self, kind: str, job_id: str, work: Work, request: dict[str, Any] | None = None,
              *, resumed_from: JobSnapshot | None = None, resumes: int = 0) -> Job:
        """Queue work(job); its return value becomes the final message. request (JSON) is
        recorded with the job: what a restarted service needs to resume it."""
        with self._lock:
            if self._closing:
                raise Unavailable("the service is stopping; start the job again in a moment")
            existing = self._jobs.get((kind, job_id))
            if existing and existing.state not in TERMINAL:
                raise FailedPrecondition(f"{kind} {job_id} is already running")
            if self.store is not None:
                record = self.store.load(kind, job_id)
                if record and record["state"] in (QUEUED, RUNNING) \
                        and not self.store.owner_gone(record):
                    raise FailedPrecondition(f"{kind} {job_id} is already running in "
                                             f"{record['owner']}")
                if resumed_from is not None and record \
                        and record["state"] in (SUCCEEDED, FAILED, CANCELLED):
                    # Cancelled (or ended) while recover() rebuilt its work: a Cancel that
                    # answered CANCELLED must not be undone by the resume.
                    raise FailedPrecondition(f"{kind} {job_id} was {record['state']} "
                                             "meanwhile; not resumed")
                self.store.clear_cancel(kind, job_id)
            job = Job(job_id=job_id, kind=kind, request=dict(request or {}), resumes=resumes)
            job._save = lambda: self._persist(job)
            if resumed_from is not None:  # keep what watchers saw until the work reports
                job.created, job.progress = resumed_from.created, dict(resumed_from.progress)
                job.fraction_done = resumed_from.fraction_done
                job.message = f"resuming ({resumes} automatic resume(s) in a row)"
            self._jobs[(kind, job_id)] = job
            self._persist(job)
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Work) -> None:
        if job.state in TERMINAL:  # cancelled or interrupted while queued
            return
        job._attempt_started = time.time()
        self._set(job, RUNNING)
        try:
            job.check_cancelled()
            message = work(job)
        except Exception as exc:
            # A wait that a cancel cut short may surface as the waiting call's own error
            # (an API retry that gave up): after a cancel, the job was stopped, not failed.
            if isinstance(exc, Cancelled) or job.cancel_requested:
                self._stopped(job, exc)
                return
            log.exception("%s %s failed", job.kind, job.job_id)
            job.error = exc
            self._set(job, FAILED, f"{type(exc).__name__}: {exc}")
        else:
            self._set(job, SUCCEEDED, message or "done")

    def _stopped(self, job: Job, exc: Exception) -> None:
        if job._shutdown:
            self._set(job, INTERRUPTED, "the service stopped; it resumes when the "
                      "service starts again")
        else:
            self._set(job, CANCELLED, str(exc) if isinstance(exc, Cancelled)
                      else f"{job.kind} {job.job_id} was cancelled")

    def _set(self, job: Job, state: str, message: str | None = None) -> None:
        job._set_state(state, message)
        self._persist(job)

    def _persist(self, job: Job) -> None:
        if self.store is None:
            return
        # One writer at a time per job, snapshot taken inside: the heartbeat thread can
        # never overwrite a newer state with an older one.
        with job._persisting:
            try:
                self.store.save(job.snapshot(), resumes=job.resumes,
                                attempt_started_unix=job._attempt_started,
                                resume_on_start=job.state == INTERRUPTED and job._shutdown)
            except Exception:  # storage down: the job goes on; the next beat writes again
                log.exception("cannot record %s %s", job.kind, job.job_id)

    def _heartbeat(self) -> None:
        assert self.store is not None
        while not self._stopping.wait(self.store.heartbeat_s):
            for job in self._active():
                self._persist(job)
                try:
                    if self.store.cancel_requested(job.kind, job.job_id):
                        job._cancel.set()  # another replica took a Cancel for this job
                except Exception:
                    log.exception("cannot check %s %s for a cancel request", job.kind, job.job_id)

    def _active(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.state not in TERMINAL]

    # -- answering for a job -------------------------------------------------------------------

    def get(self, job_id: str, kind: str | None = None) -> Job | JobSnapshot:
        """The live job, or (with a store and a kind) a snapshot of its record."""
        with self._lock:
            # _jobs keeps every job this process ran: look up by key when the kind is known.
            job = self._jobs.get((kind, job_id)) if kind is not None else next(
                (j for (_, i), j in self._jobs.items() if i == job_id), None)
        if job is not None:
            return job
        if self.store is not None and kind is not None:
            record = self.store.load(kind, job_id)
            if record is not None:
                return self.store.snapshot(record)
        field = _ID_FIELDS.get(kind or "", "job_id")
        raise NotFound(f"{field}: no {kind or 'job'} {quote(job_id)}")

    def job_ids(self, kind: str) -> list[str]:
        """Ids of every job of kind this runner runs or the store recorded, sorted."""
        with self._lock:
            live = {i for (k, i) in self._jobs if k == kind}
        stored = set(self.store.job_ids(kind)) if self.store is not None else set()
        return sorted(live | stored)

    def snapshot(self, job_id: str, kind: str | None = None) -> JobSnapshot:
        found = self.get(job_id, kind)
        return found.snapshot() if isinstance(found, Job) else found

    def watch(self, job_id: str, kind: str, is_active: Callable[[], bool] = lambda: True,
              poll: float = STORED_WATCH_POLL_S) -> Iterator[JobSnapshot]:
        """Job.watch for a live job; for a recorded one, poll its record until it ends
        (following it when this process takes it over)."""
        seen: tuple[int, float] | None = None
        while is_active():
            found = self.get(job_id, kind)
            if isinstance(found, Job):
                yield from found.watch(is_active)
                return
            # An interrupted job the first recovery pass may resume yet: wait and see.
            waiting = found.state == INTERRUPTED and self._recovering.is_set()
            if (found.version, found.updated) != seen and not waiting:
                seen = (found.version, found.updated)
                yield found
                if found.done:
                    return
            time.sleep(poll)

    def cancel(self, job_id: str, kind: str | None = None) -> JobSnapshot:
        found = self.get(job_id, kind)
        if isinstance(found, Job):
            found._cancel.set()
            with found._changed:
                queued = found.state == QUEUED
                if queued:
                    found.state = CANCELLED
                    found.message = "cancelled before it started"
                    found._bump()
            if queued:
                self._persist(found)
            return found.snapshot()
        assert self.store is not None and kind is not None
        record = self.store.load(kind, job_id) or {}
        if found.state == INTERRUPTED or self.store.is_orphan(record):
            # Nobody runs it: cancelling means it is never resumed.
            found.state, found.message = CANCELLED, "cancelled while interrupted"
            found.updated, found.version = time.time(), found.version + 1
            self.store.save(found)
            # An owner that only looked gone (late heartbeats, clock skew) must stop too,
            # or its next beat records the job running again.
            self.store.request_cancel(kind, job_id)
        elif not found.done:  # another live process runs it: it sees this at its next beat
            self.store.request_cancel(kind, job_id)
            found.message = f"cancel requested from {record.get('owner', 'its owner')}"
        return found

    # -- after a restart -----------------------------------------------------------------------

    def recover(self, resumers: Mapping[str, Resumer]) -> list[str]:
        """Resume every recorded job of the given kinds that a shutdown or a lost process
        interrupted: resumers[kind](request) rebuilds its work. A job that crashed its
        process MAX_AUTO_RESUMES times in a row is left INTERRUPTED for a person to look
        at (starting it again resumes it). Returns the ids resumed."""
        if self.store is None:
            return []
        resumed = []
        for kind, make_work in resumers.items():
            for record in self.store.active_records(kind):
                try:
                    if self._recover_one(kind, record, make_work):
                        resumed.append(record["job_id"])
                except Exception:  # one damaged record must not keep the others down
                    log.exception("cannot resume %s record %.100r", kind, record)
        return resumed

    def _recover_one(self, kind: str, record: dict[str, Any], make_work: Resumer) -> bool:
        assert self.store is not None
        crashed = self.store.is_orphan(record)
        if not (crashed or (record["state"] == INTERRUPTED and record.get("resume_on_start"))):
            return False
        snap = self.store.snapshot(record)
        ran_for = float(record.get("heartbeat_unix", 0)) - float(
            record.get("attempt_started_unix", 0))
        resumes = int(record.get("resumes", 0)) if ran_for < HEALTHY_RUN_S else 0
        resumes += 1 if crashed else 0
        if resumes > MAX_AUTO_RESUMES:
            snap.message = (f"stopped its process {resumes - 1} times in a row; not resumed "
                            "automatically. Start it again to resume. Last: "
                            f"{record.get('message', '')}")
            snap.updated = time.time()
            self.store.save(snap, resumes=resumes, resume_on_start=False)
            return False
        try:
            work = make_work(snap.request)
        except Exception as exc:  # noqa: BLE001 - any reason the recorded request no
            # longer makes a job (its dataset was deleted, a format of another version)
            snap.state, snap.updated = FAILED, time.time()
            snap.message = clip(f"cannot resume: {exc}", 500)
            self.store.save(snap, resumes=resumes)
            return False
        try:
            self.start(kind, snap.job_id, work, snap.request, resumed_from=snap, resumes=resumes)
        except FailedPrecondition:  # started again meanwhile, here or elsewhere
            return False
        log.info("resumed %s %s (automatic resume %d)", kind, snap.job_id, resumes)
        return True

    def shutdown(self) -> None:
        """Stop every job (each checkpoints as its work allows); with a store they are
        recorded INTERRUPTED, and recover() in the next process resumes them."""
        with self._lock:
            self._closing = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job._shutdown = True
            job._cancel.set()
            with job._changed:
                queued = job.state == QUEUED
            if queued:
                self._set(job, INTERRUPTED, "the service stopped before it started; it "
                          "starts when the service starts again")
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stopping.set()

    def recover_in_background(self, resumers: Mapping[str, Resumer]) -> threading.Thread:
        """recover() now, off the caller's thread (the server is up meanwhile), and again
        every rescan_s: owners on other hosts count as gone only after missed heartbeats,
        and in a rolling update the old process stops its jobs after this one started."""
        assert self.store is not None
        rescan_s = self.store.rescan_s

        def run() -> None:
            first = True
            while first or not self._stopping.wait(rescan_s):
                try:
                    self.recover(resumers)
                except Exception:  # storage down: the next pass tries again
                    log.exception("cannot resume the interrupted jobs")
                finally:
                    first = False
                    self._recovering.clear()

        self._recovering.set()
        thread = threading.Thread(target=run, name="job-recover", daemon=True)
        thread.start()
        return thread

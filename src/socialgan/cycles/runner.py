"""Cycles as durable jobs of kind "cycle": one at a time, a history, resume after a restart.

Two cycles never run at once: a cycle asked for while another runs (in this process or,
per its heartbeat, in another) is not started but recorded as skipped, naming the one that
was running, so a schedule's missed beats show in the history.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any

from socialgan.audience.choose import MODES as CHOOSE_MODES
from socialgan.cycles.run import HASHTAG_PLACEHOLDER, cycle_work
from socialgan.errors import InvalidArgument, quote
from socialgan.job_store import JobStore, page_of
from socialgan.jobs import CANCELLED, JobRunner, JobSnapshot, Work
from socialgan.pipeline import CAPTION_MODES, PipelineOptions, check_options
from socialgan.publishing.mastodon import VISIBILITIES as MASTODON_VISIBILITIES
from socialgan.publishing.registry import TARGET_NAMES
from socialgan.rpc.requests import MAX_STRING_CHARS
from socialgan.storage import ObjectStore
from socialgan.supervisor import Endpoints
from socialgan.validation import check_identifier, check_length, normalize_hashtag

CYCLE = "cycle"  # the job kind (jobs/cycle/ in storage)
MAX_SECONDS = 7 * 24 * 3600.0  # a budget beyond a week is a typo
TRIGGERS = ("cli", "schedule", "dashboard", "api")
VISIBILITIES = ("", *MASTODON_VISIBILITIES)  # "": the publisher's MASTODON_VISIBILITY


def check_cycle_options(opts: PipelineOptions) -> PipelineOptions:
    """The options, checked as the stages would check them, before anything starts;
    InvalidArgument names the field (options.<name>)."""
    if opts.choose not in CHOOSE_MODES:
        raise InvalidArgument("options.choose", f"{quote(opts.choose)} is not one of "
                              f"{', '.join(CHOOSE_MODES)}")
    if opts.choose == "manual":
        opts = dataclasses.replace(opts, hashtag=normalize_hashtag(opts.hashtag,
                                                                   "options.hashtag"))
    elif opts.hashtag:
        raise InvalidArgument("options.hashtag", f"is only for choose mode manual, not "
                              f"{opts.choose}")
    check_length(opts.source, "options.source", MAX_STRING_CHARS)
    if not opts.source.strip():
        raise InvalidArgument("options.source", "is empty; give a source spec such as "
                              "'mastodon' or 'folder:pictures/{hashtag}'")
    if "{" in opts.source.replace(HASHTAG_PLACEHOLDER, ""):
        raise InvalidArgument("options.source", f"the only placeholder is "
                              f"{HASHTAG_PLACEHOLDER}, in {quote(opts.source)}")
    if opts.limit is not None and not 1 <= opts.limit <= 1_000_000:
        raise InvalidArgument("options.limit", f"must be 1 to 1000000 when given, not "
                              f"{opts.limit}")
    for name in ("seconds", "caption_seconds"):
        value = getattr(opts, name)
        if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
            raise InvalidArgument(f"options.{name}", f"must be 0 to {MAX_SECONDS:.0f} s, "
                                  f"not {value}")
    if not 0 <= opts.steps <= 10_000_000:
        raise InvalidArgument("options.steps", f"must be 0 to 10000000, not {opts.steps}")
    if opts.steps == 0 and opts.seconds == 0:
        raise InvalidArgument("options.steps", "set steps or seconds: the training budget")
    if opts.target not in TARGET_NAMES:
        raise InvalidArgument("options.target", f"{quote(opts.target)} is not one of "
                              f"{', '.join(TARGET_NAMES)}")
    if opts.visibility not in VISIBILITIES:
        raise InvalidArgument("options.visibility", f"{quote(opts.visibility)} is not one "
                              f"of {', '.join(VISIBILITIES[1:])}")
    if opts.caption not in CAPTION_MODES:
        raise InvalidArgument("options.caption", f"{quote(opts.caption)} is not one of "
                              f"{', '.join(CAPTION_MODES)}")
    try:
        check_options(opts, model_sizes=False)
    except InvalidArgument as exc:
        raise InvalidArgument(f"options.{exc.field}", str(exc).split(": ", 1)[-1]) from None
    return opts


def options_record(opts: PipelineOptions) -> dict[str, Any]:
    return dataclasses.asdict(opts)


def recorded_options(record: dict[str, Any]) -> PipelineOptions:
    """The options a run record holds (as recorded: for showing them)."""
    fields = {f.name for f in dataclasses.fields(PipelineOptions)}
    return PipelineOptions(**{"hashtag": "", "source": "",
                              **{k: v for k, v in record.items() if k in fields}})


def options_from_record(record: dict[str, Any]) -> PipelineOptions:
    """The options a run record holds, checked again (to resume the run)."""
    return check_cycle_options(recorded_options(record))


class CycleRunner:
    """Starts, lists and resumes cycles; the publisher's CycleService is a thin layer on it."""

    def __init__(self, store: ObjectStore, endpoints: Endpoints | None = None,
                 runner: JobRunner | None = None):
        self.store = store
        self.jobs = runner or JobRunner(max_concurrent=2, store=JobStore(store))
        assert self.jobs.store is not None, "cycles are durable jobs: they need a JobStore"
        self._endpoints = endpoints
        self._starting = threading.Lock()  # the overlap check and the start are one step

    @property
    def endpoints(self) -> Endpoints:
        # Read when the first cycle starts: a publisher without the other services'
        # addresses still publishes and chooses.
        if self._endpoints is None:
            self._endpoints = Endpoints.from_env()
        return self._endpoints

    def _work(self, request: dict[str, Any]) -> Work:
        return cycle_work(self.store, self.endpoints, options_from_record(request["options"]))

    def start(self, opts: PipelineOptions, trigger: str = "api") -> JobSnapshot:
        """Start a cycle, or record it as skipped when another one runs."""
        if trigger not in TRIGGERS:
            raise InvalidArgument("trigger", f"{quote(trigger)} is not one of "
                                  f"{', '.join(TRIGGERS)}")
        opts = check_cycle_options(opts)
        request = {"options": options_record(opts), "trigger": trigger}
        with self._starting:
            run_id = new_run_id()
            running = self.running()
            if running:
                return self._record_skipped(run_id, request, running)
            work = self._work(request)
            return self.jobs.start(CYCLE, run_id, work, request).snapshot()

    def running(self) -> str:
        """The id of the cycle that runs now, here or in another live process, or is due to
        resume after a restart ('' if none)."""
        store = self.jobs.store
        assert store is not None
        for record in store.active_records(CYCLE):
            return record["job_id"]
        return ""

    def _record_skipped(self, run_id: str, request: dict[str, Any],
                        running: str) -> JobSnapshot:
        now = time.time()
        snap = JobSnapshot(run_id, CYCLE, CANCELLED, f"skipped: cycle {running} was running",
                           now, now, 0.0, {"skipped_because": running}, 1, request)
        self.jobs.store.save(snap)
        return snap

    def get(self, run_id: str) -> JobSnapshot:
        return self.jobs.snapshot(check_identifier(run_id, "run_id"), CYCLE)

    def watch(self, run_id: str, is_active=lambda: True):
        return self.jobs.watch(check_identifier(run_id, "run_id"), CYCLE, is_active)

    def cancel(self, run_id: str) -> JobSnapshot:
        return self.jobs.cancel(check_identifier(run_id, "run_id"), CYCLE)

    def page(self, page_size: int, page_token: str) -> tuple[list[JobSnapshot], str]:
        """One page of the history, newest first (run ids sort by their start time)."""
        page, next_token = page_of(self.jobs.job_ids(CYCLE), page_size, page_token,
                                   newest_first=True)
        return [self.jobs.snapshot(i, CYCLE) for i in page], next_token

    def resume_interrupted(self) -> None:
        """In the background: resume the cycles a restart interrupted, each at its stage."""
        self.jobs.recover_in_background({CYCLE: self._work})

    def shutdown(self) -> None:
        self.jobs.shutdown()


def new_run_id() -> str:
    """cycle-<UTC time to the millisecond>-<random>: sorts by start time."""
    import secrets

    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"
    return f"cycle-{stamp}-{secrets.token_hex(3)}"

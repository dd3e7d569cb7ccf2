"""Background jobs: progress is watchable, cancellation stops work, failures are reported."""

from __future__ import annotations

import threading

import pytest

from socialgan import jobs
from socialgan.errors import FailedPrecondition, NotFound


@pytest.fixture
def runner():
    r = jobs.JobRunner(max_concurrent=2)
    yield r
    r.shutdown()


def test_watch_sees_progress_until_success(runner):
    def work(job):
        for i in range(1, 4):
            job.update(fraction_done=i / 3, step=i)
        return "all done"

    job = runner.start("test", "j1", work)
    snaps = list(job.watch())
    assert snaps[-1].state == jobs.SUCCEEDED and snaps[-1].message == "all done"
    assert snaps[-1].progress["step"] == 3 and snaps[-1].fraction_done == 1.0


def test_cancel_stops_the_work_at_its_next_update(runner):
    started, release = threading.Event(), threading.Event()

    def work(job):
        started.set()
        release.wait(5)
        job.update(step=1)  # raises Cancelled
        raise AssertionError("not reached")

    job = runner.start("test", "j2", work)
    started.wait(5)
    runner.cancel("j2")
    release.set()
    assert list(job.watch())[-1].state == jobs.CANCELLED


def test_a_failing_job_reports_why_and_the_runner_survives(runner):
    job = runner.start("test", "j3", lambda job: 1 / 0)
    final = list(job.watch())[-1]
    assert final.state == jobs.FAILED and "ZeroDivisionError" in final.message
    assert list(runner.start("test", "j4", lambda job: None).watch())[-1].state == jobs.SUCCEEDED


def test_unknown_job_is_not_found_and_running_ids_are_not_reused(runner):
    with pytest.raises(NotFound):
        runner.get("nope")
    gate = threading.Event()
    runner.start("test", "j5", lambda job: gate.wait(5))
    with pytest.raises(FailedPrecondition):
        runner.start("test", "j5", lambda job: None)
    gate.set()

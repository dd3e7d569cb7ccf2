"""Issue 9 item 10: jobs survive restarts. Scrape, filter and training jobs are recorded in
storage: a restarted service answers Get/Watch/Cancel for them, List RPCs page through
them, a filter outlives its client's stream, and a trainer killed with SIGKILL mid-run
resumes the run when it starts again. Real gRPC on loopback, real service processes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from services.scraper.server import SCRAPE, ScraperServicer
from services.scraper.server import register as register_scraper
from services.trainer.server import FILTER, TRAINING, TrainerServicer
from services.trainer.server import register as register_trainer
from socialgan import cli, jobs
from socialgan.errors import FailedPrecondition
from socialgan.filtering import build_dataset
from socialgan.job_store import MAX_PAGE_SIZE, JobStore
from socialgan.jobs import JobRunner
from socialgan.rpc.client import free_port, open_channel, wait_healthy
from socialgan.rpc.server import start_server
from socialgan.storage import keys
from socialgan.training import latest_pointer
from socialgan.v1 import common_pb2, scraper_pb2, scraper_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_image_server import ImageServer

ROOT = Path(__file__).resolve().parents[1]
TINY = {"ngf": "8", "ndf": "8", "batch_size": "8", "log_every": "2",
        "checkpoint_metric_images": "16", "metric_images": "16"}
STATE = common_pb2.JobState


@pytest.fixture
def emoji_store(store, twemoji_paths):
    for path in twemoji_paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return store


class Trainer:
    """A trainer service in this process; stop() is what SIGTERM does to the real one."""

    def __init__(self, store):
        self.servicer = TrainerServicer(store, job_store=JobStore(store, heartbeat_s=0.2))
        self.running = start_server("trainer", lambda s: register_trainer(
            s, store, self.servicer), port=0, token=TEST_TOKEN)
        self.channel = open_channel(f"127.0.0.1:{self.running.port}", TEST_TOKEN)
        self.stub = trainer_pb2_grpc.TrainerServiceStub(self.channel)

    def stop(self):
        self.channel.close()
        self.running.stop(grace=0)
        self.servicer.shutdown()


def test_a_restarted_trainer_answers_for_runs_and_filters_an_earlier_process_ran(emoji_store,
                                                                               capsys):
    first = Trainer(emoji_store)
    try:
        list(first.stub.FilterDataset(trainer_pb2.FilterDatasetRequest(
            hashtag="emoji", dataset_id="ds"), timeout=60))
        first.stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id="ds", model="dcgan", run_id="done-run", options=TINY,
            budget=trainer_pb2.TrainingBudget(steps=2), checkpoint_every=2))
        assert list(first.stub.WatchTraining(trainer_pb2.WatchTrainingRequest(
            run_id="done-run"), timeout=60))[-1].status.state == STATE.JOB_STATE_SUCCEEDED
    finally:
        first.stop()

    second = Trainer(emoji_store)  # a new process: nothing in memory
    try:
        got = second.stub.GetTraining(trainer_pb2.GetTrainingRequest(run_id="done-run"))
        assert got.status.state == STATE.JOB_STATE_SUCCEEDED and got.step == 2
        assert got.model == "dcgan" and got.export_prefix == keys.model_prefix("done-run")
        watched = list(second.stub.WatchTraining(trainer_pb2.WatchTrainingRequest(
            run_id="done-run"), timeout=10))
        assert [w.status.state for w in watched] == [STATE.JOB_STATE_SUCCEEDED]
        cancelled = second.stub.CancelTraining(trainer_pb2.CancelTrainingRequest(
            run_id="done-run"))
        assert cancelled.status.state == STATE.JOB_STATE_SUCCEEDED  # too late: stays done
        filtered = second.stub.GetFilter(trainer_pb2.GetFilterRequest(dataset_id="ds"))
        assert filtered.status.state == STATE.JOB_STATE_SUCCEEDED
        assert filtered.progress.dataset.kept == 48 and filtered.hashtag == "emoji"
        runs = second.stub.ListTrainings(trainer_pb2.ListTrainingsRequest())
        assert [r.run_id for r in runs.runs] == ["done-run"] and runs.next_page_token == ""
        assert cli.main(["list", "runs", "--address", f"127.0.0.1:{second.running.port}"]) == 0
        assert capsys.readouterr().out.startswith("done-run  succeeded  dcgan on ds, step 2/2")
    finally:
        second.stop()


def test_a_filter_outlives_its_client_and_a_reconnecting_client_gets_the_dataset(emoji_store):
    trainer = Trainer(emoji_store)
    try:
        stream = trainer.stub.FilterDataset(trainer_pb2.FilterDatasetRequest(
            hashtag="emoji", dataset_id="hung-up"), timeout=60)
        assert next(stream).dataset_id == "hung-up"
        stream.cancel()  # the client hangs up at the first message

        final = list(trainer.stub.WatchFilter(trainer_pb2.WatchFilterRequest(
            dataset_id="hung-up"), timeout=60))[-1]
        assert final.status.state == STATE.JOB_STATE_SUCCEEDED, final.status.message
        assert final.progress.dataset.dataset_id == "hung-up"
        assert trainer.stub.GetDataset(trainer_pb2.GetDatasetRequest(
            dataset_id="hung-up")).kept == final.progress.dataset.kept == 48
        # StartFilter: the same job, answered at once.
        started = trainer.stub.StartFilter(trainer_pb2.FilterDatasetRequest(
            hashtag="#Emoji", dataset_id="as-job"))
        assert started.dataset_id == "as-job" and started.hashtag == "emoji"
        assert started.status.state in (STATE.JOB_STATE_QUEUED, STATE.JOB_STATE_RUNNING)
        assert list(trainer.stub.WatchFilter(trainer_pb2.WatchFilterRequest(
            dataset_id="as-job"), timeout=60))[-1].status.state == STATE.JOB_STATE_SUCCEEDED
        # A dataset built without the service (the CLI) is listed beside the jobs.
        build_dataset(emoji_store, "emoji", dataset_id="by-cli")
        listed = trainer.stub.ListDatasets(trainer_pb2.ListDatasetsRequest())
        assert [d.dataset_id for d in listed.datasets] == ["as-job", "by-cli", "hung-up"]
        assert all(d.progress.dataset.kept == 48 for d in listed.datasets)
    finally:
        trainer.stop()


def test_list_rpcs_page_through_every_recorded_job_with_a_bounded_page(store):
    job_store = JobStore(store)
    for i in range(MAX_PAGE_SIZE + 3):  # records an earlier process left
        job_store.save(jobs.JobSnapshot(
            f"scrape-tag-{i:04d}", SCRAPE, jobs.SUCCEEDED, "done", 1.0, 2.0, 1.0,
            {"new": i}, 3, {"hashtag": "tag", "source": "urls"}))
    running = start_server("scraper", lambda s: register_scraper(s, store), port=0,
                           token=TEST_TOKEN)
    try:
        stub = scraper_pb2_grpc.ScraperServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        page = stub.ListScrapes(scraper_pb2.ListScrapesRequest(page_size=2))
        assert [j.status.job_id for j in page.jobs] == ["scrape-tag-0000", "scrape-tag-0001"]
        page = stub.ListScrapes(scraper_pb2.ListScrapesRequest(
            page_size=2, page_token=page.next_page_token))
        assert [j.counts.new for j in page.jobs] == [2, 3] and page.jobs[0].hashtag == "tag"
        huge = stub.ListScrapes(scraper_pb2.ListScrapesRequest(page_size=10**9))
        assert len(huge.jobs) == MAX_PAGE_SIZE and huge.next_page_token
        last = stub.ListScrapes(scraper_pb2.ListScrapesRequest(
            page_size=10**9, page_token=huge.next_page_token))
        assert len(last.jobs) == 3 and last.next_page_token == ""
        for request, field in ((scraper_pb2.ListScrapesRequest(page_size=-1), "page_size"),
                               (scraper_pb2.ListScrapesRequest(page_token="../x"),
                                "page_token")):
            with pytest.raises(grpc.RpcError) as err:
                stub.ListScrapes(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in err.value.details()
        assert stub.GetScrape(scraper_pb2.GetScrapeRequest(
            job_id="scrape-tag-0007")).counts.new == 7
    finally:
        running.stop(grace=0)


def test_a_job_whose_process_died_reads_interrupted_and_can_be_cancelled(store):
    dead = JobStore(store)
    dead.owner = "some-host:1:0000"  # gone: it never beats again
    snap = jobs.JobSnapshot("scrape-lost-1", SCRAPE, jobs.RUNNING, "page 3", 1.0, 2.0, 0.4,
                            {"new": 5}, 9, {"hashtag": "lost", "source": "urls"})
    dead.save(snap)
    record_key = keys.job_record_key(SCRAPE, "scrape-lost-1")
    record = store.get_json(record_key)
    record["heartbeat_unix"] = time.time() - 3600
    store.put_json(record_key, record)
    running = start_server("scraper", lambda s: register_scraper(s, store), port=0,
                           token=TEST_TOKEN)
    try:
        stub = scraper_pb2_grpc.ScraperServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        got = stub.GetScrape(scraper_pb2.GetScrapeRequest(job_id="scrape-lost-1"))
        assert got.status.state == STATE.JOB_STATE_INTERRUPTED and got.counts.new == 5
        assert "start it again" in got.status.message
        cancelled = stub.CancelScrape(scraper_pb2.CancelScrapeRequest(job_id="scrape-lost-1"))
        assert cancelled.status.state == STATE.JOB_STATE_CANCELLED
        assert store.get_json(record_key)["state"] == jobs.CANCELLED  # never resumed now
    finally:
        running.stop(grace=0)


def service_process(store, port: int) -> subprocess.Popen:
    env = {**os.environ, "STORAGE_BACKEND": "local", "STORAGE_DIR": str(store.root),
           "PORT": str(port), "LISTEN_HOST": "127.0.0.1", "SOCIALGAN_API_TOKEN": TEST_TOKEN}
    # Its log goes to a file: an unread pipe could fill and stall the service.
    log = open(store.root.parent / "trainer.log", "a")  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen([sys.executable, "-m", "services.trainer.server"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
    finally:
        log.close()


def test_the_trainer_service_killed_mid_run_resumes_the_run_when_it_starts_again(emoji_store):
    build_dataset(emoji_store, "emoji", dataset_id="ds")
    port = free_port()
    address = f"127.0.0.1:{port}"
    service = service_process(emoji_store, port)
    try:
        wait_healthy(address, timeout=60)
        stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(address, TEST_TOKEN))
        stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id="ds", run_id="kill-svc", model="dcgan", checkpoint_every=4,
            options={**TINY, "sample_count": "4", "checkpoint_metric_images": "0"},
            budget=trainer_pb2.TrainingBudget(steps=1_000_000)), timeout=30)
        deadline = time.monotonic() + 60
        while (latest_pointer(emoji_store, "kill-svc") or {}).get("step", 0) < 8:
            assert service.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        service.send_signal(signal.SIGKILL)  # no shutdown, no checkpoint: a lost pod
        service.wait(timeout=30)
        killed_at = latest_pointer(emoji_store, "kill-svc")["step"]
    finally:
        service.kill()

    service = service_process(emoji_store, port)  # the restart: nobody asks for the run
    try:
        wait_healthy(address, timeout=60)
        stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(address, TEST_TOKEN))
        for snap in stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id="kill-svc"),
                                       timeout=60):
            if snap.status.state == STATE.JOB_STATE_RUNNING and snap.step > killed_at:
                break
        assert snap.status.state == STATE.JOB_STATE_RUNNING and snap.step > killed_at, snap
        assert snap.model == "dcgan" and snap.total_steps == 1_000_000
        # From its checkpoint, not from step 0, with the recorded request.
        assert emoji_store.get_json(keys.run_options_key("kill-svc"))["resumed_from_step"] \
            == killed_at
        listed = stub.ListTrainings(trainer_pb2.ListTrainingsRequest(), timeout=10)
        assert [r.run_id for r in listed.runs] == ["kill-svc"]
        service.send_signal(signal.SIGTERM)  # a rolling update: checkpoint, record, exit
        assert service.wait(timeout=60) == 0, (
            emoji_store.root.parent / "trainer.log").read_text()[-2000:]
    finally:
        service.kill()
    record = emoji_store.get_json(keys.job_record_key(TRAINING, "kill-svc"))
    assert record["state"] == jobs.INTERRUPTED and record["resume_on_start"]
    assert latest_pointer(emoji_store, "kill-svc")["step"] == record["progress"]["step"]


def test_a_stopped_service_records_its_run_interrupted_and_the_next_one_resumes_it(
        emoji_store):
    build_dataset(emoji_store, "emoji", dataset_id="ds")
    first = Trainer(emoji_store)
    try:
        first.stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id="ds", run_id="rolled", options=TINY, checkpoint_every=1000,
            budget=trainer_pb2.TrainingBudget(steps=1_000_000)))
        for snap in first.stub.WatchTraining(trainer_pb2.WatchTrainingRequest(
                run_id="rolled"), timeout=60):
            if snap.step > 0:
                break
    finally:
        first.stop()  # SIGTERM in a rolling update: the run checkpoints and stops
    record = emoji_store.get_json(keys.job_record_key(TRAINING, "rolled"))
    assert record["state"] == jobs.INTERRUPTED and record["resume_on_start"]
    stopped_at = latest_pointer(emoji_store, "rolled")["step"]

    second = Trainer(emoji_store)
    try:
        second.servicer.resume_interrupted()
        for snap in second.stub.WatchTraining(trainer_pb2.WatchTrainingRequest(
                run_id="rolled"), timeout=60):
            if snap.step > stopped_at:
                break
        assert snap.status.state == STATE.JOB_STATE_RUNNING
        assert emoji_store.get_json(keys.run_options_key("rolled"))["resumed_from_step"] \
            == stopped_at
        assert second.stub.GetFilter(trainer_pb2.GetFilterRequest(
            dataset_id="ds")).status.state == STATE.JOB_STATE_SUCCEEDED  # built by the CLI
        assert FILTER not in {k.split("/")[1] for k in emoji_store.list("jobs/")}
    finally:
        second.stop()


def test_a_scrape_stopped_by_a_restart_continues_under_its_id_in_the_next_process(
        store, monkeypatch, twemoji_paths):
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("SCRAPER_PER_HOST_LIMIT", "2")  # slow enough to stop half-way
    with ImageServer(slow_seconds=0.1) as server:
        urls = [server.url(f"/slow/{p.name}") for p in twemoji_paths[:24]]
        request = scraper_pb2.StartScrapeRequest(
            hashtag="emoji", source=scraper_pb2.SourceSpec(
                url_list=scraper_pb2.UrlListSource(urls=urls)))
        first = ScraperServicer(store, JobRunner(store=JobStore(store, heartbeat_s=0.2)))
        job_id = first.StartScrape(request, None).status.job_id
        deadline = time.monotonic() + 30
        while first.runner.snapshot(job_id, SCRAPE).progress.get("new", 0) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.runner.shutdown()  # SIGTERM
        assert first.runner.snapshot(job_id, SCRAPE).state == jobs.INTERRUPTED

        second = ScraperServicer(store, JobRunner(store=JobStore(store, heartbeat_s=0.2)))
        second.resume_interrupted()
        final = list(second.runner.watch(job_id, SCRAPE))[-1]
        second.runner.shutdown()
    assert final.state == jobs.SUCCEEDED, final.message
    stored = [k for k in store.list(keys.raw_prefix("emoji")) if k.endswith(".png")]
    assert len(stored) == 24  # each image stored once, across both processes
    assert final.progress["skipped"] >= 2  # what the first process stored was not fetched again


def test_a_cancel_taken_by_another_replica_stops_the_job_where_it_runs(store):
    here = JobRunner(store=JobStore(store, heartbeat_s=0.1))
    here.store.owner = "replica-a:1:0a0a"  # another pod: alive while its heartbeat is
    there = JobRunner(store=JobStore(store, heartbeat_s=0.1))

    def work(job):
        while True:
            job.update(step=1)
            time.sleep(0.01)

    try:
        here.start("test", "shared", work)
        deadline = time.monotonic() + 10
        while there.snapshot("shared", "test").state != jobs.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(FailedPrecondition, match="already running"):
            there.start("test", "shared", lambda job: None)  # one run per id, cluster-wide
        answer = there.cancel("shared", "test")
        assert answer.state == jobs.RUNNING and "cancel requested" in answer.message
        final = list(there.watch("shared", "test", poll=0.05))[-1]
        assert final.state == jobs.CANCELLED
    finally:
        here.shutdown()
        there.shutdown()


def test_a_job_that_keeps_killing_its_process_is_not_resumed_forever(store):
    crashed = JobStore(store)
    crashed.owner = "other-host:1:0000"
    snap = jobs.JobSnapshot("oom", TRAINING, jobs.RUNNING, "step 3", 1.0, 2.0, 0.1, {}, 4,
                            {"run_id": "oom"})
    crashed.save(snap, resumes=jobs.MAX_AUTO_RESUMES, attempt_started_unix=time.time() - 5)
    record = store.get_json(keys.job_record_key(TRAINING, "oom"))
    record["heartbeat_unix"] = time.time() - 60
    store.put_json(keys.job_record_key(TRAINING, "oom"), record)
    runner = JobRunner(store=JobStore(store))
    try:
        assert runner.recover({TRAINING: lambda request: pytest.fail("resumed")}) == []
        got = runner.snapshot("oom", TRAINING)
        assert got.state == jobs.INTERRUPTED and "not resumed automatically" in got.message
        assert runner.recover({TRAINING: lambda request: pytest.fail("resumed")}) == []
    finally:
        runner.shutdown()


def test_job_records_keep_the_same_contract_on_both_storage_backends(any_store):
    job_store = JobStore(any_store)
    for job_id in ("b-run", "a-run", "c-run"):
        job_store.save(jobs.JobSnapshot(job_id, TRAINING, jobs.RUNNING, "step 1", 1.0, 2.0,
                                        0.5, {"step": 1}, 2, {"steps": 9}), resumes=1)
    record = job_store.load(TRAINING, "a-run")
    assert record["owner"] == job_store.owner and record["resumes"] == 1
    assert job_store.snapshot(record).state == jobs.RUNNING  # its owner (us) is alive
    assert job_store.load(TRAINING, "none") is None
    job_store.request_cancel(TRAINING, "a-run")
    assert list(job_store.job_ids(TRAINING)) == ["a-run", "b-run", "c-run"]  # not the marker
    assert job_store.cancel_requested(TRAINING, "a-run")
    job_store.clear_cancel(TRAINING, "a-run")
    assert not job_store.cancel_requested(TRAINING, "a-run")


def test_in_a_rolling_update_the_new_process_takes_over_what_the_old_one_stops(store):
    def endless(job):
        while True:
            job.update(step=1)
            time.sleep(0.01)

    old = JobRunner(store=JobStore(store, heartbeat_s=0.1))
    old.store.owner = "pod-a:1:0a0a"  # the old pod, alive
    new = JobRunner(store=JobStore(store, heartbeat_s=0.1))
    resumed = threading.Event()

    def resume(request):
        assert request == {"n": 1}
        resumed.set()
        return endless

    try:
        old.start("test", "rolling", endless, {"n": 1})
        new.recover_in_background({"test": resume})  # the new pod is up first
        time.sleep(0.5)
        assert not resumed.is_set()  # the old pod still runs it: hands off
        old.shutdown()  # then the old pod gets SIGTERM
        assert resumed.wait(10)
        deadline = time.monotonic() + 10
        while new.snapshot("rolling", "test").state != jobs.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert store.exists(keys.job_active_key("test", "rolling"))
    finally:
        old.shutdown()
        new.shutdown()
    assert not store.exists(keys.job_active_key("test", "rolling")) or \
        store.get_json(keys.job_record_key("test", "rolling"))["resume_on_start"]

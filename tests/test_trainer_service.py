"""The trainer over real gRPC on loopback: filter, train, watch, cancel, and the errors."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from services.trainer.server import register, train_once
from socialgan.models.export import read_card
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import LocalObjectStore, keys
from socialgan.training import DEFAULT_MODEL
from socialgan.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from tests.conftest import TEST_TOKEN

TINY = {"ngf": "8", "ndf": "8", "batch_size": "16"}
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED,
            common_pb2.JOB_STATE_CANCELLED)


@pytest.fixture(scope="module")
def store(tmp_path_factory, twemoji_paths):
    store = LocalObjectStore(tmp_path_factory.mktemp("trainer") / "store")
    for path in twemoji_paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return store


@pytest.fixture(scope="module")
def stub(store):
    running = start_server("trainer", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    yield trainer_pb2_grpc.TrainerServiceStub(channel)
    channel.close()
    running.stop(grace=0)


@pytest.fixture(scope="module")
def dataset(stub):
    updates = list(stub.FilterDataset(
        trainer_pb2.FilterDatasetRequest(hashtag="#emoji", dataset_id="emoji-ds"), timeout=60))
    return updates[-1].dataset


def watch_to_end(stub, run_id: str) -> trainer_pb2.TrainingJob:
    snapshots = list(stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id=run_id),
                                        timeout=60))
    last = snapshots[-1] if snapshots else None
    assert last is not None and last.status.state in TERMINAL
    return last


def test_filter_streams_progress_and_ends_with_the_dataset(stub, dataset):
    assert dataset.dataset_id == "emoji-ds" and dataset.hashtag == "emoji"
    assert (dataset.width, dataset.height, dataset.kept) == (64, 64, 48)
    assert dataset.aspect == common_pb2.ASPECT_SQUARE
    assert dataset.shard_keys == [keys.dataset_shard_key("emoji-ds", 0)]
    assert stub.GetDataset(trainer_pb2.GetDatasetRequest(dataset_id="emoji-ds")) == dataset


def test_training_runs_to_an_exported_generator_and_get_reports_it(stub, store, dataset):
    started = stub.StartTraining(trainer_pb2.StartTrainingRequest(
        dataset_id=dataset.dataset_id, model="dcgan", run_id="svc-run", options=TINY,
        budget=trainer_pb2.TrainingBudget(steps=4), checkpoint_every=2))
    assert started.run_id == "svc-run" and started.total_steps == 4

    final = watch_to_end(stub, "svc-run")

    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
    assert final.step == 4 and final.samples_written == 2
    assert final.export_prefix == keys.model_prefix("svc-run")
    assert final.latest_checkpoint_key == keys.checkpoint_key("svc-run", 4)
    assert final.latest_sample_key == keys.run_sample_key("svc-run", 4)
    assert {"swd", "loss_d", "loss_g"} <= set(final.metrics)
    assert set(final.losses) == {"loss_d", "loss_g"}
    assert read_card(store, "svc-run")["hashtag"] == "emoji"
    got = stub.GetTraining(trainer_pb2.GetTrainingRequest(run_id="svc-run"))
    assert got.status.state == common_pb2.JOB_STATE_SUCCEEDED and got.step == 4


def test_a_run_without_an_id_gets_one_named_after_the_hashtag(stub, dataset):
    started = stub.StartTraining(trainer_pb2.StartTrainingRequest(
        dataset_id=dataset.dataset_id, options=TINY, budget=trainer_pb2.TrainingBudget(steps=1)))

    assert re.fullmatch(r"emoji-\d{8}-\d{6}-[0-9a-f]{4}", started.run_id)
    assert started.model == DEFAULT_MODEL
    assert watch_to_end(stub, started.run_id).status.state == common_pb2.JOB_STATE_SUCCEEDED


def test_cancel_stops_a_run_and_leaves_a_checkpoint_to_resume_from(stub, store, dataset):
    stub.StartTraining(trainer_pb2.StartTrainingRequest(
        dataset_id=dataset.dataset_id, run_id="svc-cancel", options=TINY,
        budget=trainer_pb2.TrainingBudget(steps=1_000_000), checkpoint_every=1_000_000))
    for snap in stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id="svc-cancel"),
                                   timeout=60):
        if snap.step > 0:
            break

    stub.CancelTraining(trainer_pb2.CancelTrainingRequest(run_id="svc-cancel"))
    final = watch_to_end(stub, "svc-cancel")

    assert final.status.state == common_pb2.JOB_STATE_CANCELLED
    assert final.latest_checkpoint_key == keys.checkpoint_key("svc-cancel", final.step)
    assert store.exists(final.latest_checkpoint_key)


def expect_error(call, code: grpc.StatusCode, *words: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)  # streams fail on first read
    assert err.value.code() == code, err.value.details()
    for word in words:
        assert word in err.value.details()


def test_an_unknown_dataset_is_not_found_naming_it(stub):
    expect_error(lambda: stub.StartTraining(trainer_pb2.StartTrainingRequest(
        dataset_id="nope", budget=trainer_pb2.TrainingBudget(steps=1))),
        grpc.StatusCode.NOT_FOUND, "nope")
    expect_error(lambda: stub.GetDataset(trainer_pb2.GetDatasetRequest(dataset_id="nope")),
                 grpc.StatusCode.NOT_FOUND, "nope")


@pytest.mark.parametrize("budget", [trainer_pb2.TrainingBudget(),
                                    trainer_pb2.TrainingBudget(steps=-5)])
def test_a_budget_without_a_positive_limit_is_invalid(stub, dataset, budget):
    expect_error(lambda: stub.StartTraining(trainer_pb2.StartTrainingRequest(
        dataset_id=dataset.dataset_id, budget=budget)), grpc.StatusCode.INVALID_ARGUMENT,
        "budget")


def test_bad_run_ids_models_and_options_are_invalid(stub, dataset):
    def start(**fields):
        return lambda: stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id=dataset.dataset_id, budget=trainer_pb2.TrainingBudget(steps=1),
            **fields))

    expect_error(start(run_id="../x"), grpc.StatusCode.INVALID_ARGUMENT, "run_id")
    expect_error(start(model="stylegan9"), grpc.StatusCode.INVALID_ARGUMENT, "model")
    expect_error(start(options={"ngff": "8"}), grpc.StatusCode.INVALID_ARGUMENT, "options.ngff")


def test_unknown_runs_are_not_found(stub):
    for call in (
        lambda: stub.GetTraining(trainer_pb2.GetTrainingRequest(run_id="ghost")),
        lambda: stub.CancelTraining(trainer_pb2.CancelTrainingRequest(run_id="ghost")),
        lambda: stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id="ghost")),
    ):
        expect_error(call, grpc.StatusCode.NOT_FOUND, "ghost")


def test_filter_errors_name_the_problem(stub):
    expect_error(lambda: stub.FilterDataset(trainer_pb2.FilterDatasetRequest(hashtag="nothing")),
                 grpc.StatusCode.NOT_FOUND, "#nothing")
    expect_error(lambda: stub.FilterDataset(trainer_pb2.FilterDatasetRequest(hashtag="../x")),
                 grpc.StatusCode.INVALID_ARGUMENT, "hashtag")
    expect_error(lambda: stub.FilterDataset(trainer_pb2.FilterDatasetRequest(
        hashtag="emoji", thresholds={"blur": 1.0})), grpc.StatusCode.INVALID_ARGUMENT,
        "thresholds.blur")


def test_calls_without_the_token_are_unauthenticated(stub, store):
    running = start_server("trainer", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            bare = trainer_pb2_grpc.TrainerServiceStub(channel)
            expect_error(lambda: bare.GetDataset(trainer_pb2.GetDatasetRequest(dataset_id="x")),
                         grpc.StatusCode.UNAUTHENTICATED)
    finally:
        running.stop(grace=0)


@pytest.fixture
def job_env(store, monkeypatch):
    """The one-shot `train` entry point reads the store from the environment."""
    monkeypatch.setenv("STORAGE_BACKEND", "local")
    monkeypatch.setenv("STORAGE_DIR", str(store.root))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in handlers.items():  # train_once installs its own
        signal.signal(sig, handler)


def test_the_job_entry_point_trains_a_run_to_completion(job_env, store, dataset):
    code = train_once(["--dataset-id", dataset.dataset_id, "--run-id", "job-run",
                       "--steps", "2", "--option", "ngf=8", "--option", "ndf=8",
                       "--option", "batch_size=8"])

    assert code == 0
    assert read_card(store, "job-run")["method"].endswith("2 steps on 48 images")


def test_the_job_entry_point_rejects_a_bad_request_with_exit_code_2(job_env, dataset):
    assert train_once(["--dataset-id", "nope", "--run-id", "job-bad", "--steps", "1"]) == 2


def test_sigterm_checkpoints_the_job_and_exits_143(job_env, store, dataset):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.trainer.server", "train", "--dataset-id",
         dataset.dataset_id, "--run-id", "job-term", "--steps", "1000000",
         "--checkpoint-every", "1000000", "--option", "ngf=8", "--option", "ndf=8",
         "--option", "batch_size=8"],
        cwd=root, env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not store.exists(keys.run_options_key("job-term")):  # training has started
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert store.exists(keys.checkpoint_latest_key("job-term"))

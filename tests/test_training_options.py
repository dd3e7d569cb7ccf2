"""Issue 9 item 5 (second bullet): every number a training request carries has a documented
range, checked when the run is requested (over gRPC and by the `train` job) before
anything is allocated; a run that goes non-finite fails and exports nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from pathlib import Path

import grpc
import pytest
import torch

from services.trainer.server import register, train_once
from socialgan.filtering import build_dataset
from socialgan.jobs import Cancelled
from socialgan.models import ARCHITECTURES
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import keys
from socialgan.training import RunSpec, latest_pointer, load_latest, save_checkpoint, train
from socialgan.training.config import RANGES, LoopOptions, option_ranges_markdown
from socialgan.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from tests.conftest import TEST_TOKEN

ROOT = Path(__file__).resolve().parents[1]
TINY = {"ngf": "8", "ndf": "8", "batch_size": "8", "metric_images": "8",
        "checkpoint_metric_images": "8"}
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED,
            common_pb2.JOB_STATE_CANCELLED)


def numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_every_numeric_option_and_request_field_has_a_range():
    loop = [f.name for f in dataclasses.fields(LoopOptions) if numeric(f.default)]
    arch = {name for _, _, defaults in ARCHITECTURES.values()
            for name, value in defaults.items() if numeric(value)}
    request = [f.name for f in dataclasses.fields(RunSpec) if numeric(f.default)]
    assert {"steps", "seconds", "seed", "checkpoint_every"} == set(request)
    assert set(loop) | arch | set(request) <= set(RANGES)


def test_the_readme_shows_the_ranges_the_code_checks():
    readme = (ROOT / "README.md").read_text()
    begin = readme.index("<!-- option-ranges:begin")
    table = readme[readme.index("\n", begin) + 1: readme.index("<!-- option-ranges:end -->")]
    assert table.strip() == option_ranges_markdown(), (
        "README's option table is stale: paste socialgan.training.config.option_ranges_markdown()")


@pytest.fixture(scope="module")
def store(tmp_path_factory, twemoji_paths):
    from socialgan.storage import LocalObjectStore

    store = LocalObjectStore(tmp_path_factory.mktemp("options") / "store")
    for path in twemoji_paths[:16]:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    build_dataset(store, "emoji", dataset_id="ds")
    return store


@pytest.fixture(scope="module")
def stub(store):
    running = start_server("trainer", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    yield trainer_pb2_grpc.TrainerServiceStub(channel)
    channel.close()
    running.stop(grace=0)


def start(stub, run_id: str, *, options=None, steps=2, seconds=0.0, **fields):
    return stub.StartTraining(trainer_pb2.StartTrainingRequest(
        dataset_id="ds", run_id=run_id, options={**TINY, **(options or {})},
        budget=trainer_pb2.TrainingBudget(steps=steps, seconds=seconds), **fields), timeout=30)


@pytest.mark.parametrize("fields, field, bounds", [
    ({"options": {"ngf": "10000000"}}, "options.ngf", "[1, 1024]"),  # 256 GB before
    ({"options": {"lr": "inf"}}, "options.lr", "(0, 1]"),  # trained to NaN and was served
    ({"options": {"lr": "nan"}}, "options.lr", "(0, 1]"),
    ({"options": {"lr": "-0.1"}}, "options.lr", "(0, 1]"),
    ({"options": {"nc": "4"}}, "options.nc", "[3, 3]"),  # a raw PyTorch error, late
    ({"options": {"nz": "0"}}, "options.nz", "[1, 1024]"),
    ({"options": {"beta1": "1"}}, "options.beta1", "[0, 1)"),
    ({"options": {"ema_decay": "nan"}}, "options.ema_decay", "[0, 1)"),
    ({"options": {"batch_size": "100000"}}, "options.batch_size", "[1, 4096]"),
    ({"options": {"metric_images": "1000000000"}}, "options.metric_images", "[1, 10000]"),
    ({"options": {"sample_seed": "-1"}}, "options.sample_seed", "[0, "),
    ({"seconds": math.nan}, "budget.seconds", "[0, 2592000]"),  # trained without a limit
    ({"seconds": math.inf}, "budget.seconds", "[0, 2592000]"),
    ({"steps": -1}, "budget.steps", "[0, 1000000000]"),
    ({"seed": -1}, "seed", "[0, 9223372036854775807]"),
    ({"checkpoint_every": 0}, "checkpoint_every", "[1, 1000000000]"),
    ({"checkpoint_every": -5}, "checkpoint_every", "[1, 1000000000]"),
])
def test_out_of_range_numbers_are_refused_at_start_naming_the_option_and_its_range(
        stub, store, fields, field, bounds):
    began = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        start(stub, "bad-run", **fields)

    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field in err.value.details() and bounds in err.value.details()
    assert time.monotonic() - began < 10  # refused up front, nothing allocated or trained
    assert not store.exists(keys.run_options_key("bad-run"))


def test_a_network_too_large_for_its_widths_is_refused_before_it_is_built(stub):
    # ngf=1024 is in range, but at 64 px it makes a 718M-parameter generator.
    with pytest.raises(grpc.RpcError) as err:
        start(stub, "huge", options={"ngf": "1024"})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "options.ngf" in err.value.details() and "parameters" in err.value.details()


def test_the_train_job_refuses_out_of_range_numbers_with_exit_code_2(store, monkeypatch,
                                                                     caplog):
    monkeypatch.setenv("STORAGE_BACKEND", "local")
    monkeypatch.setenv("STORAGE_DIR", str(store.root))
    caplog.set_level(logging.ERROR)
    args = ["--dataset-id", "ds", "--run-id", "job-bad", "--steps", "2"]

    assert train_once([*args, "--option", "lr=nan"]) == 2
    assert train_once([*args, "--seconds", "nan"]) == 2
    assert "options.lr" in caplog.text and "budget.seconds" in caplog.text
    assert not store.exists(keys.run_options_key("job-bad"))


# Non-finite training -----------------------------------------------------------------

def watch_to_end(stub, run_id: str) -> trainer_pb2.TrainingJob:
    snapshots = list(stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id=run_id),
                                        timeout=120))
    last = snapshots[-1] if snapshots else None
    assert last is not None and last.status.state in TERMINAL
    return last


def cancelled_at_step_2(store, run_id: str) -> None:
    """A run stopped at its first checkpoint (step 2): resumable, nothing exported yet."""
    def report(**progress):
        if progress.get("step", 0) >= 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train(store, RunSpec(run_id=run_id, dataset_id="ds", steps=100, checkpoint_every=2,
                             options=TINY), report=report, device="cpu")
    assert latest_pointer(store, run_id)["step"] == 2


def poison(store, run_id: str, part: str) -> None:
    """Overwrite the run's checkpoint with one weight of `part` NaN: what an overflow in
    the last interval leaves (no lr in range makes tiny nets diverge in a few steps)."""
    state = load_latest(store, run_id)
    name = next(n for n, t in state[part].items() if t.is_floating_point())
    state[part][name] = torch.full_like(state[part][name], math.nan)
    save_checkpoint(store, run_id, state["step"], state)


@pytest.mark.parametrize("part, named", [
    ("netD", "loss_d"),  # D's NaN makes both losses NaN at once
    ("netG_ema", "Generator"),  # the EMA is not trained on: only its weights tell
])
def test_a_run_that_goes_non_finite_fails_clearly_and_exports_nothing(stub, store, part,
                                                                     named):
    run_id = f"nan-{part.lower().replace('_', '-')}"
    cancelled_at_step_2(store, run_id)
    poison(store, run_id, part)

    start(stub, run_id, options={}, steps=6, checkpoint_every=2)  # resume it
    final = watch_to_end(stub, run_id)

    assert final.status.state == common_pb2.JOB_STATE_FAILED
    message = final.status.message
    assert "diverged" in message and "not finite" in message and named in message, message
    assert not store.exists(keys.model_card_key(run_id))  # nothing to serve
    assert not store.exists(keys.model_weights_key(run_id))
    assert latest_pointer(store, run_id)["step"] == 2  # no non-finite checkpoint either

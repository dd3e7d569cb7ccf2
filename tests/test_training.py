"""The DCGAN training loop on CPU with a tiny model: artefacts, export, resume, cancel, SWD."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from socialgan import metrics
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.filtering import build_dataset, load_dataset
from socialgan.jobs import Cancelled
from socialgan.models import generate_uint8
from socialgan.models.export import load_generator
from socialgan.storage import keys
from socialgan.training import RunSpec, latest_pointer, load_latest, loop, resolve_device, train

TINY = {"ngf": "8", "ndf": "8", "batch_size": "16", "log_every": "2"}


@pytest.fixture
def dataset_id(store, twemoji_paths):
    for path in twemoji_paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return build_dataset(store, "emoji", dataset_id="emoji-ds")["dataset_id"]


def spec(dataset_id: str, run_id: str = "run1", **kwargs) -> RunSpec:
    kwargs.setdefault("model", "dcgan")
    kwargs.setdefault("steps", 4)
    kwargs.setdefault("checkpoint_every", 2)
    return RunSpec(run_id=run_id, dataset_id=dataset_id, options=dict(TINY), **kwargs)


def test_a_short_run_writes_checkpoints_samples_history_and_an_exported_generator(
        store, dataset_id):
    result = train(store, spec(dataset_id, steps=6, checkpoint_every=3), device="cpu")

    assert result["step"] == 6 and result["samples_written"] == 2
    assert latest_pointer(store, "run1")["key"] == keys.checkpoint_key("run1", 6)
    assert store.exists(keys.checkpoint_key("run1", 3))
    sample = Image.open(io.BytesIO(store.get_bytes(keys.run_sample_key("run1", 6))))
    assert sample.size == (4 * 64 + 5 * 2,) * 2  # 16 images, 4 columns, 2px padding
    history = store.get_json(keys.run_metrics_key("run1"))
    assert [h["step"] for h in history["history"]] == [2, 4, 6]
    assert store.get_json(keys.run_options_key("run1"))["arch_options"]["ngf"] == 8

    netG, card = load_generator(store, "run1")
    assert generate_uint8(netG, seed=7, count=9, latent_dim=card["latent_dim"]).shape == \
        (9, 64, 64, 3)
    assert card["method"] == "DCGAN (PyTorch tutorial), 64x64, 6 steps on 48 images"
    assert card["hashtag"] == "emoji" and card["dataset_id"] == dataset_id
    assert set(card["metrics"]) == {"swd", "loss_d", "loss_g"}
    assert card["metrics"]["swd"] > 0
    assert result["export_prefix"] == keys.model_prefix("run1")
    assert {"swd", "swd_64", "swd_32", "swd_16", "loss_d", "loss_g"} <= set(result["metrics"])


def test_only_the_newest_checkpoints_are_kept(store, dataset_id):
    train(store, spec(dataset_id, steps=8, checkpoint_every=2), device="cpu")

    step_files = [k for k in store.list(keys.checkpoint_prefix("run1")) if k.endswith(".pt")]
    assert step_files == [keys.checkpoint_key("run1", 6), keys.checkpoint_key("run1", 8)]


def test_resume_continues_from_latest_and_matches_an_uninterrupted_run(store, dataset_id):
    train(store, spec(dataset_id, run_id="straight", steps=8, checkpoint_every=4), device="cpu")
    train(store, spec(dataset_id, run_id="split", steps=4, checkpoint_every=4), device="cpu")

    # Same run_id again, with a larger budget: dataset, model and options come from the run.
    result = train(store, RunSpec(run_id="split", steps=8, checkpoint_every=4), device="cpu")

    assert result["step"] == 8
    resumed, straight = load_latest(store, "split"), load_latest(store, "straight")
    assert resumed["optG"]["state"][0]["step"].item() == 8  # Adam's own counter went on
    for name, tensor in straight["netG"].items():
        torch.testing.assert_close(resumed["netG"][name], tensor, msg=name)
    options = store.get_json(keys.run_options_key("split"))
    assert options["resumed_from_step"] == 4


def test_cancelling_stops_the_run_and_checkpoints_where_it_stopped(store, dataset_id,
                                                                   monkeypatch):
    monkeypatch.setattr(loop, "REPORT_EVERY_S", 0.0)  # report (and so check) every step
    seen = []

    def report(message=None, fraction_done=None, **progress):
        seen.append(progress)
        if progress["step"] >= 3:
            raise Cancelled("run1 was cancelled")

    with pytest.raises(Cancelled):
        train(store, spec(dataset_id, steps=100, checkpoint_every=50), report=report,
              device="cpu")

    assert latest_pointer(store, "run1")["step"] == 3
    assert seen[-1]["latest_checkpoint_key"] == keys.checkpoint_key("run1", 3)
    assert not store.exists(keys.model_card_key("run1"))  # nothing exported


def test_a_seconds_budget_stops_the_run_in_time(store, dataset_id):
    result = train(store, spec(dataset_id, steps=0, seconds=1.0, checkpoint_every=10_000),
                   device="cpu")

    assert result["step"] > 0
    assert latest_pointer(store, "run1")["step"] == result["step"]


@pytest.mark.parametrize("change, field", [
    ({"options": {**TINY, "ngff": "8"}}, "options.ngff"),
    ({"options": {**TINY, "ngf": "eight"}}, "options.ngf"),
    ({"options": {**TINY, "batch_size": "0"}}, "options.batch_size"),
    ({"options": {**TINY, "image_size": "128"}}, "options.image_size"),
    ({"steps": 0, "seconds": 0}, "budget"),
    ({"steps": -1}, "budget.steps"),
    ({"model": "stylegan9"}, "model"),
    ({"run_id": "../x"}, "run_id"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
])
def test_bad_requests_are_rejected_before_training_naming_the_field(store, dataset_id,
                                                                   change, field):
    bad = spec(dataset_id)
    for name, value in change.items():
        setattr(bad, name, value)

    with pytest.raises(InvalidArgument) as err:
        train(store, bad, device="cpu")
    assert err.value.field == field


def test_an_unknown_dataset_is_not_found(store):
    with pytest.raises(NotFound, match="no dataset 'nope'"):
        train(store, spec("nope"), device="cpu")


def test_dcgan_refuses_a_banner_dataset(store, twemoji_paths):
    for path in twemoji_paths[:4]:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    build_dataset(store, "emoji", aspect="banner", dataset_id="wide",
                  thresholds={"max_upscale": 8.0, "max_aspect_mismatch": 8.0})

    with pytest.raises(InvalidArgument, match="makes 64x64 images.*192x64"):
        train(store, spec("wide"), device="cpu")


def test_a_resumed_run_keeps_its_dataset(store, dataset_id):
    train(store, spec(dataset_id, steps=2), device="cpu")

    with pytest.raises(InvalidArgument, match="resumed run keeps its dataset"):
        train(store, RunSpec(run_id="run1", dataset_id="other", steps=4), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_fails_clearly():
    with pytest.raises(FailedPrecondition, match="no CUDA device"):
        resolve_device("cuda")


def test_swd_is_zero_for_identical_sets_and_large_for_disjoint_ones(store, dataset_id):
    real, _ = load_dataset(store, dataset_id)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, real.shape, dtype=np.uint8)
    flat = np.full_like(real, 128)
    flat[:, :, 32:] = 40  # two flat halves: structure only at one edge

    same = metrics.compute(real, real.copy())
    halves = metrics.compute(real[:24], real[24:])
    to_noise = metrics.compute(real, noise)
    to_flat = metrics.compute(real, flat)

    assert set(same) == {"swd", "swd_64", "swd_32", "swd_16"}
    assert same["swd"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < halves["swd"] < to_noise["swd"] / 2  # other emoji are closer than noise
    assert to_noise["swd"] > 100 and to_flat["swd"] > 100


def test_an_unknown_metric_is_rejected():
    images = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(InvalidArgument, match="unknown metric 'is'"):
        metrics.compute(images, images, names=["is"])


def test_channels_last_is_a_layout_only_the_losses_match_nchw(store, dataset_id):
    # channels_last (the default on every device) changes memory layout, not the maths.
    runs = {}
    for value in ("true", "false"):
        run = spec(dataset_id, run_id=f"cl-{value}", steps=2, checkpoint_every=2)
        run.options.update(channels_last=value, log_every="1")
        train(store, run, device="cpu")
        runs[value] = store.get_json(keys.run_metrics_key(run.run_id))["history"]
    for on, off in zip(runs["true"], runs["false"], strict=True):
        assert on["loss_d"] == pytest.approx(off["loss_d"], rel=1e-3)
        assert on["loss_g"] == pytest.approx(off["loss_g"], rel=1e-3)

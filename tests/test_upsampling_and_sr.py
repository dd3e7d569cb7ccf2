"""Issue 15: resize-then-convolve upsampling in the default model's G (no dot lattice, old
model cards still load as they were made) and our own trainable upscaler (model sr-espcn:
trains on the full-size images, exports, and serves as upscaler own:<model_id>)."""

from __future__ import annotations

import hashlib
import io

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

from services.generator.server import register
from services.trainer.server import register as register_trainer
from socialgan.errors import InvalidArgument, NotFound
from socialgan.filtering import build_dataset, load_dataset
from socialgan.metrics import lattice_energy
from socialgan.models import arch_options, build_generator, generate_uint8
from socialgan.models.export import export_generator, load_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving.backends import InProcessBackend
from socialgan.serving.grid import generate_grid
from socialgan.storage import keys
from socialgan.training import RunSpec, prepare_run, train
from socialgan.training.config import DEFAULT_MODEL, parse_options
from socialgan.training.plan import check_image_size
from socialgan.training.sr import held_out_scores, load_full_size, split_held_out
from socialgan.v1 import (
    common_pb2,
    generator_pb2,
    generator_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tests.conftest import TEST_TOKEN

TINY = {"ngf": 8, "ndf": 8}


def period_two_share(model: str, options: dict, seed: int = 0) -> float:
    torch.manual_seed(seed)
    netG = build_generator(model, options).eval()
    with torch.no_grad():  # one latent for the whole batch: what G adds on its own
        out = netG(torch.ones(4, 100, 1, 1)) + 0 * netG(torch.randn(4, 100, 1, 1))
    return lattice_energy(out.permute(0, 2, 3, 1).numpy())


def export_card(store, model_id: str, options: dict, arch: str = "dcgan-diffaug") -> None:
    torch.manual_seed(0)
    export_generator(store, model_id, build_generator(arch, options), {
        "arch": arch, "arch_options": options, "latent_dim": 100, "width": 64,
        "height": 64, "hashtag": "emoji", "method": "random init, test"})


@pytest.fixture
def emoji_ds(store, twemoji_paths):
    for path in twemoji_paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return build_dataset(store, "emoji", dataset_id="emoji-ds", contact_sheets=False)


# -- resize-then-convolve ------------------------------------------------------------------


def test_lattice_energy_is_one_for_a_checkerboard_and_near_zero_for_real_images(emoji_ds,
                                                                                store):
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    assert lattice_energy(np.repeat(checker[None, ..., None], 3, -1)) == pytest.approx(1.0)
    assert lattice_energy(np.full((2, 64, 64, 3), 128, np.uint8)) == 0.0
    reals, _ = load_dataset(store, "emoji-ds")
    assert lattice_energy(reals) < 0.01


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_resize_conv_generator_draws_no_period_two_lattice_the_transposed_one_does(upsample):
    transposed = period_two_share("dcgan-diffaug", {**TINY, "upsample": "transposed"})
    resized = period_two_share("dcgan-diffaug", {**TINY, "upsample": upsample})
    assert transposed > 0.05  # the checkerboard of the strided transposed convolution
    assert resized < transposed / 20
    assert resized < 0.01


def test_new_default_runs_resize_conv_and_the_tutorial_dcgan_keeps_its_layers():
    _, arch = parse_options(DEFAULT_MODEL, {})
    assert arch["upsample"] == "nearest"
    assert "upsample" not in arch_options("dcgan")  # the tutorial's baseline, untouched
    tutorial = build_generator("dcgan", TINY)
    assert not any(isinstance(m, torch.nn.Upsample) for m in tutorial.modules())
    _, lapgan = parse_options("lapgan", {})
    assert lapgan["upsample"] == "transposed"
    with pytest.raises(InvalidArgument, match="options.upsample"):
        parse_options(DEFAULT_MODEL, {"upsample": "cubic"})


def test_a_card_written_before_the_option_loads_as_the_transposed_network_it_was(store):
    old = dict(TINY)  # what cards held before: no "upsample"
    export_card(store, "old", old)
    netG, card = load_generator(store, "old")
    assert "upsample" not in card["arch_options"]
    assert any(isinstance(m, torch.nn.ConvTranspose2d) and m.stride == (2, 2)
               for m in netG.modules())
    torch.manual_seed(0)
    made = build_generator("dcgan-diffaug", {**TINY, "upsample": "transposed"}).eval()
    assert np.array_equal(generate_uint8(netG, 3, 2, 100), generate_uint8(made, 3, 2, 100))
    export_card(store, "new", {**TINY, "upsample": "nearest"})
    assert any(isinstance(m, torch.nn.Upsample) for m in load_generator(store, "new")[0].modules())
    grid = generate_grid(store, InProcessBackend(store), "old", seed=1, count=4)
    assert (grid.width, grid.height) == (64, 64)


def test_a_run_started_before_the_option_resumes_with_its_transposed_network(store, emoji_ds):
    # What an older run left: its options file without "upsample" and a checkpoint pointer.
    saved = {**arch_options(DEFAULT_MODEL, TINY)}
    del saved["upsample"]
    store.put_json(keys.run_options_key("before"), {
        "run_id": "before", "dataset_id": "emoji-ds", "model": DEFAULT_MODEL,
        "options": {"ngf": "8", "ndf": "8"}, "arch_options": saved})
    store.put_json(keys.checkpoint_latest_key("before"), {"step": 10, "key": "x", "sha256": ""})
    plan = prepare_run(store, RunSpec(run_id="before", steps=20))
    assert plan.resume_step == 10 and plan.arch_options["upsample"] == "transposed"
    fresh = prepare_run(store, RunSpec(dataset_id="emoji-ds", steps=20, options=TINY))
    assert fresh.arch_options["upsample"] == "nearest"


# -- our own upscaler ------------------------------------------------------------------------

CLEAN = {"blur": "0", "noise": "0", "jpeg": "100"}



def test_sr_model_trains_on_full_size_images_and_beats_its_untrained_self(store, emoji_ds):
    # Only the x4 shrink (no blur, noise or JPEG): the held-out score asks exactly that.
    result = train(store, RunSpec(run_id="sr", dataset_id="emoji-ds", model="sr-espcn",
                                  steps=100, checkpoint_every=10**6, options=CLEAN),
                   device="cpu")
    net, card = load_generator(store, "sr")
    assert card["kind"] == "upscaler" and card["scale"] == 4
    assert result["export_prefix"] == "models/sr/" and result["step"] == 100
    _, held_out = split_held_out(load_full_size(store, store.get_json(
        keys.dataset_manifest_key("emoji-ds"))))
    untrained = build_generator("sr-espcn", card["arch_options"]).eval()
    before = held_out_scores(untrained, held_out, 4)["psnr"]
    after = held_out_scores(net.eval(), held_out, 4)["psnr"]
    assert after == pytest.approx(result["metrics"]["psnr"])
    assert after > before + 0.3, (before, after)
    with pytest.raises(InvalidArgument, match="options.crop"):
        prepare_run(store, RunSpec(dataset_id="emoji-ds", model="sr-espcn", steps=1,
                                   options={"crop": "62"}))
    with pytest.raises(InvalidArgument, match="options.channels"):
        prepare_run(store, RunSpec(dataset_id="emoji-ds", model="sr-espcn", steps=1,
                                   options={"channels": "100000"}))
    with pytest.raises(InvalidArgument, match="^model: sr-espcn is an upscaler"):
        check_image_size("sr-espcn", {}, 64, 1)  # `socialgan run` would end without a grid


@pytest.fixture
def sr_and_generator(store, emoji_ds):
    train(store, RunSpec(run_id="sr", dataset_id="emoji-ds", model="sr-espcn", steps=5,
                         checkpoint_every=10**6, options={"batch_size": "4"}), device="cpu")
    export_card(store, "gan", TINY)
    return store, InProcessBackend(store)


def test_generate_grid_with_the_own_upscaler_returns_the_asked_size(sr_and_generator):
    store, backend = sr_and_generator
    result = generate_grid(store, backend, "gan", seed=2, count=4, tile_size=(256, 256),
                           upscaler="own:sr")
    assert result.upscaler == "own:sr" and result.upscaler_note == ""
    assert (result.width, result.height) == (256, 256)
    assert Image.open(io.BytesIO(result.images[0])).size == (256, 256)
    grid = generate_grid(store, backend, "gan", seed=2, count=9, preset="instagram",
                         upscaler="own:sr")
    assert Image.open(io.BytesIO(grid.grid)).size == (1080, 1080)
    with pytest.raises(InvalidArgument, match="^model_id"):
        generate_grid(store, backend, "sr", count=4)  # an upscaler makes no images itself
    with pytest.raises(InvalidArgument, match="^upscaler"):
        generate_grid(store, backend, "gan", count=4, tile_size=(256, 256), upscaler="own:gan")
    with pytest.raises(NotFound, match="^upscaler"):
        generate_grid(store, backend, "gan", count=4, tile_size=(256, 256),
                      upscaler="own:missing")


def test_generate_grid_over_grpc_takes_upscaler_own_and_its_model_id(sr_and_generator):
    store, backend = sr_and_generator
    running = start_server("generator", lambda s: register(s, store, backend), port=0,
                           token=TEST_TOKEN)
    try:
        stub = generator_pb2_grpc.GeneratorServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        reply = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
            model_id="gan", seed=0, count=2, tile_size=generator_pb2.TileSize(width=192,
                                                                               height=192),
            upscaler=generator_pb2.UPSCALER_OWN, upscaler_model_id="sr"), timeout=60)
        assert reply.metadata.upscaler == "own:sr"
        assert (reply.metadata.width, reply.metadata.height) == (192, 192)
        for request, field in [
            (generator_pb2.GenerateGridRequest(model_id="gan", count=2,
                                               upscaler=generator_pb2.UPSCALER_OWN),
             "upscaler_model_id"),
            (generator_pb2.GenerateGridRequest(model_id="gan", count=2,
                                               upscaler_model_id="sr"), "upscaler_model_id"),
            (generator_pb2.GenerateGridRequest(model_id="gan", count=2,
                                               upscaler=generator_pb2.UPSCALER_OWN,
                                               upscaler_model_id="../x"), "upscaler_model_id"),
        ]:
            with pytest.raises(grpc.RpcError) as raised:
                stub.GenerateGrid(request, timeout=30)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert raised.value.details().startswith(field), raised.value.details()
    finally:
        running.stop(0)


def test_start_training_over_grpc_trains_and_exports_the_upscaler(store, emoji_ds):
    running = start_server("trainer", lambda s: register_trainer(s, store), port=0,
                           token=TEST_TOKEN)
    try:
        stub = trainer_pb2_grpc.TrainerServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        started = stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id="emoji-ds", model="sr-espcn", run_id="sr-svc", options=CLEAN,
            budget=trainer_pb2.TrainingBudget(steps=20)), timeout=30)
        assert started.model == "sr-espcn"
        final = list(stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id="sr-svc"),
                                        timeout=60))[-1]
        assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
        assert final.step == 20 and final.export_prefix == "models/sr-svc/"
        assert {"psnr", "psnr_bicubic"} <= set(final.metrics)
        assert "psnr" in final.status.message
        with pytest.raises(grpc.RpcError) as raised:
            stub.StartTraining(trainer_pb2.StartTrainingRequest(
                dataset_id="emoji-ds", model="sr-espcn", options={"scale": "8"},
                budget=trainer_pb2.TrainingBudget(steps=1)), timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith("options.scale")
    finally:
        running.stop(0)

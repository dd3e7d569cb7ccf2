"""The generator slice against a real TorchServe on free loopback ports.

One TorchServe (and one Generator gRPC server in front of it) for the whole module:
starting it and registering a model take seconds.
"""

from __future__ import annotations

import io
import shutil
import threading
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from PIL import Image

from services.generator.server import register
from socialgan.errors import InvalidArgument, NotFound
from socialgan.models.export import read_card
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving import wire
from socialgan.serving.backends import InProcessBackend, TorchServeBackend
from socialgan.serving.torchserve import TorchServeConfig, TorchServeProcess
from socialgan.storage import LocalObjectStore
from socialgan.v1 import generator_pb2, generator_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.test_generate_grid import export_tiny

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="TorchServe needs Java 17 (the set-up installs it)")

GRID_SIDE = 3 * 64 + 4 * 2  # 3x3 tiles of 64 px with 2 px padding around and between


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    store = LocalObjectStore(root / "store")
    export_tiny(store, "tiny-a", seed=0)
    config = TorchServeConfig.on_free_ports(root / "model-store")
    with TorchServeProcess(config, root / "ts") as torchserve:
        client = torchserve.client(store, timeout=30)
        backend = TorchServeBackend(client)
        running = start_server("generator", lambda s: register(s, store, backend), port=0,
                               token=TEST_TOKEN)
        channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
        try:
            yield SimpleNamespace(store=store, torchserve=torchserve, client=client,
                                  backend=backend, in_process=InProcessBackend(store),
                                  stub=generator_pb2_grpc.GeneratorServiceStub(channel))
        finally:
            channel.close()
            running.stop(0)
            client.close()


def grpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=60)
    return raised.value


def test_handler_returns_count_images_identical_for_a_seed_and_to_in_process(served):
    version = served.client.ensure_registered("tiny-a")
    first = wire.decode_images(served.client.predict("tiny-a", wire.encode_request(7, 9), version))
    again = wire.decode_images(served.client.predict("tiny-a", wire.encode_request(7, 9)))
    assert first.shape == (9, 64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    card = read_card(served.store, "tiny-a")
    assert np.array_equal(first, served.in_process.generate("tiny-a", card, 7, 9))
    other = wire.decode_images(served.client.predict("tiny-a", wire.encode_request(8, 9)))
    assert not np.array_equal(first, other)


def test_handler_rejects_bad_input_naming_the_field(served):
    served.client.ensure_registered("tiny-a")
    with pytest.raises(InvalidArgument) as raised:
        served.client.predict("tiny-a", {"seed": b"1", "count": b"0"})
    assert raised.value.field == "count"
    with pytest.raises(InvalidArgument) as raised:
        served.client.predict("tiny-a", {"count": b"1"})
    assert raised.value.field == "seed"
    with pytest.raises(NotFound, match="nope"):
        served.client.predict("nope", wire.encode_request(1, 1))


def test_generate_grid_over_grpc_returns_grid_images_metadata_and_stores_it(served):
    reply = served.stub.GenerateGrid(
        generator_pb2.GenerateGridRequest(model_id="tiny-a", seed=11, store=True), timeout=60)
    assert reply.content_type == "image/png"
    assert Image.open(io.BytesIO(reply.grid)).size == (GRID_SIDE, GRID_SIDE)
    assert len(reply.images) == 9
    assert {Image.open(io.BytesIO(i)).size for i in reply.images} == {(64, 64)}
    meta = reply.metadata
    assert (meta.model_id, meta.model_version, meta.seed, meta.count, meta.columns) == \
        ("tiny-a", "1", 11, 9, 3)
    assert (meta.width, meta.height, meta.hashtag) == (64, 64, "sunset")
    assert dict(meta.metrics) == {"swd": 12.5}
    assert meta.latency_ms >= meta.inference_ms > 0
    assert reply.grid_key == "grids/tiny-a/seed-11-n9.png"
    assert served.store.get_bytes(reply.grid_key) == reply.grid
    # The tiles are the in-process generator's images for the same seed.
    card = read_card(served.store, "tiny-a")
    expected = served.in_process.generate("tiny-a", card, 11, 9)
    tiles = [np.asarray(Image.open(io.BytesIO(i)).convert("RGB")) for i in reply.images]
    assert np.array_equal(np.stack(tiles), expected)


def test_grid_without_store_flag_is_not_stored_and_seed_is_picked(served):
    reply = served.stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny-a"),
                                     timeout=60)
    assert reply.grid_key == "" and len(reply.images) == 9
    assert not served.store.exists(f"grids/tiny-a/seed-{reply.metadata.seed}-n9.png")


def test_unknown_model_is_not_found_naming_it(served):
    error = grpc_error(served.stub.GenerateGrid,
                       generator_pb2.GenerateGridRequest(model_id="no-such-run"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-run" in error.details()


@pytest.mark.parametrize("count", [0, 10000])
def test_count_out_of_range_is_invalid_argument_naming_count(served, count):
    error = grpc_error(served.stub.GenerateGrid,
                       generator_pb2.GenerateGridRequest(model_id="tiny-a", count=count))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "count" in error.details()


def test_model_id_with_a_path_is_invalid_argument(served):
    error = grpc_error(served.stub.GenerateGrid,
                       generator_pb2.GenerateGridRequest(model_id="../x"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model_id" in error.details()


def test_list_models_lists_exported_models_and_which_are_loaded(served):
    served.backend.prepare("tiny-a")
    export_tiny(served.store, "tiny-idle", seed=3)
    reply = served.stub.ListModels(generator_pb2.ListModelsRequest(), timeout=60)
    models = {m.model_id: m for m in reply.models}
    assert models["tiny-a"].loaded and not models["tiny-idle"].loaded
    assert (models["tiny-a"].model_version, models["tiny-a"].width) == ("1", 64)
    assert models["tiny-a"].hashtag == "sunset"


def test_second_model_is_registered_without_restarting_torchserve(served):
    pid = served.torchserve.proc.pid
    export_tiny(served.store, "tiny-b", seed=1)
    # Two clients (two generator processes) racing to register it: exactly one
    # registration wins, neither fails.
    rival = served.torchserve.client(served.store, timeout=30)
    errors: list[Exception] = []

    def ensure(client):
        try:
            client.ensure_registered("tiny-b")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ensure, args=(c,))
               for c in (served.client, served.client, rival)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rival.close()
    assert errors == []
    assert [d["modelVersion"] for d in served.client.describe("tiny-b")] == ["1"]

    b = served.stub.GenerateGrid(
        generator_pb2.GenerateGridRequest(model_id="tiny-b", seed=11), timeout=60)
    a = served.stub.GenerateGrid(
        generator_pb2.GenerateGridRequest(model_id="tiny-a", seed=11), timeout=60)
    assert b.metadata.model_id == "tiny-b" and b.grid != a.grid
    assert served.torchserve.proc.pid == pid and served.torchserve.running
    assert {"tiny-a", "tiny-b"} <= set(served.client.list_registered())

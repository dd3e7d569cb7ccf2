"""Issue 9 item 5 (third bullet), over real gRPC on loopback: enum numbers a service does
not know are refused, a dataset id is never built twice, and Publish posts grids only."""

from __future__ import annotations

import hashlib

import grpc
import numpy as np
import pytest

from services.generator.server import register as register_generator
from services.publisher.server import register as register_publisher
from services.trainer.server import register as register_trainer
from socialgan.images import encode
from socialgan.models import build_generator
from socialgan.models.export import export_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving.backends import InProcessBackend
from socialgan.storage import keys
from socialgan.v1 import (
    generator_pb2,
    generator_pb2_grpc,
    publisher_pb2,
    publisher_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tests.conftest import TEST_TOKEN

UNKNOWN = 99


@pytest.fixture
def serve(store):
    """serve(register, Stub) -> a stub of that service on a loopback port."""
    running = []

    def start(register, stub_class):
        server = start_server("test", lambda s: register(s), port=0, token=TEST_TOKEN)
        running.append(server)
        channel = open_channel(f"127.0.0.1:{server.port}", TEST_TOKEN)
        return stub_class(channel)

    yield start
    for server in running:
        server.stop(grace=0)


def expect(call, code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)  # a stream fails on its first read
    assert err.value.code() == code, err.value.details()
    for word in words:
        assert word in err.value.details()
    return err.value.details()


@pytest.fixture
def emoji(store, twemoji_paths):
    for path in twemoji_paths[:8]:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return store


def filter_request(**fields) -> trainer_pb2.FilterDatasetRequest:
    return trainer_pb2.FilterDatasetRequest(hashtag="emoji", **fields)


def test_an_unknown_aspect_number_is_refused_naming_the_field(serve, emoji):
    stub = serve(lambda s: register_trainer(s, emoji), trainer_pb2_grpc.TrainerServiceStub)

    expect(lambda: stub.FilterDataset(filter_request(aspect=UNKNOWN, dataset_id="wide"),
                                      timeout=30), grpc.StatusCode.INVALID_ARGUMENT,
           "aspect", "99")
    assert not emoji.exists(keys.dataset_manifest_key("wide"))


def test_an_unknown_image_format_number_is_refused_naming_the_field(serve, store):
    export_generator(store, "tiny", build_generator("dcgan", {"ngf": 8, "ndf": 8}), {
        "arch": "dcgan", "arch_options": {"ngf": 8, "ndf": 8}, "latent_dim": 100,
        "width": 64, "height": 64, "hashtag": "sunset", "method": "test", "metrics": {}})
    stub = serve(lambda s: register_generator(s, store, InProcessBackend(store)),
                 generator_pb2_grpc.GeneratorServiceStub)

    expect(lambda: stub.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id="tiny", format=UNKNOWN, store=True), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT, "format", "99")
    assert list(store.list("grids/")) == []
    ok = stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny", count=1),
                           timeout=30)
    assert ok.content_type == "image/png"  # UNSPECIFIED still means the default


def test_an_unknown_publish_target_number_is_refused_naming_the_field(serve, store):
    stub = serve(lambda s: register_publisher(s, store), publisher_pb2_grpc.PublisherServiceStub)

    expect(lambda: stub.Publish(publisher_pb2.PublishRequest(
        target=UNKNOWN, grid_key="grids/m/g.png",
        caption=publisher_pb2.CaptionInputs(hashtag="sunset")), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, "target", "99")


def test_filtering_into_an_existing_dataset_id_is_already_exists_and_changes_nothing(
        serve, emoji):
    stub = serve(lambda s: register_trainer(s, emoji), trainer_pb2_grpc.TrainerServiceStub)
    first = list(stub.FilterDataset(filter_request(dataset_id="taken"), timeout=60))[-1].dataset
    shard = emoji.stat(first.shard_keys[0])
    manifest = emoji.get_bytes(first.manifest_key)
    emoji.put_bytes(keys.raw_image_key("emoji", "0" * 64, ".png"), encode(
        np.zeros((64, 64, 3), np.uint8)))  # more images than before

    expect(lambda: stub.FilterDataset(filter_request(dataset_id="taken", resolution=32),
                                      timeout=60),
           grpc.StatusCode.ALREADY_EXISTS, "dataset_id", "'taken'")

    assert emoji.stat(first.shard_keys[0]) == shard
    assert emoji.get_bytes(first.manifest_key) == manifest


@pytest.fixture
def publisher(serve, store):
    return serve(lambda s: register_publisher(s, store), publisher_pb2_grpc.PublisherServiceStub)


def publish(stub, grid_key: str):
    return lambda: stub.Publish(publisher_pb2.PublishRequest(
        grid_key=grid_key, dry_run=True, caption=publisher_pb2.CaptionInputs(hashtag="sunset")),
        timeout=10)


@pytest.mark.parametrize("key", [
    "datasets/ds/shard-00000.npy",  # a training set
    "checkpoints/run/step-00000002.pt",
    "raw/emoji/" + "a" * 64 + ".png",  # a scraped picture: a real image, not a grid
    "posts/post-1/grid.png",
    "grids/model/sub/g.png",  # deeper than grids/<model_id>/<name>
    "grids/g.png",
    "grids/../raw/x.png",
])
def test_publish_refuses_any_stored_object_that_is_not_a_grid(publisher, store, key):
    if ".." not in key:
        store.put_bytes(key, encode(np.zeros((8, 8, 3), np.uint8)))

    expect(publish(publisher, key), grpc.StatusCode.INVALID_ARGUMENT, "grid_key",
           "grids/<model_id>/<name>")
    assert [k for k in store.list("posts/") if k != key] == []  # no post was made


def test_publish_of_a_grid_key_that_was_never_stored_is_not_found(publisher, store):
    expect(publish(publisher, "grids/model/seed-1-n9.png"), grpc.StatusCode.NOT_FOUND,
           "grid_key", "grids/model/seed-1-n9.png")
    store.put_bytes("grids/model/seed-1-n9.png",
                    encode(np.zeros((8, 8, 3), np.uint8)))
    assert publish(publisher, "grids/model/seed-1-n9.png")().state == \
        publisher_pb2.POST_STATE_DRAFT

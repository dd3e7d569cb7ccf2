"""FilterDataset over real gRPC: the report's fields come back, bad options name their field."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from services.trainer.server import register
from socialgan.filtering import evaluation as ev
from socialgan.images import sniff_extension
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import LocalObjectStore, keys
from socialgan.v1 import trainer_pb2, trainer_pb2_grpc
from tests.conftest import TEST_TOKEN


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    if not (ev.EVAL_DIR / "nature").is_dir():
        pytest.fail("the filter evaluation photos are missing: run scripts/fetch_eval_images.sh")
    store = LocalObjectStore(tmp_path_factory.mktemp("filter-svc") / "store")
    mix = ev.build_mix()
    chosen = [i for i in mix if i.label == "good"][:10] + \
        [i for i in mix if i.name in ("broken/empty", "low_quality/flat-grey")]
    for item in chosen:
        sha = hashlib.sha256(item.data).hexdigest()
        store.put_bytes(keys.raw_image_key("nature", sha, sniff_extension(item.data) or ".jpg"),
                        item.data)
    running = start_server("trainer", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    yield trainer_pb2_grpc.TrainerServiceStub(channel)
    channel.close()
    running.stop(grace=0)


def test_filter_returns_counts_contact_sheets_thresholds_and_stages(stub):
    updates = list(stub.FilterDataset(trainer_pb2.FilterDatasetRequest(
        hashtag="nature", dataset_id="svc", crop="content", extra_stages=["faces"],
        skip_stages=["text"], thresholds={"min_sharpness": 5}), timeout=60))

    ds = updates[-1].dataset
    assert ds.dropped_by_reason["empty"] == 1 and ds.dropped_by_reason["flat"] == 1
    assert set(ds.contact_sheet_keys) >= {"empty", "flat", "kept"}
    assert ds.contact_sheet_keys["flat"] == keys.dataset_contact_sheet_key("svc", "flat")
    assert ds.thresholds["min_sharpness"] == 5 and ds.crop == "content"
    assert "faces" in ds.stages and "text" not in ds.stages
    assert stub.GetDataset(trainer_pb2.GetDatasetRequest(dataset_id="svc")) == ds


@pytest.mark.parametrize("request_fields, code, field", [
    ({"crop": "smart"}, grpc.StatusCode.INVALID_ARGUMENT, "crop"),
    ({"extra_stages": ["ocr"]}, grpc.StatusCode.INVALID_ARGUMENT, "extra_stages"),
    ({"thresholds": {"sharpness": 1}}, grpc.StatusCode.INVALID_ARGUMENT, "thresholds.sharpness"),
    ({"example_keys": ["examples/none.jpg"]}, grpc.StatusCode.NOT_FOUND, "example_keys[0]"),
])
def test_bad_filter_requests_get_a_status_naming_the_field(stub, request_fields, code, field):
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FilterDataset(trainer_pb2.FilterDatasetRequest(hashtag="nature",
                                                                 **request_fields), timeout=30))
    assert err.value.code() == code and field in err.value.details()

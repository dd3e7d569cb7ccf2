"""Every field bounded, every message short: long input is refused naming its field, and no
message or log line repeats more than ~100 characters of it."""

from __future__ import annotations

import io
import json
import logging
import math

import grpc
import pytest

from services.publisher.server import register as register_publisher
from socialgan.errors import InvalidArgument, quote
from socialgan.filtering import iter_build_dataset
from socialgan.filtering.dataset import default_thresholds
from socialgan.log import JsonFormatter
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import keys
from socialgan.storage.base import check_key
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from socialgan.validation import check_identifier, normalize_hashtag
from tests.conftest import TEST_TOKEN


@pytest.fixture
def publisher(store):
    running = start_server("publisher", lambda s: register_publisher(s, store), port=0,
                           host="127.0.0.1", token=TEST_TOKEN)
    yield publisher_pb2_grpc.PublisherServiceStub(
        open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
    running.stop(0)


def _refusal(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=10)
    return err.value


def test_quote_keeps_at_most_100_characters_and_says_how_long():
    assert quote("short") == "'short'"
    quoted = quote("x" * 10_000)
    assert quoted.startswith("'" + "x" * 100 + "'") and "10000 characters" in quoted
    assert len(quoted) < 140


def test_a_10000_character_post_id_is_invalid_argument_with_a_short_message(publisher):
    err = _refusal(publisher.GetPost, publisher_pb2.GetPostRequest(post_id="p" * 10_000))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("post_id:") and "10000 characters" in err.details()
    assert len(err.details()) < 300


def test_a_megabyte_string_anywhere_is_refused_naming_its_field(publisher):
    request = publisher_pb2.PublishRequest(
        grid_key="grids/m/x.png",
        caption=publisher_pb2.CaptionInputs(extra_hashtags=["ok", "h" * (1 << 20)]))
    err = _refusal(publisher.Publish, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("caption.extra_hashtags[1]: is 1048576 characters long")


def test_a_key_segment_too_long_for_a_file_name_is_invalid_argument_naming_the_field(store):
    with pytest.raises(InvalidArgument) as err:
        store.put_bytes("grids/m/" + "a" * 300 + ".png", b"x")
    assert str(err.value).startswith("key:") and "at most 200" in str(err.value)
    with pytest.raises(InvalidArgument, match="^key:"):
        store.stat("raw/" + "b/" * 600 + "c")  # 1,205 bytes: over S3's 1,024


def test_a_grid_key_too_long_for_a_file_name_is_invalid_argument(publisher):
    err = _refusal(publisher.Publish, publisher_pb2.PublishRequest(
        grid_key="grids/m/" + "a" * 300 + ".png", dry_run=True))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "key" in err.details().split(":")[0] and len(err.details()) < 400


def test_a_long_non_latin_hashtag_is_refused_before_it_becomes_a_key():
    tag = "夕" * 100  # 100 characters, 300 bytes of UTF-8: over a file name's 255
    with pytest.raises(InvalidArgument, match="^hashtag: .*300 bytes"):
        normalize_hashtag(tag)
    with pytest.raises(InvalidArgument, match="^hashtag:"):
        keys.raw_prefix(tag)
    assert keys.raw_prefix("夕" * 60) == f"raw/{'夕' * 60}/"


def test_ids_and_hashtags_with_a_trailing_newline_are_refused():
    with pytest.raises(InvalidArgument, match="^run_id:"):
        check_identifier("run1\n", "run_id")
    with pytest.raises(InvalidArgument, match="^key:"):
        check_key("grids/m/x.png\n")


def test_a_50_megabyte_field_makes_a_log_line_of_a_few_kilobytes():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("socialgan.test_bounds")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        huge = "g" * (50 << 20)
        logger.warning("cannot publish %s", huge, extra={"grid_key": huge, "keys": [huge]})
        try:
            raise InvalidArgument("grid_key", huge)
        except InvalidArgument:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(len(line) < 30_000 for line in lines)
    entry = json.loads(lines[0])
    assert entry["grid_key"].startswith("g" * 100) and "more characters cut" in entry["grid_key"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_filter_threshold_that_is_not_finite_is_refused(store, value):
    name = sorted(default_thresholds())[0]
    with pytest.raises(InvalidArgument, match=f"^thresholds.{name}: must be a finite number"):
        next(iter_build_dataset(store, "emoji", thresholds={name: value}))


class _Verbose(publisher_pb2_grpc.PublisherServiceServicer):
    """Raises errors whose messages repeat 50,000 characters, as careless code might."""

    def GetPost(self, request, context):
        raise InvalidArgument("post_id", "x" * 50_000)

    def Publish(self, request, context):
        raise RuntimeError("y" * 50_000)


def test_status_messages_are_cut_whoever_built_them():
    def register(server):
        publisher_pb2_grpc.add_PublisherServiceServicer_to_server(_Verbose(), server)
        return ["socialgan.v1.PublisherService"]

    running = start_server("publisher", register, port=0, host="127.0.0.1", token=TEST_TOKEN)
    try:
        stub = publisher_pb2_grpc.PublisherServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        refused = _refusal(stub.GetPost, publisher_pb2.GetPostRequest(post_id="p"))
        crashed = _refusal(stub.Publish, publisher_pb2.PublishRequest())
    finally:
        running.stop(0)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details().startswith("post_id: xxx") and len(refused.details()) < 1_100
    assert crashed.code() == grpc.StatusCode.INTERNAL and len(crashed.details()) < 1_100

"""What every server shares: token check (health exempt), status mapping, health, reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from socialgan.errors import InvalidArgument, NotFound
from socialgan.rpc.client import open_channel, wait_healthy
from socialgan.rpc.server import start_server
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN


class _Probe(publisher_pb2_grpc.PublisherServiceServicer):
    def GetPost(self, request, context):
        if request.post_id == "bad":
            raise InvalidArgument("post_id", "is bad")
        if request.post_id == "crash":
            raise RuntimeError("kaboom")
        raise NotFound(f"no post {request.post_id!r}")


@pytest.fixture(scope="module")
def address():
    def register(server):
        publisher_pb2_grpc.add_PublisherServiceServicer_to_server(_Probe(), server)
        return [publisher_pb2.DESCRIPTOR.services_by_name["PublisherService"].full_name]

    running = start_server("publisher", register, port=0, token=TEST_TOKEN)
    yield f"127.0.0.1:{running.port}"
    running.stop(0)


def _get_post(address, token, post_id):
    stub = publisher_pb2_grpc.PublisherServiceStub(open_channel(address, token))
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPost(publisher_pb2.GetPostRequest(post_id=post_id), timeout=5)
    return err.value


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_calls_without_the_right_token_are_unauthenticated(address, token):
    assert _get_post(address, token, "x").code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_needs_no_token(address):
    wait_healthy(address, timeout=5)
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="socialgan.v1.PublisherService"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_core_errors_map_to_status_codes_with_messages(address):
    bad = _get_post(address, TEST_TOKEN, "bad")
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "post_id" in bad.details()
    missing = _get_post(address, TEST_TOKEN, "zzz")
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "zzz" in missing.details()
    crash = _get_post(address, TEST_TOKEN, "crash")
    assert crash.code() == grpc.StatusCode.INTERNAL and "kaboom" in crash.details()


def test_reflection_lists_the_service(address):
    stub = reflection_pb2_grpc.ServerReflectionStub(open_channel(address, TEST_TOKEN))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = stub.ServerReflectionInfo(iter([request]), timeout=5)
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert "socialgan.v1.PublisherService" in names and "grpc.health.v1.Health" in names

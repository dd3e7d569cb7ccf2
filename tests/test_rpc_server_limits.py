"""A server that cannot be shared or starved: one owner per port, streams bounded so unary
calls and health always answer, health Watch, malformed requests, reflection v1."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from socialgan.rpc.client import open_channel
from socialgan.rpc.server import (
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_UNARY,
    CannotListen,
    start_server,
)
from socialgan.v1 import trainer_pb2, trainer_pb2_grpc
from tests.conftest import TEST_TOKEN

SERVICE = "socialgan.v1.TrainerService"


class _SlowWatcher(trainer_pb2_grpc.TrainerServiceServicer):
    """WatchTraining streams stay open (like a long run's) until `release` is set."""

    def __init__(self):
        self.release = threading.Event()

    def WatchTraining(self, request, context):
        yield trainer_pb2.TrainingJob(run_id=request.run_id)
        while context.is_active() and not self.release.wait(0.05):
            pass

    def GetTraining(self, request, context):
        if request.run_id == "slow":  # a unary call that takes its time (a busy preflight)
            self.release.wait(30)
        return trainer_pb2.TrainingJob(run_id=request.run_id, step=1)


def _start(servicer, port=0):
    def register(server):
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server)
        return [SERVICE]

    return start_server("trainer", register, port=port, host="127.0.0.1", token=TEST_TOKEN)


@pytest.fixture
def served():
    servicer = _SlowWatcher()
    running = _start(servicer)
    yield servicer, running, f"127.0.0.1:{running.port}"
    servicer.release.set()
    running.stop(0)


def test_a_second_server_on_a_taken_port_refuses_to_start(served):
    _, running, address = served
    with pytest.raises(CannotListen, match=f"port {running.port} is already in use"):
        _start(_SlowWatcher(), port=running.port)
    # The first owner still gets every call.
    stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(address, TEST_TOKEN))
    for _ in range(10):
        assert stub.GetTraining(trainer_pb2.GetTrainingRequest(run_id="r"), timeout=5).step == 1


def test_open_streams_never_starve_unary_calls_or_health(served):
    servicer, _, address = served
    channel = open_channel(address, TEST_TOKEN)
    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    opened, refused = [], []
    for index in range(20):  # the 20 WatchTraining streams
        stream = stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id=f"r{index}"),
                                    timeout=30)
        try:
            next(stream)
            opened.append(stream)
        except grpc.RpcError as exc:
            refused.append(exc)
    try:
        assert len(opened) == DEFAULT_MAX_STREAMS
        assert {exc.code() for exc in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert f"{DEFAULT_MAX_STREAMS} streaming calls" in refused[0].details()
        started = time.monotonic()
        for _ in range(20):
            assert stub.GetTraining(trainer_pb2.GetTrainingRequest(run_id="r"),
                                    timeout=2).step == 1
        with grpc.insecure_channel(address) as plain:
            reply = health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - started < 5
    finally:
        for stream in opened:
            stream.cancel()
    # Ended streams give their places back.
    deadline = time.monotonic() + 5
    while True:
        stream = stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id="again"), timeout=5)
        try:
            next(stream)
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() < deadline, "cancelled streams kept their places"
            time.sleep(0.1)
    stream.cancel()
    servicer.release.set()


def test_slow_unary_calls_never_starve_health(served):
    servicer, _, address = served
    stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(address, TEST_TOKEN))
    slow = [stub.GetTraining.future(trainer_pb2.GetTrainingRequest(run_id="slow"), timeout=30)
            for _ in range(DEFAULT_MAX_UNARY + 4)]
    deadline = time.monotonic() + 10
    while sum(f.done() for f in slow) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = [f.exception() for f in slow if f.done()]
    assert len(refused) == 4
    assert {exc.code() for exc in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert f"{DEFAULT_MAX_UNARY} unary calls" in refused[0].details()
    with grpc.insecure_channel(address) as plain:
        reply = health_pb2_grpc.HealthStub(plain).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    servicer.release.set()
    assert sum(f.exception() is None for f in slow) == DEFAULT_MAX_UNARY  # all ran to the end


def test_health_watch_streams_serving_then_not_serving_on_shutdown():
    running = _start(_SlowWatcher())
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        updates = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
        stopper = threading.Thread(target=running.stop, args=(0.5,))
        stopper.start()
        assert next(updates).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stopper.join()


@pytest.mark.parametrize("payload", [
    b"\xff\xff\xff\xff\xff",  # not protobuf at all
    b"\x0a\x05abc",  # a length running past the end
    b"\x0a\x02\xff\xfe",  # run_id that is not UTF-8
], ids=["garbage", "truncated", "bad-utf8"])
def test_a_malformed_request_is_invalid_argument(served, payload):
    _, _, address = served
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_unary("/socialgan.v1.TrainerService/GetTraining")
        with pytest.raises(grpc.RpcError) as err:
            raw(payload, timeout=5, metadata=[("authorization", f"Bearer {TEST_TOKEN}")])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request: is not a valid socialgan.v1.GetTrainingRequest" in err.value.details()
        health = channel.unary_unary("/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError) as err:
            health(payload, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reflection_answers_as_v1_and_v1alpha(served):
    _, _, address = served
    request = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    with grpc.insecure_channel(address) as channel:
        for version in ("v1", "v1alpha"):
            call = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo")
            replies = [reflection_pb2.ServerReflectionResponse.FromString(r) for r in call(
                iter([request]), timeout=5,
                metadata=[("authorization", f"Bearer {TEST_TOKEN}")])]
            names = {s.name for r in replies for s in r.list_services_response.service}
            assert {SERVICE, "grpc.health.v1.Health",
                    "grpc.reflection.v1.ServerReflection"} <= names, version

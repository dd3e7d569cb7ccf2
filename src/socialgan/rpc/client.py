"""Calling SocialGAN services: a channel that carries the token and retries UNAVAILABLE."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Bounded retries with exponential backoff for calls that never reached a server.
_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "3s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str):
        self._metadata = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._metadata]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else \
            _Details(details.method, details.timeout, metadata, details.credentials,
                     getattr(details, "wait_for_ready", None),
                     getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for local stacks and tests)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """count distinct TCP ports nobody listens on right now: all sockets stay bound until
    every port is chosen, so the kernel cannot hand out one port twice (one call per stack:
    two of its servers on one port would fail one of them at start)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            s = held.enter_context(socket.socket())
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports


def open_channel(address: str, token: str | None) -> grpc.Channel:
    """An insecure channel to address; every call carries the bearer token when given."""
    channel = grpc.insecure_channel(
        address,
        options=[("grpc.service_config", _SERVICE_CONFIG),
                 ("grpc.enable_retries", 1),
                 ("grpc.max_send_message_length", 64 << 20),
                 ("grpc.max_receive_message_length", 64 << 20)],
    )
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel


def wait_healthy(address: str, timeout: float = 60.0, service: str = "") -> None:
    """Poll grpc.health.v1 at address until SERVING; raise TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = exc.code().name
            time.sleep(0.2)
    raise TimeoutError(f"{address} not healthy after {timeout:.0f}s (last: {last})")

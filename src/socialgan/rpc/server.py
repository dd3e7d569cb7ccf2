"""Starting a SocialGAN gRPC server: auth, error mapping, health and reflection, the same for all.

A service module only builds its servicer and calls serve(); everything that must be
identical across services (token check, status codes, health, reflection, shutdown)
lives here.
"""

from __future__ import annotations

import functools
import hmac
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from socialgan import errors, settings

log = logging.getLogger("socialgan.rpc")

HEALTH_PREFIX = "/grpc.health.v1.Health/"

_STATUS = [  # most specific first
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _abort_for(exc: Exception, context: grpc.ServicerContext, method: str):
    code = context.code() if hasattr(context, "code") else None
    if code not in (None, grpc.StatusCode.OK):
        raise exc  # the servicer already chose a status with context.abort()
    status = status_for(exc)
    if status is grpc.StatusCode.INTERNAL:
        log.exception("unexpected error in %s", method)
        context.abort(status, f"internal error: {type(exc).__name__}: {exc}")
    context.abort(status, str(exc))


def _wrap_unary(behaviour, method):
    @functools.wraps(behaviour)
    def call(request, context):
        try:
            return behaviour(request, context)
        except Exception as exc:
            _abort_for(exc, context, method)

    return call


def _wrap_stream(behaviour, method):
    @functools.wraps(behaviour)
    def call(request, context):
        try:
            yield from behaviour(request, context)
        except Exception as exc:
            _abort_for(exc, context, method)

    return call


def _deny(request_or_iterator, context):
    context.abort(grpc.StatusCode.UNAUTHENTICATED,
                  "missing or wrong 'authorization: Bearer <token>' metadata")


def _denying_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as handler that refuses the call."""
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(_deny, handler.request_deserializer, handler.response_serializer)


class GuardInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token (health checks excepted) and maps core errors to status codes,
    so no call ever ends in UNKNOWN."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def _authorised(self, details: grpc.HandlerCallDetails) -> bool:
        if details.method.startswith(HEALTH_PREFIX):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        if not self._authorised(details):
            return _denying_handler(handler)
        method = details.method
        if handler.unary_unary:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary, method))
        if handler.unary_stream:
            return handler._replace(unary_stream=_wrap_stream(handler.unary_stream, method))
        if handler.stream_unary:
            return handler._replace(stream_unary=_wrap_unary(handler.stream_unary, method))
        if handler.stream_stream:
            return handler._replace(stream_stream=_wrap_stream(handler.stream_stream, method))
        return handler


class RunningServer:
    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer):
        self.server = server
        self.port = port
        self.health = health_servicer

    def stop(self, grace: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait(self) -> None:
        self.server.wait_for_termination()


def start_server(
    service: str,
    register: Callable[[grpc.Server], Iterable[str]],
    *,
    port: int | None = None,
    host: str | None = None,
    token: str | None = None,
    max_workers: int = 16,
) -> RunningServer:
    """Start a server for `service`; register(server) adds servicers and returns their full
    names (e.g. "socialgan.v1.ScraperService"). port=0 picks a free port."""
    token = token or settings.require("SOCIALGAN_API_TOKEN")
    host = host or settings.get("LISTEN_HOST")
    if port is None:
        port = settings.get_int("PORT", settings.DEFAULT_PORTS[service])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"{service}-rpc"),
        interceptors=[GuardInterceptor(token)],
        options=[("grpc.max_send_message_length", 64 << 20),
                 ("grpc.max_receive_message_length", 64 << 20)],
    )
    names = list(register(server))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in [*names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME],
        server,
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"{service}: cannot listen on {host}:{port}")
    server.start()
    log.info("%s listening", service, extra={"address": f"{host}:{bound}"})
    return RunningServer(server, bound, health_servicer)


def run_until_signalled(running: RunningServer, on_stop: Callable[[], None] | None = None) -> None:
    """Block until SIGTERM/SIGINT, then drain in-flight calls and stop."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    log.info("stopping")
    running.stop()
    if on_stop:
        on_stop()

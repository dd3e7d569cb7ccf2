"""Starting a SocialGAN gRPC server: auth, error mapping, health and reflection, the same for all.

A service module only builds its servicer and calls serve(); everything that must be
identical across services lives here: the token check, status codes, request checks
(rpc/requests.py), bounded calls in flight, health (Check and Watch), reflection v1 and
v1alpha, one owner per port, and draining on shutdown.
"""

from __future__ import annotations

import errno
import functools
import hmac
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from socialgan import errors, settings
from socialgan.errors import clip
from socialgan.rpc.requests import Refused, checked_deserializer, checked_stream

log = logging.getLogger("socialgan.rpc")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
STREAM, UNARY = "streaming", "unary"
# The RpcMethodHandler field holding the behaviour, by (request_streaming, response_streaming).
_SLOTS = {(False, False): "unary_unary", (False, True): "unary_stream",
          (True, False): "stream_unary", (True, True): "stream_stream"}
DEFAULT_MAX_STREAMS = 8
DEFAULT_MAX_UNARY = 16
HEALTH_THREADS = 2
# No request needs more (images travel in chunks); a bigger one is RESOURCE_EXHAUSTED.
MAX_REQUEST_BYTES = 16 << 20
# A status message travels in HTTP/2 trailers (8 KiB by default); longer ones used to turn
# the status into RESOURCE_EXHAUSTED. Messages quote input with errors.quote; this is the net.
MAX_STATUS_CHARS = 1_000

_STATUS = [  # most specific first
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
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
        context.abort(status, clip(f"internal error: {type(exc).__name__}: {exc}",
                                   MAX_STATUS_CHARS))
    context.abort(status, clip(str(exc), MAX_STATUS_CHARS))


class CallLimits:
    """Calls in flight per kind, each kind bounded so that no kind can take the whole pool.

    A sync gRPC server runs every call on one thread of its pool until the call ends, so
    20 open WatchTraining streams once took all 16 threads and every other call, health
    checks included, timed out. Streams and unary calls each get a bounded share; health
    calls are never counted and the pool keeps HEALTH_THREADS more threads than the two
    shares, so a probe always finds one. A call over its kind's bound is refused at once
    with RESOURCE_EXHAUSTED, naming the bound, instead of waiting behind the others.
    """

    def __init__(self, max_streams: int, max_unary: int):
        self.limits = {STREAM: max_streams, UNARY: max_unary}
        self._in_flight = {STREAM: 0, UNARY: 0}
        self._lock = threading.Lock()

    @property
    def pool_size(self) -> int:
        return sum(self.limits.values()) + HEALTH_THREADS

    def in_flight(self, kind: str) -> int:
        with self._lock:
            return self._in_flight[kind]

    def acquire(self, kind: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            if self._in_flight[kind] < self.limits[kind]:
                self._in_flight[kind] += 1
                return
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"this server already runs {self.limits[kind]} {kind} calls, its limit; "
                      f"try again when one has ended")

    def release(self, kind: str) -> None:
        with self._lock:
            self._in_flight[kind] -= 1


def _refuse_if_malformed(request, context: grpc.ServicerContext) -> None:
    if isinstance(request, Refused):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      clip(str(request.error()), MAX_STATUS_CHARS))


def _admit(request, context, kind, limits, client_streams):
    """The request (or request stream) to hand the servicer once the call may run; aborts
    the call when the request is malformed or its kind is at its limit."""
    if client_streams:
        request = checked_stream(request)  # refused messages raise when the servicer reads
    else:
        _refuse_if_malformed(request, context)
    if kind:
        limits.acquire(kind, context)
    return request


def _wrap_unary_response(behaviour, method, kind, limits, client_streams):
    @functools.wraps(behaviour)
    def call(request, context):
        request = _admit(request, context, kind, limits, client_streams)
        try:
            return behaviour(request, context)
        except Exception as exc:
            _abort_for(exc, context, method)
        finally:
            if kind:
                limits.release(kind)

    return call


def _wrap_stream_response(behaviour, method, kind, limits, client_streams):
    @functools.wraps(behaviour)
    def call(request, context):
        request = _admit(request, context, kind, limits, client_streams)
        try:
            yield from behaviour(request, context)
        except Exception as exc:
            _abort_for(exc, context, method)
        finally:  # also when the client hangs up (GeneratorExit)
            if kind:
                limits.release(kind)

    return call


def _wrap_non_blocking(behaviour):
    """Health Watch answers through a callback and returns at once, holding no thread (the
    grpc_health servicer's non-blocking mode); it keeps that calling convention."""

    def call(request, context, send_response_callback=None):
        _refuse_if_malformed(request, context)
        return behaviour(request, context, send_response_callback=send_response_callback)

    call.experimental_non_blocking = True
    call.experimental_thread_pool = getattr(behaviour, "experimental_thread_pool", None)
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
    """Checks the bearer token (health checks excepted), refuses malformed or oversized
    requests, bounds calls in flight and maps core errors to status codes, so no call ever
    ends in UNKNOWN."""

    def __init__(self, token: str, limits: CallLimits | None = None):
        self._expected = f"Bearer {token}".encode()
        self.limits = limits or CallLimits(DEFAULT_MAX_STREAMS, DEFAULT_MAX_UNARY)

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
        if handler.request_deserializer is not None:
            handler = handler._replace(
                request_deserializer=checked_deserializer(handler.request_deserializer))
        if not self._authorised(details):
            return _denying_handler(handler)
        method = details.method
        streams = handler.request_streaming or handler.response_streaming
        kind = None if method.startswith(HEALTH_PREFIX) else STREAM if streams else UNARY
        client_streams = handler.request_streaming
        behaviour = (handler.unary_unary or handler.unary_stream or handler.stream_unary
                     or handler.stream_stream)
        if getattr(behaviour, "experimental_non_blocking", False):
            return handler._replace(unary_stream=_wrap_non_blocking(behaviour))
        wrap = _wrap_stream_response if handler.response_streaming else _wrap_unary_response
        wrapped = wrap(behaviour, method, kind, self.limits, client_streams)
        slot = _SLOTS[(handler.request_streaming, handler.response_streaming)]
        return handler._replace(**{slot: wrapped})


class CannotListen(RuntimeError):
    """The server could not bind its address, e.g. another stack holds the port."""


class RunningServer:
    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer,
                 limits: CallLimits):
        self.server = server
        self.port = port
        self.health = health_servicer
        self.limits = limits

    def stop(self, grace: float = 5.0) -> None:
        # Watchers hear NOT_SERVING first, so load balancers drain before calls are cut.
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait(self) -> None:
        self.server.wait_for_termination()


def _why_not_bound(host: str, port: int) -> str:
    """A person's reason for a failed bind: probe the address the way gRPC binds it."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]"), port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"port {port} is already in use (another SocialGAN stack or program "
                    f"listens there); stop it or set PORT")
        return f"{exc.strerror or exc}; check LISTEN_HOST and PORT"
    return "gRPC refused the address; check LISTEN_HOST and PORT"


def _enable_reflection(names: list[str], server: grpc.Server) -> None:
    """Reflection as grpc.reflection.v1 and v1alpha. grpcio-reflection ships only v1alpha;
    v1 has the same messages under another package name, so the same servicer answers both
    (grpcurl and Postman ask v1 first)."""
    servicer = reflection.ReflectionServicer(
        [*names, reflection.SERVICE_NAME, REFLECTION_V1])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
    }),))


MIN_TOKEN_CHARS = 16


def check_api_token(token: str) -> str:
    """The token, if it is long enough to be no guess: a placeholder ("replace-me" from
    secrets.env.example) or a one-word token would open every RPC to anyone who tries."""
    if len(token.strip()) < MIN_TOKEN_CHARS:
        raise settings.ConfigError(
            f"SOCIALGAN_API_TOKEN must be at least {MIN_TOKEN_CHARS} characters (it has "
            f"{len(token.strip())}); make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'")
    return token


def start_server(
    service: str,
    register: Callable[[grpc.Server], Iterable[str]],
    *,
    port: int | None = None,
    host: str | None = None,
    token: str | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_unary: int = DEFAULT_MAX_UNARY,
) -> RunningServer:
    """Start a server for `service`; register(server) adds servicers and returns their full
    names (e.g. "socialgan.v1.ScraperService"). port=0 picks a free port. At most
    max_streams streaming and max_unary unary calls run at once (health calls apart)."""
    token = check_api_token(token or settings.require("SOCIALGAN_API_TOKEN"))
    host = host or settings.get("LISTEN_HOST")
    if port is None:
        port = settings.get_int("PORT", settings.DEFAULT_PORTS[service])
    limits = CallLimits(max_streams, max_unary)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.pool_size,
                                   thread_name_prefix=f"{service}-rpc"),
        interceptors=[GuardInterceptor(token, limits)],
        options=[("grpc.max_send_message_length", 64 << 20),
                 ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                 # gRPC sets SO_REUSEPORT by default: a second stack on the same port
                 # then starts fine and silently takes half the calls.
                 ("grpc.so_reuseport", 0),
                 # Find clients that vanished without closing, so their streams end.
                 ("grpc.keepalive_time_ms", 60_000),
                 ("grpc.keepalive_timeout_ms", 20_000)],
    )
    names = list(register(server))
    health_servicer = health.HealthServicer()  # non-blocking Watch: holds no pool thread
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in [*names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _enable_reflection([*names, health.SERVICE_NAME], server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio >= 1.50 raises where older versions returned 0
        bound = 0
    if bound == 0:
        raise CannotListen(f"{service}: cannot listen on {host}:{port}: "
                           f"{_why_not_bound(host, port)}")
    server.start()
    log.info("%s listening", service, extra={"address": f"{host}:{bound}"})
    return RunningServer(server, bound, health_servicer, limits)


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

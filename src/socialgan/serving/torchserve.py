"""TorchServe as a process (config, start, health, stop) and as a gRPC client.

TorchServe's defaults bite, so every setting that matters is written explicitly in
TorchServeConfig.properties(): loopback addresses, token auth, the model API, the model
store, metrics. `python -m socialgan.serving.torchserve` runs it in the foreground with
that config from the environment (the TorchServe container and the local supervisor).

Two traps the process class handles:
- TorchServe runs its Python workers with the interpreter that ran its launcher
  (`--python sys.executable`), and the handler imports socialgan: the launcher is run as
  `<this interpreter> -m ts.model_server`, never as whatever `torchserve` is on PATH.
- The launcher keeps one pid file in the temp dir and refuses to start a second TorchServe
  while it names a live one; the workers' Unix sockets live in java.io.tmpdir too. Each
  process gets its own TMPDIR/TEMP under its work dir, so several can run side by side
  (tests, the benchmark, a developer's own).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from socialgan import settings
from socialgan.errors import InvalidArgument, NotFound, Unavailable
from socialgan.models.export import read_card
from socialgan.rpc.client import free_port
from socialgan.serving.archive import ModelArchive, build_mar
from socialgan.storage import ObjectStore
from socialgan.torchserve import (
    inference_pb2,
    inference_pb2_grpc,
    management_pb2,
    management_pb2_grpc,
)
from socialgan.validation import check_identifier

log = logging.getLogger("socialgan.serving.torchserve")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_MESSAGE_BYTES = 64 << 20  # 64 images of 256x256 RGB fit with room to spare
# Unix socket paths are limited to 107 bytes; TorchServe puts "/.ts.sock.9000" after its tmpdir.
_MAX_TMPDIR_LEN = 80


class TorchServeError(RuntimeError):
    """TorchServe answered with an error that is neither bad input nor unavailability
    (e.g. the handler crashed); the gRPC layer reports it as INTERNAL with this message."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise settings.ConfigError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TorchServeConfig:
    """Where TorchServe listens and keeps models; addresses are host:port."""

    model_store: Path
    grpc_inference: str = "127.0.0.1:7070"
    grpc_management: str = "127.0.0.1:7071"
    http_inference: str = "127.0.0.1:8080"
    http_management: str = "127.0.0.1:8081"
    metrics: str = "127.0.0.1:8082"
    # 2 cores: the frontend only routes requests; the model runs in the Python worker.
    jvm_heap: str = "512m"

    def __post_init__(self):
        # The management APIs can load code (a .mar) and run without a token: they must
        # never listen beyond loopback.
        for name in ("grpc_management", "http_management"):
            host, _ = _split(getattr(self, name))
            if host not in LOOPBACK_HOSTS:
                raise settings.ConfigError(
                    f"TorchServe {name} address {getattr(self, name)!r} is not loopback; "
                    "the model API is enabled and unauthenticated, keep it on 127.0.0.1")

    @classmethod
    def from_settings(cls) -> TorchServeConfig:
        return cls(
            model_store=Path(settings.require("TORCHSERVE_MODEL_STORE")),
            grpc_inference=settings.require("TORCHSERVE_INFERENCE_ADDR"),
            grpc_management=settings.require("TORCHSERVE_MANAGEMENT_ADDR"),
            http_inference=settings.require("TORCHSERVE_HTTP_INFERENCE_ADDR"),
            http_management=settings.require("TORCHSERVE_HTTP_MANAGEMENT_ADDR"),
            metrics=settings.require("TORCHSERVE_METRICS_ADDR"),
        )

    @classmethod
    def on_free_ports(cls, model_store: str | Path) -> TorchServeConfig:
        """Five free loopback ports: for tests and benchmarks beside a running TorchServe."""
        ports = [free_port() for _ in range(5)]
        return cls(Path(model_store), *(f"127.0.0.1:{p}" for p in ports))

    def addresses(self) -> dict[str, str]:
        return {"grpc_inference": self.grpc_inference, "grpc_management": self.grpc_management,
                "http_inference": self.http_inference, "http_management": self.http_management,
                "metrics": self.metrics}

    def check_ports_free(self) -> None:
        """Raise RuntimeError naming the first address something already listens on."""
        for name, address in self.addresses().items():
            host, port = _split(address)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family) as s:
                # As TorchServe binds: connections left in TIME_WAIT do not count.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as exc:
                    raise RuntimeError(
                        f"TorchServe {name} address {address} is taken ({exc.strerror}); "
                        "is another TorchServe running? Stop it or set TORCHSERVE_*_ADDR"
                    ) from None

    def env(self) -> dict[str, str]:
        """The variables that point the generator service at this TorchServe."""
        return {
            "TORCHSERVE_INFERENCE_ADDR": self.grpc_inference,
            "TORCHSERVE_MANAGEMENT_ADDR": self.grpc_management,
            "TORCHSERVE_HTTP_INFERENCE_ADDR": self.http_inference,
            "TORCHSERVE_HTTP_MANAGEMENT_ADDR": self.http_management,
            "TORCHSERVE_METRICS_ADDR": self.metrics,
            "TORCHSERVE_MODEL_STORE": str(Path(self.model_store).resolve()),
        }

    def properties(self) -> str:
        grpc_inference_host, grpc_inference_port = _split(self.grpc_inference)
        grpc_management_host, grpc_management_port = _split(self.grpc_management)
        lines = [
            "# Written by socialgan.serving.torchserve: every setting that matters is explicit.",
            f"inference_address=http://{self.http_inference}",
            f"management_address=http://{self.http_management}",
            f"metrics_address=http://{self.metrics}",
            f"grpc_inference_address={grpc_inference_host}",
            f"grpc_inference_port={grpc_inference_port}",
            f"grpc_management_address={grpc_management_host}",
            f"grpc_management_port={grpc_management_port}",
            "# The model API (register/unregister) is off by default; the generator needs it",
            "# to serve newly trained models without a restart. It listens on loopback only,",
            "# inside the generator's pod, and is never exposed.",
            "enable_model_api=true",
            "# Token auth is on by default since 0.11.1. Every TorchServe endpoint here is on",
            "# loopback, reached only by the generator service beside it, and the SocialGAN",
            "# services enforce their own bearer token on every call from outside.",
            "disable_token_authorization=true",
            f"model_store={Path(self.model_store).resolve()}",
            "default_workers_per_model=1",
            "# Never pip-install a .mar's requirements at load time.",
            "install_py_dep_per_model=false",
            "metrics_mode=prometheus",
            "number_of_netty_threads=2",
            "netty_client_threads=2",
            "job_queue_size=100",
            "default_response_timeout=120",
            f"max_request_size={MAX_MESSAGE_BYTES}",
            f"max_response_size={MAX_MESSAGE_BYTES}",
            f"vmargs=-Xms64m -Xmx{self.jvm_heap} -XX:+UseSerialGC -XX:-UsePerfData",
        ]
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.properties())
        return path


# --------------------------------------------------------------------------- client


_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class TorchServeClient:
    """TorchServe's gRPC inference and management APIs, with timeouts, bounded retries
    with backoff, and errors mapped to socialgan.errors (never a raw grpc.RpcError).

    store and model_store are needed only by ensure_registered(), which builds the .mar.
    """

    def __init__(
        self,
        inference_addr: str,
        management_addr: str,
        *,
        store: ObjectStore | None = None,
        model_store: str | Path | None = None,
        timeout: float = 60.0,
        register_timeout: float = 180.0,
        attempts: int = 4,
        backoff: float = 0.25,
    ):
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        self.inference_addr = inference_addr
        self.management_addr = management_addr
        self._channels = [grpc.insecure_channel(inference_addr, options=options),
                          grpc.insecure_channel(management_addr, options=options)]
        self._inference = inference_pb2_grpc.InferenceAPIsServiceStub(self._channels[0])
        self._management = management_pb2_grpc.ManagementAPIsServiceStub(self._channels[1])
        self.store = store
        self.model_store = Path(model_store) if model_store is not None else None
        self.timeout = timeout
        self.register_timeout = register_timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._registered: set[tuple[str, str]] = set()
        self._guard = threading.Lock()
        self._model_locks: dict[str, threading.Lock] = {}

    @classmethod
    def from_settings(cls, store: ObjectStore | None = None, **kwargs) -> TorchServeClient:
        return cls(settings.require("TORCHSERVE_INFERENCE_ADDR"),
                   settings.require("TORCHSERVE_MANAGEMENT_ADDR"),
                   store=store, model_store=settings.require("TORCHSERVE_MODEL_STORE"),
                   **kwargs)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> TorchServeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing

    def _call(self, rpc: Callable, request, *, what: str, timeout: float | None = None,
              attempts: int | None = None, address: str | None = None):
        attempts = attempts or self.attempts
        for attempt in range(attempts):
            try:
                return rpc(request, timeout=timeout or self.timeout)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in _RETRYABLE and attempt + 1 < attempts:
                    delay = self.backoff * 2**attempt
                    log.debug("TorchServe %s: %s, retrying in %.2fs", what, code.name, delay)
                    time.sleep(delay)
                    continue
                raise _mapped(exc, what, address or self.inference_addr) from None
        raise AssertionError("unreachable")

    def _manage(self, rpc: Callable, request, *, what: str, **kwargs):
        return self._call(rpc, request, what=what, address=self.management_addr, **kwargs)

    # -- inference API

    def ping(self, timeout: float = 5.0, attempts: int = 1) -> str:
        """TorchServe's health status ("Healthy"); raises Unavailable when it does not answer."""
        reply = self._call(self._inference.Ping, empty_pb2.Empty(), what="Ping",
                           timeout=timeout, attempts=attempts)
        try:
            return str(json.loads(reply.health).get("status", reply.health))
        except (ValueError, AttributeError):
            return reply.health.strip()

    def predict(self, model_name: str, inputs: Mapping[str, bytes], version: str = "") -> bytes:
        request = inference_pb2.PredictionsRequest(model_name=model_name, model_version=version,
                                                   input=dict(inputs))
        reply = self._call(self._inference.Predictions, request,
                           what=f"Predictions for model {model_name!r}")
        return reply.prediction

    # -- management API

    def describe(self, model_name: str, version: str = "") -> list[dict]:
        """TorchServe's description of the model (one entry per version asked for)."""
        reply = self._manage(self._management.DescribeModel,
                             management_pb2.DescribeModelRequest(model_name=model_name,
                                                                 model_version=version),
                             what=f"DescribeModel {model_name!r}")
        return json.loads(reply.msg)

    def list_registered(self) -> list[str]:
        names: list[str] = []
        token = 0
        while True:
            reply = self._manage(self._management.ListModels,
                                 management_pb2.ListModelsRequest(limit=100,
                                                                  next_page_token=token),
                                 what="ListModels")
            page = json.loads(reply.msg)
            names += [m["modelName"] for m in page.get("models", [])]
            token = int(page.get("nextPageToken") or 0)
            if not token:
                return sorted(names)

    def is_registered(self, model_name: str, version: str = "") -> bool:
        try:
            self.describe(model_name, version)
        except NotFound:
            return False
        return True

    def register(self, archive: ModelArchive, workers: int = 1) -> None:
        """Register a .mar from the model store and wait until its worker is up."""
        request = management_pb2.RegisterModelRequest(
            url=archive.url, model_name=archive.model_name, initial_workers=workers,
            synchronous=True, batch_size=1, response_timeout=int(self.timeout))
        try:
            self._manage(self._management.RegisterModel, request,
                         what=f"RegisterModel {archive.model_name!r}",
                         timeout=self.register_timeout, attempts=1)
        except (TorchServeError, InvalidArgument):
            # A duplicate registration (another process got there first) is answered
            # UNKNOWN with no details: look before calling it a failure.
            if not self.is_registered(archive.model_name, archive.version):
                raise
            log.info("model %s version %s was already registered", archive.model_name,
                     archive.version)

    def unregister(self, model_name: str, version: str = "") -> None:
        request = management_pb2.UnregisterModelRequest(model_name=model_name,
                                                        model_version=version)
        self._manage(self._management.UnregisterModel, request,
                     what=f"UnregisterModel {model_name!r}", attempts=1)
        with self._guard:
            self._registered = {k for k in self._registered if k[0] != model_name}

    def forget(self, model_name: str) -> None:
        """Drop what this client remembers as registered (e.g. after TorchServe restarted)."""
        with self._guard:
            self._registered = {k for k in self._registered if k[0] != model_name}

    def ensure_registered(self, model_id: str, card: dict | None = None) -> str:
        """Make TorchServe serve model_id's current version (built from storage into a .mar
        when needed); returns that version. Idempotent; concurrent calls for one model
        register it once."""
        check_identifier(model_id, "model_id")
        if self.store is None or self.model_store is None:
            raise RuntimeError("ensure_registered needs a store and a model_store")
        with self._guard:
            lock = self._model_locks.setdefault(model_id, threading.Lock())
        with lock:
            card = card if card is not None else read_card(self.store, model_id)
            version = str(card["model_version"])
            if (model_id, version) in self._registered:
                return version
            if not self.is_registered(model_id, version):
                archive = build_mar(self.store, model_id, self.model_store)
                started = time.monotonic()
                log.info("registering %s version %s with TorchServe", model_id, version,
                         extra={"archive": archive.url})
                self.register(archive)
                log.info("registered %s in %.1fs", model_id, time.monotonic() - started)
            with self._guard:
                self._registered.add((model_id, version))
            return version


def _mapped(exc: grpc.RpcError, what: str, address: str) -> Exception:
    code = exc.code()
    details = exc.details() or ""
    # TorchServe appends the Java exception's class name on a line of its own.
    message = details.splitlines()[0] if details else ""
    # Predictions for an unknown model or version come back as INTERNAL, not NOT_FOUND.
    if code == grpc.StatusCode.NOT_FOUND or "NotFoundException" in details:
        return NotFound(f"TorchServe: {what}: {message}")
    if code in _RETRYABLE:
        return Unavailable(f"TorchServe at {address} did not answer {what} ({code.name}): "
                           f"{message}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # The handler's messages are "<field>: <problem>".
        field, _, problem = message.partition(": ")
        return InvalidArgument(field, problem) if problem else InvalidArgument("input", message)
    return TorchServeError(f"TorchServe {what} failed ({code.name}): {message}")


# --------------------------------------------------------------------------- process


class TorchServeProcess:
    """One TorchServe (Java frontend + Python workers) in its own work dir and process group.

    The work dir holds config.properties, logs/ and torchserve.log (its console output,
    unless console=True); with TMPDIR/TEMP pointed at work dir/tmp the launcher's pid file
    and the worker sockets stay private to this instance.
    """

    def __init__(self, config: TorchServeConfig, workdir: str | Path, *,
                 python: str = sys.executable, console: bool = False):
        self.config = config
        self.workdir = Path(workdir).resolve()
        self.python = python
        self.console = console
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "torchserve.log"

    def client(self, store: ObjectStore | None = None, **kwargs) -> TorchServeClient:
        return TorchServeClient(self.config.grpc_inference, self.config.grpc_management,
                                store=store, model_store=self.config.model_store, **kwargs)

    def _tmpdir(self) -> Path:
        tmp = self.workdir / "tmp"
        if len(str(tmp)) > _MAX_TMPDIR_LEN:
            tmp = Path(tempfile.mkdtemp(prefix="socialgan-ts-"))
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def command(self, config_path: Path) -> list[str]:
        return [self.python, "-m", "ts.model_server", "--foreground",
                "--ts-config", str(config_path),
                "--model-store", str(Path(self.config.model_store).resolve()),
                # Start from config.properties alone, never from a snapshot of a past run.
                "--ncs"]

    def start(self, timeout: float = 180.0) -> TorchServeProcess:
        """Start TorchServe and wait until its gRPC Ping answers Healthy."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        # Otherwise an older TorchServe on these ports would answer our health checks.
        self.config.check_ports_free()
        self.workdir.mkdir(parents=True, exist_ok=True)
        Path(self.config.model_store).mkdir(parents=True, exist_ok=True)
        config_path = self.config.write(self.workdir / "config.properties")
        tmp = self._tmpdir()
        # TS_CONFIG_FILE would silently replace config.properties, other TS_* override it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
        env.update(TMPDIR=str(tmp), TEMP=str(tmp), LOG_LOCATION=str(self.workdir / "logs"),
                   METRICS_LOCATION=str(self.workdir / "logs"), PYTHONUNBUFFERED="1")
        if self.console:
            out = None
        else:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log_file
        log.info("starting TorchServe", extra={
            "workdir": str(self.workdir), "grpc_inference": self.config.grpc_inference,
            "grpc_management": self.config.grpc_management, "python": self.python})
        self.proc = subprocess.Popen(self.command(config_path), cwd=self.workdir, env=env,
                                     stdout=out, stderr=subprocess.STDOUT if out else None,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 180.0) -> None:
        started = time.monotonic()
        last, next_note = "no answer", started + 5
        with self.client() as client:
            while True:
                waited = time.monotonic() - started
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise RuntimeError(f"TorchServe exited ({code}) before it was healthy; "
                                       f"last output:\n{self.log_tail()}")
                try:
                    last = client.ping(timeout=2.0)
                    if last == "Healthy":
                        log.info("TorchServe healthy after %.1fs", waited)
                        return
                except Unavailable:
                    last = "not answering yet"
                if waited > timeout:
                    raise TimeoutError(f"TorchServe not healthy after {timeout:.0f}s "
                                       f"(last: {last}); output:\n{self.log_tail()}")
                if time.monotonic() > next_note:
                    log.info("waiting for TorchServe (%.0fs, %s)", waited, last)
                    next_note += 5
                time.sleep(0.25)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the Java frontend (it stops its workers and the launcher then exits),
        then SIGKILL whatever is left of the process group after timeout."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        import psutil  # a TorchServe dependency

        try:
            frontend = psutil.Process(proc.pid).children()
        except psutil.Error:
            frontend = []
        if not frontend and proc.poll() is None:
            frontend_or_launcher = [proc.pid]  # the frontend has not been forked yet
        else:
            frontend_or_launcher = [p.pid for p in frontend]
        for pid in frontend_or_launcher:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout)
            psutil.wait_procs(frontend, timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("TorchServe did not stop in %.0fs; killing it", timeout)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftover workers, if any
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        log.info("TorchServe stopped")

    def __enter__(self) -> TorchServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    """Run TorchServe in the foreground with the environment's config until SIGTERM/SIGINT."""
    from socialgan import log as logs

    logs.configure("torchserve")
    process = TorchServeProcess(TorchServeConfig.from_settings(),
                                settings.require("TORCHSERVE_WORK_DIR"), console=True)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    process.start()
    while not stopping.wait(1.0):
        if not process.running:
            code = process.proc.returncode if process.proc else None
            log.error("TorchServe exited on its own (%s)", code)
            process.stop()
            sys.exit(1)
    process.stop()


if __name__ == "__main__":
    main()

"""TorchServe's gRPC inference and management APIs as a client: timeouts, bounded retries,
the keys TorchServe demands, and errors mapped to socialgan.errors (never a raw
grpc.RpcError)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from socialgan import settings
from socialgan.errors import InvalidArgument, NotFound, Unavailable
from socialgan.models.export import read_card
from socialgan.serving.archive import ModelArchive, build_mar
from socialgan.serving.torchserve_config import MAX_MESSAGE_BYTES
from socialgan.serving.torchserve_keys import TorchServeKeys, default_key_file, read_keys
from socialgan.storage import ObjectStore
from socialgan.torchserve import (
    inference_pb2,
    inference_pb2_grpc,
    management_pb2,
    management_pb2_grpc,
)
from socialgan.validation import check_identifier

log = logging.getLogger("socialgan.serving.torchserve")

_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# TorchServe's answer (INTERNAL) when a model has no worker: scaled to 0, or its worker
# died and is being restarted.
_NO_WORKER = "has no worker to serve"


class TorchServeError(RuntimeError):
    """TorchServe answered with an error that is neither bad input nor unavailability
    (e.g. the handler crashed); the gRPC layer reports it as INTERNAL with this message."""


class NoWorker(Unavailable):
    """TorchServe has the model but no worker to run it."""


class TorchServeClient:
    """store and model_store are needed only by ensure_registered(), which builds the .mar.
    key_file is TorchServe's key file; it is read again when TorchServe refuses the keys
    (it restarted and made new ones)."""

    def __init__(
        self,
        inference_addr: str,
        management_addr: str,
        *,
        key_file: str | Path | None = None,
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
        self.key_file = Path(key_file) if key_file is not None else None
        self._keys: TorchServeKeys | None = None
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
                   key_file=default_key_file(), store=store,
                   model_store=settings.require("TORCHSERVE_MODEL_STORE"), **kwargs)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> TorchServeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing

    def _metadata(self, api: str, reload: bool = False):
        if self.key_file is None:
            return None
        if reload or self._keys is None:
            self._keys = read_keys(self.key_file)
        if self._keys is None:
            return None  # TorchServe has not written it yet: it will refuse, we retry
        return TorchServeKeys.metadata(getattr(self._keys, api))

    def _call(self, rpc: Callable, request, *, what: str, timeout: float | None = None,
              attempts: int | None = None, api: str = "inference"):
        attempts = attempts or self.attempts
        address = self.inference_addr if api == "inference" else self.management_addr
        reloaded = False
        attempt = 0
        while True:
            try:
                return rpc(request, timeout=timeout or self.timeout,
                           metadata=self._metadata(api))
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.PERMISSION_DENIED and not reloaded:
                    # A restarted TorchServe wrote new keys: read them once and try again.
                    reloaded = True
                    self._metadata(api, reload=True)
                    continue
                attempt += 1
                if code in _RETRYABLE and attempt < attempts:
                    delay = self.backoff * 2 ** (attempt - 1)
                    log.debug("TorchServe %s: %s, retrying in %.2fs", what, code.name, delay)
                    time.sleep(delay)
                    continue
                raise _mapped(exc, what, address) from None

    def _manage(self, rpc: Callable, request, *, what: str, **kwargs):
        return self._call(rpc, request, what=what, api="management", **kwargs)

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
        what = f"Predictions for model {model_name!r}"
        try:
            return self._call(self._inference.Predictions, request, what=what).prediction
        except NoWorker:
            # Scaled to zero, or its worker died: bring one worker back and ask again once.
            log.warning("TorchServe has no worker for %s; scaling it back to 1", model_name)
            self.scale(model_name, 1, version)
            return self._call(self._inference.Predictions, request, what=what).prediction

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
        except NoWorker:
            return True  # DescribeModel too says "no worker" for a model scaled to 0
        return True

    def scale(self, model_name: str, workers: int, version: str = "") -> None:
        """Set the model's workers to exactly `workers` and wait until they are up."""
        request = management_pb2.ScaleWorkerRequest(
            model_name=model_name, model_version=version, min_worker=workers,
            max_worker=workers, synchronous=True)
        self._manage(self._management.ScaleWorker, request,
                     what=f"ScaleWorker {model_name!r}", timeout=self.register_timeout,
                     attempts=1)

    def register(self, archive: ModelArchive, workers: int = 1) -> None:
        """Register a .mar from the model store and wait until its worker is up."""
        name = archive.url
        if self.model_store is not None and (
                "/" in name or ":" in name or not (self.model_store / name).is_file()):
            # Only archives the generator built into the model store, never a URL.
            raise InvalidArgument("url", f"{name[:100]!r} is not a .mar in the model store")
        request = management_pb2.RegisterModelRequest(
            url=name, model_name=archive.model_name, initial_workers=workers,
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
        self._unregister_version(model_name, version)
        self.forget(model_name)

    def _unregister_version(self, model_name: str, version: str) -> None:
        request = management_pb2.UnregisterModelRequest(model_name=model_name,
                                                        model_version=version)
        self._manage(self._management.UnregisterModel, request,
                     what=f"UnregisterModel {model_name!r}", attempts=1)
        with self._guard:
            self._registered.discard((model_name, version))

    def unregister_all(self, model_name: str) -> None:
        """Unregister every version of the model this client registered (TorchServe's
        default version when it registered none), stopping their workers."""
        with self._guard:
            versions = sorted(v for m, v in self._registered if m == model_name) or [""]
        for version in versions:
            self.unregister(model_name, version)

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
                stale = [v for m, v in self._registered if m == model_id and v != version]
                self._registered.add((model_id, version))
        if stale:
            self._retire_versions(model_id, version, stale)
        return version

    def _retire_versions(self, model_id: str, current: str, stale: list[str]) -> None:
        """A re-exported model: make the new version the default (TorchServe keeps the
        first one otherwise and refuses to drop a default), then unregister the old ones,
        whose workers would otherwise live on."""
        try:
            self._manage(self._management.SetDefault,
                         management_pb2.SetDefaultRequest(model_name=model_id,
                                                          model_version=current),
                         what=f"SetDefault {model_id!r}", attempts=1)
            for old in stale:
                self._unregister_version(model_id, old)
        except (NotFound, TorchServeError, Unavailable) as exc:
            log.warning("could not retire old versions of %s: %s", model_id, exc)


def _mapped(exc: grpc.RpcError, what: str, address: str) -> Exception:
    code = exc.code()
    details = exc.details() or ""
    # TorchServe appends the Java exception's class name on a line of its own.
    message = details.splitlines()[0] if details else ""
    # Predictions for an unknown model or version come back as INTERNAL, not NOT_FOUND.
    if code == grpc.StatusCode.NOT_FOUND or "NotFoundException" in details:
        return NotFound(f"TorchServe: {what}: {message}")
    if _NO_WORKER in details:
        return NoWorker(f"TorchServe at {address} has no worker for {what}; try again")
    if code in _RETRYABLE:
        return Unavailable(f"TorchServe at {address} did not answer {what} ({code.name}): "
                           f"{message}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        # Our keys are wrong (TorchServe's key file is not the one we read): a set-up
        # problem the caller cannot fix by asking differently.
        return Unavailable(f"TorchServe at {address} refused the key for {what}; check "
                           "TORCHSERVE_KEY_FILE")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # The handler's messages are "<field>: <problem>".
        field, _, problem = message.partition(": ")
        return InvalidArgument(field, problem) if problem else InvalidArgument("input", message)
    return TorchServeError(f"TorchServe {what} failed ({code.name}): {message}")

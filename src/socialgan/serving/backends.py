"""Where generated images come from, behind one small interface.

generate_grid() only needs "count images for this seed from this model, as uint8 NHWC",
so TorchServe could be replaced by Triton or KServe by adding one class here.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from socialgan import settings
from socialgan.errors import NotFound, SocialGanError
from socialgan.models import generate_uint8
from socialgan.models.export import load_generator
from socialgan.serving import wire
from socialgan.serving.residency import ModelResidency
from socialgan.serving.torchserve_client import TorchServeClient, TorchServeError
from socialgan.serving.upscale import (
    OWN_PREFIX,
    Upscaled,
    UpscaleRequest,
    is_own,
    own_card,
    upscale_images,
)
from socialgan.storage import ObjectStore

log = logging.getLogger("socialgan.serving")


class GeneratorBackend(ABC):
    """Runs exported generators. card is the model's card (models/<id>/model.json)."""

    name: str = "backend"

    @abstractmethod
    def generate(self, model_id: str, card: dict[str, Any], seed: int, count: int) -> np.ndarray:
        """count images for seed as uint8 NHWC; the same seed gives the same images."""

    def generate_sized(self, model_id: str, card: dict[str, Any], seed: int, count: int,
                       upscale: UpscaleRequest) -> Upscaled:
        """generate() resized by upscale, run where the model runs: here, in this process
        (TorchServe's backend sends the request to its handler, which calls the same
        upscale_images). Our own upscalers (own:<model_id>) need a backend with a store."""
        return upscale_images(self.generate(model_id, card, seed, count), upscale)

    def prepare(self, model_id: str, card: dict[str, Any] | None = None) -> None:
        """Load model_id ahead of the first request (optional warm-up)."""
        return None

    def loaded_models(self) -> set[str]:
        """Ids of the models that are loaded now."""
        return set()

    def close(self) -> None:
        return None


class TorchServeBackend(GeneratorBackend):
    """Images from TorchServe: the model is registered on first use, then served by its
    worker through the gRPC inference API. At most residency.max_loaded models stay
    registered; the least recently used, and any idle for residency.idle_seconds, are
    unregistered (a sweeper thread catches the idle ones between requests)."""

    name = "torchserve"

    def __init__(self, client: TorchServeClient, residency: ModelResidency | None = None):
        self.client = client
        self.residency = residency or ModelResidency(max_loaded=2, idle_seconds=0)
        self._closed = threading.Event()
        self._sweeper: threading.Thread | None = None
        if self.residency.idle_seconds > 0:
            self._sweeper = threading.Thread(target=self._sweep, name="model-idle-sweeper",
                                             daemon=True)
            self._sweeper.start()

    @classmethod
    def from_settings(cls, store: ObjectStore) -> TorchServeBackend:
        max_loaded = settings.get_int("TORCHSERVE_MAX_LOADED_MODELS")
        idle_seconds = settings.get_int("TORCHSERVE_MODEL_IDLE_SECONDS")
        if max_loaded < 1:
            raise settings.ConfigError(
                f"TORCHSERVE_MAX_LOADED_MODELS={max_loaded} must be at least 1")
        if idle_seconds < 0:
            raise settings.ConfigError(
                f"TORCHSERVE_MODEL_IDLE_SECONDS={idle_seconds} must be 0 (never) or more")
        return cls(TorchServeClient.from_settings(store),
                   ModelResidency(max_loaded, idle_seconds))

    def _evict(self) -> None:
        for model_id in self.residency.take_evictions():
            log.info("unloading model %s from TorchServe (least recently used or idle)",
                     model_id)
            try:
                self.client.unregister_all(model_id)
            except NotFound:
                pass  # gone already (TorchServe restarted)
            except SocialGanError as exc:
                log.warning("could not unload %s: %s", model_id, exc)

    def _sweep(self) -> None:
        period = min(30.0, max(0.5, self.residency.idle_seconds / 4))
        while not self._closed.wait(period):
            try:
                self._evict()
            except Exception:  # noqa: BLE001 - the sweeper must outlive one bad round
                if self._closed.is_set():
                    return  # closed mid-round: the channel is gone
                log.exception("unloading idle models failed")

    def prepare(self, model_id: str, card: dict[str, Any] | None = None) -> None:
        with self.residency.using(model_id):
            self._evict()
            self.client.ensure_registered(model_id, card)

    def generate(self, model_id: str, card: dict[str, Any], seed: int, count: int) -> np.ndarray:
        return self._predict(model_id, card, wire.encode_request(seed, count), count,
                             None).images

    def generate_sized(self, model_id: str, card: dict[str, Any], seed: int, count: int,
                       upscale: UpscaleRequest) -> Upscaled:
        if not is_own(upscale.upscaler):
            return self._predict(model_id, card, wire.encode_request(seed, count, upscale),
                                 count, upscale)
        # Our own upscaler is a TorchServe model of its own: the generator's images go to
        # its worker (64 px tiles: a few hundred KB on loopback), which resizes them. Its
        # card first: an unknown or wrong model fails before anything is generated.
        upscaler_id = upscale.upscaler[len(OWN_PREFIX):]
        upscaler_card = own_card(self.client.store, upscaler_id)
        images = self.generate(model_id, card, seed, count)
        return self._predict(upscaler_id, upscaler_card, wire.encode_upscale_request(
            images, upscale.width, upscale.height), count, upscale)

    def _predict(self, model_id: str, card: dict[str, Any], inputs: dict[str, bytes],
                 count: int, upscale: UpscaleRequest | None) -> Upscaled:
        with self.residency.using(model_id):
            # Room first, so the bound holds while the new worker starts.
            self._evict()
            version = self.client.ensure_registered(model_id, card)
            try:
                data = self.client.predict(model_id, inputs, version)
            except NotFound:
                # TorchServe lost the model (restarted without snapshots): register it again.
                log.warning("TorchServe no longer serves %s; registering it again", model_id)
                self.client.forget(model_id)
                version = self.client.ensure_registered(model_id, card)
                data = self.client.predict(model_id, inputs, version)
        try:
            images, upscaler, note = wire.decode_response(data)
        except ValueError as exc:
            raise TorchServeError(str(exc)) from None
        if images.shape[0] != count:
            raise TorchServeError(f"TorchServe returned {images.shape[0]} images, asked {count}")
        if upscale is not None and (upscaler is None or images.shape[1:3] != (
                upscale.height, upscale.width)):
            raise TorchServeError(f"TorchServe returned {images.shape[2]}x{images.shape[1]} "
                                  f"images, asked {upscale.width}x{upscale.height}")
        return Upscaled(images, upscaler or "none", note)

    def loaded_models(self) -> set[str]:
        return set(self.client.list_registered())

    def close(self) -> None:
        self._closed.set()
        self.client.close()


class InProcessBackend(GeneratorBackend):
    """Images from the generator loaded into this process (tests, benchmarks, the CLI).
    Models are cached; a re-exported model (new weights sha256) is loaded again."""

    name = "in-process"

    def __init__(self, store: ObjectStore, device: str | torch.device = "cpu"):
        self.store = store
        self.device = device
        self._models: dict[str, tuple[str, torch.nn.Module]] = {}
        self._lock = threading.Lock()

    def _model(self, model_id: str, card: dict[str, Any] | None) -> torch.nn.Module:
        sha = (card or {}).get("weights_sha256", "")
        with self._lock:
            cached = self._models.get(model_id)
            if cached is None or (sha and cached[0] != sha):
                netG, loaded_card = load_generator(self.store, model_id, self.device)
                cached = (loaded_card.get("weights_sha256", ""), netG)
                self._models[model_id] = cached
            return cached[1]

    def prepare(self, model_id: str, card: dict[str, Any] | None = None) -> None:
        self._model(model_id, card)

    def generate(self, model_id: str, card: dict[str, Any], seed: int, count: int) -> np.ndarray:
        return generate_uint8(self._model(model_id, card), seed, count, int(card["latent_dim"]))

    def generate_sized(self, model_id: str, card: dict[str, Any], seed: int, count: int,
                       upscale: UpscaleRequest) -> Upscaled:
        return upscale_images(self.generate(model_id, card, seed, count), upscale, self.store)

    def loaded_models(self) -> set[str]:
        with self._lock:
            return set(self._models)

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

from socialgan.errors import NotFound
from socialgan.models import generate_uint8
from socialgan.models.export import load_generator
from socialgan.serving import wire
from socialgan.serving.torchserve import TorchServeClient, TorchServeError
from socialgan.storage import ObjectStore

log = logging.getLogger("socialgan.serving")


class GeneratorBackend(ABC):
    """Runs exported generators. card is the model's card (models/<id>/model.json)."""

    name: str = "backend"

    @abstractmethod
    def generate(self, model_id: str, card: dict[str, Any], seed: int, count: int) -> np.ndarray:
        """count images for seed as uint8 NHWC; the same seed gives the same images."""

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
    worker through the gRPC inference API."""

    name = "torchserve"

    def __init__(self, client: TorchServeClient):
        self.client = client

    @classmethod
    def from_settings(cls, store: ObjectStore) -> TorchServeBackend:
        return cls(TorchServeClient.from_settings(store))

    def prepare(self, model_id: str, card: dict[str, Any] | None = None) -> None:
        self.client.ensure_registered(model_id, card)

    def generate(self, model_id: str, card: dict[str, Any], seed: int, count: int) -> np.ndarray:
        inputs = wire.encode_request(seed, count)
        version = self.client.ensure_registered(model_id, card)
        try:
            data = self.client.predict(model_id, inputs, version)
        except NotFound:
            # TorchServe lost the model (restarted without snapshots): register it again once.
            log.warning("TorchServe no longer serves %s; registering it again", model_id)
            self.client.forget(model_id)
            version = self.client.ensure_registered(model_id, card)
            data = self.client.predict(model_id, inputs, version)
        try:
            images = wire.decode_images(data)
        except ValueError as exc:
            raise TorchServeError(str(exc)) from None
        if images.shape[0] != count:
            raise TorchServeError(f"TorchServe returned {images.shape[0]} images, asked {count}")
        return images

    def loaded_models(self) -> set[str]:
        return set(self.client.list_registered())

    def close(self) -> None:
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

    def loaded_models(self) -> set[str]:
        with self._lock:
            return set(self._models)

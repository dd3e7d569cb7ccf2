"""The trainer -> generator hand-off: models/<model_id>/generator.pt + model.json.

generator.pt is a plain state_dict (tensors only) so the generator side loads it with
torch.load(weights_only=True); model.json (the model card) says how to rebuild the
network and what to write in captions:

    {"model_id", "model_version", "arch", "arch_options", "latent_dim", "width",
     "height", "hashtag", "method", "metrics": {name: float}, "dataset_id",
     "created_unix"}
"""

from __future__ import annotations

import io
import time
from typing import Any

import torch
from torch import nn

from socialgan.errors import NotFound, quote
from socialgan.models import build_generator
from socialgan.storage import ObjectStore, keys

CARD_FIELDS = ("model_id", "model_version", "arch", "arch_options", "latent_dim", "width",
               "height", "hashtag", "method", "metrics", "dataset_id", "created_unix")


def export_generator(
    store: ObjectStore, model_id: str, netG: nn.Module, card: dict[str, Any]
) -> str:
    """Store netG's weights and its card; returns the model prefix. The card is written
    last, so a model is listed only once its weights are complete."""
    state = {k: v.detach().cpu().contiguous() for k, v in netG.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    weights = store.put_bytes(keys.model_weights_key(model_id), buf.getvalue())
    full = {"model_id": model_id, "model_version": "1", "metrics": {}, "dataset_id": "",
            "created_unix": time.time(), **card, "weights_sha256": weights.sha256}
    missing = [f for f in CARD_FIELDS if f not in full]
    if missing:
        raise ValueError(f"model card lacks {missing}")
    store.put_json(keys.model_card_key(model_id), full)
    return keys.model_prefix(model_id)


def read_card(store: ObjectStore, model_id: str) -> dict[str, Any]:
    try:
        return store.get_json(keys.model_card_key(model_id))
    except NotFound:
        raise NotFound(
            f"model_id: no model {quote(model_id)}: train one, or list models with ListModels"
        ) from None


def load_generator(store: ObjectStore, model_id: str,
                   device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the exported generator in eval mode, with its card."""
    card = read_card(store, model_id)
    state = torch.load(io.BytesIO(store.get_bytes(keys.model_weights_key(model_id))),
                       map_location=device, weights_only=True)
    netG = build_generator(card["arch"], card["arch_options"])
    netG.load_state_dict(state)
    return netG.to(device).eval(), card


def list_model_ids(store: ObjectStore) -> list[str]:
    return sorted({k.split("/")[1] for k in store.list("models/") if k.endswith("/model.json")})

"""The trainer -> generator hand-off of a caption model, beside the GAN's
(models/export.py):

    models/<model_id>/caption_lm.pt        the network's state_dict (tensors only)
    models/<model_id>/caption_ngrams.npy   hashes of the training captions' 6-word runs
    models/<model_id>/model.json           the card: "kind": "caption", "arch": "caption-lm",
                                           model_config, vocab, metrics, example_lines...
"""

from __future__ import annotations

import io
import time
from typing import Any

import torch

from socialgan.storage import ObjectStore, keys
from socialgan.text import CAPTION_MODEL, memorisation
from socialgan.text.model import CaptionLM

WEIGHTS_FILE = "caption_lm.pt"
NGRAMS_FILE = "caption_ngrams.npy"


def weights_key(model_id: str) -> str:
    return keys.model_prefix(model_id) + WEIGHTS_FILE


def ngrams_key(model_id: str) -> str:
    """Hashes of the training captions' 6-word runs: generation refuses a line that replays
    one, without the captions themselves being stored beside the model."""
    return keys.model_prefix(model_id) + NGRAMS_FILE


def export_caption_model(store: ObjectStore, model_id: str, model: CaptionLM,
                         captions: list[str], card: dict[str, Any]) -> str:
    """models/<model_id>/caption_lm.pt (a plain state_dict), the n-gram hashes and the
    model card, written last so a model is listed only once it is complete."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    weights = store.put_bytes(weights_key(model_id), buf.getvalue())
    hashes = memorisation.ngram_hashes(captions)
    store.put_bytes(ngrams_key(model_id), memorisation.hashes_to_bytes(hashes))
    store.put_json(keys.model_card_key(model_id), {
        "model_id": model_id, "model_version": "1", "kind": "caption", "arch": CAPTION_MODEL,
        "run_id": model_id, "model_config": model.config.to_json(),
        "width": 0, "height": 0, "created_unix": time.time(),
        "weights_sha256": weights.sha256, **card})
    return keys.model_prefix(model_id)

"""Captions from a trained caption model in storage: by seed, optionally after a prompt,
through the safety checks, with the template caption as the fallback.

A seed names its text: attempt 0 samples with the seed itself; when that line fails a
check (safety.caption_problems, or it replays 6 words of a training caption) attempts
1..ATTEMPTS-1 sample with seeds derived from it, and when all fail the fallback is used.
The same model, seed and prompt therefore always give the same caption.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from socialgan.errors import InvalidArgument
from socialgan.models.export import read_card
from socialgan.publishing.caption import CaptionInputs, build_caption
from socialgan.serving.wire import check_seed
from socialgan.storage import ObjectStore
from socialgan.text import CAPTION_MODEL, memorisation
from socialgan.text.export import ngrams_key, weights_key
from socialgan.text.model import CaptionLM, ModelConfig, sample_line
from socialgan.text.safety import caption_problems
from socialgan.text.vocab import CharVocab
from socialgan.validation import check_identifier

ATTEMPTS = 8
MAX_PROMPT_CHARS = 100
MAX_CAPTION_CHARS = 280  # a generated line stops here if the model never ends it
_ATTEMPT_STRIDE = 1_000_003
_CACHE_SIZE = 4


@dataclass
class CaptionModel:
    """A caption model loaded from storage: the network, its vocabulary, its card and the
    hashes of its training captions' word runs."""

    model: CaptionLM
    vocab: CharVocab
    card: dict[str, Any]
    ngram_hashes: np.ndarray


@dataclass(frozen=True)
class CaptionResult:
    text: str
    model_id: str
    seed: int
    generated: bool  # False: every attempt failed a check and text is the fallback
    attempts: int
    # Why each refused attempt was refused, in order ("memorised", "url", ...).
    rejected: list[list[str]] = field(default_factory=list)
    hashtag: str = ""
    method: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


_cache: OrderedDict[tuple[int, str, str], CaptionModel] = OrderedDict()
_cache_lock = threading.Lock()


def load_caption_model(store: ObjectStore, model_id: str) -> CaptionModel:
    """The caption model model_id (NotFound naming model_id when there is none; an image
    model's id is InvalidArgument). Kept loaded: the last few, by weights hash, so a
    retrained model under the same id is read again."""
    check_identifier(model_id, "model_id")
    card = read_card(store, model_id)
    if card.get("arch") != CAPTION_MODEL:
        raise InvalidArgument("model_id", f"{model_id!r} is a {card.get('arch', 'image')} "
                              f"model; GenerateCaption needs a {CAPTION_MODEL} model")
    cache_key = (id(store), model_id, str(card.get("weights_sha256", "")))
    with _cache_lock:
        if cache_key in _cache:
            _cache.move_to_end(cache_key)
            return _cache[cache_key]
    model = CaptionLM(ModelConfig(**card["model_config"]))
    model.load_state_dict(torch.load(io.BytesIO(store.get_bytes(weights_key(model_id))),
                                     map_location="cpu", weights_only=True))
    loaded = CaptionModel(model.eval(), CharVocab.from_json(card["vocab"]), card,
                          memorisation.hashes_from_bytes(store.get_bytes(ngrams_key(model_id))))
    with _cache_lock:
        _cache[cache_key] = loaded
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def check_prompt(prompt: str, vocab: CharVocab) -> str:
    """prompt, or InvalidArgument naming it: too long, characters the model never saw, or
    something no generated caption may hold (a mention, a link...)."""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument("prompt", f"is {len(prompt)} characters; at most "
                              f"{MAX_PROMPT_CHARS}")
    vocab.check_known(prompt, "prompt")
    problems = [p for p in caption_problems(prompt) if p not in ("empty", "no_letters")]
    if problems:
        raise InvalidArgument("prompt", "holds what no caption may: " + ", ".join(problems))
    return prompt


def line_problems(text: str, loaded: CaptionModel) -> list[str]:
    """caption_problems, and "memorised" when text replays 6 words of a training caption."""
    problems = caption_problems(text)
    if memorisation.replays_a_caption(text, loaded.ngram_hashes):
        problems.append("memorised")
    return problems


def template_caption(card: dict[str, Any], model_id: str, seed: int) -> str:
    """The template caption (publishing.caption) for the caption model's own card."""
    return build_caption(CaptionInputs(hashtag=card.get("hashtag") or "generated",
                                       method=str(card.get("method", "")),
                                       metrics=card_metrics(card), model_id=model_id,
                                       seed=seed))


def card_metrics(card: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in (card.get("metrics") or {}).items()
            if isinstance(v, (int, float))}


def sample_caption(store: ObjectStore, model_id: str, seed: int, prompt: str = "",
                   fallback: str | None = None) -> CaptionResult:
    """The caption seed names (see the module docstring); fallback None: the template
    caption of the model's card."""
    check_seed(seed)
    loaded = load_caption_model(store, model_id)
    check_prompt(prompt, loaded.vocab)
    sampling = loaded.card.get("sampling") or {}
    rejected: list[list[str]] = []
    common = {"model_id": model_id, "seed": seed, "hashtag": str(loaded.card.get("hashtag", "")),
              "method": str(loaded.card.get("method", "")), "metrics": card_metrics(loaded.card)}
    for attempt in range(ATTEMPTS):
        text = sample_line(loaded.model, loaded.vocab, (seed + attempt * _ATTEMPT_STRIDE) % 2**63,
                           prompt, max_chars=MAX_CAPTION_CHARS,
                           temperature=float(sampling.get("temperature", 0.8)),
                           top_k=int(sampling.get("top_k", 0))).strip()
        problems = line_problems(text, loaded)
        if not problems:
            return CaptionResult(text, generated=True, attempts=attempt + 1, rejected=rejected,
                                 **common)
        rejected.append(problems)
    text = fallback if fallback is not None else template_caption(loaded.card, model_id, seed)
    return CaptionResult(text, generated=False, attempts=ATTEMPTS, rejected=rejected, **common)


def generate_caption(store: ObjectStore, model_id: str, seed: int, prompt: str = "",
                     fallback: str | None = None) -> str:
    """A safe caption from model_id for seed, or the fallback (None: the template caption)
    when every attempt fails a check: what the publisher's "generated" caption mode calls."""
    return sample_caption(store, model_id, seed, prompt, fallback).text

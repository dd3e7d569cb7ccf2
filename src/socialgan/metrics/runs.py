"""Metrics of a stored run, computed later (`socialgan metrics --run RUN`): any metric
on a run's exported generator, or on any of its checkpoints.

Kept out of socialgan.metrics' own imports: the metrics stay plain functions of two
image sets, and this module is the one place that knows where runs keep their images.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from socialgan.errors import NotFound
from socialgan.filtering import load_dataset
from socialgan.metrics import compute
from socialgan.models import build_generator, generate_uint8
from socialgan.models.export import load_generator
from socialgan.storage import ObjectStore, keys

# Latent seed of generated sets: the trainer's final metrics use the same one.
METRIC_SEED = 1_000_003


def load_run_generator(store: ObjectStore, run_id: str,
                       step: int | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(generator in eval mode, info): the export when step is None and the run was
    exported, else the checkpoint of `step` (the newest when None). A checkpoint's EMA
    generator is used when it has one, as the export does."""
    if step is None and store.exists(keys.model_card_key(run_id)):
        netG, card = load_generator(store, run_id)
        return netG, {"source": keys.model_weights_key(run_id), "dataset_id":
                      card["dataset_id"], "latent_dim": card["latent_dim"],
                      "step": card.get("steps")}
    if step is None:
        pointer_key = keys.checkpoint_latest_key(run_id)
        if not store.exists(pointer_key):
            raise NotFound(f"run {run_id!r} has neither an exported model nor a checkpoint")
        key = store.get_json(pointer_key)["key"]
    else:
        key = keys.checkpoint_key(run_id, step)
        if not store.exists(key):
            raise NotFound(f"run {run_id!r} has no checkpoint at step {step} (older ones "
                           "are deleted unless keep_checkpoints is raised)")
    state = torch.load(io.BytesIO(store.get_bytes(key)), map_location="cpu", weights_only=True)
    netG = build_generator(state["model"], state["arch_options"])
    netG.load_state_dict(state.get("netG_ema") or state["netG"])
    return netG.eval(), {"source": key, "dataset_id": state["dataset_id"],
                         "latent_dim": int(state["arch_options"]["nz"]), "step": state["step"]}


def evaluate_run(store: ObjectStore, run_id: str, names: tuple[str, ...] = ("swd",),
                 count: int = 512, step: int | None = None, seed: int = 0,
                 **context: Any) -> dict[str, Any]:
    """{"run_id", "source", "step", "metrics"} of count generated images vs as many real
    ones (a fixed random subset) of the run's dataset."""
    netG, info = load_run_generator(store, run_id, step)
    images, _ = load_dataset(store, info["dataset_id"])
    pick = np.random.default_rng(seed).permutation(len(images))[:count]
    fake = np.concatenate([generate_uint8(netG, METRIC_SEED + i, min(128, len(pick) - start),
                                          info["latent_dim"])
                           for i, start in enumerate(range(0, len(pick), 128))])
    scores = compute(images[pick], fake, names, seed=seed, train=images, **context)
    return {"run_id": run_id, "source": info["source"], "step": info["step"],
            "metrics": scores}

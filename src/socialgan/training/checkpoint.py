"""Checkpoints: full training state in storage, published by a `latest` pointer.

The step file is written first and the pointer after it, so a reader (a resumed run)
only ever follows the pointer to a complete checkpoint: a run killed mid-write loses
at most the interval since the previous one. States are plain dicts of tensors and
numbers, loaded with torch.load(weights_only=True): no pickled code ever runs.
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

import torch

from socialgan.errors import FailedPrecondition
from socialgan.storage import ObjectStore, keys


def latest_pointer(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    """{"step", "key", "sha256", "created_unix"} of the run's newest complete checkpoint."""
    key = keys.checkpoint_latest_key(run_id)
    return store.get_json(key) if store.exists(key) else None


def save_checkpoint(store: ObjectStore, run_id: str, step: int, state: dict[str, Any],
                    keep: int = 2) -> str:
    """Store state as checkpoints/<run_id>/step-<step>.pt, move `latest` to it, then
    delete all but the `keep` newest step files. Returns the checkpoint's key."""
    buf = io.BytesIO()
    torch.save(state, buf)
    key = keys.checkpoint_key(run_id, step)
    info = store.put_bytes(key, buf.getvalue())
    store.put_json(keys.checkpoint_latest_key(run_id), {
        "step": step, "key": key, "sha256": info.sha256, "created_unix": time.time()})
    step_files = sorted(k for k in store.list(keys.checkpoint_prefix(run_id))
                        if k.endswith(".pt") and k != key)
    for old in step_files[: max(0, len(step_files) - (keep - 1))]:
        store.delete(old)
    return key


def load_latest(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    """The state the `latest` pointer names (tensors on the CPU), or None for a new run."""
    pointer = latest_pointer(store, run_id)
    if pointer is None:
        return None
    data = store.get_bytes(pointer["key"])
    if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise FailedPrecondition(f"checkpoint {pointer['key']} does not match its sha256 in "
                                 f"{keys.checkpoint_latest_key(run_id)}; it was changed or damaged")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

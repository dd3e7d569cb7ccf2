"""A dataset's images as stored: uint8 NHWC .npy shards under datasets/<dataset_id>/, read
through its manifest (written last: a dataset exists once its manifest does)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from socialgan.errors import FailedPrecondition, NotFound, quote
from socialgan.filtering.crop import crop_to
from socialgan.filtering.set_pass import Survivor
from socialgan.images import decode_rgb
from socialgan.storage import ObjectStore, keys


def write_shards(store: ObjectStore, dataset_id: str, survivors: Sequence[Survivor],
                 width: int, height: int, crop: str,
                 shard_images: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Crop the kept images to width x height and store them shard_images at a time; returns
    (the kept images' manifest entries, the shard keys). Each image is decoded again from
    storage rather than held in memory since the per-image stages."""
    pending: list[np.ndarray] = []
    shard_keys: list[str] = []

    def flush() -> None:
        buf = io.BytesIO()
        np.save(buf, np.stack(pending), allow_pickle=False)
        key = keys.dataset_shard_key(dataset_id, len(shard_keys))
        store.put_bytes(key, buf.getvalue())
        shard_keys.append(key)
        pending.clear()

    kept = []
    for s in survivors:
        pending.append(crop_to(decode_rgb(store.get_bytes(s.key)), width, height, crop))
        kept.append({"id": s.image_id, "key": s.key, "scores": s.scores})
        if len(pending) == shard_images:
            flush()
    if pending:
        flush()
    return kept, shard_keys


def read_manifest(store: ObjectStore, dataset_id: str) -> dict[str, Any]:
    try:
        return store.get_json(keys.dataset_manifest_key(dataset_id))
    except NotFound:
        raise NotFound(f"dataset_id: no dataset {quote(dataset_id)}: run FilterDataset for its "
                       f"hashtag first") from None


def dataset_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's headline fields (what build_dataset returns), without the image lists."""
    fields = ("dataset_id", "hashtag", "aspect", "width", "height", "kept", "dropped",
              "dropped_by_reason", "manifest_key", "shard_keys", "report_key")
    summary = {name: manifest[name] for name in fields}
    # Datasets written before the filter report (format 1) lack these.
    for name, empty in (("contact_sheet_keys", {}), ("thresholds", {}), ("crop", "center"),
                        ("stages", [])):
        summary[name] = manifest.get(name, empty)
    return summary


def load_dataset(store: ObjectStore, dataset_id: str) -> tuple[np.ndarray, dict[str, Any]]:
    """All of a dataset's images as one uint8 (N, H, W, 3) array, with its manifest."""
    manifest = read_manifest(store, dataset_id)
    shards = [np.load(io.BytesIO(store.get_bytes(k)), allow_pickle=False)
              for k in manifest["shard_keys"]]
    images = np.concatenate(shards) if len(shards) > 1 else shards[0]
    expected = (manifest["kept"], manifest["height"], manifest["width"], 3)
    if images.shape != expected or images.dtype != np.uint8:
        raise FailedPrecondition(f"dataset {dataset_id!r} is damaged: shards hold "
                                 f"{images.dtype} {images.shape}, manifest says uint8 {expected}")
    return images, manifest

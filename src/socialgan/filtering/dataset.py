"""raw/<hashtag>/ -> datasets/<dataset_id>/: decode, drop what cannot be trained on, crop, shard.

Every raw image goes through STAGES in order; the first stage that returns a Drop
decides why the image was left out. A stage is a named function of one candidate and
the run's FilterContext, so a new check (near-duplicates, blur, text...) is one more
entry in the list, with its thresholds declared next to it.

The kept images are stored as uint8 NHWC .npy shards so the trainer never decodes
images again; the manifest records every kept and dropped image and the parameters,
the report the counts a person looks at.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.images import BadImage, decode_rgb, fit_crop
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier, normalize_hashtag

MANIFEST_FORMAT = 1
ASPECTS = {"square": 1, "banner": 3}  # aspect -> width / height
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
# Shards hold at most this many images and about this many bytes, so a 256px banner
# dataset does not turn into one multi-gigabyte object.
SHARD_IMAGES = 4096
SHARD_BYTES = 256 << 20

ProgressFn = Callable[[int, int, int, dict[str, int]], None]


@dataclass
class Candidate:
    """One raw image on its way through the stages; stages fill in what they learn."""

    key: str
    image_id: str  # the raw key's sha256 stem
    data: bytes
    image: Image.Image | None = None


@dataclass(frozen=True)
class Drop:
    reason: str  # short machine-readable tag, the key of the report's counts
    detail: str = ""


@dataclass
class FilterContext:
    """What stages share during one filter run: the thresholds and what was seen so far."""

    thresholds: dict[str, float]
    seen_file_sha: set[str] = field(default_factory=set)
    seen_pixel_sha: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Stage:
    name: str
    check: Callable[[Candidate, FilterContext], Drop | None]
    thresholds: Mapping[str, float] = field(default_factory=dict)  # name -> default


def _decode(cand: Candidate, ctx: FilterContext) -> Drop | None:
    try:
        cand.image = decode_rgb(cand.data)
    except BadImage as exc:
        return Drop(exc.reason, str(exc))
    except Exception as exc:  # Pillow has more ways to fail than it documents
        return Drop("undecodable", f"{type(exc).__name__}: {exc}")
    return None


def _too_small(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    side = min(cand.image.size)
    if side < ctx.thresholds["min_side"]:
        return Drop("too_small", f"shorter side {side}px < min_side {ctx.thresholds['min_side']:g}")
    return None


def _exact_duplicate(cand: Candidate, ctx: FilterContext) -> Drop | None:
    # Raw keys are already content-addressed by file bytes; hashing the decoded pixels
    # as well catches the same picture stored in another container or with other metadata.
    assert cand.image is not None
    file_sha = hashlib.sha256(cand.data).hexdigest()
    pixels = hashlib.sha256(repr(cand.image.size).encode() + cand.image.tobytes()).hexdigest()
    if file_sha in ctx.seen_file_sha or pixels in ctx.seen_pixel_sha:
        return Drop("duplicate", "same pixels as an image kept earlier")
    ctx.seen_file_sha.add(file_sha)
    ctx.seen_pixel_sha.add(pixels)
    return None


STAGES: list[Stage] = [
    Stage("decode", _decode),
    # 0 keeps everything: the skeleton upsamples small images rather than judging them.
    Stage("size", _too_small, {"min_side": 0.0}),
    Stage("exact_duplicates", _exact_duplicate),
]


def default_thresholds() -> dict[str, float]:
    return {name: value for stage in STAGES for name, value in stage.thresholds.items()}


def _check_thresholds(given: Mapping[str, float] | None) -> dict[str, float]:
    thresholds = default_thresholds()
    for name, value in (given or {}).items():
        if name not in thresholds:
            known = ", ".join(sorted(thresholds)) or "none"
            raise InvalidArgument(f"thresholds.{name}", f"unknown threshold; known: {known}")
        thresholds[name] = float(value)
    return thresholds


def image_size(resolution: int, aspect: str) -> tuple[int, int]:
    """(width, height) of a dataset's images: height = resolution, width by the aspect."""
    if aspect not in ASPECTS:
        raise InvalidArgument("aspect", f"{aspect!r} is not one of {', '.join(ASPECTS)}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise InvalidArgument(
            "resolution", f"{resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    return ASPECTS[aspect] * resolution, resolution


@dataclass(frozen=True)
class FilterUpdate:
    processed: int
    total: int
    kept: int
    dropped_by_reason: dict[str, int]
    dataset: dict[str, Any] | None = None  # set on the last update only


def iter_build_dataset(
    store: ObjectStore,
    hashtag: str,
    *,
    resolution: int = 64,
    aspect: str = "square",
    dataset_id: str | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Iterator[FilterUpdate]:
    """build_dataset as a stream: one update per raw image, the last one with the dataset.

    Streaming callers (the gRPC method) iterate this; stopping early leaves no manifest,
    so a half-built dataset is never visible.
    """
    tag = normalize_hashtag(hashtag)
    width, height = image_size(resolution, aspect)
    limits = _check_thresholds(thresholds)
    dataset_id = check_identifier(dataset_id, "dataset_id") if dataset_id else keys.new_id(tag)

    raw_keys = [k for k in store.list(keys.raw_prefix(tag)) if not k.endswith(".json")]
    if not raw_keys:
        raise NotFound(f"no raw images for #{tag} under {keys.raw_prefix(tag)}: scrape it first")
    total = len(raw_keys)
    shard_images = max(1, min(SHARD_IMAGES, SHARD_BYTES // (width * height * 3)))

    ctx = FilterContext(limits)
    kept: list[dict[str, str]] = []
    dropped: list[dict[str, str]] = []
    counts: Counter[str] = Counter()
    pending: list[np.ndarray] = []
    shard_keys: list[str] = []

    def flush() -> None:
        buf = io.BytesIO()
        np.save(buf, np.stack(pending), allow_pickle=False)
        key = keys.dataset_shard_key(dataset_id, len(shard_keys))
        store.put_bytes(key, buf.getvalue())
        shard_keys.append(key)
        pending.clear()

    yield FilterUpdate(0, total, 0, {})
    for processed, key in enumerate(raw_keys, start=1):
        image_id = key.rsplit("/", 1)[-1].split(".", 1)[0]
        cand = Candidate(key=key, image_id=image_id, data=store.get_bytes(key))
        drop = None
        for stage in STAGES:
            drop = stage.check(cand, ctx)
            if drop:
                dropped.append({"id": image_id, "key": key, "stage": stage.name,
                                "reason": drop.reason, "detail": drop.detail})
                counts[drop.reason] += 1
                break
        if not drop:
            assert cand.image is not None
            pending.append(fit_crop(cand.image, width, height))
            kept.append({"id": image_id, "key": key})
            if len(pending) == shard_images:
                flush()
        yield FilterUpdate(processed, total, len(kept), dict(counts))

    if not kept:
        raise FailedPrecondition(
            f"no usable images for #{tag}: all {total} were dropped ({dict(counts)})")
    if pending:
        flush()

    summary = {
        "dataset_id": dataset_id,
        "hashtag": tag,
        "aspect": aspect,
        "width": width,
        "height": height,
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(counts),
        "manifest_key": keys.dataset_manifest_key(dataset_id),
        "shard_keys": shard_keys,
        "report_key": keys.dataset_report_key(dataset_id),
    }
    parameters = {"resolution": resolution, "aspect": aspect, "thresholds": limits,
                  "stages": [s.name for s in STAGES], "shard_images": shard_images}
    store.put_json(summary["report_key"], {
        "dataset_id": dataset_id, "hashtag": tag, "total": total, "kept": len(kept),
        "dropped": len(dropped), "dropped_by_reason": dict(counts), "thresholds": limits,
    })
    # The manifest goes last: a dataset exists once its manifest does.
    store.put_json(summary["manifest_key"], {
        **summary, "format": MANIFEST_FORMAT, "created_unix": time.time(),
        "parameters": parameters, "kept_images": kept, "dropped_images": dropped,
    })
    yield FilterUpdate(total, total, len(kept), dict(counts), dataset=summary)


def build_dataset(
    store: ObjectStore,
    hashtag: str,
    *,
    resolution: int = 64,
    aspect: str = "square",
    dataset_id: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Filter raw/<hashtag>/ into a dataset; returns its summary (the Dataset message's fields).

    progress(processed, total, kept, dropped_by_reason) is called once per raw image.
    Raises NotFound when there are no raw images, FailedPrecondition when none is kept,
    InvalidArgument for a bad hashtag, resolution, aspect, dataset id or threshold name.
    """
    for update in iter_build_dataset(store, hashtag, resolution=resolution, aspect=aspect,
                                     dataset_id=dataset_id, thresholds=thresholds):
        if update.dataset is not None:
            return update.dataset
        if progress:
            progress(update.processed, update.total, update.kept, update.dropped_by_reason)
    raise AssertionError("iter_build_dataset ended without a dataset")


def read_manifest(store: ObjectStore, dataset_id: str) -> dict[str, Any]:
    try:
        return store.get_json(keys.dataset_manifest_key(dataset_id))
    except NotFound:
        raise NotFound(f"no dataset {dataset_id!r}: run FilterDataset for its hashtag first") \
            from None


def dataset_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's headline fields (what build_dataset returns), without the image lists."""
    fields = ("dataset_id", "hashtag", "aspect", "width", "height", "kept", "dropped",
              "dropped_by_reason", "manifest_key", "shard_keys", "report_key")
    return {name: manifest[name] for name in fields}


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

"""raw/<hashtag>/ -> datasets/<dataset_id>/: decode, drop what should not be trained on, shard.

Every raw image goes through the per-image STAGES in order; the first stage that returns a
Drop decides why the image was left out. A stage is a named function of one candidate and
the run's FilterContext, with its thresholds declared next to it. The survivors then go
through the SET_STAGES, which need the whole set: near-duplicate groups collapse to their
best copy, and off-topic outliers are scored against the rest.

Every image's measures (sharpness, text share, outlier score...) are kept in the manifest,
kept or not, so a threshold can be judged afterwards. The kept images are stored as uint8
NHWC .npy shards so the trainer never decodes images again; the report holds the counts
per reason, the thresholds and one contact sheet PNG per reason.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from socialgan.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, quote
from socialgan.filtering import outliers, people, quality, text_detector
from socialgan.filtering.crop import CROPS, crop_to
from socialgan.filtering.near_duplicates import (
    colour_signature,
    copy_distance,
    crop_hashes,
    near_duplicate_groups,
)
from socialgan.filtering.report import contact_sheet
from socialgan.images import BadImage, decode_rgb
from socialgan.storage import ObjectStore, keys
from socialgan.storage.base import check_key
from socialgan.validation import check_identifier, normalize_hashtag

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 2
ASPECTS = {"square": 1, "banner": 3}  # aspect -> width / height
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
# Shards hold at most this many images and about this many bytes, so a 256px banner
# dataset does not turn into one multi-gigabyte object.
SHARD_IMAGES = 4096
SHARD_BYTES = 256 << 20
MAX_EXAMPLES = 64
FLAT_SHARE_SPREAD = 0.08  # least spread of flat_share assumed in a set (photos: 0.00-0.2)

ProgressFn = Callable[[int, int, int, dict[str, int]], None]


@dataclass
class Candidate:
    """One raw image on its way through the stages; stages fill in what they learn."""

    key: str
    image_id: str  # the raw key's sha256 stem
    data: bytes
    image: Image.Image | None = None
    small: Image.Image | None = None  # at most quality.ANALYSIS_SIDE px, for the measures
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    reason: str  # short machine-readable tag, the key of the report's counts
    detail: str = ""
    score: float = 0.0  # the measure that decided, in the threshold's units
    threshold: float | None = None


@dataclass
class FilterContext:
    """What stages share during one filter run: the thresholds and what was seen so far."""

    thresholds: dict[str, float]
    width: int = 64
    height: int = 64
    seen_file_sha: set[str] = field(default_factory=set)
    seen_pixel_sha: set[str] = field(default_factory=set)
    text: text_detector.TextDetector | None = None
    nsfw: people.NsfwDetector | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    check: Callable[[Candidate, FilterContext], Drop | None]
    thresholds: Mapping[str, float] = field(default_factory=dict)  # name -> default
    optional: bool = False  # off unless asked for (extra_stages)
    model: bool = False  # runs a neural network: left out of the "fast stages" figure


def _decode(cand: Candidate, ctx: FilterContext) -> Drop | None:
    try:
        cand.image = decode_rgb(cand.data)
    except BadImage as exc:
        return Drop(exc.reason, str(exc))
    except Exception as exc:  # Pillow has more ways to fail than it documents
        return Drop("undecodable", f"{type(exc).__name__}: {exc}")
    cand.scores["width"], cand.scores["height"] = cand.image.size
    return None


def _unfit(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    t = ctx.thresholds
    w, h = cand.image.size
    side = min(w, h)
    if side < t["min_side"]:
        return Drop("too_small", f"shorter side {side}px < min_side {t['min_side']:g}",
                    side, t["min_side"])
    target = ctx.width / ctx.height
    mismatch = max((w / h) / target, target / (w / h))
    cand.scores["aspect_mismatch"] = round(mismatch, 3)
    if mismatch > t["max_aspect_mismatch"]:
        return Drop("extreme_aspect", f"{w}x{h} is {mismatch:.1f}x off the target "
                    f"{ctx.width}:{ctx.height}", mismatch, t["max_aspect_mismatch"])
    crop_height = min(h, w / target)  # the part of the image the crop keeps
    upscale = ctx.height / crop_height
    cand.scores["upscale"] = round(upscale, 3)
    if upscale > t["max_upscale"]:
        return Drop("too_small", f"{w}x{h} needs {upscale:.1f}x upscaling for "
                    f"{ctx.width}x{ctx.height}", upscale, t["max_upscale"])
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


def _low_quality(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    cand.small = quality.small_copy(cand.image)
    m = quality.measure_quality(cand.small)
    cand.scores.update(m.as_scores())
    t = ctx.thresholds
    if m.entropy < t["min_entropy"] or m.contrast < t["min_contrast"]:
        return Drop("flat", f"entropy {m.entropy:.2f} bits, contrast {m.contrast:.1f}",
                    m.entropy, t["min_entropy"])
    # Over-exposure: much of the picture clipped white AND the rest washed out too. Only
    # photos are over-exposed: clipart (flags, emoji on white) has flat colour fields where
    # a photo has texture, and is left to the other stages.
    if m.clipped_bright > t["max_clipped_bright"] and \
            m.rest_luma >= t["overexposed_rest_luma"] and m.rest_flat < 0.5:
        return Drop("overexposed", f"{m.clipped_bright:.0%} of the pixels are clipped white",
                    m.clipped_bright, t["max_clipped_bright"])
    if m.blown_colour > t["max_blown_colour"] and m.rest_flat < 0.5:
        return Drop("overexposed", f"{m.blown_colour:.0%} of the pixels have a colour channel "
                    "clipped", m.blown_colour, t["max_blown_colour"])
    if m.clipped_dark > t["max_clipped_dark"]:
        return Drop("underexposed", f"{m.clipped_dark:.0%} of the pixels are clipped black",
                    m.clipped_dark, t["max_clipped_dark"])
    if m.sharpness < t["min_sharpness"]:
        return Drop("blurry", f"crispest edges {m.sharpness:.1f} (|Laplacian|, 99.5th pct)",
                    m.sharpness,
                    t["min_sharpness"])
    return None


def _text_heavy(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    if ctx.text is None or min(cand.image.size) < text_detector.MIN_SIDE:
        return None  # text in a thumbnail is no text anyone reads
    fraction = ctx.text.text_fraction(cand.image)
    cand.scores["text_fraction"] = round(fraction, 4)
    if fraction > ctx.thresholds["max_text_fraction"]:
        return Drop("text_heavy", f"{fraction:.1%} of the image is text", fraction,
                    ctx.thresholds["max_text_fraction"])
    return None


def _faces(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    fraction = people.face_fraction(cand.image)
    cand.scores["face_fraction"] = round(fraction, 4)
    if fraction > 0 and fraction >= ctx.thresholds["min_face_fraction"]:
        return Drop("face", f"a face covers {fraction:.1%}", fraction,
                    ctx.thresholds["min_face_fraction"])
    return None


def _nsfw(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None and ctx.nsfw is not None
    score = ctx.nsfw.score(cand.small or cand.image)
    cand.scores["nsfw"] = round(score, 4)
    if score >= ctx.thresholds["nsfw_min_score"]:
        return Drop("nsfw", f"nudity detected with confidence {score:.2f}", score,
                    ctx.thresholds["nsfw_min_score"])
    return None


STAGES: list[Stage] = [
    Stage("decode", _decode),
    # An image must cover the target without more than max_upscale enlargement, and its
    # aspect must be within max_aspect_mismatch of the target's (a 1:1 photo still makes
    # a 3:1 banner crop; a 6:1 strip makes no square one).
    Stage("unfit", _unfit, {"min_side": 0.0, "max_upscale": 2.0, "max_aspect_mismatch": 3.0}),
    Stage("exact_duplicates", _exact_duplicate),
    Stage("text", _text_heavy, {"max_text_fraction": 0.05}, model=True),
    Stage("quality", _low_quality, {"min_entropy": 1.0, "min_contrast": 6.0,
                                    "max_clipped_bright": 0.25, "max_blown_colour": 0.75,
                                    "overexposed_rest_luma": 231.0, "max_clipped_dark": 0.5,
                                    "min_sharpness": 7.0}),
    Stage("faces", _faces, {"min_face_fraction": 0.01}, optional=True),
    Stage("nsfw", _nsfw, {"nsfw_min_score": 0.75}, optional=True, model=True),
]
# Stages that need the whole set of survivors; their thresholds live here.
SET_STAGES: dict[str, dict[str, float]] = {
    # Hamming distance of 64-bit DCT hashes; different pictures are ~32 apart, the
    # evaluation mix's copies (re-encoded, resized, 4% cropped) 0-2.
    "near_duplicates": {"max_hash_distance": 6.0},
    # Robust z-score of the distance to the set (or the examples); at most this share dropped.
    "outliers": {"outlier_z": 2.75, "max_outlier_share": 0.3},
}
OPTIONAL_STAGES = [s.name for s in STAGES if s.optional]
SKIPPABLE_STAGES = [s.name for s in STAGES if not s.optional and s.name != "decode"] + \
    list(SET_STAGES)


def default_thresholds() -> dict[str, float]:
    values = {name: value for stage in STAGES for name, value in stage.thresholds.items()}
    for limits in SET_STAGES.values():
        values.update(limits)
    return values


def _check_thresholds(given: Mapping[str, float] | None) -> dict[str, float]:
    thresholds = default_thresholds()
    for name, value in (given or {}).items():
        if name not in thresholds:
            known = ", ".join(sorted(thresholds)) or "none"
            raise InvalidArgument(f"thresholds.{name}", f"unknown threshold; known: {known}")
        try:
            thresholds[name] = float(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"thresholds.{name}", f"{quote(value)} is not a number") from None
        if not math.isfinite(thresholds[name]):  # NaN compares false: every image would pass
            raise InvalidArgument(f"thresholds.{name}", f"must be a finite number, not {value}")
    return thresholds


def image_size(resolution: int, aspect: str) -> tuple[int, int]:
    """(width, height) of a dataset's images: height = resolution, width by the aspect."""
    if aspect not in ASPECTS:
        raise InvalidArgument("aspect", f"{quote(aspect)} is not one of {', '.join(ASPECTS)}")
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


def _stage_names(extra_stages: Sequence[str], skip_stages: Sequence[str]) -> list[str]:
    for name in extra_stages:
        if name not in OPTIONAL_STAGES:
            raise InvalidArgument("extra_stages", f"{quote(name)} is not one of "
                                  f"{', '.join(OPTIONAL_STAGES)}")
    for name in skip_stages:
        if name not in SKIPPABLE_STAGES:
            raise InvalidArgument("skip_stages", f"{quote(name)} is not one of "
                                  f"{', '.join(SKIPPABLE_STAGES)}")
    names = [s.name for s in STAGES if (not s.optional or s.name in extra_stages)]
    names += list(SET_STAGES)
    return [n for n in names if n not in skip_stages]


def _load_examples(store: ObjectStore, example_keys: Sequence[str]) -> list[Image.Image]:
    if len(example_keys) > MAX_EXAMPLES:
        raise InvalidArgument("example_keys", f"{len(example_keys)} examples; at most "
                              f"{MAX_EXAMPLES}")
    images = []
    for i, key in enumerate(example_keys):
        check_key(key, field=f"example_keys[{i}]")
        try:
            data = store.get_bytes(key)
        except NotFound:
            raise NotFound(f"example_keys[{i}]: no object {quote(key)}") from None
        try:
            images.append(decode_rgb(data))
        except BadImage as exc:
            raise InvalidArgument(f"example_keys[{i}]", f"{quote(key)}: {exc}") from None
    return images


@dataclass
class _Survivor:
    """What the set stages and the report need of an image that passed the per-image stages."""

    key: str
    image_id: str
    area: int
    size: int  # file bytes: of two copies at one size, the less compressed is better
    sharpness: float
    hashes: list[int]  # crop_hashes: whole image, then central crops
    colours: np.ndarray  # colour_signature
    embedding: np.ndarray | None
    scores: dict[str, float]


def iter_build_dataset(
    store: ObjectStore,
    hashtag: str,
    *,
    resolution: int = 64,
    aspect: str = "square",
    dataset_id: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    crop: str = "center",
    extra_stages: Sequence[str] = (),
    skip_stages: Sequence[str] = (),
    example_keys: Sequence[str] = (),
    contact_sheets: bool = True,
) -> Iterator[FilterUpdate]:
    """build_dataset as a stream: one update per raw image, the last one with the dataset.

    Streaming callers (the gRPC method) iterate this; stopping early leaves no manifest,
    so a half-built dataset is never visible.
    """
    tag = normalize_hashtag(hashtag)
    width, height = image_size(resolution, aspect)
    limits = _check_thresholds(thresholds)
    if crop not in CROPS:
        raise InvalidArgument("crop", f"{quote(crop)} is not one of {', '.join(CROPS)}")
    stage_names = _stage_names(extra_stages, skip_stages)
    dataset_id = check_identifier(dataset_id, "dataset_id") if dataset_id else keys.new_id(tag)
    if store.exists(keys.dataset_manifest_key(dataset_id)):
        # Rebuilding under the same id would replace shards that runs trained on (their
        # resume would then fail on the size) while their options still name this id.
        raise AlreadyExists(f"dataset_id: dataset {dataset_id!r} exists; give a new id, or "
                            "leave dataset_id empty for a fresh one")
    examples = _load_examples(store, example_keys)

    raw_keys = [k for k in store.list(keys.raw_prefix(tag)) if not k.endswith(".json")]
    if not raw_keys:
        raise NotFound(f"hashtag: no raw images for #{tag} under {keys.raw_prefix(tag)}: "
                       f"scrape it first")
    total = len(raw_keys)
    shard_images = max(1, min(SHARD_IMAGES, SHARD_BYTES // (width * height * 3)))

    ctx = FilterContext(limits, width=width, height=height)
    skipped: dict[str, str] = {}
    if "text" in stage_names:
        ctx.text = text_detector.text_detector()
        if ctx.text is None:
            skipped["text"] = ("no PP-OCR detector installed: set FILTER_TEXT_MODEL or run "
                               "scripts/fetch_eval_images.sh")
            log.warning("filter: text stage skipped: %s", skipped["text"])
    if "nsfw" in stage_names:
        ctx.nsfw = people.nsfw_detector()
    stages = [s for s in STAGES if s.name in stage_names and s.name not in skipped]
    embedding_name, embed = outliers.embedder() if "outliers" in stage_names else ("", None)

    dropped: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    survivors: list[_Survivor] = []
    rejected: list[_Survivor] = []  # dropped for quality: a copy no better goes as well
    seconds: Counter[str] = Counter()

    def drop(entry: dict[str, Any]) -> None:
        dropped.append(entry)
        counts[entry["reason"]] += 1

    yield FilterUpdate(0, total, 0, {})
    for processed, key in enumerate(raw_keys, start=1):
        image_id = key.rsplit("/", 1)[-1].split(".", 1)[0]
        cand = Candidate(key=key, image_id=image_id, data=store.get_bytes(key))
        verdict = None
        for stage in stages:
            t0 = time.perf_counter()
            verdict = stage.check(cand, ctx)
            seconds[stage.name] += time.perf_counter() - t0
            if verdict:
                drop({"id": image_id, "key": key, "stage": stage.name,
                      "reason": verdict.reason, "score": round(float(verdict.score), 4),
                      "threshold": verdict.threshold, "detail": verdict.detail,
                      "scores": cand.scores})
                if stage.name == "quality" and cand.small is not None:
                    # Kept aside so that a worse copy of a rejected picture goes too.
                    rejected.append(_Survivor(
                        key=key, image_id=image_id,
                        area=cand.image.width * cand.image.height if cand.image else 0,
                        size=len(cand.data), sharpness=cand.scores.get("sharpness", 0.0),
                        hashes=crop_hashes(cand.small), colours=colour_signature(cand.small),
                        embedding=None, scores={"reason": verdict.reason}))
                break
        if not verdict:
            assert cand.image is not None
            small = cand.small or quality.small_copy(cand.image)
            t0 = time.perf_counter()
            cand.scores["flat_share"] = round(outliers.flat_share(small), 4)
            survivors.append(_Survivor(
                key=key, image_id=image_id, area=cand.image.width * cand.image.height,
                size=len(cand.data),
                sharpness=cand.scores.get("sharpness", 0.0), hashes=crop_hashes(small),
                colours=colour_signature(small),
                embedding=embed(small) if embed else None, scores=cand.scores))
            seconds["hash_and_embed"] += time.perf_counter() - t0
        yield FilterUpdate(processed, total, len(survivors), dict(counts))

    # Set stages: near-duplicate groups collapse to their best copy, then outliers.
    t0 = time.perf_counter()
    if "near_duplicates" in stage_names and len(survivors) > 1:
        max_d = int(limits["max_hash_distance"])
        gone: set[int] = set()
        # Best first (largest, least compressed, sharpest): each group's leader is kept.
        order = sorted(range(len(survivors)), key=lambda i: (
            -survivors[i].area, -survivors[i].size, -survivors[i].sharpness, i))
        ranked = [survivors[i] for i in order]
        for group in near_duplicate_groups([s.hashes for s in ranked], max_d,
                                           np.stack([s.colours for s in ranked])):
            group = [order[i] for i in group]
            best = group[0]
            for i in group:
                if i == best:
                    continue
                s, b = survivors[i], survivors[best]
                d = copy_distance(s.hashes, b.hashes)
                drop({"id": s.image_id, "key": s.key, "stage": "near_duplicates",
                      "reason": "near_duplicate", "score": d, "threshold": max_d,
                      "detail": f"copy of {b.image_id} (kept: larger or sharper)",
                      "kept_key": b.key, "scores": s.scores})
                gone.add(i)
        for i, s in enumerate(survivors):
            if i in gone:
                continue
            for r in rejected:
                d = copy_distance(s.hashes, r.hashes)
                if d <= max_d and s.area <= r.area and s.size <= r.size and \
                        np.abs(s.colours - r.colours).mean() <= 24.0:
                    drop({"id": s.image_id, "key": s.key, "stage": "near_duplicates",
                          "reason": "near_duplicate", "score": d, "threshold": max_d,
                          "detail": f"no better copy of {r.image_id}, which was dropped as "
                          f"{r.scores['reason']}", "kept_key": r.key, "scores": s.scores})
                    gone.add(i)
                    break
        survivors = [s for i, s in enumerate(survivors) if i not in gone]
    seconds["near_duplicates"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    if "outliers" in stage_names and survivors and embed is not None:
        vectors = np.stack([s.embedding for s in survivors])
        reference = np.stack([embed(quality.small_copy(e)) for e in examples]) \
            if examples else None
        z_set = outliers.outlier_scores(vectors, reference)
        z_flat = outliers.robust_z(np.array([s.scores["flat_share"] for s in survivors]),
                                   FLAT_SHARE_SPREAD)
        # Two-sided: clipart among photos and photos among clipart are both off-topic.
        z = np.maximum(z_set, np.abs(z_flat))
        for s, score in zip(survivors, z, strict=True):
            s.scores["outlier_z"] = round(float(score), 3)
        cap = int(limits["max_outlier_share"] * len(survivors))
        order = [i for i in np.argsort(-z) if z[i] > limits["outlier_z"]][:cap]
        for i in order:
            s = survivors[i]
            drop({"id": s.image_id, "key": s.key, "stage": "outliers", "reason": "off_topic",
                  "score": round(float(z[i]), 3), "threshold": limits["outlier_z"],
                  "detail": (f"{s.scores['flat_share']:.0%} perfectly flat pixels: "
                             + ("synthetic among photos" if z_flat[i] > 0 else
                                "a photo among synthetic images")
                             if abs(z_flat[i]) >= z_set[i] else
                             f"{z[i]:.1f} robust z from the "
                             f"{'examples' if examples else 'set'} ({embedding_name} embedding)"),
                  "scores": s.scores})
        gone_ids = {survivors[i].image_id for i in order}
        survivors = [s for s in survivors if s.image_id not in gone_ids]
    seconds["outliers"] += time.perf_counter() - t0

    if not survivors:
        raise FailedPrecondition(
            f"no usable images for #{tag}: all {total} were dropped ({dict(counts)})")

    # Crop and shard the kept images; they are decoded again rather than held in memory.
    t0 = time.perf_counter()
    pending: list[np.ndarray] = []
    shard_keys: list[str] = []

    def flush() -> None:
        buf = io.BytesIO()
        np.save(buf, np.stack(pending), allow_pickle=False)
        key = keys.dataset_shard_key(dataset_id, len(shard_keys))
        store.put_bytes(key, buf.getvalue())
        shard_keys.append(key)
        pending.clear()

    kept_ids = {s.image_id for s in survivors}
    kept = []
    for s in survivors:
        pending.append(crop_to(decode_rgb(store.get_bytes(s.key)), width, height, crop))
        kept.append({"id": s.image_id, "key": s.key, "scores": s.scores})
        if len(pending) == shard_images:
            flush()
    if pending:
        flush()
    seconds["crop_and_shard"] += time.perf_counter() - t0
    assert len(kept_ids) == len(kept)

    sheets: dict[str, str] = {}
    if contact_sheets:
        sheets = _write_contact_sheets(store, dataset_id, dropped, kept)

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
        "contact_sheet_keys": sheets,
        "thresholds": limits,
        "crop": crop,
        "stages": [n for n in stage_names if n not in skipped],
    }
    parameters = {"resolution": resolution, "aspect": aspect, "thresholds": limits,
                  "crop": crop, "stages": summary["stages"], "skipped_stages": skipped,
                  "embedding": embedding_name, "example_keys": list(example_keys),
                  "shard_images": shard_images}
    store.put_json(summary["report_key"], {
        "dataset_id": dataset_id, "hashtag": tag, "total": total, "kept": len(kept),
        "dropped": len(dropped), "dropped_by_reason": dict(counts), "thresholds": limits,
        "stages": summary["stages"], "skipped_stages": skipped, "crop": crop,
        "embedding": embedding_name, "contact_sheet_keys": sheets,
        "seconds_by_stage": {k: round(v, 3) for k, v in seconds.items()},
    })
    # The manifest goes last: a dataset exists once its manifest does.
    store.put_json(summary["manifest_key"], {
        **summary, "format": MANIFEST_FORMAT, "created_unix": time.time(),
        "parameters": parameters, "kept_images": kept, "dropped_images": dropped,
    })
    yield FilterUpdate(total, total, len(kept), dict(counts), dataset=summary)


def _write_contact_sheets(store: ObjectStore, dataset_id: str, dropped: list[dict],
                          kept: list[dict]) -> dict[str, str]:
    by_reason: dict[str, list[dict]] = defaultdict(list)
    for entry in dropped:
        by_reason[entry["reason"]].append(entry)

    def read(key: str) -> bytes | None:
        try:
            return store.get_bytes(key)
        except NotFound:
            return None

    sheets = {}
    for reason, entries in sorted(by_reason.items()):
        # The most confident drops first; for lower-is-worse measures the lowest.
        lower_is_worse = reason in ("blurry", "flat", "underexposed")
        entries = sorted(entries, key=lambda e: e["score"], reverse=not lower_is_worse)
        key = keys.dataset_contact_sheet_key(dataset_id, reason)
        store.put_bytes(key, contact_sheet(entries, read, f"dropped: {reason}"))
        sheets[reason] = key
    if kept:
        key = keys.dataset_contact_sheet_key(dataset_id, "kept")
        sample = kept[:: max(1, len(kept) // 48)][:48]
        store.put_bytes(key, contact_sheet(
            [{"key": k["key"], "score": k["scores"].get("outlier_z", 0.0)} for k in sample],
            read, f"kept (sample, captioned with outlier z); {len(kept)} kept"))
        sheets["kept"] = key
    return sheets


def build_dataset(
    store: ObjectStore,
    hashtag: str,
    *,
    progress: ProgressFn | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Filter raw/<hashtag>/ into a dataset; returns its summary (the Dataset message's fields).

    options are iter_build_dataset's: resolution, aspect, dataset_id, thresholds, crop,
    extra_stages, skip_stages, example_keys, contact_sheets.
    progress(processed, total, kept, dropped_by_reason) is called once per raw image.
    Raises NotFound when there are no raw images, FailedPrecondition when none is kept,
    InvalidArgument for a bad hashtag, resolution, aspect, dataset id, stage or threshold.
    """
    for update in iter_build_dataset(store, hashtag, **options):
        if update.dataset is not None:
            return update.dataset
        if progress:
            progress(update.processed, update.total, update.kept, update.dropped_by_reason)
    raise AssertionError("iter_build_dataset ended without a dataset")


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

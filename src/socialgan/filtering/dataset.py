"""raw/<hashtag>/ -> datasets/<dataset_id>/: decode, drop what should not be trained on, shard.

Every raw image goes through the per-image STAGES (stages.py) in order, a few images at
a time (WORKERS threads); the first stage that returns a Drop decides why the image was
left out. The survivors then go through the SET_STAGES, which need the whole set:
near-duplicate groups collapse to their best copy, then rendered graphics among photos and
off-topic outliers are scored against the rest (set_scores.py).

Every image's measures (sharpness, text share, outlier score...) are kept in the manifest,
kept or not, so a threshold can be judged afterwards. The kept images are stored as uint8
NHWC .npy shards so the trainer never decodes images again; the report holds the counts
per reason, the thresholds and one contact sheet PNG per reason.

A person's decisions in the filter review (review.py) come last: an image they kept passes
every content judgement, one they dropped is left out as "reviewed".

This module is the story (iter_build_dataset); the set stages are set_pass.py, the shards
and the manifest's readers shards.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from socialgan.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, quote
from socialgan.filtering import outliers, people, quality, set_scores, text_detector
from socialgan.filtering.crop import CROPS
from socialgan.filtering.near_duplicates import colour_signature, crop_hashes
from socialgan.filtering.report import write_contact_sheets
from socialgan.filtering.review import ALWAYS_CHECKED, DROP, KEEP, read_review, reviewed_drop
from socialgan.filtering.set_pass import (
    Survivor,
    collapse_near_duplicates,
    drop_like_reviewed,
    drop_outliers,
    drop_renders,
)
from socialgan.filtering.shards import (  # noqa: F401 - re-exported: the package's API
    dataset_summary,
    load_dataset,
    read_manifest,
    write_shards,
)
from socialgan.filtering.stages import (  # noqa: F401 - the package re-exports Drop, Stage
    OPTIONAL_STAGES,
    POPULATION_STAGES,
    SET_STAGES,
    SKIPPABLE_STAGES,
    STAGES,
    Candidate,
    Drop,
    FilterContext,
    Stage,
    check_thresholds,
    content_hashes,
    default_thresholds,
    exact_duplicate,
)
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

ProgressFn = Callable[[int, int, int, dict[str, int]], None]


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
        if name not in OPTIONAL_STAGES and name not in SKIPPABLE_STAGES:
            raise InvalidArgument("extra_stages", f"{quote(name)} is not one of "
                                  f"{', '.join(OPTIONAL_STAGES + SKIPPABLE_STAGES)}")
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
class _Examined:
    """What a worker learnt of one raw image: its verdict, measures and vectors."""

    cand: Candidate
    verdict: Drop | None = None
    stage: str = ""
    duplicate_check: bool = False  # it reached exact_duplicates (decided in key order)
    vectors: tuple[np.ndarray | None, ...] | None = None
    hashes: list[int] = field(default_factory=list)
    colours: np.ndarray | None = None
    area: int = 0
    size: int = 0
    seconds: Counter[str] = field(default_factory=Counter)


# Images examined at once: the models release the GIL, so two cores do twice the work.
WORKERS = max(1, min(4, os.cpu_count() or 1))


def _in_order(examine: Callable[[str], _Examined], raw_keys: Sequence[str]) -> Iterator[_Examined]:
    """examine(key) for each key, in key order, WORKERS at a time and a few ahead.

    Leaving early (a streaming caller that stops) cancels what is queued.
    """
    if WORKERS == 1:
        yield from map(examine, raw_keys)
        return
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="filter") as pool:
        pending: deque = deque()
        keys_left = iter(raw_keys)
        try:
            for key in keys_left:
                pending.append(pool.submit(examine, key))
                if len(pending) >= 2 * WORKERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


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
    limits = check_thresholds(thresholds)
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
    review = read_review(store, tag)  # a person's keep/drop decisions (filtering/review.py)
    reviewed_keep = {i for i, d in review.items() if d == KEEP}

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
    render_name, render_embed = outliers.render_embedder() if "renders" in stage_names \
        else ("", None)
    ctx.people_topic = people.people_hashtag(tag) and "faces" not in extra_stages

    def vectors(small: Image.Image) -> tuple[np.ndarray | None, ...]:
        """(outlier embedding, render embedding, photo CNN) of one image, each made once."""
        if render_name == "handcrafted+photo-cnn" and \
                embedding_name in ("handcrafted", "handcrafted+photo-cnn"):
            hand, both, cnn = outliers.photo_vectors(small)
            return (hand if embedding_name == "handcrafted" else both), both, cnn
        return (embed(small) if embed else None,
                render_embed(small) if render_embed else None, None)

    def examine(key: str) -> _Examined:
        """Every per-image stage but the order-dependent duplicate check (a worker thread)."""
        image_id = key.rsplit("/", 1)[-1].split(".", 1)[0]
        cand = Candidate(key=key, image_id=image_id, data=store.get_bytes(key))
        out = _Examined(cand)
        for stage in stages:
            if image_id in reviewed_keep and stage.name not in ALWAYS_CHECKED:
                continue  # a person kept it: only what makes it untrainable still counts
            t0 = time.perf_counter()
            if stage.name == "exact_duplicates":
                cand.content_hashes = content_hashes(cand)
                out.duplicate_check = True
                verdict = None
            else:
                verdict = stage.check(cand, ctx)
            out.seconds[stage.name] += time.perf_counter() - t0
            if verdict:
                out.verdict, out.stage = verdict, stage.name
                break
        t0 = time.perf_counter()
        if cand.image is not None and (out.verdict is None or out.stage in POPULATION_STAGES
                                       or out.stage == "quality"):
            small = cand.small = cand.small or quality.small_copy(cand.image)
            if "flat_share" not in cand.scores:
                cand.scores["flat_share"] = round(outliers.flat_share(small), 4)
            if out.verdict is None or out.stage in POPULATION_STAGES:
                out.vectors = vectors(small)
            out.hashes, out.colours = crop_hashes(small), colour_signature(small)
            out.area = cand.image.width * cand.image.height
        cand.image = cand.small = None  # the main thread needs the measures, not the pixels
        out.size, cand.data = len(cand.data), b""
        out.seconds["hash_and_embed"] += time.perf_counter() - t0
        return out

    dropped: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    survivors: list[Survivor] = []
    rejected: list[Survivor] = []  # dropped for quality: a copy no better goes as well
    dropped_population: list[Survivor] = []  # dropped by a content stage
    seconds: Counter[str] = Counter()
    reviewed_out: list[tuple[str, np.ndarray]] = []  # (id, embedding) a person dropped

    def drop(entry: dict[str, Any]) -> None:
        dropped.append(entry)
        counts[entry["reason"]] += 1

    yield FilterUpdate(0, total, 0, {})
    for processed, seen in enumerate(_in_order(examine, raw_keys), start=1):
        cand, verdict, stage_name = seen.cand, seen.verdict, seen.stage
        key, image_id = cand.key, cand.image_id
        seconds.update(seen.seconds)
        if seen.duplicate_check:
            t0 = time.perf_counter()
            duplicate = exact_duplicate(cand, ctx)
            seconds["exact_duplicates"] += time.perf_counter() - t0
            if duplicate:
                verdict, stage_name = duplicate, "exact_duplicates"
        if not verdict and review.get(image_id) == DROP:
            drop(reviewed_drop(image_id, key, cand.scores))
            if seen.vectors and seen.vectors[0] is not None:  # an example of what to leave out
                reviewed_out.append((image_id, seen.vectors[0]))
        elif verdict:
            drop({"id": image_id, "key": key, "stage": stage_name,
                  "reason": verdict.reason, "score": round(float(verdict.score), 4),
                  "threshold": verdict.threshold, "detail": verdict.detail,
                  "scores": cand.scores})
            if stage_name in POPULATION_STAGES and seen.vectors:
                e, r, c = seen.vectors
                dropped_population.append(Survivor(
                    key=key, image_id=image_id, area=0, size=0, sharpness=0.0, hashes=[],
                    colours=np.zeros(0), embedding=e, render_vec=r, cnn_vec=c,
                    scores={"flat_share": cand.scores["flat_share"]}))
            if stage_name == "quality" and seen.hashes:
                # Kept aside so that a worse copy of a rejected picture goes too.
                rejected.append(Survivor(
                    key=key, image_id=image_id, area=seen.area, size=seen.size,
                    sharpness=cand.scores.get("sharpness", 0.0), hashes=seen.hashes,
                    colours=seen.colours, embedding=None, scores={"reason": verdict.reason}))
        else:
            e, r, c = seen.vectors
            survivors.append(Survivor(
                key=key, image_id=image_id, area=seen.area, size=seen.size,
                sharpness=cand.scores.get("sharpness", 0.0), hashes=seen.hashes,
                colours=seen.colours, embedding=e, render_vec=r, cnn_vec=c,
                scores=cand.scores))
        yield FilterUpdate(processed, total, len(survivors), dict(counts))

    # Set stages: near-duplicate groups collapse to their best copy, then renders, outliers.
    # An image a person kept stays, whatever they say of it.
    def set_drop(entry: dict[str, Any]) -> None:
        if entry["id"] not in reviewed_keep:
            drop(entry)

    def but_reviewed(after: list[Survivor], before: list[Survivor]) -> list[Survivor]:
        staying = {id(s) for s in after}
        return [s for s in before if id(s) in staying or s.image_id in reviewed_keep]

    t0 = time.perf_counter()
    if "near_duplicates" in stage_names:
        survivors = but_reviewed(collapse_near_duplicates(
            survivors, rejected, int(limits["max_hash_distance"]), set_drop), survivors)
    seconds["near_duplicates"] += time.perf_counter() - t0

    # The render and outlier scores are measured once, over the population (set_scores).
    t0 = time.perf_counter()
    measured = set_scores.measure(survivors + dropped_population, examples, embed,
                                  (render_name, render_embed))
    seconds["set_scores"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    if "renders" in stage_names:
        survivors = but_reviewed(drop_renders(
            survivors, measured.render_z, measured.photo_set, limits["max_render_z"],
            render_name, set_drop), survivors)
    seconds["renders"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    if "outliers" in stage_names and embed is not None:
        survivors = but_reviewed(drop_outliers(
            survivors, measured, limits, bool(examples), embedding_name, set_drop), survivors)
    seconds["outliers"] += time.perf_counter() - t0

    # The review's drops as examples: their look-alikes go too (never what a person kept).
    t0 = time.perf_counter()
    if reviewed_out and embed is not None:
        survivors = drop_like_reviewed(survivors, reviewed_out, reviewed_keep,
                                       limits["max_outlier_share"], drop)
    seconds["review"] += time.perf_counter() - t0

    if not survivors:
        raise FailedPrecondition(
            f"no usable images for #{tag}: all {total} were dropped ({dict(counts)})")

    # Crop and shard the kept images; they are decoded again rather than held in memory.
    t0 = time.perf_counter()
    kept, shard_keys = write_shards(store, dataset_id, survivors, width, height, crop,
                                    shard_images)
    for entry in kept:
        if entry["id"] in reviewed_keep:
            entry["review"] = KEEP
    seconds["crop_and_shard"] += time.perf_counter() - t0

    sheets: dict[str, str] = {}
    if contact_sheets:
        sheets = write_contact_sheets(store, dataset_id, dropped, kept, limits["outlier_z"])

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
                  "shard_images": shard_images, "reviewed": _review_counts(review)}
    store.put_json(summary["report_key"], {
        "dataset_id": dataset_id, "hashtag": tag, "total": total, "kept": len(kept),
        "dropped": len(dropped), "dropped_by_reason": dict(counts), "thresholds": limits,
        "stages": summary["stages"], "skipped_stages": skipped, "crop": crop,
        "embedding": embedding_name, "contact_sheet_keys": sheets,
        "reviewed": _review_counts(review),
        "seconds_by_stage": {k: round(v, 3) for k, v in seconds.items()},
    })
    # The manifest goes last: a dataset exists once its manifest does.
    store.put_json(summary["manifest_key"], {
        **summary, "format": MANIFEST_FORMAT, "created_unix": time.time(),
        "parameters": parameters, "kept_images": kept, "dropped_images": dropped,
    })
    yield FilterUpdate(total, total, len(kept), dict(counts), dataset=summary)


def _review_counts(review: Mapping[str, str]) -> dict[str, int]:
    return {d: sum(1 for v in review.values() if v == d) for d in (KEEP, DROP)}


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

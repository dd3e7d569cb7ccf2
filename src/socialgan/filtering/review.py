"""The filter review: a person's decisions on single images of a hashtag, which the filter
follows the next time it builds a dataset of that hashtag.

`keep` lets an image through every content judgement (text, quality, faces, NSFW,
near-duplicates, renders, outliers): only what makes an image untrainable still drops it
(it does not decode, it cannot cover the target size, it is a byte-identical copy).
`drop` leaves an image out, with reason "reviewed" ("dropped in the filter review"), and
makes it an example of what to leave out: its look-alikes go too (set_pass.drop_like_reviewed).
The decisions live in reviews/<hashtag>.json, by raw image id (its sha256).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from socialgan.errors import InvalidArgument, NotFound, quote
from socialgan.storage import ObjectStore, keys
from socialgan.validation import normalize_hashtag

KEEP, DROP = "keep", "drop"
DECISIONS = (KEEP, DROP)
# What a "keep" cannot overrule: an image that cannot be trained on at all.
ALWAYS_CHECKED = ("decode", "unfit", "exact_duplicates")
REVIEW_STAGE, REVIEW_REASON = "review", "reviewed"
MAX_DECISIONS = 10_000  # per hashtag: a review file stays small
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")
_writing = threading.Lock()  # one read-modify-write at a time in this process


def read_review(store: ObjectStore, hashtag: str) -> dict[str, str]:
    """image id -> keep | drop, for the hashtag ({} before any review)."""
    try:
        record = store.get_json(keys.review_key(hashtag))
    except NotFound:
        return {}
    return {i: d["decision"] for i, d in record.get("decisions", {}).items()
            if d.get("decision") in DECISIONS}


def review_image(store: ObjectStore, hashtag: str, image_id: str,
                 decision: str) -> dict[str, str]:
    """Record (or, decision "", clear) a decision on one raw image of the hashtag; returns
    every decision. InvalidArgument names the field; NotFound: no such raw image."""
    tag = normalize_hashtag(hashtag)
    if not _IMAGE_ID.fullmatch(image_id or ""):
        raise InvalidArgument("image_id", f"{quote(image_id[:80])} is not a raw image id (the "
                              "64 hex digits of its sha256)")
    if decision not in (*DECISIONS, ""):
        raise InvalidArgument("decision", f"{quote(decision[:20])} is not keep, drop or empty "
                              "(clear)")
    if not any(True for _ in store.list(keys.raw_prefix(tag) + image_id)):
        raise NotFound(f"image_id: no raw image {image_id} under {keys.raw_prefix(tag)}")
    with _writing:
        try:
            record: dict[str, Any] = store.get_json(keys.review_key(tag))
        except NotFound:
            record = {"hashtag": tag, "decisions": {}}
        decisions = record.setdefault("decisions", {})
        if decision:
            if image_id not in decisions and len(decisions) >= MAX_DECISIONS:
                raise InvalidArgument("image_id", f"#{tag} already has {MAX_DECISIONS} "
                                      "reviewed images; clear some first")
            decisions[image_id] = {"decision": decision, "unix": time.time()}
        else:
            decisions.pop(image_id, None)
        store.put_json(keys.review_key(tag), record)
    return read_review(store, tag)


def reviewed_drop(image_id: str, key: str, scores: dict[str, float]) -> dict[str, Any]:
    """The manifest's entry of an image a person dropped."""
    return {"id": image_id, "key": key, "stage": REVIEW_STAGE, "reason": REVIEW_REASON,
            "score": 1.0, "threshold": 0.0, "detail": "dropped in the filter review",
            "scores": scores}

"""The text a caption model learns from: what the posts of a dataset's kept images said.

The scraper keeps each image's post in its sidecar, raw/<hashtag>/<sha256>.json
("caption", and "extra.alt_text" where the source has alt text, e.g. Mastodon); the
dataset's manifest lists the kept images by that sha256 ("kept_images": [{"id", ...}]).
An image posted twice is stored once, with the sidecar of its first post.
"""

from __future__ import annotations

import logging

from socialgan.errors import NotFound
from socialgan.filtering import read_manifest
from socialgan.storage import ObjectStore, keys
from socialgan.text.safety import scrub_training_caption

log = logging.getLogger("socialgan.text")

MIN_CAPTION_CHARS = 3  # shorter ones ("!", an emoji) teach the model nothing


def sidecar_texts(sidecar: dict) -> list[str]:
    """The caption and the alt text of one sidecar, as they were posted."""
    extra = sidecar.get("extra") or {}
    texts = [sidecar.get("caption"), extra.get("alt_text") if isinstance(extra, dict) else None]
    return [t for t in texts if isinstance(t, str) and t.strip()]


def collect_captions(store: ObjectStore, dataset_id: str) -> list[str]:
    """The scrubbed (safety.scrub_training_caption), de-duplicated captions and alt texts
    of dataset_id's kept images, in manifest order. NotFound for an unknown dataset; a
    kept image whose sidecar has gone is skipped (and logged)."""
    manifest = read_manifest(store, dataset_id)
    seen: set[str] = set()
    captions: list[str] = []
    for image in manifest.get("kept_images", []):
        key = keys.raw_sidecar_key(manifest["hashtag"], image["id"])
        try:
            sidecar = store.get_json(key)
        except NotFound:
            log.warning("dataset %s: kept image %s has no sidecar %s", dataset_id,
                        image["id"], key)
            continue
        for text in sidecar_texts(sidecar):
            clean = scrub_training_caption(text)
            if len(clean) >= MIN_CAPTION_CHARS and clean not in seen:
                seen.add(clean)
                captions.append(clean)
    return captions

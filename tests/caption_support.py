"""Captioned datasets for the caption model's tests and benchmark, built the way real ones
are: pictures and sidecars under raw/<hashtag>/ in the scraper's format, then the
project's own filter.

The captions are the standard library's docstring summaries
(socialgan.text.stdlib_captions; PSF License 2.0). The pictures are small random-colour
PNGs, one per two captions (a post's caption and its alt text, as Mastodon gives both),
drawn from a seeded generator so the set is the same every time.
"""

from __future__ import annotations

import hashlib
import io
import time

import numpy as np
from PIL import Image

from socialgan.filtering import build_dataset
from socialgan.filtering.dataset import SKIPPABLE_STAGES
from socialgan.scraping.base import Item
from socialgan.storage import ObjectStore, keys


def picture(index: int, side: int = 16) -> bytes:
    pixels = np.random.default_rng(index).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def store_captioned_posts(store: ObjectStore, hashtag: str, captions: list[str]) -> int:
    """One picture per two captions (caption, alt text), with the scraper's sidecar
    fields; returns how many pictures were stored."""
    count = 0
    for index in range(0, len(captions), 2):
        data = picture(index)
        sha = hashlib.sha256(data).hexdigest()
        item = Item(source="mastodon", location=f"https://example.invalid/{index}.png",
                    post_id=str(index), author="@someone", caption=captions[index],
                    extra={"alt_text": captions[index + 1] if index + 1 < len(captions)
                           else ""})
        store.put_json(keys.raw_sidecar_key(hashtag, sha), {
            "sha256": sha, "key": keys.raw_image_key(hashtag, sha, ".png"), "ext": ".png",
            "size": len(data), "width": 16, "height": 16, "frames": 1, "hashtag": hashtag,
            "origin": "test", "scrape_job_id": "test", "scraped_unix": time.time(),
            **item.metadata()})
        store.put_bytes(keys.raw_image_key(hashtag, sha, ".png"), data, "image/png")
        count += 1
    return count


def build_captioned_dataset(store: ObjectStore, hashtag: str, captions: list[str],
                            dataset_id: str) -> dict:
    """store_captioned_posts, then the filter (8 px, no optional or set stages: random
    pictures are not what they would judge)."""
    store_captioned_posts(store, hashtag, captions)
    return build_dataset(store, hashtag, resolution=8, dataset_id=dataset_id,
                         skip_stages=list(SKIPPABLE_STAGES), contact_sheets=False)

"""A post's record, stored as posts/<post_id>/post.json: what was posted where, its state,
and the progress a target needs to resume after a crash.

A post is made of items: the images exactly as they are (or would be) sent, stored under
posts/<post_id>/item-<i>.<ext> at their final size and format. A target records what the
platform said about each item (its media, blob or container id) in the item, and the
post-wide state (a status id, a carousel container) in `progress`, saving after every
step, so a publish cut off at any point resumes where it stopped instead of posting again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from socialgan.errors import NotFound
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

DRAFT, PUBLISHING, PUBLISHED, FAILED = "draft", "publishing", "published", "failed"


@dataclass
class PostItem:
    """One image of a post as the platform gets it."""

    index: int
    image_key: str
    alt_text: str
    width: int
    height: int
    size_bytes: int
    sha256: str = ""
    content_type: str = "image/jpeg"
    # What the platform made of it (the target decides the meaning: a media id, a blob
    # reference, a container id...), how far it got, and where people see it.
    platform_id: str = ""
    step: str = ""
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> PostItem:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclass
class Post:
    post_id: str
    target: str  # "gallery", "instagram", "mastodon", "bluesky", "x"
    state: str
    caption: str
    grid_key: str  # the grid it was made from
    image_key: str  # the first item's image (the gallery shows it)
    image_sha256: str = ""
    url: str = ""  # where people see it
    error: str = ""
    dry_run: bool = False
    created_unix: float = 0.0
    idempotency_key: str = ""
    caption_inputs: dict[str, Any] = field(default_factory=dict)
    mode: str = "single"
    options: dict[str, Any] = field(default_factory=dict)  # e.g. visibility
    items: list[PostItem] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # the target's own resume state
    platform_ids: list[str] = field(default_factory=list)  # the platform's post ids
    urls: list[str] = field(default_factory=list)  # one per platform post
    checks: list[str] = field(default_factory=list)  # the platform limits checked
    attempts: int = 0
    updated_unix: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Post:
        known = {f.name for f in fields(cls)}
        post = cls(**{k: v for k, v in value.items() if k in known})
        post.items = [i if isinstance(i, PostItem) else PostItem.from_json(i)
                      for i in post.items]
        return post


def save_post(store: ObjectStore, post: Post) -> None:
    store.put_json(keys.post_record_key(post.post_id), post.to_json())


def load_post(store: ObjectStore, post_id: str) -> Post:
    key = keys.post_record_key(check_identifier(post_id, "post_id"))
    try:
        return Post.from_json(store.get_json(key))
    except NotFound:
        raise NotFound(f"post_id: no post {post_id!r}") from None


def list_posts(store: ObjectStore) -> list[Post]:
    """Every post on record, in no particular order."""
    return [Post.from_json(store.get_json(key)) for key in store.list("posts/")
            if key.endswith("/post.json")]

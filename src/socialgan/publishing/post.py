"""A post's record, stored as posts/<post_id>/post.json: what was posted where, and its state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from socialgan.errors import NotFound
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

DRAFT, PUBLISHING, PUBLISHED, FAILED = "draft", "publishing", "published", "failed"


@dataclass
class Post:
    post_id: str
    target: str  # "gallery", "instagram", "mastodon", "x"
    state: str
    caption: str
    grid_key: str  # the grid it was made from
    image_key: str  # the copy that was posted: posts/<post_id>/grid.<ext>
    image_sha256: str = ""
    url: str = ""  # where people see it
    error: str = ""
    dry_run: bool = False
    created_unix: float = 0.0
    idempotency_key: str = ""
    caption_inputs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Post:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


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

"""Publishing a grid: build the caption, keep a copy of the image under posts/, hand it to a target.

    publish(store, "gallery", "grids/run-1/grid.png", CaptionInputs("sunset", ...))

A dry run stores the post as a DRAFT (image and record) and sends it nowhere, for any target,
so a caption can be previewed before the accounts exist. With an idempotency key the post id
is derived from (target, dry run, key): asking again returns the same post instead of
posting twice (one that FAILED or was cut off while PUBLISHING is tried again).
"""

from __future__ import annotations

import hashlib
import threading
import time

from socialgan import images
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound, quote
from socialgan.publishing.caption import CaptionInputs, build_caption
from socialgan.publishing.gallery import GalleryTarget
from socialgan.publishing.post import (
    DRAFT,
    FAILED,
    PUBLISHED,
    PUBLISHING,
    Post,
    load_post,
    save_post,
)
from socialgan.publishing.targets import NotConnectedTarget, PublishTarget
from socialgan.storage import ObjectStore, keys

TARGETS: dict[str, PublishTarget] = {
    t.name: t for t in [
        GalleryTarget(),
        NotConnectedTarget("instagram", "Instagram"),
        NotConnectedTarget("mastodon", "Mastodon"),
        NotConnectedTarget("x", "X"),
    ]
}
_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp",
                  ".gif": "image/gif", ".bmp": "image/bmp"}
# One publish at a time per process: the idempotency check and the write are one step.
_publishing = threading.Lock()


def _now() -> float:
    return time.time()


def get_target(name: str) -> PublishTarget:
    target = TARGETS.get((name or "gallery").strip().lower())
    if target is None:
        raise InvalidArgument("target", f"unknown target {name!r}; use {', '.join(TARGETS)}")
    return target


def check_grid_key(grid_key: str) -> str:
    """grid_key if it names a grid as the generator stores them (keys.grid_key:
    grids/<model_id>/<name>), else InvalidArgument. Nothing else in storage (a dataset, a
    checkpoint, a scraped image) can be posted, whoever asks."""
    if not grid_key:
        raise InvalidArgument("grid_key", "is empty; give the storage key of a grid image")
    parts = grid_key.split("/")
    try:
        if len(parts) == 3 and parts[0] == "grids" and keys.grid_key(*parts[1:]) == grid_key:
            return grid_key
    except InvalidArgument:
        pass
    raise InvalidArgument("grid_key", f"{quote(grid_key)} is not a grid key; give "
                          "grids/<model_id>/<name> as GenerateGrid stored it")


def _post_id(target: str, dry_run: bool, idempotency_key: str) -> str:
    if not idempotency_key:
        return keys.new_id("post")
    digest = hashlib.sha256(f"{target}\n{dry_run}\n{idempotency_key}".encode()).hexdigest()
    return f"post-{digest[:24]}"


def _existing(store: ObjectStore, post_id: str) -> Post | None:
    try:
        return load_post(store, post_id)
    except NotFound:
        return None


def publish(store: ObjectStore, target_name: str, grid_key: str,
            caption_inputs: CaptionInputs | None, dry_run: bool = False,
            idempotency_key: str = "") -> Post:
    """Publish the grid at grid_key to the named target (or store a draft when dry_run).

    Raises InvalidArgument (bad target or caption; a key that is not a grid's), NotFound
    (no grid at grid_key), FailedPrecondition (target not connected; idempotency key
    reused for another grid).
    A target that fails after the post was recorded leaves it FAILED and re-raises.
    """
    target = get_target(target_name)
    check_grid_key(grid_key)
    if caption_inputs is None:
        raise InvalidArgument("caption", "is required (at least caption.hashtag)")
    post_id = _post_id(target.name, dry_run, idempotency_key)
    with _publishing:
        if idempotency_key and (earlier := _existing(store, post_id)) is not None:
            if earlier.grid_key != grid_key:
                raise FailedPrecondition(
                    f"idempotency_key {idempotency_key!r} was used for {earlier.grid_key!r}, "
                    f"not {grid_key!r}; use a new key for a new post")
            if earlier.state in (DRAFT, PUBLISHED):
                return earlier
            # FAILED, or PUBLISHING left behind by a crash: try again under the same id.
        caption = build_caption(caption_inputs)
        if not dry_run:
            target.check_ready()
        try:
            image = store.get_bytes(grid_key)
        except NotFound:
            raise NotFound(f"grid_key: no grid {quote(grid_key)} in storage") from None
        ext = images.sniff_extension(image)
        if ext is None:
            raise InvalidArgument("grid_key", f"{grid_key!r} is not a PNG, JPEG or WebP image")
        image_key = keys.post_image_key(post_id, ext)
        info = store.put_bytes(image_key, image, _CONTENT_TYPES[ext])
        post = Post(post_id=post_id, target=target.name, state=DRAFT if dry_run else PUBLISHING,
                    caption=caption, grid_key=grid_key, image_key=image_key,
                    image_sha256=info.sha256, dry_run=dry_run, created_unix=_now(),
                    idempotency_key=idempotency_key, caption_inputs=caption_inputs.as_dict())
        if dry_run:
            post.url = store.url(image_key)
            save_post(store, post)
            return post
        save_post(store, post)
        try:
            post.url = target.send(store, post, image)
        except Exception as exc:
            post.state, post.error = FAILED, f"{type(exc).__name__}: {exc}"
            save_post(store, post)
            raise
        post.state = PUBLISHED
        save_post(store, post)
        return post


def get_post(store: ObjectStore, post_id: str) -> Post:
    """The post's record; InvalidArgument for a malformed id, NotFound for an unknown one."""
    return load_post(store, post_id)

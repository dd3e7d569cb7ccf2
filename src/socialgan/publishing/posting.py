"""Publishing a grid: render what the target takes, keep it under posts/, send it, resume.

    publish(store, "mastodon", "grids/run-1/seed-7-n9.png", CaptionInputs("sunset", ...),
            idempotency_key="run-1-7-9", options=PublishOptions(mode="tiles"))

Every post is first rendered: the caption fitted to the platform and each image at its final
size and format, stored as posts/<post_id>/item-<i>.<ext>, every platform limit checked.
A dry run stops there, as a DRAFT shown on the gallery page, and sends nothing anywhere.

With an idempotency key the post id is derived from (target, dry run, key): asking again
returns the same post instead of posting twice. A post that FAILED, or was cut off while
PUBLISHING (a crash), is resumed from what its record says the platform already has: the
target saves its progress after every step the platform acknowledged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import defaultdict

from socialgan.audience.choose import invitation_line
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound, quote
from socialgan.job_store import page_of
from socialgan.publishing.caption import CaptionInputs
from socialgan.publishing.gallery import update_gallery
from socialgan.publishing.media import CONTENT_TYPES, load_grid
from socialgan.publishing.post import (
    DRAFT,
    FAILED,
    PUBLISHED,
    PUBLISHING,
    Post,
    PostItem,
    list_posts,
    load_post,
    save_post,
)
from socialgan.publishing.registry import TARGET_NAMES, make_target
from socialgan.publishing.targets import PublishOptions, PublishTarget, SendContext
from socialgan.storage import ObjectStore, keys
from socialgan.storage.base import sha256_bytes

# One publish of a given post at a time per process: the idempotency check, the sending and
# the record are one step. Different posts go on in parallel (a profile grid polls for
# minutes).
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _lock_for(post_id: str) -> threading.Lock:
    with _locks_guard:
        return _locks[post_id]


def _now() -> float:
    return time.time()


def get_target(name: str) -> PublishTarget:
    chosen = (name or "gallery").strip().lower()
    if chosen not in TARGET_NAMES:
        raise InvalidArgument("target", f"unknown target {quote(name)}; use "
                              f"{', '.join(TARGET_NAMES)}")
    return make_target(chosen)


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


def _new_post(store: ObjectStore, target: PublishTarget, post_id: str, grid_key: str,
              caption_inputs: CaptionInputs, options: PublishOptions, dry_run: bool,
              idempotency_key: str) -> Post:
    """Render the post and store its items; nothing is sent."""
    if target.name != "gallery":  # where people can reply, the post asks for the next vote
        caption_inputs = dataclasses.replace(caption_inputs, invitation=invitation_line())
    rendered = target.render(load_grid(store, grid_key), caption_inputs, options)
    items = []
    for i, image in enumerate(rendered.images):
        key = keys.post_item_key(post_id, i, image.ext)
        info = store.put_bytes(key, image.data, CONTENT_TYPES[image.ext])
        items.append(PostItem(index=i, image_key=key, alt_text=image.alt_text,
                              width=image.width, height=image.height,
                              size_bytes=len(image.data), sha256=info.sha256,
                              content_type=CONTENT_TYPES[image.ext]))
    if not items:
        raise InvalidArgument("grid_key", "the target rendered no image to post")
    return Post(post_id=post_id, target=target.name, state=DRAFT, caption=rendered.caption,
                grid_key=grid_key, image_key=items[0].image_key,
                image_sha256=items[0].sha256, dry_run=dry_run, created_unix=_now(),
                idempotency_key=idempotency_key, caption_inputs=caption_inputs.as_dict(),
                mode=options.mode, options={"visibility": options.visibility},
                items=items, checks=rendered.checks, progress=dict(rendered.progress),
                updated_unix=_now())


def _context(store: ObjectStore, post: Post) -> SendContext:
    def save() -> None:
        post.updated_unix = _now()
        save_post(store, post)

    data = []
    for item in post.items:
        blob = store.get_bytes(item.image_key)
        if item.sha256 and sha256_bytes(blob) != item.sha256:
            raise FailedPrecondition(f"post {post.post_id}: {item.image_key} changed since "
                                     "it was rendered; publish with a new idempotency key")
        data.append(blob)
    return SendContext(store, post, data, save)


def publish(store: ObjectStore, target_name: str, grid_key: str,
            caption_inputs: CaptionInputs | None, dry_run: bool = False,
            idempotency_key: str = "", options: PublishOptions | None = None) -> Post:
    """Publish the grid at grid_key to the named target (or render a draft when dry_run).

    Raises InvalidArgument (bad target, mode, caption; a key that is not a grid's; a limit
    the grid cannot be made to fit), NotFound (no grid at grid_key), FailedPrecondition
    (credentials missing or refused; idempotency key reused for another grid; a quota),
    Unavailable (the platform did not answer after the retries). A post that fails after
    it was recorded is left FAILED, with its progress, and the error re-raised.
    """
    options = options or PublishOptions()
    target = get_target(target_name)
    target.check_options(options)
    check_grid_key(grid_key)
    if caption_inputs is None:
        raise InvalidArgument("caption", "is required (at least caption.hashtag)")
    post_id = _post_id(target.name, dry_run, idempotency_key)
    with _lock_for(post_id):
        post = _existing(store, post_id) if idempotency_key else None
        if post is not None:
            if post.grid_key != grid_key or post.mode != options.mode:
                raise FailedPrecondition(
                    f"idempotency_key {quote(idempotency_key)} was used for "
                    f"{quote(post.grid_key)} ({post.mode}); use a new key for a new post")
            if post.state in (DRAFT, PUBLISHED):
                return post
            # FAILED, or PUBLISHING left behind by a crash: resume under the same id.
        if not dry_run:
            target.check_ready()
        if post is None:
            post = _new_post(store, target, post_id, grid_key, caption_inputs, options,
                             dry_run, idempotency_key)
        if dry_run:
            save_post(store, post)
            update_gallery(store)
            return post
        ctx = _context(store, post)
        post.state, post.error = PUBLISHING, ""
        post.attempts += 1
        ctx.save()
        try:
            post.url = target.send(ctx)
        except Exception as exc:
            post.state, post.error = FAILED, f"{type(exc).__name__}: {exc}"
            ctx.save()
            raise
        post.state = PUBLISHED
        ctx.save()
        update_gallery(store)
        return post


def get_post(store: ObjectStore, post_id: str, refresh: bool = False) -> Post:
    """The post's record, refreshed from its platform when asked; InvalidArgument for a
    malformed id, NotFound for an unknown one."""
    post = load_post(store, post_id)
    if refresh and post.state == PUBLISHED and not post.dry_run:
        with _lock_for(post_id):
            post = load_post(store, post_id)
            target = get_target(post.target)
            target.check_ready()
            ctx = _context(store, post)
            target.refresh(ctx)
            ctx.save()
    return post


def list_post_page(store: ObjectStore, page_size: int, page_token: str,
                   target: str = "") -> tuple[list[Post], str]:
    """One page of posts (by id), optionally of one target, and the next page's token."""
    posts = {p.post_id: p for p in list_posts(store) if not target or p.target == target}
    ids, next_token = page_of(posts, page_size, page_token)
    return [posts[i] for i in ids], next_token


__all__ = ["DRAFT", "FAILED", "PUBLISHED", "PUBLISHING", "check_grid_key", "get_post",
           "get_target", "list_post_page", "publish"]

"""The local gallery: one static page, posts/index.html, that lists every post newest first:
what went to the gallery, what went to each network (with its links), and every dry run as
exactly what would have been sent. Links are relative, so the posts/ folder works opened
from disk, copied elsewhere, or served by any static web server (or a public S3 bucket)."""

from __future__ import annotations

import functools
import threading
import time

import jinja2

from socialgan.publishing.media import GridImages, Rendition
from socialgan.publishing.post import DRAFT, PUBLISHED, Post, list_posts
from socialgan.publishing.targets import PublishOptions, PublishTarget, Rendered, SendContext
from socialgan.storage import ObjectStore, keys

_GALLERY_PREFIX = keys.GALLERY_INDEX_KEY.rsplit("/", 1)[0] + "/"  # "posts/"


def _relative(key: str) -> str:
    return key.removeprefix(_GALLERY_PREFIX)


@functools.cache
def _template() -> jinja2.Template:
    # autoescape: every text of a post (caption, alt text, target, links) is escaped.
    env = jinja2.Environment(loader=jinja2.PackageLoader("socialgan.publishing", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("gallery.html")


def _shown(post: Post) -> dict:
    stamp = time.gmtime(post.created_unix)
    items = post.items or []
    alts = [i.alt_text for i in items] or [
        post.caption.splitlines()[0] if post.caption else "generated grid"]
    srcs = [_relative(i.image_key) for i in items] or [_relative(post.image_key)]
    return {"post_id": post.post_id, "caption": post.caption, "target": post.target,
            "mode": post.mode, "draft": post.state == DRAFT,
            "pictures": [{"src": s, "alt": a} for s, a in zip(srcs, alts, strict=False)],
            "links": [u for u in post.urls if u.startswith("https://")],
            "iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", stamp)}


def render_gallery(posts: list[Post]) -> str:
    """The page listing posts newest first (templates/gallery.html, escaped by Jinja2)."""
    ordered = sorted(posts, key=lambda p: (p.created_unix, p.post_id), reverse=True)
    return _template().render(posts=[_shown(p) for p in ordered])


# Rebuilding the page reads every post and writes the page: one rebuild at a time per
# process, so two concurrent publishes cannot drop each other from the page.
_page_lock = threading.Lock()


def update_gallery(store: ObjectStore) -> str:
    """Rebuild posts/index.html from every published post and draft; its address."""
    with _page_lock:
        shown = [p for p in list_posts(store) if p.state in (PUBLISHED, DRAFT)]
        store.put_bytes(keys.GALLERY_INDEX_KEY, render_gallery(shown).encode(),
                        "text/html; charset=utf-8")
    return store.url(keys.GALLERY_INDEX_KEY)


def alt_text_for(grid: GridImages, hashtag: str, what: str = "grid") -> str:
    """Alt text from the model card's facts: what it is, the hashtag, model and seed."""
    meta = grid.meta
    model = f" by model {meta['model_id']}" if meta.get("model_id") else ""
    seed = f", seed {meta['seed']}" if meta.get("seed") is not None else ""
    method = f" ({meta['method']})" if meta.get("method") else ""
    return (f"A {what} of GAN-generated pictures learned from #{hashtag} posts{model}"
            f"{method}{seed}.")


class GalleryTarget(PublishTarget):
    """Publishes by adding the post to the static gallery page: the grid as generated."""

    name = "gallery"
    title = "the gallery"
    modes = ("single",)

    def render(self, grid: GridImages, caption, options: PublishOptions) -> Rendered:
        from socialgan import images
        from socialgan.publishing.caption import build_caption

        ext = images.sniff_extension(grid.grid) or ".png"
        with images.decode_rgb(grid.grid) as img:
            width, height = img.size
        return Rendered(build_caption(caption), [Rendition(
            grid.grid, ext, width, height, alt_text_for(grid, caption.hashtag))])

    def send(self, ctx: SendContext) -> str:
        ctx.post.state = PUBLISHED  # so the page it rebuilds shows this post
        ctx.save()
        return f"{update_gallery(ctx.store)}#{ctx.post.post_id}"

"""The local gallery: one static page, posts/index.html, that lists every post newest first:
what went to the gallery, what went to each network (with its links), and every dry run as
exactly what would have been sent. Links are relative, so the posts/ folder works opened
from disk, copied elsewhere, or served by any static web server (or a public S3 bucket)."""

from __future__ import annotations

import html
import threading
import time

from socialgan.publishing.media import GridImages, Rendition
from socialgan.publishing.post import DRAFT, PUBLISHED, Post, list_posts
from socialgan.publishing.targets import PublishOptions, PublishTarget, Rendered, SendContext
from socialgan.storage import ObjectStore, keys

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SocialGAN gallery</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 44rem;
       padding: 0 1rem; color: #222; }}
article {{ border-bottom: 1px solid #ddd; padding: 1.5rem 0; }}
img {{ max-width: 100%; display: block; margin-bottom: 0.5rem; }}
.caption {{ white-space: pre-line; }}
.where {{ color: #555; }}
time {{ color: #777; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>SocialGAN gallery</h1>
<p>{count}</p>
{articles}
</body>
</html>
"""

_ARTICLE = """<article id="{post_id}">
{pictures}
<p class="caption">{caption}</p>
<p class="where">{where}</p>
<p><time datetime="{iso}">{date}</time> · {post_id}</p>
</article>"""

_GALLERY_PREFIX = keys.GALLERY_INDEX_KEY.rsplit("/", 1)[0] + "/"  # "posts/"


def _relative(key: str) -> str:
    return key.removeprefix(_GALLERY_PREFIX)


def _where(post: Post) -> str:
    if post.state == DRAFT:
        return f"Dry run for {html.escape(post.target)} ({html.escape(post.mode)}): not sent."
    if post.target == "gallery":
        return "Published to the gallery."
    links = " ".join(f'<a href="{html.escape(u)}">{html.escape(u)}</a>' for u in post.urls
                     if u.startswith("https://"))
    return f"Published to {html.escape(post.target)} ({html.escape(post.mode)}). {links}"


def render_gallery(posts: list[Post]) -> str:
    """The page listing posts newest first; every text from a post is HTML-escaped."""
    ordered = sorted(posts, key=lambda p: (p.created_unix, p.post_id), reverse=True)
    articles = []
    for post in ordered:
        stamp = time.gmtime(post.created_unix)
        items = post.items or []
        keys_shown = [i.image_key for i in items] or [post.image_key]
        alts = [i.alt_text for i in items] or [
            post.caption.splitlines()[0] if post.caption else "generated grid"]
        pictures = "\n".join(
            f'<a href="{html.escape(_relative(k))}"><img src="{html.escape(_relative(k))}" '
            f'alt="{html.escape(a)}" loading="lazy"></a>'
            for k, a in zip(keys_shown, alts, strict=False))
        articles.append(_ARTICLE.format(
            post_id=html.escape(post.post_id), pictures=pictures,
            caption=html.escape(post.caption), where=_where(post),
            iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp),
            date=time.strftime("%Y-%m-%d %H:%M UTC", stamp),
        ))
    count = f"{len(ordered)} post{'s' if len(ordered) != 1 else ''}, newest first."
    return _PAGE.format(count=count, articles="\n".join(articles))


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

"""The local gallery: posts/<post_id>/grid.png plus one static page, posts/index.html, that lists
every published post newest first. Links are relative, so the posts/ folder works opened from
disk, copied elsewhere, or served by any static web server (or a public S3 bucket)."""

from __future__ import annotations

import html
import threading
import time

from socialgan.publishing.post import PUBLISHED, Post, list_posts
from socialgan.publishing.targets import PublishTarget
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
img {{ max-width: 100%; image-rendering: pixelated; display: block; }}
.caption {{ white-space: pre-line; }}
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
<a href="{image}"><img src="{image}" alt="{alt}"></a>
<p class="caption">{caption}</p>
<p><time datetime="{iso}">{date}</time> · {post_id}</p>
</article>"""

_GALLERY_PREFIX = keys.GALLERY_INDEX_KEY.rsplit("/", 1)[0] + "/"  # "posts/"


def _relative(key: str) -> str:
    return key.removeprefix(_GALLERY_PREFIX)


def render_gallery(posts: list[Post]) -> str:
    """The page listing posts newest first; every text from a post is HTML-escaped."""
    ordered = sorted(posts, key=lambda p: (p.created_unix, p.post_id), reverse=True)
    articles = []
    for post in ordered:
        stamp = time.gmtime(post.created_unix)
        articles.append(_ARTICLE.format(
            post_id=html.escape(post.post_id),
            image=html.escape(_relative(post.image_key)),
            alt=html.escape(post.caption.splitlines()[0] if post.caption else "generated grid"),
            caption=html.escape(post.caption),
            iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp),
            date=time.strftime("%Y-%m-%d %H:%M UTC", stamp),
        ))
    count = f"{len(ordered)} post{'s' if len(ordered) != 1 else ''}, newest first."
    return _PAGE.format(count=count, articles="\n".join(articles))


class GalleryTarget(PublishTarget):
    """Publishes by adding the post to the static gallery page."""

    name = "gallery"
    # Rebuilding the page reads every post and writes the page: one rebuild at a time per
    # process, so two concurrent publishes cannot drop each other from the page.
    _lock = threading.Lock()

    def send(self, store: ObjectStore, post: Post, image: bytes) -> str:
        with self._lock:
            shown = [p for p in list_posts(store)
                     if p.state == PUBLISHED and p.post_id != post.post_id]
            page = render_gallery([*shown, post])
            store.put_bytes(keys.GALLERY_INDEX_KEY, page.encode(), "text/html; charset=utf-8")
        return f"{store.url(keys.GALLERY_INDEX_KEY)}#{post.post_id}"

"""Instagram (Graph API content publishing, a professional account): the grid as one post, a
carousel of the grid and its tiles, or a profile grid of nine posts.

    single        the grid as one 1080x1080 JPEG
    carousel      2..10 items (the grid, then its tiles): a child container per item
                  (is_carousel_item), a CAROUSEL container, one media_publish: one post
    profile-grid  the nine tiles as nine single-image posts, tile 8 first and tile 0 last:
                  a profile shows the newest post top-left, so the account's grid shows
                  the 3x3 picture

Instagram fetches every image itself, from a public https URL: PUBLIC_MEDIA_BASE_URL + "/" +
the item's storage key, or (unset, with S3 storage) a presigned GET valid 48 h, longer than
a container lives (24 h). The token goes to the Graph host only, in the Authorization header,
never to the image URL. Before anything is made, content_publishing_limit is read and a
post the remaining quota cannot finish is refused (a profile grid needs as many posts as it
has tiles left to publish). The steps of each container are in instagram_steps.py, the
reading of comments (the audience's votes) in instagram_replies.py.
"""

from __future__ import annotations

import time

from socialgan import settings
from socialgan.audience.types import Reply
from socialgan.credentials import Credential, base_url, is_loopback_host, origin_of
from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.publishing import instagram_graph as graph
from socialgan.publishing.caption import (
    MAX_CAPTION_CHARS,
    CaptionInputs,
    count_hashtags,
    fit_caption,
)
from socialgan.publishing.gallery import alt_text_for
from socialgan.publishing.http import PlatformError, PublishHttp, loopback_http_allowed
from socialgan.publishing.instagram_replies import CommentReader
from socialgan.publishing.instagram_steps import PUBLISHED, ContainerSteps, Slot
from socialgan.publishing.media import GridImages, ImageLimits, fit_image
from socialgan.publishing.post import Post, PostItem
from socialgan.publishing.replies import ReplyBudget
from socialgan.publishing.targets import (
    MAX_REPLIES_PER_POST,
    PublishOptions,
    PublishTarget,
    Rendered,
    SendContext,
)
from socialgan.storage import ObjectStore

GRAPH_HOSTS = ("graph.instagram.com", "graph.facebook.com")
LIMITS = ImageLimits(max_bytes=8_000_000, ext=".jpg", min_width=320, max_width=1440,
                     min_aspect=4 / 5, max_aspect=1.91)
CAROUSEL_MAX = 10
PROFILE_TILES = 9
PRESIGNED_S = 48 * 3600  # outlives a container (24 h) with a day to spare
# A finished child older than this may have expired (24 h) before the carousel uses it.
_CHILD_STALE_S = 23 * 3600


def _feed_url(slots: list[Slot]) -> str:
    return next((s.url for s in slots if s.url), "https://www.instagram.com/")


class InstagramTarget(PublishTarget):
    name = "instagram"
    title = "Instagram"
    modes = ("single", "carousel", "profile-grid")

    def __init__(self, credential: Credential, user_id: str, graph_url: str, *,
                 max_hashtags: int = 5, image_width: int = 1080, public_base_url: str = "",
                 poll_interval_s: float = 10.0, poll_timeout_s: float = 300.0):
        self.credential = credential
        self.user_id = user_id
        self.graph_url = graph_url
        self.max_hashtags = max_hashtags
        self.image_width = image_width
        self.public_base_url = public_base_url.rstrip("/")
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s

    @classmethod
    def from_env(cls) -> InstagramTarget:
        width = settings.get_int("INSTAGRAM_IMAGE_WIDTH")
        if not LIMITS.min_width <= width <= LIMITS.max_width:
            raise FailedPrecondition(f"INSTAGRAM_IMAGE_WIDTH: {width} is outside Instagram's "
                                     f"{LIMITS.min_width}..{LIMITS.max_width}")
        tags = settings.get_int("INSTAGRAM_MAX_HASHTAGS")
        if not 1 <= tags <= 30:
            raise FailedPrecondition(f"INSTAGRAM_MAX_HASHTAGS: {tags}; give 1..30")
        return cls(Credential.from_env("INSTAGRAM_PUBLISH_TOKEN", "INSTAGRAM_PUBLISH_GRAPH_URL"),
                   (settings.get("INSTAGRAM_PUBLISH_USER_ID") or "").strip(),
                   base_url(settings.get("INSTAGRAM_PUBLISH_GRAPH_URL") or ""),
                   max_hashtags=tags, image_width=width,
                   public_base_url=(settings.get("PUBLIC_MEDIA_BASE_URL") or "").strip(),
                   poll_interval_s=float(settings.get("INSTAGRAM_POLL_INTERVAL_S") or 10),
                   poll_timeout_s=float(settings.get("INSTAGRAM_POLL_TIMEOUT_S") or 300))

    # --- before anything is sent ------------------------------------------------------------

    def check_ready(self) -> None:
        if not self.credential:
            raise FailedPrecondition(
                "target instagram needs account credentials: set INSTAGRAM_PUBLISH_TOKEN (a "
                "professional account's token with content publishing permission) and "
                "INSTAGRAM_PUBLISH_USER_ID")
        if not self.user_id.isdigit():
            raise FailedPrecondition("INSTAGRAM_PUBLISH_USER_ID: give the professional "
                                     "account's numeric Instagram user id")
        origin = origin_of(self.graph_url)
        loopback = origin is not None and is_loopback_host(origin.host) and \
            loopback_http_allowed()
        if origin is None or not (origin.host in GRAPH_HOSTS or loopback):
            raise FailedPrecondition(
                f"INSTAGRAM_PUBLISH_GRAPH_URL: {self.graph_url[:100]!r} is not "
                f"https://{GRAPH_HOSTS[0]} (Instagram Login) or https://{GRAPH_HOSTS[1]} "
                "(Facebook Login)")
        if self.public_base_url:
            self._check_public(self.public_base_url, "PUBLIC_MEDIA_BASE_URL")

    @staticmethod
    def _check_public(url: str, source: str) -> None:
        origin = origin_of(url)
        if origin is not None and (origin.scheme == "https" or (
                is_loopback_host(origin.host) and loopback_http_allowed())):
            return
        raise FailedPrecondition(
            f"PUBLIC_MEDIA_BASE_URL: Instagram fetches each image from a public https URL; "
            f"{source} gives {url[:100]!r}")

    def render(self, grid: GridImages, caption: CaptionInputs,
               options: PublishOptions) -> Rendered:
        text = fit_caption(caption, max_chars=MAX_CAPTION_CHARS,
                           max_hashtags=self.max_hashtags, platform="Instagram")
        tags = count_hashtags(text)
        if tags > self.max_hashtags:  # a hashtag inside the method or model line
            raise InvalidArgument("caption", f"holds {tags} hashtags; Instagram takes at most "
                                  f"{self.max_hashtags} (INSTAGRAM_MAX_HASHTAGS)")
        sources = self._sources(grid, caption.hashtag, options.mode)
        rendered = [fit_image(data, LIMITS, alt, width=self.image_width)
                    for data, alt in sources]
        largest = max(len(r.data) for r in rendered)
        aspects = sorted({f"{r.width / r.height:.3g}" for r in rendered})
        checks = [f"jpeg <= {LIMITS.max_bytes:,} bytes: largest {largest:,} bytes",
                  f"width {LIMITS.min_width}..{LIMITS.max_width}: "
                  + ", ".join(sorted({str(r.width) for r in rendered})),
                  f"aspect 4:5..1.91:1: {', '.join(aspects)}",
                  f"caption <= {MAX_CAPTION_CHARS:,} characters: {len(text):,}",
                  f"hashtags <= {self.max_hashtags} (INSTAGRAM_MAX_HASHTAGS): {tags}"]
        if options.mode == "carousel":
            checks.append(f"carousel 2..{CAROUSEL_MAX} items: {len(rendered)}")
        if options.mode == "profile-grid":
            checks.append(f"profile grid: {len(rendered)} posts, tile {len(rendered) - 1} "
                          "first, tile 0 last (top-left)")
        return Rendered(text, rendered, checks)

    @staticmethod
    def _sources(grid: GridImages, hashtag: str, mode: str) -> list[tuple[bytes, str]]:
        tag = hashtag.strip().removeprefix("#").lower()
        if mode == "single":
            return [(grid.grid, alt_text_for(grid, tag, "grid"))]
        tiles = grid.need_tiles(mode)
        if mode == "carousel":
            shown = tiles[:CAROUSEL_MAX - 1]
            return [(grid.grid, alt_text_for(grid, tag, "grid"))] + [
                (t, alt_text_for(grid, tag, f"picture ({i + 1} of {len(shown)}) from a grid"))
                for i, t in enumerate(shown)]
        columns = grid.meta.get("columns")
        if len(tiles) != PROFILE_TILES or columns not in (None, 3):
            raise InvalidArgument("grid_key", f"mode profile-grid needs a 3x3 grid (9 tiles, 3 "
                                  f"columns); {grid.grid_key!r} has {len(tiles)} tiles in "
                                  f"{columns or '?'} columns")
        return [(t, alt_text_for(grid, tag, f"picture ({i + 1} of 9, row {i // 3 + 1}) "
                                 "from a 3x3 grid")) for i, t in enumerate(tiles)]

    # --- sending ------------------------------------------------------------------------------

    def _api(self) -> graph.GraphApi:
        http = PublishHttp("Instagram", self.credential, self.graph_url,
                           rate_limited=graph.is_rate_limited)
        return graph.GraphApi(http, self.user_id, poll_interval_s=self.poll_interval_s,
                              poll_timeout_s=self.poll_timeout_s)

    def image_url(self, store: ObjectStore, key: str) -> str:
        """Where Instagram fetches the image stored at key; FailedPrecondition naming
        PUBLIC_MEDIA_BASE_URL when there is no public address for it."""
        if self.public_base_url:
            return f"{self.public_base_url}/{key}"
        presign = getattr(store, "presigned_get_url", None)
        if presign is None:
            raise FailedPrecondition(
                "PUBLIC_MEDIA_BASE_URL: unset, and the storage is not S3 (no presigned URL): "
                "Instagram fetches each image itself; set it to a public https base URL that "
                "serves the storage keys")
        url = presign(key, PRESIGNED_S)
        self._check_public(url, "the S3 endpoint's presigned URL")
        return url

    def _image_fields(self, ctx: SendContext, item: PostItem, caption: str | None
                      ) -> dict[str, str]:
        fields = {"image_url": self.image_url(ctx.store, item.image_key),
                  "alt_text": item.alt_text}
        if caption is None:
            fields["is_carousel_item"] = "true"
        else:
            fields["caption"] = caption
        return fields

    def send(self, ctx: SendContext) -> str:
        post = ctx.post
        self.image_url(ctx.store, post.items[0].image_key)  # refuse before anything is sent
        api = self._api()
        steps = ContainerSteps(api, ctx)
        if post.mode == "carousel":
            return self._send_carousel(ctx, api, steps)
        slots = [Slot(item) for item in post.items]
        pending = sum(1 for s in slots if s.step != PUBLISHED)
        if pending:
            what = "this post" if len(slots) == 1 else \
                f"the profile grid ({pending} of {len(slots)} tiles left)"
            graph.refuse_quota(api.quota(), pending, what)

        def known() -> set[str]:
            return {s.media_id for s in slots if s.media_id}

        # Last tile first: the profile shows the newest post top-left, so tile 0 goes last.
        for slot in reversed(slots):
            what = "the grid" if len(slots) == 1 else f"tile {slot.item.index}"
            steps.published(slot, lambda item=slot.item: self._image_fields(
                ctx, item, post.caption), what, post.caption, known)
        self._record(post, slots)
        return _feed_url(slots)

    def _send_carousel(self, ctx: SendContext, api: graph.GraphApi,
                       steps: ContainerSteps) -> str:
        post = ctx.post
        carousel = Slot(record=post.progress.setdefault("carousel", {}))
        children = [Slot(item) for item in post.items]
        if carousel.step != PUBLISHED:
            graph.refuse_quota(api.quota(), 1, "this carousel")

        def carousel_fields() -> dict[str, str]:
            # Children made for a carousel container that then expired expired with it;
            # after a create that merely failed, they are still good.
            resets = carousel.record.get("resets", 0)
            stale = carousel.record.get("children_round", resets) != resets
            for i, child in enumerate(children):
                if stale or (child.created_unix and
                             time.time() - child.created_unix > _CHILD_STALE_S):
                    child.reset("made again for a new carousel container")
                steps.finished(child, lambda item=child.item: self._image_fields(
                    ctx, item, None), f"carousel item {i}")
            carousel.record["children_round"] = resets
            return {"media_type": "CAROUSEL", "caption": post.caption,
                    "children": ",".join(c.container for c in children)}

        steps.published(carousel, carousel_fields, "the carousel", post.caption, set)
        post.platform_ids = [carousel.media_id] if carousel.media_id else []
        post.urls = [carousel.url] if carousel.url else []
        return _feed_url([carousel])

    @staticmethod
    def _record(post: Post, slots: list[Slot]) -> None:
        """The post's media ids and permalinks, tile 0 (the newest, top-left) first."""
        post.platform_ids = [s.media_id for s in slots if s.media_id]
        post.urls = [s.url for s in slots if s.url]

    def refresh(self, ctx: SendContext) -> None:
        """Each media's permalink read again; a media Instagram no longer has is marked
        deleted (and its link dropped)."""
        post = ctx.post
        api = self._api()
        slots = ([Slot(record=post.progress.get("carousel", {}))] if post.mode == "carousel"
                 else [Slot(item) for item in post.items])
        for slot in slots:
            if not slot.media_id:
                continue
            try:
                slot.url = api.permalink(slot.media_id)
                slot.mark("deleted", False)
            except PlatformError as exc:
                if exc.status != 404 and graph.graph_error(exc.body).get("code") != 100:
                    raise
                slot.url = ""
                slot.mark("deleted", True)
        post.urls = [s.url for s in slots if s.url]

    def read_replies(self, store: ObjectStore, post: Post) -> list[Reply]:
        """The comments and their replies under every media of the post (a profile grid's
        nine tiles each), MAX_REPLIES_PER_POST in all."""
        if not post.platform_ids:
            return []
        self.check_ready()
        reader = CommentReader(self._api().http, self.user_id)
        budget = ReplyBudget("Instagram", post.post_id, MAX_REPLIES_PER_POST)
        for media_id in post.platform_ids:
            reader.media_replies(media_id, budget)
        return budget.replies

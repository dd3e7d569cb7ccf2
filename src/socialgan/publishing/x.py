"""X: the grid as one picture, up to 4 tiles, or the account's 1500x500 profile banner.

    GET  /2/users/me                   once per post (cached in post.progress): the user id
                                       for the look-up below, the username for the URL; a
                                       bad token fails here, before anything is uploaded
    POST /2/media/upload               multipart media + media_category=tweet_image -> data.id
    GET  /2/media/upload?command=STATUS  while processing_info says pending / in_progress
    POST /2/media/metadata             the alt text of each picture
    POST /2/tweets                     text + media.media_ids (<= 4)
    GET  /2/tweets/:id                 the refresh (gone: deleted)
    POST /1.1/account/update_profile_banner.json   mode "banner" (see below)
    GET  /2/tweets/search/recent       the replies (x_replies.py)

X has no idempotency key. Before POST /2/tweets the post records that a tweet is on its
way; when the answer is uncertain (lost, a timeout, a 5xx after sending) that mark stays,
and the next Publish with the same idempotency key first reads the account's 5 newest
posts (GET /2/users/:id/tweets) for one with our exact text and exactly our media (media
keys are unique to our uploads), and only sends again when there is none. It does not look
at once in the same call: X's timeline can lag a post that was just made.

Mode "banner" (x_banner.py): the 1500x500 banner file is the post's item; v1.1
account/update_profile_banner is tried, and where X refuses it the publish fails with
FAILED_PRECONDITION saying so and where the file is, to be set by hand. No post is made.

X is pay-per-use: render() (and so a dry run) states the estimated cost, posts x
X_PRICE_PER_POST_USD; media uploads are free.
"""

from __future__ import annotations

import html
import math
import re
import time
from typing import Any

from socialgan import settings
from socialgan.audience.types import Reply
from socialgan.credentials import Credential, base_url
from socialgan.errors import FailedPrecondition, Unavailable, quote
from socialgan.publishing.caption import CaptionInputs, fit_caption
from socialgan.publishing.gallery import alt_text_for
from socialgan.publishing.http import PlatformError, PublishHttp
from socialgan.publishing.media import (
    CONTENT_TYPES,
    GridImages,
    ImageLimits,
    Rendition,
    fit_image,
)
from socialgan.publishing.post import Post, PostItem
from socialgan.publishing.targets import (
    MAX_REPLIES_PER_POST,
    PublishOptions,
    PublishTarget,
    Rendered,
    SendContext,
)
from socialgan.publishing.x_banner import (
    BANNER_SIZE,
    MAX_BANNER_BYTES,
    OAuth1Keys,
    banner_rendition,
    set_profile_banner,
)
from socialgan.publishing.x_replies import conversation_replies
from socialgan.publishing.x_text import MAX_WEIGHTED_LENGTH, weighted_length
from socialgan.storage import ObjectStore

TOKEN_VAR = "X_PUBLISH_ACCESS_TOKEN"
URL_VAR = "X_PUBLISH_API_URL"
PRICE_VAR = "X_PRICE_PER_POST_USD"

MAX_MEDIA = 4
MAX_IMAGE_BYTES = 5_000_000  # "5 MB", read as the smaller of 5,000,000 and 5 MiB
MAX_ALT_CHARS = 1000
LOOKUP_COUNT = 5  # the timeline's smallest page
MEDIA_PROCESSING_TIMEOUT_S = 120.0
_POLL_MAX_S = 5.0
_MEDIA_EXPIRY_MARGIN_S = 600.0  # re-upload a picture whose media id expires sooner
_TRAILING_LINKS = re.compile(r"(\s*https://t\.co/\w+)+\s*$")


def _clip_alt(text: str) -> str:
    return text if len(text) <= MAX_ALT_CHARS else text[:MAX_ALT_CHARS - 1] + "…"


def posted_text(text: str) -> str:
    """A tweet's text as we sent it: X answers with &, < and > escaped, and appends the
    media's t.co link."""
    return _TRAILING_LINKS.sub("", html.unescape(text)).strip()


class XTarget(PublishTarget):
    name = "x"
    title = "X"
    modes = ("single", "tiles", "banner")

    def __init__(self, credential: Credential, api_url: str, price_per_post_usd: float,
                 banner_keys: OAuth1Keys | None = None):
        self.credential = credential
        self.api_url = api_url
        self.price_per_post_usd = price_per_post_usd
        self.banner_keys = banner_keys  # OAuth 1.0a, for the v1.1 banner call only

    @classmethod
    def from_env(cls) -> XTarget:
        credential = Credential.from_env(TOKEN_VAR, URL_VAR)
        url = settings.get(URL_VAR) or ""
        raw_price = (settings.get(PRICE_VAR) or "0").strip()
        try:
            price = float(raw_price)
        except ValueError:
            price = math.nan
        if not math.isfinite(price) or price < 0:
            raise FailedPrecondition(f"{PRICE_VAR}: {quote(raw_price[:40])} is not a price in "
                                     "US dollars (e.g. 0.015)")
        return cls(credential, base_url(url) if url.strip() else "", price,
                   OAuth1Keys.from_env())

    def __repr__(self) -> str:
        return f"XTarget({self.api_url or 'no API URL'})"

    def check_ready(self) -> None:
        if not self.credential:
            raise FailedPrecondition(
                f"target x needs account credentials: set {TOKEN_VAR} (an OAuth 2.0 user "
                "token with tweet.write, tweet.read, users.read and media.write)")
        if not self.api_url or not self.credential.origins:
            raise FailedPrecondition(f"{URL_VAR}: is unset; {TOKEN_VAR} is sent to the X "
                                     "API there only (https://api.x.com)")

    def _api(self) -> PublishHttp:
        self.check_ready()
        return PublishHttp("X", self.credential, self.api_url)  # X says 429 for its limits

    # --- render -----------------------------------------------------------------------

    def estimated_cost(self, posts: int) -> float:
        return round(posts * self.price_per_post_usd, 6)

    def render(self, grid: GridImages, caption: CaptionInputs,
               options: PublishOptions) -> Rendered:
        hashtag = caption.hashtag.lstrip("#").lower()
        if options.mode == "banner":
            return self._render_banner(grid, caption, hashtag)
        ext = ".png" if grid.grid[:4] == b"\x89PNG" else ".jpg"
        image_limits = ImageLimits(max_bytes=MAX_IMAGE_BYTES, ext=ext)
        checks: list[str] = []
        note = ""
        if options.mode == "single":
            sources = [(grid.grid, alt_text_for(grid, hashtag, "grid"))]
        else:
            tiles = grid.need_tiles(options.mode)
            shown = tiles[:MAX_MEDIA]
            sources = [(data, alt_text_for(grid, hashtag, f"picture ({i + 1} of {len(tiles)})"))
                       for i, data in enumerate(shown)]
            checks.append(f"media <= {MAX_MEDIA} a post: {len(shown)} of {len(tiles)} tiles")
            if len(shown) < len(tiles):
                note = f"\nTiles 1-{len(shown)} of {len(tiles)}."
        text = fit_caption(caption, max_chars=MAX_WEIGHTED_LENGTH - weighted_length(note),
                           length=weighted_length, platform="X") + note
        checks.append(f"text <= {MAX_WEIGHTED_LENGTH} weighted characters (CJK and emoji "
                      f"count 2, a URL 23): {weighted_length(text)}")
        rendered: list[Rendition] = []
        for i, (data, alt) in enumerate(sources):
            alt = _clip_alt(alt)
            image = fit_image(data, image_limits, alt)
            rendered.append(image)
            checks.append(f"item {i}: {ext[1:]} <= {MAX_IMAGE_BYTES:,} bytes: "
                          f"{len(image.data):,} bytes, {image.width}x{image.height}; alt text "
                          f"{len(alt)} <= {MAX_ALT_CHARS}")
        cost = self.estimated_cost(1)
        checks.append(f"estimated cost: 1 post x ${self.price_per_post_usd:g} ({PRICE_VAR}) = "
                      f"${cost:g}; media uploads are free")
        return Rendered(text, rendered, checks, progress={
            "estimated_cost_usd": cost, "price_per_post_usd": self.price_per_post_usd})

    def _render_banner(self, grid: GridImages, caption: CaptionInputs,
                       hashtag: str) -> Rendered:
        banner = banner_rendition(grid, alt_text_for(grid, hashtag, "profile banner"))
        # The caption is kept for the record (and the gallery); a banner update posts nothing.
        text = fit_caption(caption, max_chars=MAX_WEIGHTED_LENGTH, length=weighted_length,
                           platform="X")
        checks = [f"banner: jpg {banner.width}x{banner.height} (X's "
                  f"{BANNER_SIZE[0]}x{BANNER_SIZE[1]}) <= {MAX_BANNER_BYTES:,} bytes: "
                  f"{len(banner.data):,} bytes",
                  "banner: set through v1.1 account/update_profile_banner, "
                  + ("signed with the X_PUBLISH_OAUTH1_* keys" if self.banner_keys else
                     "which refuses the OAuth 2.0 token (no X_PUBLISH_OAUTH1_* keys)")
                  + "; the file is kept under posts/ to set by hand",
                  f"estimated cost: 0 posts x ${self.price_per_post_usd:g} ({PRICE_VAR}) = $0; "
                  "a banner update is no post"]
        return Rendered(text, [banner], checks, progress={
            "estimated_cost_usd": 0.0, "price_per_post_usd": self.price_per_post_usd})

    # --- send -------------------------------------------------------------------------

    def send(self, ctx: SendContext) -> str:
        api = self._api()
        post = ctx.post
        self._me(api, ctx)
        if post.mode == "banner":
            return self._set_banner(api, ctx)
        if post.progress.get("tweet_id"):
            return self._record(ctx, str(post.progress["tweet_id"]))
        if post.progress.get("tweet_pending"):
            found = self._look_up(api, ctx)
            if found:
                post.progress["found_by_lookup"] = True
                return self._record(ctx, found)
            post.progress.pop("tweet_pending")  # it never arrived: send it again
            ctx.save()
        for item, data in zip(post.items, ctx.images, strict=True):
            self._upload(api, ctx, item, data)
            self._describe(api, ctx, item)
        return self._record(ctx, self._tweet(api, ctx))

    def _me(self, api: PublishHttp, ctx: SendContext) -> tuple[str, str]:
        progress = ctx.post.progress
        if not progress.get("user_id"):
            answer = api.json("GET", "/2/users/me")
            data = answer.get("data") if isinstance(answer, dict) else None
            if (not isinstance(data, dict) or not str(data.get("id") or "").isdigit()
                    or not data.get("username")):
                raise Unavailable("X: GET /2/users/me answered with no user id and username")
            progress["user_id"], progress["username"] = str(data["id"]), str(data["username"])
            ctx.save()
        return str(progress["user_id"]), str(progress["username"])

    def _upload(self, api: PublishHttp, ctx: SendContext, item: PostItem, data: bytes) -> None:
        expires = float(item.extra.get("expires_unix") or 0)
        if item.platform_id and expires and expires - _MEDIA_EXPIRY_MARGIN_S < time.time():
            item.platform_id, item.step = "", ""  # expired unused: upload it again
        if not item.platform_id:
            ext = item.image_key.rsplit(".", 1)[-1]
            # A repeated upload (a lost answer) leaves an unused media object that X drops
            # after a day; it is never shown, so the upload may be retried like a read.
            answer = api.json("POST", "/2/media/upload", files={
                "media": (f"item-{item.index}.{ext}", data, CONTENT_TYPES[f".{ext}"])},
                data={"media_category": "tweet_image", "media_type": item.content_type})
            media = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(media, dict) or not str(media.get("id") or "").isdigit():
                raise Unavailable(f"X: the upload of item {item.index} answered with no "
                                  "media id")
            item.platform_id, item.step = str(media["id"]), "uploaded"
            item.extra["media_key"] = str(media.get("media_key") or f"3_{media['id']}")
            lifetime = media.get("expires_after_secs")
            if isinstance(lifetime, int) and lifetime > 0:
                item.extra["expires_unix"] = time.time() + lifetime
            item.extra["processing"] = (media.get("processing_info") or {}).get("state", "")
            ctx.save()
        if item.extra.get("processing") in ("pending", "in_progress"):
            self._wait_processed(api, ctx, item)

    def _wait_processed(self, api: PublishHttp, ctx: SendContext, item: PostItem) -> None:
        deadline = time.monotonic() + MEDIA_PROCESSING_TIMEOUT_S
        while True:
            answer = api.json("GET", "/2/media/upload", params={
                "command": "STATUS", "media_id": item.platform_id})
            info = ((answer.get("data") if isinstance(answer, dict) else None) or {}).get(
                "processing_info") or {}
            state = str(info.get("state") or "succeeded")
            if state == "succeeded":
                item.extra["processing"] = "succeeded"  # saved with the alt text next
                return
            if state == "failed":
                why = str((info.get("error") or {}).get("message") or "no reason given")[:200]
                item.platform_id, item.step, item.extra["processing"] = "", "", ""
                ctx.save()  # the next Publish uploads the picture again
                raise FailedPrecondition(f"X could not process item {item.index}: {why}")
            if time.monotonic() > deadline:
                raise Unavailable(f"X: item {item.index} still processing after "
                                  f"{MEDIA_PROCESSING_TIMEOUT_S:.0f} s; Publish again later")
            wait = info.get("check_after_secs")
            time.sleep(min(_POLL_MAX_S, max(0.0, float(wait)))
                       if isinstance(wait, (int, float)) else 1.0)

    def _describe(self, api: PublishHttp, ctx: SendContext, item: PostItem) -> None:
        if item.step != "uploaded":
            return
        api.call("POST", "/2/media/metadata", json={
            "id": item.platform_id, "metadata": {"alt_text": {"text": item.alt_text}}})
        item.step = "described"
        ctx.save()

    def _tweet(self, api: PublishHttp, ctx: SendContext) -> str:
        post = ctx.post
        post.progress["tweet_pending"] = {"unix": time.time(),
                                          "media_ids": [i.platform_id for i in post.items]}
        ctx.save()  # from here on, a failure that is not a clear refusal means "look first"
        body = {"text": post.caption, "media": {"media_ids": [i.platform_id for i in post.items]}}
        try:
            answer = api.json("POST", "/2/tweets", json=body, idempotent=False)
        except PlatformError as exc:
            if exc.status >= 500:
                raise Unavailable(f"{exc}; the post may have been made: Publish again with the "
                                  "same idempotency key (X is looked at before sending again)"
                                  ) from None
            duplicate = exc.status == 403 and "duplicate" in str(exc).lower()
            if duplicate:
                # X refuses the same text twice: ours from a try whose answer was lost (and
                # the timeline had not shown it yet), or an earlier post with this caption.
                found = self._look_up(api, ctx)
                if found:
                    post.progress["found_by_lookup"] = True
                    return found
            post.progress.pop("tweet_pending")  # a clear refusal: nothing was posted
            ctx.save()
            if duplicate:
                raise FailedPrecondition(
                    "X refused the post as a duplicate of an earlier post with the same text; "
                    "publish another grid or caption (e.g. another seed)") from None
            raise
        except Unavailable as exc:
            raise Unavailable(f"{exc}; the post may have been made: Publish again with the "
                              "same idempotency key (X is looked at before sending again)"
                              ) from None
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or not str(data.get("id") or "").isdigit():
            raise Unavailable("X: POST /2/tweets answered with no post id; Publish again with "
                              "the same idempotency key (X is looked at before sending again)")
        return str(data["id"])

    def _look_up(self, api: PublishHttp, ctx: SendContext) -> str:
        """The id of the account's recent post with our text and exactly our media, or ""."""
        user_id, _ = self._me(api, ctx)
        answer = api.json("GET", f"/2/users/{user_id}/tweets", params={
            "max_results": LOOKUP_COUNT, "tweet.fields": "text,created_at,attachments"})
        ours = {str(i.extra.get("media_key") or f"3_{i.platform_id}") for i in ctx.post.items}
        for tweet in (answer.get("data") if isinstance(answer, dict) else None) or []:
            if not isinstance(tweet, dict):
                continue
            keys = (tweet.get("attachments") or {}).get("media_keys") or []
            if (posted_text(str(tweet.get("text") or "")) == ctx.post.caption.strip()
                    and set(map(str, keys)) == ours and str(tweet.get("id") or "").isdigit()):
                return str(tweet["id"])
        return ""

    def _record(self, ctx: SendContext, tweet_id: str) -> str:
        post = ctx.post
        _, username = self._me_cached(post)
        url = f"https://x.com/{username}/status/{tweet_id}"
        post.progress["tweet_id"] = tweet_id
        post.progress.pop("tweet_pending", None)
        post.platform_ids, post.urls = [tweet_id], [url]
        for item in post.items:
            item.step, item.url = "posted", f"{url}/photo/{item.index + 1}"
        ctx.save()
        return url

    @staticmethod
    def _me_cached(post: Post) -> tuple[str, str]:
        return str(post.progress.get("user_id", "")), str(post.progress.get("username", "i"))

    def _set_banner(self, api: PublishHttp, ctx: SendContext) -> str:
        post = ctx.post
        item, data = post.items[0], ctx.images[0]
        user_id, username = self._me_cached(post)
        url = f"https://x.com/{username}"
        if item.step != "banner-set":
            set_profile_banner(api, ctx.store, item, data, self.banner_keys)
            item.step, item.url = "banner-set", url
        post.platform_ids, post.urls = [f"banner:{user_id}"], [url]
        ctx.save()
        return url

    # --- refresh ----------------------------------------------------------------------

    def refresh(self, ctx: SendContext) -> None:
        tweet_id = ctx.post.progress.get("tweet_id")
        if not tweet_id:
            return  # a banner, or nothing posted
        api = self._api()
        try:
            answer = api.json("GET", f"/2/tweets/{tweet_id}",
                              params={"tweet.fields": "public_metrics,created_at"})
        except PlatformError as exc:
            if exc.status != 404:
                raise
            answer = {}
        data: Any = answer.get("data") if isinstance(answer, dict) else None
        progress = ctx.post.progress
        progress["refreshed_unix"] = time.time()
        progress["deleted"] = not isinstance(data, dict)
        if progress["deleted"]:
            ctx.post.error = f"the post {tweet_id} was deleted on X"
        else:
            ctx.post.error = ""
        if isinstance(data, dict):
            metrics = data.get("public_metrics") or {}
            progress["public_metrics"] = {k: int(v) for k, v in metrics.items()
                                          if isinstance(v, int) and not isinstance(v, bool)}

    def read_replies(self, store: ObjectStore, post: Post) -> list[Reply]:
        """FailedPrecondition when the token's access level has no recent search."""
        tweet_id = str(post.progress.get("tweet_id") or "")
        if not tweet_id:
            return []  # a banner, or nothing posted
        return conversation_replies(self._api(), tweet_id, str(post.progress.get("user_id") or ""),
                                    MAX_REPLIES_PER_POST)

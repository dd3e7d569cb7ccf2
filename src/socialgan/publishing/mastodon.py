"""Mastodon (any instance): the grid as one picture, or up to max_media_attachments tiles.

    POST /api/v2/media        multipart file + description (the alt text); 200 with a url,
                              or 202 with url null: GET /api/v1/media/:id until the url is
                              set (206 while processing)
    POST /api/v1/statuses     status, media_ids[], visibility; Idempotency-Key derived from
                              the post id, so a repeat within Mastodon's hour returns the
                              same status instead of posting a second one
    GET  /api/v1/statuses/:id the refresh (404: deleted)
    GET  /api/v2/instance     the limits (configuration.statuses / media_attachments)
    GET  /api/v1/statuses/:id/context   the replies (mastodon_replies.py)

The token (MASTODON_PUBLISH_TOKEN) goes to MASTODON_PUBLISH_INSTANCE_URL's origin only.
Each media id is recorded on its item as soon as the instance answers, and the status id in
post.progress, so a resumed publish neither uploads a picture again nor posts twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from socialgan import settings
from socialgan.audience.types import Reply
from socialgan.credentials import Credential, base_url
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable, quote
from socialgan.publishing import mastodon_replies
from socialgan.publishing.caption import CaptionInputs, fit_caption
from socialgan.publishing.gallery import alt_text_for
from socialgan.publishing.http import PlatformError, PublishHttp
from socialgan.publishing.media import GridImages, ImageLimits, Rendition, fit_image
from socialgan.publishing.post import Post
from socialgan.publishing.targets import (
    MAX_REPLIES_PER_POST,
    PublishOptions,
    PublishTarget,
    Rendered,
    SendContext,
)
from socialgan.storage import ObjectStore
from socialgan.validation import normalize_hashtag

TOKEN_VAR = "MASTODON_PUBLISH_TOKEN"
URL_VAR = "MASTODON_PUBLISH_INSTANCE_URL"
VISIBILITY_VAR = "MASTODON_VISIBILITY"
VISIBILITIES = ("public", "unlisted", "private", "direct")

# Mastodon keeps an Idempotency-Key for one hour. Past this much time since the first try
# of a status, the key may be forgotten: the account's recent statuses are searched for our
# media before posting again.
IDEMPOTENCY_WINDOW_S = 50 * 60
MEDIA_PROCESSING_TIMEOUT_S = 300.0
_POLL_MAX_S = 5.0
_RECENT_STATUSES = 40


@dataclass(frozen=True)
class InstanceLimits:
    """What an instance takes; the defaults are stock Mastodon 4's (a dry run without an
    account renders with them)."""

    max_characters: int = 500
    max_media_attachments: int = 4
    image_size_limit: int = 16 * 1024 * 1024
    image_matrix_limit: int = 33_177_600  # pixels (7680x4320)
    description_limit: int = 1500
    supports_png: bool = True
    source: str = "stock Mastodon defaults (no instance configured)"

    @classmethod
    def from_instance(cls, payload: Any, source: str) -> InstanceLimits:
        config = payload.get("configuration") if isinstance(payload, dict) else None
        config = config if isinstance(config, dict) else {}
        statuses = config.get("statuses") if isinstance(config.get("statuses"), dict) else {}
        media = (config.get("media_attachments")
                 if isinstance(config.get("media_attachments"), dict) else {})
        default = cls()

        def positive(section: dict, name: str, fallback: int) -> int:
            value = section.get(name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            return value if ok else fallback

        types = media.get("supported_mime_types")
        return cls(
            max_characters=positive(statuses, "max_characters", default.max_characters),
            max_media_attachments=positive(statuses, "max_media_attachments",
                                           default.max_media_attachments),
            image_size_limit=positive(media, "image_size_limit", default.image_size_limit),
            image_matrix_limit=positive(media, "image_matrix_limit",
                                        default.image_matrix_limit),
            description_limit=positive(media, "description_limit", default.description_limit),
            supports_png=not isinstance(types, list) or "image/png" in types,
            source=source)


def _rate_limited(status: int, body: bytes) -> bool:
    return False  # Mastodon says 429 (with X-RateLimit-Reset), which PublishHttp retries


def _clip_alt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


class MastodonTarget(PublishTarget):
    name = "mastodon"
    title = "Mastodon"
    modes = ("single", "tiles")

    def __init__(self, credential: Credential, instance_url: str,
                 default_visibility: str = "public"):
        self.credential = credential
        self.instance_url = instance_url
        self.default_visibility = default_visibility
        self._limits: InstanceLimits | None = None
        self._account_id = ""  # ours, read once to tell our own replies from the audience's

    @classmethod
    def from_env(cls) -> MastodonTarget:
        credential = Credential.from_env(TOKEN_VAR, URL_VAR)
        url = settings.get(URL_VAR) or ""
        visibility = (settings.get(VISIBILITY_VAR) or "public").strip().lower()
        if visibility not in VISIBILITIES:
            raise FailedPrecondition(f"{VISIBILITY_VAR}: {quote(visibility)} is not one of "
                                     f"{', '.join(VISIBILITIES)}")
        return cls(credential, base_url(url) if url.strip() else "", visibility)

    def __repr__(self) -> str:
        return f"MastodonTarget({self.instance_url or 'no instance'})"

    # --- options and readiness --------------------------------------------------------

    def check_options(self, options: PublishOptions) -> None:
        if options.mode not in self.modes:
            raise InvalidArgument("mode", f"Mastodon takes {', '.join(self.modes)}; "
                                  f"not {quote(options.mode)}")
        if options.visibility and options.visibility not in VISIBILITIES:
            raise InvalidArgument("visibility", f"{quote(options.visibility)} is not one of "
                                  f"{', '.join(VISIBILITIES)}")

    def check_ready(self) -> None:
        if not self.credential:
            raise FailedPrecondition(
                f"target mastodon needs account credentials: set {TOKEN_VAR} (a token with "
                f"write:media and write:statuses) and {URL_VAR} (its instance)")
        if not self.instance_url or not self.credential.origins:
            raise FailedPrecondition(f"{URL_VAR}: is unset; the instance {TOKEN_VAR} "
                                     "belongs to is needed (it is sent there only)")

    def _api(self) -> PublishHttp:
        self.check_ready()
        return PublishHttp("Mastodon", self.credential, self.instance_url,
                           rate_limited=_rate_limited)

    def limits(self) -> InstanceLimits:
        """The instance's limits (read once per target), or the defaults without an
        account: the instance's own numbers are only trusted from its configured URL."""
        if self._limits is None:
            if self.credential and self.instance_url:
                payload = self._api().json("GET", "/api/v2/instance")
                self._limits = InstanceLimits.from_instance(
                    payload, f"{self.instance_url}/api/v2/instance")
            else:
                self._limits = InstanceLimits()
        return self._limits

    # --- render -----------------------------------------------------------------------

    def render(self, grid: GridImages, caption: CaptionInputs,
               options: PublishOptions) -> Rendered:
        hashtag = normalize_hashtag(caption.hashtag, "caption.hashtag")
        limits = self.limits()
        checks = [f"limits: {limits.source}"]
        note = ""
        if options.mode == "single":
            sources = [(grid.grid, alt_text_for(grid, hashtag, "grid"))]
        else:
            tiles = grid.need_tiles(options.mode)
            shown = tiles[:limits.max_media_attachments]
            sources = [(data, alt_text_for(grid, hashtag, f"picture ({i + 1} of {len(tiles)})"))
                       for i, data in enumerate(shown)]
            checks.append(f"media <= {limits.max_media_attachments} attachments: "
                          f"{len(shown)} of {len(tiles)} tiles")
            if len(shown) < len(tiles):
                note = f"\nTiles 1-{len(shown)} of {len(tiles)}."
                checks.append(f"tiles {len(shown) + 1}-{len(tiles)} left out (the instance "
                              f"takes {limits.max_media_attachments} attachments)")
        text = fit_caption(caption, max_chars=limits.max_characters - len(note),
                           platform="Mastodon") + note
        checks.append(f"status <= {limits.max_characters} characters: {len(text)}")
        images: list[Rendition] = []
        for i, (data, alt) in enumerate(sources):
            # PNG stays lossless (GAN output is small); anything else goes as JPEG.
            ext = ".png" if limits.supports_png and data[:4] == b"\x89PNG" else ".jpg"
            image_limits = ImageLimits(max_bytes=limits.image_size_limit, ext=ext,
                                       max_pixels=limits.image_matrix_limit)
            alt = _clip_alt(alt, limits.description_limit)
            image = fit_image(data, image_limits, alt)
            images.append(image)
            checks.append(
                f"item {i}: {image_limits.ext[1:]} <= {limits.image_size_limit:,} bytes and "
                f"{limits.image_matrix_limit:,} pixels: {len(image.data):,} bytes, "
                f"{image.width}x{image.height}; alt text {len(alt)} <= "
                f"{limits.description_limit}")
        checks.append(f"visibility: {options.visibility or self.default_visibility}")
        return Rendered(text, images, checks)

    # --- send -------------------------------------------------------------------------

    def send(self, ctx: SendContext) -> str:
        api = self._api()
        post = ctx.post
        for item, data in zip(post.items, ctx.images, strict=True):
            if item.step not in ("processed", "attached"):
                self._upload(api, ctx, item, data)
        if post.progress.get("status_id"):
            return post.url or post.urls[0]
        media_ids = [item.platform_id for item in post.items]
        status = None
        tried = post.progress.get("status_tried_unix")
        if tried and time.time() - float(tried) > IDEMPOTENCY_WINDOW_S:
            status = self._find_status(api, media_ids)
        if status is None:
            if not tried:
                post.progress["status_tried_unix"] = time.time()
            visibility = post.options.get("visibility") or self.default_visibility
            post.progress["visibility"] = visibility
            ctx.save()  # the first try's time is what tells a later resume to look first
            # Safe to repeat: the instance answers a repeated Idempotency-Key with the
            # status it made the first time.
            status = api.json("POST", "/api/v1/statuses", headers={
                "Idempotency-Key": f"socialgan-{post.post_id}"}, json={
                "status": post.caption, "media_ids": media_ids, "visibility": visibility})
        return self._record_status(ctx, status)

    def _upload(self, api: PublishHttp, ctx: SendContext, item, data: bytes) -> None:
        if not item.platform_id:
            # A repeat after a lost answer leaves an orphan upload (never attached; the
            # instance removes those), never a second post: so this call is retried.
            name = item.image_key.rsplit("/", 1)[-1]
            media = api.json("POST", "/api/v2/media", data={"description": item.alt_text},
                             files={"file": (name, data, item.content_type)})
            item.platform_id = _media_id(media)
            item.url = str(media.get("url") or "")
            item.step = "processed" if item.url else "processing"
            ctx.save()
        if item.step != "processed":
            self._await_processing(api, ctx, item)

    def _await_processing(self, api: PublishHttp, ctx: SendContext, item) -> None:
        deadline = time.monotonic() + MEDIA_PROCESSING_TIMEOUT_S
        pause = max(0.01, api.policy.backoff_s)
        while True:
            try:
                response = api.call("GET", f"/api/v1/media/{item.platform_id}")
            except PlatformError as exc:
                if exc.status not in (404, 422):
                    raise
                # Gone (removed unattached) or its processing failed: upload it anew next time.
                lost_id, item.platform_id, item.step, item.url = item.platform_id, "", "", ""
                ctx.save()
                raise Unavailable(f"Mastodon: media {lost_id} answered {exc.status} while "
                                  "processing; publish again with the same idempotency key "
                                  "to upload it again") from None
            media = _json_or_empty(response) if response.status_code == 200 else {}
            if isinstance(media, dict) and media.get("url"):
                item.url = str(media["url"])
                item.step = "processed"
                ctx.save()
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"Mastodon: media {item.platform_id} is still processing "
                                  f"after {MEDIA_PROCESSING_TIMEOUT_S:.0f} s; publish again "
                                  "with the same idempotency key to resume")
            api.sleep(pause)
            pause = min(_POLL_MAX_S, pause * 2)

    def _find_status(self, api: PublishHttp, media_ids: list[str]) -> dict | None:
        """The account's recent status that carries our media, if one was posted."""
        account = api.json("GET", "/api/v1/accounts/verify_credentials")
        if not isinstance(account, dict) or not account.get("id"):
            raise Unavailable("Mastodon: verify_credentials answered without an account id")
        statuses = api.json("GET", f"/api/v1/accounts/{account['id']}/statuses",
                            params={"limit": _RECENT_STATUSES})
        wanted = set(media_ids)
        for status in statuses if isinstance(statuses, list) else []:
            attached = {str(m.get("id")) for m in status.get("media_attachments") or []}
            if wanted and wanted <= attached:
                return status
        return None

    def _record_status(self, ctx: SendContext, status: Any) -> str:
        post = ctx.post
        if not isinstance(status, dict) or not status.get("id"):
            raise Unavailable("Mastodon: the status answer has no id")
        url = str(status.get("url") or status.get("uri") or "")
        post.progress["status_id"] = str(status["id"])
        post.platform_ids = [str(status["id"])]
        post.urls = [url]
        for item in post.items:
            item.step = "attached"
        ctx.save()
        return url

    # --- refresh ----------------------------------------------------------------------

    def refresh(self, ctx: SendContext) -> None:
        status_id = ctx.post.progress.get("status_id")
        if not status_id:
            return
        api = self._api()
        try:
            status = api.json("GET", f"/api/v1/statuses/{status_id}")
        except PlatformError as exc:
            if exc.status != 404:
                raise
            ctx.post.progress["deleted"] = True
            ctx.post.error = f"Mastodon: status {status_id} was deleted (404 on refresh)"
            return
        ctx.post.progress["deleted"] = False
        ctx.post.progress["counts"] = {k: int(status.get(k) or 0) for k in (
            "replies_count", "reblogs_count", "favourites_count")}
        ctx.post.progress["refreshed_unix"] = time.time()
        if status.get("url"):
            ctx.post.urls = [str(status["url"])]
            ctx.post.url = ctx.post.urls[0]


    # --- replies ----------------------------------------------------------------------

    def read_replies(self, store: ObjectStore, post: Post) -> list[Reply]:
        status_id = str(post.progress.get("status_id") or "")
        if not status_id:
            return []  # nothing was posted
        api = self._api()
        if not self._account_id:
            self._account_id = mastodon_replies.own_account_id(api)
        return mastodon_replies.status_replies(api, status_id, self._account_id,
                                               MAX_REPLIES_PER_POST)


def _json_or_empty(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _media_id(media: Any) -> str:
    if not isinstance(media, dict) or not media.get("id"):
        raise Unavailable("Mastodon: the media answer has no id")
    return str(media["id"])

"""A Mastodon instance on 127.0.0.1 in the documented shape of the calls a post makes.

    GET  /api/v2/instance              configuration.statuses / media_attachments (public)
    POST /api/v2/media                 multipart file + description: 200 with url, or 202
                                       with url null when processing is asynchronous
    GET  /api/v1/media/:id             206 while processing, 200 with url when done; 404
                                       once attached to a status (as Mastodon does)
    POST /api/v1/statuses              status, media_ids[], visibility; Idempotency-Key
                                       honoured for an hour: the same key returns the same
                                       status, no second one
    GET  /api/v1/statuses/:id          404 once deleted
    GET  /api/v1/accounts/verify_credentials, /api/v1/accounts/:id/statuses
    GET  /api/v1/statuses/:id/context  {ancestors, descendants}: the replies that
                                       add_reply() made, in thread order (public)
    GET  /api/v1/trends/tags           `trends`, limit (public)

Every call but the instance read needs the bearer token. `published()` counts statuses and
the media attached to them: an upload repeated after a lost answer is an orphan that no
status shows, as on a real instance (which removes such uploads a day later).
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

from tests.publish_api_base import Answer, ApiRequest, PublishApiServer

TOKEN = "mastodon-test-token-3f9a1c"
ACCOUNT_ID = "109000000000000001"
IDEMPOTENCY_TTL_S = 3600
VISIBILITIES = ("public", "unlisted", "private", "direct")
_MEDIA = re.compile(r"^/api/v1/media/(\w+)$")
_STATUS = re.compile(r"^/api/v1/statuses/(\w+)$")
_ACCOUNT_STATUSES = re.compile(r"^/api/v1/accounts/(\w+)/statuses$")
_CONTEXT = re.compile(r"^/api/v1/statuses/(\w+)/context$")
_WORD_TAG = re.compile(r"#(\w+)")
OWN_ACCOUNT = {"id": ACCOUNT_ID, "username": "socialgan", "acct": "socialgan"}


class FakeMastodon(PublishApiServer):
    def __init__(self, *, max_characters: int = 500, max_media_attachments: int = 4,
                 image_size_limit: int = 16 * 1024 * 1024, image_matrix_limit: int = 33_177_600,
                 description_limit: int = 1500, async_every: int = 0, polls_processing: int = 1,
                 files_base: str = ""):
        super().__init__()
        self.config = {
            "statuses": {"max_characters": max_characters,
                         "max_media_attachments": max_media_attachments,
                         "characters_reserved_per_url": 23},
            "media_attachments": {
                "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],
                "image_size_limit": image_size_limit, "image_matrix_limit": image_matrix_limit,
                "description_limit": description_limit},
        }
        self.async_every = async_every  # every n-th upload is processed asynchronously
        self.polls_processing = polls_processing  # 206 answers before its url is set
        self.files_base = files_base or f"https://127.0.0.1:{self.port}/system"
        self.public_base = f"https://127.0.0.1:{self.port}"
        self.uploads = 0
        self.media: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.idempotency: dict[str, tuple[str, float]] = {}
        self.redirect_media_to = ""  # answer POST /api/v2/media with a 307 to this base
        self.rate_limit_once: dict[str, str] = {}  # path -> Retry-After of one 429
        self._next_id = 110000000000000000
        self.replies: dict[str, dict[str, Any]] = {}  # id -> status, not in `statuses`
        self.trends: list[dict[str, Any]] = []

    # --- what the instance holds ----------------------------------------------------------

    def published(self) -> dict[str, int]:
        attached = sum(len(s["media_attachments"]) for s in self.statuses.values())
        return {"statuses": len(self.statuses), "media": attached}

    def forget_idempotency_keys(self) -> None:
        """As an hour later: the instance no longer knows the keys it saw."""
        self.idempotency.clear()

    def delete_status(self, status_id: str) -> None:
        self.statuses.pop(status_id)
        self.deleted.add(status_id)

    def add_reply(self, in_reply_to_id: str, account: dict[str, str], text: str) -> str:
        """A reply by account ({"id", "acct"}; OWN_ACCOUNT for ours) to a status or a
        reply; its content is HTML as Mastodon renders it (hashtags as links)."""
        assert in_reply_to_id in self.statuses or in_reply_to_id in self.replies
        reply_id = self._id()
        linked = _WORD_TAG.sub(
            lambda m: f'<a href="{self.public_base}/tags/{m.group(1).lower()}" '
                      f'class="mention hashtag" rel="tag">#<span>{m.group(1)}</span></a>',
            html.escape(text, quote=False))
        self.replies[reply_id] = {
            "id": reply_id, "in_reply_to_id": in_reply_to_id,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "content": "<p>" + linked.replace("\n", "<br />") + "</p>",
            "account": {"id": account["id"], "username": account["acct"].split("@")[0],
                        "acct": account["acct"]},
            "visibility": "public", "media_attachments": []}
        return reply_id

    def _context(self, status_id: str) -> Answer:
        if status_id not in self.statuses and status_id not in self.replies:
            return Answer(404, {"error": "Record not found"})
        descendants: list[dict[str, Any]] = []

        def below(parent: str) -> None:  # depth first, oldest first: Mastodon's thread order
            for reply in sorted(self.replies.values(), key=lambda r: int(r["id"])):
                if reply["in_reply_to_id"] == parent:
                    descendants.append(reply)
                    below(reply["id"])

        below(status_id)
        return Answer(200, {"ancestors": [], "descendants": descendants})

    def _id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    # --- routes ---------------------------------------------------------------------------

    def route(self, req: ApiRequest) -> Answer:
        if req.method == "GET" and req.path == "/api/v2/instance":
            return Answer(200, {"domain": f"127.0.0.1:{self.port}", "title": "Fake Mastodon",
                                "version": "4.4.0", "configuration": self.config})
        if req.method == "GET" and (m := _CONTEXT.match(req.path)):
            return self._context(m.group(1))
        if req.method == "GET" and req.path == "/api/v1/trends/tags":
            return Answer(200, self.trends[:int(req.query.get("limit", "10"))])
        if req.bearer() != TOKEN:
            return Answer(401, {"error": "The access token is invalid"})
        retry_after = self.rate_limit_once.pop(req.path, None)
        if retry_after is not None:
            return Answer(429, {"error": "Too many requests"}, {"Retry-After": retry_after})
        if req.method == "POST" and req.path == "/api/v2/media":
            return self._upload(req)
        if req.method == "POST" and req.path == "/api/v1/statuses":
            return self._post_status(req)
        if req.method == "GET" and req.path == "/api/v1/accounts/verify_credentials":
            return Answer(200, dict(OWN_ACCOUNT))
        if req.method == "GET" and (m := _ACCOUNT_STATUSES.match(req.path)):
            if m.group(1) != ACCOUNT_ID:
                return Answer(404, {"error": "Record not found"})
            newest = sorted(self.statuses.values(), key=lambda s: int(s["id"]), reverse=True)
            return Answer(200, newest[:int(req.query.get("limit", "20"))])
        if req.method == "GET" and (m := _MEDIA.match(req.path)):
            return self._get_media(m.group(1))
        if req.method == "GET" and (m := _STATUS.match(req.path)):
            status = self.statuses.get(m.group(1))
            return Answer(200, status) if status else Answer(404, {"error": "Record not found"})
        return Answer(404, {"error": f"no route {req.method} {req.path}"})

    def _upload(self, req: ApiRequest) -> Answer:
        if self.redirect_media_to:
            return Answer(307, {}, {"Location": f"{self.redirect_media_to}/api/v2/media"})
        form = req.form()
        data = form.get("file")
        if not isinstance(data, bytes) or not data:
            return Answer(422, {"error": "Validation failed: File can't be blank"})
        limits = self.config["media_attachments"]
        if len(data) > limits["image_size_limit"]:
            return Answer(422, {"error": "Validation failed: File file size must be less "
                                         f"than {limits['image_size_limit']} bytes"})
        description = str(form.get("description", ""))
        if len(description) > limits["description_limit"]:
            return Answer(422, {"error": "Validation failed: Description is too long"})
        self.uploads += 1
        media_id = self._id()
        processing = bool(self.async_every) and self.uploads % self.async_every == 0
        self.media[media_id] = {
            "id": media_id, "type": "image", "description": description,
            "url": None if processing else f"{self.files_base}/{media_id}.png",
            "preview_url": f"{self.files_base}/{media_id}-small.png", "size": len(data),
            "_polls_left": self.polls_processing if processing else 0, "_status": None}
        return Answer(202 if processing else 200, self._public(self.media[media_id]))

    def _get_media(self, media_id: str) -> Answer:
        media = self.media.get(media_id)
        if media is None or media["_status"] is not None:
            return Answer(404, {"error": "Record not found"})
        if media["_polls_left"] > 0:
            media["_polls_left"] -= 1
            return Answer(206, self._public(media))
        media["url"] = f"{self.files_base}/{media_id}.png"
        return Answer(200, self._public(media))

    def _post_status(self, req: ApiRequest) -> Answer:
        key = req.headers.get("idempotency-key", "")
        now = time.time()
        if key and key in self.idempotency and now - self.idempotency[key][1] < IDEMPOTENCY_TTL_S:
            known = self.idempotency[key][0]
            return Answer(200, self.statuses.get(known, {"id": known}))
        body = req.json()
        text = str(body.get("status", ""))
        media_ids = [str(i) for i in body.get("media_ids") or []]
        visibility = body.get("visibility") or "public"
        limit = self.config["statuses"]
        if len(text) > limit["max_characters"]:
            return Answer(422, {"error": "Validation failed: Text character limit of "
                                         f"{limit['max_characters']} exceeded"})
        if len(media_ids) > limit["max_media_attachments"]:
            return Answer(422, {"error": "Validation failed: too many attachments"})
        if visibility not in VISIBILITIES:
            return Answer(422, {"error": "Validation failed: Visibility is not included"})
        attach = []
        for media_id in media_ids:
            media = self.media.get(media_id)
            if media is None or media["_status"] is not None:
                return Answer(422, {"error": f"Validation failed: media {media_id} not found"})
            if media["url"] is None:
                return Answer(422, {"error": "Cannot attach files that have not finished "
                                             "processing. Try again in a moment!"})
            attach.append(media)
        status_id = self._id()
        for media in attach:
            media["_status"] = status_id
        self.statuses[status_id] = {
            "id": status_id, "uri": f"{self.public_base}/users/socialgan/statuses/{status_id}",
            "url": f"{self.public_base}/@socialgan/{status_id}", "content": text,
            "visibility": visibility, "replies_count": 0, "reblogs_count": 0,
            "favourites_count": 2, "media_attachments": [self._public(m) for m in attach]}
        if key:
            self.idempotency[key] = (status_id, now)
        return Answer(200, self.statuses[status_id])

    @staticmethod
    def _public(media: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in media.items() if not k.startswith("_")}

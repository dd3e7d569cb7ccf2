"""Instagram's Graph API content publishing on 127.0.0.1, in its documented shape.

    POST /{ig-user-id}/media            image_url, caption, alt_text[, is_carousel_item]; or
                                        media_type=CAROUSEL, children, caption: a container.
                                        The image is FETCHED from image_url now, and checked
                                        like Instagram does (JPEG, <= 8 MB, width 320..1440,
                                        aspect 4:5..1.91:1): error 9004 / subcode 2207052
                                        when it cannot be fetched
    GET  /{container}?fields=status_code IN_PROGRESS for `polls_in_progress` polls, then
                                        FINISHED (or EXPIRED / ERROR when told), PUBLISHED
    POST /{ig-user-id}/media_publish    creation_id: publishes it (a second publish of the
                                        same container publishes again: counted as a
                                        duplicate, so the client must never do it)
    GET  /{media-id}?fields=permalink   (code 100 for a media it does not have)
    GET  /{ig-user-id}/media            newest first: id, caption, timestamp
    GET  /{ig-user-id}/content_publishing_limit   config.quota_total, quota_usage
    GET  /{ig-user-id}?fields=username  the account's username
    GET  /{media-id}/comments, /{comment-id}/replies   id, text, username, timestamp, from;
                                        `limit` a page (default 25) and the `after` cursor;
                                        paging.next is a whole URL WITH access_token in it,
                                        as Graph writes it (a client that follows it is
                                        refused: see below); a comments page answers
                                        the field expansion replies{...} with the first
                                        `nested_replies` replies of each comment, paged

Every call needs `Authorization: Bearer TOKEN` (else 400 with OAuthException code 190, as
Graph answers). `rate_limit_next` answers that many calls with Graph's rate-limit error
(code 4 in a 400). StaticFiles serves a storage folder over http, the PUBLIC_MEDIA_BASE_URL
of the tests, and records every Authorization header it is sent (there must be none).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import urllib.request
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image

from tests.http_support import QuietHandler
from tests.publish_api_base import Answer, ApiRequest, PublishApiServer

TOKEN = "instagram-test-token-7c41e2"
USER_ID = "17841400000000001"
USERNAME = "socialgan.art"
MAX_BYTES = 8_000_000


def graph_error(status: int, message: str, code: int, subcode: int | None = None,
                kind: str = "OAuthException") -> Answer:
    err: dict[str, Any] = {"message": message, "type": kind, "code": code,
                           "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        err["error_subcode"] = subcode
    return Answer(status, {"error": err})


class FakeInstagram(PublishApiServer):
    def __init__(self, *, polls_in_progress: int = 1, quota_total: int = 100,
                 quota_usage: int = 0):
        super().__init__()
        self.polls_in_progress = polls_in_progress
        self.quota_total = quota_total
        self.quota_usage = quota_usage  # posts made before the test, in the last 24 h
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: list[dict[str, Any]] = []  # oldest first
        self.expire_next = 0  # the next n image containers answer EXPIRED when polled
        self.error_next = 0  # the next n image containers answer ERROR when polled
        self.rate_limit_next = 0
        self.rate_limited = 0  # rate-limit errors answered
        self.down_after_publishes: int | None = None  # then every call answers 500
        self._ids = 0
        self.comments: dict[str, dict[str, Any]] = {}  # comment id -> comment (and replies)
        self.comment_pages = 0  # comments/replies pages answered
        self.nested_replies = 25  # replies a comment carries inline (Graph's default page)
        self.comments_permission = True  # False: the token lacks manage_comments (code 10)

    # --- what the tests read ------------------------------------------------------------------

    def published_keys(self) -> list[str]:
        """The storage key behind each published single-image media, in publish order."""
        return [m["image_key"] for m in self.media if m["image_key"]]

    def counts(self) -> dict[str, int]:
        """Posts, and how often each item image was published (as a post or a child)."""
        per_item = Counter()
        for m in self.media:
            for key in m["items"]:
                per_item[key.rsplit("/", 1)[-1]] += 1
        return {"posts": len(self.media), **per_item}

    # --- the API --------------------------------------------------------------------------------

    def add_comment(self, parent_id: str, username: str, text: str,
                    user_id: str = "") -> str:
        """A comment by username under a published media, or a reply to a comment."""
        parent_is_media = any(m["id"] == parent_id for m in self.media)
        assert parent_is_media or parent_id in self.comments, parent_id
        comment_id = self._new_id()
        self.comments[comment_id] = {
            "id": comment_id, "text": text, "username": username,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
            "from": {"id": user_id or "9" + str(int(hashlib.sha256(
                username.encode()).hexdigest()[:12], 16)),
                     "username": username},
            "_parent": parent_id, "_reply": not parent_is_media}
        return comment_id

    def _comment_page(self, req: ApiRequest, parent_id: str, edge: str) -> Answer:
        if not self.comments_permission:
            return graph_error(403, "(#10) Application does not have permission for this "
                               "action", 10)
        known = any(m["id"] == parent_id for m in self.media) or parent_id in self.comments
        if not known or (edge == "replies") != (parent_id in self.comments):
            return graph_error(400, f"Unsupported get request. Object with ID '{parent_id}' "
                               "does not exist", 100, 33, kind="GraphMethodException")
        start = int(req.query["after"][1:]) if req.query.get("after") else 0
        self.comment_pages += 1
        return Answer(200, self._page(req, parent_id, str(req.query.get("fields", "id")),
                                      start, int(req.query.get("limit", "25"))))

    def _page(self, req: ApiRequest, parent_id: str, fields: str, start: int,
              size: int) -> dict[str, Any]:
        rows = [c for c in self.comments.values() if c["_parent"] == parent_id]
        page = rows[start:start + size]
        nested = ""
        if "replies{" in fields:  # field expansion: replies{id,text,...}
            fields, nested = fields.split("replies{", 1)
            nested = nested.split("}", 1)[0]
        names = [f for f in fields.split(",") if f]
        data = []
        for c in page:
            row = {k: c[k] for k in names if k in c}
            if nested and any(r["_parent"] == c["id"] for r in self.comments.values()):
                row["replies"] = self._page(req, c["id"], nested, 0, self.nested_replies)
            data.append(row)
        answer: dict[str, Any] = {"data": data}
        if page:
            answer["paging"] = {"cursors": {"before": f"c{start}",
                                            "after": f"c{start + len(page)}"}}
            if start + size < len(rows):
                edge = "replies" if parent_id in self.comments else "comments"
                answer["paging"]["next"] = (
                    f"{self.base}/v24.0/{parent_id}/{edge}?access_token={req.bearer()}"
                    f"&fields={','.join(names)}&limit={size}&after=c{start + len(page)}")
        return answer

    def _new_id(self) -> str:
        self._ids += 1
        return str(17900000000000000 + self._ids)

    def route(self, req: ApiRequest) -> Answer:
        if self.down_after_publishes is not None and \
                len(self.media) >= self.down_after_publishes:
            return Answer(500, {"error": {"message": "test server: down", "code": 2}})
        if req.bearer() != TOKEN:
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token",
                               190)
        if "access_token" in req.query:
            return graph_error(400, "test server: the token must not travel in the URL", 100)
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            self.rate_limited += 1
            return graph_error(400, "Application request limit reached", 4,
                               kind="OAuthException")
        params = {**req.query, **req.form()}
        parts = [p for p in req.path.split("/") if p]
        if parts and parts[0].startswith("v") and parts[0][1:].replace(".", "").isdigit():
            parts = parts[1:]  # the version prefix of the base URL
        if len(parts) == 2 and parts[0] == USER_ID:
            handler = {("POST", "media"): self._create, ("POST", "media_publish"): self._publish,
                       ("GET", "media"): self._list_media,
                       ("GET", "content_publishing_limit"): self._limit}.get(
                (req.method, parts[1]))
            if handler:
                return handler(params)
        if len(parts) == 2 and req.method == "GET" and parts[1] in ("comments", "replies"):
            return self._comment_page(req, parts[0], parts[1])
        if parts == [USER_ID] and req.method == "GET":
            return Answer(200, {"id": USER_ID, "username": USERNAME})
        if len(parts) == 1 and req.method == "GET":
            return self._read(parts[0], params)
        return graph_error(400, f"Unsupported {req.method} request", 100, 33)

    def _limit(self, params: dict[str, Any]) -> Answer:
        return Answer(200, {"data": [{"config": {"quota_total": self.quota_total,
                                                 "quota_duration": 86400},
                                      "quota_usage": self.quota_usage + len(self.media)}]})

    def _fetch(self, url: str) -> tuple[bytes | None, str]:
        if not url.startswith(("http://127.0.0.1", "https://")):
            return None, "not a public URL"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
                return answer.read(MAX_BYTES + 1), ""
        except OSError as exc:
            return None, type(exc).__name__

    def _check_image(self, data: bytes) -> Answer | None:
        if not data.startswith(b"\xff\xd8\xff"):
            return graph_error(400, "Only photo or video can be accepted as media type.",
                               9004, 2207026)
        if len(data) > MAX_BYTES:
            return graph_error(400, "The image size is too large.", 9004, 2207004)
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
        if not 320 <= width <= 1440:
            return graph_error(400, f"The image width {width} is not supported.", 9004,
                               2207004)
        if not 0.8 <= width / height <= 1.91:
            return graph_error(400, "The aspect ratio is not supported.", 36003, 2207009)
        return None

    def _create(self, params: dict[str, Any]) -> Answer:
        container = {"status": "IN_PROGRESS", "polls": self.polls_in_progress,
                     "caption": params.get("caption", ""), "alt_text": params.get("alt_text"),
                     "created": time.time(), "image_key": "", "children": [],
                     "child": params.get("is_carousel_item") == "true", "fate": "FINISHED"}
        if params.get("media_type") == "CAROUSEL":
            children = [c for c in str(params.get("children", "")).split(",") if c]
            if not 2 <= len(children) <= 10 or any(
                    self.containers.get(c, {}).get("status") != "FINISHED" or
                    not self.containers[c]["child"] for c in children):
                return graph_error(400, "The carousel children are not valid.", 100, 2207026)
            container["children"] = children
        else:
            data, why = self._fetch(str(params.get("image_url", "")))
            if data is None:
                return graph_error(400, f"Media download has failed ({why}).", 9004, 2207052)
            refusal = self._check_image(data)
            if refusal is not None:
                return refusal
            container["image_url"] = str(params["image_url"])
            container["image_key"] = container["image_url"].split("?")[0].split("/", 3)[-1]
            if self.expire_next:
                self.expire_next -= 1
                container["fate"] = "EXPIRED"
            elif self.error_next:
                self.error_next -= 1
                container["fate"] = "ERROR"
        cid = self._new_id()
        self.containers[cid] = container
        return Answer(200, {"id": cid})

    def _publish(self, params: dict[str, Any]) -> Answer:
        container = self.containers.get(str(params.get("creation_id", "")))
        if container is None or container["child"]:
            return graph_error(400, "The media container is not valid.", 100, 2207008)
        if container["status"] not in ("FINISHED", "PUBLISHED"):
            return graph_error(400, "The media is not ready for publishing.", 9007, 2207027)
        if self.quota_usage + len(self.media) >= self.quota_total:
            return graph_error(400, "The account has reached its publishing limit.", 9, 2207042)
        # Instagram would refuse a second publish of one container; this server publishes
        # again, so a client that ever does it shows up as a duplicate.
        container["status"] = "PUBLISHED"
        media_id = self._new_id()
        items = [self.containers[c]["image_key"] for c in container["children"]] or \
            [container["image_key"]]
        self.media.append({"id": media_id, "caption": container["caption"],
                           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
                           "image_key": container["image_key"], "items": items})
        return Answer(200, {"id": media_id})

    def _list_media(self, params: dict[str, Any]) -> Answer:
        rows = [{k: m[k] for k in ("id", "caption", "timestamp")}
                for m in reversed(self.media)]
        return Answer(200, {"data": rows[:int(params.get("limit", 25))]})

    def _read(self, object_id: str, params: dict[str, Any]) -> Answer:
        container = self.containers.get(object_id)
        if container is not None:
            if container["status"] == "IN_PROGRESS":
                if container["polls"] > 0:
                    container["polls"] -= 1
                else:
                    container["status"] = container["fate"]
            answer = {"id": object_id, "status_code": container["status"]}
            if container["status"] == "ERROR":
                answer["status"] = "Error: 2207052"
            return Answer(200, answer)
        for m in self.media:
            if m["id"] == object_id:
                return Answer(200, {"id": object_id,
                                    "permalink": f"https://www.instagram.com/p/T{object_id}/"})
        return graph_error(400, f"Unsupported get request. Object with ID '{object_id}' does "
                           "not exist", 100, 33, kind="GraphMethodException")


class StaticFiles:
    """A folder over plain http on 127.0.0.1: the public media host Instagram fetches from."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.auth_seen: list[str] = []
        self.fetched: list[str] = []
        files = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.headers.get("Authorization"):
                    files.auth_seen.append(self.headers["Authorization"])
                path = (files.root / self.path.lstrip("/").split("?")[0]).resolve()
                if files.root not in path.parents or not path.is_file():
                    return self.send(404, b"not found", "text/plain")
                files.fetched.append(self.path)
                return self.send(200, path.read_bytes(), "image/jpeg")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> StaticFiles:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

"""A Bluesky PDS on 127.0.0.1 that speaks the XRPC shapes a post takes.

    with FakeBluesky() as pds:          # handle "gan.test", password "app-pass-1234"
        ... BLUESKY_PDS_URL=pds.base ...
        pds.sessions_created            # createSession calls that made a session
        pds.expire_access_tokens()      # the next call answers 400 ExpiredToken

What it checks, as the real PDS and the app.bsky lexicons do:
    createSession    identifier + password, or 401 AuthenticationRequired
    refreshSession   the refresh token as bearer; rotates it (the old one is revoked)
    uploadBlob       a valid access token (400 ExpiredToken / 401 InvalidToken), an image
                     Content-Type that matches the bytes, <= 1,000,000 bytes (400
                     BlobTooLarge); the blob's CID is its content's hash
    createRecord     repo = the session's DID, app.bsky.feed.post, a TID record key that is
                     not taken (400 InvalidRequest), text <= 300 graphemes and 3,000 bytes,
                     createdAt, <= 4 images each with alt text, an aspectRatio and an
                     uploaded blob, facets whose UTF-8 byte ranges cover "#" + their tag
    getRecord        public; 400 RecordNotFound
    getPostThread    (app.bsky.feed, proxied by the PDS: a valid access token) the thread
                     below uri, `depth` levels of replies (add_reply), #threadViewPost
                     nodes, #notFoundPost for a deleted reply; 400 NotFound
    getTrendingTopics  (app.bsky.unspecced, public) {"topics", "suggested"}; unstable:
                     `trending_fails` = a status to answer instead
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime
from typing import Any

import regex

from tests.publish_api_base import Answer, ApiRequest, PublishApiServer

TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
MAX_BLOB_BYTES = 1_000_000
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG", "image/webp": b"RIFF"}


def _error(status: int, name: str, message: str, headers: dict | None = None) -> Answer:
    return Answer(status, {"error": name, "message": message}, headers or {})


class FakeBluesky(PublishApiServer):
    def __init__(self, handle: str = "gan.test", password: str = "app-pass-1234"):
        super().__init__()
        self.handle, self.password = handle, password
        self.did = "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
        self.access: dict[str, bool] = {}  # access token -> expired
        self.refresh: set[str] = set()
        self.sessions_created = 0
        self.sessions_refreshed = 0
        self.blobs: dict[str, bytes] = {}  # cid -> bytes
        self.records: dict[str, dict[str, Any]] = {}  # rkey -> {uri, cid, value}
        self.refused: list[str] = []  # why createRecord / uploadBlob said no
        self.session_limit_reset: float | None = None  # createSession answers 429 when set
        self.sign_in_auth: list[str] = []  # the Authorization header of each createSession
        self.thread_posts: dict[str, dict[str, Any]] = {}  # uri -> reply postView + parent
        self.deleted_replies: set[str] = set()
        self.trending: list[str] = []
        self.trending_fails = 0  # an HTTP status getTrendingTopics answers instead

    # --- what the tests ask -------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        for token in self.access:
            self.access[token] = True

    def revoke_sessions(self) -> None:
        self.access.clear()
        self.refresh.clear()

    def referenced_blobs(self) -> set[str]:
        return {img["image"]["ref"]["$link"] for r in self.records.values()
                for img in r["value"].get("embed", {}).get("images", [])}

    def counts(self) -> dict[str, int]:
        """What the account shows: posts and the images in them."""
        images = sum(len(r["value"].get("embed", {}).get("images", []))
                     for r in self.records.values())
        return {"posts": len(self.records), "images": images}

    def add_reply(self, parent_uri: str, handle: str, text: str) -> str:
        """A reply by handle (ours: self.handle) to a post or a reply; its uri."""
        assert parent_uri in self.thread_posts or self._own_post(parent_uri), parent_uri
        did = self.did if handle == self.handle else \
            "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
        uri = f"at://{did}/app.bsky.feed.post/{len(self.thread_posts):013d}"
        stamp = datetime.fromtimestamp(time.time()).astimezone().isoformat(
            timespec="milliseconds")
        self.thread_posts[uri] = {
            "post": {"uri": uri, "cid": "bafyrei" + hashlib.sha256(uri.encode()).hexdigest()[:52],
                     "author": {"did": did, "handle": handle},
                     "record": {"$type": "app.bsky.feed.post", "text": text,
                                "createdAt": stamp, "reply": {"parent": {"uri": parent_uri}}},
                     "indexedAt": stamp, "replyCount": 0},
            "parent": parent_uri}
        return uri

    def _own_post(self, uri: str) -> dict[str, Any] | None:
        return next((r for r in self.records.values() if r["uri"] == uri), None)

    def _thread_node(self, uri: str, depth: int) -> dict[str, Any]:
        if uri in self.deleted_replies:
            return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}
        own = self._own_post(uri)
        post = ({"uri": uri, "cid": own["cid"],
                 "author": {"did": self.did, "handle": self.handle}, "record": own["value"],
                 "indexedAt": own["value"]["createdAt"]} if own
                else self.thread_posts[uri]["post"])
        node: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": post}
        if depth > 0:
            node["replies"] = [self._thread_node(u, depth - 1)
                               for u, p in self.thread_posts.items() if p["parent"] == uri]
        return node

    def _get_post_thread(self, req: ApiRequest) -> Answer:
        refused = self._authed(req)
        if refused:
            return refused
        uri = req.query.get("uri", "")
        if not (uri in self.thread_posts or self._own_post(uri)):
            return _error(400, "NotFound", f"Post not found: {uri}")
        depth = int(req.query.get("depth", "6"))
        if not 0 <= depth <= 1000:
            return _error(400, "InvalidRequest", "depth must be 0..1000")
        return Answer(200, {"thread": self._thread_node(uri, depth)})

    def _get_trending_topics(self, req: ApiRequest) -> Answer:
        if self.trending_fails:
            return _error(self.trending_fails, "InternalServerError", "trending is down")
        limit = int(req.query.get("limit", "10"))
        return Answer(200, {"topics": [{"topic": t, "link": f"/profile/trending/{i}"}
                                       for i, t in enumerate(self.trending[:limit])],
                            "suggested": []})

    # --- XRPC --------------------------------------------------------------------------

    def route(self, req: ApiRequest) -> Answer:
        nsid = req.path.removeprefix("/xrpc/")
        handlers = {
            ("POST", "com.atproto.server.createSession"): self._create_session,
            ("POST", "com.atproto.server.refreshSession"): self._refresh_session,
            ("POST", "com.atproto.repo.uploadBlob"): self._upload_blob,
            ("POST", "com.atproto.repo.createRecord"): self._create_record,
            ("GET", "com.atproto.repo.getRecord"): self._get_record,
            ("GET", "app.bsky.feed.getPostThread"): self._get_post_thread,
            ("GET", "app.bsky.unspecced.getTrendingTopics"): self._get_trending_topics,
        }
        handler = handlers.get((req.method, nsid))
        if handler is None:
            return _error(404, "MethodNotImplemented", f"{req.method} {req.path}")
        return handler(req)

    def _new_session(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = False
        self.refresh.add(refresh)
        return {"did": self.did, "handle": self.handle, "accessJwt": access,
                "refreshJwt": refresh, "active": True}

    def _create_session(self, req: ApiRequest) -> Answer:
        self.sign_in_auth.append(req.headers.get("authorization", ""))
        if self.session_limit_reset is not None:
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded",
                          {"RateLimit-Reset": str(int(self.session_limit_reset))})
        body = req.json()
        if body.get("identifier") not in (self.handle, self.did) or \
                body.get("password") != self.password:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.sessions_created += 1
        return Answer(200, self._new_session())

    def _refresh_session(self, req: ApiRequest) -> Answer:
        token = req.bearer()
        if token not in self.refresh:
            return _error(400, "ExpiredToken", "Token has been revoked")
        self.refresh.discard(token)  # rotated: the old refresh token is spent
        self.sessions_refreshed += 1
        return Answer(200, self._new_session())

    def _authed(self, req: ApiRequest) -> Answer | None:
        token = req.bearer()
        if token not in self.access:
            return _error(401, "InvalidToken", "Bad token")
        if self.access[token]:
            return _error(400, "ExpiredToken", "Token has expired")
        return None

    def _upload_blob(self, req: ApiRequest) -> Answer:
        refused = self._authed(req)
        if refused:
            return refused
        ctype = req.headers.get("content-type", "")
        if not req.body.startswith(_MAGIC.get(ctype, b"\x00no")):
            return self._refuse(400, "InvalidRequest", f"body is not {ctype or 'an image'}")
        if len(req.body) > MAX_BLOB_BYTES:
            return self._refuse(400, "BlobTooLarge", f"{len(req.body)} bytes is over "
                                f"{MAX_BLOB_BYTES}")
        cid = "bafkrei" + hashlib.sha256(req.body).hexdigest()[:52]
        self.blobs[cid] = req.body
        return Answer(200, {"blob": {"$type": "blob", "ref": {"$link": cid},
                                     "mimeType": ctype, "size": len(req.body)}})

    def _refuse(self, status: int, name: str, message: str) -> Answer:
        self.refused.append(f"{name}: {message}")
        return _error(status, name, message)

    def _create_record(self, req: ApiRequest) -> Answer:
        refused = self._authed(req)
        if refused:
            return refused
        body = req.json()
        rkey, record = body.get("rkey", ""), body.get("record") or {}
        if body.get("repo") not in (self.did, self.handle):
            return self._refuse(400, "InvalidRequest", "repo is not the session's account")
        if body.get("collection") != "app.bsky.feed.post" or \
                record.get("$type") != "app.bsky.feed.post":
            return self._refuse(400, "InvalidRequest", "not an app.bsky.feed.post")
        if not TID.fullmatch(rkey):
            return self._refuse(400, "InvalidRequest", f"record key {rkey!r} is not a TID")
        if rkey in self.records:
            return self._refuse(400, "InvalidRequest", f"Record already exists: {rkey}")
        why = self._invalid_post(record)
        if why:
            return self._refuse(400, "InvalidRecord", why)
        uri = f"at://{self.did}/app.bsky.feed.post/{rkey}"
        cid = "bafyrei" + hashlib.sha256(repr(record).encode()).hexdigest()[:52]
        self.records[rkey] = {"uri": uri, "cid": cid, "value": record}
        return Answer(200, {"uri": uri, "cid": cid, "validationStatus": "valid"})

    def _invalid_post(self, record: dict[str, Any]) -> str:
        text = record.get("text")
        if not isinstance(text, str):
            return "text is required"
        graphemes = len(regex.findall(r"\X", text))
        if graphemes > 300 or len(text.encode()) > 3000:
            return f"text is {graphemes} graphemes, {len(text.encode())} bytes: too long"
        try:
            datetime.fromisoformat(str(record.get("createdAt")).replace("Z", "+00:00"))
        except ValueError:
            return "createdAt is not a datetime"
        return self._invalid_facets(text, record.get("facets") or []) or \
            self._invalid_images(record.get("embed") or {})

    @staticmethod
    def _invalid_facets(text: str, facets: list) -> str:
        raw = text.encode()
        for facet in facets:
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            feature = facet["features"][0]
            if feature.get("$type") != "app.bsky.richtext.facet#tag":
                return f"unexpected facet {feature.get('$type')}"
            if not 0 <= start < end <= len(raw):
                return f"facet bytes {start}..{end} out of the text's {len(raw)}"
            try:
                covered = raw[start:end].decode()
            except UnicodeDecodeError:
                return f"facet bytes {start}..{end} cut a character"
            if covered != "#" + feature["tag"]:
                return f"facet bytes {start}..{end} cover {covered!r}, not #{feature['tag']}"
        return ""

    def _invalid_images(self, embed: dict[str, Any]) -> str:
        if not embed:
            return ""
        if embed.get("$type") != "app.bsky.embed.images":
            return "embed is not app.bsky.embed.images"
        images = embed.get("images") or []
        if not 1 <= len(images) <= 4:
            return f"{len(images)} images: 1 to 4 allowed"
        for image in images:
            if not isinstance(image.get("alt"), str) or not image["alt"].strip():
                return "an image has no alt text"
            ratio = image.get("aspectRatio") or {}
            if not all(isinstance(ratio.get(k), int) and ratio[k] > 0
                       for k in ("width", "height")):
                return "an image has no aspectRatio"
            link = (image.get("image") or {}).get("ref", {}).get("$link")
            if link not in self.blobs:
                return f"Could not find blob: {link}"
        return ""

    def _get_record(self, req: ApiRequest) -> Answer:
        q = req.query
        found = self.records.get(q.get("rkey", ""))
        if q.get("repo") not in (self.did, self.handle) or \
                q.get("collection") != "app.bsky.feed.post" or found is None:
            return _error(400, "RecordNotFound", "Could not locate record")
        return Answer(200, found)

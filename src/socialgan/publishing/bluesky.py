"""Bluesky (atproto): the grid, or up to 4 of its tiles, as one app.bsky.feed.post.

    uploadBlob per image (JPEG <= 1,000,000 bytes)  ->  createRecord of the post with an
    app.bsky.embed.images embed (alt text and aspect ratio on each), the text <= 300
    graphemes and every hashtag as an app.bsky.richtext.facet#tag facet

Plain XRPC over HTTP (PublishHttp), not the `atproto` SDK: a post takes four endpoints
(createSession, refreshSession, uploadBlob, createRecord; getRecord to confirm and refresh),
and the SDK's own HTTP client would bypass what every target here relies on: the credential
bound to its origin (the app password and the session tokens go to the PDS only, https
only, no redirects), the bounded retries that honour rate-limit headers, the timeouts. It
would also bring pydantic and httpx into the publisher for four JSON calls.

The session is reused across posts (createSession is rate limited hard): bluesky_session.py.
The replies under a post (the audience's votes) are read by bluesky_replies.py.

Idempotency: the record's key is a TID derived from the post (its creation time and a clock
id hashed from its id), the same on every attempt. A PDS refuses a second record under a
key that exists, so a repeated createRecord (after a lost answer, a crash, a retried
Publish) cannot make a second post: after any failure of it the record is looked up with
getRecord, and when it is there, with our text and time, it is taken as posted. Uploading a
blob again is harmless: it is content-addressed, and an upload no record refers to is
garbage-collected by the PDS.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import datetime, timezone
from typing import Any

import regex

from socialgan import settings
from socialgan.audience.types import Reply
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable
from socialgan.publishing.bluesky_replies import thread_replies
from socialgan.publishing.bluesky_session import (
    HANDLE_VAR,
    PASSWORD_VAR,
    PDS_VAR,
    PLATFORM,
    STATE_DIR_VAR,
    BlueskySession,
    SessionStore,
    password_credential,
    xrpc_error,
)
from socialgan.publishing.caption import CaptionInputs, fit_caption
from socialgan.publishing.gallery import alt_text_for
from socialgan.publishing.http import PlatformError
from socialgan.publishing.media import GridImages, ImageLimits, fit_image
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

COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = 300  # the post text, as app.bsky.feed.post counts it
MAX_TEXT_BYTES = 3000  # ... and its UTF-8 size
MAX_IMAGES = 4  # app.bsky.embed.images
MAX_TAG_GRAPHEMES = 64  # one app.bsky.richtext.facet#tag
# uploadBlob's cap for an embedded image, and at most 2000 px wide, as the official app
# sends them (it resizes to 2000 px a side; grids are about square).
IMAGE_LIMITS = ImageLimits(max_bytes=1_000_000, ext=".jpg", max_width=2000)
# An upload that no record refers to is collected by the PDS after a while: an older one is
# uploaded again rather than trusted when a failed post resumes.
BLOB_REUSE_S = 1800.0

_GRAPHEME = regex.compile(r"\X")
# A hashtag as the caption writes it: '#', then word characters, not inside a word.
_HASHTAG = regex.compile(r"(?<![\w#])#(\w+)")
_BASE32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"


def grapheme_count(text: str) -> int:
    """What a reader sees as characters (an emoji with its modifiers, a letter with its
    accents are one each): the unit of Bluesky's 300."""
    return len(_GRAPHEME.findall(text))


def post_length(text: str) -> int:
    """The text's length against the 300 a post takes: its graphemes, or more when its
    UTF-8 bytes are over the 3,000 a post also takes (300 ZWJ emoji are 7,500 bytes)."""
    return max(grapheme_count(text), math.ceil(len(text.encode()) * MAX_GRAPHEMES /
                                                MAX_TEXT_BYTES))


def hashtag_facets(text: str) -> list[dict[str, Any]]:
    """A #tag facet for every hashtag in text, its range in UTF-8 bytes (the facet index
    counts bytes, not characters). Tags of digits only are not tags to Bluesky."""
    facets = []
    for match in _HASHTAG.finditer(text):
        tag = match.group(1)
        if tag.isdigit():
            continue
        start = len(text[:match.start()].encode())
        facets.append({
            "index": {"byteStart": start, "byteEnd": start + len(match.group(0).encode())},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
        })
    return facets


def record_key(post_id: str, created_unix: float) -> str:
    """The post's record key: a TID (53 bits of microseconds, 10 bits of clock id, in
    base32-sortable, 13 characters) from the post's creation time, with the clock id
    hashed from its id, so every attempt at the same post names the same record."""
    micros = int(round(created_unix * 1_000_000)) & ((1 << 53) - 1)
    clock = int.from_bytes(hashlib.sha256(post_id.encode()).digest()[:2], "big") & 0x3FF
    value = (micros << 10) | clock
    return "".join(_BASE32_SORTABLE[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def created_at(created_unix: float) -> str:
    return datetime.fromtimestamp(created_unix, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _check_tags(text: str, inputs: CaptionInputs) -> list[dict[str, Any]]:
    facets = hashtag_facets(text)
    main = normalize_hashtag(inputs.hashtag, "caption.hashtag")
    for facet in facets:
        tag = facet["features"][0]["tag"]
        if grapheme_count(tag) > MAX_TAG_GRAPHEMES:
            field = "caption.hashtag" if tag == main else "caption.extra_hashtags"
            raise InvalidArgument(field, f"#{tag[:40]}… is {grapheme_count(tag)} graphemes; a "
                                  f"Bluesky tag takes at most {MAX_TAG_GRAPHEMES}")
    return facets


class BlueskyTarget(PublishTarget):
    """Posts to one Bluesky account through its PDS."""

    name = "bluesky"
    title = "Bluesky"
    modes = ("single", "tiles")

    def __init__(self, handle: str, app_password: str, pds_url: str, state_dir: str = ""):
        self.handle = handle.strip().removeprefix("@")  # "@name.bsky.social" as shown
        self._app_password = app_password  # kept out of every message and repr
        self.pds_url = pds_url.strip()
        self.state_dir = state_dir

    @classmethod
    def from_env(cls) -> BlueskyTarget:
        return cls(settings.get(HANDLE_VAR) or "", settings.get(PASSWORD_VAR) or "",
                   settings.get(PDS_VAR) or "", settings.get(STATE_DIR_VAR) or "")

    def __repr__(self) -> str:
        return f"BlueskyTarget(handle={self.handle!r}, pds_url={self.pds_url!r})"

    # --- render ------------------------------------------------------------------------

    def render(self, grid: GridImages, caption: CaptionInputs,
               options: PublishOptions) -> Rendered:
        text = fit_caption(caption, max_chars=MAX_GRAPHEMES, length=post_length,
                           platform=PLATFORM)
        facets = _check_tags(text, caption)
        tag = normalize_hashtag(caption.hashtag, "caption.hashtag")
        if options.mode == "single":
            sources = [(grid.grid, alt_text_for(grid, tag, "grid"))]
            chosen = "single: the grid as one image"
        else:
            tiles = grid.need_tiles(options.mode)
            sources = [(data, alt_text_for(grid, tag, f"tile ({i + 1} of {len(tiles)}) "
                                           "from a grid"))
                       for i, data in enumerate(tiles[:MAX_IMAGES])]
            chosen = f"tiles: {len(sources)} of {len(tiles)} (a post takes {MAX_IMAGES})"
        images = [fit_image(data, IMAGE_LIMITS, alt) for data, alt in sources]
        checks = [f"text <= {MAX_GRAPHEMES} graphemes: {grapheme_count(text)}",
                  f"text <= {MAX_TEXT_BYTES:,} bytes: {len(text.encode()):,}",
                  f"hashtag facets: {len(facets)} (tags <= {MAX_TAG_GRAPHEMES} graphemes)",
                  f"images <= {MAX_IMAGES}: {len(images)}; {chosen}"]
        checks += [f"item {i}: jpeg <= {IMAGE_LIMITS.max_bytes:,} bytes: {len(r.data):,} "
                   f"bytes, {r.width}x{r.height}, alt text {len(r.alt_text)} characters"
                   for i, r in enumerate(images)]
        return Rendered(text, images, checks)

    # --- send --------------------------------------------------------------------------

    def check_ready(self) -> None:
        for var, value in ((HANDLE_VAR, self.handle), (PASSWORD_VAR, self._app_password)):
            if not value:
                raise FailedPrecondition(
                    f"target bluesky needs account credentials: {var} is not set (set "
                    f"{HANDLE_VAR} to the handle or DID that posts and {PASSWORD_VAR} to "
                    "an app password of it)")
        password_credential(self._app_password, self.pds_url)  # names PDS_VAR when bad

    def _client(self) -> BlueskySession:
        self.check_ready()
        return BlueskySession(self.pds_url, self.handle,
                              password_credential(self._app_password, self.pds_url),
                              SessionStore(self.state_dir))

    def send(self, ctx: SendContext) -> str:
        post = ctx.post
        if post.progress.get("uri"):
            return post.urls[0]  # recorded by an earlier attempt
        client = self._client()
        session = client.session()
        images = [{"image": self._blob(client, ctx, i),
                   "alt": item.alt_text,
                   "aspectRatio": {"width": item.width, "height": item.height}}
                  for i, item in enumerate(post.items)]
        rkey = record_key(post.post_id, post.created_unix)
        post.progress["rkey"] = rkey
        record = {"$type": COLLECTION, "text": post.caption,
                  "createdAt": created_at(post.created_unix), "langs": ["en"],
                  "facets": hashtag_facets(post.caption),
                  "embed": {"$type": "app.bsky.embed.images", "images": images}}
        try:
            answer = client.json("POST", "com.atproto.repo.createRecord", json={
                "repo": session.did, "collection": COLLECTION, "rkey": rkey, "record": record})
        except (PlatformError, Unavailable) as exc:
            # A repeat of a createRecord that arrived is refused (the key exists), and a lost
            # answer says nothing: whether the post is there, getRecord tells.
            found = self._confirm(client, session.did, rkey, record)
            if found is None:
                if isinstance(exc, PlatformError) and "blob" in str(exc).lower():
                    self._forget_blobs(ctx)  # collected by the PDS: the next try uploads
                raise
            answer = found
        uri, cid = answer.get("uri"), answer.get("cid")
        if not isinstance(uri, str) or not isinstance(cid, str):
            raise Unavailable(f"{PLATFORM}: createRecord answered no uri and cid")
        url = f"https://bsky.app/profile/{session.handle or session.did}/post/{rkey}"
        post.progress.update(uri=uri, cid=cid, did=session.did)
        post.platform_ids, post.urls = [uri], [url]
        for item in post.items:
            item.step, item.url = "posted", url
        ctx.save()
        return url

    def _blob(self, client: BlueskySession, ctx: SendContext, index: int) -> dict[str, Any]:
        """The blob reference of item index, uploaded now unless a recent upload holds it."""
        item, data = ctx.post.items[index], ctx.images[index]
        fresh = time.time() - float(item.extra.get("uploaded_unix", 0)) < BLOB_REUSE_S
        if item.extra.get("blob") and fresh:
            return item.extra["blob"]
        if len(data) > IMAGE_LIMITS.max_bytes:
            raise InvalidArgument("grid_key", f"item {index} is {len(data):,} bytes; Bluesky "
                                  f"takes {IMAGE_LIMITS.max_bytes:,}")
        answer = client.json("POST", "com.atproto.repo.uploadBlob", data=data,
                             headers={"Content-Type": item.content_type})
        blob = answer.get("blob") if isinstance(answer, dict) else None
        ref = blob.get("ref") if isinstance(blob, dict) else None
        link = ref.get("$link") if isinstance(ref, dict) else None
        if not isinstance(link, str):
            raise Unavailable(f"{PLATFORM}: uploadBlob answered no blob reference")
        item.extra.update(blob=blob, uploaded_unix=time.time())
        item.platform_id, item.step = link, "uploaded"
        ctx.save()
        return blob

    def _confirm(self, client: BlueskySession, did: str, rkey: str,
                 record: dict[str, Any]) -> dict[str, Any] | None:
        """The record under rkey when it is our post, None when there is none (or the PDS
        cannot say now); FailedPrecondition when the key holds another post."""
        try:
            found = self._get_record(client, did, rkey)
        except (PlatformError, Unavailable):
            return None
        if found is None:
            return None
        value = found.get("value") or {}
        if (value.get("text"), value.get("createdAt")) != (record["text"],
                                                           record["createdAt"]):
            raise FailedPrecondition(f"{PLATFORM}: record key {rkey} of {did} holds another "
                                     "post; publish with a new idempotency key")
        return found

    @staticmethod
    def _forget_blobs(ctx: SendContext) -> None:
        for item in ctx.post.items:
            item.extra.pop("blob", None)
            item.platform_id, item.step = "", ""
        ctx.save()

    @staticmethod
    def _get_record(client: BlueskySession, did: str, rkey: str) -> dict[str, Any] | None:
        """getRecord (public: no session spent on it); None when there is no such record."""
        try:
            found = client.public().json("GET", "/xrpc/com.atproto.repo.getRecord", params={
                "repo": did, "collection": COLLECTION, "rkey": rkey})
        except PlatformError as exc:
            if xrpc_error(exc) == "RecordNotFound":
                return None
            raise
        return found if isinstance(found, dict) else None

    def refresh(self, ctx: SendContext) -> None:
        """Whether the post is still there (its author may have deleted it)."""
        post = ctx.post
        did, rkey = post.progress.get("did"), post.progress.get("rkey")
        if not did or not rkey:
            return
        found = self._get_record(self._client(), did, rkey)
        post.progress["deleted"] = found is None
        post.progress["refreshed_unix"] = time.time()
        post.error = f"{PLATFORM}: the post {post.progress.get('uri')} was deleted" \
            if found is None else ""
        if found is not None and isinstance(found.get("cid"), str):
            post.progress["cid"] = found["cid"]  # an edited record has a new one

    def read_replies(self, store: ObjectStore, post: Post) -> list[Reply]:
        uri = post.progress.get("uri")
        if not isinstance(uri, str) or not uri:
            return []  # nothing was posted
        client = self._client()
        own_did = str(post.progress.get("did") or client.session().did)
        return thread_replies(client, uri, own_did, MAX_REPLIES_PER_POST)

"""A local X API in the documented v2 shape, for the X target's tests.

    POST /2/media/upload          multipart media + media_category (<= 5,000,000 bytes);
                                  processing_info pending for `processing_polls` STATUS reads
    GET  /2/media/upload          ?command=STATUS&media_id=
    POST /2/media/metadata        {"id", "metadata": {"alt_text": {"text"}}}
    POST /2/tweets                {"text", "media": {"media_ids"}}: media must exist, be
                                  processed and belong to the caller; <= 4; <= 280 weighted;
                                  the same text twice is refused (403 duplicate content)
    GET  /2/users/me, GET /2/users/:id/tweets (newest first, text as X returns it: HTML
                                  escaped, the media's t.co link appended), GET /2/tweets/:id
    POST /1.1/account/update_profile_banner.json  403 for OAuth 2.0 tokens (as X answers),
                                  or accepted with banner_accepts=True
    GET /2/tweets/search/recent   query=conversation_id:ID (the post itself and the replies
                                  add_reply made, newest first), max_results 10..100,
                                  next_token paging, includes.users; 403 Client Forbidden
                                  with search_forbidden=True (an access level without it)
    GET /2/trends/by/woeid/:id    `trends` as [{"trend_name", "tweet_count"}]; 403 with
                                  trends_forbidden=True

Every call needs `Authorization: Bearer <token>` (401 otherwise). rate_limit_next(path)
makes the next call to path answer 429 with x-rate-limit-reset one second ahead.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import time
import unicodedata

from PIL import Image

from tests.publish_api_base import Answer, ApiRequest, PublishApiServer

TOKEN = "x-user-token-0123456789"
USER_ID = "2244994945"
USERNAME = "socialgan_art"
MAX_IMAGE_BYTES = 5_000_000


_LIGHT = ((0, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))


def _weight(text: str) -> int:
    """X's count, as simply as the fake needs: 1 per code point in X's light ranges, else 2
    (an emoji sequence is over-counted here, which only makes the fake stricter)."""
    return sum(1 if any(lo <= ord(c) <= hi for lo, hi in _LIGHT) else 2
               for c in unicodedata.normalize("NFC", text))


def _problem(status: int, title: str, detail: str) -> Answer:
    return Answer(status, {"title": title, "detail": detail, "type": "about:blank",
                           "status": status})


class FakeX(PublishApiServer):
    def __init__(self, *, processing_polls: int = 0, banner_accepts: bool = False,
                 redirect_to: str = "", oauth1: tuple[str, str, str, str] | None = None):
        super().__init__()
        self.oauth1 = oauth1  # (consumer key, secret, token, token secret) the banner takes
        self.processing_polls = processing_polls
        self.banner_accepts = banner_accepts
        self.redirect_to = redirect_to  # GET /2/users/me answers a redirect there
        self.media: dict[str, dict] = {}
        self.tweets: list[dict] = []  # oldest first
        self.banners: list[tuple[int, int]] = []
        self._next_id = 1880000000000000000
        self._limited: dict[str, float] = {}
        self.timeline_lag_reads = 0  # this many timeline reads do not show the newest post yet
        self.reset_sent: dict[str, int] = {}  # path -> the x-rate-limit-reset it was sent
        self.replies: list[dict] = []  # oldest first; not in `tweets` (not ours)
        self.search_forbidden = False
        self.search_pages = 0
        self.trends: list[tuple[str, int]] = []
        self.trends_forbidden = False

    def rate_limit_next(self, path: str, reset_in_s: float = 1.0) -> None:
        self._limited[path] = reset_in_s

    def add_reply(self, conversation_id: str, user_id: str, username: str, text: str) -> str:
        """A reply by user_id (ours: USER_ID) in the conversation of one of our posts."""
        assert any(t["id"] == conversation_id for t in self.tweets), conversation_id
        reply = {"id": self._new_id(), "text": text, "author_id": user_id,
                 "username": username, "conversation_id": conversation_id,
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        self.replies.append(reply)
        return reply["id"]

    def _forbidden(self) -> Answer:
        return Answer(403, {
            "title": "Client Forbidden", "type": "https://api.x.com/2/problems/client-forbidden",
            "detail": "When authenticating requests to the Twitter API v2 endpoints, you must "
                      "use keys and tokens from a Twitter developer App that is attached to a "
                      "Project.", "reason": "client-not-enrolled",
            "required_enrollment": "Appropriate Level of API Access"})

    def _search(self, req: ApiRequest) -> Answer:
        if self.search_forbidden:
            return self._forbidden()
        query = req.query.get("query", "")
        if not query.startswith("conversation_id:"):
            return _problem(400, "Invalid Request", "this fake only searches conversation_id:")
        size = int(req.query.get("max_results", "10"))
        if not 10 <= size <= 100:
            return _problem(400, "Invalid Request", "max_results must be 10..100")
        wanted = query.split(":", 1)[1]
        root = [{"id": t["id"], "text": t["text"], "author_id": USER_ID,
                 "username": USERNAME, "conversation_id": t["id"],
                 "created_at": t["created_at"]} for t in self.tweets if t["id"] == wanted]
        found = [r for r in reversed(root + self.replies) if r["conversation_id"] == wanted]
        start = int(req.query.get("next_token", "0") or 0)
        page = found[start:start + size]
        self.search_pages += 1
        meta = {"result_count": len(page)}
        if start + size < len(found):
            meta["next_token"] = str(start + size)
        if not page:
            return Answer(200, {"meta": meta})
        users = {r["author_id"]: {"id": r["author_id"], "username": r["username"],
                                  "name": r["username"]} for r in page}
        return Answer(200, {"data": [{"id": r["id"], "text": html.escape(r["text"], quote=False),
                                      "author_id": r["author_id"], "created_at": r["created_at"],
                                      "conversation_id": r["conversation_id"],
                                      "edit_history_tweet_ids": [r["id"]]} for r in page],
                            "includes": {"users": list(users.values())}, "meta": meta})

    def _trends(self, req: ApiRequest) -> Answer:
        if self.trends_forbidden:
            return self._forbidden()
        count = int(req.query.get("max_trends", "20"))
        return Answer(200, {"data": [{"trend_name": name, "tweet_count": uses}
                                     for name, uses in self.trends[:count]]})

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def route(self, req: ApiRequest) -> Answer:
        if req.headers.get("authorization", "").startswith("OAuth "):
            if req.path != "/1.1/account/update_profile_banner.json":
                return _problem(403, "Unsupported Authentication", "OAuth 1.0a is not taken here")
            if not self._oauth1_valid(req):
                return Answer(401, {"errors": [{"code": 32,
                                                "message": "Could not authenticate you."}]})
            return self._banner(req, signed=True)
        if req.bearer() != TOKEN:
            return _problem(401, "Unauthorized", "Unauthorized")
        if req.path in self._limited:
            reset = int(time.time() + self._limited.pop(req.path) + 0.999)
            self.reset_sent[req.path] = reset
            return Answer(429, {"title": "Too Many Requests", "status": 429},
                          {"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"})
        if req.method == "GET" and req.path == "/2/tweets/search/recent":
            return self._search(req)
        if req.method == "GET" and req.path.startswith("/2/trends/by/woeid/"):
            return self._trends(req)
        if req.method == "POST" and req.path == "/2/media/upload":
            return self._upload(req)
        if req.method == "GET" and req.path == "/2/media/upload":
            return self._status(req)
        if req.method == "POST" and req.path == "/2/media/metadata":
            return self._metadata(req)
        if req.method == "POST" and req.path == "/2/tweets":
            return self._tweet(req)
        if req.method == "GET" and req.path == "/2/users/me":
            if self.redirect_to:
                return Answer(302, {}, {"Location": f"{self.redirect_to}/2/users/me"})
            return Answer(200, {"data": {"id": USER_ID, "name": "SocialGAN",
                                         "username": USERNAME}})
        if req.method == "GET" and req.path == f"/2/users/{USER_ID}/tweets":
            return self._timeline(req)
        if req.method == "GET" and req.path.startswith("/2/tweets/"):
            return self._lookup(req.path.rsplit("/", 1)[-1])
        if req.method == "POST" and req.path == "/1.1/account/update_profile_banner.json":
            return self._banner(req)
        return _problem(404, "Not Found Error", f"no route {req.method} {req.path}")

    def _upload(self, req: ApiRequest) -> Answer:
        form = req.form()
        data = form.get("media")
        if not isinstance(data, bytes) or not data:
            return _problem(400, "Invalid Request", "media is required")
        if form.get("media_category") != "tweet_image":
            return _problem(400, "Invalid Request", "media_category must be tweet_image")
        if len(data) > MAX_IMAGE_BYTES:
            return _problem(400, "Invalid Request", "File size exceeds 5242880 bytes")
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Exception:  # noqa: BLE001 - any undecodable upload is refused the same way
            return _problem(400, "Invalid Request", "media is not an image")
        media_id = self._new_id()
        self.media[media_id] = {"owner": USER_ID, "size": len(data), "alt": None,
                                "polls_left": self.processing_polls}
        info = {"state": "pending", "check_after_secs": 0} if self.processing_polls else \
            {"state": "succeeded"}
        return Answer(200, {"data": {"id": media_id, "media_key": f"3_{media_id}",
                                     "size": len(data), "expires_after_secs": 86400,
                                     "processing_info": info}})

    def _status(self, req: ApiRequest) -> Answer:
        media = self.media.get(req.query.get("media_id", ""))
        if req.query.get("command") != "STATUS" or media is None:
            return _problem(400, "Invalid Request", "unknown media_id")
        if media["polls_left"] > 0:
            media["polls_left"] -= 1
            info = {"state": "in_progress", "check_after_secs": 0, "progress_percent": 50}
        else:
            info = {"state": "succeeded", "progress_percent": 100}
        return Answer(200, {"data": {"id": req.query["media_id"], "processing_info": info}})

    def _metadata(self, req: ApiRequest) -> Answer:
        body = req.json()
        media = self.media.get(str(body.get("id")))
        if media is None or media["owner"] != USER_ID:
            return _problem(400, "Invalid Request", "media not found")
        text = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if not isinstance(text, str) or not 0 < len(text) <= 1000:
            return _problem(400, "Invalid Request", "alt_text.text must be 1..1000 characters")
        media["alt"] = text
        return Answer(200, {"data": {"id": body["id"],
                                     "associated_metadata": {"alt_text": {"text": text}}}})

    def _tweet(self, req: ApiRequest) -> Answer:
        body = req.json()
        text = body.get("text")
        ids = (body.get("media") or {}).get("media_ids") or []
        if not isinstance(text, str) or _weight(text) > 280:
            return _problem(400, "Invalid Request", "text is too long")
        if not 0 < len(ids) <= 4:
            return _problem(400, "Invalid Request", "media_ids: 1 to 4 ids")
        for media_id in ids:
            media = self.media.get(str(media_id))
            if media is None or media["owner"] != USER_ID:
                return _problem(400, "Invalid Request", f"media {media_id} not found")
            if media["polls_left"] > 0:
                return _problem(400, "Invalid Request", f"media {media_id} is processing")
        if any(t["text"] == text for t in self.tweets):
            return _problem(403, "Forbidden",
                            "You are not allowed to create a Tweet with duplicate content.")
        tweet = {"id": self._new_id(), "text": text, "media_ids": [str(i) for i in ids],
                 "alt": [self.media[str(i)]["alt"] for i in ids], "created_unix": time.time(),
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        self.tweets.append(tweet)
        return Answer(201, {"data": {"id": tweet["id"], "text": text}})

    def _shown(self, tweet: dict) -> dict:
        link = f" https://t.co/{tweet['id'][-8:]}"
        return {"id": tweet["id"], "text": html.escape(tweet["text"], quote=False) + link,
                "created_at": tweet["created_at"],
                "attachments": {"media_keys": [f"3_{i}" for i in tweet["media_ids"]]},
                "public_metrics": {"like_count": 3, "retweet_count": 1, "reply_count": 0}}

    def _timeline(self, req: ApiRequest) -> Answer:
        try:
            count = int(req.query.get("max_results", "10"))
        except ValueError:
            count = 0
        if not 5 <= count <= 100:
            return _problem(400, "Invalid Request", "max_results must be 5..100")
        shown = self.tweets
        if self.timeline_lag_reads > 0:
            self.timeline_lag_reads -= 1
            shown = shown[:-1]
        newest = [self._shown(t) for t in reversed(shown)][:count]
        if not newest:
            return Answer(200, {"meta": {"result_count": 0}})
        return Answer(200, {"data": newest, "meta": {"result_count": len(newest)}})

    def _lookup(self, tweet_id: str) -> Answer:
        for tweet in self.tweets:
            if tweet["id"] == tweet_id:
                return Answer(200, {"data": self._shown(tweet)})
        return Answer(200, {"errors": [{"title": "Not Found Error", "resource_id": tweet_id,
                                        "detail": f"Could not find tweet with id: [{tweet_id}]."}]})

    def delete(self, tweet_id: str) -> None:
        self.tweets = [t for t in self.tweets if t["id"] != tweet_id]

    def _oauth1_valid(self, req: ApiRequest) -> bool:
        """The request's HMAC-SHA1 signature, computed again from our copy of the keys."""
        from oauthlib.oauth1 import Client
        from oauthlib.oauth1.rfc5849 import utils

        if self.oauth1 is None:
            return False
        params = dict(utils.parse_authorization_header(req.headers["authorization"]))
        key, secret, token, token_secret = self.oauth1
        if params.get("oauth_consumer_key") != key or params.get("oauth_token") != token:
            return False
        client = Client(key, secret, token, token_secret, nonce=params.get("oauth_nonce"),
                        timestamp=params.get("oauth_timestamp"))
        _, headers, _ = client.sign(f"{self.base}{req.path}", "POST")
        expected = dict(utils.parse_authorization_header(headers["Authorization"]))
        return expected.get("oauth_signature") == params.get("oauth_signature")

    def _banner(self, req: ApiRequest, signed: bool = False) -> Answer:
        if not (signed or self.banner_accepts):
            return _problem(403, "Unsupported Authentication",
                            "Authenticating with OAuth 2.0 User Context is forbidden for this "
                            "endpoint. Supported authentication types are [OAuth 1.0a User "
                            "Context].")
        banner = req.form().get("banner")
        if isinstance(banner, str):
            try:
                banner = base64.b64decode(banner, validate=True)
            except (binascii.Error, ValueError):
                return Answer(400, {"errors": [{"code": 3, "message": "Invalid banner"}]})
        try:
            with Image.open(io.BytesIO(banner or b"")) as img:
                size = img.size
        except Exception:  # noqa: BLE001
            return Answer(422, {"errors": [{"code": 211, "message": "Image could not be "
                                            "resized or is too large."}]})
        self.banners.append(size)
        return Answer(201, b"")

    def counts(self) -> dict[str, int]:
        """What the account holds now that people see: posts and their attached pictures."""
        return {"tweets": len(self.tweets),
                "attached_media": sum(len(t["media_ids"]) for t in self.tweets)}

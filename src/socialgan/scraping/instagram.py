"""Instagram Graph API hashtag search (a Business or Creator account and its token).

    GET /ig_hashtag_search?user_id=&q=HASHTAG           -> {"data": [{"id": HASHTAG_ID}]}
    GET /HASHTAG_ID/top_media|recent_media?user_id=&fields=...&limit=50&after=CURSOR
        -> {"data": [media...], "paging": {"cursors": {"after": ...}, "next": ...}}

recent_media only covers the last 24 hours. Carousel posts yield one Item per image child;
videos are skipped (no still to learn from). Hashtag media carry no username: the permalink
is the attribution.

INSTAGRAM_ACCESS_TOKEN goes to the host of INSTAGRAM_GRAPH_URL only, over https
(socialgan.credentials); the media URLs the API returns are fetched without it.

The budget: an account may query at most 30 unique hashtags in a rolling 7 days. Every
search this scraper makes is recorded in storage with its time, and a hashtag's id is cached
(ids do not change), so re-scraping a hashtag costs nothing. A search that would be the
31st is refused before it is made, saying when a slot frees up; the job's message reports
how much of the budget is used.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from socialgan import settings
from socialgan.credentials import Credential
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.scraping.api import ApiClient, expect
from socialgan.scraping.download import Downloader, HttpStatusError
from socialgan.scraping.sources import HttpSource, Item
from socialgan.scraping.state import STATE_PREFIX
from socialgan.storage import ObjectStore
from socialgan.validation import check_identifier, normalize_hashtag

EDGES = ("top_media", "recent_media")
MEDIA_FIELDS = ("id,media_type,media_url,permalink,caption,timestamp,like_count,"
                "comments_count,children{id,media_type,media_url,permalink}")
PAGE_SIZE = 50
HASHTAG_BUDGET = 30
BUDGET_WINDOW = 7 * 24 * 3600.0
# Graph error codes that mean "rate limited" whatever the HTTP status (4, 17, 32, 613).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
_HASHTAG_IN_TEXT = re.compile(r"#(\w+)")


def _graph_rate_limited(exc: HttpStatusError) -> bool:
    import json

    try:
        code = json.loads(exc.body).get("error", {}).get("code")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False
    return code in RATE_LIMIT_CODES


def hashtags_in(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.lower() for t in _HASHTAG_IN_TEXT.findall(text or "")))


class HashtagBudget:
    """The rolling 7-day record of unique hashtags searched, per Instagram account."""

    def __init__(self, store: ObjectStore, user_id: str, *, now=time.time):
        self.store = store
        self.key = f"{STATE_PREFIX}instagram-{check_identifier(user_id, 'user_id')}/" \
                   "hashtag-searches.json"
        self._now = now

    def _load(self) -> dict[str, Any]:
        if not self.store.exists(self.key):
            return {"searches": {}, "ids": {}}
        return self.store.get_json(self.key)

    def _recent(self, record: dict[str, Any]) -> dict[str, float]:
        horizon = self._now() - BUDGET_WINDOW
        return {tag: t for tag, t in record["searches"].items() if t > horizon}

    def cached_id(self, hashtag: str) -> str | None:
        return self._load()["ids"].get(hashtag)

    def status(self) -> tuple[int, int, float | None]:
        """(used, left, unix time the oldest search leaves the window or None)."""
        recent = self._recent(self._load())
        oldest = min(recent.values()) + BUDGET_WINDOW if recent else None
        return len(recent), HASHTAG_BUDGET - len(recent), oldest

    def check(self, hashtag: str) -> None:
        """FailedPrecondition when searching hashtag now would exceed the budget."""
        recent = self._recent(self._load())
        if hashtag in recent or len(recent) < HASHTAG_BUDGET:
            return
        frees = time.strftime("%Y-%m-%d %H:%M UTC",
                              time.gmtime(min(recent.values()) + BUDGET_WINDOW))
        raise FailedPrecondition(
            f"instagram: searching #{hashtag} would exceed the budget of {HASHTAG_BUDGET} "
            f"unique hashtags per 7 days ({len(recent)} used); the next slot frees at {frees}")

    def record(self, hashtag: str, hashtag_id: str) -> None:
        record = self._load()
        record["searches"] = {**self._recent(record), hashtag: self._now()}
        record["ids"][hashtag] = hashtag_id
        self.store.put_json(self.key, record)


class InstagramHashtagSource(HttpSource):
    kind = "instagram"
    pages = True

    def __init__(self, user_id: str = "", edge: str = "top_media", *, token: str | None = None,
                 base_url: str | None = None, downloader: Downloader | None = None,
                 api_downloader: Downloader | None = None):
        super().__init__(downloader)
        self.user_id = (user_id or settings.get("INSTAGRAM_USER_ID") or "").strip()
        self.edge = {"top": "top_media", "recent": "recent_media", "": "top_media"}.get(
            edge, edge)
        token = settings.get("INSTAGRAM_ACCESS_TOKEN") if token is None else token
        base_url = base_url or settings.get("INSTAGRAM_GRAPH_URL") or ""
        self._has_token = bool(token)
        self.api = ApiClient(
            "instagram", base_url,
            Credential.bound("INSTAGRAM_ACCESS_TOKEN", token or "", [base_url],
                             url_var="INSTAGRAM_GRAPH_URL"),
            rate_limited=_graph_rate_limited, downloader=api_downloader)
        self._hashtag_id: str | None = None

    def describe(self) -> str:
        return f"instagram:{self.edge.removesuffix('_media')} as {self.user_id}"

    def validate(self) -> None:
        if self.edge not in EDGES:
            raise InvalidArgument("source.instagram.edge",
                                  f"{self.edge!r} is not one of {', '.join(EDGES)}")
        if not self.user_id:
            raise FailedPrecondition("instagram: no account id; set INSTAGRAM_USER_ID or "
                                     "give source.instagram.user_id")
        if not self.user_id.isdigit():
            raise InvalidArgument("source.instagram.user_id",
                                  f"{self.user_id!r} is not a numeric account id")
        if not self._has_token:
            raise FailedPrecondition("instagram: no token; set INSTAGRAM_ACCESS_TOKEN")
        if refusal := self.api.credential_refusal():
            raise FailedPrecondition(f"instagram: INSTAGRAM_GRAPH_URL: {refusal}")

    def budget(self, store: ObjectStore) -> HashtagBudget:
        return HashtagBudget(store, self.user_id)

    def preflight(self, store: ObjectStore, hashtag: str) -> None:
        hashtag = normalize_hashtag(hashtag)
        budget = self.budget(store)
        if budget.cached_id(hashtag) is None:
            budget.check(hashtag)

    def prepare(self, store: ObjectStore, hashtag: str) -> str:
        hashtag = normalize_hashtag(hashtag)
        budget = self.budget(store)
        self._hashtag_id = budget.cached_id(hashtag)
        if self._hashtag_id is None:
            budget.check(hashtag)
            self._hashtag_id = self._search(hashtag)
            budget.record(hashtag, self._hashtag_id)
        used, left, _ = budget.status()
        warn = " (running low)" if left <= 5 else ""
        return f"instagram hashtag budget: {used} of {HASHTAG_BUDGET} used in 7 days{warn}"

    def _search(self, hashtag: str) -> str:
        data = self.api.get("ig_hashtag_search", {"user_id": self.user_id, "q": hashtag}).data
        found = expect(expect(data, dict, "the search answer", "instagram").get("data"),
                       list, "data", "instagram")
        if not found or not isinstance(found[0], dict) or not found[0].get("id"):
            raise NotFound(f"instagram: no hashtag #{hashtag}")
        return str(found[0]["id"])

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        if self._hashtag_id is None:
            raise FailedPrecondition("instagram: prepare() must run before items()")
        after = cursor or ""
        while True:
            page = expect(self.api.get(f"{self._hashtag_id}/{self.edge}", {
                "user_id": self.user_id, "fields": MEDIA_FIELDS, "limit": PAGE_SIZE,
                "after": after}).data, dict, "the media page", "instagram")
            media = expect(page.get("data", []), list, "data", "instagram")
            for post in media:
                if isinstance(post, dict):
                    yield from self._post_items(post, after)
            paging = page.get("paging") or {}
            nxt = ((paging.get("cursors") or {}).get("after") or "") if isinstance(
                paging, dict) else ""
            if not media or not nxt or not paging.get("next") or nxt == after:
                return
            after = nxt

    def _post_items(self, post: dict[str, Any], cursor: str) -> Iterator[Item]:
        caption = str(post.get("caption") or "")
        common = dict(
            source=self.kind, permalink=str(post.get("permalink") or ""), caption=caption,
            hashtags=hashtags_in(caption), timestamp=str(post.get("timestamp") or ""),
            likes=post.get("like_count") if isinstance(post.get("like_count"), int) else None,
            licence="all rights reserved by the author; attribution: the permalink",
            cursor=cursor)
        comments = post.get("comments_count")
        if post.get("media_type") == "CAROUSEL_ALBUM":
            children = (post.get("children") or {}).get("data") or []
            for index, child in enumerate(children):
                if isinstance(child, dict) and child.get("media_type") == "IMAGE" \
                        and child.get("media_url"):
                    yield Item(location=str(child["media_url"]),
                               post_id=f"{post.get('id')}/{child.get('id')}",
                               extra={"carousel_index": index, "parent_id": post.get("id"),
                                      "comments": comments}, **common)
        elif post.get("media_type") == "IMAGE" and post.get("media_url"):
            yield Item(location=str(post["media_url"]), post_id=str(post.get("id")),
                       extra={"comments": comments}, **common)

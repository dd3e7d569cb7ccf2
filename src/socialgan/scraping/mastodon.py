"""Mastodon (any instance): a hashtag's public timeline, and the instance's trending tags.

    GET /api/v1/timelines/tag/HASHTAG?limit=40&only_media=true[&max_id=ID]
        -> [status...], older pages named by the Link header (rel="next", max_id=...)
    GET /api/v1/trends/tags?limit=N  -> [{"name", "url", "history": [{"day","uses","accounts"}]}]

Reading is public. MASTODON_ACCESS_TOKEN (instances that require one) belongs to one
instance, MASTODON_INSTANCE_URL, and is sent to that instance only, over https: a scrape
or a trends call for any other instance goes without it (socialgan.credentials).
The cursor kept between runs is the max_id of the next page, so a stopped scrape continues
with the page after the last one it finished. Images only: gifv/video/audio are skipped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from socialgan.credentials import Credential, origin_of
from socialgan.errors import InvalidArgument, Unavailable
from socialgan.errors import quote as quote_input
from socialgan.scraping.api import ApiClient, expect
from socialgan.scraping.download import Downloader, DownloadPolicy
from socialgan.scraping.sources import HttpSource, Item
from socialgan.validation import normalize_hashtag

PAGE_SIZE = 40  # the API's maximum for this endpoint
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^";]+)"?')
_TAG = re.compile(r"<[^>]+>")


def instance_url(value: str, field: str = "source.mastodon.instance_url") -> str:
    """https://host from 'host' or a URL; InvalidArgument naming `field` when it is neither
    (another scheme, no host, a bad port, user:password@, a path: an instance is a host)."""
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is empty; e.g. mastodon.social")
    # A scheme alone ("https://") must not become the host "https".
    scheme_only = re.fullmatch(r"[a-z][a-z0-9+.-]*:/*", value, re.IGNORECASE)
    value = value.rstrip("/")
    if "://" not in value and not scheme_only:
        value = f"https://{value}"
    # origin_of first: it refuses what urlsplit raises on ("https://[abc").
    parts = urlsplit(value) if not scheme_only and origin_of(value) else None
    if (parts is None  # another scheme, no host, a bad port, user:password@
            or parts.path or parts.query or parts.fragment
            or any(c.isspace() or ord(c) < 32 for c in parts.netloc)):
        raise InvalidArgument(field, f"{quote_input(value)} is not an instance URL; give "
                              "https://HOST[:PORT], e.g. https://mastodon.social")
    return f"{parts.scheme}://{parts.netloc}"


# Trending tags answer an interactive call: a host that does not answer is said at once,
# not after the scrape policy's minutes of retries.
TRENDS_POLICY = DownloadPolicy(max_bytes=1 << 20, connect_timeout=3.0, read_timeout=5.0,
                               attempt_deadline=8.0, max_attempts=2, backoff_base=0.2,
                               backoff_max=0.5, max_retry_after=2.0)


def next_max_id(link_header: str | None) -> str | None:
    """The max_id of the rel="next" page in a Link header, or None at the end."""
    for url, rel in _LINK.findall(link_header or ""):
        if "next" in rel.split():
            values = parse_qs(urlsplit(url).query).get("max_id")
            return values[0] if values else None
    return None


def plain_text(content: str) -> str:
    """A status's HTML content as text."""
    text = re.sub(r"<br\s*/?>|</p>\s*<p>", "\n", content or "")
    return html.unescape(_TAG.sub("", text)).strip()


def access_token() -> Credential:
    """MASTODON_ACCESS_TOKEN, bound to the instance MASTODON_INSTANCE_URL names."""
    return Credential.from_env("MASTODON_ACCESS_TOKEN", "MASTODON_INSTANCE_URL")


def _client(instance: str, credential: Credential | None,
            downloader: Downloader | None) -> ApiClient:
    return ApiClient(f"mastodon {urlsplit(instance).netloc}", instance,
                     access_token() if credential is None else credential,
                     downloader=downloader)


class MastodonHashtagSource(HttpSource):
    kind = "mastodon"
    pages = True

    def __init__(self, instance: str, *, credential: Credential | None = None,
                 downloader: Downloader | None = None, api_downloader: Downloader | None = None):
        super().__init__(downloader)
        self.instance = instance_url(instance)
        self.api = _client(self.instance, credential, api_downloader)

    def describe(self) -> str:
        return f"mastodon:{self.instance}"

    def validate(self) -> None:
        return None  # the URL was checked when made; reading needs no credentials

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        tag = normalize_hashtag(hashtag)
        max_id = cursor or ""
        while True:
            answer = self.api.get(f"api/v1/timelines/tag/{quote(tag)}", {
                "limit": PAGE_SIZE, "only_media": "true", "max_id": max_id})
            statuses = expect(answer.data, list, "the timeline", self.api.name)
            for status in statuses:
                if isinstance(status, dict):
                    yield from self._status_items(status, max_id)
            nxt = next_max_id(answer.headers.get("link"))
            if not statuses or not nxt or nxt == max_id:
                return
            max_id = nxt

    def _status_items(self, status: dict[str, Any], cursor: str) -> Iterator[Item]:
        account = status.get("account") or {}
        acct = str(account.get("acct") or "")
        caption = plain_text(str(status.get("content") or ""))
        tags = tuple(str(t.get("name", "")).lower() for t in status.get("tags") or []
                     if isinstance(t, dict))
        for media in status.get("media_attachments") or []:
            if not isinstance(media, dict) or media.get("type") != "image" or not media.get("url"):
                continue
            yield Item(
                source=self.kind, location=str(media["url"]),
                post_id=f"{status.get('id')}/{media.get('id')}",
                permalink=str(status.get("url") or status.get("uri") or ""),
                author=f"@{acct}" if acct else "", caption=caption, hashtags=tags,
                timestamp=str(status.get("created_at") or ""),
                likes=status.get("favourites_count")
                if isinstance(status.get("favourites_count"), int) else None,
                licence=f"by @{acct} on {urlsplit(self.instance).netloc}; ask the author "
                        "before reuse" if acct else "",
                extra={"alt_text": media.get("description") or "",
                       "sensitive": bool(status.get("sensitive")),
                       "reblogs": status.get("reblogs_count")},
                cursor=cursor)


@dataclass(frozen=True)
class TrendingTag:
    name: str
    url: str
    uses_today: int
    uses_week: int
    accounts_week: int


def trending_tags(instance: str, limit: int = 10, *, credential: Credential | None = None,
                  api_downloader: Downloader | None = None) -> list[TrendingTag]:
    """The instance's trending hashtags, most used first (feeds "pick a trending hashtag")."""
    if not 1 <= limit <= 20:
        raise InvalidArgument("limit", f"must be 1-20 (the API's maximum), not {limit}")
    client = _client(instance_url(instance, "instance_url"), credential,
                     api_downloader or Downloader(TRENDS_POLICY))
    try:
        data = expect(client.get("api/v1/trends/tags", {"limit": limit}).data, list,
                      "the trends", client.name)
    except Unavailable as exc:  # the caller should know which of its fields this was
        raise Unavailable(f"instance_url: {exc}") from None
    tags = []
    for entry in data:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        history = [h for h in entry.get("history") or [] if isinstance(h, dict)]

        def count(h: dict, key: str) -> int:
            try:
                return int(h.get(key) or 0)
            except (TypeError, ValueError):
                return 0

        tags.append(TrendingTag(
            name=str(entry["name"]), url=str(entry.get("url") or ""),
            uses_today=count(history[0], "uses") if history else 0,
            uses_week=sum(count(h, "uses") for h in history),
            accounts_week=sum(count(h, "accounts") for h in history)))
    return sorted(tags, key=lambda t: (-t.uses_week, t.name))[:limit]

"""What is trending, per source, as TrendingTag lists (merged and normalised by the chooser).

    Mastodon  GET /api/v1/trends/tags on each AUDIENCE_TREND_INSTANCES instance (public),
              read by the scraper's trending_tags(): uses and accounts over its history
    Bluesky   GET app.bsky.unspecced.getTrendingTopics on BLUESKY_APPVIEW_URL (public, no
              credential). Unspecced means unstable: any failure is logged and gives []
    X         GET /2/trends/by/woeid/{X_TRENDS_WOEID}, with X_PUBLISH_ACCESS_TOKEN (to
              X_PUBLISH_API_URL) when it is set, else the scraper's X_BEARER_TOKEN (to
              X_API_URL); no token, or a 403 (the access level has no trends): []

Trending feeds a choice that can fall back on other sources, so one source failing is no
reason to fail the choice: trending_tags_from_env() logs it, says it in `skipped`, and goes
on with the others. The per-source functions raise what they cannot tolerate themselves.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from urllib.parse import quote, urlsplit

from socialgan import settings
from socialgan.audience.types import TrendingTag
from socialgan.credentials import Credential, base_url
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable
from socialgan.publishing.http import PlatformError, PublishHttp, RetryPolicy
from socialgan.scraping.mastodon import instance_url, trending_tags

log = logging.getLogger(__name__)

INSTANCES_VAR = "AUDIENCE_TREND_INSTANCES"
APPVIEW_VAR = "BLUESKY_APPVIEW_URL"
WOEID_VAR = "X_TRENDS_WOEID"
DEFAULT_LIMIT = 10
MAX_INSTANCES = 10  # each is one call; a long list would make choosing slow
X_MAX_TRENDS = 50  # the endpoint's max_trends


def _policy() -> RetryPolicy:
    # A choice waits on these: two tries, not the publisher's five.
    policy = RetryPolicy.from_env()
    return dataclasses.replace(policy, max_attempts=min(2, policy.max_attempts))


def mastodon_trends(instances: list[str], limit: int = DEFAULT_LIMIT,
                    skipped: list[str] | None = None) -> list[TrendingTag]:
    """Each instance's trending tags, in the instance's order; an instance that does not
    answer is logged (and said in skipped) and left out. InvalidArgument naming
    AUDIENCE_TREND_INSTANCES for an entry that is no instance URL."""
    if len(instances) > MAX_INSTANCES:
        raise InvalidArgument(INSTANCES_VAR, f"names {len(instances)} instances; give at most "
                              f"{MAX_INSTANCES}")
    tags: list[TrendingTag] = []
    for entry in instances:
        instance = instance_url(entry, INSTANCES_VAR)
        host = urlsplit(instance).netloc
        try:
            found = trending_tags(instance, limit)
        except (Unavailable, FailedPrecondition) as exc:
            _skip(skipped, f"mastodon:{host}: {exc}")
            continue
        tags += [TrendingTag(name=t.name, source=f"mastodon:{host}", uses=t.uses_week,
                             accounts=t.accounts_week, rank=rank)
                 for rank, t in enumerate(found, 1)]
    return tags


def bluesky_trends(appview_url: str, limit: int = DEFAULT_LIMIT,
                   skipped: list[str] | None = None) -> list[TrendingTag]:
    """The AppView's trending topics, or [] (logged) when the unstable endpoint fails or
    answers in a shape it no longer has."""
    appview = base_url(appview_url)
    public = Credential.bound(APPVIEW_VAR, "", [appview], url_var=APPVIEW_VAR)
    api = PublishHttp("Bluesky", public, appview, policy=_policy())
    try:
        answer = api.json("GET", "/xrpc/app.bsky.unspecced.getTrendingTopics",
                          params={"limit": max(1, min(limit, 25))})
        topics = answer.get("topics") if isinstance(answer, dict) else None
        if not isinstance(topics, list):
            raise Unavailable("Bluesky: getTrendingTopics answered no topics list")
    except (Unavailable, FailedPrecondition) as exc:
        _skip(skipped, f"bluesky: getTrendingTopics is unspecced and failed: {exc}")
        return []
    names = [str(t.get("topic") or "").strip() for t in topics if isinstance(t, dict)]
    return [TrendingTag(name=name, source="bluesky", rank=rank)
            for rank, name in enumerate((n for n in names if n), 1)][:limit]


def x_credential() -> tuple[Credential, str]:
    """The token trends are read with and its API base: the publisher's when it is set,
    else the scraper's app token."""
    for token_var, url_var in (("X_PUBLISH_ACCESS_TOKEN", "X_PUBLISH_API_URL"),
                               ("X_BEARER_TOKEN", "X_API_URL")):
        credential = Credential.from_env(token_var, url_var)
        if credential:
            return credential, base_url(settings.get(url_var) or "")
    return Credential.bound("X_PUBLISH_ACCESS_TOKEN", "", []), ""


def x_trends(credential: Credential, api_url: str, woeid: str, limit: int = DEFAULT_LIMIT,
             skipped: list[str] | None = None) -> list[TrendingTag]:
    """X's trends for woeid; [] when there is no token or X refuses it the endpoint (403:
    the access level has no trends). Other failures raise."""
    if not woeid.strip().isdigit():
        raise InvalidArgument(WOEID_VAR, f"{woeid[:20]!r} is not a WOEID (digits; 1: world)")
    if not credential or not api_url:
        _skip(skipped, "x: no X_PUBLISH_ACCESS_TOKEN or X_BEARER_TOKEN to read trends with")
        return []
    api = PublishHttp("X", credential, api_url, policy=_policy())
    try:
        answer = api.json("GET", f"/2/trends/by/woeid/{quote(woeid.strip(), safe='')}",
                          params={"max_trends": max(1, min(limit, X_MAX_TRENDS))})
    except PlatformError as exc:
        if exc.status != 403:
            raise
        _skip(skipped, f"x: trends refused (403) for {credential.env_var}'s access level")
        return []
    rows: Any = answer.get("data") if isinstance(answer, dict) else None
    tags = []
    for row in rows if isinstance(rows, list) else []:
        name = str(row.get("trend_name") or "").strip() if isinstance(row, dict) else ""
        if name:
            count = row.get("tweet_count")
            uses = count if isinstance(count, int) and not isinstance(count, bool) else 0
            tags.append(TrendingTag(name=name, source="x", uses=uses, rank=len(tags) + 1))
    return tags[:limit]


def trending_tags_from_env(limit: int = DEFAULT_LIMIT,
                           skipped: list[str] | None = None) -> list[TrendingTag]:
    """Every configured source's trending tags, one list (Mastodon's instances, then
    Bluesky, then X); a source that fails is logged, said in skipped and left out."""
    instances = [i.strip() for i in (settings.get(INSTANCES_VAR) or "").split(",")
                 if i.strip()]
    tags = mastodon_trends(instances, limit, skipped)
    tags += bluesky_trends(settings.get(APPVIEW_VAR) or "", limit, skipped)
    credential, api_url = x_credential()
    try:
        tags += x_trends(credential, api_url, settings.get(WOEID_VAR) or "1", limit, skipped)
    except (Unavailable, FailedPrecondition) as exc:
        _skip(skipped, f"x: {exc}")
    return tags


def _skip(skipped: list[str] | None, why: str) -> None:
    log.warning("trending source left out: %s", why)
    if skipped is not None:
        skipped.append(why)

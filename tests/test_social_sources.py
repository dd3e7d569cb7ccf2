"""Instagram, Mastodon and X sources against local servers that speak each API's shape:
paging, carousels, empty pages, 401/404, 429 with Retry-After and reset headers, 5xx,
hanging responses and malformed JSON; the Instagram hashtag budget; trending tags."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import pytest

from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from socialgan.jobs import FAILED, JobRunner
from socialgan.scraping import Downloader, DownloadPolicy, parse_source_spec, run_scrape
from socialgan.scraping.download import parse_rate_limit_reset
from socialgan.scraping.instagram import HASHTAG_BUDGET, HashtagBudget, InstagramHashtagSource
from socialgan.scraping.mastodon import MastodonHashtagSource, next_max_id, trending_tags
from socialgan.scraping.x import XFollowerBannersSource, banner_url
from socialgan.storage import keys
from socialgan.v1 import scraper_pb2
from tests.local_api_servers import GRAPH_VERSION, TOKEN, FakeSocialApis, Fault

IG_USER = "17841400000000001"


def fast(delays: list[float] | None = None, **kw) -> Downloader:
    policy = DownloadPolicy(allow_private=True, backoff_base=0.01, backoff_max=0.02,
                            connect_timeout=1, read_timeout=kw.pop("read_timeout", 1.0), **kw)
    return Downloader(policy, sleep=delays.append if delays is not None else None)


def instagram(server, delays=None, **kw) -> InstagramHashtagSource:
    return InstagramHashtagSource(IG_USER, token=kw.pop("token", TOKEN),
                                  base_url=f"{server.base}/{GRAPH_VERSION}",
                                  downloader=fast(), api_downloader=fast(delays), **kw)


def mastodon(server, delays=None) -> MastodonHashtagSource:
    return MastodonHashtagSource(server.base, downloader=fast(), api_downloader=fast(delays))


def x_banners(server, delays=None, **kw) -> XFollowerBannersSource:
    return XFollowerBannersSource(token=kw.pop("token", TOKEN), base_url=server.base,
                                  downloader=fast(), api_downloader=fast(delays), **kw)


def sidecars(store, hashtag):
    return [store.get_json(k) for k in store.list(keys.raw_prefix(hashtag))
            if k.endswith(".json")]


# --- Instagram ------------------------------------------------------------------------------

def test_instagram_pages_through_hashtag_media_with_carousels_and_metadata(store):
    with FakeSocialApis(instagram_posts=12, page_size=5) as api:
        result = run_scrape(store, instagram(api), "#Sunset")
        pages = api.hits[f"/{GRAPH_VERSION}/17841562426109234/top_media"]
        assert set(api.authorizations) == {f"Bearer {TOKEN}"}

    # 12 posts: 2 carousels (2 images + a video each), 1 video, 9 images -> 13 images.
    assert (result.counts.found, result.counts.new, result.counts.failed) == (13, 13, 0)
    assert pages == 3  # 5 + 5 + 2 posts, cursor paging
    cars = sidecars(store, "sunset")
    carousel = [s for s in cars if s["extra"].get("carousel_index") is not None]
    assert len(carousel) == 4 and {s["extra"]["parent_id"] for s in carousel} == {
        "179000000004", "179000000009"}
    one = next(s for s in cars if s["post_id"] == "179000000001")
    assert one["permalink"] == "https://www.instagram.com/p/P1/"
    assert one["caption"] == "post 1 #sunset #Sky" and one["hashtags"] == ["sunset", "sky"]
    assert (one["likes"], one["timestamp"]) == (1, "2026-11-20T10:00:00+0000")
    assert one["source"] == "instagram" and "permalink" in one["licence"]


def test_instagram_recent_media_and_cached_hashtag_id(store):
    with FakeSocialApis(instagram_posts=3) as api:
        run_scrape(store, instagram(api, edge="recent"), "sunset")
        run_scrape(store, instagram(api, edge="top"), "sunset")
        assert api.hits[f"/{GRAPH_VERSION}/ig_hashtag_search"] == 1  # the id is cached
        assert api.hits[f"/{GRAPH_VERSION}/17841562426109234/recent_media"] == 1
    used, left, _ = HashtagBudget(store, IG_USER).status()
    assert (used, left) == (1, HASHTAG_BUDGET - 1)


def test_instagram_budget_of_30_hashtags_is_refused_before_the_search(store):
    now = [1_800_000_000.0]
    budget = HashtagBudget(store, IG_USER, now=lambda: now[0])
    for i in range(HASHTAG_BUDGET):
        budget.record(f"tag{i}", str(i))
        now[0] += 60
    with FakeSocialApis(instagram_posts=3) as api:
        source = instagram(api)
        with pytest.raises(FailedPrecondition, match="30 unique hashtags per 7 days") as err:
            source.preflight(store, "sunset")
        assert "next slot frees" in str(err.value)
        assert api.hits[f"/{GRAPH_VERSION}/ig_hashtag_search"] == 0
    budget.check("tag5")  # searched within the window: no new slot needed
    now[0] += 7 * 24 * 3600  # the window rolls on
    budget.check("sunset")
    assert budget.status()[0] < HASHTAG_BUDGET


def test_instagram_budget_use_is_reported_in_the_job_message(store):
    with FakeSocialApis(instagram_posts=2) as api:
        source = instagram(api)
        note = source.prepare(store, "sunset")
    assert note == f"instagram hashtag budget: 1 of {HASHTAG_BUDGET} used in 7 days"


def test_instagram_bad_token_is_failed_precondition_without_the_token(store, caplog):
    caplog.set_level(logging.DEBUG)
    runner = JobRunner()
    with FakeSocialApis(instagram_posts=2) as api:
        source = instagram(api, token="wrong-secret-token")
        with pytest.raises(FailedPrecondition) as err:
            run_scrape(store, source, "sunset")
        job = runner.start("scrape", "scrape-token", lambda job: run_scrape(
            store, instagram(api, token="wrong-secret-token"), "sunset", job=job).summary())
        final = list(job.watch())[-1]
    runner.shutdown()
    message = str(err.value)
    assert "401" in message and "INSTAGRAM_ACCESS_TOKEN" in message
    assert final.state == FAILED and "INSTAGRAM_ACCESS_TOKEN" in final.message
    for text in (message, final.message, caplog.text, repr(source.api),
                 json.dumps(store.get_json(keys.scrape_manifest_key("scrape-token")))):
        assert "wrong-secret-token" not in text


def test_instagram_rate_limit_error_codes_are_retried_then_reported(store):
    limited = json.dumps({"error": {"message": "Application request limit reached",
                                    "code": 4}}).encode()
    with FakeSocialApis(instagram_posts=2) as api:
        api.fail(f"/{GRAPH_VERSION}/17841562426109234", [Fault(400, body=limited)] * 2)
        assert run_scrape(store, instagram(api), "sunset").counts.new == 2
        api.fail(f"/{GRAPH_VERSION}/ig_hashtag_search", [Fault(403, body=limited)] * 10)
        with pytest.raises(Unavailable, match="rate limited"):
            instagram(api).prepare(store, "cats")


def test_instagram_unknown_hashtag_and_bad_user(store, monkeypatch):
    with FakeSocialApis() as api:
        with pytest.raises(NotFound, match="#nosuchtag"):
            instagram(api).prepare(store, "nosuchtag")
    monkeypatch.delenv("INSTAGRAM_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("INSTAGRAM_USER_ID", IG_USER)
    with pytest.raises(FailedPrecondition, match="INSTAGRAM_ACCESS_TOKEN"):
        parse_source_spec("instagram:recent")
    with pytest.raises(InvalidArgument, match="edge"):
        parse_source_spec("instagram:sideways")


# --- Mastodon -------------------------------------------------------------------------------

def test_mastodon_follows_link_header_pages_and_keeps_images_only(store):
    with FakeSocialApis(mastodon_statuses=11, page_size=4) as api:
        result = run_scrape(store, mastodon(api), "sunset")
        assert api.hits["/api/v1/timelines/tag/sunset"] == 4  # 4 + 4 + 3, then an empty page
    assert (result.counts.found, result.counts.new) == (11, 11)  # gifv attachments skipped
    status = next(s for s in sidecars(store, "sunset") if s["post_id"] == "7/m7")
    assert status["author"] == "@artist1@m.example"
    assert status["caption"] == "pic 7 & more #sunset"
    assert status["permalink"] == "https://m.example/@artist1/7"
    assert status["extra"]["alt_text"] == "alt 7" and status["likes"] == 7
    assert "@artist1@m.example" in status["licence"]


def test_mastodon_429_waits_for_the_iso_reset_header(store):
    delays: list[float] = []
    reset = datetime.fromtimestamp(time.time() + 30, timezone.utc).isoformat()
    with FakeSocialApis(mastodon_statuses=3) as api:
        api.fail("/api/v1/timelines/tag/", [Fault(429, {"X-RateLimit-Reset": reset})])
        result = run_scrape(store, mastodon(api, delays), "sunset")
    assert result.counts.new == 3
    assert len(delays) == 1 and 25 < delays[0] <= 30


def test_mastodon_5xx_hangs_and_malformed_json(store):
    with FakeSocialApis(mastodon_statuses=3) as api:
        api.fail("/api/v1/timelines/tag/", [Fault(502), Fault(hang=1.5)])
        assert run_scrape(store, mastodon(api), "sunset").counts.new == 3  # retried
        api.fail("/api/v1/timelines/tag/", [Fault(malformed=True)])
        with pytest.raises(Unavailable, match="malformed JSON"):
            list(mastodon(api).items("sunset"))
        api.fail("/api/v1/timelines/tag/", [Fault(503)] * 10)
        with pytest.raises(Unavailable, match="503 after retries"):
            list(mastodon(api).items("sunset"))


def test_mastodon_empty_timeline_fails_the_scrape_clearly(store):
    with FakeSocialApis(mastodon_statuses=0) as api:
        with pytest.raises(FailedPrecondition, match="no usable images.*0 candidates"):
            run_scrape(store, mastodon(api), "sunset")


def test_trending_tags_most_used_first(monkeypatch):
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with FakeSocialApis() as api:
        tags = trending_tags(api.base, 5)
        api.fail("/api/v1/trends/tags", [Fault(404, body=b'{"error": "Record not found"}')])
        with pytest.raises(NotFound, match="Record not found"):
            trending_tags(api.base)
    assert [(t.name, t.uses_today, t.uses_week, t.accounts_week) for t in tags] == [
        ("caturday", 120, 420, 230), ("sunset", 40, 60, 42)]
    with pytest.raises(InvalidArgument, match="limit"):
        trending_tags("mastodon.social", 50)


def test_link_header_parsing():
    link = ('<https://m.example/api/v1/timelines/tag/a?max_id=105>; rel="next", '
            '<https://m.example/api/v1/timelines/tag/a?min_id=110>; rel="prev"')
    assert next_max_id(link) == "105"
    assert next_max_id('<https://m.example/x?min_id=1>; rel="prev"') is None
    assert next_max_id(None) is None


# --- X --------------------------------------------------------------------------------------

def test_x_follower_banners_by_username_with_pagination(store):
    with FakeSocialApis(x_followers=9, page_size=4) as api:
        result = run_scrape(store, x_banners(api, username="@artist"), "banners")
        assert api.hits["/2/users/2244994945/followers"] == 3
    # followers 3 and 7 have no banner
    assert (result.counts.found, result.counts.new) == (7, 7)
    banner = next(s for s in sidecars(store, "banners") if s["post_id"] == "5001")
    assert banner["location"].endswith("/1700000000/1500x500")
    assert banner["author"] == "@fan1" and banner["permalink"] == "https://x.com/fan1"
    assert banner["extra"]["follower_of"] == "2244994945"


def test_x_429_waits_for_x_rate_limit_reset(store):
    delays: list[float] = []
    with FakeSocialApis(x_followers=2) as api:
        reset = str(int(time.time()) + 60)
        api.fail("/2/users/2244994945/followers", [Fault(429, {"x-rate-limit-reset": reset})])
        assert run_scrape(store, x_banners(api, delays, user_id="2244994945"), "b").counts.new
    assert len(delays) == 1 and 55 <= delays[0] <= 60


def test_x_errors_name_the_problem(store):
    with FakeSocialApis(x_followers=2) as api:
        with pytest.raises(NotFound, match="@nobody"):
            list(x_banners(api, username="nobody").items("b"))
        with pytest.raises(NotFound, match="404"):
            list(x_banners(api, user_id="42").items("b"))
        with pytest.raises(FailedPrecondition, match="X_BEARER_TOKEN"):
            list(x_banners(api, token="bad", user_id="2244994945").items("b"))
    with pytest.raises(InvalidArgument, match="username"):
        parse_source_spec("x:not a name!")
    assert banner_url("https://pbs.twimg.com/profile_banners/1/2") == \
        "https://pbs.twimg.com/profile_banners/1/2/1500x500"
    assert banner_url("https://pbs.twimg.com/profile_banners/1/2/600x200").endswith("600x200")


# --- specs, headers -------------------------------------------------------------------------

def test_social_spec_strings_and_messages(monkeypatch):
    monkeypatch.setenv("INSTAGRAM_ACCESS_TOKEN", "t")
    monkeypatch.setenv("INSTAGRAM_USER_ID", IG_USER)
    monkeypatch.setenv("X_BEARER_TOKEN", "t")
    assert parse_source_spec("instagram:recent").edge == "recent_media"
    assert parse_source_spec("instagram:").edge == "top_media"
    assert parse_source_spec("mastodon:mastodon.social").instance == "https://mastodon.social"
    assert parse_source_spec("x:@artist").username == "artist"
    assert parse_source_spec("x:2244994945").user_id == "2244994945"
    msg = scraper_pb2.SourceSpec(instagram=scraper_pb2.InstagramHashtagSource(
        user_id="123", edge="recent_media"))
    assert parse_source_spec(msg).user_id == "123"
    msg = scraper_pb2.SourceSpec(mastodon=scraper_pb2.MastodonHashtagSource(
        instance_url="https://fosstodon.org"))
    assert parse_source_spec(msg).describe() == "mastodon:https://fosstodon.org"
    msg = scraper_pb2.SourceSpec(x_follower_banners=scraper_pb2.XFollowerBannersSource(
        username="artist"))
    assert isinstance(parse_source_spec(msg), XFollowerBannersSource)
    monkeypatch.delenv("X_BEARER_TOKEN")
    with pytest.raises(FailedPrecondition, match="X_BEARER_TOKEN"):
        parse_source_spec("x:@artist")


def test_rate_limit_reset_header_forms():
    now = 1_800_000_000.0
    assert parse_rate_limit_reset(str(int(now) + 90), now=now) == 90
    assert parse_rate_limit_reset("2027-01-15T08:00:30.000Z",
                                  now=datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc)
                                  .timestamp()) == 30
    assert parse_rate_limit_reset("12", now=now) == 12
    assert parse_rate_limit_reset("whenever") is None and parse_rate_limit_reset(None) is None

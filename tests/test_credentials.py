"""Tokens go only where they belong: a credential is sent to the host configured for it,
over https (http only to loopback when private networks are allowed), never to another
instance, never along a redirect, never with the media the APIs point at, and it appears in
no log, message or manifest. A second server on 127.0.0.1 plays every other host."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from services.scraper.server import register
from socialgan.credentials import Credential
from socialgan.errors import FailedPrecondition, NotFound
from socialgan.jobs import FAILED, JobRunner
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.scraping import Downloader, DownloadPolicy, run_scrape
from socialgan.scraping.instagram import InstagramHashtagSource
from socialgan.scraping.mastodon import MastodonHashtagSource, trending_tags
from socialgan.scraping.x import XFollowerBannersSource
from socialgan.storage import keys
from socialgan.v1 import scraper_pb2, scraper_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_api_servers import (
    GRAPH_VERSION,
    TOKEN,
    FakeSocialApis,
    Fault,
    _Base,
    synthetic_png,
)

MASTODON_SECRET = "mastodon-secret-0451"
IG_USER = "17841400000000001"


class OtherHost(_Base):
    """Any host a token must not reach: records every request's Authorization header and
    answers like a small Mastodon instance and a CDN (trends, /media/N.png, banners)."""

    def __init__(self):
        super().__init__()
        self.requests: list[tuple[str, str]] = []

    def answer(self, h, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((path, h.headers.get("Authorization", "")))
        if path == "/api/v1/trends/tags":
            return h.send(200, json.dumps([{"name": "elsewhere", "history": []}]).encode())
        if path.startswith("/api/v1/timelines/"):
            return h.send(200, b"[]")
        if path.startswith("/media/"):
            return h.send(200, synthetic_png(int(path[7:].removesuffix(".png"))), "image/png")
        if path.startswith("/banners/"):
            return h.send(200, synthetic_png(int(path.split("/")[2]), size=48), "image/png")
        h.send(404, b'{"error": "not here"}')

    def authorizations(self) -> list[str]:
        return [auth for _, auth in self.requests if auth]


def fast(**kw) -> Downloader:
    return Downloader(DownloadPolicy(allow_private=True, backoff_base=0.01, backoff_max=0.02,
                                     connect_timeout=1, read_timeout=1), **kw)


def any_name_is_loopback(host: str, port: int) -> list[str]:
    """A resolver for names that do not look like loopback but reach the local servers."""
    return ["127.0.0.1"]


@pytest.fixture
def mastodon_token(monkeypatch):
    """MASTODON_ACCESS_TOKEN set; each test says which instance it belongs to."""
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", MASTODON_SECRET)
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    return lambda url: monkeypatch.setenv("MASTODON_INSTANCE_URL", url)


@pytest.fixture
def scraper(store):
    runner = JobRunner()
    running = start_server("scraper", lambda s: register(s, store, runner), port=0,
                           token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    yield scraper_pb2_grpc.ScraperServiceStub(channel)
    channel.close()
    running.stop(grace=0)
    runner.shutdown()


# --- the policy ---------------------------------------------------------------------------

def test_a_credential_is_bound_to_its_exact_origin_over_https():
    graph = Credential.bound("INSTAGRAM_ACCESS_TOKEN", "s3cret",
                             ["https://graph.facebook.com/v24.0"], url_var="INSTAGRAM_GRAPH_URL")
    allowed = ["https://graph.facebook.com/v24.0/ig_hashtag_search?q=a",
               "https://GRAPH.facebook.com:443/other/path"]
    refused = ["http://graph.facebook.com/v24.0/x",           # downgraded to http
               "https://graph.facebook.com.evil.example/v24.0",  # a look-alike host
               "https://evil.example/graph.facebook.com/v24.0",
               "https://graph.facebook.com@evil.example/",       # user-info trick
               "https://user:pw@graph.facebook.com/",
               "https://graph.facebook.com:8443/",               # another port
               "https://sub.graph.facebook.com/", "ftp://graph.facebook.com/", "not a url"]
    for url in allowed:
        assert graph.headers_for(url) == {"Authorization": "Bearer s3cret"}, url
    for url in refused:
        assert graph.headers_for(url) == {} and graph.refusal(url), url
    assert "INSTAGRAM_GRAPH_URL" in graph.refusal("https://evil.example/")
    assert "s3cret" not in repr(graph) and "s3cret" not in graph.refusal("https://e.example/")

    local = Credential.bound("X_BEARER_TOKEN", "t", ["http://127.0.0.1:8080"])
    assert local.headers_for("http://127.0.0.1:8080/2/x") == {}  # private networks not allowed
    assert local.permits("http://127.0.0.1:8080/2/x", loopback_http=True)
    named = Credential.bound("X_BEARER_TOKEN", "t", ["http://api.x.test:8080"])
    assert not named.permits("http://api.x.test:8080/2/x", loopback_http=True)
    nowhere = Credential.bound("MASTODON_ACCESS_TOKEN", "t", [], url_var="MASTODON_INSTANCE_URL")
    assert not nowhere.permits("https://mastodon.social/api/v1/trends/tags")
    assert "MASTODON_INSTANCE_URL" in nowhere.refusal("https://mastodon.social/")
    with pytest.raises(FailedPrecondition, match="X_API_URL"):
        Credential.bound("X_BEARER_TOKEN", "t", ["https://"], url_var="X_API_URL")


# --- Mastodon: the token belongs to one instance ------------------------------------------

def test_trending_tags_of_another_instance_never_get_the_token_over_grpc(scraper,
                                                                          mastodon_token):
    with FakeSocialApis() as home, OtherHost() as other:
        mastodon_token(home.base)
        answer = scraper.ListTrendingTags(
            scraper_pb2.ListTrendingTagsRequest(instance_url=other.base, limit=5), timeout=10)
        assert [t.name for t in answer.tags] == ["elsewhere"]
        assert other.requests and other.authorizations() == []
        # The instance the token belongs to still gets it.
        scraper.ListTrendingTags(
            scraper_pb2.ListTrendingTagsRequest(instance_url=home.base, limit=5), timeout=10)
        assert home.authorizations == [f"Bearer {MASTODON_SECRET}"]


def test_without_a_configured_instance_the_mastodon_token_goes_nowhere(mastodon_token,
                                                                      monkeypatch, store):
    monkeypatch.delenv("MASTODON_INSTANCE_URL", raising=False)
    with OtherHost() as other:
        assert [t.name for t in trending_tags(other.base)] == ["elsewhere"]
        with pytest.raises(FailedPrecondition, match="no usable images"):
            run_scrape(store, MastodonHashtagSource(other.base, downloader=fast()), "sunset")
    assert other.requests and other.authorizations() == []
    with FakeSocialApis() as instance:  # an instance that wants a token says what to set
        instance.fail("/api/v1/trends/tags", [Fault(401)] * 2)
        with pytest.raises(FailedPrecondition, match="not sent.*until MASTODON_INSTANCE_URL"):
            trending_tags(instance.base)
        monkeypatch.delenv("MASTODON_ACCESS_TOKEN")
        with pytest.raises(FailedPrecondition, match="set MASTODON_ACCESS_TOKEN .and MASTODON_I"):
            trending_tags(instance.base)


def test_plain_http_to_a_name_that_is_not_loopback_never_carries_a_token(mastodon_token):
    with OtherHost() as other:
        # Names that reach 127.0.0.1 through the resolver, but do not say loopback.
        mastodon = f"http://mastodon.test:{other.port}"
        mastodon_token(mastodon)
        trending_tags(mastodon, api_downloader=fast(resolve=any_name_is_loopback))

        x = XFollowerBannersSource(user_id="1", token=TOKEN,
                                   base_url=f"http://api.x.test:{other.port}",
                                   api_downloader=fast(resolve=any_name_is_loopback))
        with pytest.raises(FailedPrecondition, match="X_API_URL.*not https"):
            x.validate()
        with pytest.raises(NotFound):
            list(x.items("banners"))  # even when asked directly, the call goes bare

        graph = InstagramHashtagSource(IG_USER, token=TOKEN,
                                       base_url=f"http://graph.test:{other.port}/v24.0",
                                       api_downloader=fast(resolve=any_name_is_loopback))
        with pytest.raises(FailedPrecondition, match="INSTAGRAM_GRAPH_URL.*not https"):
            graph.validate()
        with pytest.raises(NotFound):
            graph._search("sunset")
    assert len(other.requests) == 3 and other.authorizations() == []


# --- redirects ------------------------------------------------------------------------------

def test_a_redirect_from_the_configured_host_to_another_server_is_refused(mastodon_token):
    with FakeSocialApis() as home, OtherHost() as other:
        mastodon_token(home.base)
        away = {"Location": f"{other.base}/api/v1/trends/tags"}
        home.fail("/api/v1/trends/tags", [Fault(302, away)])
        with pytest.raises(FailedPrecondition, match="redirected away") as mastodon_err:
            trending_tags(home.base, api_downloader=fast())

        home.fail("/2/users/by/username/artist",
                  [Fault(307, {"Location": f"{other.base}/2/users/by/username/artist"})])
        x = XFollowerBannersSource(username="artist", token=TOKEN, base_url=home.base,
                                   api_downloader=fast())
        with pytest.raises(FailedPrecondition, match="redirected away.*X_BEARER_TOKEN"):
            list(x.items("banners"))
        assert home.hits["/api/v1/trends/tags"] == home.hits["/2/users/by/username/artist"] == 1
    assert len(other.requests) == 2 and other.authorizations() == []
    assert MASTODON_SECRET not in str(mastodon_err.value)


# --- media ----------------------------------------------------------------------------------

def test_media_urls_the_apis_return_are_fetched_without_the_token(store, mastodon_token):
    with FakeSocialApis(instagram_posts=3, mastodon_statuses=3, x_followers=3) as api, \
            OtherHost() as cdn:
        mastodon_token(api.base)
        sources = [
            MastodonHashtagSource(api.base, downloader=fast(), api_downloader=fast()),
            InstagramHashtagSource(IG_USER, token=TOKEN, base_url=f"{api.base}/{GRAPH_VERSION}",
                                   downloader=fast(), api_downloader=fast()),
            XFollowerBannersSource(user_id="2244994945", token=TOKEN, base_url=api.base,
                                   downloader=fast(), api_downloader=fast())]
        api.base = cdn.base  # every media URL the fake APIs hand out now names the CDN
        for hashtag, source in zip(("sunset", "sunset", "banners"), sources, strict=True):
            assert run_scrape(store, source, hashtag).counts.new > 0
    media = [path for path, _ in cdn.requests]
    assert any(p.startswith("/media/") for p in media) and any(p.startswith("/banners/")
                                                               for p in media)
    assert cdn.authorizations() == []
    assert set(api.authorizations) == {f"Bearer {MASTODON_SECRET}", f"Bearer {TOKEN}"}


# --- no trace -------------------------------------------------------------------------------

def test_tokens_appear_in_no_log_message_or_manifest(store, mastodon_token, caplog):
    caplog.set_level(logging.DEBUG)
    runner = JobRunner()
    with FakeSocialApis(mastodon_statuses=3) as home, OtherHost() as other:
        mastodon_token(home.base)
        done = runner.start("scrape", "scrape-ok", lambda job: run_scrape(
            store, MastodonHashtagSource(home.base, downloader=fast(), api_downloader=fast()),
            "sunset", job=job).summary())
        assert list(done.watch())[-1].state != FAILED
        home.fail("/api/v1/timelines/tag/", [Fault(302, {"Location": other.base + "/x"})])
        failed = runner.start("scrape", "scrape-moved", lambda job: run_scrape(
            store, MastodonHashtagSource(home.base, downloader=fast(), api_downloader=fast()),
            "cats", job=job).summary())
        final = list(failed.watch())[-1]
        # An API that echoes the token in its error must not make us repeat it.
        home.fail("/api/v1/trends/tags", [Fault(401, body=json.dumps(
            {"error": f"bad token {MASTODON_SECRET}"}).encode())])
        with pytest.raises(FailedPrecondition, match="check MASTODON_ACCESS_TOKEN") as echoed:
            trending_tags(home.base, api_downloader=fast())
    runner.shutdown()
    assert final.state == FAILED and "redirected away" in final.message
    source = MastodonHashtagSource(home.base)
    texts = [caplog.text, final.message, str(echoed.value), repr(source.api),
             repr(source.api.credential), source.describe(),
             json.dumps(store.get_json(keys.scrape_manifest_key("scrape-ok")))]
    for text in texts:
        assert MASTODON_SECRET not in text


def test_the_grpc_error_for_a_redirected_api_names_the_rule(scraper, mastodon_token):
    with FakeSocialApis() as home, OtherHost() as other:
        mastodon_token(home.base)
        home.fail("/api/v1/trends/tags", [Fault(301, {"Location": other.base + "/t"})])
        with pytest.raises(grpc.RpcError) as err:
            scraper.ListTrendingTags(
                scraper_pb2.ListTrendingTagsRequest(instance_url=home.base), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "MASTODON_ACCESS_TOKEN is sent only to" in err.value.details()
    assert MASTODON_SECRET not in err.value.details()

"""Publishing to X against a local X API in the documented v2 shape: both modes, async media,
X's weighted length, the look-up before a resend (X has no idempotency key), rate-limit
resets, 5xx, auth, the dry run's cost estimate, the token's host, the profile banner that X
refuses (and the file kept), refresh, a fault sweep over every request, and gRPC."""

from __future__ import annotations

import time

import pytest

from services.publisher.server import register
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable
from socialgan.publishing import DRAFT, FAILED, PUBLISHED, CaptionInputs, get_post, publish
from socialgan.publishing.post import load_post
from socialgan.publishing.targets import PublishOptions
from socialgan.publishing.x import XTarget, posted_text
from socialgan.publishing.x_text import weighted_length
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_x import TOKEN, USER_ID, USERNAME, FakeX
from tests.publish_api_base import fault_sweep
from tests.publish_fixtures import image_size, publish_env, stored_grid

INPUTS = CaptionInputs(hashtag="#Sunset", method="DCGAN (PyTorch tutorial), 64x64",
                       metrics={"swd": 12.3, "diversity": 0.87, "loss_d": 0.5},
                       model_id="run-1", seed=7)
TILES = PublishOptions(mode="tiles")
BANNER = PublishOptions(mode="banner")


@pytest.fixture
def x_api(monkeypatch):
    publish_env(monkeypatch)
    with FakeX() as api:
        point_at(monkeypatch, api)
        yield api


def point_at(monkeypatch, api: FakeX, token: str = TOKEN) -> None:
    monkeypatch.setenv("X_PUBLISH_ACCESS_TOKEN", token)
    monkeypatch.setenv("X_PUBLISH_API_URL", api.base)
    monkeypatch.setenv("X_PRICE_PER_POST_USD", "0.015")


def paths(api: FakeX) -> list[str]:
    return [f"{method} {path}" for _, method, path in api.log]


# --- the modes ------------------------------------------------------------------------------

def test_single_posts_the_grid_with_alt_text_and_an_https_url(store, x_api):
    post = publish(store, "x", stored_grid(store), INPUTS)

    assert post.state == PUBLISHED and len(post.items) == 1
    tweet = x_api.tweets[0]
    assert post.platform_ids == [tweet["id"]] == [post.progress["tweet_id"]]
    assert post.url == post.urls[0] == f"https://x.com/{USERNAME}/status/{tweet['id']}"
    assert tweet["text"] == post.caption and "#sunset" in post.caption
    assert "loss" not in post.caption and "SWD 12.3" in post.caption
    assert tweet["alt"] == [post.items[0].alt_text] and "#sunset" in tweet["alt"][0]
    assert post.items[0].platform_id == tweet["media_ids"][0]
    assert post.items[0].step == "posted" and post.items[0].url.endswith("/photo/1")
    assert paths(x_api) == ["GET /2/users/me", "POST /2/media/upload",
                            "POST /2/media/metadata", "POST /2/tweets"]
    assert set(x_api.auth_seen) == {f"Bearer {TOKEN}"}


def test_tiles_waits_for_processing_and_posts_four_of_nine(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeX(processing_polls=2) as api:
        point_at(monkeypatch, api)
        post = publish(store, "x", stored_grid(store), INPUTS, options=TILES)
    assert post.state == PUBLISHED and len(post.items) == 4
    assert len(api.tweets) == 1 and len(api.tweets[0]["media_ids"]) == 4
    assert post.caption.endswith("Tiles 1-4 of 9.")
    assert "media <= 4 a post: 4 of 9 tiles" in post.checks
    statuses = [p for p in paths(api) if p == "GET /2/media/upload"]
    assert len(statuses) == 4 * 3  # in_progress, in_progress, succeeded per picture
    assert all(i.extra["processing"] == "succeeded" for i in post.items)


def test_unknown_mode_and_visibility_are_refused(store, x_api):
    grid_key = stored_grid(store)
    with pytest.raises(InvalidArgument, match="mode"):
        publish(store, "x", grid_key, INPUTS, options=PublishOptions(mode="carousel"))
    with pytest.raises(InvalidArgument, match="visibility"):
        publish(store, "x", grid_key, INPUTS, options=PublishOptions(visibility="public"))
    assert x_api.requests == 0


# --- weighted length ------------------------------------------------------------------------

@pytest.mark.parametrize("text, weight", [
    ("abc", 3), ("Café ·", 6), ("日本語", 6), ("한국", 4), ("👍", 2), ("👍🏽", 2),
    ("👨\u200d👩\u200d👧", 2), ("🇫🇷", 2), ("1\ufe0f\u20e3", 2), ("…", 2),
    ("e\u0301", 1),  # NFC makes it one é
    ("see https://example.com/a/very/long/path/indeed ok", 4 + 23 + 3),
])
def test_weighted_length_follows_x_rule(text, weight):
    assert weighted_length(text) == weight


def test_caption_is_fitted_to_280_weighted_not_280_characters(store, x_api):
    cjk = CaptionInputs(hashtag="art", method="生成敵対的ネットワーク " * 12, model_id="run-1",
                        seed=7, metrics={"swd": 1.0})
    post = publish(store, "x", stored_grid(store), cjk)
    assert post.state == PUBLISHED
    assert weighted_length(post.caption) <= 280 < 2 * len(post.caption)
    assert post.caption.startswith("#art") and "…" in post.caption  # the method was shortened
    assert any("weighted characters" in c for c in post.checks)


def test_posted_text_undoes_what_x_does_to_a_text():
    assert posted_text("a &amp; b &lt;3 https://t.co/AbC123") == "a & b <3"
    assert posted_text("plain") == "plain"


# --- no idempotency key: look before sending again ------------------------------------------

def test_a_lost_answer_is_looked_up_before_sending_again(store, x_api):
    grid_key = stored_grid(store)
    x_api.inject(3, "lost")  # POST /2/tweets: made, but the answer never comes
    with pytest.raises(Unavailable, match="may have been made"):
        publish(store, "x", grid_key, INPUTS, idempotency_key="k-lost")
    failed = load_post(store, load_post_id(store))
    assert failed.state == FAILED and failed.progress["tweet_pending"]
    assert len(x_api.tweets) == 1

    before = x_api.requests
    post = publish(store, "x", grid_key, INPUTS, idempotency_key="k-lost")
    assert post.state == PUBLISHED and post.progress["found_by_lookup"] is True
    assert len(x_api.tweets) == 1 and post.platform_ids == [x_api.tweets[0]["id"]]
    # users/me is cached in the post: one timeline read, nothing sent again
    assert paths(x_api)[before:] == [f"GET /2/users/{USER_ID}/tweets"]


def test_a_post_the_timeline_did_not_show_yet_is_found_through_the_duplicate_refusal(
        store, x_api):
    grid_key = stored_grid(store)
    x_api.inject(3, "lost")
    with pytest.raises(Unavailable):
        publish(store, "x", grid_key, INPUTS, idempotency_key="k-lag")
    x_api.timeline_lag_reads = 1  # the first look does not see the post made a moment ago
    post = publish(store, "x", grid_key, INPUTS, idempotency_key="k-lag")
    assert post.state == PUBLISHED and len(x_api.tweets) == 1
    assert post.platform_ids == [x_api.tweets[0]["id"]]
    assert paths(x_api)[-3:] == [f"GET /2/users/{USER_ID}/tweets", "POST /2/tweets",
                                 f"GET /2/users/{USER_ID}/tweets"]


def test_the_same_caption_with_other_pictures_is_refused_as_a_duplicate(store, x_api):
    publish(store, "x", stored_grid(store, seed=1), INPUTS, idempotency_key="k-a")
    with pytest.raises(FailedPrecondition, match="duplicate"):
        publish(store, "x", stored_grid(store, seed=2), INPUTS, idempotency_key="k-b")
    assert len(x_api.tweets) == 1


def load_post_id(store) -> str:
    (key,) = [k for k in store.list("posts/") if k.endswith("/post.json")]
    return key.split("/")[1]


def test_a_5xx_after_sending_looks_first_then_sends_once(store, x_api):
    grid_key = stored_grid(store)
    x_api.inject(1, "503")  # an upload: retried in the same call
    x_api.inject(4, "503")  # POST /2/tweets (after the retried upload): not made
    with pytest.raises(Unavailable, match="503"):
        publish(store, "x", grid_key, INPUTS, idempotency_key="k-503")
    assert x_api.tweets == []
    post = publish(store, "x", grid_key, INPUTS, idempotency_key="k-503")
    assert post.state == PUBLISHED and "found_by_lookup" not in post.progress
    assert len(x_api.tweets) == 1
    tail = paths(x_api)[-2:]
    assert tail == [f"GET /2/users/{USER_ID}/tweets", "POST /2/tweets"]
    assert paths(x_api).count("POST /2/media/upload") == 2  # the 503 and its retry, no more


def test_same_key_returns_the_same_post_without_a_second_tweet(store, x_api):
    grid_key = stored_grid(store)
    first = publish(store, "x", grid_key, INPUTS, idempotency_key="k-idem")
    before = x_api.requests
    assert publish(store, "x", grid_key, INPUTS, idempotency_key="k-idem") == first
    assert x_api.requests == before and len(x_api.tweets) == 1


# --- limits, errors, credentials ------------------------------------------------------------

def test_429_waits_until_x_rate_limit_reset(store, x_api):
    x_api.rate_limit_next("/2/tweets", reset_in_s=0.2)
    post = publish(store, "x", stored_grid(store), INPUTS)
    assert post.state == PUBLISHED and len(x_api.tweets) == 1
    assert paths(x_api).count("POST /2/tweets") == 2
    assert x_api.tweets[0]["created_unix"] >= x_api.reset_sent["/2/tweets"] - 0.05


def test_auth_failure_names_the_variable_and_never_the_token(store, x_api, monkeypatch):
    monkeypatch.setenv("X_PUBLISH_ACCESS_TOKEN", "wrong-token-abcdefgh")
    with pytest.raises(FailedPrecondition) as err:
        publish(store, "x", stored_grid(store), INPUTS)
    assert "X_PUBLISH_ACCESS_TOKEN" in str(err.value) and "401" in str(err.value)
    assert "wrong-token-abcdefgh" not in str(err.value)
    post = load_post(store, load_post_id(store))
    assert post.state == FAILED and "wrong-token" not in repr(post.to_json())
    assert paths(x_api) == ["GET /2/users/me"]  # nothing uploaded with a bad token


def test_missing_token_refuses_before_anything_is_sent(store, x_api, monkeypatch):
    monkeypatch.delenv("X_PUBLISH_ACCESS_TOKEN")
    with pytest.raises(FailedPrecondition, match="X_PUBLISH_ACCESS_TOKEN"):
        publish(store, "x", stored_grid(store), INPUTS)
    monkeypatch.setenv("X_PUBLISH_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("X_PRICE_PER_POST_USD", "cheap")
    with pytest.raises(FailedPrecondition, match="X_PRICE_PER_POST_USD"):
        publish(store, "x", stored_grid(store), INPUTS)
    assert x_api.requests == 0


def test_no_other_host_sees_the_token(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeX() as elsewhere, FakeX(redirect_to="") as api:
        api.redirect_to = elsewhere.base  # users/me answers a redirect to another port
        point_at(monkeypatch, api)
        with pytest.raises(FailedPrecondition, match="redirect"):
            publish(store, "x", stored_grid(store), INPUTS)
        assert elsewhere.requests == 0 and elsewhere.auth_seen == []
        # a URL the token is not bound to gets no token either
        monkeypatch.setenv("X_PUBLISH_API_URL", "https://api.x.com")
        target = XTarget.from_env()
        assert not target.credential.permits(elsewhere.base, loopback_http=True)
        assert "x-user-token" not in repr(target)


# --- dry run and cost -----------------------------------------------------------------------

def test_dry_run_states_the_cost_and_sends_nothing(store, x_api, monkeypatch):
    grid_key = stored_grid(store)
    draft = publish(store, "x", grid_key, INPUTS, dry_run=True, options=TILES)
    assert draft.state == DRAFT and x_api.requests == 0
    assert draft.progress["estimated_cost_usd"] == pytest.approx(0.015)
    assert any(c.startswith("estimated cost: 1 post x $0.015") for c in draft.checks)
    assert len(draft.items) == 4
    for item in draft.items:
        data = store.get_bytes(item.image_key)
        assert len(data) == item.size_bytes <= 5_000_000
        assert image_size(data) == (item.width, item.height)

    # without an account (no token) a dry run still renders, at another price
    monkeypatch.delenv("X_PUBLISH_ACCESS_TOKEN")
    monkeypatch.setenv("X_PRICE_PER_POST_USD", "0.2")
    other = publish(store, "x", grid_key, INPUTS, dry_run=True)
    assert other.state == DRAFT and other.progress["estimated_cost_usd"] == pytest.approx(0.2)
    assert x_api.requests == 0


# --- the profile banner ---------------------------------------------------------------------

def test_banner_refused_by_x_fails_naming_the_kept_file(store, x_api):
    grid_key = stored_grid(store)
    with pytest.raises(FailedPrecondition) as err:
        publish(store, "x", grid_key, INPUTS, options=BANNER, idempotency_key="k-banner")
    message = str(err.value)
    assert "X refused the profile banner update" in message and "403" in message
    post = load_post(store, load_post_id(store))
    assert post.state == FAILED and post.items[0].image_key in message
    banner = store.get_bytes(post.items[0].image_key)
    assert image_size(banner) == (1500, 500) and post.items[0].content_type == "image/jpeg"
    assert x_api.tweets == [] and post.progress["estimated_cost_usd"] == 0.0
    assert paths(x_api)[-1] == "POST /1.1/account/update_profile_banner.json"


def test_banner_set_where_x_accepts_it(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeX(banner_accepts=True) as api:
        point_at(monkeypatch, api)
        post = publish(store, "x", stored_grid(store), INPUTS, options=BANNER)
    assert post.state == PUBLISHED and post.url == f"https://x.com/{USERNAME}"
    assert api.banners == [(1500, 500)] and api.tweets == []


OAUTH1 = ("app-key-1", "app-secret-abcdefgh", "1-account-token", "account-secret-abcdefgh")
OAUTH1_VARS = ("X_PUBLISH_OAUTH1_CONSUMER_KEY", "X_PUBLISH_OAUTH1_CONSUMER_SECRET",
               "X_PUBLISH_OAUTH1_ACCESS_TOKEN", "X_PUBLISH_OAUTH1_ACCESS_SECRET")


def test_banner_signed_with_oauth1_keys_is_set(store, monkeypatch):
    pytest.importorskip("requests_oauthlib")  # the publish extra
    publish_env(monkeypatch)
    for name, value in zip(OAUTH1_VARS, OAUTH1, strict=True):
        monkeypatch.setenv(name, value)
    with FakeX(oauth1=OAUTH1) as api:
        point_at(monkeypatch, api)
        post = publish(store, "x", stored_grid(store), INPUTS, options=BANNER,
                       idempotency_key="k-signed")
        assert post.state == PUBLISHED and api.banners == [(1500, 500)]
        assert any("signed with the X_PUBLISH_OAUTH1_* keys" in c for c in post.checks)
        signed = [a for a in api.auth_seen if a.startswith("OAuth ")]
        assert len(signed) == 1 and 'oauth_consumer_key="app-key-1"' in signed[0]
        assert not any("secret-abcdefgh" in a for a in api.auth_seen)  # secrets only sign

    monkeypatch.setenv("X_PUBLISH_OAUTH1_ACCESS_SECRET", "wrong-secret-abcdefgh")
    with FakeX(oauth1=OAUTH1) as api:
        point_at(monkeypatch, api)
        with pytest.raises(FailedPrecondition, match="401.*X_PUBLISH_OAUTH1_"):
            publish(store, "x", stored_grid(store), INPUTS, options=BANNER,
                    idempotency_key="k-wrong")
        assert api.banners == []


def test_some_oauth1_keys_without_the_others_name_the_missing(store, x_api, monkeypatch):
    monkeypatch.setenv("X_PUBLISH_OAUTH1_CONSUMER_KEY", "app-key-1")
    with pytest.raises(FailedPrecondition, match="X_PUBLISH_OAUTH1_CONSUMER_SECRET"):
        publish(store, "x", stored_grid(store), INPUTS, options=BANNER)
    assert x_api.requests == 0


def test_banner_dry_run_renders_the_top_row_of_the_grid(store, x_api):
    draft = publish(store, "x", stored_grid(store), INPUTS, options=BANNER, dry_run=True)
    assert draft.state == DRAFT and x_api.requests == 0
    assert (draft.items[0].width, draft.items[0].height) == (1500, 500)
    assert any("banner: jpg 1500x500" in c for c in draft.checks)


# --- refresh --------------------------------------------------------------------------------

def test_refresh_reads_the_post_back_and_notices_a_deletion(store, x_api):
    post = publish(store, "x", stored_grid(store), INPUTS)
    fresh = get_post(store, post.post_id, refresh=True)
    assert fresh.progress["deleted"] is False
    assert fresh.progress["public_metrics"]["like_count"] == 3
    x_api.delete(post.platform_ids[0])
    gone = get_post(store, post.post_id, refresh=True)
    assert gone.progress["deleted"] is True and "deleted" in gone.error


# --- the fault sweep ------------------------------------------------------------------------

@pytest.mark.parametrize("attempts", [4, 1])
def test_the_fault_sweep_posts_everything_exactly_once(tmp_path, monkeypatch, attempts):
    """attempts 1: every fault fails the Publish call; the next one must resume from the
    record, and look the tweet up before sending it again."""
    from socialgan.storage import LocalObjectStore

    publish_env(monkeypatch)
    monkeypatch.setenv("PUBLISH_MAX_ATTEMPTS", str(attempts))
    store = LocalObjectStore(tmp_path / "sweep")
    grid_key = stored_grid(store, count=2, columns=2, size=24)

    def publish_once(server, run):
        point_at(monkeypatch, server)
        return publish(store, "x", grid_key, INPUTS, options=TILES,
                       idempotency_key=f"sweep-{run}")

    started = time.monotonic()
    sweep = fault_sweep("x", lambda: FakeX(processing_polls=1), publish_once,
                        lambda server: server.counts())
    print(sweep.line(), f"(PUBLISH_MAX_ATTEMPTS={attempts}, {time.monotonic() - started:.1f} s)")
    # users/me; per picture: upload (pending), status (in progress), status (done), alt text;
    # the tweet
    assert sweep.steps == 1 + 2 * 4 + 1
    assert (sweep.duplicates, sweep.lost, sweep.unfinished) == (0, 0, 0)


# --- over gRPC ------------------------------------------------------------------------------

def test_publish_and_refresh_over_grpc(store, x_api):
    grid_key = stored_grid(store)
    running = start_server("publisher", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        stub = publisher_pb2_grpc.PublisherServiceStub(channel)
        post = stub.Publish(publisher_pb2.PublishRequest(
            target=publisher_pb2.PUBLISH_TARGET_X, grid_key=grid_key,
            caption=publisher_pb2.CaptionInputs(hashtag="sunset", method="DCGAN",
                                                metrics={"swd": 3.5}, model_id="run-1", seed=7),
            mode=publisher_pb2.PUBLISH_MODE_TILES, idempotency_key="grpc-x"), timeout=20)
        assert post.state == publisher_pb2.POST_STATE_PUBLISHED
        assert post.url.startswith(f"https://x.com/{USERNAME}/status/") and len(post.items) == 4
        assert all(i.platform_id and i.step == "posted" for i in post.items)
        assert any("estimated cost" in c for c in post.checks)
        assert len(x_api.tweets) == 1
        fresh = stub.GetPost(publisher_pb2.GetPostRequest(post_id=post.post_id, refresh=True),
                             timeout=10)
        assert fresh.url == post.url and fresh.state == publisher_pb2.POST_STATE_PUBLISHED
    finally:
        channel.close()
        running.stop(grace=0)

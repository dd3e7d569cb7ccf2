"""What the audience says: the replies under our published posts, read back from local API
servers in each network's documented shape (Mastodon's context, Instagram's comments and
replies with cursor paging, Bluesky's thread, X's recent search), and the trending tags of
each source (Mastodon, Bluesky's unspecced topics, X's trends) as one list."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from socialgan.audience.trends import trending_tags_from_env
from socialgan.audience.types import Reply, TrendingTag
from socialgan.errors import FailedPrecondition
from socialgan.publishing import CaptionInputs, bluesky_session, get_target, publish
from socialgan.publishing.instagram_replies import next_cursor
from socialgan.publishing.mastodon_replies import status_replies
from socialgan.publishing.replies import unix_time
from socialgan.publishing.targets import PublishOptions
from socialgan.publishing.x_replies import conversation_replies
from tests.local_bluesky import FakeBluesky
from tests.local_instagram import TOKEN as IG_TOKEN
from tests.local_instagram import USER_ID as IG_USER_ID
from tests.local_instagram import USERNAME as IG_USERNAME
from tests.local_instagram import FakeInstagram, StaticFiles
from tests.local_mastodon import OWN_ACCOUNT, FakeMastodon
from tests.local_mastodon import TOKEN as MASTODON_TOKEN
from tests.local_x import TOKEN as X_TOKEN
from tests.local_x import USER_ID as X_USER_ID
from tests.local_x import USERNAME as X_USERNAME
from tests.local_x import FakeX
from tests.publish_fixtures import publish_env, stored_grid

INPUTS = CaptionInputs(hashtag="#Emoji", method="DCGAN (PyTorch tutorial), 64x64",
                       metrics={"swd": 12.3}, model_id="run-1", seed=7)
ALICE = {"id": "200001", "acct": "alice@art.example"}
BOB = {"id": "200002", "acct": "bob"}


def by_author(replies: list[Reply]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for reply in replies:
        found.setdefault(reply.author_handle, []).append(reply.text)
    return found


# --- Mastodon ---------------------------------------------------------------------------------

@pytest.fixture
def mastodon(monkeypatch):
    publish_env(monkeypatch)
    with FakeMastodon() as api:
        monkeypatch.setenv("MASTODON_PUBLISH_TOKEN", MASTODON_TOKEN)
        monkeypatch.setenv("MASTODON_PUBLISH_INSTANCE_URL", api.base)
        yield api


def test_mastodon_replies_come_back_as_plain_text_with_our_own_marked(store, mastodon):
    post = publish(store, "mastodon", stored_grid(store), INPUTS)
    status_id = post.platform_ids[0]
    first = mastodon.add_reply(status_id, ALICE, "I vote #Cats & <dogs>")
    mastodon.add_reply(status_id, BOB, "#Sunset\nplease")
    mastodon.add_reply(first, BOB, "no, #Sunset")  # a reply to a reply is in the thread too
    mastodon.add_reply(status_id, ALICE, "changed my mind: #Sunset")
    mastodon.add_reply(status_id, OWN_ACCOUNT, "Reply with a #hashtag to choose the next run")
    target = get_target("mastodon")

    replies = target.read_replies(store, post)

    assert all(isinstance(r, Reply) and r.platform == "mastodon" and r.post_id == status_id
               for r in replies)
    assert [r.text for r in replies] == [
        "I vote #Cats & <dogs>", "no, #Sunset", "#Sunset\nplease", "changed my mind: #Sunset",
        "Reply with a #hashtag to choose the next run"]  # thread order, HTML gone
    assert [r.is_own for r in replies] == [False, False, False, False, True]
    assert [r.author_id for r in replies[:4]] == ["200001", "200002", "200002", "200001"]
    assert replies[0].author_handle == "alice@art.example"
    assert all(abs(r.created_unix - time.time()) < 60 for r in replies)
    assert len({r.reply_id for r in replies}) == 5

    target.read_replies(store, post)  # our account is looked up once per target
    calls = [path for _, _, path in mastodon.log]
    assert calls.count("/api/v1/accounts/verify_credentials") == 1
    assert calls.count(f"/api/v1/statuses/{status_id}/context") == 2


def test_a_post_never_sent_and_the_gallery_have_no_replies(store, mastodon):
    draft = publish(store, "mastodon", stored_grid(store), INPUTS, dry_run=True)
    assert get_target("mastodon").read_replies(store, draft) == []
    shown = publish(store, "gallery", stored_grid(store, seed=8), INPUTS)
    assert get_target("gallery").read_replies(store, shown) == []


# --- Instagram --------------------------------------------------------------------------------

@pytest.fixture
def instagram(monkeypatch, store):
    publish_env(monkeypatch)
    monkeypatch.setenv("INSTAGRAM_IMAGE_WIDTH", "320")
    monkeypatch.setenv("INSTAGRAM_POLL_INTERVAL_S", "0")
    monkeypatch.setenv("INSTAGRAM_POLL_TIMEOUT_S", "5")
    with StaticFiles(store.root) as files, FakeInstagram(polls_in_progress=0) as api:
        monkeypatch.setenv("INSTAGRAM_PUBLISH_TOKEN", IG_TOKEN)
        monkeypatch.setenv("INSTAGRAM_PUBLISH_USER_ID", IG_USER_ID)
        monkeypatch.setenv("INSTAGRAM_PUBLISH_GRAPH_URL", f"{api.base}/v24.0")
        monkeypatch.setenv("PUBLIC_MEDIA_BASE_URL", files.base)
        yield api
    assert all(a == f"Bearer {IG_TOKEN}" for a in api.auth_seen)  # the header, never a URL


def test_instagram_comments_and_replies_are_read_across_pages(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS)
    (media_id,) = post.platform_ids
    instagram.nested_replies = 2  # a comment's inline replies end early: /replies goes on
    for i in range(57):  # past the 50 a page the reader asks for
        instagram.add_comment(media_id, f"fan{i % 20}", f"#tag{i % 3} from fan {i}")
    asked = instagram.add_comment(media_id, "carol", "which tag wins?")
    for i in range(5):
        instagram.add_comment(asked, f"fan{i}", f"reply {i}: #cats")
    instagram.add_comment(asked, IG_USERNAME, "Reply with a #hashtag to vote")

    replies = get_target("instagram").read_replies(store, post)

    assert len(replies) == 57 + 1 + 6
    assert {r.post_id for r in replies} == {media_id} and len({r.reply_id for r in replies}) == 64
    assert by_author(replies)["carol"] == ["which tag wins?"]
    threads = [r.text for r in replies if r.text.startswith("reply ")]
    assert threads == [f"reply {i}: #cats" for i in range(5)]  # all five, over two pages
    assert [r.author_handle for r in replies if r.is_own] == [IG_USERNAME]
    assert all(r.author_id.isdigit() for r in replies)  # the account id, from `from`
    assert all(abs(r.created_unix - time.time()) < 60 for r in replies)
    # Two pages of comments, then the rest of carol's replies: the paging.next URLs (which
    # carry access_token) were never requested; the fake refuses a token in a URL.
    assert instagram.comment_pages == 3
    assert [p for _, _, p in instagram.log if p.endswith("/replies")] == [
        f"/v24.0/{asked}/replies"]


def test_instagram_profile_grid_reads_the_comments_of_every_tile(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS,
                   options=PublishOptions(mode="profile-grid"))
    assert len(post.platform_ids) == 9
    instagram.add_comment(post.platform_ids[0], "dave", "#sunset")
    instagram.add_comment(post.platform_ids[8], "erin", "#cats")
    instagram.add_comment(post.platform_ids[8], "dave", "#cats, actually")

    replies = get_target("instagram").read_replies(store, post)

    assert [(r.author_handle, r.text) for r in replies] == [
        ("dave", "#sunset"), ("erin", "#cats"), ("dave", "#cats, actually")]
    assert replies[0].post_id == post.platform_ids[0]
    assert replies[1].post_id == post.platform_ids[8]
    assert [p for _, _, p in instagram.log].count(f"/v24.0/{IG_USER_ID}") == 1


# --- Bluesky ----------------------------------------------------------------------------------

@pytest.fixture
def pds(monkeypatch):
    publish_env(monkeypatch)
    bluesky_session._memory.clear()
    with FakeBluesky() as server:
        monkeypatch.setenv("BLUESKY_HANDLE", server.handle)
        monkeypatch.setenv("BLUESKY_APP_PASSWORD", server.password)
        monkeypatch.setenv("BLUESKY_PDS_URL", server.base)
        yield server
    bluesky_session._memory.clear()


def test_bluesky_thread_replies_are_read_with_our_own_marked(store, pds):
    post = publish(store, "bluesky", stored_grid(store), INPUTS)
    uri = post.progress["uri"]
    first = pds.add_reply(uri, "alice.bsky.social", "#Cats 🐱")
    pds.add_reply(first, "bob.test", "#Sunset is better")
    gone = pds.add_reply(uri, "mallory.test", "#spam")
    pds.deleted_replies.add(gone)  # the AppView shows a #notFoundPost in its place
    pds.add_reply(uri, pds.handle, "Reply with a #hashtag to choose the next run")

    replies = get_target("bluesky").read_replies(store, post)

    assert [(r.author_handle, r.text, r.is_own) for r in replies] == [
        ("alice.bsky.social", "#Cats 🐱", False),
        (pds.handle, "Reply with a #hashtag to choose the next run", True),
        ("bob.test", "#Sunset is better", False)]  # nearest first
    assert {r.post_id for r in replies} == {uri} and replies[0].reply_id == first
    assert replies[0].author_id.startswith("did:plc:") and replies[1].author_id == pds.did
    assert all(abs(r.created_unix - time.time()) < 60 for r in replies)
    assert pds.sessions_created == 1  # the publish's session, reused for the read


# --- X ----------------------------------------------------------------------------------------

@pytest.fixture
def x_api(monkeypatch):
    publish_env(monkeypatch)
    with FakeX() as api:
        monkeypatch.setenv("X_PUBLISH_ACCESS_TOKEN", X_TOKEN)
        monkeypatch.setenv("X_PUBLISH_API_URL", api.base)
        yield api


def test_x_conversation_replies_are_read_over_pages_without_the_post_itself(store, x_api):
    post = publish(store, "x", stored_grid(store), INPUTS)
    tweet_id = post.platform_ids[0]
    for i in range(130):  # past the 100 a search page holds
        x_api.add_reply(tweet_id, str(5000 + i % 40), f"user{i % 40}", f"#tag{i % 4} & more")
    x_api.add_reply(tweet_id, X_USER_ID, X_USERNAME, "Reply with a #hashtag")

    replies = get_target("x").read_replies(store, post)

    assert len(replies) == 131 and tweet_id not in {r.reply_id for r in replies}
    assert x_api.search_pages == 2
    assert {r.text for r in replies if not r.is_own} == {f"#tag{i} & more" for i in range(4)}
    assert [(r.author_id, r.author_handle) for r in replies if r.is_own] == [
        (X_USER_ID, X_USERNAME)]
    assert {r.author_handle for r in replies} >= {"user0", "user39"}
    assert all(r.post_id == tweet_id and abs(r.created_unix - time.time()) < 60
               for r in replies)


def test_x_replies_stop_at_the_cap(store, x_api):
    post = publish(store, "x", stored_grid(store), INPUTS)
    for i in range(150):
        x_api.add_reply(post.platform_ids[0], str(6000 + i), f"u{i}", "#cats")
    target = get_target("x")
    replies = conversation_replies(target._api(), post.platform_ids[0], X_USER_ID, 120)
    assert len(replies) == 120 and x_api.search_pages == 2


def test_x_search_refused_for_the_access_level_is_failed_precondition(store, x_api):
    post = publish(store, "x", stored_grid(store), INPUTS)
    x_api.search_forbidden = True
    with pytest.raises(FailedPrecondition) as refused:
        get_target("x").read_replies(store, post)
    message = str(refused.value)
    assert "X_PUBLISH_ACCESS_TOKEN" in message and "access level" in message
    assert "search/recent" in message and X_TOKEN not in message


# --- trending ---------------------------------------------------------------------------------

MASTODON_TRENDS = [
    {"name": "Caturday", "url": "https://m.example/tags/caturday",
     "history": [{"day": "1732233600", "uses": "120", "accounts": "80"},
                 {"day": "1732147200", "uses": "300", "accounts": "150"}]},
    {"name": "sunset", "url": "https://m.example/tags/sunset",
     "history": [{"day": "1732233600", "uses": "40", "accounts": "30"}]},
]


@pytest.fixture
def trend_sources(monkeypatch):
    publish_env(monkeypatch)
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")  # the local servers only
    with FakeMastodon() as instance, FakeBluesky() as appview, FakeX() as x_api:
        instance.trends = MASTODON_TRENDS
        appview.trending = ["Winter Solstice", "#BlueskyArt"]
        x_api.trends = [("#NowPlaying", 52_000), ("Gatos", 9_100)]
        monkeypatch.setenv("AUDIENCE_TREND_INSTANCES", instance.base)
        monkeypatch.setenv("BLUESKY_APPVIEW_URL", appview.base)
        monkeypatch.setenv("X_PUBLISH_ACCESS_TOKEN", X_TOKEN)
        monkeypatch.setenv("X_PUBLISH_API_URL", x_api.base)
        yield instance, appview, x_api


def test_trending_tags_of_every_source_in_one_list(trend_sources):
    instance, appview, x_api = trend_sources
    skipped: list[str] = []

    tags = trending_tags_from_env(skipped=skipped)

    host = urlsplit(instance.base).netloc
    assert tags == [
        TrendingTag("Caturday", f"mastodon:{host}", uses=420, accounts=230, rank=1),
        TrendingTag("sunset", f"mastodon:{host}", uses=40, accounts=30, rank=2),
        TrendingTag("Winter Solstice", "bluesky", rank=1),
        TrendingTag("#BlueskyArt", "bluesky", rank=2),
        TrendingTag("#NowPlaying", "x", uses=52_000, rank=1),
        TrendingTag("Gatos", "x", uses=9_100, rank=2)]
    assert skipped == []
    assert instance.auth_seen == [] and appview.auth_seen == []  # public reads: no token
    assert x_api.auth_seen == [f"Bearer {X_TOKEN}"]


@pytest.mark.parametrize("status", [500, 404])
def test_bluesky_trending_failing_gives_nothing_and_the_rest_still_counts(trend_sources,
                                                                        status, caplog):
    _, appview, x_api = trend_sources
    appview.trending_fails = status
    x_api.trends_forbidden = True
    skipped: list[str] = []

    tags = trending_tags_from_env(skipped=skipped)

    assert {t.source for t in tags} == {f"mastodon:{urlsplit(trend_sources[0].base).netloc}"}
    assert [s.split(":")[0] for s in skipped] == ["bluesky", "x"]
    assert "unspecced" in skipped[0] and "403" in skipped[1] and X_TOKEN not in skipped[1]
    assert "trending source left out: bluesky" in caplog.text


def test_x_trends_without_a_token_and_a_dead_instance_are_left_out(trend_sources,
                                                                    monkeypatch):
    monkeypatch.delenv("X_PUBLISH_ACCESS_TOKEN")
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    monkeypatch.setenv("AUDIENCE_TREND_INSTANCES", "http://127.0.0.1:9")  # nothing listens
    skipped: list[str] = []

    tags = trending_tags_from_env(skipped=skipped)

    assert {t.source for t in tags} == {"bluesky"}
    assert skipped[0].startswith("mastodon:127.0.0.1:9") and "no X_PUBLISH" in skipped[1]


def test_platform_times_are_read_in_each_networks_format():
    assert unix_time("2026-12-01T10:00:00.000Z") == unix_time("2026-12-01T10:00:00+0000") \
        == unix_time("2026-12-01T11:00:00+01:00") == 1796119200.0
    assert unix_time("") == unix_time("yesterday") == unix_time(None) == 0.0


def test_instagram_comments_without_the_permission_name_it(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS)
    instagram.comments_permission = False
    with pytest.raises(FailedPrecondition) as refused:
        get_target("instagram").read_replies(store, post)
    message = str(refused.value)
    assert "INSTAGRAM_PUBLISH_TOKEN" in message and "manage_comments" in message
    assert IG_TOKEN not in message


def test_a_graph_next_url_gives_its_cursor_and_nothing_else():
    leaky = ("https://graph.instagram.com/v24.0/1/comments?access_token=SECRET-TOKEN-123"
             "&limit=50&after=QVFIUm")
    assert next_cursor({"next": leaky}) == "QVFIUm"
    assert next_cursor({"next": leaky, "cursors": {"after": "QVFIUn"}}) == "QVFIUn"
    assert next_cursor({"cursors": {"after": "QVFIUn"}}) == ""  # no next: the last page
    assert next_cursor(None) == ""


def test_mastodon_replies_stop_at_the_cap(store, mastodon):
    post = publish(store, "mastodon", stored_grid(store), INPUTS)
    for i in range(5):
        mastodon.add_reply(post.platform_ids[0], {"id": str(300 + i), "acct": f"v{i}"}, "#a")
    target = get_target("mastodon")
    replies = status_replies(target._api(), post.platform_ids[0], "1", 3)
    assert [r.author_handle for r in replies] == ["v0", "v1", "v2"]

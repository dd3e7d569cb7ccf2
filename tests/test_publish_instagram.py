"""Publishing to Instagram against a local Graph API that fetches and checks every image: the
three modes (a profile grid in reverse order), container polling, expired and failed
containers, the publishing quota, a crash mid-grid, rate-limit codes, 429 and 5xx, auth,
dry runs, public image URLs (a base URL or presigned S3), idempotency, refresh, fault sweeps
and the publisher service over gRPC."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from services.publisher.server import register
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable
from socialgan.publishing import DRAFT, PUBLISHED, PUBLISHING, CaptionInputs, get_post, publish
from socialgan.publishing.caption import count_hashtags
from socialgan.publishing.post import list_posts, save_post
from socialgan.publishing.targets import PublishOptions
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import LocalObjectStore
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN, make_s3_store
from tests.local_instagram import TOKEN, USER_ID, FakeInstagram, StaticFiles
from tests.publish_api_base import FAULTS, fault_sweep
from tests.publish_fixtures import image_size, publish_env, stored_grid

INPUTS = CaptionInputs(hashtag="#Emoji", method="DCGAN (PyTorch tutorial), 64x64",
                       metrics={"swd": 12.3, "diversity": 0.87, "loss_g": 2.0},
                       model_id="run-1", seed=7,
                       extra_hashtags=("gan", "art", "pixels", "ai", "more", "toomany"))
CAROUSEL = PublishOptions(mode="carousel")
GRID9 = PublishOptions(mode="profile-grid")


def point_at(monkeypatch, api: FakeInstagram, media_base: str, token: str = TOKEN) -> None:
    monkeypatch.setenv("INSTAGRAM_PUBLISH_TOKEN", token)
    monkeypatch.setenv("INSTAGRAM_PUBLISH_USER_ID", USER_ID)
    monkeypatch.setenv("INSTAGRAM_PUBLISH_GRAPH_URL", f"{api.base}/v24.0")
    monkeypatch.setenv("PUBLIC_MEDIA_BASE_URL", media_base)


@pytest.fixture
def files(store):
    with StaticFiles(store.root) as served:
        yield served
    assert served.auth_seen == []  # the public media host never sees the token


@pytest.fixture
def instagram(monkeypatch, files):
    publish_env(monkeypatch)
    monkeypatch.setenv("INSTAGRAM_IMAGE_WIDTH", "320")  # small images keep the tests fast
    monkeypatch.setenv("INSTAGRAM_POLL_INTERVAL_S", "0")
    monkeypatch.setenv("INSTAGRAM_POLL_TIMEOUT_S", "5")
    with FakeInstagram() as api:
        point_at(monkeypatch, api, files.base)
        yield api
    assert all(a.startswith("Bearer ") for a in api.auth_seen)  # in the header only


def calls(api: FakeInstagram) -> list[str]:
    return [f"{method} {path.removeprefix('/v24.0')}" for _, method, path in api.log]


def item_names(keys: list[str]) -> list[str]:
    return [k.rsplit("/", 1)[-1] for k in keys]


# --- the three modes ------------------------------------------------------------------------

def test_single_posts_the_grid_as_one_1080_jpeg_after_polling(store, instagram, monkeypatch):
    monkeypatch.setenv("INSTAGRAM_IMAGE_WIDTH", "1080")
    post = publish(store, "instagram", stored_grid(store), INPUTS)

    assert post.state == PUBLISHED and instagram.counts() == {"posts": 1, "item-0.jpg": 1}
    (item,) = post.items
    assert (item.width, item.height) == (1080, 1080) and item.content_type == "image/jpeg"
    assert image_size(store.get_bytes(item.image_key)) == (1080, 1080)
    media = instagram.media[0]
    assert post.platform_ids == [media["id"]] == [item.extra["media_id"]]
    assert post.url == item.url == f"https://www.instagram.com/p/T{media['id']}/"
    container = instagram.containers[item.platform_id]
    assert item.step == "published" and container["status"] == "PUBLISHED"
    assert container["alt_text"] == item.alt_text and "#emoji" in item.alt_text
    assert media["caption"] == post.caption and count_hashtags(post.caption) == 5
    assert "loss" not in post.caption and "SWD 12.3" in post.caption
    assert "hashtags <= 5 (INSTAGRAM_MAX_HASHTAGS): 5" in post.checks
    uid = f"/{USER_ID}"
    assert calls(instagram) == [
        f"GET {uid}/content_publishing_limit", f"POST {uid}/media",
        f"GET /{item.platform_id}", f"GET /{item.platform_id}",  # IN_PROGRESS, FINISHED
        f"POST {uid}/media_publish", f"GET /{media['id']}"]


def test_carousel_is_one_post_of_the_grid_and_nine_tiles(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS, options=CAROUSEL)

    assert post.state == PUBLISHED and len(post.items) == 10
    counts = instagram.counts()
    assert counts.pop("posts") == 1 and counts == {f"item-{i}.jpg": 1 for i in range(10)}
    carousel = post.progress["carousel"]
    assert instagram.containers[carousel["container"]]["children"] == [
        i.platform_id for i in post.items]
    assert all(instagram.containers[i.platform_id]["child"] and i.step == "finished"
               for i in post.items)
    assert post.platform_ids == [carousel["media_id"]] and post.url == carousel["url"]
    assert "carousel 2..10 items: 10" in post.checks
    assert "picture (3 of 9)" in post.items[3].alt_text


def test_profile_grid_publishes_nine_posts_last_tile_first(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS, options=GRID9)

    assert post.state == PUBLISHED and instagram.counts()["posts"] == 9
    assert item_names(instagram.published_keys()) == [f"item-{i}.jpg" for i in range(8, -1, -1)]
    assert all(i.step == "published" and i.url for i in post.items)
    assert post.urls == [i.url for i in post.items] and post.url == post.items[0].url
    assert post.platform_ids == [i.extra["media_id"] for i in post.items]
    assert "profile grid: 9 posts, tile 8 first, tile 0 last (top-left)" in post.checks


def test_profile_grid_needs_a_3x3_grid(store, instagram):
    with pytest.raises(InvalidArgument, match="grid_key: mode profile-grid needs a 3x3 grid"):
        publish(store, "instagram", stored_grid(store, count=8, columns=4), INPUTS,
                options=GRID9)
    assert instagram.requests == 0


# --- quota, crash, containers ---------------------------------------------------------------

def test_a_grid_the_quota_cannot_finish_is_refused_before_anything_is_made(store, files,
                                                                           monkeypatch):
    publish_env(monkeypatch)
    with FakeInstagram(quota_total=25, quota_usage=20) as api:
        point_at(monkeypatch, api, files.base)
        with pytest.raises(FailedPrecondition, match="content_publishing_limit") as err:
            publish(store, "instagram", stored_grid(store), INPUTS, options=GRID9)
        assert "20 of 25" in str(err.value) and "5 left" in str(err.value)
        assert "needs 9" in str(err.value)
        assert calls(api) == [f"GET /{USER_ID}/content_publishing_limit"]
        assert api.containers == {} and api.media == []


def test_crash_after_five_tiles_resumes_at_the_sixth_and_posts_nine(store, instagram):
    grid_key = stored_grid(store)
    instagram.down_after_publishes = 5
    with pytest.raises(Unavailable):
        publish(store, "instagram", grid_key, INPUTS, idempotency_key="g1", options=GRID9)
    (post,) = list_posts(store)
    assert [i.step for i in post.items][4:] == ["published"] * 5
    assert [i.step for i in post.items][:4] == [""] * 4
    post.state = PUBLISHING  # what a killed publisher leaves behind
    save_post(store, post)
    instagram.down_after_publishes = None
    instagram.quota_total = instagram.quota_usage + 9  # the resume needs 4 of the 4 left

    done = publish(store, "instagram", grid_key, INPUTS, idempotency_key="g1", options=GRID9)
    assert done.state == PUBLISHED and done.attempts == 2
    names = item_names(instagram.published_keys())
    assert names == [f"item-{i}.jpg" for i in range(8, -1, -1)]  # 6th post: tile 3
    assert instagram.counts()["posts"] == 9 and all(i.url for i in done.items)


def test_an_expired_container_is_made_again(store, instagram):
    instagram.expire_next = 1
    post = publish(store, "instagram", stored_grid(store), INPUTS)

    assert post.state == PUBLISHED and instagram.counts()["posts"] == 1
    statuses = sorted(c["status"] for c in instagram.containers.values())
    assert statuses == ["EXPIRED", "PUBLISHED"]
    assert "expired" in post.items[0].extra["note"]


def test_an_expired_carousel_child_is_made_again_and_the_carousel_posts_once(store,
                                                                            instagram):
    instagram.expire_next = 1
    post = publish(store, "instagram", stored_grid(store), INPUTS, options=CAROUSEL)

    counts = instagram.counts()
    assert counts.pop("posts") == 1 and counts == {f"item-{i}.jpg": 1 for i in range(10)}
    assert sum(c["status"] == "EXPIRED" for c in instagram.containers.values()) == 1
    assert "expired" in post.items[0].extra["note"]


def test_a_container_in_error_fails_for_good_and_posts_nothing(store, instagram):
    instagram.error_next = 1
    with pytest.raises(FailedPrecondition, match="ERROR"):
        publish(store, "instagram", stored_grid(store), INPUTS)
    assert instagram.media == []


def test_an_image_instagram_cannot_fetch_is_refused_naming_the_url_setting(store, instagram,
                                                                          monkeypatch):
    monkeypatch.setenv("PUBLIC_MEDIA_BASE_URL", "http://127.0.0.1:9/nothing")
    with pytest.raises(FailedPrecondition, match="Media download has failed") as err:
        publish(store, "instagram", stored_grid(store), INPUTS)
    assert "PUBLIC_MEDIA_BASE_URL" in str(err.value)
    assert instagram.media == [] and instagram.containers == {}


def test_a_lost_publish_answer_is_looked_up_not_published_again(store, instagram):
    instagram.inject(4, "lost")  # media_publish runs, its answer never comes
    post = publish(store, "instagram", stored_grid(store), INPUTS)

    assert post.state == PUBLISHED and instagram.counts() == {"posts": 1, "item-0.jpg": 1}
    (item,) = post.items
    assert item.extra["media_id"] == instagram.media[0]["id"] and item.url
    uid = f"/{USER_ID}"
    assert calls(instagram)[4:] == [f"POST {uid}/media_publish", f"GET /{item.platform_id}",
                                    f"GET {uid}/media", f"GET /{item.extra['media_id']}"]


# --- retries and errors ---------------------------------------------------------------------

def test_rate_limit_code_4_is_retried(store, instagram):
    instagram.rate_limit_next = 2
    post = publish(store, "instagram", stored_grid(store), INPUTS)
    assert post.state == PUBLISHED and instagram.rate_limited == 2
    assert instagram.counts()["posts"] == 1


def test_429_with_retry_after_and_a_503_mid_grid_are_retried(store, instagram):
    instagram.inject(3, "429")
    instagram.inject(7, "503")
    instagram.inject(9, "503")  # the second tile's media_publish
    post = publish(store, "instagram", stored_grid(store), INPUTS, options=GRID9)
    assert post.state == PUBLISHED and instagram.counts()["posts"] == 9
    assert len(set(instagram.published_keys())) == 9


def test_a_bad_token_fails_naming_the_variable(store, instagram, monkeypatch):
    monkeypatch.setenv("INSTAGRAM_PUBLISH_TOKEN", "not-the-token-123456")
    with pytest.raises(FailedPrecondition, match="INSTAGRAM_PUBLISH_TOKEN") as err:
        publish(store, "instagram", stored_grid(store), INPUTS)
    assert "not-the-token" not in str(err.value)
    assert instagram.media == []


def test_missing_settings_are_named(store, instagram, monkeypatch):
    grid_key = stored_grid(store)
    monkeypatch.setenv("INSTAGRAM_PUBLISH_GRAPH_URL", "https://graph.example.com/v24.0")
    with pytest.raises(FailedPrecondition, match="INSTAGRAM_PUBLISH_GRAPH_URL"):
        publish(store, "instagram", grid_key, INPUTS)
    monkeypatch.setenv("INSTAGRAM_PUBLISH_GRAPH_URL", f"{instagram.base}/v24.0")
    monkeypatch.delenv("PUBLIC_MEDIA_BASE_URL")  # and the store is not S3: no public URL
    with pytest.raises(FailedPrecondition, match="PUBLIC_MEDIA_BASE_URL"):
        publish(store, "instagram", grid_key, INPUTS)
    monkeypatch.setenv("INSTAGRAM_PUBLISH_USER_ID", "me")
    with pytest.raises(FailedPrecondition, match="INSTAGRAM_PUBLISH_USER_ID"):
        publish(store, "instagram", grid_key, INPUTS)
    assert instagram.requests == 0


def test_dry_run_sends_nothing_and_stores_items_at_final_size(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS, dry_run=True, options=GRID9)
    assert post.state == DRAFT and instagram.requests == 0 and len(post.items) == 9
    for item in post.items:
        data = store.get_bytes(item.image_key)
        assert data.startswith(b"\xff\xd8\xff") and image_size(data) == (320, 320)
    assert any(c.startswith("jpeg <= 8,000,000 bytes") for c in post.checks)


def test_presigned_s3_urls_serve_the_images_when_no_base_url_is_set(moto_endpoint, instagram,
                                                                   monkeypatch):
    monkeypatch.delenv("PUBLIC_MEDIA_BASE_URL")
    s3 = make_s3_store(moto_endpoint)
    post = publish(s3, "instagram", stored_grid(s3), INPUTS)
    assert post.state == PUBLISHED and instagram.counts()["posts"] == 1
    container = instagram.containers[post.items[0].platform_id]
    assert container["image_key"].endswith("item-0.jpg")
    assert "X-Amz-Signature=" in container["image_url"]  # fetched from S3 as presigned
    assert "X-Amz-Expires=172800" in container["image_url"]  # 48 h: outlives the container


def test_same_key_returns_the_same_post_without_a_second_one(store, instagram):
    grid_key = stored_grid(store)
    first = publish(store, "instagram", grid_key, INPUTS, idempotency_key="k1")
    again = publish(store, "instagram", grid_key, INPUTS, idempotency_key="k1")
    assert again == first and instagram.counts()["posts"] == 1


def test_refresh_marks_a_media_instagram_no_longer_has(store, instagram):
    post = publish(store, "instagram", stored_grid(store), INPUTS, options=GRID9)
    gone = instagram.media.pop()  # tile 0, the last published
    fresh = get_post(store, post.post_id, refresh=True)
    assert fresh.items[0].extra["deleted"] is True and fresh.items[0].url == ""
    assert gone["id"] not in [u.rsplit("T", 1)[-1].strip("/") for u in fresh.urls]
    assert len(fresh.urls) == 8 and not fresh.items[1].extra["deleted"]


# --- fault sweeps ---------------------------------------------------------------------------

@pytest.fixture
def sweep_root(tmp_path):
    """The sweep writes every post record dozens of times per run: in memory where the
    machine has a tmpfs, so the figure measures the client, not the disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="ig-sweep-", dir=shm))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(("mode", "attempts"), [("single", "4"), ("profile-grid", "4"),
                                               ("profile-grid", "1")])
def test_fault_sweep_posts_every_tile_exactly_once(sweep_root, monkeypatch, mode, attempts):
    """attempts 1: every fault fails the Publish call, and the next call must resume the
    grid's state machine from the record (not from the call's own retries)."""
    tmp_path = sweep_root
    # A profile grid makes 37 requests: by default it is swept with the two faults after
    # which the request WAS processed (the only ones that can post twice); 503 and 429 are
    # answered before processing, swept in single and tested mid-grid above.
    # INSTAGRAM_FULL_SWEEP=1 sweeps it with all four (148 runs, ~40 s).
    faults = FAULTS if mode == "single" or os.environ.get("INSTAGRAM_FULL_SWEEP") else \
        ("lost", "slow")
    publish_env(monkeypatch)
    monkeypatch.setenv("PUBLISH_MAX_ATTEMPTS", attempts)
    monkeypatch.setenv("INSTAGRAM_IMAGE_WIDTH", "320")
    monkeypatch.setenv("INSTAGRAM_POLL_INTERVAL_S", "0")
    monkeypatch.setenv("PUBLISH_TIMEOUT_S", "0.3")  # what a "slow" answer costs each run
    stores: dict[int, tuple[LocalObjectStore, str]] = {}
    options = PublishOptions(mode=mode)

    with StaticFiles(tmp_path) as files:
        def publish_once(api: FakeInstagram, run: int):
            if run not in stores:
                store = LocalObjectStore(tmp_path / f"run-{run}")
                stores[run] = (store, stored_grid(store, size=32))
            store, grid_key = stores[run]
            point_at(monkeypatch, api, f"{files.base}/run-{run}")
            return publish(store, "instagram", grid_key, INPUTS, idempotency_key=f"r{run}",
                           options=options)

        sweep = fault_sweep(f"instagram {mode}", lambda: FakeInstagram(polls_in_progress=0),
                            publish_once, FakeInstagram.counts, faults=faults)
    print(sweep.line(), f"(PUBLISH_MAX_ATTEMPTS={attempts})")
    assert files.auth_seen == []
    assert (sweep.duplicates, sweep.lost, sweep.unfinished) == (0, 0, 0)
    assert sweep.steps == (5 if mode == "single" else 1 + 9 * 4)


# --- over gRPC ------------------------------------------------------------------------------

def test_publish_a_profile_grid_over_grpc(store, instagram):
    grid_key = stored_grid(store)
    running = start_server("publisher", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        stub = publisher_pb2_grpc.PublisherServiceStub(channel)
        post = stub.Publish(publisher_pb2.PublishRequest(
            target=publisher_pb2.PUBLISH_TARGET_INSTAGRAM, grid_key=grid_key,
            caption=publisher_pb2.CaptionInputs(hashtag="emoji", method="DCGAN",
                                                metrics={"swd": 3.5}, model_id="run-1", seed=7),
            mode=publisher_pb2.PUBLISH_MODE_PROFILE_GRID, idempotency_key="grpc-1"), timeout=30)
        assert post.state == publisher_pb2.POST_STATE_PUBLISHED
        assert post.url.startswith("https://www.instagram.com/p/") and len(post.items) == 9
        assert all(i.step == "published" and i.url for i in post.items)
        assert item_names(instagram.published_keys())[0] == "item-8.jpg"
        fresh = stub.GetPost(publisher_pb2.GetPostRequest(post_id=post.post_id, refresh=True),
                             timeout=10)
        assert fresh.url == post.url and len(fresh.items) == 9
    finally:
        channel.close()
        running.stop(grace=0)

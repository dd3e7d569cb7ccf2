"""Publishing to Mastodon against a local instance in the documented API shape: both modes,
async media, rate limits, 5xx, auth, dry runs, the token's host, idempotency, refresh, a
fault sweep over every request, and the publisher service over gRPC."""

from __future__ import annotations

import time

import pytest

from services.publisher.server import register
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable
from socialgan.publishing import DRAFT, FAILED, PUBLISHED, CaptionInputs, get_post, publish
from socialgan.publishing.post import load_post, save_post
from socialgan.publishing.targets import PublishOptions
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import keys
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_mastodon import TOKEN, FakeMastodon
from tests.publish_api_base import fault_sweep
from tests.publish_fixtures import image_size, publish_env, stored_grid

INPUTS = CaptionInputs(hashtag="#Sunset", method="DCGAN (PyTorch tutorial), 64x64",
                       metrics={"swd": 12.3, "diversity": 0.87, "loss_d": 0.5},
                       model_id="run-1", seed=7)
TILES = PublishOptions(mode="tiles")


@pytest.fixture
def mastodon(monkeypatch):
    publish_env(monkeypatch)
    with FakeMastodon() as api:
        point_at(monkeypatch, api)
        yield api


def point_at(monkeypatch, api: FakeMastodon, token: str = TOKEN) -> None:
    monkeypatch.setenv("MASTODON_PUBLISH_TOKEN", token)
    monkeypatch.setenv("MASTODON_PUBLISH_INSTANCE_URL", api.base)


def paths(api: FakeMastodon) -> list[str]:
    return [f"{method} {path}" for _, method, path in api.log]


# --- the two modes --------------------------------------------------------------------------

def test_single_posts_the_grid_as_one_picture_with_alt_text(store, mastodon):
    grid_key = stored_grid(store)
    post = publish(store, "mastodon", grid_key, INPUTS)

    assert post.state == PUBLISHED and mastodon.published() == {"statuses": 1, "media": 1}
    status = next(iter(mastodon.statuses.values()))
    assert post.url == status["url"] and post.url.startswith("https://")
    assert post.platform_ids == [status["id"]] and post.progress["status_id"] == status["id"]
    assert status["content"] == post.caption and status["visibility"] == "public"
    assert "Metrics: SWD 12.3 · diversity 0.87" in post.caption and "loss" not in post.caption
    (item,) = post.items
    assert item.platform_id == status["media_attachments"][0]["id"] and item.step == "attached"
    alt = status["media_attachments"][0]["description"]
    assert alt == item.alt_text and "#sunset" in alt and "run-1" in alt and "seed 7" in alt
    assert (item.width, item.height) == image_size(store.get_bytes(grid_key)) == (200, 200)
    assert any(c.startswith(f"limits: {mastodon.base}/api/v2/instance") for c in post.checks)
    assert paths(mastodon) == ["GET /api/v2/instance", "POST /api/v2/media",
                               "POST /api/v1/statuses"]


def test_tiles_posts_the_first_four_of_nine_and_says_so(store, mastodon):
    post = publish(store, "mastodon", stored_grid(store), INPUTS, options=TILES)

    assert mastodon.published() == {"statuses": 1, "media": 4} and len(post.items) == 4
    assert post.caption.endswith("\nTiles 1-4 of 9.")
    assert "media <= 4 attachments: 4 of 9 tiles" in post.checks
    assert any("tiles 5-9 left out" in c for c in post.checks)
    status = mastodon.statuses[post.platform_ids[0]]
    assert [m["id"] for m in status["media_attachments"]] == [i.platform_id for i in post.items]
    assert "picture (2 of 9)" in post.items[1].alt_text


def test_instance_limits_are_read_and_kept(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeMastodon(max_characters=140, max_media_attachments=2,
                      image_matrix_limit=100 * 100) as api:
        point_at(monkeypatch, api)
        post = publish(store, "mastodon", stored_grid(store), INPUTS, options=TILES)
        grid_post = publish(store, "mastodon", stored_grid(store), INPUTS)
    assert len(post.caption) <= 140 and len(post.items) == 2
    assert post.caption.endswith("Tiles 1-2 of 9.") and "status <= 140 characters" in \
        " ".join(post.checks)
    (item,) = grid_post.items
    assert item.width * item.height <= 100 * 100 and item.width == 100  # scaled to the matrix
    assert api.published() == {"statuses": 2, "media": 3}


def test_visibility_option_and_setting(store, mastodon, monkeypatch):
    grid_key = stored_grid(store)
    post = publish(store, "mastodon", grid_key, INPUTS,
                   options=PublishOptions(visibility="unlisted"))
    assert mastodon.statuses[post.platform_ids[0]]["visibility"] == "unlisted"
    monkeypatch.setenv("MASTODON_VISIBILITY", "private")
    post = publish(store, "mastodon", grid_key, INPUTS)
    assert mastodon.statuses[post.platform_ids[0]]["visibility"] == "private"
    assert "visibility: private" in post.checks

    with pytest.raises(InvalidArgument, match="visibility"):
        publish(store, "mastodon", grid_key, INPUTS, options=PublishOptions(visibility="friends"))
    with pytest.raises(InvalidArgument, match="mode"):
        publish(store, "mastodon", grid_key, INPUTS, options=PublishOptions(mode="carousel"))
    monkeypatch.setenv("MASTODON_VISIBILITY", "everyone")
    with pytest.raises(FailedPrecondition, match="MASTODON_VISIBILITY"):
        publish(store, "mastodon", grid_key, INPUTS)
    assert mastodon.published()["statuses"] == 2


# --- the platform's ways of saying "not now" -----------------------------------------------

def test_async_media_is_polled_until_its_url_is_set(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeMastodon(async_every=1, polls_processing=2) as api:
        point_at(monkeypatch, api)
        post = publish(store, "mastodon", stored_grid(store, count=4, columns=2), INPUTS,
                       options=TILES)
    assert post.state == PUBLISHED and api.published() == {"statuses": 1, "media": 4}
    polls = [p for p in paths(api) if p.startswith("GET /api/v1/media/")]
    assert len(polls) == 4 * 3  # two 206 answers, then the 200 with its url, per picture
    assert all(item.url.startswith("https://") for item in post.items)


def test_media_gone_while_processing_is_uploaded_anew(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeMastodon(async_every=1) as api:
        point_at(monkeypatch, api)
        for index in range(2, 6):  # every poll of the first try fails
            api.inject(index, "503")
        args = ("mastodon", stored_grid(store), INPUTS)
        with pytest.raises(Unavailable):
            publish(store, *args, idempotency_key="k-gone")
        (item,) = load_post(store, get_id(store, "k-gone")).items
        assert item.platform_id and item.step == "processing"
        api.media.pop(item.platform_id)  # the instance removed the unattached upload

        with pytest.raises(Unavailable, match="upload it again"):
            publish(store, *args, idempotency_key="k-gone")
        assert load_post(store, get_id(store, "k-gone")).items[0].platform_id == ""
        done = publish(store, *args, idempotency_key="k-gone")
    assert done.state == PUBLISHED and done.items[0].platform_id != item.platform_id
    assert api.published() == {"statuses": 1, "media": 1} and api.uploads == 2


def test_429_waits_what_retry_after_asks(store, mastodon):
    mastodon.rate_limit_once["/api/v1/statuses"] = "1"
    started = time.monotonic()
    post = publish(store, "mastodon", stored_grid(store), INPUTS)
    assert time.monotonic() - started >= 0.95
    assert post.state == PUBLISHED and mastodon.published() == {"statuses": 1, "media": 1}
    assert paths(mastodon).count("POST /api/v1/statuses") == 2


def test_5xx_in_the_middle_is_retried_and_a_failed_post_resumes(store, mastodon):
    mastodon.inject(2, "503")  # the second tile's upload
    post = publish(store, "mastodon", stored_grid(store), INPUTS, options=TILES,
                   idempotency_key="k-5xx")
    assert post.state == PUBLISHED and mastodon.published() == {"statuses": 1, "media": 4}
    assert mastodon.uploads == 4

    # The status call fails on every try: the post is FAILED with its media recorded, and
    # publishing again resumes at the status without uploading anything again.
    grid_key = stored_grid(store, count=4, columns=2)
    first = mastodon.requests + 1 + 4  # after the instance read and four uploads
    for index in range(first, first + 4):
        mastodon.inject(index, "503")
    with pytest.raises(Unavailable, match="Mastodon"):
        publish(store, "mastodon", grid_key, INPUTS, options=TILES, idempotency_key="k-resume")
    failed = load_post(store, get_id(store, "k-resume"))
    assert failed.state == FAILED and all(i.platform_id for i in failed.items)
    assert mastodon.uploads == 8 and mastodon.published()["statuses"] == 1
    done = publish(store, "mastodon", grid_key, INPUTS, options=TILES, idempotency_key="k-resume")
    assert done.state == PUBLISHED and done.attempts == 2
    assert mastodon.uploads == 8 and mastodon.published() == {"statuses": 2, "media": 8}


def get_id(store, key: str) -> str:
    (post,) = [p for p in (load_post(store, k.split("/")[1]) for k in store.list("posts/")
                           if k.endswith("post.json")) if p.idempotency_key == key]
    return post.post_id


def test_auth_failure_names_the_variable_and_never_the_token(store, mastodon, monkeypatch):
    monkeypatch.setenv("MASTODON_PUBLISH_TOKEN", "wrong-token-abcdefgh")
    with pytest.raises(FailedPrecondition, match="MASTODON_PUBLISH_TOKEN") as err:
        publish(store, "mastodon", stored_grid(store), INPUTS, idempotency_key="k-auth")
    assert "wrong-token-abcdefgh" not in str(err.value) and "401" in str(err.value)
    post = load_post(store, get_id(store, "k-auth"))
    assert post.state == FAILED and "wrong-token" not in str(post.to_json())
    assert mastodon.published() == {"statuses": 0, "media": 0}


def test_missing_credentials_refuse_before_anything_is_sent(store, mastodon, monkeypatch):
    grid_key = stored_grid(store)
    monkeypatch.delenv("MASTODON_PUBLISH_TOKEN")
    with pytest.raises(FailedPrecondition, match="needs account credentials"):
        publish(store, "mastodon", grid_key, INPUTS)
    monkeypatch.setenv("MASTODON_PUBLISH_TOKEN", TOKEN)
    monkeypatch.delenv("MASTODON_PUBLISH_INSTANCE_URL")
    with pytest.raises(FailedPrecondition, match="MASTODON_PUBLISH_INSTANCE_URL"):
        publish(store, "mastodon", grid_key, INPUTS)
    assert mastodon.requests == 0 and list(store.list("posts/")) == []


# --- dry runs -------------------------------------------------------------------------------

def test_dry_run_without_an_account_renders_with_the_defaults(store, mastodon, monkeypatch):
    monkeypatch.delenv("MASTODON_PUBLISH_TOKEN")
    post = publish(store, "mastodon", stored_grid(store), INPUTS, dry_run=True, options=TILES)
    assert post.state == DRAFT and mastodon.requests == 0
    assert "limits: stock Mastodon defaults (no instance configured)" in post.checks
    assert len(post.items) == 4 and len(post.caption) <= 500
    for item in post.items:
        data = store.get_bytes(item.image_key)
        assert item.image_key.endswith(".png") and data[:4] == b"\x89PNG"
        assert len(data) == item.size_bytes and image_size(data) == (item.width, item.height)
    page = store.get_bytes(keys.GALLERY_INDEX_KEY).decode()
    assert post.post_id in page and "Dry run for mastodon (tiles): not sent." in page


def test_dry_run_with_an_account_only_reads_the_limits(store, mastodon):
    post = publish(store, "mastodon", stored_grid(store), INPUTS, dry_run=True)
    assert post.state == DRAFT and paths(mastodon) == ["GET /api/v2/instance"]
    assert mastodon.published() == {"statuses": 0, "media": 0}


# --- the token's host -----------------------------------------------------------------------

def test_no_other_host_sees_the_token(store, monkeypatch):
    publish_env(monkeypatch)
    with FakeMastodon() as elsewhere:
        with FakeMastodon(files_base=elsewhere.base) as api:
            point_at(monkeypatch, api)
            post = publish(store, "mastodon", stored_grid(store), INPUTS)
            assert post.items[0].url.startswith(elsewhere.base)  # its media on another host
            api.redirect_media_to = elsewhere.base
            with pytest.raises(FailedPrecondition, match="redirect"):
                publish(store, "mastodon", stored_grid(store), INPUTS)
            monkeypatch.setenv("MASTODON_PUBLISH_INSTANCE_URL",
                               f"http://user:{TOKEN}@127.0.0.1:{elsewhere.port}")
            with pytest.raises(FailedPrecondition, match="MASTODON_PUBLISH_INSTANCE_URL") as err:
                publish(store, "mastodon", stored_grid(store), INPUTS)
            assert TOKEN not in str(err.value)
        assert elsewhere.requests == 0 and elsewhere.auth_seen == []
        assert api.auth_seen and set(api.auth_seen) == {f"Bearer {TOKEN}"}


# --- idempotency ----------------------------------------------------------------------------

def test_same_key_returns_the_same_post_even_after_a_crash_before_the_record(store, mastodon):
    grid_key = stored_grid(store)
    first = publish(store, "mastodon", grid_key, INPUTS, idempotency_key="k-idem")
    assert publish(store, "mastodon", grid_key, INPUTS, idempotency_key="k-idem") == first

    # A crash between "the instance made the status" and "the record says so".
    record = load_post(store, first.post_id)
    record.state, record.progress, record.platform_ids, record.urls = "publishing", {}, [], []
    for item in record.items:
        item.step = "processed"
    save_post(store, record)
    again = publish(store, "mastodon", grid_key, INPUTS, idempotency_key="k-idem")
    assert again.state == PUBLISHED and again.platform_ids == first.platform_ids
    assert mastodon.published() == {"statuses": 1, "media": 1} and mastodon.uploads == 1
    keys_sent = {k for k in mastodon.idempotency}
    assert keys_sent == {f"socialgan-{first.post_id}"}


def test_past_the_key_window_the_status_is_looked_up_not_posted_again(store, mastodon):
    grid_key = stored_grid(store)
    first = publish(store, "mastodon", grid_key, INPUTS, idempotency_key="k-late")
    record = load_post(store, first.post_id)
    record.state = "failed"
    record.progress = {"status_tried_unix": time.time() - 2 * 3600}
    record.platform_ids, record.urls = [], []
    save_post(store, record)
    mastodon.forget_idempotency_keys()

    again = publish(store, "mastodon", grid_key, INPUTS, idempotency_key="k-late")
    assert again.state == PUBLISHED and again.platform_ids == first.platform_ids
    assert mastodon.published() == {"statuses": 1, "media": 1}
    assert "GET /api/v1/accounts/verify_credentials" in paths(mastodon)


@pytest.mark.parametrize("attempts", [4, 1], ids=["retried-in-call", "resumed-by-publish"])
def test_the_fault_sweep_posts_everything_exactly_once(tmp_path, monkeypatch, attempts):
    """With one attempt per call every fault fails the Publish, and the next Publish resumes
    from the record: the resume path, not just PublishHttp's retries, is swept."""
    from socialgan.storage import LocalObjectStore

    publish_env(monkeypatch)
    monkeypatch.setenv("PUBLISH_MAX_ATTEMPTS", str(attempts))
    monkeypatch.setenv("PUBLISH_TIMEOUT_S", "0.5")  # the "slow" fault answers after 2.5 s
    store = LocalObjectStore(tmp_path / "sweep")
    grid_key = stored_grid(store, count=2, columns=2, size=24)  # two uploads, one async

    def publish_once(server, run):
        point_at(monkeypatch, server)
        return publish(store, "mastodon", grid_key, INPUTS, options=TILES,
                       idempotency_key=f"sweep-{run}")

    sweep = fault_sweep("mastodon", lambda: FakeMastodon(async_every=2), publish_once,
                        lambda server: server.published())
    print(sweep.line())
    assert sweep.steps == 1 + 2 + 2 + 1  # instance, uploads, a 206 and a 200 poll, status
    assert (sweep.duplicates, sweep.lost, sweep.unfinished) == (0, 0, 0)
    assert sweep.tries > sweep.runs if attempts == 1 else sweep.tries == sweep.runs


# --- refresh --------------------------------------------------------------------------------

def test_refresh_reads_the_status_back_and_notices_a_deletion(store, mastodon):
    post = publish(store, "mastodon", stored_grid(store), INPUTS)
    fresh = get_post(store, post.post_id, refresh=True)
    assert fresh.progress["counts"] == {"replies_count": 0, "reblogs_count": 0,
                                        "favourites_count": 2}
    assert fresh.progress["deleted"] is False and fresh.error == ""

    mastodon.delete_status(post.platform_ids[0])
    gone = get_post(store, post.post_id, refresh=True)
    assert gone.progress["deleted"] is True and "deleted" in gone.error
    assert load_post(store, post.post_id).progress["deleted"] is True


# --- over gRPC ------------------------------------------------------------------------------

def test_publish_and_refresh_over_grpc(store, mastodon):
    grid_key = stored_grid(store)
    running = start_server("publisher", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        stub = publisher_pb2_grpc.PublisherServiceStub(channel)
        post = stub.Publish(publisher_pb2.PublishRequest(
            target=publisher_pb2.PUBLISH_TARGET_MASTODON, grid_key=grid_key,
            caption=publisher_pb2.CaptionInputs(hashtag="sunset", method="DCGAN",
                                                metrics={"swd": 3.5}, model_id="run-1", seed=7),
            mode=publisher_pb2.PUBLISH_MODE_TILES, visibility="unlisted",
            idempotency_key="grpc-1"), timeout=20)
        assert post.state == publisher_pb2.POST_STATE_PUBLISHED
        assert post.url.startswith("https://") and len(post.items) == 4
        assert all(i.platform_id and i.step == "attached" for i in post.items)
        status = mastodon.statuses[post.platform_ids[0]]
        assert status["visibility"] == "unlisted" and len(status["media_attachments"]) == 4
        fresh = stub.GetPost(publisher_pb2.GetPostRequest(post_id=post.post_id, refresh=True),
                             timeout=10)
        assert fresh.url == post.url and fresh.state == publisher_pb2.POST_STATE_PUBLISHED
    finally:
        channel.close()
        running.stop(grace=0)

"""Publishing to Bluesky against a local PDS (tests/local_bluesky.py): both modes, graphemes
and byte-offset facets, the reused session, the 1 MB re-encode, faults, idempotency, gRPC."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import time

import grpc
import numpy as np
import pytest
import requests
from PIL import Image

from services.publisher.server import register
from socialgan.errors import FailedPrecondition, InvalidArgument, Unavailable
from socialgan.publishing import DRAFT, PUBLISHED, CaptionInputs, bluesky_session, get_post, publish
from socialgan.publishing.bluesky import (
    MAX_GRAPHEMES,
    grapheme_count,
    hashtag_facets,
    record_key,
)
from socialgan.publishing.post import load_post, save_post
from socialgan.publishing.targets import PublishOptions
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import keys
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_bluesky import TID, FakeBluesky
from tests.publish_api_base import Answer, PublishApiServer, fault_sweep
from tests.publish_fixtures import image_size, publish_env, stored_grid

INPUTS = CaptionInputs(hashtag="#Emoji", method="DCGAN (PyTorch tutorial), 64x64, 300 steps",
                       metrics={"swd": 12.3, "diversity": 0.87}, model_id="run-1", seed=7,
                       extra_hashtags=("gan", "generativeart"))
TILES = PublishOptions(mode="tiles")


@pytest.fixture(autouse=True)
def _fresh_sessions():
    """Each test starts as a new publisher process: no session in memory."""
    bluesky_session._memory.clear()
    yield
    bluesky_session._memory.clear()


@pytest.fixture
def pds(monkeypatch):
    publish_env(monkeypatch)
    with FakeBluesky() as server:
        point_at(monkeypatch, server)
        yield server


def point_at(monkeypatch, server: FakeBluesky) -> None:
    monkeypatch.setenv("BLUESKY_HANDLE", server.handle)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", server.password)
    monkeypatch.setenv("BLUESKY_PDS_URL", server.base)


def posted(pds: FakeBluesky) -> dict:
    (record,) = pds.records.values()
    return record["value"]


# --- both modes ---------------------------------------------------------------------------

def test_single_post_is_the_grid_with_alt_text_facets_and_a_tid_record_key(store, pds):
    grid = stored_grid(store)
    post = publish(store, "bluesky", grid, INPUTS, idempotency_key="one")

    assert post.state == PUBLISHED
    value = posted(pds)
    (rkey,) = pds.records
    assert TID.fullmatch(rkey) and rkey == record_key(post.post_id, post.created_unix)
    assert post.platform_ids == [f"at://{pds.did}/app.bsky.feed.post/{rkey}"]
    assert post.url == post.urls[0] == f"https://bsky.app/profile/gan.test/post/{rkey}"
    assert value["text"] == post.caption and value["text"].startswith("#emoji, dreamed up")
    assert "Metrics: SWD 12.3 · diversity 0.87" in value["text"]
    assert [f["features"][0]["tag"] for f in value["facets"]] == ["emoji", "gan",
                                                                 "generativeart"]
    (image,) = value["embed"]["images"]
    assert "#emoji" in image["alt"] and "run-1" in image["alt"] and "seed 7" in image["alt"]
    blob = pds.blobs[image["image"]["ref"]["$link"]]
    assert blob[:3] == b"\xff\xd8\xff"  # JPEG, as Content-Type said
    assert (image["aspectRatio"]["width"], image["aspectRatio"]["height"]) == image_size(blob)
    assert blob == store.get_bytes(post.items[0].image_key)  # sent exactly as stored
    assert post.items[0].step == "posted" and post.items[0].platform_id in pds.blobs
    assert any(c.startswith("text <= 300 graphemes") for c in post.checks)


def test_tiles_post_takes_the_first_four_tiles(store, pds):
    grid = stored_grid(store)
    post = publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="tiles")

    images = posted(pds)["embed"]["images"]
    assert len(images) == len(post.items) == 4 and pds.counts() == {"posts": 1, "images": 4}
    assert [img["alt"].split(" from")[0] for img in images] == [
        f"A tile ({i} of 9)" for i in range(1, 5)]
    assert all(img["aspectRatio"] == {"width": 64, "height": 64} for img in images)
    assert "images <= 4: 4; tiles: 4 of 9 (a post takes 4)" in post.checks


def test_a_mode_bluesky_does_not_have_is_refused(store, pds):
    with pytest.raises(InvalidArgument, match="mode"):
        publish(store, "bluesky", stored_grid(store), INPUTS,
                options=PublishOptions(mode="carousel"))
    assert pds.requests == 0


# --- text: graphemes and byte offsets -----------------------------------------------------

def test_graphemes_count_what_a_reader_sees():
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 7 code points
    assert grapheme_count(family) == 1
    assert grapheme_count("\U0001f44d\U0001f3fd") == 1  # thumbs up, skin tone
    assert grapheme_count("\U0001f1eb\U0001f1f7") == 1  # a flag: two regional indicators
    assert grapheme_count("cre\u0300me") == 5  # e + combining grave accent is one
    assert grapheme_count("crème") == 5


def test_a_caption_long_in_code_points_fits_300_graphemes(store, pds):
    flag = "\U0001f1eb\U0001f1f7"  # one grapheme, two code points, eight bytes
    inputs = CaptionInputs(hashtag="emoji", method="flags " + flag * 200)
    post = publish(store, "bluesky", stored_grid(store), inputs, idempotency_key="long")

    text = posted(pds)["text"]
    assert flag * 200 in text  # kept whole: code points would have cut it
    assert grapheme_count(text) <= MAX_GRAPHEMES < len(text)
    assert pds.refused == [] and post.state == PUBLISHED


def test_a_caption_over_3000_bytes_is_shortened_to_fit(store, pds):
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 25 bytes
    inputs = CaptionInputs(hashtag="emoji", method="family " + family * 150)
    post = publish(store, "bluesky", stored_grid(store), inputs, idempotency_key="bytes")

    text = posted(pds)["text"]
    assert len(text.encode()) <= 3000 and grapheme_count(text) <= MAX_GRAPHEMES
    assert "…\nMetrics: none recorded" in text and family in text and pds.refused == []
    assert post.state == PUBLISHED


def test_facets_are_utf8_byte_ranges_of_each_hashtag():
    text = "Café ☕ #crème and #日本, not x#no nor #123 \U0001f469\u200d\U0001f467 #end"
    facets = hashtag_facets(text)
    raw = text.encode()
    covered = [raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode() for f in facets]
    assert covered == ["#crème", "#日本", "#end"]
    assert [f["features"][0]["tag"] for f in facets] == ["crème", "日本", "end"]
    assert facets[0]["index"]["byteStart"] == len("Café ☕ ".encode()) == 10  # not 7


def test_non_ascii_hashtags_reach_the_pds_with_correct_facets(store, pds):
    inputs = CaptionInputs(hashtag="crème", method="Ünïcödé ✨ DCGAN",
                           extra_hashtags=("日本", "art"))
    publish(store, "bluesky", stored_grid(store), inputs, idempotency_key="utf8")
    assert pds.refused == []  # the PDS checked every facet's bytes
    assert [f["features"][0]["tag"] for f in posted(pds)["facets"]] == ["crème", "日本", "art"]


def test_a_hashtag_longer_than_a_bluesky_tag_is_refused_by_name(store, pds):
    with pytest.raises(InvalidArgument, match="caption.hashtag.*64"):
        publish(store, "bluesky", stored_grid(store), CaptionInputs(hashtag="a" * 70))
    assert pds.requests == 0


# --- the session --------------------------------------------------------------------------

def test_the_session_is_made_once_and_reused_across_publishes(store, pds):
    grid = stored_grid(store)
    for i in range(3):
        publish(store, "bluesky", grid, INPUTS, idempotency_key=f"reuse-{i}")
    assert pds.sessions_created == 1 and len(pds.records) == 3
    paths = [path for _, _, path in pds.log]
    assert paths.count("/xrpc/com.atproto.server.createSession") == 1


def test_a_restarted_publisher_reuses_the_session_kept_in_its_state_dir(store, pds, tmp_path,
                                                                       monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("PUBLISHER_STATE_DIR", str(state))
    grid = stored_grid(store)
    publish(store, "bluesky", grid, INPUTS, idempotency_key="before")
    bluesky_session._memory.clear()  # a new process
    publish(store, "bluesky", grid, INPUTS, idempotency_key="after")

    assert pds.sessions_created == 1 and len(pds.records) == 2
    (kept,) = list(state.iterdir())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert pds.password not in kept.read_text()
    # No token, and not the password, anywhere in object storage.
    tokens = [*pds.access, *pds.refresh, pds.password]
    for key in store.list(""):
        data = store.get_bytes(key)
        assert not any(t.encode() in data for t in tokens), key


def test_a_session_file_others_can_read_is_not_trusted(store, pds, tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("PUBLISHER_STATE_DIR", str(state))
    grid = stored_grid(store)
    publish(store, "bluesky", grid, INPUTS, idempotency_key="a")
    (kept,) = list(state.iterdir())
    os.chmod(kept, 0o644)
    bluesky_session._memory.clear()
    publish(store, "bluesky", grid, INPUTS, idempotency_key="b")
    assert pds.sessions_created == 2
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # rewritten private


def test_an_expired_access_token_is_refreshed_not_signed_in_again(store, pds):
    grid = stored_grid(store)
    publish(store, "bluesky", grid, INPUTS, idempotency_key="first")
    pds.expire_access_tokens()
    post = publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="second")

    assert post.state == PUBLISHED and len(pds.records) == 2
    assert (pds.sessions_created, pds.sessions_refreshed) == (1, 1)


def test_a_revoked_session_signs_in_again_once(store, pds):
    grid = stored_grid(store)
    publish(store, "bluesky", grid, INPUTS, idempotency_key="first")
    pds.revoke_sessions()
    publish(store, "bluesky", grid, INPUTS, idempotency_key="second")
    assert pds.sessions_created == 2 and len(pds.records) == 2


def test_a_wrong_app_password_fails_naming_the_variables_and_leaks_nothing(store, pds,
                                                                         monkeypatch, caplog):
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "wrong-password-5678")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FailedPrecondition, match="BLUESKY_APP_PASSWORD") as err:
        publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="bad")
    assert "BLUESKY_HANDLE" in str(err.value) and "wrong-password" not in str(err.value)
    assert "wrong-password" not in caplog.text
    record = store.get_bytes(keys.post_record_key(load_post_id(store)))
    assert b"wrong-password" not in record and b'"state": "failed"' in record
    assert pds.records == {} and pds.sessions_created == 0


def load_post_id(store) -> str:
    (key,) = [k for k in store.list("posts/") if k.endswith("post.json")]
    return key.split("/")[1]


def test_missing_credentials_refuse_before_anything_is_sent(store, pds, monkeypatch):
    monkeypatch.delenv("BLUESKY_HANDLE")
    with pytest.raises(FailedPrecondition, match="needs account credentials.*BLUESKY_HANDLE"):
        publish(store, "bluesky", stored_grid(store), INPUTS)
    assert pds.requests == 0 and list(store.list("posts/")) == []


def test_the_password_goes_in_the_body_only_and_nothing_secret_is_logged(store, pds, caplog):
    caplog.set_level(logging.DEBUG)
    post = publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="where")
    assert pds.sign_in_auth == [""]  # createSession carries no Authorization header
    assert len(pds.auth_seen) == pds.requests - 1
    assert not any(pds.password in seen for seen in pds.auth_seen)
    secrets = [pds.password, *pds.access, *pds.refresh]
    shown = caplog.text + repr(post) + json.dumps(post.to_json())
    assert not any(s in shown for s in secrets)


class RedirectingPds(FakeBluesky):
    """A PDS whose uploadBlob answers with a redirect to another server."""

    elsewhere = ""

    def route(self, req):
        if req.path.endswith("uploadBlob"):
            return Answer(307, {}, {"Location": f"{self.elsewhere}/steal"})
        return super().route(req)


class Elsewhere(PublishApiServer):
    def route(self, req):
        return Answer(200, {})


def test_a_redirect_never_takes_the_token_to_another_server(store, monkeypatch):
    publish_env(monkeypatch)
    with Elsewhere() as other, RedirectingPds() as pds:
        pds.elsewhere = other.base
        point_at(monkeypatch, pds)
        with pytest.raises(FailedPrecondition, match="redirect"):
            publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="r")
        assert other.requests == 0 and other.auth_seen == []
        assert pds.records == {}


def test_the_pds_url_must_be_https_outside_loopback(store, pds, monkeypatch):
    monkeypatch.setenv("BLUESKY_PDS_URL", "http://bsky.example")
    with pytest.raises(FailedPrecondition, match="https"):
        publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="plain")
    assert pds.requests == 0


# --- images -------------------------------------------------------------------------------

def noisy_grid(store, side: int = 1400) -> str:
    """A grid whose JPEG at good quality is well over 1 MB (noise does not compress)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    key = keys.grid_key("run-1", "noise.png")
    store.put_bytes(key, buf.getvalue(), "image/png")
    return key


def test_a_grid_over_1_mb_is_re_encoded_to_fit_and_accepted(store, pds):
    grid = noisy_grid(store)
    assert len(store.get_bytes(grid)) > 1_000_000
    post = publish(store, "bluesky", grid, INPUTS, idempotency_key="big")

    (item,) = post.items
    assert item.size_bytes <= 1_000_000 and item.content_type == "image/jpeg"
    assert item.width <= 1400 and pds.refused == []
    blob = pds.blobs[posted(pds)["embed"]["images"][0]["image"]["ref"]["$link"]]
    assert len(blob) == item.size_bytes
    # What it guards against: the PDS refuses a blob over the cap.
    session = requests.post(f"{pds.base}/xrpc/com.atproto.server.createSession",
                            json={"identifier": pds.handle, "password": pds.password},
                            timeout=5).json()
    refused = requests.post(f"{pds.base}/xrpc/com.atproto.repo.uploadBlob",
                            data=b"\xff\xd8\xff" + b"\0" * 1_000_000, timeout=5,
                            headers={"Content-Type": "image/jpeg",
                                     "Authorization": f"Bearer {session['accessJwt']}"})
    assert refused.status_code == 400 and refused.json()["error"] == "BlobTooLarge"


def test_a_dry_run_sends_nothing_and_stores_the_final_jpegs(store, pds, monkeypatch):
    monkeypatch.delenv("BLUESKY_APP_PASSWORD")  # no account needed to preview
    post = publish(store, "bluesky", noisy_grid(store, 900), INPUTS, dry_run=True)
    tiles = publish(store, "bluesky", stored_grid(store), INPUTS, dry_run=True, options=TILES)

    assert pds.requests == 0
    assert post.state == DRAFT and tiles.state == DRAFT and len(tiles.items) == 4
    for item in post.items + tiles.items:
        data = store.get_bytes(item.image_key)
        assert item.image_key.endswith(".jpg") and data[:3] == b"\xff\xd8\xff"
        assert len(data) == item.size_bytes <= 1_000_000
        assert image_size(data) == (item.width, item.height) and item.alt_text


# --- faults, retries, idempotency ---------------------------------------------------------

def test_429_and_503_in_the_middle_are_retried_without_a_second_post(store, pds):
    pds.inject(1, "429")  # the first uploadBlob
    pds.inject(3, "503")  # the second uploadBlob
    post = publish(store, "bluesky", stored_grid(store), INPUTS, options=TILES,
                   idempotency_key="faults")
    assert post.state == PUBLISHED and pds.counts() == {"posts": 1, "images": 4}


def test_a_rate_limited_sign_in_waits_for_ratelimit_reset_or_fails_fast(store, pds,
                                                                       monkeypatch):
    pds.session_limit_reset = time.time() + 3600  # the daily createSession cap
    started = time.monotonic()
    with pytest.raises(Unavailable, match="PUBLISH_MAX_WAIT_S"):
        publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="limited")
    assert time.monotonic() - started < 5 and pds.requests == 1


def test_a_lost_create_record_answer_is_confirmed_with_get_record(store, pds):
    pds.inject(2, "lost")  # createSession, uploadBlob, createRecord
    post = publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="lost")

    assert post.state == PUBLISHED and len(pds.records) == 1
    paths = [p for _, _, p in pds.log]
    assert paths[2:] == ["/xrpc/com.atproto.repo.createRecord",
                         "/xrpc/com.atproto.repo.createRecord",  # refused: the key exists
                         "/xrpc/com.atproto.repo.getRecord"]
    assert post.platform_ids == [next(iter(pds.records.values()))["uri"]]


def test_a_crash_between_posting_and_recording_resumes_without_a_second_post(store, pds):
    grid = stored_grid(store)
    first = publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="crash")
    crashed = load_post(store, first.post_id)  # as if the process died before saving
    crashed.state, crashed.url, crashed.platform_ids, crashed.urls = "publishing", "", [], []
    crashed.progress.pop("uri")
    save_post(store, crashed)

    again = publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="crash")
    assert again.state == PUBLISHED and again.url == first.url
    assert again.platform_ids == first.platform_ids and len(pds.records) == 1
    assert pds.counts() == {"posts": 1, "images": 4}
    # The blobs were recent: they were not uploaded again.
    assert [p for _, _, p in pds.log].count("/xrpc/com.atproto.repo.uploadBlob") == 4


def test_blobs_the_pds_collected_are_uploaded_again_on_the_next_try(store, pds, monkeypatch):
    monkeypatch.setenv("PUBLISH_MAX_ATTEMPTS", "1")
    grid = stored_grid(store)
    pds.inject(5, "503")  # createRecord, after the 4 uploads
    with pytest.raises(Unavailable):
        publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="gc")
    pds.blobs.clear()  # unreferenced uploads garbage-collected
    with pytest.raises(FailedPrecondition, match="blob"):
        publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="gc")
    post = publish(store, "bluesky", grid, INPUTS, options=TILES, idempotency_key="gc")
    assert post.state == PUBLISHED and post.attempts == 3
    assert pds.counts() == {"posts": 1, "images": 4} and len(pds.blobs) == 4


def test_the_same_idempotency_key_returns_the_same_post(store, pds):
    grid = stored_grid(store)
    first = publish(store, "bluesky", grid, INPUTS, idempotency_key="same")
    requests_after_first = pds.requests
    again = publish(store, "bluesky", grid, INPUTS, idempotency_key="same")
    assert again == first and pds.requests == requests_after_first and len(pds.records) == 1


def test_refresh_reads_whether_the_post_still_exists(store, pds):
    post = publish(store, "bluesky", stored_grid(store), INPUTS, idempotency_key="refresh")
    live = get_post(store, post.post_id, refresh=True)
    assert live.progress["deleted"] is False and live.error == ""
    pds.records.clear()  # the author deleted it
    gone = get_post(store, post.post_id, refresh=True)
    assert gone.progress["deleted"] is True and "was deleted" in gone.error
    assert load_post(store, post.post_id).progress["deleted"] is True  # saved
    assert pds.sessions_created == 1  # getRecord is public: no sign-in spent on it


@pytest.mark.parametrize("attempts, mode, steps", [(4, "single", 3), (1, "tiles", 6)],
                         ids=["retried-calls", "retried-publishes"])
def test_fault_sweep_every_request_every_fault_no_duplicates(store, monkeypatch, attempts,
                                                             mode, steps):
    """With 4 attempts a call absorbs the fault; with 1 every fault fails the Publish, and
    the next Publish with the same key resumes from the record (and getRecord confirms a
    createRecord whose answer was lost). Steps: createSession, uploadBlob per image,
    createRecord."""
    publish_env(monkeypatch)
    monkeypatch.setenv("PUBLISH_MAX_ATTEMPTS", str(attempts))
    grid = stored_grid(store)
    current = {}

    def publish_once(server: FakeBluesky, run: int):
        if current.get("run") != run:  # a fresh server: a fresh publisher process
            current["run"] = run
            bluesky_session._memory.clear()
            point_at(monkeypatch, server)
        return publish(store, "bluesky", grid, INPUTS, options=PublishOptions(mode=mode),
                       idempotency_key=f"sweep-{attempts}-{run}")

    sweep = fault_sweep("bluesky", FakeBluesky, publish_once, FakeBluesky.counts)
    print(f"{sweep.line()} (PUBLISH_MAX_ATTEMPTS={attempts})")
    assert sweep.steps == steps
    assert (sweep.duplicates, sweep.lost, sweep.unfinished) == (0, 0, 0)


# --- over gRPC ----------------------------------------------------------------------------

def test_publish_to_bluesky_over_grpc(store, pds):
    running = start_server("publisher", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        stub = publisher_pb2_grpc.PublisherServiceStub(channel)
        caption = publisher_pb2.CaptionInputs(hashtag="emoji", method="DCGAN",
                                              metrics={"swd": 3.5}, model_id="run-1", seed=7)
        request = publisher_pb2.PublishRequest(
            target=publisher_pb2.PUBLISH_TARGET_BLUESKY, grid_key=stored_grid(store),
            caption=caption, mode=publisher_pb2.PUBLISH_MODE_TILES, idempotency_key="grpc")
        post = stub.Publish(request, timeout=30)
        assert post.state == publisher_pb2.POST_STATE_PUBLISHED
        assert post.url.startswith("https://bsky.app/profile/gan.test/post/")
        assert len(post.items) == 4 and all(i.step == "posted" for i in post.items)
        assert stub.Publish(request, timeout=30) == post
        assert len(pds.records) == 1

        with pytest.raises(grpc.RpcError) as err:
            stub.Publish(publisher_pb2.PublishRequest(
                target=publisher_pb2.PUBLISH_TARGET_BLUESKY, grid_key=request.grid_key,
                caption=caption, mode=publisher_pb2.PUBLISH_MODE_CAROUSEL), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        channel.close()
        running.stop(grace=0)

"""ChooseHashtag over real gRPC: the publisher reads the replies under this round's posts
from the network (a local Mastodon in its documented shape), tallies the votes, falls back to
what is trending when too few voted, and records the evidence under runs/choices/."""

from __future__ import annotations

import grpc
import pytest

from services.publisher.server import register
from socialgan.publishing import CaptionInputs, publish
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_mastodon import OWN_ACCOUNT, FakeMastodon
from tests.local_mastodon import TOKEN as MASTODON_TOKEN
from tests.publish_fixtures import publish_env, stored_grid

VOTERS = [{"id": f"3000{i}", "acct": f"voter{i}@art.example"} for i in range(4)]
TRENDS = [{"name": "Caturday", "url": "https://m.example/tags/caturday",
           "history": [{"day": "1732233600", "uses": "120", "accounts": "80"}]}]


@pytest.fixture
def publisher(store, monkeypatch):
    publish_env(monkeypatch)
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")  # the trends: loopback only
    monkeypatch.setenv("BLUESKY_APPVIEW_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AUDIENCE_MIN_VOTES", "3")
    with FakeMastodon() as mastodon:
        mastodon.trends = TRENDS
        monkeypatch.setenv("MASTODON_PUBLISH_TOKEN", MASTODON_TOKEN)
        monkeypatch.setenv("MASTODON_PUBLISH_INSTANCE_URL", mastodon.base)
        monkeypatch.setenv("AUDIENCE_TREND_INSTANCES", mastodon.base)
        running = start_server("publisher", lambda s: register(s, store), port=0,
                               token=TEST_TOKEN)
        channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
        try:
            yield (publisher_pb2_grpc.PublisherServiceStub(channel), mastodon,
                   f"127.0.0.1:{running.port}")
        finally:
            channel.close()
            running.stop(grace=0)


def _published_status(store, mastodon) -> str:
    post = publish(store, "mastodon", stored_grid(store), CaptionInputs(
        hashtag="emoji", method="DCGAN", metrics={"swd": 3.0}), idempotency_key="round-1")
    return post.platform_ids[0]


def test_the_audience_votes_and_the_evidence_is_recorded(store, publisher):
    stub, mastodon, _ = publisher
    status = _published_status(store, mastodon)
    for voter in VOTERS[:3]:
        mastodon.add_reply(status, voter, "I vote #NorthernLights!")
    mastodon.add_reply(status, VOTERS[0], "again #NorthernLights")  # one vote per account
    mastodon.add_reply(status, VOTERS[3], "#Sunset please")
    mastodon.add_reply(status, OWN_ACCOUNT, "Reply with a #hashtag to choose the next run.")

    choice = stub.ChooseHashtag(publisher_pb2.ChooseHashtagRequest(
        mode=publisher_pb2.CHOOSE_MODE_VOTE), timeout=30)

    assert (choice.hashtag, choice.method, choice.votes) == ("northernlights", "vote", 3)
    assert choice.caption_line == "Chosen by 3 votes."
    evidence = store.get_json(choice.evidence_key)
    assert evidence["winner"] == "northernlights"
    assert "voter0" not in str(evidence)  # voters are hashed by default


def test_too_few_votes_fall_back_to_what_is_trending(store, publisher):
    stub, mastodon, _ = publisher
    status = _published_status(store, mastodon)
    mastodon.add_reply(status, VOTERS[0], "#Sunset")

    choice = stub.ChooseHashtag(publisher_pb2.ChooseHashtagRequest(), timeout=30)

    assert (choice.hashtag, choice.method) == ("caturday", "trending")
    assert any(s.startswith("bluesky") for s in choice.skipped)  # a dead source, left out
    with pytest.raises(grpc.RpcError) as err:  # vote alone: no winner
        stub.ChooseHashtag(publisher_pb2.ChooseHashtagRequest(
            mode=publisher_pb2.CHOOSE_MODE_VOTE), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(("request_", "field"), [
    (publisher_pb2.ChooseHashtagRequest(mode=99), "mode"),
    (publisher_pb2.ChooseHashtagRequest(mode=publisher_pb2.CHOOSE_MODE_MANUAL,
                                        hashtag="no spaces allowed"), "hashtag"),
    (publisher_pb2.ChooseHashtagRequest(mode=publisher_pb2.CHOOSE_MODE_TRENDING,
                                        hashtag="x"), "hashtag"),
])
def test_bad_choose_requests_name_their_field(publisher, request_, field):
    stub, _, _ = publisher
    with pytest.raises(grpc.RpcError) as err:
        stub.ChooseHashtag(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)


def test_the_cli_asks_the_publisher(store, publisher, monkeypatch, capsys):
    from socialgan.cli import main

    _, _, address = publisher
    monkeypatch.setenv("PUBLISHER_SERVICE_ADDR", address)
    assert main(["choose", "--remote", "--mode", "manual", "--hashtag", "#Sunset"]) == 0
    out = capsys.readouterr().out
    assert "hashtag:    #sunset" in out and "runs/choices/" in out

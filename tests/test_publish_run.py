"""`socialgan run --target mastodon|instagram|bluesky|x` end to end: the four services and
TorchServe on loopback (one local stack), a real scrape, filter, training and grid, and the
post made on each network's local API server (tests/local_*.py). The publishing tokens reach
the publisher process alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from socialgan.cli import main
from socialgan.supervisor import SERVICES, LocalStack
from tests import local_instagram, local_mastodon, local_x
from tests.conftest import TWEMOJI_DIR
from tests.local_bluesky import FakeBluesky
from tests.local_instagram import FakeInstagram, StaticFiles
from tests.local_mastodon import FakeMastodon
from tests.local_x import FakeX

pytestmark = pytest.mark.timeout(600)

SECRETS = {"MASTODON_PUBLISH_TOKEN": local_mastodon.TOKEN,
           "INSTAGRAM_PUBLISH_TOKEN": local_instagram.TOKEN,
           "X_PUBLISH_ACCESS_TOKEN": local_x.TOKEN}


@pytest.fixture(scope="module")
def networks():
    with FakeMastodon() as mastodon, FakeInstagram(polls_in_progress=1) as instagram, \
            FakeBluesky() as bluesky, FakeX() as x:
        yield {"mastodon": mastodon, "instagram": instagram, "bluesky": bluesky, "x": x}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, networks):
    workdir = tmp_path_factory.mktemp("stack")
    storage = workdir / "storage"
    storage.mkdir()
    bluesky = networks["bluesky"]
    with StaticFiles(storage) as media_host:  # the public host Instagram fetches images from
        env = {
            "PUBLISHER_ALLOW_LOOPBACK_HTTP": "true", "PUBLISH_TIMEOUT_S": "10",
            "PUBLISH_BACKOFF_S": "0.01",
            **SECRETS,
            "MASTODON_PUBLISH_INSTANCE_URL": networks["mastodon"].base,
            "INSTAGRAM_PUBLISH_USER_ID": local_instagram.USER_ID,
            "INSTAGRAM_PUBLISH_GRAPH_URL": f"{networks['instagram'].base}/v24.0",
            "INSTAGRAM_POLL_INTERVAL_S": "0", "PUBLIC_MEDIA_BASE_URL": media_host.base,
            "BLUESKY_HANDLE": bluesky.handle, "BLUESKY_APP_PASSWORD": bluesky.password,
            "BLUESKY_PDS_URL": bluesky.base,
            "X_PUBLISH_API_URL": networks["x"].base,
            # ChooseHashtag's trending sources: the local servers, reached on loopback only.
            "AUDIENCE_TREND_INSTANCES": networks["mastodon"].base,
            "BLUESKY_APPVIEW_URL": bluesky.base, "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
        }
        with LocalStack(workdir=workdir, storage_dir=storage, extra_env=env) as endpoints:
            yield SimpleNamespace(endpoints=endpoints, storage=storage)




@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pics")
    for path in sorted(TWEMOJI_DIR.glob("*.png"))[:24]:
        shutil.copy(path, folder / path.name)
    return folder


def _run(stack, monkeypatch, capsys, pictures, *args: str,
         hashtag: str = "Emoji") -> dict[str, str]:
    e = stack.endpoints
    for name in SERVICES:
        monkeypatch.setenv(f"{name.upper()}_SERVICE_ADDR", getattr(e, name))
    monkeypatch.setenv("SOCIALGAN_API_TOKEN", e.token)
    chosen = ["--hashtag", hashtag] if hashtag else []
    rc = main(["run", "--remote", *chosen, "--source", f"folder:{pictures}",
               "--steps", "3", "--option", "ngf=4", "--option", "ndf=4",
               "--option", "batch_size=8", "-q", *args])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
            for line in captured.out.splitlines() if ":" in line and not line.startswith(" ")}


@pytest.mark.parametrize(("target", "mode", "counted"), [
    ("mastodon", "single", ("statuses", 1)),
    ("bluesky", "tiles", ("images", 4)),
    ("x", "single", ("tweets", 1)),
    ("instagram", "single", ("posts", 1)),
    ("instagram", "carousel", ("posts", 1)),
    ("instagram", "profile-grid", ("posts", 9)),
])
def test_run_publishes_to_each_network(stack, networks, monkeypatch, capsys, pictures,
                                       target, mode, counted):
    server = networks[target]
    counts = getattr(server, "published", None) or server.counts
    kind, expected = counted
    before = counts().get(kind, 0)
    out = _run(stack, monkeypatch, capsys, pictures, "--target", target, "--mode", mode)
    assert counts().get(kind, 0) - before == expected
    assert out["post"].startswith("https://"), out
    assert "#emoji" in out["caption"]


def test_publishing_tokens_reach_only_the_publisher(stack):
    """Every service process's environment, read from /proc: the publishing secrets are in
    the publisher's alone (and TorchServe's holds none of them)."""
    import psutil

    seen: dict[str, set[str]] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            environ = proc.environ()
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        holders = {name for name, value in SECRETS.items() if environ.get(name) == value}
        for service in (*SERVICES, "torchserve"):
            if f"services.{service}.server" in cmdline or (
                    service == "torchserve" and "torchserve" in cmdline):
                seen.setdefault(service, set()).update(holders)
    assert seen.get("publisher") == set(SECRETS), seen
    for service in ("scraper", "trainer", "generator", "torchserve"):
        assert not seen.get(service), (service, seen)


def test_run_publishes_a_generated_caption(stack, networks, monkeypatch, capsys, pictures):
    """Caption mode "generated": the same pictures scraped earlier with their posts'
    captions (the standard library's docstring summaries, PSF licence) stand in storage;
    the run trains the caption model on them, and the post's first line is its line, the
    run's facts after it."""
    import hashlib
    import json
    import time

    from socialgan.storage import keys
    from socialgan.text.stdlib_captions import stdlib_captions

    captions = stdlib_captions(96)
    root = stack.storage
    for i, path in enumerate(sorted(pictures.iterdir())):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        image_key = keys.raw_image_key("captioned", sha, ".png")
        (root / image_key).parent.mkdir(parents=True, exist_ok=True)
        (root / image_key).write_bytes(data)
        (root / keys.raw_sidecar_key("captioned", sha)).write_text(json.dumps({
            "sha256": sha, "key": image_key, "ext": ".png", "size": len(data),
            "hashtag": "captioned", "origin": "test", "scraped_unix": time.time(),
            "source": "mastodon", "caption": captions[2 * i],
            "extra": {"alt_text": captions[2 * i + 1]}}))
    mastodon = networks["mastodon"]
    before = set(mastodon.statuses)
    out = _run(stack, monkeypatch, capsys, pictures, "--target", "mastodon",
               "--caption", "generated", "--caption-seconds", "4", hashtag="captioned")
    (new,) = set(mastodon.statuses) - before
    text = mastodon.statuses[new]["content"]
    lines = text.splitlines()
    assert lines[0] and not lines[0].startswith("#captioned"), text  # the model's line
    assert lines[1] == "#captioned, dreamed up by a GAN." and "Method:" in text
    assert out["caption"] == lines[0]


def test_run_with_the_hashtag_the_audience_voted_for(stack, networks, monkeypatch, capsys,
                                                     pictures):
    """--choose vote-else-trending: three accounts replied #NorthernLights under our last
    Mastodon post (one of them twice, and we replied ourselves); the run trains on that
    hashtag and its post says how it was chosen and invites the next vote."""
    from tests.local_mastodon import OWN_ACCOUNT

    mastodon = networks["mastodon"]
    last = max(mastodon.statuses, key=int)
    for i in range(3):
        mastodon.add_reply(last, {"id": f"4000{i}", "acct": f"fan{i}@art.example"},
                           "next: #NorthernLights")
    mastodon.add_reply(last, {"id": "40000", "acct": "fan0@art.example"}, "#NorthernLights!")
    mastodon.add_reply(last, OWN_ACCOUNT, "#SomethingElse")
    before = set(mastodon.statuses)
    out = _run(stack, monkeypatch, capsys, pictures, "--target", "mastodon",
               "--choose", "vote-else-trending", hashtag="")
    (new,) = set(mastodon.statuses) - before
    text = mastodon.statuses[new]["content"]
    assert text.startswith("#northernlights, dreamed up by a GAN.\nChosen by 3 votes."), text
    assert "Reply with a hashtag to choose the next run." in text
    assert out["caption"].startswith("#northernlights")
    choices = sorted((stack.storage / "runs" / "choices").glob("*.json"))
    assert choices and "northernlights" in choices[-1].read_text()

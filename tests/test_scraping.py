"""Scraping from folders, zips and URL lists into content-addressed raw/ storage."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.jobs import CANCELLED, JobRunner
from socialgan.scraping import (
    Downloader,
    DownloadPolicy,
    FetchError,
    FolderSource,
    UrlListSource,
    ZipSource,
    parse_source_spec,
    run_scrape,
)
from socialgan.scraping.download import is_public_address, parse_retry_after
from socialgan.storage import keys
from socialgan.v1 import scraper_pb2
from tests.local_image_server import ImageServer

FAST = DownloadPolicy(allow_private=True, backoff_base=0.01, backoff_max=0.05,
                      connect_timeout=2, read_timeout=2)


@pytest.fixture(autouse=True)
def _import_root_everywhere(monkeypatch):
    # These tests are about what sources read, not where from: the import root is the whole
    # file system (bar /proc, /sys, /dev). tests/test_security_paths.py pins the root itself.
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", "/")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with ImageServer() as running:
        yield running


@pytest.fixture
def messy_folder(tmp_path, twemoji_paths) -> Path:
    """10 distinct images, 3 exact copies in a subfolder, a corrupt and an empty 'image',
    a text file and a hidden file (neither is a candidate)."""
    root = tmp_path / "pics"
    (root / "sub").mkdir(parents=True)
    for path in twemoji_paths[:10]:
        shutil.copy(path, root / path.name)
    for i, path in enumerate(twemoji_paths[:3]):
        shutil.copy(path, root / "sub" / f"copy{i}.png")
    (root / "corrupt.png").write_bytes(twemoji_paths[0].read_bytes()[:8] + b"garbage" * 20)
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not a candidate")
    shutil.copy(twemoji_paths[20], root / ".hidden.png")
    return root


def raw_images(store, hashtag: str) -> list[str]:
    return [k for k in store.list(keys.raw_prefix(hashtag)) if not k.endswith(".json")]


def test_folder_scrape_stores_each_distinct_image_once_and_counts_failures(
        store, messy_folder, twemoji_paths):
    result = run_scrape(store, parse_source_spec(f"folder:{messy_folder}"), "#Sunset")

    c = result.counts
    assert (c.found, c.downloaded, c.new, c.duplicates, c.failed) == (15, 13, 10, 3, 2)
    assert c.failed_by_reason == {"undecodable": 1, "empty": 1}
    expected = {sha(p.read_bytes()) for p in twemoji_paths[:10]}
    stored = raw_images(store, "sunset")
    assert {k.split("/")[-1] for k in stored} == {f"{s}.png" for s in expected}
    for key in stored:  # content-addressed: the name is the content's sha256
        assert sha(store.get_bytes(key)) == key.split("/")[-1].removesuffix(".png")
        assert store.stat(key).content_type == "image/png"
    sidecar = store.get_json(keys.raw_sidecar_key("sunset", next(iter(expected))))
    assert sidecar["source"] == "folder" and sidecar["hashtag"] == "sunset"
    assert (sidecar["width"], sidecar["height"]) == (64, 64)
    manifest = store.get_json(keys.scrape_manifest_key(result.job_id))
    assert manifest["state"] == "succeeded"
    assert set(manifest["sha256s"]) == expected and len(manifest["sha256s"]) == 10
    assert manifest["counts"]["failed_by_reason"] == {"undecodable": 1, "empty": 1}
    assert manifest["counts"]["bytes"] == c.bytes > 0


def test_rerun_skips_what_was_seen_and_rewrites_nothing(store, messy_folder):
    run_scrape(store, FolderSource(messy_folder), "sunset")
    before = {p: p.stat().st_mtime_ns for p in (store.root / "raw").rglob("*")}

    again = run_scrape(store, FolderSource(messy_folder), "sunset")
    assert (again.counts.found, again.counts.skipped, again.counts.new) == (15, 15, 0)
    full = run_scrape(store, FolderSource(messy_folder), "sunset", incremental=False)
    assert (full.counts.new, full.counts.duplicates, len(full.sha256s)) == (0, 13, 10)

    after = {p: p.stat().st_mtime_ns for p in (store.root / "raw").rglob("*")}
    assert after == before


def test_content_addressing_holds_on_both_backends(any_store, tmp_path, twemoji_paths):
    folder = tmp_path / "few"
    folder.mkdir()
    for path in twemoji_paths[:4]:
        shutil.copy(path, folder / path.name)
        shutil.copy(path, folder / f"again-{path.name}")

    first = run_scrape(any_store, FolderSource(folder), "emoji")
    second = run_scrape(any_store, FolderSource(folder), "emoji", incremental=False)

    assert (first.counts.new, first.counts.duplicates) == (4, 4)
    assert (second.counts.new, second.counts.duplicates) == (0, 8)
    assert len(raw_images(any_store, "emoji")) == 4
    assert len(list(any_store.list("raw/emoji/"))) == 8  # 4 images + 4 sidecars


def test_limit_stops_after_that_many_distinct_images(store, twemoji_paths):
    source = FolderSource(twemoji_paths[0].parent)
    result = run_scrape(store, source, "emoji", limit=5)
    assert len(result.sha256s) == 5 and result.counts.found == 5
    assert len(raw_images(store, "emoji")) == 5
    with pytest.raises(InvalidArgument, match="limit"):
        run_scrape(store, source, "emoji", limit=0)


def test_zip_source_reads_image_members_only(store, tmp_path, twemoji_paths):
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in twemoji_paths[:6]:
            zf.write(path, f"set/{path.name}")
        zf.write(twemoji_paths[0], "set/dup.png")
        zf.writestr("__MACOSX/set/._a.png", b"resource fork")
        zf.writestr("readme.txt", "hello")
        zf.mkdir("empty-dir")

    for spec in (f"zip:{archive}", f"folder:{archive}", str(archive)):
        assert isinstance(parse_source_spec(spec), ZipSource)
    result = run_scrape(store, parse_source_spec(f"zip:{archive}"), "emoji")

    c = result.counts
    assert (c.found, c.new, c.duplicates, c.failed) == (7, 6, 1, 0)


def test_zip_members_past_the_size_cap_are_not_inflated(store, tmp_path, twemoji_paths):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 5_000_000)  # ~5 kB packed
        zf.write(twemoji_paths[0], "ok.png")

    result = run_scrape(store, ZipSource(archive, max_member_bytes=1_000_000), "emoji")

    assert result.counts.failed_by_reason == {"too_large": 1}
    assert result.counts.new == 1


def test_url_list_scrape_retries_transient_errors_and_counts_permanent_ones(
        store, server, tmp_path, twemoji_paths):
    names = [p.name for p in twemoji_paths[:5]]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join([
        "# images for the test",
        *[server.url(f"/img/{n}") for n in names],
        "",
        server.url("/img/" + names[0]),  # listed twice: fetched once
        server.url("/missing.png"),
        server.url(f"/flaky/{twemoji_paths[5].name}"),
        server.url("/text.png"),
        server.url(f"/redirect/{twemoji_paths[6].name}"),
        "ftp://example.com/x.png",
    ]) + "\n")
    source = UrlListSource(path=listing, downloader=Downloader(FAST))

    result = run_scrape(store, source, "emoji")

    c = result.counts
    assert c.found == 10
    assert (c.new, c.duplicates) == (7, 0)
    assert c.failed_by_reason == {"http_404": 1, "not_an_image": 1, "not_a_url": 1}
    assert server.hits["/missing.png"] == 1  # permanent: not retried
    assert server.hits[f"/flaky/{twemoji_paths[5].name}"] == 2  # 500, then 200
    assert server.hits["/img/" + names[0]] == 1


def test_retry_after_is_honoured(server, twemoji_paths):
    delays: list[float] = []
    downloader = Downloader(FAST, sleep=delays.append)
    data = downloader.get(server.url(f"/limited/{twemoji_paths[0].name}"))
    assert data == twemoji_paths[0].read_bytes()
    assert delays == [3.0]


def test_retries_are_bounded_with_growing_backoff(server):
    delays: list[float] = []
    policy = DownloadPolicy(allow_private=True, max_attempts=4, backoff_base=1, backoff_max=3)
    with pytest.raises(FetchError) as err:
        Downloader(policy, sleep=delays.append).get(server.url("/always503"))
    assert err.value.reason == "http_503"
    assert server.hits["/always503"] == 4
    assert len(delays) == 3
    for delay, ceiling in zip(delays, [1, 2, 3], strict=True):  # jittered in [ceiling/2, ceiling]
        assert ceiling / 2 <= delay <= ceiling


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
def test_bodies_over_the_size_cap_are_refused(server, path):
    policy = DownloadPolicy(allow_private=True, max_bytes=100_000)
    with pytest.raises(FetchError) as err:
        Downloader(policy).get(server.url(path))
    assert err.value.reason == "too_large"
    assert server.hits[path] == 1


def test_slow_servers_time_out_after_bounded_retries(twemoji_paths):
    policy = DownloadPolicy(allow_private=True, read_timeout=0.2, max_attempts=2,
                            backoff_base=0.01)
    with ImageServer(slow_seconds=1.0) as slow:
        with pytest.raises(FetchError) as err:
            Downloader(policy).get(slow.url(f"/slow/{twemoji_paths[0].name}"))
        assert err.value.reason == "timeout"
        assert slow.hits[f"/slow/{twemoji_paths[0].name}"] == 2


def test_ssrf_guard_refuses_private_addresses_unless_allowed(
        store, server, monkeypatch, twemoji_paths):
    url = server.url(f"/img/{twemoji_paths[0].name}")
    with pytest.raises(FetchError) as err:
        Downloader(DownloadPolicy(allow_private=False)).get(url)
    assert err.value.reason == "blocked_address"
    # A public-looking name that resolves to a private address is refused too.
    inside = Downloader(DownloadPolicy(allow_private=False), resolve=lambda h, p: ["10.1.2.3"])
    with pytest.raises(FetchError, match="10.1.2.3"):
        inside.get("http://images.example.com/a.png")
    assert sum(server.hits.values()) == 0

    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "false")
    with pytest.raises(FailedPrecondition, match="blocked_address"):
        run_scrape(store, parse_source_spec(url), "emoji")
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    assert run_scrape(store, parse_source_spec(url), "emoji").counts.new == 1


@pytest.mark.parametrize("ip, public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
    ("192.168.1.1", False), ("172.16.0.1", False), ("169.254.169.254", False), ("::1", False),
    ("fe80::1", False), ("fd00::1", False), ("::ffff:127.0.0.1", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False),
])
def test_public_address_check(ip, public):
    assert is_public_address(ip) is public


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_spec_strings_name_their_sources(tmp_path, twemoji_paths):
    listing = tmp_path / "list.txt"
    listing.write_text("# only a comment\nhttps://example.com/a.png\n")
    folder = twemoji_paths[0].parent
    assert isinstance(parse_source_spec(f"folder:{folder}"), FolderSource)
    assert isinstance(parse_source_spec(str(folder)), FolderSource)
    assert isinstance(parse_source_spec(f"urls:{listing}"), UrlListSource)
    assert isinstance(parse_source_spec(str(listing)), UrlListSource)
    inline = parse_source_spec("urls:https://example.com/a.png, https://example.com/b.png")
    assert [i.location for i in inline.items("x")] == ["https://example.com/a.png",
                                                       "https://example.com/b.png"]
    msg = scraper_pb2.SourceSpec(folder=scraper_pb2.FolderSource(path=str(folder)))
    assert isinstance(parse_source_spec(msg), FolderSource)
    msg = scraper_pb2.SourceSpec(url_list=scraper_pb2.UrlListSource(urls=["https://e.com/a.png"]))
    assert isinstance(parse_source_spec(msg), UrlListSource)
    assert parse_source_spec(scraper_pb2.SourceSpec(spec=f"folder:{folder}")).describe() == \
        f"folder:{folder}"


def test_bad_specs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    with pytest.raises(NotFound, match="nowhere"):
        parse_source_spec(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(InvalidArgument, match="holds no image files") as err:
        parse_source_spec(f"folder:{empty}")
    assert str(empty) in str(err.value)
    blank = tmp_path / "blank.txt"
    blank.write_text("# nothing\n\n")
    with pytest.raises(InvalidArgument, match="holds no URLs"):
        parse_source_spec(f"urls:{blank}")
    with pytest.raises(InvalidArgument, match="unknown source kind 'ftp'"):
        parse_source_spec("ftp:thing")
    with pytest.raises(InvalidArgument, match="source"):
        parse_source_spec(scraper_pb2.SourceSpec())
    with pytest.raises(InvalidArgument, match="not a zip"):
        parse_source_spec(f"zip:{blank}")
    with pytest.raises(InvalidArgument, match="mastodon"):
        parse_source_spec(scraper_pb2.SourceSpec(mastodon=scraper_pb2.MastodonHashtagSource()))
    with pytest.raises(InvalidArgument, match="user_id or username"):
        parse_source_spec(scraper_pb2.SourceSpec(
            x_follower_banners=scraper_pb2.XFollowerBannersSource()))


def test_a_source_without_usable_images_fails_with_the_reasons(store, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_text("<html>")
    with pytest.raises(FailedPrecondition, match="no usable images") as err:
        run_scrape(store, FolderSource(folder), "emoji", job_id="scrape-bad")
    assert "1 empty" in str(err.value) and "1 not_an_image" in str(err.value)
    assert store.get_json(keys.scrape_manifest_key("scrape-bad"))["state"] == "failed"


def test_cancelling_stops_the_scrape_and_keeps_a_manifest(store, twemoji_paths):
    runner = JobRunner()

    class CancelsItself(FolderSource):
        fetched = 0

        def fetch(self, item, should_stop=None):
            CancelsItself.fetched += 1
            if CancelsItself.fetched == 3:
                runner.cancel("scrape-cancel")
            return super().fetch(item, should_stop)

    job = runner.start("scrape", "scrape-cancel", lambda job: run_scrape(
        store, CancelsItself(twemoji_paths[0].parent), "emoji", job=job).summary())
    final = list(job.watch())[-1]
    runner.shutdown()

    assert final.state == CANCELLED
    manifest = store.get_json(keys.scrape_manifest_key("scrape-cancel"))
    assert manifest["state"] == "cancelled"
    assert manifest["counts"]["new"] == 3 == len(raw_images(store, "emoji"))
    assert json.dumps(manifest)  # plain JSON

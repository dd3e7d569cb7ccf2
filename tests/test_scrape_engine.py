"""The download engine and scrape state: bounded concurrency with a per-host limit, the
animated-image policy, incremental re-runs, and a scrape killed mid-way that continues."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image

from socialgan.scraping import Downloader, DownloadPolicy, UrlListSource, run_scrape
from socialgan.scraping.mastodon import MastodonHashtagSource
from socialgan.scraping.state import ScrapeState
from socialgan.storage import LocalObjectStore, keys
from tests.local_api_servers import FakeSocialApis, ImageFarm, synthetic_png

ROOT = Path(__file__).resolve().parents[1]


def raw_images(store, hashtag):
    return [k for k in store.list(keys.raw_prefix(hashtag)) if not k.endswith(".json")]


def test_in_flight_downloads_are_bounded_overall_and_per_host(store):
    with ImageFarm(60, latency=0.05) as farm:
        policy = DownloadPolicy(allow_private=True, max_in_flight=12, per_host_limit=5)
        source = UrlListSource(urls=[farm.url(n) for n in range(60)],
                               downloader=Downloader(policy))
        started = time.monotonic()
        result = run_scrape(store, source, "farm")
        elapsed = time.monotonic() - started
    assert result.counts.new == 60
    assert farm.peak_in_flight == 5  # the host limit, though 12 workers were running
    assert elapsed < 60 * 0.05 * 0.75  # and still concurrent (sequential: 3 s)


def test_animated_images_are_kept_or_skipped_by_policy(store, tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    folder = tmp_path / "anim"
    folder.mkdir()
    (folder / "a.gif").write_bytes(buf.getvalue())
    (folder / "still.png").write_bytes(synthetic_png(1))
    from socialgan.scraping import FolderSource

    skipped = run_scrape(store, FolderSource(folder), "anim", animated="skip")
    assert skipped.counts.failed_by_reason == {"animated": 1} and skipped.counts.new == 1
    kept = run_scrape(store, FolderSource(folder), "anim2", animated="keep")
    assert kept.counts.new == 2
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    assert store.get_json(keys.raw_sidecar_key("anim2", sha))["frames"] == 3


def test_paging_source_continues_from_its_cursor_after_a_limit(store, monkeypatch):
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with FakeSocialApis(mastodon_statuses=20, page_size=5) as api:
        first = run_scrape(store, MastodonHashtagSource(api.base), "sunset", limit=7)
        hits_after_first = api.hits["/api/v1/timelines/tag/sunset"]
        rest = run_scrape(store, MastodonHashtagSource(api.base), "sunset")
        # The second run starts at the page where the first stopped, not at the top.
        assert api.hits["/api/v1/timelines/tag/sunset"] - hits_after_first == 4
        again = run_scrape(store, MastodonHashtagSource(api.base), "sunset")
        # Walked to the end once: a fresh walk stops at the first page it has seen.
        assert again.counts.new == 0 and again.counts.skipped == 5
        api.mastodon_statuses = 23  # three new posts on top
        newer = run_scrape(store, MastodonHashtagSource(api.base), "sunset")
    assert first.counts.new == 7
    assert rest.counts.new == 13 and rest.counts.skipped == 2  # page 2 began in run 1
    assert newer.counts.new == 3
    assert len(raw_images(store, "sunset")) == 23


def test_transient_failures_are_not_archived(store):
    with ImageFarm(4, latency=0) as farm:
        urls = [farm.url(n) for n in range(4)] + [f"{farm.base}/img/99.png"]
        policy = DownloadPolicy(allow_private=True, max_attempts=1)
        source = UrlListSource(urls=urls + [f"http://127.0.0.1:1/{n}.png" for n in range(2)],
                               downloader=Downloader(policy))
        run_scrape(store, source, "farm")
    state = ScrapeState(store, source.state_id(), "farm")
    seen = state.load_seen()
    assert set(urls) <= seen  # stored, and the 404 (permanent)
    assert not any(k.startswith("http://127.0.0.1:1/") for k in seen)  # refused: retry later


def test_a_killed_scrape_continues_and_stores_nothing_twice(tmp_path):
    count = 300
    root = tmp_path / "store"
    listing = tmp_path / "urls.txt"
    script = textwrap.dedent(f"""
        from socialgan.scraping import Downloader, DownloadPolicy, UrlListSource, run_scrape
        from socialgan.storage import LocalObjectStore
        policy = DownloadPolicy(allow_private=True, max_in_flight=4, per_host_limit=4)
        source = UrlListSource(path={str(listing)!r}, downloader=Downloader(policy))
        run_scrape(LocalObjectStore({str(root)!r}), source, "resume")
    """)
    with ImageFarm(count, latency=0.04) as farm:
        listing.write_text("\n".join(farm.url(n) for n in range(count)) + "\n")
        child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        store = LocalObjectStore(root)
        deadline = time.monotonic() + 30
        while len(raw_images(store, "resume")) < count // 3 and time.monotonic() < deadline:
            assert child.poll() is None, "the scrape finished before it could be killed"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        before = len(raw_images(store, "resume"))
        assert count // 3 <= before < count
        requests_before = sum(farm.served.values())

        policy = DownloadPolicy(allow_private=True, max_in_flight=8, per_host_limit=8)
        again = run_scrape(store, UrlListSource(path=listing, downloader=Downloader(policy)),
                           "resume")
        refetched = sum(farm.served.values()) - requests_before

    stored = raw_images(store, "resume")
    expected = {hashlib.sha256(synthetic_png(n)).hexdigest() for n in range(count)}
    assert {Path(k).stem for k in stored} == expected  # nothing lost
    assert len(stored) == count  # nothing twice
    for key in stored:  # no partial objects: every image whole, with its sidecar
        assert hashlib.sha256(store.get_bytes(key)).hexdigest() == Path(key).stem
        assert store.exists(keys.raw_sidecar_key("resume", Path(key).stem))
    # It continued: what was checkpointed before the kill was not fetched again.
    assert again.counts.skipped > 0
    # (up to 4 answers to the killed process may land after it died)
    assert count - again.counts.skipped <= refetched <= count - again.counts.skipped + 4
    assert again.counts.new == count - before

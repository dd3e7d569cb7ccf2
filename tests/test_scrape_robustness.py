"""A scrape survives what it is handed (issue #9, items 7-9): one bad file is one named
failure in the manifest and the scrape goes on; decoding is bounded by the header check
and a shared memory budget, however many downloads are in flight; items that failed
transiently are fetched again by the next incremental run, wherever the walk stops, until
every reachable image is stored, each exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import PngImagePlugin

from socialgan import images
from socialgan.errors import Unavailable
from socialgan.scraping import (
    Downloader,
    DownloadPolicy,
    FolderSource,
    Item,
    Source,
    UrlListSource,
    run_scrape,
)
from socialgan.scraping.mastodon import MastodonHashtagSource
from socialgan.scraping.state import RETRY_RUNS, ScrapeState
from socialgan.storage import LocalObjectStore, keys
from tests.hostile_files import long_trns_palette_png, png_chunk, raw_png
from tests.local_api_servers import FakeSocialApis, Fault, synthetic_png
from tests.local_image_server import ImageServer

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(images.__file__).resolve().parents[1]  # the child scrapes with the same code


@pytest.fixture(autouse=True)
def _local_imports(tmp_path, monkeypatch):
    # Folder sources read under an import root (issue #9 item 1); these tests' files live
    # in tmp_path. Harmless where no import root is enforced.
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))


def raw_images(store, hashtag):
    return [k for k in store.list(keys.raw_prefix(hashtag)) if not k.endswith(".json")]


def fast(**kw) -> Downloader:
    policy = DownloadPolicy(allow_private=True, backoff_base=0.01, backoff_max=0.05,
                            connect_timeout=1.0, **{"read_timeout": 1.0, **kw})
    return Downloader(policy)


# --- item 7: one bad file never blocks a hashtag -------------------------------------------

def test_palette_png_with_a_long_trns_chunk_is_a_named_failure_and_the_scrape_goes_on(
        store, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "a-long-trns.png").write_bytes(long_trns_palette_png())
    for n in range(3):
        (folder / f"good-{n}.png").write_bytes(synthetic_png(n))

    result = run_scrape(store, FolderSource(folder), "trns")

    assert result.counts.new == 3
    assert result.counts.failed_by_reason == {"undecodable": 1}
    manifest = store.get_json(result.manifest_key)
    assert manifest["state"] == "succeeded"
    [failure] = manifest["failures"]
    assert failure["name"] == "a-long-trns.png"
    assert failure["location"] == str(folder / "a-long-trns.png")
    assert failure["reason"] == "undecodable" and "palette index" in failure["detail"]
    assert failure["retry_next_run"] is False
    # Recorded as handled: the next scrape of the hashtag skips it instead of aborting.
    again = run_scrape(store, FolderSource(folder), "trns")
    assert (again.counts.skipped, again.counts.failed) == (4, 0)


def test_every_failure_is_listed_by_url_and_reason(store):
    with ImageServer() as server:
        urls = [server.url("/img/1f30b.png"), server.url("/missing.png"),
                server.url("/text.png"), server.url("/always503")]
        source = UrlListSource(urls=urls, downloader=fast(max_attempts=1))
        result = run_scrape(store, source, "named")
    failures = {f["name"]: f for f in store.get_json(result.manifest_key)["failures"]}
    assert set(failures) == set(urls[1:])
    assert failures[urls[1]]["reason"] == "http_404"
    assert failures[urls[2]]["reason"] == "not_an_image"
    assert failures[urls[3]]["reason"] == "http_503"
    assert failures[urls[3]]["retry_next_run"] is True
    assert not failures[urls[1]]["retry_next_run"]
    assert all(f["detail"] for f in failures.values())


class _Exotic(Exception):
    """An exception type no decoder guard knows."""


def test_an_exception_of_any_type_while_decoding_is_a_named_failure(
        store, tmp_path, monkeypatch):
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "exotic.png").write_bytes(synthetic_png(1))
    (folder / "fine.jpg").write_bytes(images.encode(images.fit_crop(
        images.decode_rgb(synthetic_png(2)), 16, 16), "jpeg"))

    def explode(self):
        raise _Exotic("a decoder bug nobody has met yet")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_end", explode)
    result = run_scrape(store, FolderSource(folder), "exotic")

    assert result.counts.new == 1
    [failure] = store.get_json(result.manifest_key)["failures"]
    assert failure["name"] == "exotic.png" and failure["reason"] == "undecodable"
    assert "_Exotic" in failure["detail"]


class _BuggySource(Source):
    """A source whose fetch raises something other than FetchError for one item."""

    kind = "buggy"

    def describe(self) -> str:
        return "buggy:test"

    def validate(self) -> None:
        return None

    def items(self, hashtag, cursor=None):
        for name in ("ok-1", "broken", "ok-2"):
            yield Item(source=self.kind, location=name, post_id=name)

    def fetch(self, item, should_stop=None) -> bytes:
        if item.location == "broken":
            raise KeyError("no such entry")
        return synthetic_png(int(item.location[-1]))


def test_an_unexpected_error_fetching_one_item_is_a_named_failure(store):
    result = run_scrape(store, _BuggySource(), "buggy")
    assert result.counts.new == 2
    [failure] = store.get_json(result.manifest_key)["failures"]
    assert failure == {"name": "broken", "reason": "unreadable",
                       "detail": "KeyError: 'no such entry'", "retry_next_run": False}


# --- item 8: memory bounded by design ------------------------------------------------------

def test_dimensions_are_read_from_the_header_before_any_pixel_is_decoded():
    rows = b"\0" * (1 + 3 * 8) * 8
    for w, h in [(9_500, 9_500), (100_000, 100_000), (2**31 - 1, 1)]:
        lying = raw_png(8, 8, 2, rows, ihdr_size=(w, h))
        started = time.perf_counter()
        with pytest.raises(images.BadImage) as refused:
            images.check_image(lying)
        assert refused.value.reason == "decompression_bomb"
        assert time.perf_counter() - started < 0.05  # refused from the header alone
    with pytest.raises(images.BadImage, match="undecodable"):
        images.check_image(raw_png(8, 8, 2, rows, ihdr_size=(0, 8)))


def test_the_decode_budget_never_lends_more_than_it_has():
    budget = images.DecodeBudget(100)
    in_use, peak, lock = [0], [0], threading.Lock()

    def take(n):
        with budget.reserve(n):
            with lock:
                in_use[0] += min(n, 100)
                peak[0] = max(peak[0], in_use[0])
            time.sleep(0.01)
            with lock:
                in_use[0] -= min(n, 100)

    threads = [threading.Thread(target=take, args=(n,)) for n in [60, 50, 40, 500, 30] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)  # an oversized request ran, alone
    assert peak[0] <= 100 and budget.peak <= 100 and budget.in_use == 0


def test_an_image_needing_more_than_the_whole_budget_is_refused_by_name(
        store, tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_budget", images.DecodeBudget(16 << 20))
    folder = tmp_path / "pics"
    folder.mkdir()
    rows = (b"\0" + b"\x7f" * 4 * 2000) * 2000  # 2000x2000 RGBA: ~64 MB to flatten
    (folder / "wide.png").write_bytes(raw_png(2000, 2000, 6, rows))
    (folder / "small.png").write_bytes(synthetic_png(3))
    result = run_scrape(store, FolderSource(folder), "budget")
    [failure] = store.get_json(result.manifest_key)["failures"]
    assert failure["name"] == "wide.png" and failure["reason"] == "over_memory_budget"
    assert "IMAGE_DECODE_BUDGET_MB is 16" in failure["detail"]
    assert result.counts.new == 1 and images.decode_budget().peak <= 16 << 20


def test_decode_cost_covers_what_decoding_takes():
    img = images._open(long_trns_palette_png())
    assert images.decode_cost(img) >= 64 * 64 * 9  # palette, an RGBA copy, the RGB result


def _distinct_big_png(n: int, side: int) -> bytes:
    """A side x side palette PNG with transparency: a few kB on the wire, side**2 * 9 bytes
    of memory to flatten. n (in a text chunk) makes each one distinct content."""
    rows = (b"\0" + bytes([0, 1]) * (side // 2)) * side
    png = raw_png(side, side, 3, rows, extra=[(b"PLTE", b"\0\0\0\xff\xff\xff"),
                                              (b"tRNS", b"\x80")])
    return png[:-12] + png_chunk(b"tEXt", b"n\0" + str(n).encode()) + png[-12:]


def test_many_large_images_in_flight_decode_within_the_memory_budget(tmp_path):
    """Eight 3000x3000 images fetched at once (each ~80 MB to check) with a 128 MB decode
    budget: the scraper's RSS grows by about one decode (~80 MiB), not eight (the code
    before the budget grew by 830-900 MiB here)."""
    folder = tmp_path / "big"
    folder.mkdir()
    for n in range(8):
        (folder / f"big{n}.png").write_bytes(_distinct_big_png(n, 3000))
    script = textwrap.dedent(f"""
        import json
        from socialgan.scraping import Downloader, DownloadPolicy, UrlListSource, run_scrape
        from socialgan.storage import LocalObjectStore
        base = next(int(line.split()[1]) for line in open("/proc/self/status")
                    if line.startswith("VmRSS:"))  # now, in KiB
        policy = DownloadPolicy(allow_private=True, max_in_flight=8, per_host_limit=8)
        urls = [f"{{URL}}/img/big{{n}}.png" for n in range(8)]
        result = run_scrape(LocalObjectStore({str(tmp_path / 'store')!r}),
                            UrlListSource(urls=urls, downloader=Downloader(policy)), "big")
        from socialgan import images
        budget = getattr(images, "decode_budget", None)  # None: code without the budget
        # VmHWM, not ru_maxrss: that one keeps the parent's peak across fork and exec.
        peak = next(int(line.split()[1]) for line in open("/proc/self/status")
                    if line.startswith("VmHWM:"))
        print(json.dumps({{"new": result.counts.new, "base_kib": base, "peak_kib": peak,
                          "budget_peak": budget().peak if budget else 0}}))
    """)
    with ImageServer(image_dir=folder) as server:
        child = subprocess.run(
            [sys.executable, "-c", script.replace("{URL}", server.url(""))], cwd=ROOT,
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(CODE), "IMAGE_DECODE_BUDGET_MB": "128"})
    assert child.returncode == 0, child.stderr[-2000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    grown_mib = (out["peak_kib"] - out["base_kib"]) / 1024
    print(f"\n8 x 3000x3000 in flight, 128 MB decode budget: peak RSS grew {grown_mib:.0f} MiB "
          f"(budget peak {out['budget_peak'] / 2**20:.0f} MiB)")
    assert out["new"] == 8
    assert out["budget_peak"] <= 128 << 20
    assert grown_mib < 200


# --- item 9: transient failures are retried on the next run --------------------------------

def test_transient_failures_deep_in_a_walked_timeline_are_fetched_by_the_next_run(store):
    with FakeSocialApis(mastodon_statuses=30, page_size=5) as api:
        # Statuses count down from 30, five a page: these are on pages 3 to 6.
        transient = {18: Fault(503), 12: Fault(429, {"Retry-After": "0"}), 7: Fault(hang=1.5),
                     2: Fault(502)}
        for status, fault in transient.items():
            api.fail(f"/media/{30_000 + status}.png", [fault])
        api.fail(f"/media/{30_000 + 9}.png", [Fault(404)] * 10)  # permanent: not retried

        def mastodon():
            return MastodonHashtagSource(api.base, downloader=fast(max_attempts=1),
                                         api_downloader=fast())

        first = run_scrape(store, mastodon(), "sunset")
        assert first.counts.new == 30 - 5
        manifest = store.get_json(first.manifest_key)
        assert manifest["retrying_next_run"] == 4
        assert {f["name"]: f["retry_next_run"] for f in manifest["failures"]} == {
            f"{s}/m{s}": True for s in transient} | {"9/m9": False}
        media_hits = sum(v for k, v in api.hits.items() if k.startswith("/media/"))

        second = run_scrape(store, mastodon(), "sunset")
        assert second.counts.new == 4 and second.counts.failed == 0
        refetched = sum(v for k, v in api.hits.items() if k.startswith("/media/")) - media_hits
        assert refetched == 4  # only the four: the 404 and the stored ones are not fetched
        third = run_scrape(store, mastodon(), "sunset")
    assert third.counts.new == 0 and third.counts.failed == 0
    assert len(raw_images(store, "sunset")) == 29  # all but the 404, each once


def test_an_item_failing_in_every_run_is_given_up_after_retry_runs(store):
    with ImageServer() as server:
        urls = [server.url("/always503"), server.url("/img/1f30b.png")]
        for run in range(1, RETRY_RUNS + 1):
            source = UrlListSource(urls=urls, downloader=fast(max_attempts=1))
            result = run_scrape(store, source, "dead")
            retrying = store.get_json(result.manifest_key)["retrying_next_run"]
            assert retrying == (1 if run < RETRY_RUNS else 0)
        state = ScrapeState(store, source.state_id(), "dead")
        assert urls[0] in state.load_seen() and not state.load_retries()
        hits = server.hits["/always503"]
        run_scrape(store, UrlListSource(urls=urls, downloader=fast(max_attempts=1)), "dead")
    assert server.hits["/always503"] == hits == RETRY_RUNS  # given up: not fetched again


def test_a_full_retry_list_gives_up_new_items_rather_than_dropping_them(store, monkeypatch):
    # Past the cap an item is archived as given up, never silently left off both lists
    # (it would then be fetched by no incremental run at all).
    from socialgan.scraping import scrape, state

    monkeypatch.setattr(scrape, "MAX_RETRY_ITEMS", 3)
    monkeypatch.setattr(state, "MAX_RETRY_ITEMS", 3)
    with ImageServer() as server:
        urls = [server.url(f"/always503/{i}") for i in range(7)] + [
            server.url("/img/1f30b.png")]
        source = UrlListSource(urls=urls, downloader=fast(max_attempts=1))
        run_scrape(store, source, "full")
        saved = ScrapeState(store, source.state_id(), "full")
        assert len(saved.load_retries()) == 3
        assert len(saved.load_seen() & set(urls[:7])) == 4


def test_the_retry_list_is_rewritten_in_proportion_to_its_cost(store):
    state = ScrapeState(store, "urls-test", "cost")
    assert state.retries_due()  # nothing changed: saving is free
    state.retries_changed()
    state.save_retries({})
    state.retries_changed()
    state._retries_save_cost = 3600.0  # as if the last write took an hour
    assert not state.retries_due()
    state._retries_save_cost = 0.0
    assert state.retries_due()


class FaultyMastodon(FakeSocialApis):
    """The Mastodon-shaped API with `fault_rate` of its timeline and media requests failing
    at random (seeded): a third 429 (Retry-After: 1), a third 503, a third a hang past the
    client's read timeout."""

    def __init__(self, *, fault_rate: float, hang: float, seed: int = 0, **kw):
        self.fault_rate = fault_rate
        self.hang = hang
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.stored_ok: Counter[str] = Counter()
        super().__init__(**kw)

    def answer(self, h, path, query):
        if path.startswith(("/media/", "/api/v1/timelines/")):
            with self._lock:
                roll = self.rng.random()
            if roll < self.fault_rate:
                kind = ("429", "503", "timeout")[int(roll / self.fault_rate * 3)]
                with self._lock:
                    self.injected[kind] += 1
                if kind == "429":
                    return h.send(429, b'{"error": "slow down"}', headers={"Retry-After": "1"})
                if kind == "timeout":
                    time.sleep(self.hang)
                return h.send(503, b'{"error": "busy"}')
        return super().answer(h, path, query)


def test_scrape_with_20_percent_faults_then_reruns_stores_every_image_exactly_once(tmp_path):
    statuses = 493
    store = LocalObjectStore(tmp_path / "store")
    expected = {hashlib.sha256(synthetic_png(30_000 + i)).hexdigest()
                for i in range(1, statuses + 1)}
    lines, stored_after, new_total = [], [], 0
    with FaultyMastodon(fault_rate=0.2, hang=0.6, mastodon_statuses=statuses,
                        page_size=40) as api:
        for run in range(1, 7):
            # Two attempts per media URL (the default is four), so that the first run
            # certainly leaves some behind for the re-runs to pick up.
            source = MastodonHashtagSource(
                api.base, downloader=fast(max_attempts=2, read_timeout=0.4,
                                          max_in_flight=16, per_host_limit=16),
                api_downloader=fast(read_timeout=0.4))
            outcome = ""
            try:
                run_scrape(store, source, "sunset", job_id=f"faults-{run}")
            except Unavailable as exc:  # a timeline page failed all its attempts
                outcome = f" (stopped: {str(exc)[:60]})"
            c = store.get_json(keys.scrape_manifest_key(f"faults-{run}"))["counts"]
            new_total += c["new"]
            stored_after.append(len(raw_images(store, "sunset")))
            lines.append(f"run {run}: {c['new']} new, {c['failed']} failed "
                         f"{dict(sorted(c['failed_by_reason'].items()))}, {c['skipped']} "
                         f"seen before -> {stored_after[-1]}/{statuses} stored{outcome}")
            if stored_after[-1] == statuses and run > 1:
                break
        injected = dict(api.injected)
    stored = [Path(k).stem for k in raw_images(store, "sunset")]
    print(f"\n20% faults on a {statuses}-image Mastodon timeline (injected {injected}):")
    print("\n".join(f"  {line}" for line in lines))
    share = len(set(stored) & expected) / statuses
    print(f"  after {run - 1} re-run(s): {len(set(stored))}/{statuses} = {share:.0%} stored, "
          f"{len(stored)} files, each once: {len(stored) == len(set(stored))}")
    assert stored_after[0] < statuses  # the first run left some behind for the re-runs
    assert set(stored) == expected and len(stored) == statuses  # all, each exactly once
    assert new_total == statuses  # nothing was ever written twice

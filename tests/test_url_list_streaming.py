"""A 1.6-million-line URL list with limit=1 must not burn three CPU-minutes (issue 9, item 10):
the list is read lazily, as the scrape takes candidates, and a scrape with a limit stops
once it has its images or once MAX_MISSES_IN_A_ROW candidates in a row gave none. Measured
in work done (lines read, candidates looked at), not in seconds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from socialgan.errors import FailedPrecondition
from socialgan.scraping import Downloader, DownloadPolicy, UrlListSource, run_scrape
from socialgan.scraping.scrape import MAX_MISSES_IN_A_ROW
from socialgan.storage import keys
from tests.local_image_server import ImageServer

pytestmark = pytest.mark.timeout(120)
LINES = 1_600_000
FAST = DownloadPolicy(allow_private=True, backoff_base=0.01, backoff_max=0.05,
                      connect_timeout=2, read_timeout=2)


def write_list(path: Path, first: str, line) -> Path:
    with path.open("w") as out:
        out.write(first + "\n")
        out.writelines(f"{line(i)}\n" for i in range(1, LINES))
    return path


def test_a_huge_list_with_limit_1_is_read_only_as_far_as_the_first_image(store, tmp_path):
    with ImageServer() as server:
        listing = write_list(tmp_path / "list.txt", server.url("/img/1f30b.png"),
                             lambda i: server.url(f"/missing-{i}.png"))
        source = UrlListSource(path=listing, downloader=Downloader(FAST))
        result = run_scrape(store, source, "huge", limit=1, job_id="huge-1")
    assert result.counts.new == 1
    # What the engine had taken when the first image came back: its downloads in flight.
    in_flight = 2 * source.max_workers
    assert source.lines_read <= in_flight + 1 and result.counts.found <= in_flight + 1


def test_a_huge_list_without_a_single_image_stops_after_a_bounded_run_of_misses(store,
                                                                              tmp_path):
    listing = write_list(tmp_path / "list.txt", "not a url", lambda i: f"not a url {i}")
    source = UrlListSource(path=listing, downloader=Downloader(FAST))
    cpu = time.process_time()
    with pytest.raises(FailedPrecondition, match="no usable images"):
        run_scrape(store, source, "dead", limit=1, job_id="dead-1")
    cpu = time.process_time() - cpu
    manifest = store.get_json(keys.scrape_manifest_key("dead-1"))
    looked_at = manifest["counts"]["found"]
    print(f"\n{LINES}-line list, no image, limit=1: {looked_at} candidates, "
          f"{source.lines_read} lines read, {cpu:.2f} CPU-s")
    in_flight = 2 * source.max_workers
    assert MAX_MISSES_IN_A_ROW <= looked_at <= MAX_MISSES_IN_A_ROW + in_flight
    assert source.lines_read <= MAX_MISSES_IN_A_ROW + 2 * in_flight < LINES // 100
    assert f"stopped after {MAX_MISSES_IN_A_ROW} candidates in a row" in manifest["note"]

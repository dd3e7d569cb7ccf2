"""A scrape: take candidates from a Source, keep the real images, store each distinct one once.

Every candidate's bytes are checked by magic bytes and decoded (header and pixel guard,
shared decode budget, EXIF orientation; scraping.checking) before anything is stored; bad
ones are counted by reason and dropped, and whatever goes wrong with one candidate is that
candidate's failure, never the scrape's.
Images are content-addressed, raw/<hashtag>/<sha256>.<ext>, with a JSON sidecar beside
them; the sidecar is written before the image, so an image that exists always has its
sidecar, and an image already in storage is never written again. The manifest at
runs/scrape/<job_id>.json lists the scrape's distinct images, its counts, and each failed
candidate by name (post id, file or member name, else URL) with its reason and detail.

Counts: found = candidates taken from the source; skipped = those an earlier scrape of the
same source and hashtag already handled (not fetched again); downloaded = candidates that
were valid images; of those, new = written now and duplicates = content already stored
(earlier in this scrape or by an earlier one), so downloaded == new + duplicates; failed
(by reason) = candidates that could not be fetched or were no usable image. So
found == skipped + downloaded + failed.

Incremental and resumable (scraping.state): every candidate handled (stored, duplicate, or
failed for good) is remembered in the source's archive, and paging sources remember the
page cursor, at least every CHECKPOINT_SECONDS. A re-run skips what is archived; a scrape
killed at any moment and started again continues from the last checkpoint, refetches at
most what came after it, and stores nothing twice (the sha256 is the key). A paging source
walked to its end once is walked again only until a page holds nothing new; what failed
transiently (429, 5xx, timeouts, connection errors) is on the source's retry list instead,
which the next incremental scrape fetches first, so a failure pages down the timeline is
retried too (at most RETRY_RUNS runs; then it is archived as given up).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from socialgan import images
from socialgan.errors import FailedPrecondition, InvalidArgument, clip
from socialgan.jobs import Cancelled, Job
from socialgan.scraping.base import Item, Source
from socialgan.scraping.checking import Checked, Fetcher
from socialgan.scraping.state import MAX_RETRY_ITEMS, RETRY_RUNS, Retry, ScrapeState, WalkState
from socialgan.storage import ObjectStore, keys
from socialgan.validation import normalize_hashtag

_PROGRESS_EVERY = 0.25  # seconds between job updates; each one wakes every watcher
CHECKPOINT_SECONDS = 1.0  # most work a kill can cost: what was handled since the last one
ANIMATED_POLICIES = ("keep", "skip")
# Failures the manifest lists one by one; past this a 1.6-million-line list that all fails
# would make a manifest of hundreds of megabytes, so the rest are only counted.
MAX_LISTED_FAILURES = 20_000
# With a limit, a scrape whose source yields this many candidates in a row without a usable
# image stops there (a 1.6-million-line list of dead URLs with limit=1 once cost three
# CPU-minutes); a re-run goes on past what this one archived.
MAX_MISSES_IN_A_ROW = 10_000
_NAME_CHARS = 500


@dataclass
class ScrapeCounts:
    found: int = 0
    skipped: int = 0
    downloaded: int = 0
    new: int = 0
    duplicates: int = 0
    failed: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    images_per_second: float = 0.0

    def add_failure(self, reason: str) -> None:
        self.failed += 1
        self.failed_by_reason[reason] = self.failed_by_reason.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScrapeResult:
    job_id: str
    hashtag: str
    source: str
    counts: ScrapeCounts
    sha256s: list[str]  # the scrape's distinct images, in the order they were found
    manifest_key: str
    raw_prefix: str

    def summary(self) -> str:
        c = self.counts
        return (f"{len(self.sha256s)} images for #{self.hashtag}: {c.new} new, "
                f"{c.duplicates} duplicates, {c.failed} failed, "
                f"{c.skipped} seen before")


def new_scrape_id(hashtag: str) -> str:
    return keys.new_id(f"scrape-{hashtag}")


def check_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise InvalidArgument("limit", f"must be at least 1 when given, not {limit}")
    return limit


def _store_image(store: ObjectStore, hashtag: str, checked: Checked, origin: str,
                 job_id: str) -> bool:
    """Write the image and its sidecar unless the image is already stored; True if written."""
    image_key = keys.raw_image_key(hashtag, checked.sha256, checked.ext)
    if store.exists(image_key):
        return False
    sidecar = {
        "sha256": checked.sha256, "key": image_key, "ext": checked.ext,
        "size": checked.nbytes, "width": checked.width, "height": checked.height,
        "frames": checked.frames,
        "hashtag": hashtag, "origin": origin, "scrape_job_id": job_id,
        "scraped_unix": time.time(), **checked.item.metadata(),
    }
    store.put_json(keys.raw_sidecar_key(hashtag, checked.sha256), sidecar)
    store.put_bytes(image_key, checked.data, images.CONTENT_TYPES.get(checked.ext,
                                                               "application/octet-stream"))
    return True


def _unseen(candidates: Iterator[Item], seen: set[str], walk: WalkState, paged: bool,
            counts: ScrapeCounts, retrying: set[str]) -> Iterator[Item]:
    """Drop candidates an earlier scrape handled (counting them as found and skipped), and
    those this scrape takes from the retry list instead. A fresh walk of a source once
    walked to its end stops at the first page it has entirely seen: everything older was
    seen too (or failed transiently, and is on the retry list)."""
    stop_on_seen_page = paged and walk.walked_to_end and walk.cursor is None
    page, page_new, page_size = None, 0, 0
    for item in candidates:
        if stop_on_seen_page and item.cursor != page:
            if page_size and not page_new:
                return
            page, page_new, page_size = item.cursor, 0, 0
        page_size += 1
        if item.seen_key in retrying:
            continue
        if item.seen_key in seen:
            counts.found += 1
            counts.skipped += 1
            continue
        page_new += 1
        yield item


def _failure_entry(checked: Checked, retry_next_run: bool) -> dict[str, Any]:
    """How the manifest names one failed candidate: its post id, file or member name (or
    its URL when it has nothing else), where it was read from, and why it failed."""
    item = checked.item
    name = item.post_id or item.location
    entry: dict[str, Any] = {"name": clip(name, _NAME_CHARS), "reason": checked.failure,
                             "detail": checked.detail, "retry_next_run": retry_next_run}
    if item.location != name:
        entry["location"] = clip(item.location, _NAME_CHARS)
    return entry


def run_scrape(store: ObjectStore, source: Source, hashtag: str, limit: int | None = None,
               job: Job | None = None, *, job_id: str | None = None,
               incremental: bool = True, animated: str = "keep") -> ScrapeResult:
    """Scrape up to `limit` distinct new images (None: all the source has) for hashtag.

    incremental: skip what earlier scrapes of this source and hashtag handled, and continue
    an unfinished walk from its cursor (False: look at every candidate again; content
    addressing still stores nothing twice). animated: "keep" (stored as they are; the
    sidecar counts the frames) or "skip" (counted as failed: animated).

    Every failed candidate is listed in the manifest by name and reason (the first
    MAX_LISTED_FAILURES of them); those that failed transiently are kept on the source's
    retry list and fetched first by the next incremental scrape.

    Reports counts through job.update() and stops at the job's cancellation (raising
    Cancelled after writing the manifest). Raises FailedPrecondition when no usable image
    came out of a source that had nothing already seen; the manifest is written in every
    case.
    """
    hashtag = normalize_hashtag(hashtag)
    check_limit(limit)
    images.decode_budget()  # a bad IMAGE_DECODE_BUDGET_MB fails here, not as every image
    if animated not in ANIMATED_POLICIES:
        raise InvalidArgument("animated", f"must be one of {', '.join(ANIMATED_POLICIES)}")
    job_id = job.job_id if job is not None else (job_id or new_scrape_id(hashtag))
    result = ScrapeResult(job_id=job_id, hashtag=hashtag, source=source.describe(),
                          counts=ScrapeCounts(), sha256s=[],
                          manifest_key=keys.scrape_manifest_key(job_id),
                          raw_prefix=keys.raw_prefix(hashtag))
    counts = result.counts
    seen: dict[str, str] = {}  # sha256 -> key, in order
    failures: list[dict[str, Any]] = []
    stop = threading.Event()

    def should_stop() -> bool:
        return stop.is_set() or (job is not None and job.cancel_requested)

    started_unix, started = time.time(), time.monotonic()
    last_report = 0.0
    note = ""

    def measure_rate() -> None:
        counts.images_per_second = counts.downloaded / max(time.monotonic() - started, 1e-9)

    def report(force: bool = False) -> None:
        nonlocal last_report
        measure_rate()
        if job is None or not (force or time.monotonic() - last_report >= _PROGRESS_EVERY):
            return
        last_report = time.monotonic()
        job.update(f"{counts.found} candidates, {len(seen)} images"
                   + (f"; {note}" if note else ""),
                   fraction_done=len(seen) / limit if limit else None, **counts.as_dict())

    def write_manifest(state: str) -> None:
        measure_rate()
        store.put_json(result.manifest_key, {
            "job_id": job_id, "hashtag": hashtag, "source": result.source, "state": state,
            "limit": limit, "started_unix": started_unix, "finished_unix": time.time(),
            "raw_prefix": result.raw_prefix, "counts": counts.as_dict(), "note": note,
            "incremental": incremental, "animated": animated,
            "sha256s": list(seen), "images": [{"sha256": s, "key": k} for s, k in seen.items()],
            "failures": failures, "failures_not_listed": counts.failed - len(failures),
            "retrying_next_run": len(retries),
        })

    state = ScrapeState(store, source.state_id(), hashtag)
    walk = state.load_walk() if incremental else WalkState()
    archived = state.load_seen() if incremental else set()
    # A full rescan meets these items in its walk; it still resolves their entries.
    retries: dict[str, Retry] = state.load_retries()
    retry_first = [dataclasses.replace(r.item, cursor="") for key, r in retries.items()
                   if incremental and key not in archived]
    resume_from = walk.cursor if source.pages else None
    fetcher: Fetcher | None = None
    last_checkpoint = time.monotonic()

    def settle(checked: Checked) -> bool:
        """Archive a handled candidate, or keep it for the next run: True when kept."""
        key = checked.item.seen_key
        if not checked.transient:
            state.mark_seen(key)
            if retries.pop(key, None) is not None:
                state.retries_changed()
            return False
        state.retries_changed()
        earlier = retries.pop(key, None)
        runs = earlier.runs if earlier else 0
        if checked.failure != "cancelled":  # a stop is no attempt
            runs += 1
        if runs >= RETRY_RUNS or len(retries) >= MAX_RETRY_ITEMS:
            # given up: failed transiently in RETRY_RUNS scrapes, or the list is full
            state.mark_seen(key)
            return False
        retries[key] = Retry(dataclasses.replace(checked.item, cursor=""), runs,
                             checked.failure)
        return True

    def checkpoint(finished: bool = False, final: bool = False) -> None:
        nonlocal last_checkpoint
        state.flush()  # before the retry list: a kill between leaves an item on both
        if not (finished or final) and not state.retries_due():
            # The cursor waits with the retry list: a saved cursor never passes an item
            # that failed transiently and is not yet on the saved list.
            last_checkpoint = time.monotonic()
            return
        state.save_retries(retries)
        if source.pages:
            cursor = fetcher.resume_cursor(resume_from) if fetcher else resume_from
            state.save_walk(WalkState(cursor=None if finished else cursor,
                                      walked_to_end=walk.walked_to_end or finished))
        last_checkpoint = time.monotonic()

    def no_items() -> Iterator[Checked]:
        yield from ()

    checked_items: Generator[Checked, None, None] = no_items()
    exhausted = False
    misses = 0  # candidates in a row that gave no usable image
    try:
        report(force=True)
        note = source.prepare(store, hashtag)
        report(force=True)
        source.bind_stop(should_stop)
        walked = _unseen(source.items(hashtag, resume_from), archived, walk, source.pages,
                         counts, {item.seen_key for item in retry_first})
        candidates = itertools.chain(retry_first, walked)
        fetcher = Fetcher(source, candidates, should_stop, animated)
        checked_items = fetcher.results()
        for checked in checked_items:
            counts.found += 1
            counts.bytes += checked.nbytes
            if checked.failure:
                kept_for_retry = settle(checked)
                counts.add_failure(checked.failure)
                if len(failures) < MAX_LISTED_FAILURES:
                    failures.append(_failure_entry(checked, kept_for_retry))
            else:
                counts.downloaded += 1
                if checked.sha256 in seen:
                    counts.duplicates += 1
                else:
                    written = _store_image(store, hashtag, checked, result.source, job_id)
                    seen[checked.sha256] = keys.raw_image_key(hashtag, checked.sha256,
                                                              checked.ext)
                    if written:
                        counts.new += 1
                    else:
                        counts.duplicates += 1
                settle(checked)  # after storing: an archived item is always stored
            if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
                checkpoint()
            if job is not None:
                job.check_cancelled()
            report()
            if limit is not None and len(seen) >= limit:
                break
            misses = misses + 1 if checked.failure else 0
            if limit is not None and misses >= MAX_MISSES_IN_A_ROW:
                note = "; ".join(filter(None, [note, f"stopped after {misses} candidates in a "
                                               "row gave no usable image"]))
                break
        else:
            exhausted = not should_stop()
        checkpoint(finished=exhausted, final=True)
        report(force=True)
    except Cancelled:
        stop.set()
        checked_items.close()
        checkpoint(final=True)
        write_manifest("cancelled")
        raise
    except Exception:
        stop.set()
        checked_items.close()
        try:
            checkpoint(final=True)
            write_manifest("failed")
        except Exception:  # the original error is the one worth reporting
            pass
        raise
    finally:
        stop.set()
        checked_items.close()
        source.close()
    result.sha256s = list(seen)
    if not seen and not counts.skipped:
        write_manifest("failed")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(counts.failed_by_reason.items()))
        raise FailedPrecondition(
            f"no usable images from {result.source}: {counts.found} candidates"
            + (f", failed: {reasons}" if reasons else ""))
    write_manifest("succeeded")
    return result

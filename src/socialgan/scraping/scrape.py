"""A scrape: take candidates from a Source, keep the real images, store each distinct one once.

Every candidate's bytes are checked by magic bytes and decoded (decompression-bomb guard,
EXIF orientation) before anything is stored; bad ones are counted by reason and dropped.
Images are content-addressed, raw/<hashtag>/<sha256>.<ext>, with a JSON sidecar beside
them; the sidecar is written before the image, so an image that exists always has its
sidecar, and an image already in storage is never written again. The manifest at
runs/scrape/<job_id>.json lists the scrape's distinct images and its counts.

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
walked to its end once is walked again only until a page holds nothing new.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from socialgan import images
from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.jobs import Cancelled, Job
from socialgan.scraping.download import FetchError
from socialgan.scraping.sources import Item, Source
from socialgan.scraping.state import ScrapeState, WalkState
from socialgan.storage import ObjectStore, keys
from socialgan.validation import normalize_hashtag

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}
_PROGRESS_EVERY = 0.25  # seconds between job updates; each one wakes every watcher
CHECKPOINT_SECONDS = 1.0  # most work a kill can cost: what was handled since the last one
ANIMATED_POLICIES = ("keep", "skip")
# Failures that say nothing about the post (our configuration, the network, an expired
# signed CDN URL): not archived, so the next scrape tries those posts again.
_RETRY_NEXT_RUN = frozenset({"cancelled", "blocked_address", "dns_error", "tls_error",
                             "http_401", "http_403"})
_MAYBE_ANIMATED = (".gif", ".webp", ".png")


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


@dataclass
class _Checked:
    """A candidate after fetching and checking: an image (sha256 set) or a failure reason."""

    item: Item
    nbytes: int = 0
    data: bytes = b""
    ext: str = ""
    sha256: str = ""
    width: int = 0
    height: int = 0
    frames: int = 1
    failure: str = ""
    # A failure that may pass (timeout, 5xx, rate limit): not archived, tried next run.
    transient: bool = False


def _frame_count(data: bytes, ext: str) -> int:
    if ext not in _MAYBE_ANIMATED:
        return 1
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(getattr(img, "n_frames", 1) or 1)
    except (OSError, SyntaxError, ValueError):
        return 1


def _fetch_and_check(source: Source, item: Item, should_stop, animated: str) -> _Checked:
    try:
        data = source.fetch(item, should_stop)
    except FetchError as exc:
        return _Checked(item, failure=exc.reason,
                        transient=exc.retryable or exc.reason in _RETRY_NEXT_RUN)
    try:
        decoded = images.decode_rgb(data)
    except images.BadImage as exc:
        return _Checked(item, nbytes=len(data), failure=exc.reason)
    ext = images.sniff_extension(data) or ""
    frames = _frame_count(data, ext)
    if frames > 1 and animated == "skip":
        return _Checked(item, nbytes=len(data), failure="animated")
    return _Checked(item, nbytes=len(data), data=data, ext=ext,
                    sha256=hashlib.sha256(data).hexdigest(),
                    width=decoded.width, height=decoded.height, frames=frames)


class _Fetcher:
    """Fetch and check candidates, up to source.max_workers at once, at most twice that many
    taken from the source (memory stays flat), yielding each result as it completes, so one
    slow or rate-limited URL never holds up the others. Closing the generator stops taking
    new candidates.

    resume_cursor() is the page cursor of the oldest candidate taken but not yet handled
    (results are handled by the caller between yields), else of the last one handled: the
    page a stopped scrape must start again from so that it misses nothing."""

    def __init__(self, source: Source, candidates: Iterator[Item], should_stop, animated: str):
        self.source = source
        self.candidates = candidates
        self.should_stop = should_stop
        self.animated = animated
        self._unhandled: dict[int, str] = {}  # submission number -> cursor, oldest first
        self._last: str | None = None

    def resume_cursor(self, default: str | None) -> str | None:
        for cursor in self._unhandled.values():
            return cursor or default
        return self._last or default

    def _check(self, item: Item) -> _Checked:
        return _fetch_and_check(self.source, item, self.should_stop, self.animated)

    def results(self) -> Generator[_Checked, None, None]:
        workers = max(1, self.source.max_workers)
        if workers == 1:
            for item in self.candidates:
                self._unhandled[0] = item.cursor
                yield self._check(item)
                del self._unhandled[0]
                self._last = item.cursor or self._last
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape") as pool:
            pending: dict[Future, int] = {}
            number, exhausted = 0, False
            try:
                while True:
                    while not exhausted and len(pending) < 2 * workers:
                        item = next(self.candidates, None)
                        if item is None:
                            exhausted = True
                            break
                        pending[pool.submit(self._check, item)] = number
                        self._unhandled[number] = item.cursor
                        number += 1
                    if not pending:
                        return
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=pending.__getitem__):
                        checked = future.result()
                        yield checked
                        del self._unhandled[pending.pop(future)]
                        self._last = checked.item.cursor or self._last
            finally:
                for future in pending:
                    future.cancel()


def _store_image(store: ObjectStore, hashtag: str, checked: _Checked, origin: str,
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
    store.put_bytes(image_key, checked.data, CONTENT_TYPES.get(checked.ext,
                                                               "application/octet-stream"))
    return True


def _unseen(candidates: Iterator[Item], seen: set[str], walk: WalkState, paged: bool,
            counts: ScrapeCounts) -> Iterator[Item]:
    """Drop candidates an earlier scrape handled (counting them as found and skipped). A
    fresh walk of a source once walked to its end stops at the first page it has entirely
    seen: everything older was seen too."""
    stop_on_seen_page = paged and walk.walked_to_end and walk.cursor is None
    page, page_new, page_size = None, 0, 0
    for item in candidates:
        if stop_on_seen_page and item.cursor != page:
            if page_size and not page_new:
                return
            page, page_new, page_size = item.cursor, 0, 0
        page_size += 1
        if item.seen_key in seen:
            counts.found += 1
            counts.skipped += 1
            continue
        page_new += 1
        yield item


def run_scrape(store: ObjectStore, source: Source, hashtag: str, limit: int | None = None,
               job: Job | None = None, *, job_id: str | None = None,
               incremental: bool = True, animated: str = "keep") -> ScrapeResult:
    """Scrape up to `limit` distinct new images (None: all the source has) for hashtag.

    incremental: skip what earlier scrapes of this source and hashtag handled, and continue
    an unfinished walk from its cursor (False: look at every candidate again; content
    addressing still stores nothing twice). animated: "keep" (stored as they are; the
    sidecar counts the frames) or "skip" (counted as failed: animated).

    Reports counts through job.update() and stops at the job's cancellation (raising
    Cancelled after writing the manifest). Raises FailedPrecondition when no usable image
    came out of a source that had nothing already seen; the manifest is written in every
    case.
    """
    hashtag = normalize_hashtag(hashtag)
    check_limit(limit)
    if animated not in ANIMATED_POLICIES:
        raise InvalidArgument("animated", f"must be one of {', '.join(ANIMATED_POLICIES)}")
    job_id = job.job_id if job is not None else (job_id or new_scrape_id(hashtag))
    result = ScrapeResult(job_id=job_id, hashtag=hashtag, source=source.describe(),
                          counts=ScrapeCounts(), sha256s=[],
                          manifest_key=keys.scrape_manifest_key(job_id),
                          raw_prefix=keys.raw_prefix(hashtag))
    counts = result.counts
    seen: dict[str, str] = {}  # sha256 -> key, in order
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
        })

    state = ScrapeState(store, source.state_id(), hashtag)
    walk = state.load_walk() if incremental else WalkState()
    archived = state.load_seen() if incremental else set()
    resume_from = walk.cursor if source.pages else None
    fetcher: _Fetcher | None = None
    last_checkpoint = time.monotonic()

    def checkpoint(finished: bool = False) -> None:
        nonlocal last_checkpoint
        state.flush()
        if source.pages:
            cursor = fetcher.resume_cursor(resume_from) if fetcher else resume_from
            state.save_walk(WalkState(cursor=None if finished else cursor,
                                      walked_to_end=walk.walked_to_end or finished))
        last_checkpoint = time.monotonic()

    def no_items() -> Iterator[_Checked]:
        yield from ()

    checked_items: Generator[_Checked, None, None] = no_items()
    exhausted = False
    try:
        report(force=True)
        note = source.prepare(store, hashtag)
        report(force=True)
        candidates = _unseen(source.items(hashtag, resume_from), archived, walk,
                             source.pages, counts)
        fetcher = _Fetcher(source, candidates, should_stop, animated)
        checked_items = fetcher.results()
        for checked in checked_items:
            counts.found += 1
            counts.bytes += checked.nbytes
            if checked.failure:
                counts.add_failure(checked.failure)
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
            if not checked.transient:
                state.mark_seen(checked.item.seen_key)
            if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
                checkpoint()
            if job is not None:
                job.check_cancelled()
            report()
            if limit is not None and len(seen) >= limit:
                break
        else:
            exhausted = not should_stop()
        checkpoint(finished=exhausted)
        report(force=True)
    except Cancelled:
        stop.set()
        checked_items.close()
        checkpoint()
        write_manifest("cancelled")
        raise
    except Exception:
        stop.set()
        checked_items.close()
        try:
            checkpoint()
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

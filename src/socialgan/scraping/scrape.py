"""A scrape: take candidates from a Source, keep the real images, store each distinct one once.

Every candidate's bytes are checked by magic bytes and decoded (decompression-bomb guard,
EXIF orientation) before anything is stored; bad ones are counted by reason and dropped.
Images are content-addressed, raw/<hashtag>/<sha256>.<ext>, with a JSON sidecar beside
them; the sidecar is written before the image, so an image that exists always has its
sidecar, and an image already in storage is never written again. The manifest at
runs/scrape/<job_id>.json lists the scrape's distinct images and its counts.

Counts: found = candidates taken from the source; downloaded = candidates that were valid
images; of those, new = written now and duplicates = content already stored (earlier in
this scrape or by an earlier one), so downloaded == new + duplicates; failed (by reason)
= candidates that could not be fetched or were no usable image.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from socialgan import images
from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.jobs import Cancelled, Job
from socialgan.scraping.download import FetchError
from socialgan.scraping.sources import Item, Source
from socialgan.storage import ObjectStore, keys
from socialgan.validation import normalize_hashtag

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}
_PROGRESS_EVERY = 0.25  # seconds between job updates; each one wakes every watcher


@dataclass
class ScrapeCounts:
    found: int = 0
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
                f"{c.duplicates} duplicates, {c.failed} failed")


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
    failure: str = ""


def _fetch_and_check(source: Source, item: Item, should_stop) -> _Checked:
    try:
        data = source.fetch(item, should_stop)
    except FetchError as exc:
        return _Checked(item, failure=exc.reason)
    try:
        decoded = images.decode_rgb(data)
    except images.BadImage as exc:
        return _Checked(item, nbytes=len(data), failure=exc.reason)
    return _Checked(item, nbytes=len(data), data=data, ext=images.sniff_extension(data) or "",
                    sha256=hashlib.sha256(data).hexdigest(),
                    width=decoded.width, height=decoded.height)


def _checked_items(source: Source, hashtag: str, should_stop) -> Iterator[_Checked]:
    """Fetch and check candidates, up to source.max_workers at once, yielding results in the
    source's order. Closing the generator stops taking new candidates."""
    candidates = source.items(hashtag)
    workers = max(1, source.max_workers)
    if workers == 1:
        for item in candidates:
            yield _fetch_and_check(source, item, should_stop)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape") as pool:
        pending: deque = deque()
        try:
            for item in candidates:
                pending.append(pool.submit(_fetch_and_check, source, item, should_stop))
                if len(pending) >= 2 * workers:  # bounded: memory stays flat
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
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
        "hashtag": hashtag, "origin": origin, "scrape_job_id": job_id,
        "scraped_unix": time.time(), **checked.item.metadata(),
    }
    store.put_json(keys.raw_sidecar_key(hashtag, checked.sha256), sidecar)
    store.put_bytes(image_key, checked.data, CONTENT_TYPES.get(checked.ext,
                                                               "application/octet-stream"))
    return True


def run_scrape(store: ObjectStore, source: Source, hashtag: str, limit: int | None = None,
               job: Job | None = None, *, job_id: str | None = None) -> ScrapeResult:
    """Scrape up to `limit` distinct images (None: all the source has) for hashtag.

    Reports counts through job.update() and stops at the job's cancellation (raising
    Cancelled after writing the manifest). Raises FailedPrecondition when no usable image
    came out of the source; the manifest is written in every case.
    """
    hashtag = normalize_hashtag(hashtag)
    check_limit(limit)
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

    def measure_rate() -> None:
        counts.images_per_second = counts.downloaded / max(time.monotonic() - started, 1e-9)

    def report(force: bool = False) -> None:
        nonlocal last_report
        measure_rate()
        if job is None or not (force or time.monotonic() - last_report >= _PROGRESS_EVERY):
            return
        last_report = time.monotonic()
        job.update(f"{counts.found} candidates, {len(seen)} images",
                   fraction_done=len(seen) / limit if limit else None, **counts.as_dict())

    def write_manifest(state: str) -> None:
        measure_rate()
        store.put_json(result.manifest_key, {
            "job_id": job_id, "hashtag": hashtag, "source": result.source, "state": state,
            "limit": limit, "started_unix": started_unix, "finished_unix": time.time(),
            "raw_prefix": result.raw_prefix, "counts": counts.as_dict(),
            "sha256s": list(seen), "images": [{"sha256": s, "key": k} for s, k in seen.items()],
        })

    checked_items = _checked_items(source, hashtag, should_stop)
    try:
        report(force=True)
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
            if job is not None:
                job.check_cancelled()
            report()
            if limit is not None and len(seen) >= limit:
                break
        report(force=True)
    except Cancelled:
        stop.set()
        checked_items.close()
        write_manifest("cancelled")
        raise
    except Exception:
        stop.set()
        checked_items.close()
        try:
            write_manifest("failed")
        except Exception:  # the original error is the one worth reporting
            pass
        raise
    finally:
        stop.set()
        checked_items.close()
        source.close()
    result.sha256s = list(seen)
    if not seen:
        write_manifest("failed")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(counts.failed_by_reason.items()))
        raise FailedPrecondition(
            f"no usable images from {result.source}: {counts.found} candidates"
            + (f", failed: {reasons}" if reasons else ""))
    write_manifest("succeeded")
    return result

"""Fetching and checking a scrape's candidates, many at once, one named outcome each.

check_candidate() never raises for one item's sake: whatever goes wrong fetching or
decoding it (a FetchError, a BadImage, or an exception nobody foresaw) comes back as a
Checked with a failure reason and a short detail, so one bad file or URL is one failure in
the manifest and the scrape goes on. Decoding holds the process-wide decode budget
(socialgan.images), so the number of downloads in flight does not multiply the memory a
large image costs to check.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from socialgan import images
from socialgan.errors import clip
from socialgan.scraping.base import Item, Source
from socialgan.scraping.download import FetchError

log = logging.getLogger(__name__)

# Failures that say nothing about the post (our configuration, the network, an expired
# signed CDN URL): treated like transient ones, kept on the retry list for the next scrape.
RETRY_NEXT_RUN = frozenset({"cancelled", "blocked_address", "dns_error", "tls_error",
                            "http_401", "http_403"})
_DETAIL_CHARS = 200


@dataclass
class Checked:
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
    detail: str = ""
    # A failure that may pass (timeout, 5xx, rate limit): not archived, tried next run.
    transient: bool = False


def _unexpected(what: str, item: Item, exc: Exception) -> str:
    log.warning("scrape: unexpected %s error on %s: %s: %s", what, clip(item.location, 100),
                type(exc).__name__, clip(str(exc), 100))
    return clip(f"{type(exc).__name__}: {exc}", _DETAIL_CHARS)


def check_candidate(source: Source, item: Item, should_stop, animated: str) -> Checked:
    """Fetch the item's bytes and check them; every outcome is a Checked, never a raise."""
    try:
        data = source.fetch(item, should_stop)
    except FetchError as exc:
        return Checked(item, failure=exc.reason, detail=clip(str(exc), _DETAIL_CHARS),
                       transient=exc.retryable or exc.reason in RETRY_NEXT_RUN)
    except Exception as exc:  # noqa: BLE001 - a source's bug must not end the scrape
        return Checked(item, failure="unreadable", detail=_unexpected("fetch", item, exc))
    try:
        facts = images.check_image(data)
    except images.BadImage as exc:
        return Checked(item, nbytes=len(data), failure=exc.reason,
                       detail=clip(str(exc), _DETAIL_CHARS))
    except Exception as exc:  # noqa: BLE001 - check_image wraps Pillow's; this is a last guard
        return Checked(item, nbytes=len(data), failure="undecodable",
                       detail=_unexpected("decode", item, exc))
    if facts.frames > 1 and animated == "skip":
        return Checked(item, nbytes=len(data), failure="animated",
                       detail=f"{facts.frames} frames")
    return Checked(item, nbytes=len(data), data=data, ext=facts.ext,
                   sha256=hashlib.sha256(data).hexdigest(), width=facts.width,
                   height=facts.height, frames=facts.frames)


class Fetcher:
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

    def _check(self, item: Item) -> Checked:
        return check_candidate(self.source, item, self.should_stop, self.animated)

    def results(self) -> Generator[Checked, None, None]:
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

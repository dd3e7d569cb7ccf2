"""The types every source shares: Item (one candidate image) and Source (where they come from).

Kept apart from the sources themselves so that the social-API modules, the local-file
sources and the scrape engine can all import them without importing each other.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Files and members picked as candidates; their content is then checked by magic bytes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")

StopCheck = Callable[[], bool] | None


@dataclass(frozen=True)
class Item:
    """One candidate image: where its bytes are and what the source knows about its post."""

    source: str  # kind of source: "folder", "zip", "urls", later "instagram", ...
    location: str  # a file path, a zip member name or a URL: what fetch() reads
    post_id: str = ""
    permalink: str = ""
    author: str = ""
    caption: str = ""
    hashtags: tuple[str, ...] = ()
    timestamp: str = ""  # ISO 8601, UTC
    licence: str = ""
    likes: int | None = None
    # Source-specific facts worth keeping (comments, carousel index, alt text...).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The page cursor that yields this item again (paging sources; "" = the first page).
    cursor: str = ""

    @property
    def seen_key(self) -> str:
        """What the per-source archive remembers this candidate by."""
        return self.post_id or self.location

    def metadata(self) -> dict[str, Any]:
        """What the sidecar records about the item."""
        return {
            "source": self.source, "location": self.location, "post_id": self.post_id,
            "permalink": self.permalink, "author": self.author, "caption": self.caption,
            "hashtags": list(self.hashtags), "timestamp": self.timestamp,
            "likes": self.likes, "licence": self.licence, "extra": dict(self.extra),
        }


class Source(ABC):
    """A place that yields candidate images for a hashtag."""

    kind: str = ""
    # How many fetches run_scrape may run at once: 1 for local files, more for network.
    max_workers: int = 1
    # True when items() pages through an API newest-first and honours its cursor argument.
    pages: bool = False

    @abstractmethod
    def describe(self) -> str:
        """A short spec-like description for logs, job snapshots and manifests."""

    @abstractmethod
    def validate(self) -> None:
        """Raise NotFound/InvalidArgument/FailedPrecondition now when the source cannot yield
        anything, so a request fails up front instead of as a failed job. Must be cheap."""

    @abstractmethod
    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        """Candidates, lazily (a source may page through thousands); paging sources start at
        `cursor` when given (an Item.cursor from an earlier run), others ignore it."""

    @abstractmethod
    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        """The item's bytes; raises FetchError(reason) when they cannot be had."""

    def preflight(self, store, hashtag: str) -> None:
        """Cheap checks against storage (no network) a request can fail on up front, e.g. a
        budget that would be exceeded: raises FailedPrecondition."""
        return None

    def prepare(self, store, hashtag: str) -> str:
        """Called once before items() with the scrape's storage (budgets, cached lookups).
        Raises FailedPrecondition when the scrape must not start; returns a note for the
        job's message ("" when there is nothing to say)."""
        return ""

    def bind_stop(self, should_stop: StopCheck) -> None:
        """The scrape's stop check, for waits inside items() (API retries, rate-limit
        pauses), so a cancel ends them at once. Sources that never wait ignore it."""
        return None

    def state_id(self) -> str:
        """Names this source's cursor and archive in storage: the same source, the same id."""
        digest = hashlib.sha256(self.describe().encode()).hexdigest()[:16]
        return f"{self.kind}-{digest}"

    def close(self) -> None:
        """Release what items()/fetch() opened."""
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_hidden_name(name: str) -> bool:
    """Whether a relative file or member name has a hidden or macOS resource-fork part."""
    parts = name.replace("\\", "/").split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def is_candidate_name(name: str) -> bool:
    """Whether a file or member name is picked as a candidate image: an image suffix, and
    no hidden or macOS resource-fork part."""
    return not is_hidden_name(name) and name.lower().endswith(IMAGE_SUFFIXES)

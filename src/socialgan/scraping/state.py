"""What a source remembers between scrapes, in the object store beside the manifests.

    runs/scrape/state/<state_id>/<hashtag>/cursor.json        where an unfinished walk stopped
    runs/scrape/state/<state_id>/<hashtag>/seen-<time>.json   posts already handled (segments)
    runs/scrape/state/instagram-<user_id>/hashtag-searches.json  the 7-day hashtag budget

The archive of seen posts is append-only: each checkpoint writes one new small segment
(atomic, like every object), so a scrape killed at any moment loses at most the posts since
its last checkpoint, and those are then fetched again and found already stored (content
addressing), never stored twice. Loading merges the segments and, past a handful, compacts
them into one (written before the old ones are deleted, so a kill there loses nothing).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from socialgan.storage import ObjectStore
from socialgan.validation import normalize_hashtag

STATE_PREFIX = "runs/scrape/state/"
_COMPACT_AFTER = 16


def state_prefix(state_id: str, hashtag: str) -> str:
    return f"{STATE_PREFIX}{state_id}/{normalize_hashtag(hashtag)}/"


@dataclass
class WalkState:
    """cursor: where to continue an unfinished walk (None: start at the newest page);
    walked_to_end: some walk reached the oldest post, so a fresh walk may stop at the first
    page it has entirely seen."""

    cursor: str | None = None
    walked_to_end: bool = False


class ScrapeState:
    def __init__(self, store: ObjectStore, state_id: str, hashtag: str):
        self.store = store
        self.prefix = state_prefix(state_id, hashtag)
        self._pending: list[str] = []

    # --- the walk -------------------------------------------------------------------------
    def load_walk(self) -> WalkState:
        key = self.prefix + "cursor.json"
        if not self.store.exists(key):
            return WalkState()
        raw = self.store.get_json(key)
        return WalkState(cursor=raw.get("cursor") or None,
                         walked_to_end=bool(raw.get("walked_to_end")))

    def save_walk(self, walk: WalkState) -> None:
        self.store.put_json(self.prefix + "cursor.json", {
            "cursor": walk.cursor, "walked_to_end": walk.walked_to_end,
            "updated_unix": time.time()})

    # --- the archive of seen posts --------------------------------------------------------
    def _segments(self) -> list[str]:
        return [k for k in self.store.list(self.prefix + "seen-") if k.endswith(".json")]

    def load_seen(self) -> set[str]:
        segments = self._segments()
        seen: set[str] = set()
        for key in segments:
            seen.update(self.store.get_json(key))
        if len(segments) > _COMPACT_AFTER:
            merged = self._write_segment(sorted(seen))
            for key in segments:
                if key != merged:
                    self.store.delete(key)
        return seen

    def mark_seen(self, key: str) -> None:
        self._pending.append(key)

    def flush(self) -> None:
        """Write what was marked since the last flush as one new segment."""
        if self._pending:
            self._write_segment(self._pending)
            self._pending = []

    def _write_segment(self, keys: list[str]) -> str:
        key = f"{self.prefix}seen-{time.time_ns():020d}-{secrets.token_hex(3)}.json"
        self.store.put_json(key, list(keys))
        return key

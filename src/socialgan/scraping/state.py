"""What a source remembers between scrapes, in the object store beside the manifests.

    runs/scrape/state/<state_id>/<hashtag>/cursor.json        where an unfinished walk stopped
    runs/scrape/state/<state_id>/<hashtag>/seen-<time>.json   posts already handled (segments)
    runs/scrape/state/<state_id>/<hashtag>/retry.json         items that failed transiently
    runs/scrape/state/instagram-<user_id>/hashtag-searches.json  the 7-day hashtag budget

The archive of seen posts is append-only: each checkpoint writes one new small segment
(atomic, like every object), so a scrape killed at any moment loses at most the posts since
its last checkpoint, and those are then fetched again and found already stored (content
addressing), never stored twice. Loading merges the segments and, past a handful, compacts
them into one (written before the old ones are deleted, so a kill there loses nothing).

Items that failed for a reason that may pass (429, 5xx, timeouts, refused connections) are
not archived; they are kept whole in retry.json, so the next incremental scrape fetches them
again directly, wherever the walk stops (a walk of a source seen to its end stops at the
first page holding nothing new: the failed item may be pages further down). An item is
retried in at most RETRY_RUNS runs, then archived as given up; at most MAX_RETRY_ITEMS are
kept (a source whose every item fails is not worth a file that big).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from socialgan.scraping.base import Item
from socialgan.storage import ObjectStore
from socialgan.validation import normalize_hashtag

STATE_PREFIX = "runs/scrape/state/"
_COMPACT_AFTER = 16
RETRY_RUNS = 5
MAX_RETRY_ITEMS = 10_000  # the list is rewritten whole at checkpoints: keep it small
# Rewriting the retry list costs time in proportion to its length. A checkpoint rewrites it
# only once this many times its last write's cost has passed, so a source whose every item
# fails spends a bounded share of the scrape on it (it was quadratic: 20 CPU-s for 100k).
RETRY_SAVE_COST_FACTOR = 20
_ITEM_FIELDS = frozenset(f.name for f in dataclasses.fields(Item))


def state_prefix(state_id: str, hashtag: str) -> str:
    return f"{STATE_PREFIX}{state_id}/{normalize_hashtag(hashtag)}/"


@dataclass
class WalkState:
    """cursor: where to continue an unfinished walk (None: start at the newest page);
    walked_to_end: some walk reached the oldest post, so a fresh walk may stop at the first
    page it has entirely seen."""

    cursor: str | None = None
    walked_to_end: bool = False


def item_to_json(item: Item) -> dict[str, Any]:
    """An Item as plain JSON (what a source put in extra is kept if JSON can hold it)."""
    raw = dataclasses.asdict(item)
    return json.loads(json.dumps(raw, default=str))


def item_from_json(raw: dict[str, Any]) -> Item:
    """The Item item_to_json wrote; fields this version does not know are dropped."""
    fields = {k: v for k, v in raw.items() if k in _ITEM_FIELDS}
    fields["hashtags"] = tuple(fields.get("hashtags") or ())
    fields["extra"] = dict(fields.get("extra") or {})
    return Item(**fields)


@dataclass
class Retry:
    """An item that failed transiently, kept to be fetched again: in how many scrapes it
    failed so far, and why it failed last."""

    item: Item
    runs: int
    reason: str


class ScrapeState:
    def __init__(self, store: ObjectStore, state_id: str, hashtag: str):
        self.store = store
        self.prefix = state_prefix(state_id, hashtag)
        self._pending: list[str] = []
        self._retries_changed = False
        self._retries_saved_at = time.monotonic()
        self._retries_save_cost = 0.0

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

    # --- items to try again ---------------------------------------------------------------
    def load_retries(self) -> dict[str, Retry]:
        """Items that failed transiently in earlier runs, by seen_key, oldest first."""
        key = self.prefix + "retry.json"
        if not self.store.exists(key):
            return {}
        saved = self.store.get_json(key)
        retries: dict[str, Retry] = {}
        for entry in saved.get("items", []) if isinstance(saved, dict) else []:
            try:
                item = item_from_json(entry["item"])
                retries[item.seen_key] = Retry(item, int(entry.get("runs", 1)),
                                               str(entry.get("reason", "")))
            except (KeyError, TypeError, ValueError):
                continue  # an entry an older or newer version wrote differently
        return retries

    def retries_changed(self) -> None:
        self._retries_changed = True

    def retries_due(self) -> bool:
        """Whether a checkpoint should rewrite the retry list now (see
        RETRY_SAVE_COST_FACTOR); True when it has not changed (saving is then free)."""
        if not self._retries_changed:
            return True
        waited = time.monotonic() - self._retries_saved_at
        return waited >= self._retries_save_cost * RETRY_SAVE_COST_FACTOR

    def save_retries(self, retries: dict[str, Retry]) -> None:
        """Write the retry list when it changed since the last save (one small object)."""
        if not self._retries_changed:
            return
        started = time.monotonic()
        entries = [{"item": item_to_json(r.item), "runs": r.runs, "reason": r.reason}
                   for r in itertools.islice(retries.values(), MAX_RETRY_ITEMS)]
        self.store.put_json(self.prefix + "retry.json",
                            {"items": entries, "updated_unix": time.time()})
        self._retries_changed = False
        self._retries_saved_at = time.monotonic()
        self._retries_save_cost = self._retries_saved_at - started

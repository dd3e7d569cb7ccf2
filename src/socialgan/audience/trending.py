"""Trending hashtags from several sources, merged into one ranking.

Each tag is folded (socialgan.audience.hashtags), so '#Café', 'CAFE' and 'café' are one
tag; invalid, blocklisted and cooled-down tags are dropped. A source listing one tag
twice keeps its best rank and largest counts. The score of a tag is, summed over the
sources that list it:

    1 / rank  +  PLENTY_WEIGHT * log10(1 + uses + accounts)

The rank term rewards being near the top and being trending in several places (two
sources' rank 2 beat one source's rank 1); the plenty term prefers tags with many posts
by many accounts in the trend history, which is where a scrape finds enough images: with
0.1, 10,000 uses and accounts weigh about as much as rank 2.5. A tag listed without a
rank gets its position in that source's list. Ties go to the alphabetically first tag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from socialgan.audience.hashtags import try_normalize
from socialgan.audience.types import TrendingTag

PLENTY_WEIGHT = 0.1


@dataclass
class SourceEntry:
    source: str
    rank: int
    uses: int = 0
    accounts: int = 0


@dataclass
class RankedTag:
    tag: str
    score: float = 0.0
    sources: list[SourceEntry] = field(default_factory=list)

    @property
    def uses(self) -> int:
        return sum(s.uses for s in self.sources)

    @property
    def accounts(self) -> int:
        return sum(s.accounts for s in self.sources)


@dataclass
class TrendingMerge:
    ranked: list[RankedTag]
    dropped: dict[str, int]  # reason -> how many listings were dropped


def source_label(source: str) -> str:
    """How a source reads in a sentence: 'mastodon:mastodon.social' -> 'mastodon.social'."""
    return {"x": "X", "bluesky": "Bluesky"}.get(source, source.removeprefix("mastodon:"))


def merge_trending(listings: Iterable[TrendingTag], *, blocked: Callable[[str], bool],
                   cooling: Callable[[str], bool]) -> TrendingMerge:
    """One ranking from every source's listing (the rules are the module docstring's)."""
    dropped = {"invalid": 0, "blocklisted": 0, "cooldown": 0}
    best: dict[tuple[str, str], SourceEntry] = {}
    position: dict[str, int] = {}
    for item in listings:
        position[item.source] = position.get(item.source, 0) + 1
        tag = try_normalize(item.name) if isinstance(item.name, str) else None
        reason = ("invalid" if tag is None else "blocklisted" if blocked(tag)
                  else "cooldown" if cooling(tag) else "")
        if reason:
            dropped[reason] += 1
            continue
        rank = item.rank if item.rank > 0 else position[item.source]
        entry = SourceEntry(item.source, rank, max(item.uses, 0), max(item.accounts, 0))
        held = best.get((tag, item.source))
        if held is not None:
            entry = SourceEntry(item.source, min(rank, held.rank), max(entry.uses, held.uses),
                                max(entry.accounts, held.accounts))
        best[(tag, item.source)] = entry
    tags: dict[str, RankedTag] = {}
    for (tag, _), entry in best.items():
        ranked = tags.setdefault(tag, RankedTag(tag))
        ranked.sources.append(entry)
        ranked.score += 1.0 / entry.rank + PLENTY_WEIGHT * math.log10(
            1 + entry.uses + entry.accounts)
    for ranked in tags.values():
        ranked.sources.sort(key=lambda s: (s.rank, s.source))
        ranked.score = round(ranked.score, 6)  # stable across platforms in the evidence
    order = sorted(tags.values(), key=lambda t: (-t.score, t.tag))
    return TrendingMerge(order, {k: v for k, v in dropped.items() if v})

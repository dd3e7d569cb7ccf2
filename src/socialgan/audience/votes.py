"""Votes tallied from the replies to our posts.

The rules, in the order they are applied to each reply:
- it must answer one of this round's posts (the published posts since the last choice);
- our own replies (is_own) and blocked accounts (AUDIENCE_BLOCKED_ACCOUNTS) never vote;
- it must be written inside the voting window: from its post's publication to
  AUDIENCE_VOTE_WINDOW_HOURS later (and not after `now`);
- its vote is its FIRST hashtag that is a valid hashtag and neither blocklisted nor on
  cooldown (so '#fuck #sunset' votes sunset, '#cats #dogs' votes cats); none: no vote;
- one vote per account per round: an account is (platform, account id), and its LATEST
  reply holding a vote counts, so a voter may change their mind until the window closes;
  the same person on two networks is two accounts (nothing links them).
A hashtag wins with the most votes if it has at least AUDIENCE_MIN_VOTES; ties go to the
hashtag whose earliest counted vote came first, then to the alphabetically first.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from socialgan import settings
from socialgan.audience.hashtags import try_normalize
from socialgan.audience.types import Reply

PLATFORMS = ("mastodon", "bluesky", "x", "instagram")
# A '#' that starts a hashtag: not inside a word, a URL fragment ('/#top') or an entity.
_HASHTAG = re.compile(r"(?<![\w&/#])#(\w+)")
_LOOKS_HTML = re.compile(r"</?(?:p|a|span|br)\b", re.IGNORECASE)


def vote_window_s() -> float:
    hours = settings.get_int("AUDIENCE_VOTE_WINDOW_HOURS")
    if hours <= 0:
        raise settings.ConfigError(f"AUDIENCE_VOTE_WINDOW_HOURS={hours} must be above 0")
    return hours * 3600.0


def min_votes() -> int:
    n = settings.get_int("AUDIENCE_MIN_VOTES")
    if n < 1:
        raise settings.ConfigError(f"AUDIENCE_MIN_VOTES={n} must be 1 or more")
    return n


@dataclass(frozen=True)
class BlockedAccounts:
    anywhere: frozenset[str]
    per_platform: frozenset[tuple[str, str]]

    @classmethod
    def parse(cls, text: str) -> BlockedAccounts:
        anywhere, per_platform = set(), set()
        for entry in (e.strip() for e in text.split(",")):
            platform, sep, name = entry.partition(":")
            if sep and platform.lower() in PLATFORMS:  # 'did:plc:...' stays whole
                per_platform.add((platform.lower(), _account_name(name)))
            elif entry:
                anywhere.add(_account_name(entry))
        return cls(frozenset(anywhere), frozenset(per_platform))

    @classmethod
    def from_settings(cls) -> BlockedAccounts:
        return cls.parse(settings.get("AUDIENCE_BLOCKED_ACCOUNTS") or "")

    def blocks(self, reply: Reply) -> bool:
        names = {_account_name(reply.author_id), _account_name(reply.author_handle)} - {""}
        return bool(names & self.anywhere) or any(
            (reply.platform, n) in self.per_platform for n in names)


def _account_name(text: str) -> str:
    return text.strip().removeprefix("@").casefold()


def hashtags_in(text: str) -> list[str]:
    """The hashtags a reply's text holds, in order, as written (without '#')."""
    text = unicodedata.normalize("NFKC", text)
    if _LOOKS_HTML.search(text):  # Mastodon's content is HTML: '#<span>cats</span>'
        text = html.unescape(re.sub(r"<[^>]*>", "", text))
    return _HASHTAG.findall(text)


def vote_of(text: str, excluded: Callable[[str], bool]) -> str | None:
    """The reply's vote: its first valid hashtag that `excluded` does not refuse."""
    for raw in hashtags_in(text):
        tag = try_normalize(raw)
        if tag is not None and not excluded(tag):
            return tag
    return None


@dataclass
class TagVotes:
    tag: str
    votes: int = 0
    first_vote_unix: float = float("inf")
    voters: list[Reply] = field(default_factory=list)  # the counted reply of each voter


@dataclass
class VoteTally:
    ranked: list[TagVotes]  # best first, by the tie rule
    min_votes: int
    ignored: Counter  # reason -> replies
    counted: int = 0  # accounts whose vote counted

    @property
    def winner(self) -> TagVotes | None:
        top = self.ranked[0] if self.ranked else None
        return top if top is not None and top.votes >= self.min_votes else None


# A window opens this long before our record of the post: the platform's clock (which stamps
# the replies, often to the second) and ours differ, and the record is written before the
# post is sent. A reply cannot precede its post, so nothing earlier can be a vote anyway.
CLOCK_SKEW_S = 300.0


def round_windows(posts: Iterable, window_s: float) -> dict[str, tuple[float, float]]:
    """{platform post id: (opens, closes)} for the round's posts (socialgan Post records)."""
    return {pid: (post.created_unix - CLOCK_SKEW_S, post.created_unix + window_s)
            for post in posts for pid in post.platform_ids if pid}


def tally_votes(replies: Iterable[Reply], windows: Mapping[str, tuple[float, float]], *,
                now: float, excluded: Callable[[str], bool],
                blocked: BlockedAccounts | None = None,
                needed: int | None = None) -> VoteTally:
    """Count the round's votes by the rules of the module docstring."""
    blocked = BlockedAccounts.from_settings() if blocked is None else blocked
    ignored: Counter = Counter()
    latest: dict[tuple[str, str], tuple[Reply, str]] = {}
    for reply in replies:
        window = windows.get(reply.post_id)
        if window is None:
            ignored["not_this_round"] += 1
        elif reply.is_own:
            ignored["own_account"] += 1
        elif blocked.blocks(reply):
            ignored["blocked_account"] += 1
        elif not window[0] <= reply.created_unix <= min(window[1], now):
            ignored["outside_window"] += 1
        elif (tag := vote_of(reply.text, excluded)) is None:
            ignored["no_valid_hashtag"] += 1
        else:
            account = (reply.platform, reply.author_id or reply.author_handle)
            held = latest.get(account)
            if held is None or _order(reply) > _order(held[0]):
                latest[account] = (reply, tag)
            if held is not None:  # one of the two replies is superseded
                ignored["earlier_vote_replaced"] += 1
    by_tag: dict[str, TagVotes] = {}
    for reply, tag in latest.values():
        entry = by_tag.setdefault(tag, TagVotes(tag))
        entry.votes += 1
        entry.first_vote_unix = min(entry.first_vote_unix, reply.created_unix)
        entry.voters.append(reply)
    ranked = sorted(by_tag.values(), key=lambda t: (-t.votes, t.first_vote_unix, t.tag))
    for entry in ranked:
        entry.voters.sort(key=_order)
    return VoteTally(ranked, min_votes() if needed is None else needed,
                     ignored, counted=len(latest))


def _order(reply: Reply) -> tuple[float, str]:
    return (reply.created_unix, reply.reply_id)

"""Choosing the next run's hashtag, in one function the CLI (and later the RPC) calls.

Modes:
- manual: the hashtag given by hand (checked and blocklisted, not held to the cooldown: a
  person chose it);
- trending: the best of the merged trending lists (socialgan.audience.trending);
- vote: the hashtag the replies to this round's posts voted for (socialgan.audience.votes);
  too few votes is a FailedPrecondition, with the evidence recorded all the same;
- vote-else-trending: the vote when one hashtag has enough votes, else trending.
This round's posts are the published posts since the last choice that chose a hashtag.
Every choice is recorded with its evidence (socialgan.audience.evidence); its runner-ups
are what a cycle falls back to when the winner scrapes too few images.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from socialgan import settings
from socialgan.audience import evidence, hashtags, votes
from socialgan.audience.trending import TrendingMerge, merge_trending, source_label
from socialgan.audience.types import Reply, TrendingTag
from socialgan.errors import FailedPrecondition, InvalidArgument, quote
from socialgan.storage import ObjectStore, keys

MODES = ("manual", "trending", "vote", "vote-else-trending")
MAX_RUNNER_UPS = 5
# No "#" in it: it would count against a platform's hashtag cap and become a tag facet.
INVITATION = "Reply with a hashtag to choose the next run."


@dataclass(frozen=True)
class Choice:
    choice_id: str
    mode: str  # the mode asked for
    method: str  # what decided: "manual", "vote" or "trending"
    winner: str
    runner_ups: tuple[str, ...]
    reason: str  # "chosen by 14 votes", "top trending on mastodon.social and Bluesky"
    votes: int  # the winner's votes (vote only)
    evidence_key: str
    created_unix: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Choice:
        return cls(record["choice_id"], record["mode"], record["method"], record["winner"],
                   tuple(record.get("runner_ups", ())), record["reason"],
                   int(record.get("winner_votes", 0)),
                   keys.choice_record_key(record["choice_id"]), float(record["created_unix"]))


def load_choice(store: ObjectStore, choice_id: str) -> Choice:
    return Choice.from_record(evidence.read_evidence(store, choice_id))


def caption_line(choice: Choice) -> str:
    """The caption's line saying how the hashtag was chosen ('' when chosen by hand)."""
    if choice.method == "vote":
        return f"Chosen by {choice.votes} vote{'' if choice.votes == 1 else 's'}."
    if choice.method == "trending":
        return "Chosen from what is trending."
    return ""


def invitation_line() -> str:
    """The caption's invitation to vote for the next run, when AUDIENCE_INVITE is on."""
    return INVITATION if settings.get_bool("AUDIENCE_INVITE") else ""


def round_posts(store: ObjectStore) -> list:
    """The published posts since the last choice that chose a hashtag (all, before any)."""
    from socialgan.publishing.post import PUBLISHED, list_posts

    last = evidence.recent_choices(store, 1)
    since = float(last[0]["created_unix"]) if last else float("-inf")
    return [p for p in list_posts(store) if p.state == PUBLISHED and not p.dry_run
            and p.platform_ids and p.created_unix >= since]


def choose_hashtag(store: ObjectStore, mode: str, *, manual: str = "",
                   replies: Iterable[Reply] = (), trending: Iterable[TrendingTag] = (),
                   posts: Sequence | None = None, now: float | None = None) -> Choice:
    """Choose by `mode` (see the module docstring), record the evidence, return the Choice.

    posts: this round's Post records (default: round_posts(store)); now: the time of the
    choice, which closes the voting windows (default: the clock)."""
    if mode not in MODES:
        raise InvalidArgument("mode", f"{quote(mode)} is not one of {', '.join(MODES)}")
    if manual and mode != "manual":
        raise InvalidArgument("hashtag", f"is only for mode manual, not mode {mode}")
    now = time.time() if now is None else float(now)
    blocklist = hashtags.blocklist()
    cooldown = hashtags.cooldown_tags(store)
    record: dict[str, Any] = {
        "choice_id": evidence.new_choice_id(), "created_unix": now, "mode": mode,
        "cooldown": cooldown,
        "rules": {"min_votes": votes.min_votes(), "vote_window_hours":
                  votes.vote_window_s() / 3600, "cooldown": hashtags.cooldown_size(),
                  "voter_privacy": evidence.voter_privacy()},
    }
    if mode == "manual":
        if not manual.strip():
            raise InvalidArgument("hashtag", "is empty; mode manual chooses the hashtag given "
                                  "here, e.g. 'sunset'")
        tag = hashtags.normalize_candidate(manual, "hashtag")
        if blocklist.blocks(tag):
            raise InvalidArgument("hashtag", f"{quote(manual)} is on the hashtag blocklist")
        return _record(store, record, "manual", tag, [], "given by hand",
                       f"#{tag} was given by hand", votes=0)
    trending = list(trending)
    merged = _merge(trending, blocklist, cooldown) if trending or mode != "vote" else None
    if merged is not None:
        record["trending"] = _trending_evidence(merged)
    note = ""
    if mode in ("vote", "vote-else-trending"):
        def excluded(tag: str) -> bool:
            return blocklist.blocks(tag) or tag in cooldown

        tally = _tally(store, replies, posts, now, excluded)
        record["votes"] = _votes_evidence(store, tally)
        if tally.winner is not None:
            return _vote_choice(store, record, tally, merged if mode != "vote" else None)
        note = _no_winner_note(tally)
        if mode == "vote":
            key = _record_failure(store, record, note)
            raise FailedPrecondition(f"mode: vote: {note}; the evidence is {key}")
    return _trending_choice(store, record, merged, note)


def _vote_choice(store, record, tally: votes.VoteTally, merged: TrendingMerge | None
                 ) -> Choice:
    """The vote's winner; runner-ups: the other hashtags with enough votes, then trending."""
    winner = tally.winner
    qualified = [t.tag for t in tally.ranked[1:] if t.votes >= tally.min_votes]
    backup = [t.tag for t in merged.ranked] if merged is not None else []
    runner_ups = [t for t in dict.fromkeys(qualified + backup) if t != winner.tag]
    return _record(store, record, "vote", winner.tag, runner_ups,
                   f"chosen by {winner.votes} vote{'' if winner.votes == 1 else 's'}",
                   _vote_why(tally), votes=winner.votes)


def _no_winner_note(tally: votes.VoteTally) -> str:
    best = tally.ranked[0] if tally.ranked else None
    if best is None:
        return f"no votes were counted, {tally.min_votes} needed"
    return f"no hashtag had {tally.min_votes} votes, the most was {best.votes} for #{best.tag}"


def _trending_choice(store, record, merged: TrendingMerge, note: str) -> Choice:
    """The best merged trending tag; note: why the vote did not decide ('' if none was held)."""
    if not merged.ranked:
        why = "no trending hashtag was left after the blocklist and the cooldown"
        why = f"{note}, and {why}" if note else why
        key = _record_failure(store, record, why)
        raise FailedPrecondition(f"mode: {record['mode']}: {why}; the evidence is {key}")
    top = merged.ranked[0]
    labels = [source_label(s.source) for s in top.sources]
    reason = "top trending on " + (" and ".join([", ".join(labels[:-1]), labels[-1]])
                                   if len(labels) > 1 else labels[0])
    why = (f"#{top.tag} scored highest ({top.score:g}): "
           + ", ".join(f"rank {s.rank} on {source_label(s.source)}" for s in top.sources)
           + (f"; {top.uses} uses by {top.accounts} accounts" if top.uses or top.accounts
              else ""))
    if note:
        reason, why = f"{reason} ({note})", f"{note}; {why}"
    return _record(store, record, "trending", top.tag, [t.tag for t in merged.ranked[1:]],
                   reason, why, votes=0)


def _tally(store, replies, posts, now, excluded) -> votes.VoteTally:
    posts = round_posts(store) if posts is None else posts
    windows = votes.round_windows(posts, votes.vote_window_s())
    return votes.tally_votes(replies, windows, now=now, excluded=excluded)


def _merge(listings, blocklist, cooldown) -> TrendingMerge:
    return merge_trending(listings, blocked=blocklist.blocks,
                                   cooling=set(cooldown).__contains__)


def _vote_why(tally: votes.VoteTally) -> str:
    first = tally.ranked[0]
    why = (f"#{first.tag} had the most votes ({first.votes}; at least {tally.min_votes} "
           "needed)")
    tied = [t for t in tally.ranked[1:] if t.votes == first.votes]
    if not tied:
        return why
    names = ", ".join(f"#{t.tag}" for t in tied)
    if all(t.first_vote_unix > first.first_vote_unix for t in tied):
        return f"{why}, tied with {names}; its first vote came earlier"
    return f"{why}, tied with {names} (first votes at the same time); alphabetically first"


def _votes_evidence(store: ObjectStore, tally: votes.VoteTally) -> dict[str, Any]:
    name = evidence.VoterNamer(store)
    return {
        "counted_voters": tally.counted,
        "ignored_replies": dict(sorted(tally.ignored.items())),
        "candidates": [{"hashtag": t.tag, "votes": t.votes,
                        "first_vote_unix": t.first_vote_unix,
                        "voters": [name(r.platform, r.author_id, r.author_handle)
                                   for r in t.voters]} for t in tally.ranked],
    }


def _trending_evidence(merged: TrendingMerge) -> dict[str, Any]:
    return {
        "dropped_listings": merged.dropped,  # counts only: blocklisted words stay out
        "candidates": [{"hashtag": t.tag, "score": t.score,
                        "sources": [vars(s) for s in t.sources]} for t in merged.ranked],
    }


def _record(store, record, method, winner, runner_ups, reason, why, *, votes: int) -> Choice:
    record.update(method=method, winner=winner, runner_ups=runner_ups[:MAX_RUNNER_UPS],
                  reason=reason, why=why, winner_votes=votes)
    choice = Choice.from_record(record)
    record["caption_line"] = caption_line(choice)
    evidence.write_evidence(store, record)
    return choice


def _record_failure(store, record, why: str) -> str:
    record.update(method="", winner="", runner_ups=[], reason="", why=why, winner_votes=0,
                  caption_line="")
    return evidence.write_evidence(store, record)

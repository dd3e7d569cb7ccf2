"""What the audience says, gathered for a choice: the replies under this round's posts, read
from each network with the publisher's accounts, and the trending tags of the configured
sources. A source that cannot be read (a deleted post, an access level without search, an
instance that does not answer) is left out and named in `skipped`; the choice goes on with
the rest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from socialgan.audience.choose import Choice, choose_hashtag, round_posts
from socialgan.audience.trends import trending_tags_from_env
from socialgan.audience.types import Reply, TrendingTag
from socialgan.errors import SocialGanError, clip
from socialgan.storage import ObjectStore

log = logging.getLogger(__name__)

VOTE_MODES = ("vote", "vote-else-trending")
TRENDING_MODES = ("trending", "vote-else-trending")


@dataclass
class Heard:
    replies: list[Reply] = field(default_factory=list)
    trending: list[TrendingTag] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def replies_of_round(store: ObjectStore, posts: list, heard: Heard) -> None:
    from socialgan.publishing.posting import get_target

    for post in posts:
        try:
            heard.replies += get_target(post.target).read_replies(store, post)
        except SocialGanError as exc:  # one post's network refusing must not stop the vote
            heard.skipped.append(clip(f"{post.target} post {post.post_id}: {exc}", 300))
            log.warning("replies not read", extra={"post_id": post.post_id,
                                                   "target": post.target})


def listen_and_choose(store: ObjectStore, mode: str, manual: str = "") -> tuple[Choice, Heard]:
    """Read what the mode needs, then choose_hashtag (which records the evidence)."""
    heard = Heard()
    posts = round_posts(store)
    if mode in VOTE_MODES:
        replies_of_round(store, posts, heard)
    if mode in TRENDING_MODES:
        heard.trending = trending_tags_from_env(skipped=heard.skipped)
    choice = choose_hashtag(store, mode, manual=manual, replies=heard.replies,
                            trending=heard.trending, posts=posts)
    return choice, heard

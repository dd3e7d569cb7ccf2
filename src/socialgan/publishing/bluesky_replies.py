"""The replies under one of our Bluesky posts (the audience's votes).

    GET app.bsky.feed.getPostThread?uri=AT-URI&depth=N&parentHeight=0
        -> {"thread": {"post": {...}, "replies": [threadViewPost...]}}

Called through the account's PDS with its session (the PDS proxies app.bsky.* reads to the
AppView), so the session token still goes to the PDS only. The thread has no pages: `depth`
bounds how far down replies to replies are followed. A reply the AppView cannot show
(#notFoundPost, #blockedPost) has no `post` and is skipped.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from socialgan.audience.types import Reply
from socialgan.errors import Unavailable
from socialgan.publishing.bluesky_session import PLATFORM, BlueskySession
from socialgan.publishing.replies import ReplyBudget, unix_time

THREAD_DEPTH = 20  # levels of replies to replies (the lexicon takes up to 1,000)


def thread_replies(client: BlueskySession, uri: str, own_did: str,
                   limit: int) -> list[Reply]:
    """Every reply in the thread below uri, nearest first (breadth first), at most limit."""
    answer = client.json("GET", "app.bsky.feed.getPostThread", params={
        "uri": uri, "depth": THREAD_DEPTH, "parentHeight": 0})
    thread = answer.get("thread") if isinstance(answer, dict) else None
    if not isinstance(thread, dict):
        raise Unavailable(f"{PLATFORM}: getPostThread answered no thread for {uri}")
    budget = ReplyBudget(PLATFORM, uri, limit)
    waiting: deque[Any] = deque(thread.get("replies") or [])
    while waiting:
        node = waiting.popleft()
        if not isinstance(node, dict):
            continue
        reply = _reply(node.get("post"), uri, own_did)
        if reply is not None and not budget.add(reply):
            break
        waiting.extend(node.get("replies") or [])
    return budget.replies


def _reply(post: Any, uri: str, own_did: str) -> Reply | None:
    if not isinstance(post, dict) or not isinstance(post.get("uri"), str):
        return None
    author = post.get("author") if isinstance(post.get("author"), dict) else {}
    record = post.get("record") if isinstance(post.get("record"), dict) else {}
    did = str(author.get("did") or "")
    return Reply(platform="bluesky", post_id=uri, reply_id=post["uri"], author_id=did,
                 author_handle=str(author.get("handle") or ""),
                 text=str(record.get("text") or ""),
                 created_unix=unix_time(record.get("createdAt") or post.get("indexedAt")),
                 is_own=bool(did) and did == own_did)

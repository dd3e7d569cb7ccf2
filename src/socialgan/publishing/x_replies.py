"""The replies to one of our X posts (the audience's votes), by recent search.

    GET /2/tweets/search/recent?query=conversation_id:ID&max_results=100
        &tweet.fields=author_id,created_at,conversation_id&expansions=author_id
        &user.fields=username[&next_token=T]
        -> {"data": [...], "includes": {"users": [...]}, "meta": {"next_token"}}

Recent search covers the last 7 days and is not in every access level: X answers 403 then,
which becomes FAILED_PRECONDITION saying so (the chooser skips X's votes and goes on). X
charges per post read, so the cap on replies is also a cap on the cost.
"""

from __future__ import annotations

import html
from typing import Any

from socialgan.audience.types import Reply
from socialgan.errors import FailedPrecondition, Unavailable
from socialgan.publishing.http import PlatformError, PublishHttp
from socialgan.publishing.replies import ReplyBudget, unix_time

SEARCH_PATH = "/2/tweets/search/recent"
PAGE_SIZE = 100  # the endpoint's maximum


def conversation_replies(api: PublishHttp, tweet_id: str, own_user_id: str,
                         limit: int) -> list[Reply]:
    """The posts of tweet_id's conversation but the post itself, newest first, at most
    limit."""
    if not tweet_id.isdigit():
        raise Unavailable(f"X: the post id {tweet_id[:40]!r} on record is not an X post id")
    if not own_user_id:  # a post recorded before its sender kept the account id
        me = api.json("GET", "/2/users/me")
        own_user_id = str(((me if isinstance(me, dict) else {}).get("data") or {}).get("id")
                          or "")
    budget = ReplyBudget("X", tweet_id, limit)
    token, seen = "", set()
    while not budget.full:
        params = {"query": f"conversation_id:{tweet_id}", "max_results": PAGE_SIZE,
                  "tweet.fields": "author_id,created_at,conversation_id",
                  "expansions": "author_id", "user.fields": "username"}
        if token:
            params["next_token"] = token
        answer = _search(api, params)
        handles = {str(u.get("id")): str(u.get("username") or "")
                   for u in (answer.get("includes") or {}).get("users") or []
                   if isinstance(u, dict)}
        for tweet in answer.get("data") or []:
            reply = _reply(tweet, tweet_id, own_user_id, handles)
            if reply is not None and not budget.add(reply):
                break
        seen.add(token)
        meta = answer.get("meta") if isinstance(answer.get("meta"), dict) else {}
        token = str(meta.get("next_token") or "")
        if not token or token in seen:
            break
    return budget.replies


def _search(api: PublishHttp, params: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = api.json("GET", SEARCH_PATH, params=params)
    except PlatformError as exc:
        if exc.status == 403:
            raise FailedPrecondition(
                f"X: recent search ({SEARCH_PATH}) was refused (403) for "
                f"{api.credential.env_var}: its access level does not include reading "
                "replies by conversation_id, so votes on X cannot be read") from None
        raise
    if not isinstance(answer, dict):
        raise Unavailable(f"X: {SEARCH_PATH} answered with no JSON object")
    return answer


def _reply(tweet: Any, tweet_id: str, own_user_id: str,
           handles: dict[str, str]) -> Reply | None:
    if not isinstance(tweet, dict) or not tweet.get("id") or str(tweet["id"]) == tweet_id:
        return None  # the post itself belongs to its own conversation
    author_id = str(tweet.get("author_id") or "")
    return Reply(platform="x", post_id=tweet_id, reply_id=str(tweet["id"]),
                 author_id=author_id, author_handle=handles.get(author_id, ""),
                 text=html.unescape(str(tweet.get("text") or "")),  # X escapes & < >
                 created_unix=unix_time(tweet.get("created_at")),
                 is_own=bool(author_id) and author_id == own_user_id)

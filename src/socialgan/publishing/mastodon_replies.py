"""The replies under one of our Mastodon statuses (the audience's votes).

    GET /api/v1/statuses/:id/context          -> {"ancestors": [...], "descendants": [...]}
    GET /api/v1/accounts/verify_credentials   our account id, once per reader

The context has no pages: an instance answers the whole thread below the status at once (up
to 4,096 descendants with a token, 60 without), replies to replies included. Each
descendant's content is HTML; it is read as plain text with the scraper's plain_text().
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from socialgan.audience.types import Reply
from socialgan.errors import Unavailable
from socialgan.publishing.http import PublishHttp
from socialgan.publishing.replies import ReplyBudget, unix_time
from socialgan.scraping.mastodon import plain_text


def own_account_id(api: PublishHttp) -> str:
    account = api.json("GET", "/api/v1/accounts/verify_credentials")
    if not isinstance(account, dict) or not account.get("id"):
        raise Unavailable("Mastodon: verify_credentials answered without an account id")
    return str(account["id"])


def status_replies(api: PublishHttp, status_id: str, own_id: str, limit: int) -> list[Reply]:
    """Every descendant of status_id, in the instance's thread order, at most limit."""
    context = api.json("GET", f"/api/v1/statuses/{quote(status_id, safe='')}/context")
    descendants = context.get("descendants") if isinstance(context, dict) else None
    if not isinstance(descendants, list):
        raise Unavailable(f"Mastodon: the context of status {status_id} has no descendants "
                          "list")
    budget = ReplyBudget("Mastodon", status_id, limit)
    for status in descendants:
        reply = _reply(status, status_id, own_id)
        if reply is not None and not budget.add(reply):
            break
    return budget.replies


def _reply(status: Any, status_id: str, own_id: str) -> Reply | None:
    if not isinstance(status, dict) or not status.get("id"):
        return None
    account = status.get("account") if isinstance(status.get("account"), dict) else {}
    author_id = str(account.get("id") or "")
    return Reply(platform="mastodon", post_id=status_id, reply_id=str(status["id"]),
                 author_id=author_id, author_handle=str(account.get("acct") or ""),
                 text=plain_text(str(status.get("content") or "")),
                 created_unix=unix_time(status.get("created_at")),
                 is_own=bool(author_id) and author_id == own_id)

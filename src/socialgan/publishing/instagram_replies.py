"""The comments, and the replies to them, under our Instagram media (the audience's votes).

    GET /{ig-user-id}?fields=username                        our username, once per reader
    GET /{media-id}/comments?fields=id,text,username,timestamp,from,replies{...}&limit=50
        [&after=CURSOR]   each comment with the first page of its replies (field expansion)
    GET /{comment-id}/replies?fields=...&limit=50&after=CURSOR
        only for a comment whose replies go on past that first page

Asking for the replies inside the comments page costs one call per page of comments, not one
per comment: Graph's rate limit counts calls (about 200 an hour per account).

Graph pages with `paging.cursors.after`, and `paging.next` (present only when there is a next
page) is a whole URL that carries access_token in its query. That URL is never requested:
only its cursor is taken, and the next page is asked for again through the Graph base URL
with the token in the Authorization header, so no URL we send, log or keep holds the token.
Reading comments needs instagram_business_manage_comments (Instagram Login) or
instagram_manage_comments (Facebook Login).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from socialgan.audience.types import Reply
from socialgan.errors import Unavailable
from socialgan.publishing.http import PlatformError, PublishHttp
from socialgan.publishing.instagram_graph import graph_error
from socialgan.publishing.replies import ReplyBudget, unix_time

COMMENT_FIELDS = "id,text,username,timestamp,from"
WITH_REPLIES = f"{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}"
PAGE_SIZE = 50
_PERMISSION_CODES = frozenset({10, *range(200, 300)})


def next_cursor(paging: Any) -> str:
    """The `after` cursor of the next page, "" on the last page (no paging.next)."""
    if not isinstance(paging, dict) or not paging.get("next"):
        return ""
    cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
    after = cursors.get("after")
    if isinstance(after, str) and after:
        return after
    # Some edges give only the next URL: its cursor is all that is taken from it.
    values = parse_qs(urlsplit(str(paging["next"])).query).get("after")
    return values[0] if values else ""


class CommentReader:
    """Comments of one account's media, with the account's own told apart."""

    def __init__(self, http: PublishHttp, user_id: str):
        self.http = http
        self.user_id = user_id
        self._username: str | None = None

    def _json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self.http.json("GET", path, params=params)
        except PlatformError as exc:
            if graph_error(exc.body).get("code") in _PERMISSION_CODES:
                raise PlatformError(exc.status, exc.body, (
                    f"{exc}; {self.http.credential.env_var} lacks a permission to read "
                    "comments: instagram_business_manage_comments (Instagram Login) or "
                    "instagram_manage_comments (Facebook Login)")) from None
            raise
        if not isinstance(answer, dict):
            raise Unavailable(f"Instagram: GET {path} answered with no JSON object")
        return answer

    def own_username(self) -> str:
        if self._username is None:
            answer = self._json(f"/{self.user_id}", {"fields": "username"})
            self._username = str(answer.get("username") or "")
        return self._username

    def _rows(self, path: str, fields: str, budget: ReplyBudget,
              first: Any = None) -> Iterator[dict[str, Any]]:
        """The rows of an edge, page after page; first: its first page, already read."""
        after, seen = "", set()
        while not budget.full:
            if first is None:
                params: dict[str, Any] = {"fields": fields, "limit": PAGE_SIZE}
                if after:
                    params["after"] = after
                answer = self._json(path, params)
            else:
                answer, first = first, None
            rows = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(rows, list):
                raise Unavailable(f"Instagram: GET {path} answered with no data list")
            yield from (row for row in rows if isinstance(row, dict) and row.get("id"))
            seen.add(after)
            after = next_cursor(answer.get("paging"))
            if not rows or not after or after in seen:  # a cursor that repeats would loop
                return

    def media_replies(self, media_id: str, budget: ReplyBudget) -> None:
        """Every comment under media_id, each followed by its replies, into budget."""
        own = self.own_username()
        path = f"/{quote(media_id, safe='')}/comments"
        for comment in self._rows(path, WITH_REPLIES, budget):
            if not budget.add(self._reply(comment, media_id, own)):
                return
            inline = comment.get("replies")
            if not isinstance(inline, dict):
                continue  # no replies
            replies = f"/{quote(str(comment['id']), safe='')}/replies"
            for answer in self._rows(replies, COMMENT_FIELDS, budget, first=inline):
                if not budget.add(self._reply(answer, media_id, own)):
                    return

    def _reply(self, row: dict[str, Any], media_id: str, own: str) -> Reply:
        author = row.get("from") if isinstance(row.get("from"), dict) else {}
        username = str(row.get("username") or author.get("username") or "")
        author_id = str(author.get("id") or "")
        is_own = (bool(own) and username.lower() == own.lower()) or author_id == self.user_id
        return Reply(platform="instagram", post_id=media_id, reply_id=str(row["id"]),
                     author_id=author_id or username, author_handle=username,
                     text=str(row.get("text") or ""),
                     created_unix=unix_time(row.get("timestamp")), is_own=is_own)

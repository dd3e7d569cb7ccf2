"""The Instagram Graph API calls content publishing makes, with its errors told apart.

    POST /{ig-user-id}/media                  a container: image_url, caption, alt_text
                                              (is_carousel_item; or media_type=CAROUSEL
                                              with children=...)
    GET  /{container}?fields=status_code      IN_PROGRESS, FINISHED, ERROR, EXPIRED, PUBLISHED
    POST /{ig-user-id}/media_publish          creation_id -> the media id (the post)
    GET  /{media-id}?fields=permalink
    GET  /{ig-user-id}/content_publishing_limit?fields=config,quota_usage
    GET  /{ig-user-id}/media?fields=id,caption,timestamp

The token goes in the Authorization header to the Graph host only (PublishHttp); parameters
go in the form body, so no URL ever carries it. Graph answers most errors with a 400 and an
error code: 4, 17, 32 and 613 are rate limits (retried), 190 and 102 a bad or expired token,
10 and 200-299 a missing permission (both FAILED_PRECONDITION naming the token's variable).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from socialgan.errors import FailedPrecondition, Unavailable
from socialgan.publishing.http import PlatformError, PublishHttp

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
_TOKEN_CODES = frozenset({102, 190})
_PERMISSION_CODES = frozenset({10, *range(200, 300)})
_FETCH_FAILED = 2207052  # error 9004: the image_url could not be downloaded
# The poll answers of a container (status_code).
IN_PROGRESS, FINISHED, ERROR, EXPIRED, PUBLISHED = (
    "IN_PROGRESS", "FINISHED", "ERROR", "EXPIRED", "PUBLISHED")


def graph_error(body: bytes | Any) -> dict[str, Any]:
    """The Graph `error` object of an answer (empty when it has none)."""
    payload = body
    if isinstance(body, bytes):
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return {}
    err = payload.get("error") if isinstance(payload, dict) else None
    return err if isinstance(err, dict) else {}


def is_rate_limited(status: int, body: bytes) -> bool:
    """Graph's rate limits come as a 400 or 403 with one of these codes."""
    return status in (400, 403) and graph_error(body).get("code") in RATE_LIMIT_CODES


@dataclass(frozen=True)
class Quota:
    total: int
    used: int

    @property
    def left(self) -> int:
        return max(0, self.total - self.used)


class GraphApi:
    """One professional account's publishing calls."""

    def __init__(self, http: PublishHttp, user_id: str, *, poll_interval_s: float,
                 poll_timeout_s: float, sleep: Callable[[float], None] = time.sleep):
        self.http = http
        self.user_id = user_id
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.sleep = sleep

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self.http.json(method, path, **kwargs)
        except PlatformError as exc:
            raise self._explained(exc) from None
        if not isinstance(answer, dict):
            raise Unavailable(f"Instagram: {method} {path} answered with no JSON object")
        return answer

    def _explained(self, exc: PlatformError) -> PlatformError:
        """Token and permission errors name the variable, whatever status they came with."""
        err = graph_error(exc.body)
        code = err.get("code")
        variable = self.http.credential.env_var
        if err.get("error_subcode") == _FETCH_FAILED:
            return PlatformError(exc.status, exc.body, f"{exc}; Instagram could not fetch the "
                                 "image: PUBLIC_MEDIA_BASE_URL (or the S3 endpoint of a "
                                 "presigned URL) must serve it publicly over https")
        if code in _TOKEN_CODES:
            return PlatformError(exc.status, exc.body, f"{exc}; {variable} is invalid or "
                                 "expired: make a new long-lived token")
        if code in _PERMISSION_CODES:
            return PlatformError(exc.status, exc.body, f"{exc}; {variable} lacks a "
                                 "permission: instagram_business_content_publish (Instagram "
                                 "Login) or instagram_content_publish (Facebook Login)")
        return exc

    def quota(self) -> Quota:
        answer = self._json("GET", f"/{self.user_id}/content_publishing_limit",
                            params={"fields": "config,quota_usage"})
        rows = answer.get("data") or [{}]
        row = rows[0] if isinstance(rows[0], dict) else {}
        config = row.get("config") if isinstance(row.get("config"), dict) else {}
        try:
            return Quota(int(config.get("quota_total", 0)), int(row.get("quota_usage", 0)))
        except (TypeError, ValueError):
            raise Unavailable("Instagram: content_publishing_limit answered without "
                              "config.quota_total / quota_usage") from None

    def create_container(self, fields: dict[str, str]) -> str:
        # A repeated create (an answer lost, a timeout) leaves at most a container that is
        # never published and expires in 24 h: it cannot post twice, so it is retried.
        answer = self._json("POST", f"/{self.user_id}/media", data=fields)
        container = str(answer.get("id") or "")
        if not container:
            raise Unavailable("Instagram: POST /media answered without a container id")
        return container

    def status(self, container: str) -> tuple[str, str]:
        """The container's status_code, and Graph's explanation (for ERROR)."""
        answer = self._json("GET", f"/{container}", params={"fields": "status_code,status"})
        return str(answer.get("status_code") or ""), str(answer.get("status") or "")[:200]

    def wait_settled(self, container: str) -> tuple[str, str]:
        """Poll until the container is no longer IN_PROGRESS; Unavailable when it still is
        after poll_timeout_s (a retry polls on: the container keeps its id)."""
        deadline = time.monotonic() + self.poll_timeout_s
        while True:
            code, why = self.status(container)
            if code != IN_PROGRESS:
                return code, why
            if time.monotonic() >= deadline:
                raise Unavailable(f"Instagram: container {container} is still IN_PROGRESS "
                                  f"after {self.poll_timeout_s:.0f} s "
                                  "(INSTAGRAM_POLL_TIMEOUT_S); publish again to go on")
            self.sleep(self.poll_interval_s)

    def publish(self, container: str) -> str:
        """media_publish: the media id. Not repeated by PublishHttp on an uncertain failure:
        the caller asks the container's status before it publishes again."""
        answer = self._json("POST", f"/{self.user_id}/media_publish",
                            data={"creation_id": container}, idempotent=False)
        media_id = str(answer.get("id") or "")
        if not media_id:
            raise Unavailable("Instagram: media_publish answered without a media id")
        return media_id

    def permalink(self, media_id: str) -> str:
        answer = self._json("GET", f"/{media_id}", params={"fields": "permalink"})
        link = str(answer.get("permalink") or "")
        return link if link.startswith("https://") else ""

    def find_media(self, caption: str, since_unix: float, known: set[str]) -> str:
        """The id of the newest of the account's media that carries caption, was made after
        since_unix (a little clock slack allowed) and is none of known; "" when none is.
        Used after a media_publish whose answer was lost but whose container says
        PUBLISHED (the container does not say which media it became), before anything else
        is published: the newest such media is the one it made."""
        answer = self._json("GET", f"/{self.user_id}/media",
                            params={"fields": "id,caption,timestamp", "limit": "50"})
        found = []
        for row in answer.get("data") or []:
            if not isinstance(row, dict) or str(row.get("id") or "") in known:
                continue
            if (row.get("caption") or "") != caption:
                continue
            when = _unix(str(row.get("timestamp") or ""))
            if when is not None and when >= since_unix - 600:
                found.append((when, str(row["id"])))
        return max(found)[1] if found else ""


def _unix(stamp: str) -> float | None:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def refuse_quota(quota: Quota, needed: int, what: str) -> None:
    if quota.left < needed:
        raise FailedPrecondition(
            f"Instagram content_publishing_limit: {quota.used} of {quota.total} posts used in "
            f"the last 24 h, {quota.left} left; {what} needs {needed}: try again when the "
            "quota has room")

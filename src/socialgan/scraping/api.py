"""JSON over HTTP for the social APIs, through the same Downloader as the media.

Every API call gets the Downloader's timeouts, bounded retries with jittered backoff, and
its honouring of Retry-After / x-rate-limit-reset / X-RateLimit-Reset. What is left to
fail becomes one of the core errors, so a gRPC caller sees a status code and a message that
names the API and the problem, never UNKNOWN:

    401, 403               FailedPrecondition (credentials or permissions: says which variable)
    404                    NotFound
    other 4xx              InvalidArgument
    429, 5xx, timeouts,    Unavailable (after the retries)
    malformed JSON

Credentials travel in the Authorization header only: never in a URL, so never in a message
or a log line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from socialgan.scraping.download import (
    Downloader,
    DownloadPolicy,
    FetchError,
    HttpStatusError,
)

# API pages are small; a platform's rate-limit window (X: 15 minutes) is worth waiting for.
API_POLICY = DownloadPolicy(max_bytes=8 << 20, max_retry_after=900.0, max_attempts=5)


@dataclass
class ApiResponse:
    data: Any
    headers: dict[str, str]


def _error_text(body: bytes) -> str:
    """The API's own explanation, from the shapes Graph/X/Mastodon use, kept short."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(payload, dict):
        err = payload.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)[:200]
        if isinstance(err, str):
            return err[:200]
        for key in ("detail", "title"):
            if isinstance(payload.get(key), str):
                return payload[key][:200]
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("detail") or "")[:200]
    return ""


class ApiClient:
    """GETs JSON from one API. `credential_var` names the env var to blame on a 401/403."""

    def __init__(self, name: str, base_url: str, token: str = "", *,
                 credential_var: str = "", downloader: Downloader | None = None,
                 rate_limited: Callable[[HttpStatusError], bool] | None = None):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.credential_var = credential_var
        self.downloader = downloader or Downloader(API_POLICY)
        # Some APIs (Graph) say "rate limited" with a 400/403 and an error code.
        self._rate_limited = rate_limited

    def __repr__(self) -> str:  # never the token
        return f"ApiClient({self.name!r}, {self.base_url!r})"

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        return f"{self.base_url}/{path.lstrip('/')}" + (f"?{query}" if query else "")

    def get(self, path: str, params: Mapping[str, Any] | None = None,
            should_stop: Callable[[], bool] | None = None) -> ApiResponse:
        url = self.url(path, params)
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        attempts = self.downloader.policy.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self.downloader.fetch(url, should_stop, headers=headers,
                                                 accept="application/json")
                break
            except HttpStatusError as exc:
                if (self._rate_limited and self._rate_limited(exc) and attempt < attempts
                        and self._pause(self.downloader.backoff(attempt), should_stop)):
                    continue
                raise self._translate(exc, path) from None
            except FetchError as exc:
                raise Unavailable(f"{self.name}: {path}: {exc}") from None
        try:
            data = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise Unavailable(f"{self.name}: malformed JSON from {path} "
                              f"({len(response.body)} bytes)") from None
        return ApiResponse(data, response.headers)

    @staticmethod
    def _pause(seconds: float, should_stop: Callable[[], bool] | None) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if should_stop and should_stop():
                return False
            time.sleep(min(left, 0.1))
        return True

    def _translate(self, exc: HttpStatusError, path: str) -> Exception:
        said = _error_text(exc.body)
        why = f" ({said})" if said else ""
        status = exc.status
        if self._rate_limited and self._rate_limited(exc):
            return Unavailable(f"{self.name}: rate limited on {path}{why}; try again later")
        if status in (401, 403):
            what = "rejected the credentials" if status == 401 else "refused access"
            hint = f"; check {self.credential_var}" if self.credential_var else ""
            return FailedPrecondition(f"{self.name} {what} ({status}) on {path}{why}{hint}")
        if status == 404:
            return NotFound(f"{self.name}: {path} not found (404){why}")
        if exc.retryable:
            return Unavailable(f"{self.name}: {path} answered {status} after retries{why}")
        return InvalidArgument("source", f"{self.name} refused {path} ({status}){why}")


def expect(data: Any, kind: type, what: str, api: str) -> Any:
    """data if it has the documented shape, else Unavailable naming what was wrong."""
    if not isinstance(data, kind):
        raise Unavailable(f"{api}: unexpected answer: {what} is {type(data).__name__}, "
                          f"not {kind.__name__}")
    return data

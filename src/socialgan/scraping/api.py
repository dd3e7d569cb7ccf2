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

Credentials travel in the Authorization header only, never in a URL, and only where their
socialgan.credentials.Credential allows: the configured host, over https. A request to any
other URL goes without the token, and an answer that comes from another origin (a redirect
away from the API's host) is refused, FailedPrecondition, before its data is used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from socialgan.credentials import Credential
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
    """GETs JSON from one API, with the credential where the credential allows it."""

    def __init__(self, name: str, base_url: str, credential: Credential | None = None, *,
                 downloader: Downloader | None = None,
                 rate_limited: Callable[[HttpStatusError], bool] | None = None):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.downloader = downloader or Downloader(API_POLICY)
        # The scrape's stop check (Source.bind_stop): retries and pauses end at a cancel.
        self.should_stop: Callable[[], bool] | None = None
        # Some APIs (Graph) say "rate limited" with a 400/403 and an error code.
        self._rate_limited = rate_limited

    def __repr__(self) -> str:  # never the token
        return f"ApiClient({self.name!r}, {self.base_url!r})"

    def credential_refusal(self, url: str | None = None) -> str | None:
        """Why the credential may not go to url (default: the API's base URL), or None.
        Plain http counts only to loopback, and only when this client may reach private
        networks (tests)."""
        if not self.credential:
            return None
        return self.credential.refusal(url or self.base_url,
                                       loopback_http=self.downloader.allow_private)

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        return f"{self.base_url}/{path.lstrip('/')}" + (f"?{query}" if query else "")

    def get(self, path: str, params: Mapping[str, Any] | None = None,
            should_stop: Callable[[], bool] | None = None) -> ApiResponse:
        url = self.url(path, params)
        should_stop = should_stop or self.should_stop
        headers = self.credential.headers_for(
            url, loopback_http=self.downloader.allow_private) if self.credential else {}
        attempts = self.downloader.policy.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self.downloader.fetch(url, should_stop, headers=headers,
                                                 accept="application/json")
                break
            except HttpStatusError as exc:
                self._refuse_if_redirected(headers, exc.url or url, path)
                if (self._rate_limited and self._rate_limited(exc) and attempt < attempts
                        and self._pause(self.downloader.backoff(attempt), should_stop)):
                    continue
                raise self._translate(exc, path) from None
            except FetchError as exc:
                raise Unavailable(self._redact(f"{self.name}: {path}: {exc}")) from None
        self._refuse_if_redirected(headers, response.url, path)
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

    def _refuse_if_redirected(self, headers: Mapping[str, str], answered_by: str,
                              path: str) -> None:
        """A credentialed call answered from an origin the credential does not trust (a
        redirect away from the API's host) is no answer of the API: refuse it, success or
        error. The Downloader sends the token on the first hop only, so it did not go there."""
        if headers and (moved := self.credential_refusal(answered_by)):
            raise FailedPrecondition(f"{self.name}: {path} was redirected away from the API; "
                                     f"refused the answer: {moved}")

    def _redact(self, text: str) -> str:
        return self.credential.redact(text) if self.credential else text

    def _credential_hint(self, path: str) -> str:
        """What to check after a 401/403: the variable, or why it was not sent at all."""
        if self.credential is None:
            return ""
        if not self.credential:
            also = f" (and {self.credential.url_var})" if self.credential.url_var else ""
            return f"; no credential was sent: set {self.credential.env_var}{also}"
        refusal = self.credential_refusal(self.url(path))
        if refusal:
            return f"; the credential was not sent: {refusal}"
        return f"; check {self.credential.env_var}"

    def _translate(self, exc: HttpStatusError, path: str) -> Exception:
        said = self._redact(_error_text(exc.body))
        why = f" ({said})" if said else ""
        status = exc.status
        if self._rate_limited and self._rate_limited(exc):
            return Unavailable(f"{self.name}: rate limited on {path}{why}; try again later")
        if status in (401, 403):
            what = "rejected the credentials" if status == 401 else "refused access"
            return FailedPrecondition(f"{self.name} {what} ({status}) on {path}{why}"
                                      f"{self._credential_hint(path)}")
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

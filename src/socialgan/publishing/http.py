"""HTTP for the publishing clients: one credential, its host only, bounded retries.

    api = PublishHttp("Mastodon", credential, base_url)
    status = api.call("POST", "/api/v1/statuses", json={...}, headers={"Idempotency-Key": k})

Every call has a connect and read timeout, and is retried (up to PUBLISH_MAX_ATTEMPTS, with
jittered exponential backoff that waits what Retry-After or a rate-limit reset header asks,
up to PUBLISH_MAX_WAIT_S) when the answer is 429, 5xx, a timeout, a dropped connection, or
what the target's `rate_limited` says is a rate limit (Instagram's codes 4, 17, 32, 613 come
with a 400 or 403). A call whose repeat could post twice (`idempotent=False`) is retried
only when the request cannot have arrived (the connection was refused) or the platform said
"too many requests": anything else ends the call, and the target looks the post up before
it sends again.

What is left to fail becomes a core error that names the platform:

    401, 403 (not a rate limit)    PlatformError (a FailedPrecondition) naming the
                                   credential's variable
    other 4xx                      PlatformError with the platform's own message
    retries spent                  Unavailable

The credential is sent only where Credential.refusal allows (its host, https; http only to
loopback with PUBLISHER_ALLOW_LOOPBACK_HTTP for the tests), never in a URL, and redirects
are not followed: a 3xx is refused, so the token cannot be led to another host.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from socialgan import settings
from socialgan.credentials import Credential
from socialgan.errors import FailedPrecondition, Unavailable
from socialgan.scraping.download import wait_hint

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_s: float = 1.0  # first pause; doubles each time, with jitter
    backoff_max_s: float = 30.0
    max_wait_s: float = 900.0  # a longer Retry-After fails the call at once
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(max_attempts=max(1, settings.get_int("PUBLISH_MAX_ATTEMPTS")),
                   backoff_s=float(settings.get("PUBLISH_BACKOFF_S") or 1.0),
                   max_wait_s=float(settings.get("PUBLISH_MAX_WAIT_S") or 900.0),
                   read_timeout_s=float(settings.get("PUBLISH_TIMEOUT_S") or 60.0))


def loopback_http_allowed() -> bool:
    return settings.get_bool("PUBLISHER_ALLOW_LOOPBACK_HTTP")


def error_text(body: bytes) -> str:
    """The platform's own explanation (Graph, X, Mastodon and XRPC shapes), kept short."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(payload, dict):
        return ""
    err = payload.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "")[:200]
    parts = [str(payload[k])[:200] for k in ("error", "message", "detail", "title")
             if isinstance(payload.get(k), str)]
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        parts.append(str(errors[0].get("message") or errors[0].get("detail") or "")[:200])
    return ": ".join(p for p in parts if p)[:300]


class PlatformError(FailedPrecondition):
    """A call the platform refused for good (FAILED_PRECONDITION, with the platform's own
    message); status and body kept for the targets that must tell one answer from another
    (an expired container, a record that exists already)."""

    def __init__(self, status: int, body: bytes, message: str):
        super().__init__(message)
        self.status = status
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


def _never_arrived(exc: requests.ConnectionError) -> bool:
    """True when the request cannot have reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class PublishHttp:
    """Calls to one platform's API with one credential."""

    def __init__(self, platform: str, credential: Credential, base_url: str, *,
                 policy: RetryPolicy | None = None,
                 rate_limited: Callable[[int, bytes], bool] | None = None,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.platform = platform
        self.credential = credential
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy.from_env()
        self.rate_limited = rate_limited or (lambda status, body: False)
        self.session = session or requests.Session()
        self.session.trust_env = False  # no proxy from the environment sees the token
        self.sleep = sleep

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def _headers(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        why = self.credential.refusal(url, loopback_http=loopback_http_allowed())
        if why is not None:
            raise FailedPrecondition(f"{self.platform}: {why}")
        return {**self.credential.headers_for(url, loopback_http=loopback_http_allowed()),
                "User-Agent": "SocialGAN-publisher", **(extra or {})}

    def _pause(self, attempt: int, hint: float | None, what: str) -> None:
        if hint is not None and hint > self.policy.max_wait_s:
            raise Unavailable(f"{self.platform}: {what}; it asks to wait {hint:.0f} s, over "
                              f"PUBLISH_MAX_WAIT_S ({self.policy.max_wait_s:.0f} s): try later")
        backoff = min(self.policy.backoff_max_s, self.policy.backoff_s * 2 ** attempt)
        self.sleep(max(hint or 0.0, backoff * (0.5 + random.random() / 2)))

    def call(self, method: str, path: str, *, idempotent: bool = True,
             headers: Mapping[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """One API call with retries; the 2xx response, or a core error (see the module)."""
        url = self.url(path)
        sent_headers = self._headers(url, headers)
        timeout = (self.policy.connect_timeout_s, self.policy.read_timeout_s)
        last = ""
        for attempt in range(self.policy.max_attempts):
            final = attempt == self.policy.max_attempts - 1
            try:
                response = self.session.request(method, url, headers=sent_headers,
                                                timeout=timeout, allow_redirects=False,
                                                **kwargs)
            except requests.ConnectionError as exc:
                # A refused connection never reached the platform; a reset after sending may
                # have: only an idempotent call is sent again then.
                last = f"{method} {path}: the connection failed ({type(exc).__name__})"
                if final or (not _never_arrived(exc) and not idempotent):
                    break
                self._pause(attempt, None, last)
                continue
            except requests.Timeout:
                last = f"{method} {path}: no answer in {self.policy.read_timeout_s:.0f} s"
                if final or not idempotent:
                    break
                self._pause(attempt, None, last)
                continue
            status, body = response.status_code, response.content
            if 200 <= status < 300:
                return response
            text = error_text(body)
            last = f"{method} {path} answered {status}" + (f": {text}" if text else "")
            limited = status == 429 or self.rate_limited(status, body)
            if 300 <= status < 400:
                raise FailedPrecondition(f"{self.platform}: {method} {path} redirected to "
                                         "another address; redirects are not followed")
            if limited or (status in RETRYABLE_STATUS and idempotent):
                if final:
                    break
                self._pause(attempt, wait_hint(response.headers), last)
                continue
            raise self._permanent(status, body, self.credential.redact(last))
        raise Unavailable(f"{self.platform}: {self.credential.redact(last)} "
                          f"(after {attempt + 1} attempt{'s' if attempt else ''})")

    def _permanent(self, status: int, body: bytes, what: str) -> Exception:
        if status in (401, 403):
            return PlatformError(status, body, f"{self.platform}: {what}; check "
                                 f"{self.credential.env_var} (its permissions, or whether it "
                                 "expired)")
        return PlatformError(status, body, f"{self.platform}: {what}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise Unavailable(f"{self.platform}: {method} {path} answered with no JSON") \
                from None

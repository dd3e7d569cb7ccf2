"""Sign-in, the session cookie, CSRF tokens and safe redirects of the dashboard.

The session is a signed cookie (itsdangerous), HttpOnly and SameSite=Strict, holding a
CSRF token and whether its holder signed in. Every form carries that token; a POST whose
token is missing or wrong is refused (403) before anything is called. A person signs in
with the API token or DASHBOARD_PASSWORD; both are compared in constant time and appear
nowhere: not in a log, a page or the cookie.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from socialgan.errors import InvalidArgument

COOKIE = "socialgan_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
FAILURES_ALLOWED = 5  # wrong sign-ins per client in FAILURE_WINDOW_S before a 429
FAILURE_WINDOW_S = 60.0
MAX_NEXT_CHARS = 2_000


class NotSignedIn(Exception):
    """The request has no signed-in session: pages redirect to the sign-in, /api is 401."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token (403)."""


@dataclass
class Session:
    csrf: str
    signed_in: bool = False

    @classmethod
    def fresh(cls, signed_in: bool = False) -> Session:
        return cls(csrf=secrets.token_urlsafe(32), signed_in=signed_in)


@dataclass
class Credentials:
    """What signs a person in: the API token, and the dashboard password when one is set."""

    api_token: str
    password: str = ""

    def __repr__(self) -> str:  # never show the secrets
        return f"Credentials(password={'set' if self.password else 'unset'})"

    def accepts(self, offered: str) -> bool:
        offered_bytes = offered.encode()
        matches = [hmac.compare_digest(offered_bytes, secret.encode())
                   for secret in (self.api_token, self.password) if secret]
        return any(matches)


class SessionSigner:
    """Signs and checks session cookies; the key is DASHBOARD_SECRET_KEY or random."""

    def __init__(self, secret_key: str = "", max_age_s: float = 12 * 3600):
        self._serializer = URLSafeTimedSerializer(secret_key or secrets.token_urlsafe(32),
                                                  salt="socialgan-dashboard-session")
        self.max_age_s = max_age_s

    def __repr__(self) -> str:
        return f"SessionSigner(max_age_s={self.max_age_s:g})"

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"csrf": session.csrf, "in": session.signed_in})

    def loads(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # tampered, expired (SignatureExpired) or another key's
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        return Session(csrf=data["csrf"], signed_in=data.get("in") is True)


def csrf_matches(session: Session | None, offered: str | None) -> bool:
    return bool(session and offered
                and hmac.compare_digest(session.csrf.encode(), offered.encode()))


def safe_next(target: str | None) -> str:
    """target when it is a path on this site, else "/": no scheme, no host, no
    protocol-relative //host or /\\host, no control characters (an open redirect)."""
    if not target or len(target) > MAX_NEXT_CHARS:
        return "/"
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c == "\\" for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def check_password_field(password: str) -> str:
    if not password:
        raise InvalidArgument("password", "enter the API token or the dashboard password")
    if len(password) > 1_000:
        raise InvalidArgument("password", "longer than any token or password this accepts")
    return password


@dataclass
class FailureThrottle:
    """Wrong sign-ins per client address: past FAILURES_ALLOWED in the window, refuse."""

    allowed: int = FAILURES_ALLOWED
    window_s: float = FAILURE_WINDOW_S
    _failures: dict[str, deque] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, client: str, now: float) -> deque:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.allowed

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # bounded: forget the quietest clients
                for stale in [c for c, t in self._failures.items() if not t][:5_000]:
                    del self._failures[stale]

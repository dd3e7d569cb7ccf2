"""Getting an image's bytes over HTTP without trusting the other end.

Every request has a connect and a read timeout and an overall deadline; transient failures
(timeouts, refused connections, 408/425/429/5xx) are retried a bounded number of times with
exponential backoff and jitter, waiting what Retry-After asks for; permanent ones (other
4xx, bad URLs, oversized bodies) fail at once. Bodies are read in chunks against a size cap.

The SSRF guard resolves the host itself, refuses it when any address is private, loopback,
link-local or otherwise not global (unless SCRAPER_ALLOW_PRIVATE_NETWORKS), and then
connects to the address it checked, so a DNS answer cannot change between check and use.
Redirects are followed by hand and every hop is checked again.

One call fetches one URL; callers run many calls on threads (run_scrape keeps up to
DownloadPolicy.max_in_flight going). Politeness: at most per_host_limit requests to one host
at a time, whatever the number of threads, so one CDN or API never sees a burst of dozens.
The platforms' own rate-limit headers (X's x-rate-limit-reset in epoch seconds, Mastodon's
X-RateLimit-Reset as an ISO 8601 date) are honoured like Retry-After.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

from socialgan import settings

USER_AGENT = "SocialGAN-scraper/0.1 (+https://github.com/socialgan)"
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_CHUNK = 64 << 10
_ERROR_BODY = 16 << 10


class FetchError(Exception):
    """Getting a candidate's bytes failed. .reason is a short tag that scrape counts group by
    ('http_404', 'timeout', 'too_large', 'blocked_address', ...)."""

    def __init__(self, reason: str, detail: str, *, retryable: bool = False,
                 retry_after: float | None = None):
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class DownloadPolicy:
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    # Wall-clock cap on one attempt, so a server that drips bytes cannot hold a worker.
    attempt_deadline: float = 60.0
    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is not waited for: the URL fails as rate limited.
    max_retry_after: float = 120.0
    max_bytes: int = 50 << 20
    max_redirects: int = 5
    # None: read SCRAPER_ALLOW_PRIVATE_NETWORKS when the Downloader is made.
    allow_private: bool | None = None
    # None: read SCRAPER_MAX_IN_FLIGHT / SCRAPER_PER_HOST_LIMIT when the Downloader is made.
    max_in_flight: int | None = None
    per_host_limit: int | None = None


def is_public_address(ip: str) -> bool:
    """True when ip is a globally routable unicast address (not private, loopback,
    link-local, shared, reserved or multicast); IPv4-mapped IPv6 is judged as IPv4."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# Above this a bare number in a reset header is a Unix time, below it a delay in seconds.
_EPOCH_FLOOR = 1_000_000_000


def parse_rate_limit_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate-limit window resets, from x-rate-limit-reset (X: epoch seconds)
    or X-RateLimit-Reset (Mastodon: ISO 8601); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        return max(0.0, number - now) if number > _EPOCH_FLOOR else max(0.0, number)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def wait_hint(headers: Mapping[str, str] | http.client.HTTPMessage) -> float | None:
    """How long the server asked us to wait: Retry-After first, else a reset header."""
    hint = parse_retry_after(headers.get("Retry-After"))
    if hint is None:
        hint = parse_rate_limit_reset(headers.get("x-rate-limit-reset"))
    if hint is None:
        hint = parse_rate_limit_reset(headers.get("X-RateLimit-Reset"))
    if hint is None:  # the IETF draft's name, which Bluesky's PDS sends (epoch seconds)
        hint = parse_rate_limit_reset(headers.get("RateLimit-Reset"))
    return hint


@dataclass
class Response:
    """A 200 answer: its body and headers (lower-cased names)."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class Downloader:
    """Fetches URLs under a DownloadPolicy. Thread-safe: one instance serves every worker."""

    def __init__(self, policy: DownloadPolicy | None = None, *,
                 resolve: Resolver = _resolve,
                 sleep: Callable[[float], None] | None = None):
        self.policy = policy or DownloadPolicy()
        allow = self.policy.allow_private
        self.allow_private = (settings.get_bool("SCRAPER_ALLOW_PRIVATE_NETWORKS")
                              if allow is None else allow)
        self._resolve = resolve
        self._sleep = sleep
        self.max_in_flight = (self.policy.max_in_flight
                              or settings.get_int("SCRAPER_MAX_IN_FLIGHT"))
        self.per_host_limit = (self.policy.per_host_limit
                               or settings.get_int("SCRAPER_PER_HOST_LIMIT"))
        self._tls = ssl.create_default_context()
        self._random = random.Random()
        self._random_lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()

    def get(self, url: str, should_stop: Callable[[], bool] | None = None) -> bytes:
        """The body of a 200 answer for url, following redirects; raises FetchError."""
        return self.fetch(url, should_stop).body

    def fetch(self, url: str, should_stop: Callable[[], bool] | None = None, *,
              headers: Mapping[str, str] | None = None,
              accept: str = "image/*, */*;q=0.5") -> Response:
        """A 200 answer for url with its headers, following redirects, retrying what is
        transient; raises FetchError. `headers` are sent on the first hop only, so a
        credential never follows a redirect to another host."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._host_slot(url):
                    return self._attempt(url, headers or {}, accept)
            except FetchError as exc:
                if not exc.retryable or attempt >= self.policy.max_attempts:
                    raise
                if exc.retry_after is not None:
                    if exc.retry_after > self.policy.max_retry_after:
                        raise
                    delay = exc.retry_after
                else:
                    delay = self.backoff(attempt)
                if not self._wait(delay, should_stop):
                    raise FetchError("cancelled", f"stopped while waiting to retry {url}") \
                        from exc

    def _host_slot(self, url: str) -> threading.BoundedSemaphore:
        host = (urlsplit(url).hostname or "").lower()
        with self._hosts_lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = self._hosts[host] = threading.BoundedSemaphore(self.per_host_limit)
        return slot

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt`: exponential, capped, half of it jittered."""
        ceiling = min(self.policy.backoff_max, self.policy.backoff_base * 2 ** (attempt - 1))
        with self._random_lock:
            return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _wait(self, seconds: float, should_stop: Callable[[], bool] | None) -> bool:
        """Sleep; False when should_stop() turned true meanwhile."""
        if self._sleep is not None:
            self._sleep(seconds)
            return not (should_stop and should_stop())
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if should_stop and should_stop():
                return False
            time.sleep(min(left, 0.1))
        return not (should_stop and should_stop())

    def _attempt(self, url: str, headers: Mapping[str, str], accept: str) -> Response:
        deadline = time.monotonic() + self.policy.attempt_deadline
        first = url
        for _ in range(self.policy.max_redirects + 1):
            extra = headers if url == first else {}
            status, location, body, got = self._request(url, deadline, extra, accept)
            if status not in _REDIRECTS:
                return Response(url, body, got)
            url = urljoin(url, location)
        raise FetchError("too_many_redirects",
                         f"more than {self.policy.max_redirects} redirects, last to {url}")

    def _request(self, url: str, deadline: float, headers: Mapping[str, str],
                 accept: str) -> tuple[int, str, bytes, dict[str, str]]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("bad_url", f"{url!r} is not an http(s) URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError("bad_url", f"{url!r} has an invalid port") from None
        address = self._checked_address(parts.hostname, port)
        conn_class = (http.client.HTTPSConnection if parts.scheme == "https"
                      else http.client.HTTPConnection)
        conn = conn_class(parts.hostname, port, timeout=self.policy.read_timeout)
        try:
            conn.sock = self._connect(address, port, parts.hostname, parts.scheme == "https")
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": accept,
                                                 **headers})
            response = conn.getresponse()
            if response.status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise FetchError("bad_redirect", f"{response.status} without Location")
                return response.status, location, b"", {}
            if response.status != 200:
                raise _status_error(response, url)
            body = self._read_capped(response, url, deadline)
            return 200, "", body, {k.lower(): v for k, v in response.getheaders()}
        except TimeoutError:
            raise FetchError("timeout", f"{url} did not answer in time", retryable=True) \
                from None
        except ssl.SSLError as exc:
            raise FetchError("tls_error", f"{url}: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError("connection_error", f"{url}: {type(exc).__name__}: {exc}",
                             retryable=True) from None
        finally:
            conn.close()

    def _checked_address(self, host: str, port: int) -> str:
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError("dns_error", f"cannot resolve {host!r}: {exc}") from None
        if not addresses:
            raise FetchError("dns_error", f"{host!r} resolves to no address")
        if not self.allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise FetchError(
                        "blocked_address",
                        f"{host!r} resolves to non-public address {address}; set "
                        "SCRAPER_ALLOW_PRIVATE_NETWORKS=true to allow it")
        return addresses[0]

    def _connect(self, address: str, port: int, host: str, tls: bool) -> socket.socket:
        sock = socket.create_connection((address, port), timeout=self.policy.connect_timeout)
        sock.settimeout(self.policy.read_timeout)
        if tls:
            try:
                return self._tls.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        return sock

    def _read_capped(self, response: http.client.HTTPResponse, url: str,
                     deadline: float) -> bytes:
        cap = self.policy.max_bytes
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FetchError("too_large", f"{url} is {int(declared)} bytes; the cap is {cap}")
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise FetchError("too_large", f"{url} is over the {cap}-byte cap")
            if time.monotonic() > deadline:
                raise FetchError("timeout", f"{url} took longer than "
                                 f"{self.policy.attempt_deadline:.0f}s", retryable=True)
            chunks.append(chunk)
        return b"".join(chunks)


class HttpStatusError(FetchError):
    """A non-200 answer; keeps a little of the body, where APIs explain their errors, and
    the URL that answered (after redirects: a credential's owner checks who said it)."""

    def __init__(self, status: int, detail: str, body: bytes, url: str = "", **kwargs):
        self.status = status
        self.body = body
        self.url = url
        super().__init__(f"http_{status}", detail, **kwargs)


def _status_error(response: http.client.HTTPResponse, url: str) -> FetchError:
    status = response.status
    retryable = status in _RETRYABLE_STATUS or status >= 500
    retry_after = wait_hint(response.headers) if retryable else None
    try:
        body = response.read(_ERROR_BODY)
    except (OSError, http.client.HTTPException):
        body = b""
    return HttpStatusError(status, f"{_safe_url(url)} answered {status} {response.reason}",
                           body, url, retryable=retryable, retry_after=retry_after)


def _safe_url(url: str) -> str:
    """The URL without its query, which may hold a token on some APIs: for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url

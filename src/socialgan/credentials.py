"""Where a credential may go: only to the host(s) configured for it, only over https.

A Credential is one secret, read from one environment variable, bound to the base URL(s) it
was issued for. Every client that sends a token asks the Credential for the request's
headers; it gives the Authorization header only when the request URL has the same origin
(scheme, host, port) as a configured base URL, and the scheme is https. Plain http is
allowed to a loopback address only (127.0.0.0/8, ::1, localhost), and only where the caller
allows private networks (the tests' local servers, SCRAPER_ALLOW_PRIVATE_NETWORKS=true):
anywhere else, http would hand the token to every hop on the way.

    MASTODON_ACCESS_TOKEN    MASTODON_INSTANCE_URL (unset: the token is sent nowhere)
    INSTAGRAM_ACCESS_TOKEN   INSTAGRAM_GRAPH_URL   (https://graph.facebook.com/v24.0)
    X_BEARER_TOKEN           X_API_URL             (https://api.x.com)

A request to any other URL goes without the token, and an answer that arrives from another
origin (a redirect) is refused by the caller (`refusal(final_url)`), so data from a host
the credential does not trust is never taken for the API's. Hosts match exactly: no
subdomains, no user:password@ in the URL. The secret never appears in a repr, a message
or a log line; `redact()` removes it from text that might have echoed it.

Nothing here is specific to scraping or to GET: publishing credentials (Mastodon,
Instagram, Bluesky, X) are to be bound the same way, with from_env() or bound().
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from socialgan import settings
from socialgan.errors import FailedPrecondition

_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        port = "" if _DEFAULT_PORTS.get(self.scheme) == self.port else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}"


def origin_of(url: str) -> Origin | None:
    """The URL's (scheme, host, port), or None when it is no plain http(s) URL
    (other schemes, no host, a bad port, or user:password@ in it)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def is_loopback_host(host: str) -> bool:
    """A loopback IP literal or the name localhost: judged from the URL alone, so what a
    name resolves to cannot make http acceptable."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(value: str) -> str:
    """'host' or 'https://host/path' as a URL (a bare host means https)."""
    value = value.strip()
    return (value if "://" in value else f"https://{value}").rstrip("/")


@dataclass(frozen=True)
class Credential:
    """A secret and the origins it may be sent to. `env_var` names where the secret came
    from and `url_var` where its destination is configured (for messages)."""

    env_var: str
    secret: str = field(repr=False)
    origins: tuple[Origin, ...] = ()
    url_var: str = ""
    scheme: str = "Bearer"

    @classmethod
    def bound(cls, env_var: str, secret: str, urls: Iterable[str], *,
              url_var: str = "") -> Credential:
        """The credential for the given base URLs; FailedPrecondition naming url_var when
        one of them is no http(s) URL."""
        origins = []
        for url in urls:
            origin = origin_of(base_url(url))
            if origin is None and "@" in url:
                # user:password@ is a secret of its own: the message must not repeat it.
                raise FailedPrecondition(
                    f"{url_var or env_var}: holds user:password@; give the plain base URL "
                    f"(the credential is {env_var})")
            if origin is None:
                raise FailedPrecondition(
                    f"{url_var or env_var}: {url[:100]!r} is not an http(s) URL with a host")
            origins.append(origin)
        return cls(env_var, secret, tuple(dict.fromkeys(origins)), url_var)

    @classmethod
    def from_env(cls, env_var: str, url_var: str) -> Credential:
        """The credential in env_var, bound to the URL in url_var (falsy when env_var is
        unset). An unset url_var binds it to nothing: it is then sent nowhere."""
        secret = settings.get(env_var) or ""
        url = (settings.get(url_var) or "") if secret else ""
        return cls.bound(env_var, secret, [url] if url.strip() else [], url_var=url_var)

    def __bool__(self) -> bool:
        return bool(self.secret)

    def where(self) -> str:
        """Where the credential goes, for messages: its origins and the variable."""
        if not self.origins:
            return f"{self.env_var} is sent nowhere until {self.url_var or 'a base URL'} " \
                   "names its host"
        configured = f" ({self.url_var})" if self.url_var else ""
        return f"{self.env_var} is sent only to {', '.join(map(str, self.origins))}{configured}"

    def refusal(self, url: str, *, loopback_http: bool = False) -> str | None:
        """Why the credential may not go to url, or None when it may. loopback_http: the
        caller allows private networks (tests), so http to a loopback address is fine."""
        origin = origin_of(url)
        if origin is None:
            return f"{url[:100]!r} is not an http(s) URL; {self.where()}"
        if origin not in self.origins:
            return f"{origin} is not its host; {self.where()}"
        if origin.scheme != "https" and not (loopback_http and is_loopback_host(origin.host)):
            return (f"{origin} is not https; {self.env_var} is sent over https only "
                    "(http only to loopback when private networks are allowed)")
        return None

    def permits(self, url: str, *, loopback_http: bool = False) -> bool:
        return bool(self.secret) and self.refusal(url, loopback_http=loopback_http) is None

    def headers_for(self, url: str, *, loopback_http: bool = False) -> dict[str, str]:
        """The Authorization header for a request to url, or no header at all."""
        if not self.permits(url, loopback_http=loopback_http):
            return {}
        return {"Authorization": f"{self.scheme} {self.secret}"}

    def redact(self, text: str) -> str:
        """text with the secret cut out (an API that echoes it must not leak it on).
        Real tokens are long; a few characters (a test's "t") would shred every message."""
        return text.replace(self.secret, "[redacted]") if len(self.secret) >= 8 else text

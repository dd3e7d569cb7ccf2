"""A Bluesky account's session: made once with the app password, then reused and refreshed.

createSession is rate limited hard (30 per 5 minutes and about 100-300 a day per account),
so a publisher that signed in for every post would lock itself out within a day. The session
(an accessJwt good for about 2 hours, a refreshJwt for about 2 months) is kept

    in process memory, per (PDS, identifier), for every later publish of this process;
    in a 0600 file under PUBLISHER_STATE_DIR when that is set, so a restarted publisher
    keeps it. Never in object storage: every service reads the bucket (the gallery may even
    be public), and a session token is as good as the password until it expires.

An access token that expired (400 ExpiredToken) is renewed with refreshSession, which
rotates the refresh token too: the new pair is kept at once. A session the PDS no longer
accepts (401, or a refresh that fails) is made anew with createSession, at most once per
call. The password and the tokens go only to the PDS origin (Credential.bound), over https
(loopback http in the tests), and never into a log line, an error or a record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from socialgan.credentials import Credential
from socialgan.errors import FailedPrecondition, Unavailable
from socialgan.publishing.http import PlatformError, PublishHttp

log = logging.getLogger(__name__)

PLATFORM = "Bluesky"
PASSWORD_VAR, PDS_VAR, HANDLE_VAR = "BLUESKY_APP_PASSWORD", "BLUESKY_PDS_URL", "BLUESKY_HANDLE"
STATE_DIR_VAR = "PUBLISHER_STATE_DIR"
# What the PDS answers for a token it will not take: expired (refresh it), or unknown /
# revoked (sign in again).
EXPIRED = "ExpiredToken"
_REJECTED = frozenset({"InvalidToken", "AuthenticationRequired", "AuthMissing"})


@dataclass(frozen=True)
class Session:
    did: str
    handle: str
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)

    @classmethod
    def from_answer(cls, answer: Any) -> Session:
        """createSession's or refreshSession's answer; Unavailable when it is not one."""
        ok = isinstance(answer, dict) and all(
            isinstance(answer.get(k), str) and answer[k]
            for k in ("did", "accessJwt", "refreshJwt"))
        if not ok or not answer["did"].startswith("did:"):
            raise Unavailable(f"{PLATFORM}: the PDS answered a session without its tokens")
        return cls(answer["did"], str(answer.get("handle") or ""), answer["accessJwt"],
                   answer["refreshJwt"])

    def as_json(self) -> dict[str, str]:
        return {"did": self.did, "handle": self.handle, "accessJwt": self.access_jwt,
                "refreshJwt": self.refresh_jwt}


def xrpc_error(exc: PlatformError) -> str:
    """The XRPC error name ("ExpiredToken", "RecordNotFound"...) of a refused call."""
    body = exc.json()
    return str(body.get("error") or "") if isinstance(body, dict) else ""


@dataclass(frozen=True)
class _SentInBody(Credential):
    """The app password: bound to the PDS origin like a token (so createSession is refused
    anywhere else), but it travels in createSession's body, never as a header."""

    def headers_for(self, url: str, *, loopback_http: bool = False) -> dict[str, str]:
        return {}


def password_credential(secret: str, pds_url: str) -> Credential:
    return _SentInBody.bound(PASSWORD_VAR, secret, [pds_url] if pds_url.strip() else [],
                             url_var=PDS_VAR)


# Sessions of this process, shared by every BlueskyTarget (one is built per publish).
_memory: dict[str, Session] = {}
_memory_lock = threading.Lock()
# One sign-in at a time per process: two publishes that find no session make one, not two.
_sign_in_lock = threading.RLock()


class SessionStore:
    """Sessions in memory, and in private files under state_dir when one is given."""

    def __init__(self, state_dir: str = ""):
        self.state_dir = Path(state_dir) if state_dir.strip() else None

    def _path(self, key: str) -> Path | None:
        if self.state_dir is None:
            return None
        name = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.state_dir / f"bluesky-session-{name}.json"

    def get(self, key: str) -> Session | None:
        with _memory_lock:
            if key in _memory:
                return _memory[key]
        session = self._read(key)
        if session is not None:
            with _memory_lock:
                _memory.setdefault(key, session)
        return session

    def put(self, key: str, session: Session) -> None:
        with _memory_lock:
            _memory[key] = session
        self._write(key, session)

    def drop(self, key: str) -> None:
        with _memory_lock:
            _memory.pop(key, None)
        path = self._path(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def _read(self, key: str) -> Session | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                # Someone else could have read or written it: it is not ours to trust.
                log.warning("ignoring %s: readable or writable by others", path.name)
                return None
            payload = json.loads(path.read_text())
            if payload.get("key") != key:
                return None
            return Session.from_answer(payload)
        except (OSError, ValueError, AttributeError, Unavailable):
            return None  # unreadable or not a session: sign in again

    def _write(self, key: str, session: Session) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                os.fchmod(out.fileno(), 0o600)  # a leftover tmp file keeps its old mode
                json.dump({"key": key, **session.as_json()}, out)
            os.replace(tmp, path)
        except OSError as exc:
            raise FailedPrecondition(f"{STATE_DIR_VAR}: cannot keep the Bluesky session in "
                                     f"{self.state_dir} ({exc.strerror})") from None


class BlueskySession:
    """XRPC calls to one account's PDS with a reused session."""

    def __init__(self, pds_url: str, identifier: str, password: Credential,
                 store: SessionStore, *, http_session: requests.Session | None = None):
        self.pds_url = pds_url.rstrip("/")
        self.identifier = identifier
        self.password = password
        self.store = store
        self.key = f"{self.pds_url.lower()}|{identifier.strip().lower()}"
        self._http = http_session or requests.Session()

    def _api(self, credential: Credential) -> PublishHttp:
        return PublishHttp(PLATFORM, credential, self.pds_url, session=self._http)

    def _token(self, secret: str) -> Credential:
        return Credential.bound(PASSWORD_VAR, secret, [self.pds_url], url_var=PDS_VAR)

    def public(self) -> PublishHttp:
        """Calls that need no session (getRecord): bound to the PDS, with no token."""
        return self._api(self._token(""))

    def session(self) -> Session:
        """The kept session, or a new one (createSession) when none is kept."""
        session = self.store.get(self.key)
        if session is not None:
            return session
        with _sign_in_lock:
            session = self.store.get(self.key)
            return session if session is not None else self._create()

    def _create(self) -> Session:
        try:
            answer = self._api(self.password).json(
                "POST", "/xrpc/com.atproto.server.createSession",
                json={"identifier": self.identifier, "password": self.password.secret})
        except PlatformError as exc:
            if exc.status in (400, 401):
                raise PlatformError(exc.status, exc.body, (
                    f"{PLATFORM}: signing in as {self.identifier!r} was refused "
                    f"({xrpc_error(exc) or exc.status}); check {HANDLE_VAR} and "
                    f"{PASSWORD_VAR} (an app password of that account)")) from None
            raise
        session = Session.from_answer(answer)
        self.store.put(self.key, session)
        return session

    def _renew(self, stale: Session, expired: bool) -> Session:
        """A session that replaces stale: refreshed when it only expired, else made anew.
        Another thread may have renewed it already: then that one is used."""
        with _sign_in_lock:
            current = self.store.get(self.key)
            if current is not None and current != stale:
                return current
            if expired:
                try:
                    answer = self._api(self._token(stale.refresh_jwt)).json(
                        "POST", "/xrpc/com.atproto.server.refreshSession")
                    session = Session.from_answer(answer)
                    self.store.put(self.key, session)
                    return session
                except PlatformError:
                    pass  # the refresh token expired or was revoked too: sign in again
            self.store.drop(self.key)
            return self._create()

    def call(self, method: str, nsid: str, *, idempotent: bool = True,
             **kwargs: Any) -> requests.Response:
        """An XRPC call with the session's access token, renewed once when refused."""
        session = self.session()
        for renewed in (False, True):
            try:
                return self._api(self._token(session.access_jwt)).call(
                    method, f"/xrpc/{nsid}", idempotent=idempotent, **kwargs)
            except PlatformError as exc:
                code = xrpc_error(exc)
                stale = code == EXPIRED or code in _REJECTED or exc.status == 401
                if renewed or not stale:
                    raise
                session = self._renew(session, expired=code == EXPIRED)
        raise AssertionError("unreachable")

    def json(self, method: str, nsid: str, **kwargs: Any) -> Any:
        response = self.call(method, nsid, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise Unavailable(f"{PLATFORM}: {nsid} answered with no JSON") from None

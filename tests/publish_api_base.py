"""What the local publishing API servers share, and the fault sweep every target runs.

    class FakeMastodon(PublishApiServer):
        def route(self, req: ApiRequest) -> Answer: ...      # the platform's documented shape

    with FakeMastodon() as api:
        api.inject(3, "lost")     # the 4th request is processed, then its answer is lost

A PublishApiServer numbers every request it gets (api.requests, from 0) and answers it with
route(), unless a fault was injected at that number:

    "503"   answers 503 without processing it
    "429"   answers 429 with Retry-After: 0 without processing it
    "lost"  processes it (route() runs: a post may be made), then closes the connection
            without an answer: the client cannot know whether it arrived
    "slow"  processes it, then answers only after the client's read timeout (PUBLISH_TIMEOUT_S
            in the tests is short)

fault_sweep() publishes once cleanly to learn how many requests a publish makes, then, for
every request number in turn, publishes again to a fresh server with a fault at that number,
retried (Publish with the same idempotency key) until the post is PUBLISHED or 10 tries are
spent, and counts what the platform ended with against the clean run: duplicates and losses.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.http_support import QuietHandler

FAULTS = ("503", "429", "lost", "slow")
SLOW_S = 2.5  # longer than the PUBLISH_TIMEOUT_S the tests set (1 s)


@dataclass
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    index: int

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, Any]:
        """A urlencoded or multipart body: fields as str, files as bytes."""
        ctype = self.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}
        if not ctype.startswith("multipart/form-data"):
            return {}
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + self.body)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            fields[name] = payload if part.get_filename() else payload.decode()
        return fields

    def bearer(self) -> str:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else ""


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass


class PublishApiServer:
    """A platform on 127.0.0.1 with numbered requests and injected faults."""

    def __init__(self):
        self.lock = threading.RLock()
        self.requests = 0
        self.log: list[tuple[int, str, str]] = []  # (index, method, path)
        self.auth_seen: list[str] = []  # every Authorization header value received
        self._faults: dict[int, str] = {}
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def inject(self, index: int, fault: str) -> None:
        assert fault in FAULTS, fault
        self._faults[index] = fault

    def route(self, req: ApiRequest) -> Answer:
        raise NotImplementedError

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms a request), which multiplies over a fault sweep.
            disable_nagle_algorithm = True

            def _any(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    index = server.requests
                    server.requests += 1
                    server.log.append((index, self.command, parts.path))
                    if self.headers.get("Authorization"):
                        server.auth_seen.append(self.headers["Authorization"])
                    fault = server._faults.pop(index, None)
                req = ApiRequest(self.command, parts.path,
                                 {k: v[-1] for k, v in parse_qs(parts.query).items()},
                                 {k.lower(): v for k, v in self.headers.items()}, body, index)
                if fault == "503":
                    return self._answer(Answer(503, {"error": "injected 503"}))
                if fault == "429":
                    return self._answer(Answer(429, {"error": "injected 429"},
                                               {"Retry-After": "0"}))
                with server.lock:
                    answer = server.route(req)
                if fault == "lost":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if fault == "slow":
                    time.sleep(SLOW_S)
                return self._answer(answer)

            def _answer(self, answer: Answer):
                body = answer.body if isinstance(answer.body, bytes) else \
                    json.dumps(answer.body).encode()
                ctype = "application/octet-stream" if isinstance(answer.body, bytes) else \
                    "application/json"
                try:
                    self.send(answer.status, body, ctype, answer.headers)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815

        return Handler


@dataclass
class SweepFigures:
    target: str
    steps: int  # requests one clean publish makes
    runs: int  # publishes with a fault (steps x faults)
    tries: int  # Publish calls in all
    duplicates: int  # platform objects beyond the clean run's
    lost: int  # platform objects the clean run had and a faulted one lacks
    unfinished: int  # runs not PUBLISHED after 10 tries

    def line(self) -> str:
        return (f"fault sweep {self.target}: {self.steps} requests, {self.runs} faulted runs, "
                f"{self.tries} Publish calls, duplicates {self.duplicates}, lost {self.lost}, "
                f"unfinished {self.unfinished}")


def fault_sweep(target: str, make_server: Callable[[], PublishApiServer],
                publish_once: Callable[[PublishApiServer, int], Any],
                published: Callable[[PublishApiServer], dict[str, int]],
                faults: tuple[str, ...] = FAULTS, max_tries: int = 10) -> SweepFigures:
    """publish_once(server, run) calls Publish (same idempotency key within a run, a new one
    per run) and returns the post, or raises; published(server) counts what the platform
    holds now, e.g. {"statuses": 1, "media": 4}."""
    with make_server() as server:
        publish_once(server, 0)
        clean = published(server)
        steps = server.requests
    runs = tries = duplicates = lost = unfinished = 0
    for fault in faults:
        for index in range(steps):
            runs += 1
            with make_server() as server:
                server.inject(index, fault)
                for _ in range(max_tries):
                    tries += 1
                    try:
                        post = publish_once(server, runs)
                    except Exception:  # noqa: BLE001 - retried like a client would
                        continue
                    if getattr(post, "state", "") in ("published", 3):
                        break
                else:
                    unfinished += 1
                now = published(server)
            for kind, count in clean.items():
                duplicates += max(0, now.get(kind, 0) - count)
                lost += max(0, count - now.get(kind, 0))
    return SweepFigures(target, steps, runs, tries, duplicates, lost, unfinished)

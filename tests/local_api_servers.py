"""Local HTTP servers on loopback that speak the social APIs' documented shapes (see
../shared/ANCHORS.md), serve generated images, and fail on cue. For the scraper's tests and
benchmarks/scrape_throughput.py.

    FakeSocialApis: Instagram Graph (/v24.0/...), Mastodon (/api/v1/...), X (/2/...) and
    the media they point at (/media/<n>.png), with bearer-token checks, small pages to make
    paging happen, and scripted faults: server.fail(path_prefix, [Fault, ...]) answers the
    next hits of that path with each fault in turn (a status with headers/body, a hang, or
    malformed JSON), then normally again.

    ImageFarm: /img/<n>.png, distinct generated PNGs, each after `latency` seconds, with an
    optional share of injected 429/5xx/timeouts, and /stats: which images it served (200).
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from tests.http_support import QuietHandler

TOKEN = "test-bearer-token"
GRAPH_VERSION = "v24.0"


def synthetic_png(n: int, size: int = 32) -> bytes:
    """A distinct small PNG for every n (noise seeded by n)."""
    pixels = np.random.default_rng(n).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Fault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"error": "scripted fault"}'
    hang: float = 0.0  # sleep this long before answering
    malformed: bool = False  # 200 with a body that is not JSON


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass


class _Base:
    def __init__(self):
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
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

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"
            default_type = "application/json"

            def send_json(self, value, headers=None) -> None:
                self.send(200, json.dumps(value).encode(), headers=headers)

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.hits[parts.path] += 1
                server.answer(self, parts.path, query)

        return Handler

    def answer(self, handler, path: str, query: dict[str, str]) -> None:
        raise NotImplementedError


class FakeSocialApis(_Base):
    def __init__(self, *, instagram_posts: int = 0, mastodon_statuses: int = 0,
                 x_followers: int = 0, page_size: int = 5):
        super().__init__()
        self.page_size = page_size
        self.instagram_posts = instagram_posts
        self.mastodon_statuses = mastodon_statuses
        self.x_followers = x_followers
        self.hashtag_ids = {"sunset": "17841562426109234", "cats": "17843853986012965"}
        self.trends = [
            {"name": "caturday", "url": "https://m.example/tags/caturday",
             "history": [{"day": "1732233600", "uses": "120", "accounts": "80"},
                         {"day": "1732147200", "uses": "300", "accounts": "150"}]},
            {"name": "sunset", "url": "https://m.example/tags/sunset",
             "history": [{"day": "1732233600", "uses": "40", "accounts": "30"},
                         {"day": "1732147200", "uses": "20", "accounts": "12"}]},
        ]
        self._faults: dict[str, deque[Fault]] = {}
        self.authorizations: list[str] = []

    def fail(self, path_prefix: str, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.setdefault(path_prefix, deque()).extend(faults)

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for prefix, queue in self._faults.items():
                if path.startswith(prefix) and queue:
                    return queue.popleft()
        return None

    # --- what each API returns ------------------------------------------------------------
    def media_url(self, n: int) -> str:
        return f"{self.base}/media/{n}.png"

    def _page(self, total: int, start: int, limit: int) -> range:
        return range(start, min(total, start + min(limit, self.page_size)))

    def _instagram(self, h, path: str, query: dict[str, str]) -> None:
        rest = path.removeprefix(f"/{GRAPH_VERSION}/")
        if query.get("user_id") != "17841400000000001":
            return h.send(400, json.dumps({"error": {
                "message": "Invalid user id", "type": "OAuthException", "code": 100}}).encode())
        if rest == "ig_hashtag_search":
            tag = query.get("q", "")
            if tag not in self.hashtag_ids:
                return h.send_json({"data": []})
            return h.send_json({"data": [{"id": self.hashtag_ids[tag]}]})
        hashtag_id, _, edge = rest.partition("/")
        if hashtag_id not in self.hashtag_ids.values() or edge not in ("top_media",
                                                                      "recent_media"):
            return h.send(404, json.dumps({"error": {"message": "Unsupported get request",
                                                     "code": 100}}).encode())
        start = int(query.get("after") or 0)
        page = self._page(self.instagram_posts, start, int(query.get("limit", 25)))
        data = []
        for i in page:
            post = {"id": f"1790{i:08d}", "permalink": f"https://www.instagram.com/p/P{i}/",
                    "caption": f"post {i} #sunset #Sky", "timestamp": "2026-11-20T10:00:00+0000",
                    "like_count": i, "comments_count": 1}
            if i % 5 == 4:  # a carousel of two images and a video
                post.update(media_type="CAROUSEL_ALBUM", children={"data": [
                    {"id": f"c{i}a", "media_type": "IMAGE", "media_url": self.media_url(
                        10_000 + i)},
                    {"id": f"c{i}b", "media_type": "VIDEO", "media_url": f"{self.base}/v.mp4"},
                    {"id": f"c{i}c", "media_type": "IMAGE", "media_url": self.media_url(
                        20_000 + i)}]})
            elif i % 7 == 6:
                post.update(media_type="VIDEO", media_url=f"{self.base}/v.mp4")
            else:
                post.update(media_type="IMAGE", media_url=self.media_url(i))
            data.append(post)
        body = {"data": data}
        end = page.stop
        if data:
            body["paging"] = {"cursors": {"before": str(start), "after": str(end)}}
            if end < self.instagram_posts:
                body["paging"]["next"] = (f"{self.base}{path}?after={end}"
                                          "&access_token=never-echoed")
        h.send_json(body)

    def _mastodon(self, h, path: str, query: dict[str, str]) -> None:
        if path == "/api/v1/trends/tags":
            return h.send_json(self.trends[: int(query.get("limit", 10))])
        if not path.startswith("/api/v1/timelines/tag/"):
            return h.send(404, b'{"error": "Record not found"}')
        # Status ids count down: newest first, max_id pages towards older ones.
        top = self.mastodon_statuses
        max_id = int(query.get("max_id") or top + 1)
        ids = [i for i in range(min(max_id - 1, top), 0, -1)][
            : min(int(query.get("limit", 20)), self.page_size)]
        statuses = [{
            "id": str(i), "url": f"https://m.example/@artist{i % 3}/{i}",
            "created_at": "2026-11-21T08:00:00.000Z", "content": f"<p>pic {i} &amp; more "
            "<a href='x'>#sunset</a></p>", "favourites_count": i, "reblogs_count": 0,
            "sensitive": False, "account": {"acct": f"artist{i % 3}@m.example"},
            "tags": [{"name": "sunset"}],
            "media_attachments": [
                {"id": f"m{i}", "type": "image", "url": self.media_url(30_000 + i),
                 "description": f"alt {i}"},
                *([{"id": f"g{i}", "type": "gifv", "url": f"{self.base}/g.mp4"}]
                  if i % 4 == 0 else [])],
        } for i in ids]
        headers = {"X-RateLimit-Remaining": "299"}
        if ids:
            tag = path.rsplit("/", 1)[-1]
            headers["Link"] = (f'<{self.base}/api/v1/timelines/tag/{tag}?max_id={ids[-1]}>; '
                               f'rel="next", <{self.base}/api/v1/timelines/tag/{tag}'
                               f'?min_id={ids[0]}>; rel="prev"')
        h.send_json(statuses, headers)

    def _x(self, h, path: str, query: dict[str, str]) -> None:
        if path.startswith("/2/users/by/username/"):
            name = path.rsplit("/", 1)[-1]
            if name != "artist":
                return h.send_json({"errors": [{"detail": f"Could not find user: {name}",
                                                "title": "Not Found Error"}]})
            return h.send_json({"data": {"id": "2244994945", "username": "artist"}})
        if path != "/2/users/2244994945/followers":
            return h.send(404, b'{"title": "Not Found Error", "detail": "no such user"}')
        start = int(query.get("pagination_token") or 0)
        page = self._page(self.x_followers, start, int(query.get("max_results", 100)))
        users = []
        for i in page:
            user = {"id": str(5000 + i), "username": f"fan{i}", "name": f"Fan {i}"}
            if i % 4 != 3:  # some followers have no banner
                user["profile_banner_url"] = f"{self.base}/banners/{5000 + i}/1700000000"
            users.append(user)
        meta = {"result_count": len(users)}
        if page.stop < self.x_followers:
            meta["next_token"] = str(page.stop)
        h.send_json({"data": users, "meta": meta} if users else {"meta": meta})

    def answer(self, h, path: str, query: dict[str, str]) -> None:
        fault = self._fault_for(path)
        if fault is not None:
            if fault.hang:
                time.sleep(fault.hang)
            if fault.malformed:
                return h.send(200, b'{"data": [ truncated')
            return h.send(fault.status, fault.body, headers=fault.headers)
        if path.startswith("/media/"):
            return h.send(200, synthetic_png(int(path[7:].removesuffix(".png"))), "image/png")
        if path.startswith("/banners/"):
            user_id, size = path.split("/")[2], path.rsplit("/", 1)[-1]
            if size != "1500x500":
                return h.send(404, b"no such size", "text/plain")
            return h.send(200, synthetic_png(int(user_id), size=48), "image/png")
        auth = h.headers.get("Authorization", "")
        self.authorizations.append(auth)
        if path.startswith("/api/v1/"):  # Mastodon reads are public
            return self._mastodon(h, path, query)
        if auth != f"Bearer {TOKEN}":
            return h.send(401, json.dumps({"error": {
                "message": "Invalid OAuth access token.", "code": 190}}).encode())
        if path.startswith(f"/{GRAPH_VERSION}/"):
            return self._instagram(h, path, query)
        if path.startswith("/2/"):
            return self._x(h, path, query)
        h.send(404, b'{"error": "not found"}')


class ImageFarm(_Base):
    """`count` distinct images at /img/<n>.png, each answer after `latency` seconds; with
    `fault_rate`, that share of requests (chosen at random, seeded) fails: a third 429 with
    Retry-After, a third 503, a third hangs past the client's read timeout."""

    def __init__(self, count: int, latency: float = 0.05, fault_rate: float = 0.0,
                 hang: float = 1.5, seed: int = 0, size: int = 32):
        self.count = count
        self.latency = latency
        self.fault_rate = fault_rate
        self.hang = hang
        self.size = size
        self.served: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._random = random.Random(seed)
        super().__init__()

    def url(self, n: int) -> str:
        return f"{self.base}/img/{n}.png"

    def answer(self, h, path: str, query: dict[str, str]) -> None:
        if path == "/stats":
            with self._lock:
                body = {"served": sorted(self.served), "faults": dict(self.faults),
                        "requests": sum(self.hits.values()) - self.hits["/stats"]}
            return h.send_json(body)
        if not path.startswith("/img/"):
            return h.send(404, b"not found", "text/plain")
        n = int(path[5:].removesuffix(".png"))
        if not 0 <= n < self.count:
            return h.send(404, b"not found", "text/plain")
        with self._lock:
            roll = self._random.random()
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            time.sleep(self.latency)
        finally:  # counted while "working", before answering: a client's slot outlives it
            with self._lock:
                self.in_flight -= 1
        self._answer_image(h, n, roll)

    def _answer_image(self, h, n: int, roll: float) -> None:
        if roll < self.fault_rate:
            kind = ("429", "503", "timeout")[int(roll / self.fault_rate * 3)]
            with self._lock:
                self.faults[kind] += 1
            if kind == "429":
                return h.send(429, b"slow down", "text/plain", {"Retry-After": "1"})
            if kind == "503":
                return h.send(503, b"busy", "text/plain")
            time.sleep(self.hang)
            return h.send(503, b"too late", "text/plain")
        body = synthetic_png(n, self.size)
        with self._lock:
            self.served[n] += 1
        h.send(200, body, "image/png")

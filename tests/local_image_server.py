"""A local HTTP server on loopback that serves real images and scripted failures, for the
scraper's download tests.

    /img/<name>            200, the Twemoji PNG <name>
    /missing.png           404
    /flaky/<name>          500 the first time, then the image
    /limited/<name>        429 with Retry-After: 3 the first time, then the image
    /always503             503 every time
    /text.png              200 with an HTML page (not an image)
    /redirect/<name>       302 to /img/<name>
    /big                   200, 200 kB streamed without Content-Length
    /big-declared          200 with Content-Length: 200000 (body never needed)
    /slow/<name>           the image after `slow_seconds`
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.conftest import TWEMOJI_DIR
from tests.http_support import QuietHandler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hung up on purpose
        pass


class ImageServer:
    def __init__(self, image_dir: Path = TWEMOJI_DIR, slow_seconds: float = 2.0):
        self.image_dir = image_dir
        self.slow_seconds = slow_seconds
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _count(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            default_type = "image/png"

            def _image(self, name: str) -> None:
                path = server.image_dir / name
                if not path.is_file():
                    self.send(404, b"no such image", "text/plain")
                else:
                    self.send(200, path.read_bytes())

            def do_GET(self):  # noqa: N802 (the name http.server calls)
                hit = server._count(self.path)
                head, _, name = self.path.lstrip("/").partition("/")
                if head == "img":
                    self._image(name)
                elif head == "flaky":
                    self.send(500, b"oops", "text/plain") if hit == 1 else self._image(name)
                elif head == "limited":
                    if hit == 1:
                        self.send(429, b"slow down", "text/plain", {"Retry-After": "3"})
                    else:
                        self._image(name)
                elif head == "always503":
                    self.send(503, b"down", "text/plain")
                elif head == "text.png":
                    self.send(200, b"<html>not an image</html>", "text/html")
                elif head == "redirect":
                    self.send(302, b"", "text/plain", {"Location": f"/img/{name}"})
                elif head == "big":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for _ in range(200):
                        self.wfile.write(b"\0" * 1000)
                    self.close_connection = True
                elif head == "big-declared":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", "200000")
                    self.end_headers()
                    self.close_connection = True
                elif head == "slow":
                    time.sleep(server.slow_seconds)
                    self._image(name)
                else:
                    self.send(404, b"not found", "text/plain")

        return Handler

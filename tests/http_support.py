"""What the local test HTTP servers (images, social APIs) share."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output quiet and answers with one call."""

    default_type = "application/octet-stream"

    def log_message(self, *args):
        pass

    def send(self, status: int, body: bytes = b"", ctype: str | None = None,
             headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype or self.default_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

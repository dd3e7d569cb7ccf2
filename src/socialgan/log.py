"""JSON logs on stderr, one object per line, the same for every service."""

from __future__ import annotations

import json
import logging
import sys
import time

from socialgan import settings
from socialgan.errors import clip

_RESERVED = set(vars(logging.makeLogRecord({})))
# A log line repeats request fields; a 50 MB grid_key once made a 52 MB line. Every field is
# cut to these many characters, whoever built it (messages should quote input with
# errors.quote already; this is the net under them).
MAX_MESSAGE_CHARS = 2_000
MAX_FIELD_CHARS = 1_000
MAX_EXCEPTION_CHARS = 20_000


def _bounded(value, limit: int = MAX_FIELD_CHARS):
    """value for the JSON entry, with every string in it (nested too) cut to limit."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {clip(str(k), limit): _bounded(v, limit) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple | set):
        return [_bounded(v, limit) for v in list(value)[:100]]
    return clip(str(value), limit)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": clip(record.getMessage(), MAX_MESSAGE_CHARS),
        }
        # Extra fields passed as logger.info(..., extra={...}).
        entry.update({k: _bounded(v) for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = clip(self.formatException(record.exc_info),
                                      MAX_EXCEPTION_CHARS)
        return json.dumps(entry, default=str)


def configure(service: str) -> None:
    """Send every log record as JSON to stderr; LOG_LEVEL picks the level (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((settings.get("LOG_LEVEL") or "INFO").upper())

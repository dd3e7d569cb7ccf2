"""Errors the core raises for bad input; the gRPC layer maps each to a status code.

Core code raises these instead of returning error values, so a CLI command and a gRPC
method that call the same function report the same message.
"""

from __future__ import annotations

# The most characters of a caller's input a message or log line repeats: enough to
# recognise the value, never so much that an error outgrows gRPC's metadata limit (a
# 10,000-character id once came back as RESOURCE_EXHAUSTED) or a log line grows by megabytes.
QUOTE_LIMIT = 100


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """repr(value) for a message, cut to about `limit` characters with the full length said,
    e.g. 'aaaa…' (10000 characters)."""
    if not isinstance(value, str):
        return clip(repr(value), limit)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def clip(text: str, limit: int) -> str:
    """text cut to `limit` characters with a note of how much was left out: the safety net
    for messages and log fields built without quote()."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut]"


class SocialGanError(Exception):
    """Base of the errors that carry a message meant for the user."""


class InvalidArgument(SocialGanError):
    """A request field is malformed or out of range (gRPC INVALID_ARGUMENT)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


class PermissionDenied(SocialGanError):
    """The request names something the service may not touch, e.g. a path outside the
    import root (gRPC PERMISSION_DENIED)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


class AlreadyExists(SocialGanError):
    """The request would overwrite something that exists (gRPC ALREADY_EXISTS)."""


class ResourceExhausted(SocialGanError):
    """A bounded resource (streams, memory budget, quota) is full now (gRPC RESOURCE_EXHAUSTED)."""


class NotFound(SocialGanError):
    """A named thing (run, dataset, post, object) does not exist (gRPC NOT_FOUND)."""


class FailedPrecondition(SocialGanError):
    """The request is valid, but the system cannot do it now (gRPC FAILED_PRECONDITION)."""


class Unavailable(SocialGanError):
    """A dependency (storage, TorchServe, a social API) did not answer (gRPC UNAVAILABLE)."""

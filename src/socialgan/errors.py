"""Errors the core raises for bad input; the gRPC layer maps each to a status code.

Core code raises these instead of returning error values, so a CLI command and a gRPC
method that call the same function report the same message.
"""

from __future__ import annotations


class SocialGanError(Exception):
    """Base of the errors that carry a message meant for the user."""


class InvalidArgument(SocialGanError):
    """A request field is malformed or out of range (gRPC INVALID_ARGUMENT)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


class NotFound(SocialGanError):
    """A named thing (run, dataset, post, object) does not exist (gRPC NOT_FOUND)."""


class FailedPrecondition(SocialGanError):
    """The request is valid, but the system cannot do it now (gRPC FAILED_PRECONDITION)."""


class Unavailable(SocialGanError):
    """A dependency (storage, TorchServe, a social API) did not answer (gRPC UNAVAILABLE)."""

"""Where a post goes: one PublishTarget per destination (the local gallery, social networks)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from socialgan.errors import FailedPrecondition
from socialgan.publishing.post import Post
from socialgan.storage import ObjectStore


class PublishTarget(ABC):
    name: str = ""

    def check_ready(self) -> None:
        """Raise FailedPrecondition when this target cannot post now (no credentials...).
        Called before anything is stored, so a refused publish leaves nothing behind."""
        return None

    @abstractmethod
    def send(self, store: ObjectStore, post: Post, image: bytes) -> str:
        """Make post (its caption and image, already stored at post.image_key) visible;
        return the address where people see it."""


class NotConnectedTarget(PublishTarget):
    """A social network we cannot post to yet: refuses every real publish clearly."""

    def __init__(self, name: str, title: str):
        self.name = name
        self.title = title

    def check_ready(self) -> None:
        raise FailedPrecondition(
            f"target {self.name}: publishing to {self.title} needs account credentials; "
            "not implemented yet (use the gallery target, or dry_run to preview the post)")

    def send(self, store: ObjectStore, post: Post, image: bytes) -> str:
        self.check_ready()
        raise AssertionError("unreachable")

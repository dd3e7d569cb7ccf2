"""Where a post goes: one PublishTarget per destination (the local gallery, each network).

A target does three things, and the posting flow (posting.py) calls them in this order:

    render(grid, caption, options) -> Rendered   what would be sent: the caption fitted to
                                                  the platform, every image at its final size
                                                  and format with its alt text; every
                                                  platform limit is checked here, before
                                                  anything is sent (a dry run stops here)
    check_ready()                                 credentials present (FailedPrecondition
                                                  naming the variable), called before send
    send(ctx) -> url                              make it visible; resumable: ctx.post holds
                                                  what earlier attempts recorded, and
                                                  ctx.save() must be called after every step
                                                  the platform acknowledged

`refresh(ctx)` (GetPost with refresh) reads the post's state back from the platform, and
`read_replies(store, post)` what the audience answered under it (the votes for the next
hashtag), at most MAX_REPLIES_PER_POST replies a post.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from socialgan.audience.types import Reply
from socialgan.errors import InvalidArgument
from socialgan.publishing.caption import CaptionInputs
from socialgan.publishing.media import GridImages, Rendition
from socialgan.publishing.post import Post
from socialgan.storage import ObjectStore

# single: the grid as one image; tiles: the grid's images as one post (as many as the
# platform takes); carousel: Instagram's album of the grid and its tiles; profile-grid:
# nine single-image Instagram posts that form the 3x3 picture on the profile; banner: X's
# 1500x500 profile banner.
MODES = ("single", "tiles", "carousel", "profile-grid", "banner")
# A hard cap on the replies read under one post: a thread that went viral must not turn a
# vote count into thousands of paid or rate-limited reads.
MAX_REPLIES_PER_POST = 2000


@dataclass(frozen=True)
class PublishOptions:
    mode: str = "single"
    visibility: str = ""  # Mastodon's public/unlisted/private/direct; "" the target default


@dataclass
class Rendered:
    caption: str
    images: list[Rendition]
    checks: list[str] = field(default_factory=list)  # limits checked, for the record
    # The target's first progress entries, kept with a dry run too (X: the estimated cost)
    progress: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendContext:
    store: ObjectStore
    post: Post
    images: list[bytes]  # the rendered items' bytes, in item order
    save: Callable[[], None]  # persist ctx.post now (after each acknowledged step)


class PublishTarget(ABC):
    name: str = ""
    title: str = ""
    modes: tuple[str, ...] = ("single",)

    def check_options(self, options: PublishOptions) -> None:
        if options.mode not in self.modes:
            raise InvalidArgument("mode", f"{self.title or self.name} takes "
                                  f"{', '.join(self.modes)}; not {options.mode!r}")
        if options.visibility:
            raise InvalidArgument("visibility", f"{self.title or self.name} has no visibility "
                                  "setting; leave it empty")

    def check_ready(self) -> None:
        """Raise FailedPrecondition when this target cannot post now (no credentials...).
        Called before anything is sent, so a refused publish sends nothing."""
        return None

    @abstractmethod
    def render(self, grid: GridImages, caption: CaptionInputs,
               options: PublishOptions) -> Rendered:
        """The caption and images as they would be sent; InvalidArgument or
        FailedPrecondition naming the limit a grid or caption cannot be made to fit."""

    @abstractmethod
    def send(self, ctx: SendContext) -> str:
        """Make ctx.post visible; return the address where people see it. Sets
        ctx.post.platform_ids / urls. Resumes from what ctx.post records."""

    def refresh(self, ctx: SendContext) -> None:
        """Update ctx.post from the platform (GetPost refresh); nothing to do by default."""
        return None

    def read_replies(self, store: ObjectStore, post: Post) -> list[Reply]:
        """The replies and comments under post on the platform, in the order it gives
        them, at most MAX_REPLIES_PER_POST; our own account's marked is_own. Nothing by
        default: the gallery has no replies."""
        return []

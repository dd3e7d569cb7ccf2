"""The resumable state machine behind every Instagram post: each container's way from made to
published, recorded in the post after every step Instagram acknowledged.

    ""  --create-->  created  --poll FINISHED-->  finished  --media_publish-->  published
                       |  EXPIRED (24 h): made again       |  answer lost: "publishing",
                       |  ERROR: reset, FailedPrecondition |  then the container's status
                                                           |  says whether it went out

A single post and each of a profile grid's nine posts is one container, recorded in its post
item (item.platform_id = the container id, item.step, item.extra["media_id"]); a carousel
is one child container per item (created, finished) and the CAROUSEL container recorded in
post.progress. A crash anywhere resumes from the record: a finished container is published,
a published one is not published again. After an uncertain media_publish (no answer, a
timeout, a 5xx) the container is asked first: PUBLISHED means it went out, and its media is
looked up by caption and time among the account's recent media (recorded without an id,
and said so, when it cannot be found).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from socialgan.errors import FailedPrecondition, Unavailable
from socialgan.publishing import instagram_graph as graph
from socialgan.publishing.http import PlatformError
from socialgan.publishing.post import PostItem
from socialgan.publishing.targets import SendContext

# Steps recorded per container.
CREATED, FINISHED, PUBLISHING, PUBLISHED = "created", "finished", "publishing", "published"
_TRIES = 3  # containers made again (expired) or publishes retried within one send


class Slot:
    """Where one container's progress is kept: a post item, or a dict in post.progress."""

    def __init__(self, item: PostItem | None = None, record: dict[str, Any] | None = None):
        self.item = item
        self.record = record if record is not None else {}

    def _get(self, name: str) -> Any:
        if self.item is None:
            return self.record.get(name, "")
        if name == "container":
            return self.item.platform_id
        if name == "step":
            return self.item.step
        return self.item.extra.get(name, "")

    def _set(self, name: str, value: Any) -> None:
        if self.item is None:
            self.record[name] = value
        elif name == "container":
            self.item.platform_id = value
        elif name == "step":
            self.item.step = value
        else:
            self.item.extra[name] = value

    container = property(lambda s: s._get("container"), lambda s, v: s._set("container", v))
    step = property(lambda s: s._get("step"), lambda s, v: s._set("step", v))
    media_id = property(lambda s: s._get("media_id"), lambda s, v: s._set("media_id", v))
    created_unix = property(lambda s: s._get("created_unix") or 0.0,
                            lambda s, v: s._set("created_unix", v))

    @property
    def url(self) -> str:
        return self.item.url if self.item is not None else self.record.get("url", "")

    @url.setter
    def url(self, value: str) -> None:
        if self.item is not None:
            self.item.url = value
        else:
            self.record["url"] = value

    def mark(self, name: str, value: Any) -> None:
        """A fact of the target's own beside the steps (a note, deleted)."""
        self._set(name, value)

    def reset(self, note: str = "") -> None:
        """Forget the container (expired, or failed): the next step makes a new one."""
        self.container, self.step, self.created_unix = "", "", 0.0
        self._set("note", note)
        self._set("resets", (self._get("resets") or 0) + 1)


class ContainerSteps:
    """Drives containers of one post through the steps, saving after each."""

    def __init__(self, api: graph.GraphApi, ctx: SendContext):
        self.api = api
        self.ctx = ctx

    def save(self) -> None:
        self.ctx.save()

    def finished(self, slot: Slot, fields: Callable[[], dict[str, str]], what: str) -> None:
        """slot's container made (fields() when it must be) and FINISHED."""
        for _ in range(_TRIES):
            if slot.step in (FINISHED, PUBLISHING, PUBLISHED):
                return
            if not slot.container:
                made_at = time.time()
                slot.container = self.api.create_container(fields())
                slot.step, slot.created_unix = CREATED, made_at
                self.save()
            code, why = self.api.wait_settled(slot.container)
            if code == graph.FINISHED:
                slot.step = FINISHED
                self.save()
                return
            if code == graph.PUBLISHED:  # published by an attempt that left no record
                slot.step = PUBLISHING
                self.save()
                return
            if code == graph.EXPIRED:
                slot.reset(f"container expired at {time.strftime('%Y-%m-%d %H:%M UTC')}")
                self.save()
                continue
            if code == graph.ERROR:
                container = slot.container
                slot.reset(f"container {container} ERROR: {why}")
                self.save()
                raise FailedPrecondition(
                    f"Instagram could not take {what} (container {container}: ERROR"
                    f"{': ' + why if why else ''}); check that PUBLIC_MEDIA_BASE_URL serves "
                    "it publicly over https")
            raise Unavailable(f"Instagram: container {slot.container} answered status_code "
                              f"{code[:40]!r}")
        raise Unavailable(f"Instagram: {what}'s containers expired {_TRIES} times in a row")

    def published(self, slot: Slot, fields: Callable[[], dict[str, str]], what: str,
                  caption: str, known: Callable[[], set[str]]) -> None:
        """slot's container published exactly once, its media id and permalink recorded."""
        for _ in range(_TRIES):
            if slot.step == PUBLISHED:
                break
            self.finished(slot, fields, what)
            if slot.step == FINISHED:
                slot.step = PUBLISHING  # from here on, a publish may have gone out
                self.save()
                try:
                    slot.media_id = self.api.publish(slot.container)
                except (Unavailable, PlatformError) as exc:
                    uncertain: Exception | None = exc
                else:
                    slot.step = PUBLISHED
                    self.save()
                    break
            else:
                uncertain = None
            self._settle_uncertain(slot, caption, known, uncertain)
        if slot.step != PUBLISHED:
            raise Unavailable(f"Instagram: {what} was not published after {_TRIES} tries")
        if slot.media_id and not slot.url:
            slot.url = self.api.permalink(slot.media_id)
            self.save()

    def _settle_uncertain(self, slot: Slot, caption: str, known: Callable[[], set[str]],
                          failure: Exception | None) -> None:
        """After a media_publish with no clear answer: the container says whether it went
        out. PUBLISHED: record it; FINISHED: it did not (publish again, unless Instagram
        refused it for good); EXPIRED: make it again."""
        code, _ = self.api.status(slot.container)
        if code == graph.PUBLISHED:
            slot.media_id = self.api.find_media(caption, slot.created_unix, known())
            if not slot.media_id:
                slot.mark("note", f"published (container {slot.container} says PUBLISHED); "
                          "its media id was not found among the account's recent media")
            slot.step = PUBLISHED
        elif code == graph.FINISHED:
            slot.step = FINISHED
            if isinstance(failure, PlatformError) and failure.status < 500:
                self.save()
                raise failure
        elif code in (graph.EXPIRED, graph.ERROR):
            slot.reset(f"container {code} before it was published")
        else:
            raise Unavailable(f"Instagram: container {slot.container} answered status_code "
                              f"{code[:40]!r} after media_publish")
        self.save()

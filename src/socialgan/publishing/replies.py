"""What the reply readers of every target share: platform timestamps as unix time, and the
cap on replies read under one post (targets.MAX_REPLIES_PER_POST)."""

from __future__ import annotations

import logging
from datetime import datetime

from socialgan.audience.types import Reply

log = logging.getLogger(__name__)


def unix_time(stamp: object) -> float:
    """An ISO 8601 time as the platforms write it (2026-12-01T10:00:00.000Z, Graph's
    2026-12-01T10:00:00+0000) as unix seconds; 0.0 when there is none or it is unreadable
    (a reply without a time still counts; the voting window decides what 0 means)."""
    if not isinstance(stamp, str) or not stamp.strip():
        return 0.0
    text = stamp.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00, which fromisoformat reads
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    return when.timestamp() if when.tzinfo is not None else 0.0


class ReplyBudget:
    """Replies gathered under one post, up to a hard cap; `full` once it is reached."""

    def __init__(self, platform: str, post_id: str, limit: int):
        self.platform = platform
        self.post_id = post_id
        self.limit = max(0, limit)
        self.replies: list[Reply] = []
        self._warned = False

    @property
    def full(self) -> bool:
        if len(self.replies) >= self.limit and not self._warned:
            self._warned = True
            log.warning("%s: stopped reading replies under %s at the cap of %d",
                        self.platform, self.post_id, self.limit)
        return len(self.replies) >= self.limit

    def add(self, reply: Reply) -> bool:
        """Keep reply unless the cap is reached; False once it is (stop reading)."""
        if self.full:
            return False
        self.replies.append(reply)
        return True

"""When cycles start: every fixed interval (`--every 1d`) or on a cron expression
(`--cron "0 9 * * *"`, read by croniter, in UTC).

The schedule only asks for a cycle at each beat (CycleService.RunCycle, trigger
"schedule"); the publisher decides whether it runs: a beat that comes while a cycle is
still running is recorded there as a skipped run. A Kubernetes CronJob with
concurrencyPolicy Forbid is the same schedule in a cluster (k8s/base/cycle-cronjob.yaml).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from socialgan.errors import InvalidArgument, quote

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_INTERVAL = re.compile(r"(\d+)\s*([smhdw])")
MIN_INTERVAL_S = 60.0  # a cycle scrapes and trains: more often than a minute is a typo
MAX_CRON_CHARS = 100


def parse_interval(text: str, field: str = "--every") -> float:
    """'1d', '12h', '90m', '1h30m' -> seconds."""
    compact = text.strip().lower().replace(" ", "")
    parts = _INTERVAL.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise InvalidArgument(field, f"{quote(text[:40])} is not an interval such as 1d, 12h, "
                              "90m or 1h30m")
    seconds = float(sum(int(n) * _UNITS[u] for n, u in parts))
    if seconds < MIN_INTERVAL_S:
        raise InvalidArgument(field, f"{quote(text)} is shorter than a minute")
    return seconds


@dataclass(frozen=True)
class Schedule:
    """Either every `interval_s` seconds from the start, or on `cron` (UTC)."""

    interval_s: float = 0.0
    cron: str = ""

    @classmethod
    def parse(cls, every: str = "", cron: str = "") -> Schedule:
        if bool(every) == bool(cron):
            raise InvalidArgument("--every", "give exactly one of --every and --cron")
        if every:
            return cls(interval_s=parse_interval(every))
        from croniter import croniter

        if len(cron) > MAX_CRON_CHARS or not croniter.is_valid(cron):
            raise InvalidArgument("--cron", f"{quote(cron[:MAX_CRON_CHARS])} is not a cron "
                                  "expression such as '0 9 * * *' (minute hour day month "
                                  "weekday)")
        return cls(cron=cron)

    def next_after(self, t: float) -> float:
        """The first beat strictly after time t (unix seconds)."""
        if self.interval_s:
            return t + self.interval_s
        from croniter import croniter

        start = datetime.fromtimestamp(t, tz=timezone.utc)
        return float(croniter(self.cron, start).get_next(float))

    def describe(self) -> str:
        return f"every {self.interval_s:.0f} s" if self.interval_s else f"cron '{self.cron}' (UTC)"


def run_schedule(schedule: Schedule, beat: Callable[[], None], *,
                 stop: threading.Event | None = None, now: Callable[[], float] = time.time,
                 beats: int | None = None, at_once: bool = False) -> int:
    """Call beat() at every beat of the schedule until stop is set (or `beats` beats have
    come); at_once: the first beat is now. Returns the number of beats. A beat that raises
    is the caller's to report: the schedule goes on."""
    stop = stop or threading.Event()
    count = 0
    due = now() if at_once else schedule.next_after(now())
    while not stop.is_set() and (beats is None or count < beats):
        if stop.wait(max(0.0, due - now())):
            break
        count += 1
        beat()
        # The next beat after this one, never one already past (a long beat, a laptop asleep).
        due = schedule.next_after(max(due, now()) if schedule.cron else due)
        while due <= now():
            due = schedule.next_after(due)
    return count

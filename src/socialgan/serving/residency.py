"""Which models stay loaded in a serving backend.

Every loaded model holds a worker process (~680 MB for TorchServe), so the generator keeps
at most max_loaded of them and unloads one unused for idle_seconds. Least recently used
goes first; a model with a request in flight is never chosen.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ModelResidency:
    def __init__(self, max_loaded: int, idle_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        if max_loaded < 1:
            raise ValueError(f"max_loaded must be at least 1, not {max_loaded}")
        self.max_loaded = max_loaded
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._last_used: OrderedDict[str, float] = OrderedDict()  # oldest first
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def using(self, model_id: str) -> Iterator[None]:
        """Mark model_id in use (and most recently used) for the block."""
        with self._lock:
            self._in_flight[model_id] = self._in_flight.get(model_id, 0) + 1
            self._touch(model_id)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[model_id] -= 1
                if not self._in_flight[model_id]:
                    del self._in_flight[model_id]
                self._touch(model_id)

    def _touch(self, model_id: str) -> None:
        self._last_used[model_id] = self._clock()
        self._last_used.move_to_end(model_id)

    def take_evictions(self) -> list[str]:
        """The models to unload now (and forgets them): idle ones, then the least recently
        used beyond max_loaded. Models in use are kept even when that exceeds the bound."""
        now = self._clock()
        with self._lock:
            idle = [m for m in self._last_used if m not in self._in_flight]
            chosen = [m for m in idle
                      if self.idle_seconds > 0 and now - self._last_used[m] >= self.idle_seconds]
            excess = len(self._last_used) - len(chosen) - self.max_loaded
            for model_id in idle:
                if excess <= 0:
                    break
                if model_id not in chosen:
                    chosen.append(model_id)
                    excess -= 1
            for model_id in chosen:
                del self._last_used[model_id]
            return chosen

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._last_used.pop(model_id, None)

    def loaded(self) -> list[str]:
        """Tracked models, least recently used first."""
        with self._lock:
            return list(self._last_used)

"""Where a StartTraining run trains: in the trainer's own process, or in a Kubernetes Job.

TRAINER_LAUNCHER picks one. `inprocess` (the default; the local stack, compose) trains on
the service's thread pool. `kubernetes` (the k8s base) makes the trainer service a
dispatcher: each run becomes one Job, on a GPU node when the overlay asks for one
(socialgan.training.kube_jobs), and the service follows it. Either way a launcher runs as a
job's work function (socialgan.jobs): it reports through job.update(), stops on Cancelled
and returns the final message.

A run in another process reports through storage: its `train` entry point writes
runs/train/<run_id>/progress.json (ProgressWriter) at most every PROGRESS_EVERY_S, and the
launcher that follows it reads it back (read_progress) into the same TrainingJob fields an
in-process run fills.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from socialgan import settings
from socialgan.errors import NotFound
from socialgan.jobs import Job
from socialgan.settings import ConfigError
from socialgan.storage import ObjectStore, keys
from socialgan.training.config import RunSpec

LAUNCHERS = ("inprocess", "kubernetes")
log = logging.getLogger("socialgan.training.launcher")
PROGRESS_EVERY_S = 5.0


class TrainingLauncher(Protocol):
    # How many runs the trainer service follows at once; more wait in its queue (QUEUED).
    concurrent_runs: int

    def run(self, spec: RunSpec, job: Job) -> str:
        """Train spec (already checked by prepare_run) to its end; the final message."""
        ...


def finished_message(progress: dict[str, Any]) -> str:
    """A finished run's summary, the same wherever it trained."""
    if "summary" in progress:  # a model kind that words its own (socialgan.text)
        return str(progress["summary"])
    return (f"trained {progress.get('step', 0)} steps; swd "
            f"{progress.get('metrics', {}).get('swd', 0):.1f}; exported "
            f"{progress.get('export_prefix', '')}")


class InProcessLauncher:
    """Trains on the calling thread: one run at a time, since two runs on the same cores (or
    GPU) only slow each other down."""

    concurrent_runs = 1

    def __init__(self, store: ObjectStore):
        self.store = store

    def run(self, spec: RunSpec, job: Job) -> str:
        from socialgan.training.loop import train  # torch: only where training happens

        return finished_message(train(self.store, spec, report=job.update))


def launcher_from_settings(store: ObjectStore) -> TrainingLauncher:
    name = (settings.get("TRAINER_LAUNCHER") or "inprocess").strip().lower()
    if name == "inprocess":
        return InProcessLauncher(store)
    if name == "kubernetes":
        from socialgan.training.kube_jobs import KubernetesJobLauncher

        return KubernetesJobLauncher.from_settings(store)
    raise ConfigError(f"TRAINER_LAUNCHER={name[:40]!r}: use one of {', '.join(LAUNCHERS)}")


# -- progress of a run in another process --------------------------------------------------


class ProgressWriter:
    """The `report` of a run whose watcher is another process: keeps the latest report and
    stores it at most every `every_s` seconds, and always the last one (flush)."""

    def __init__(self, store: ObjectStore, run_id: str, every_s: float = PROGRESS_EVERY_S):
        self.store, self.key, self.every_s = store, keys.run_progress_key(run_id), every_s
        self.latest: dict[str, Any] = {"message": "", "fraction_done": 0.0, "progress": {}}
        self._written_at = -float("inf")
        self._dirty = False

    def __call__(self, message: str | None = None, fraction_done: float | None = None,
                 **progress: Any) -> None:
        if message is not None:
            self.latest["message"] = message
        if fraction_done is not None:
            self.latest["fraction_done"] = fraction_done
        self.latest["progress"].update(progress)
        self._dirty = True
        if time.monotonic() - self._written_at >= self.every_s or fraction_done == 1.0:
            self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        self._written_at = time.monotonic()
        try:
            self.store.put_json(self.key, {**self.latest, "updated_unix": time.time()})
        except Exception as exc:  # storage away for now: never stop a run for its progress
            log.warning("cannot store the progress of %s: %s", self.key, exc)
            return
        self._dirty = False


def read_progress(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    """{"message", "fraction_done", "progress", "updated_unix"} a ProgressWriter stored."""
    try:
        return store.get_json(keys.run_progress_key(run_id))
    except NotFound:
        return None

"""Start a run from the dashboard: StartScrape, then StartFilter, then StartTraining, and
(a target chosen) GenerateGrid and Publish once the training succeeded.

The scrape starts inside the request, so a bad hashtag or source is the form's error at
once; the rest follows in a thread that polls Get* and starts the next stage when the
previous one succeeded. The chain lives in the dashboard process: a dashboard restarted
mid-chain leaves the started jobs running (the services resume them) but starts no
further stage; the runs page still lists every job.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from socialgan.dashboard.services import ServiceError, Services
from socialgan.errors import InvalidArgument
from socialgan.publishing.registry import TARGET_NAMES
from socialgan.validation import normalize_hashtag

POLL_S = 0.5
MAX_STEPS = 1_000_000
MAX_LAUNCHES_KEPT = 200
MODELS = ("dcgan", "dcgan-diffaug", "lapgan")  # what StartTraining knows (models.ARCHITECTURES)
FINISHED = ("succeeded", "failed", "cancelled")
UPLOAD_LABEL = "dashboard upload"
TARGETS = ("", *TARGET_NAMES)  # "": do not publish


@dataclass
class LaunchRequest:
    hashtag: str
    source: str
    model: str = "dcgan"
    steps: int = 300
    limit: int | None = None
    options: dict[str, str] = field(default_factory=dict)
    target: str = ""  # where the trained model's grid is published ("" nowhere)
    dry_run: bool = False  # render the post, send nothing

    def checked(self, uploading: bool = False) -> LaunchRequest:
        """The request with its hashtag normalised; InvalidArgument names a bad field.
        uploading: the pictures come with the request, so no source spec is needed."""
        source = self.source.strip() or ("browser upload" if uploading else "")
        if not source or len(source) > 2_000:
            raise InvalidArgument("source", "give a source spec such as folder:PATH, "
                                  "zip:PATH, urls:FILE or mastodon:INSTANCE")
        if self.model not in MODELS:
            raise InvalidArgument("model", f"one of {', '.join(MODELS)}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InvalidArgument("steps", f"between 1 and {MAX_STEPS}")
        if self.limit is not None and not 1 <= self.limit <= 100_000:
            raise InvalidArgument("limit", "between 1 and 100000, or empty for no limit")
        if self.target not in TARGETS:
            raise InvalidArgument("target", f"one of {', '.join(t for t in TARGETS if t)}, or "
                                  "empty not to publish")
        return LaunchRequest(normalize_hashtag(self.hashtag), source, self.model, self.steps,
                             self.limit, dict(self.options), self.target, bool(self.dry_run))


def parse_options(text: str) -> dict[str, str]:
    """'ngf=8 batch_size=16' -> {"ngf": "8", "batch_size": "16"} (the trainer checks them)."""
    options = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InvalidArgument("options", f"{item[:40]!r} is not NAME=VALUE")
        options[name] = value
    if len(options) > 50:
        raise InvalidArgument("options", "at most 50 NAME=VALUE pairs")
    return options


@dataclass
class Launch:
    launch_id: str
    request: LaunchRequest
    # scrape -> filter -> started (training), then with a target: published; or failed
    stage: str = "scrape"
    scrape_id: str = ""
    dataset_id: str = ""
    run_id: str = ""
    post_id: str = ""
    post_url: str = ""
    error: str = ""
    created_unix: float = field(default_factory=time.time)

    def view(self) -> dict[str, Any]:
        return asdict(self)


class Launcher:
    def __init__(self, services: Services, poll_s: float = POLL_S):
        self.services = services
        self.poll_s = poll_s
        self._launches: dict[str, Launch] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def launches(self) -> list[dict[str, Any]]:
        with self._lock:
            return [launch.view() for launch in reversed(self._launches.values())]

    def get(self, launch_id: str) -> dict[str, Any] | None:
        with self._lock:
            launch = self._launches.get(launch_id)
            return launch.view() if launch else None

    def start(self, request: LaunchRequest,
              upload: list[tuple[str, BinaryIO]] | None = None) -> dict[str, Any]:
        """Start the scrape now (or send the uploaded pictures: UploadImages) and follow
        the run in a thread; InvalidArgument or ServiceError when the scrape is refused."""
        request = request.checked(uploading=bool(upload))
        if upload:
            scrape = self.services.upload_images(request.hashtag, request.limit,
                                                 UPLOAD_LABEL, upload)
        else:
            scrape = self.services.start_scrape(request.hashtag, request.source,
                                                request.limit)
        launch = Launch(secrets.token_hex(6), request, scrape_id=scrape["id"])
        with self._lock:
            self._launches[launch.launch_id] = launch
            while len(self._launches) > MAX_LAUNCHES_KEPT:
                self._launches.pop(next(iter(self._launches)))
        threading.Thread(target=self._follow, args=(launch,), daemon=True,
                         name=f"launch-{launch.launch_id}").start()
        return launch.view()

    def close(self) -> None:
        self._stop.set()

    def _wait(self, read) -> dict[str, Any]:
        while not self._stop.is_set():
            job = read()
            if job["status"]["state"] in FINISHED:
                return job
            self._stop.wait(self.poll_s)
        raise InterruptedError("the dashboard is stopping")

    def _set(self, launch: Launch, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(launch, name, value)

    def _follow(self, launch: Launch) -> None:
        request = launch.request
        try:
            scrape = self._wait(lambda: self.services.scrape(launch.scrape_id))
            if scrape["status"]["state"] != "succeeded":
                raise RuntimeError(f"scrape {scrape['status']['state']}: "
                                   f"{scrape['status']['message']}")
            filtering = self.services.start_filter(request.hashtag)
            self._set(launch, stage="filter", dataset_id=filtering["id"])
            filtering = self._wait(lambda: self.services.filter(launch.dataset_id))
            if filtering["status"]["state"] != "succeeded":
                raise RuntimeError(f"filter {filtering['status']['state']}: "
                                   f"{filtering['status']['message']}")
            training = self.services.start_training(launch.dataset_id, request.model,
                                                    request.steps, request.options)
            self._set(launch, stage="started", run_id=training["id"])
            if request.target:
                self._publish(launch)
        except InterruptedError:
            return
        except (ServiceError, RuntimeError) as exc:
            self._set(launch, stage="failed", error=str(exc)[:500])

    def _publish(self, launch: Launch) -> None:
        """Once the training succeeded: its grid (GenerateGrid, stored) posted to the target."""
        training = self._wait(lambda: self.services.training(launch.run_id))
        if training["status"]["state"] != "succeeded":
            raise RuntimeError(f"training {training['status']['state']}: "
                               f"{training['status']['message']}")
        self._set(launch, stage="publishing")
        post = self.services.publish_grid(launch.run_id, launch.request.target,
                                          launch.request.dry_run)
        self._set(launch, stage="published" if not post["error"] else "failed",
                  post_id=post["post_id"], post_url=post["url"], error=post["error"])


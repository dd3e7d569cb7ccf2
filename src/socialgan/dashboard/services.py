"""The dashboard's calls of the gRPC services, and the plain dicts it shows of their answers.

Every change the dashboard makes goes through here (StartScrape, StartFilter,
StartTraining, GenerateGrid); the pages and /api read the same dicts, so the JSON API
serves exactly what the pages show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import grpc

from socialgan.pipeline import publish_request
from socialgan.rpc.client import open_channel
from socialgan.rpc.convert import REVIEW_DECISION_ENUM, state_name
from socialgan.v1 import (
    common_pb2,
    cycle_pb2,
    cycle_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    publisher_pb2_grpc,
    scraper_pb2,
    scraper_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

QUICK_S = 10.0  # a List/Get/Start call
GENERATE_S = 120.0  # a grid on a cold model (TorchServe loads it first)
UPLOAD_S = 600.0  # pictures a person sends from the browser, streamed on to the scraper
UPLOAD_CHUNK_BYTES = 1 << 20
PAGE_SIZE = 100
MAX_PAGES = 20  # at most this many pages of a List (2,000 jobs) for one page view

# gRPC status -> the HTTP status the dashboard answers with.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAUTHENTICATED: 502,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ServiceUnconfigured(Exception):
    """A page needs a service the dashboard was not given the address of (HTTP 503)."""

    status = 503


class ServiceError(Exception):
    """A service refused or failed a call; status is the HTTP status to answer with."""

    def __init__(self, service: str, exc: grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        self.status = HTTP_STATUS.get(code, 502)
        self.code = code.name if code else "UNKNOWN"
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        super().__init__(f"{service}: {self.code}: {details[:500]}")


@dataclass
class Addresses:
    scraper: str
    trainer: str
    generator: str
    publisher: str = ""  # its CycleService: the cycles page (none: the page says so)


def status_view(status: common_pb2.JobStatus) -> dict[str, Any]:
    return {"job_id": status.job_id, "state": state_name(status.state),
            "message": status.message, "created_unix": status.created_unix,
            "updated_unix": status.updated_unix, "fraction_done": status.fraction_done,
            "seconds": max(0.0, status.updated_unix - status.created_unix)}


def scrape_view(job: scraper_pb2.ScrapeJob) -> dict[str, Any]:
    c = job.counts
    return {"kind": "scrape", "id": job.status.job_id, "hashtag": job.hashtag,
            "source": job.source, "status": status_view(job.status),
            "counts": {"found": c.found, "downloaded": c.downloaded, "new": c.new,
                       "duplicates": c.duplicates, "failed": c.failed, "skipped": c.skipped,
                       "failed_by_reason": dict(c.failed_by_reason), "bytes": c.bytes,
                       "images_per_second": c.images_per_second},
            "manifest_key": job.manifest_key}


def dataset_view(d: trainer_pb2.Dataset) -> dict[str, Any]:
    return {"dataset_id": d.dataset_id, "hashtag": d.hashtag, "width": d.width,
            "height": d.height, "kept": d.kept, "dropped": d.dropped,
            "dropped_by_reason": dict(d.dropped_by_reason), "manifest_key": d.manifest_key,
            "report_key": d.report_key, "contact_sheet_keys": dict(d.contact_sheet_keys),
            "thresholds": dict(d.thresholds), "stages": list(d.stages)}


def filter_view(job: trainer_pb2.FilterJob) -> dict[str, Any]:
    p = job.progress
    return {"kind": "filter", "id": job.dataset_id, "hashtag": job.hashtag,
            "status": status_view(job.status),
            "progress": {"processed": p.processed, "total": p.total, "kept": p.kept,
                         "dropped_by_reason": dict(p.dropped_by_reason)},
            "dataset": dataset_view(p.dataset) if p.HasField("dataset") else None}


def training_view(job: trainer_pb2.TrainingJob) -> dict[str, Any]:
    return {"kind": "training", "id": job.run_id, "dataset_id": job.dataset_id,
            "model": job.model, "status": status_view(job.status), "step": job.step,
            "total_steps": job.total_steps, "losses": dict(job.losses),
            "images_per_second": job.images_per_second, "metrics": dict(job.metrics),
            "latest_sample_key": job.latest_sample_key, "export_prefix": job.export_prefix,
            "samples_written": job.samples_written}


def model_view(m: generator_pb2.ModelInfo) -> dict[str, Any]:
    return {"model_id": m.model_id, "model_version": m.model_version, "method": m.method,
            "hashtag": m.hashtag, "width": m.width, "height": m.height,
            "metrics": dict(m.metrics), "loaded": m.loaded}


def grid_view(reply: generator_pb2.GenerateGridResponse) -> dict[str, Any]:
    m = reply.metadata
    return {"model_id": m.model_id, "seed": m.seed, "count": m.count, "columns": m.columns,
            "width": m.width, "height": m.height, "latency_ms": m.latency_ms,
            "inference_ms": m.inference_ms, "content_type": reply.content_type,
            "grid_key": reply.grid_key}


def cycle_view(run: cycle_pb2.Run) -> dict[str, Any]:
    """A cycle run (CycleService's Run) as the cycles pages and /api/cycles show it."""
    stages = [{"name": s.name, "state": s.state, "started_unix": s.started_unix,
               "ended_unix": s.ended_unix, "ids": dict(s.ids), "message": s.message,
               "hashtag": s.hashtag,
               "seconds": (s.ended_unix - s.started_unix) if s.ended_unix else None}
              for s in run.stages]
    return {"run_id": run.run_id, "state": cycle_pb2.RunState.Name(run.state)
            .removeprefix("RUN_STATE_").lower(), "message": run.message,
            "created_unix": run.created_unix, "updated_unix": run.updated_unix,
            "fraction_done": run.fraction_done, "trigger": run.trigger,
            "hashtag": run.hashtag, "tried_hashtags": list(run.tried_hashtags),
            "choice_id": run.choice_id, "evidence_key": run.evidence_key,
            "post_id": run.post_id, "post_url": run.post_url,
            "skipped_because": run.skipped_because, "stages": stages}


class Services:
    """Stubs of the scraper, trainer, generator and (for cycles) the publisher; each call
    maps an RpcError to ServiceError."""

    def __init__(self, addresses: Addresses, token: str):
        self.addresses = addresses
        self.scraper = scraper_pb2_grpc.ScraperServiceStub(open_channel(addresses.scraper, token))
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(open_channel(addresses.trainer, token))
        self.generator = generator_pb2_grpc.GeneratorServiceStub(
            open_channel(addresses.generator, token))
        publisher = open_channel(addresses.publisher, token) if addresses.publisher else None
        self.cycles = cycle_pb2_grpc.CycleServiceStub(publisher) if publisher else None
        self.publisher = publisher_pb2_grpc.PublisherServiceStub(publisher) if publisher \
            else None

    def __repr__(self) -> str:
        return f"Services({self.addresses})"

    @staticmethod
    def _call(service: str, method: Callable, request: Any, timeout: float = QUICK_S) -> Any:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise ServiceError(service, exc) from None

    def _pages(self, service: str, method: Callable, request_type: type,
               items: str) -> Iterator[Any]:
        token = ""
        for _ in range(MAX_PAGES):
            reply = self._call(service, method, request_type(page_size=PAGE_SIZE,
                                                             page_token=token))
            yield from getattr(reply, items)
            token = reply.next_page_token
            if not token:
                return

    # -- reads ---------------------------------------------------------------------------

    def scrapes(self) -> list[dict[str, Any]]:
        return [scrape_view(j) for j in self._pages(
            "scraper", self.scraper.ListScrapes, scraper_pb2.ListScrapesRequest, "jobs")]

    def filters(self) -> list[dict[str, Any]]:
        return [filter_view(j) for j in self._pages(
            "trainer", self.trainer.ListDatasets, trainer_pb2.ListDatasetsRequest, "datasets")]

    def trainings(self) -> list[dict[str, Any]]:
        return [training_view(j) for j in self._pages(
            "trainer", self.trainer.ListTrainings, trainer_pb2.ListTrainingsRequest, "runs")]

    def scrape(self, job_id: str) -> dict[str, Any]:
        return scrape_view(self._call("scraper", self.scraper.GetScrape,
                                      scraper_pb2.GetScrapeRequest(job_id=job_id)))

    def training(self, run_id: str) -> dict[str, Any]:
        return training_view(self._call("trainer", self.trainer.GetTraining,
                                        trainer_pb2.GetTrainingRequest(run_id=run_id)))

    def filter(self, dataset_id: str) -> dict[str, Any]:
        return filter_view(self._call("trainer", self.trainer.GetFilter,
                                      trainer_pb2.GetFilterRequest(dataset_id=dataset_id)))

    def models(self) -> list[dict[str, Any]]:
        reply = self._call("generator", self.generator.ListModels,
                           generator_pb2.ListModelsRequest())
        return [model_view(m) for m in reply.models]

    def _cycle_stub(self) -> cycle_pb2_grpc.CycleServiceStub:
        if self.cycles is None:
            raise ServiceUnconfigured("publisher: PUBLISHER_SERVICE_ADDR is not set, so the "
                                      "dashboard cannot reach the cycles")
        return self.cycles

    def cycle_runs(self) -> list[dict[str, Any]]:
        """The cycles, newest first (ListRuns)."""
        stub = self._cycle_stub()
        return [cycle_view(r) for r in self._pages(
            "publisher", stub.ListRuns, cycle_pb2.ListRunsRequest, "runs")]

    def cycle_run(self, run_id: str) -> dict[str, Any]:
        return cycle_view(self._call("publisher", self._cycle_stub().GetRun,
                                     cycle_pb2.GetRunRequest(run_id=run_id)))

    # -- changes -------------------------------------------------------------------------

    def publish_grid(self, model_id: str, target: str, dry_run: bool) -> dict[str, Any]:
        """The model's grid, generated and stored (GenerateGrid), then posted (Publish) with
        the template caption; the same model, seed and target are the same post."""
        if self.publisher is None:
            raise ServiceUnconfigured("publisher: PUBLISHER_SERVICE_ADDR is not set, so the "
                                      "dashboard cannot publish")
        grid = self._call("generator", self.generator.GenerateGrid,
                          generator_pb2.GenerateGridRequest(model_id=model_id, store=True),
                          timeout=GENERATE_S)
        post = self._call("publisher", self.publisher.Publish,
                          publish_request(grid, target, dry_run))
        return {"post_id": post.post_id, "url": post.url, "error": post.error,
                "caption": post.caption}

    def start_cycle(self, options: cycle_pb2.CycleOptions) -> dict[str, Any]:
        return cycle_view(self._call("publisher", self._cycle_stub().RunCycle,
                                     cycle_pb2.RunCycleRequest(options=options,
                                                               trigger="dashboard")))

    def cancel_cycle(self, run_id: str) -> dict[str, Any]:
        return cycle_view(self._call("publisher", self._cycle_stub().CancelRun,
                                     cycle_pb2.GetRunRequest(run_id=run_id)))

    def start_scrape(self, hashtag: str, source: str, limit: int | None) -> dict[str, Any]:
        request = scraper_pb2.StartScrapeRequest(
            hashtag=hashtag, source=scraper_pb2.SourceSpec(spec=source))
        if limit:
            request.limit = limit
        return scrape_view(self._call("scraper", self.scraper.StartScrape, request))

    def upload_images(self, hashtag: str, limit: int | None, label: str,
                      files: Iterable[tuple[str, BinaryIO]]) -> dict[str, Any]:
        """UploadImages: pictures (or one .zip) a person picked in the browser; the scraper
        checks every name and byte as it does for a folder on its own disk."""
        def requests() -> Iterator[scraper_pb2.UploadImagesRequest]:
            start = scraper_pb2.UploadStart(hashtag=hashtag, label=label)
            if limit:
                start.limit = limit
            yield scraper_pb2.UploadImagesRequest(start=start)
            for name, stream in files:
                yield scraper_pb2.UploadImagesRequest(file=scraper_pb2.UploadFile(name=name))
                while block := stream.read(UPLOAD_CHUNK_BYTES):
                    yield scraper_pb2.UploadImagesRequest(chunk=block)

        return scrape_view(self._call("scraper", self.scraper.UploadImages, requests(),
                                      timeout=UPLOAD_S))

    def start_filter(self, hashtag: str, resolution: int | None = None,
                     aspect: int = common_pb2.ASPECT_UNSPECIFIED) -> dict[str, Any]:
        request = trainer_pb2.FilterDatasetRequest(hashtag=hashtag, aspect=aspect)
        if resolution:
            request.resolution = resolution
        return filter_view(self._call("trainer", self.trainer.StartFilter, request))

    def review_image(self, hashtag: str, image_id: str, decision: str) -> dict[str, str]:
        """The filter review: decision keep, drop or clear; every decision of the hashtag."""
        reply = self._call("trainer", self.trainer.ReviewImage, trainer_pb2.ReviewImageRequest(
            hashtag=hashtag, image_id=image_id, decision=REVIEW_DECISION_ENUM[decision]))
        return dict(reply.decisions)

    def filter_review(self, hashtag: str) -> dict[str, str]:
        return dict(self._call("trainer", self.trainer.GetFilterReview,
                               trainer_pb2.GetFilterReviewRequest(hashtag=hashtag)).decisions)

    def start_training(self, dataset_id: str, model: str, steps: int,
                       options: dict[str, str]) -> dict[str, Any]:
        return training_view(self._call("trainer", self.trainer.StartTraining,
                                        trainer_pb2.StartTrainingRequest(
                                            dataset_id=dataset_id, model=model,
                                            budget=trainer_pb2.TrainingBudget(steps=steps),
                                            options=options)))

    def generate_grid(self, model_id: str, seed: int, count: int) -> tuple[bytes, dict]:
        reply = self._call("generator", self.generator.GenerateGrid,
                           generator_pb2.GenerateGridRequest(model_id=model_id, seed=seed,
                                                             count=count, store=False),
                           timeout=GENERATE_S)
        return reply.grid, grid_view(reply)

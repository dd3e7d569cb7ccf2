"""One cycle as a job: choose -> scrape -> filter -> train -> generate -> (caption) -> publish.

The cycle runs in the publisher's process as a durable job (socialgan.jobs), so its
record is the run's history: every stage's ids, state and timings live in the job's
progress and are saved at every step. Choosing and publishing happen here, through the
same core functions as the ChooseHashtag and Publish RPCs; the other stages are the other
services' RPCs, through the client functions `socialgan run` uses (socialgan.pipeline).

Resuming after a restart of the service: a stage that succeeded is not run again; a scrape
or training that had started is followed again by its job id (those services resume their
own jobs); a filter, a grid and a post are asked for again, which is safe: the filter makes
the same dataset from the same images, the grid is made from the recorded seed, and the
post's idempotency key (model, seed, count, mode) never posts twice.

A winner whose filter keeps fewer than CYCLE_MIN_IMAGES images (or whose source holds
none) is replaced by the choice's runner-ups, at most CYCLE_MAX_FALLBACKS of them; every
hashtag tried is recorded with why it was left.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from socialgan import settings
from socialgan.audience.choose import caption_line
from socialgan.audience.listen import listen_and_choose
from socialgan.errors import FailedPrecondition, clip
from socialgan.jobs import Job
from socialgan.pipeline import (
    ASPECTS,
    Follow,
    PipelineOptions,
    filter_dataset,
    generate,
    grid_size,
    idempotency_key,
    scrape,
    train,
    written_caption,
)
from socialgan.publishing import CaptionInputs, PublishOptions
from socialgan.publishing import publish as publish_post
from socialgan.storage import ObjectStore
from socialgan.supervisor import Endpoints

STAGES = ("choose", "scrape", "filter", "train", "generate", "caption", "publish")
PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED = (
    "pending", "running", "succeeded", "failed", "skipped")
# How far a cycle is once each stage has ended (training takes most of the time).
_DONE_AT = {"choose": 0.02, "scrape": 0.15, "filter": 0.25, "train": 0.85, "generate": 0.9,
            "caption": 0.95, "publish": 1.0}
HASHTAG_PLACEHOLDER = "{hashtag}"


class TooFewImages(Exception):
    """The hashtag's images, after the filter, are too few to train on."""


@dataclasses.dataclass
class Stage:
    """What the job's progress records of one stage."""

    name: str
    state: str = PENDING
    started_unix: float = 0.0
    ended_unix: float = 0.0
    ids: dict[str, str] = dataclasses.field(default_factory=dict)
    message: str = ""
    hashtag: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stage:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def source_for(template: str, hashtag: str) -> str:
    """The scrape's source spec for hashtag: its '{hashtag}' placeholder filled in."""
    return template.replace(HASHTAG_PLACEHOLDER, hashtag)


class CycleRun:
    """The work of one cycle job; `run()` is the story, the rest is bookkeeping."""

    def __init__(self, job: Job, store: ObjectStore, endpoints: Endpoints,
                 opts: PipelineOptions):
        self.job, self.store, self.endpoints, self.opts = job, store, endpoints, opts
        self.min_images = settings.get_int("CYCLE_MIN_IMAGES")
        self.max_fallbacks = settings.get_int("CYCLE_MAX_FALLBACKS")
        # The run's record, from the job's progress (a resumed cycle's, after a restart);
        # changed here and handed to the job whole by record(), never in place.
        recorded = copy.deepcopy(job.progress)
        self.stages: dict[str, dict[str, Any]] = recorded.get("stages", {})
        self.tried: list[dict[str, str]] = recorded.get("tried", [])
        self.recorded = recorded

    # -- the story ---------------------------------------------------------------------------

    def run(self) -> str:
        choice = self.choose()
        hashtag, dataset = self.images_for(choice)
        opts = dataclasses.replace(self.opts, hashtag=hashtag)
        model_id = self.train(opts, dataset)
        grid = self.generate(opts, model_id)
        text = self.caption(opts, dataset, grid.metadata.seed)
        post = self.publish(opts, grid, text, self.choice_line(choice, hashtag))
        return f"#{hashtag}: posted {post.post_id} at {post.url}"

    def choose(self) -> dict[str, Any]:
        """The hashtag and its runner-ups, chosen once: a resumed cycle keeps its choice."""
        with self.stage("choose") as stage:
            if stage.state == SUCCEEDED:
                return self.recorded["choice"]
            choice, heard = listen_and_choose(self.store, self.opts.choose or "manual",
                                              self.opts.hashtag)
            recorded = {"choice_id": choice.choice_id, "winner": choice.winner,
                        "runner_ups": list(choice.runner_ups), "method": choice.method,
                        "reason": choice.reason, "evidence_key": choice.evidence_key,
                        "caption_line": caption_line(choice), "skipped": heard.skipped}
            stage.ids.update(choice_id=choice.choice_id, evidence_key=choice.evidence_key)
            stage.hashtag = choice.winner
            stage.message = choice.reason
            self.recorded["choice"] = recorded
            self.record(choice=recorded, hashtag=choice.winner)
            return recorded

    def images_for(self, choice: dict[str, Any]) -> tuple[str, str]:
        """(hashtag, dataset id): the winner's images, or the first runner-up's with enough."""
        candidates = [choice["winner"], *choice["runner_ups"][: self.max_fallbacks]]
        tried = self.tried
        for hashtag in candidates:
            if any(t["hashtag"] == hashtag and t.get("left_because") for t in tried):
                continue  # left before a restart: not scraped again
            if not any(t["hashtag"] == hashtag for t in tried):
                tried.append({"hashtag": hashtag})
            self.record(hashtag=hashtag)
            try:
                self.scrape(hashtag)
                return hashtag, self.filter(hashtag)
            except TooFewImages as exc:
                next(t for t in tried if t["hashtag"] == hashtag)["left_because"] = str(exc)
                self.record()
        raise FailedPrecondition(
            "no hashtag had enough images to train on: "
            + "; ".join(f"#{t['hashtag']}: {t['left_because']}" for t in tried))

    def scrape(self, hashtag: str) -> None:
        with self.stage("scrape", hashtag) as stage:
            if stage.state == SUCCEEDED:
                return
            opts = dataclasses.replace(self.opts, hashtag=hashtag,
                                       source=source_for(self.opts.source, hashtag))
            try:
                job = scrape(self.endpoints, opts, quiet=True,
                             follow=self.follow(stage, "job_id"), upload_from_here=False)
            except grpc.RpcError as exc:
                # A source that does not exist or holds nothing for this hashtag (its
                # folder, say) is a hashtag without images, not a broken cycle.
                if exc.code() in (grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.INVALID_ARGUMENT) \
                        and (exc.details() or "").startswith("source"):
                    raise TooFewImages(f"no images: {exc.details()}") from None
                raise
            stage.message = f"{job.counts.new} new, {job.counts.duplicates} duplicates, " \
                            f"{job.counts.failed} failed"

    def filter(self, hashtag: str) -> str:
        with self.stage("filter", hashtag) as stage:
            if stage.state == SUCCEEDED:
                return stage.ids["dataset_id"]
            opts = dataclasses.replace(self.opts, hashtag=hashtag)
            try:
                dataset = filter_dataset(self.endpoints, opts, quiet=True,
                                         follow=self.follow(stage))
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # no images at all
                    raise TooFewImages(exc.details() or "no images") from None
                raise
            stage.ids["dataset_id"] = dataset.dataset_id
            stage.message = f"kept {dataset.kept} of {dataset.kept + dataset.dropped}"
            if dataset.kept < self.min_images:
                raise TooFewImages(f"the filter kept {dataset.kept} images, fewer than "
                                   f"CYCLE_MIN_IMAGES={self.min_images}")
            return dataset.dataset_id

    def train(self, opts: PipelineOptions, dataset_id: str) -> str:
        with self.stage("train", opts.hashtag) as stage:
            if stage.state != SUCCEEDED:
                job = train(self.endpoints, opts, dataset_id, quiet=True,
                            follow=self.follow(stage, "run_id"))
                stage.message = ", ".join(f"{k}={v:.4g}" for k, v in sorted(job.metrics.items()))
            return stage.ids["run_id"]

    def generate(self, opts: PipelineOptions, model_id: str):
        _, _, count, columns = ASPECTS[opts.aspect]
        with self.stage("generate", opts.hashtag) as stage:
            # The seed is recorded before the grid is asked for: a resumed cycle makes the
            # same grid, and the post's idempotency key stays the same.
            seed = opts.grid_seed
            if seed is None:
                seed = int(stage.ids.get("seed") or random.SystemRandom().randrange(2**31))
            stage.ids["seed"] = str(seed)
            self._save_stage(stage)
            grid = generate(self.endpoints, model_id, seed=seed, count=count,
                            size=grid_size(opts), upscaler=opts.upscaler or None,
                            columns=columns)
            stage.ids["grid_key"] = grid.grid_key
            stage.message = f"{grid.metadata.count} images of {grid.metadata.width}x" \
                            f"{grid.metadata.height}"
            return grid

    def caption(self, opts: PipelineOptions, dataset_id: str, seed: int) -> str:
        with self.stage("caption", opts.hashtag) as stage:
            if opts.caption != "generated":
                stage.state, stage.message = SKIPPED, "template caption"
                return ""
            if stage.state == SUCCEEDED:
                return self.recorded.get("caption_text", "")
            text = written_caption(self.endpoints, opts, dataset_id, seed, quiet=True)
            stage.message = repr(text) if text else "no line passed the checks"
            self.record(caption_text=text)
            return text

    def publish(self, opts: PipelineOptions, grid, text: str, choice_line: str):
        """In this process (the publisher's), as its Publish RPC would; the key makes a
        resumed cycle's post the same post."""
        meta = grid.metadata
        with self.stage("publish", opts.hashtag) as stage:
            post = publish_post(
                self.store, opts.target, grid.grid_key,
                CaptionInputs(hashtag=meta.hashtag, method=meta.method,
                              metrics=dict(meta.metrics), model_id=meta.model_id,
                              seed=meta.seed, generated_text=text, choice_line=choice_line),
                opts.dry_run, idempotency_key(meta, opts.mode),
                PublishOptions(mode=opts.mode, visibility=opts.visibility))
            stage.ids.update(post_id=post.post_id, url=post.url)
            self.record(post={"post_id": post.post_id, "url": post.url})
            if post.error:
                stage.message = post.error
            return post

    def choice_line(self, choice: dict[str, Any], hashtag: str) -> str:
        if hashtag == choice["winner"]:
            return choice["caption_line"]
        left = next((t["left_because"] for t in self.tried
                     if t["hashtag"] == choice["winner"]), "too few images")
        return clip(f"Runner-up of the {choice['method']} choice: {choice['winner']} had "
                    f"{'no images' if left.startswith('no images') else 'too few images'}.",
                    200)

    # -- bookkeeping -------------------------------------------------------------------------

    def record(self, message: str | None = None, fraction: float | None = None, *,
               save: bool = True, **fields: Any) -> None:
        """Hand the run's record to the job; raises Cancelled. save: write it to storage now
        (a started job's id must survive a kill that comes before the next heartbeat); mere
        progress waits for the job's heartbeat."""
        self.job.update(message, fraction, stages=copy.deepcopy(self.stages),
                        tried=copy.deepcopy(self.tried), **fields)
        if save:
            self.job.save_now()

    def _save_stage(self, stage: Stage, **fields: Any) -> None:
        self.stages[stage.name] = dataclasses.asdict(stage)
        self.record(**fields)

    @contextmanager
    def stage(self, name: str, hashtag: str = "") -> Iterator[Stage]:
        """The stage's record, marked running, then succeeded or failed when the block ends.
        A recorded stage of another hashtag (a fallback) starts afresh."""
        stage = Stage.from_dict(self.stages.get(name, {"name": name}))
        if stage.hashtag and hashtag and stage.hashtag != hashtag:
            stage = Stage(name)
        if stage.state == SUCCEEDED:
            yield stage
            return
        stage.state, stage.started_unix, stage.hashtag = RUNNING, time.time(), hashtag
        stage.ended_unix, stage.message = 0.0, stage.message if stage.ids else ""

        self._save_stage(stage, message=f"{name}" + (f" #{hashtag}" if hashtag else ""))
        try:
            yield stage
        except TooFewImages as exc:
            stage.state, stage.message = FAILED, clip(str(exc), 500)
            raise
        except BaseException as exc:
            if not self.job.cancel_requested:
                stage.state, stage.message = FAILED, clip(_why(exc), 500)
            raise
        else:
            if stage.state == RUNNING:
                stage.state = SUCCEEDED
        finally:
            stage.ended_unix = time.time() if stage.state != RUNNING else 0.0
            done = _DONE_AT[name] if stage.state in (SUCCEEDED, SKIPPED) else None
            with _no_cancel(self.job):
                self._save_stage(stage, fraction=done)

    def follow(self, stage: Stage, id_field: str = "") -> Follow:
        """Follow hooks that record a started job's id at once and the stage's progress."""
        first, last = _DONE_AT[_previous(stage.name)], _DONE_AT[stage.name]

        def started(job_id: str) -> None:
            stage.ids[id_field] = job_id
            self._save_stage(stage)

        def progressed(fraction: float, message: str) -> None:
            self.record(f"{stage.name}: {message}", first + (last - first) * fraction,
                        save=False)

        job = self.job
        return Follow(job_id=stage.ids.get(id_field, "") if id_field else "",
                      on_start=started, on_progress=progressed,
                      cancel_on=lambda exc: isinstance(exc, KeyboardInterrupt) or (
                          job.cancel_requested and not job.stopping_for_shutdown))


def _previous(name: str) -> str:
    i = STAGES.index(name)
    return STAGES[i - 1] if i else name


def _why(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def _no_cancel(job: Job) -> Iterator[None]:
    """Save a stage's end even after a cancel (update() raises Cancelled after saving)."""
    try:
        yield
    except Exception:
        if not job.cancel_requested:
            raise


def cycle_work(store: ObjectStore, endpoints: Endpoints,
               opts: PipelineOptions) -> Callable[[Job], str]:
    return lambda job: CycleRun(job, store, endpoints, opts).run()

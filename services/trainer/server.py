"""The trainer's gRPC server: filters raw sets into datasets and runs training jobs.

`python -m services.trainer.server` serves gRPC; `... server train --run-id R ...` runs
one training to completion without a server (the Kubernetes Job).

Thin by design: each method translates its request into a call of socialgan.filtering
or socialgan.training and the result back into proto; errors the core raises become
status codes in socialgan.rpc.server.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict

from socialgan import jobs, log
from socialgan.errors import FailedPrecondition, NotFound, SocialGanError, Unavailable
from socialgan.filtering import dataset_summary, iter_build_dataset, read_manifest
from socialgan.filtering.review import read_review, review_image
from socialgan.job_store import JobStore, page_of
from socialgan.jobs import Cancelled, Job, JobRunner, JobSnapshot, Work
from socialgan.rpc.convert import aspect_name, job_status, review_decision_name
from socialgan.rpc.server import run_until_signalled, start_server
from socialgan.storage import ObjectStore, keys, open_store
from socialgan.training import DEFAULT_CHECKPOINT_EVERY, DEFAULT_MODEL, RunSpec, prepare_run, train
from socialgan.training.launcher import ProgressWriter, TrainingLauncher, launcher_from_settings
from socialgan.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from socialgan.validation import check_identifier, normalize_hashtag

FILTER, TRAINING = "filter", "training"  # job kinds (jobs/<kind>/ in storage)
FILTER_STREAM_EVERY_S = 0.2  # at most this often a FilterProgress message, plus the last
TRAIN_JOB_STEPS = 10_000  # default budget of `train` (about 6 tutorial epochs of 200k images)
JOB_LOG_EVERY_S = 10.0


def dataset_message(summary: dict[str, Any]) -> trainer_pb2.Dataset:
    return trainer_pb2.Dataset(
        dataset_id=summary["dataset_id"],
        hashtag=summary["hashtag"],
        aspect=common_pb2.ASPECT_BANNER if summary["aspect"] == "banner"
        else common_pb2.ASPECT_SQUARE,
        width=summary["width"],
        height=summary["height"],
        kept=summary["kept"],
        dropped=summary["dropped"],
        dropped_by_reason=summary["dropped_by_reason"],
        manifest_key=summary["manifest_key"],
        shard_keys=summary["shard_keys"],
        report_key=summary["report_key"],
        contact_sheet_keys=summary.get("contact_sheet_keys", {}),
        thresholds=summary.get("thresholds", {}),
        crop=summary.get("crop", ""),
        stages=summary.get("stages", []),
    )


def training_message(snap: JobSnapshot) -> trainer_pb2.TrainingJob:
    p, spec = snap.progress, snap.request  # the request: for a run that has not reported yet
    return trainer_pb2.TrainingJob(
        status=job_status(snap),
        run_id=snap.job_id,
        dataset_id=p.get("dataset_id") or spec.get("dataset_id", ""),
        model=p.get("model") or spec.get("model", ""),
        step=p.get("step", 0),
        total_steps=p.get("total_steps") or spec.get("steps", 0),
        losses=p.get("losses", {}),
        images_per_second=p.get("images_per_second", 0.0),
        metrics=p.get("metrics", {}),
        latest_sample_key=p.get("latest_sample_key", ""),
        latest_checkpoint_key=p.get("latest_checkpoint_key", ""),
        export_prefix=p.get("export_prefix", ""),
        samples_written=p.get("samples_written", 0),
    )


def filter_progress(snap: JobSnapshot) -> trainer_pb2.FilterProgress:
    p = snap.progress
    done = snap.state == jobs.SUCCEEDED and p.get("dataset")
    return trainer_pb2.FilterProgress(
        dataset_id=snap.job_id,
        processed=p.get("processed", 0), total=p.get("total", 0), kept=p.get("kept", 0),
        dropped_by_reason=p.get("dropped_by_reason", {}),
        dataset=dataset_message(p["dataset"]) if done else None)


def filter_job_message(snap: JobSnapshot) -> trainer_pb2.FilterJob:
    return trainer_pb2.FilterJob(status=job_status(snap), dataset_id=snap.job_id,
                                 hashtag=snap.request.get("hashtag", ""),
                                 progress=filter_progress(snap))


def built_dataset_snapshot(summary: dict[str, Any]) -> JobSnapshot:
    """A dataset built without a filter job (the CLI, or before jobs were recorded), as one."""
    counts = {"processed": summary["kept"] + summary["dropped"],
              "total": summary["kept"] + summary["dropped"], "kept": summary["kept"],
              "dropped_by_reason": summary["dropped_by_reason"], "dataset": summary}
    return JobSnapshot(summary["dataset_id"], FILTER, jobs.SUCCEEDED, "built outside a job",
                       0.0, 0.0, 1.0, counts, 0, {"hashtag": summary["hashtag"]})


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, store: ObjectStore, runner: JobRunner | None = None,
                 job_store: JobStore | None = None, launcher: TrainingLauncher | None = None):
        self.store = store
        self.job_store = job_store or JobStore(store)
        # In this process or as Kubernetes Jobs (TRAINER_LAUNCHER); runs beyond what the
        # launcher takes at once wait in the queue (state QUEUED).
        self.launcher = launcher or launcher_from_settings(store)
        self.runner = runner or JobRunner(max_concurrent=self.launcher.concurrent_runs,
                                          store=self.job_store)
        # Filters have their own pool: a dataset is not held up behind a long run.
        self.filters = JobRunner(max_concurrent=2, store=self.job_store)

    # -- filter jobs ---------------------------------------------------------------------

    def _filter_work(self, request: dict[str, Any]) -> Work:
        """The filter of a recorded request; the request is checked here, before any job."""
        req = ParseDict(request, trainer_pb2.FilterDatasetRequest())
        updates = iter_build_dataset(
            self.store,
            req.hashtag,
            resolution=req.resolution if req.HasField("resolution") else 64,
            aspect=aspect_name(req.aspect),
            dataset_id=req.dataset_id or None,
            thresholds=dict(req.thresholds),
            crop=req.crop or "center",
            extra_stages=list(req.extra_stages),
            skip_stages=list(req.skip_stages),
            example_keys=list(req.example_keys),
        )
        first = next(updates)  # everything up to the first image: the request's checks

        def work(job: Job) -> str:
            try:
                for update in itertools.chain([first], updates):
                    job.update(
                        message=f"{update.processed}/{update.total} images, {update.kept} kept",
                        fraction_done=update.processed / max(1, update.total),
                        processed=update.processed, total=update.total, kept=update.kept,
                        dropped_by_reason=dict(update.dropped_by_reason),
                        **({"dataset": update.dataset} if update.dataset else {}))
            finally:
                updates.close()  # stopped early: no manifest, no half-built dataset
            final = job.progress
            return f"kept {final.get('kept', 0)} of {final.get('total', 0)} images"
        return work

    def _start_filter(self, request: trainer_pb2.FilterDatasetRequest) -> Job:
        tag = normalize_hashtag(request.hashtag)
        # The id is fixed now, so that a resumed filter writes the same dataset.
        dataset_id = check_identifier(request.dataset_id, "dataset_id") \
            if request.dataset_id else keys.new_id(tag)
        recorded = MessageToDict(request, preserving_proto_field_name=True)
        recorded.update(hashtag=tag, dataset_id=dataset_id)
        return self.filters.start(FILTER, dataset_id, self._filter_work(recorded), recorded)

    def _filter_snapshot(self, dataset_id: str) -> JobSnapshot:
        dataset_id = check_identifier(dataset_id, "dataset_id")
        try:
            return self.filters.snapshot(dataset_id, FILTER)
        except NotFound:
            return built_dataset_snapshot(dataset_summary(read_manifest(self.store, dataset_id)))

    def FilterDataset(self, request, context) -> Iterator[trainer_pb2.FilterProgress]:
        job = self._start_filter(request)
        last_sent, snap = 0.0, job.snapshot()
        # A client that hangs up stops this stream, not the filter job.
        for snap in self.filters.watch(job.job_id, FILTER, context.is_active):
            now = time.monotonic()
            if snap.done or now - last_sent >= FILTER_STREAM_EVERY_S:
                last_sent = now
                if snap.state in (jobs.SUCCEEDED, jobs.RUNNING, jobs.QUEUED):
                    yield filter_progress(snap)
        if snap.state == jobs.FAILED:
            raise job.error if isinstance(job.error, SocialGanError) \
                else FailedPrecondition(snap.message)
        if snap.state == jobs.INTERRUPTED:  # the service is stopping; it resumes the filter
            raise Unavailable(f"filter {job.job_id} interrupted: {snap.message}; WatchFilter "
                              "it once the service is back")
        if snap.state == jobs.CANCELLED:
            raise FailedPrecondition(f"filter {job.job_id} was cancelled")

    def StartFilter(self, request, context) -> trainer_pb2.FilterJob:
        return filter_job_message(self._start_filter(request).snapshot())

    def WatchFilter(self, request, context) -> Iterator[trainer_pb2.FilterJob]:
        dataset_id = check_identifier(request.dataset_id, "dataset_id")
        try:
            self.filters.get(dataset_id, FILTER)
        except NotFound:  # no job: a dataset built without one (or NOT_FOUND)
            yield filter_job_message(self._filter_snapshot(dataset_id))
            return
        for snap in self.filters.watch(dataset_id, FILTER, context.is_active):
            yield filter_job_message(snap)

    def GetFilter(self, request, context) -> trainer_pb2.FilterJob:
        return filter_job_message(self._filter_snapshot(request.dataset_id))

    def CancelFilter(self, request, context) -> trainer_pb2.FilterJob:
        dataset_id = check_identifier(request.dataset_id, "dataset_id")
        return filter_job_message(self.filters.cancel(dataset_id, FILTER))

    def ListDatasets(self, request, context) -> trainer_pb2.ListDatasetsResponse:
        built = (k.split("/")[1] for k in self.store.list("datasets/")
                 if k.endswith("/manifest.json"))
        ids, next_token = page_of([*self.filters.job_ids(FILTER), *built],
                                  request.page_size, request.page_token)
        return trainer_pb2.ListDatasetsResponse(
            datasets=[filter_job_message(self._filter_snapshot(i)) for i in ids],
            next_page_token=next_token)

    def ReviewImage(self, request, context) -> trainer_pb2.FilterReview:
        decision = review_decision_name(request.decision)
        hashtag = normalize_hashtag(request.hashtag)
        return trainer_pb2.FilterReview(hashtag=hashtag, decisions=review_image(
            self.store, hashtag, request.image_id, decision))

    def GetFilterReview(self, request, context) -> trainer_pb2.FilterReview:
        hashtag = normalize_hashtag(request.hashtag)
        return trainer_pb2.FilterReview(hashtag=hashtag,
                                        decisions=read_review(self.store, hashtag))

    def GetDataset(self, request, context) -> trainer_pb2.Dataset:
        dataset_id = check_identifier(request.dataset_id, "dataset_id")
        return dataset_message(dataset_summary(read_manifest(self.store, dataset_id)))

    def StartTraining(self, request, context) -> trainer_pb2.TrainingJob:
        if request.run_id:
            check_identifier(request.run_id, "run_id")
        spec = RunSpec(
            run_id=request.run_id,
            dataset_id=request.dataset_id,
            model=request.model,
            steps=request.budget.steps,
            seconds=request.budget.seconds,
            seed=request.seed,
            checkpoint_every=request.checkpoint_every if request.HasField("checkpoint_every")
            else DEFAULT_CHECKPOINT_EVERY,
            options=dict(request.options),
        )
        # Validate now, so bad requests fail the call rather than a job later.
        plan = prepare_run(self.store, spec)
        recorded = dataclasses.asdict(plan.spec)
        job = self.runner.start(TRAINING, plan.spec.run_id, self._train_work(plan.spec),
                                recorded)
        snap = job.snapshot()
        snap.progress = {"step": plan.resume_step or 0, **snap.progress}
        return training_message(snap)

    def _training_work(self, request: dict[str, Any]) -> Work:
        """The training of a recorded RunSpec. Started again with the same run_id it resumes
        from the latest checkpoint, bit for bit: what a restarted service does."""
        return self._train_work(prepare_run(self.store, RunSpec(**request)).spec)

    def _train_work(self, spec: RunSpec) -> Work:
        """The training of spec, already checked by prepare_run."""
        def work(job: Job) -> str:
            return self.launcher.run(spec, job)
        return work

    def WatchTraining(self, request, context) -> Iterator[trainer_pb2.TrainingJob]:
        run_id = check_identifier(request.run_id, "run_id")
        for snap in self.runner.watch(run_id, TRAINING, context.is_active):
            yield training_message(snap)

    def GetTraining(self, request, context) -> trainer_pb2.TrainingJob:
        return training_message(self.runner.snapshot(
            check_identifier(request.run_id, "run_id"), TRAINING))

    def CancelTraining(self, request, context) -> trainer_pb2.TrainingJob:
        return training_message(self.runner.cancel(
            check_identifier(request.run_id, "run_id"), TRAINING))

    def ListTrainings(self, request, context) -> trainer_pb2.ListTrainingsResponse:
        ids, next_token = page_of(self.runner.job_ids(TRAINING), request.page_size,
                                  request.page_token)
        return trainer_pb2.ListTrainingsResponse(
            runs=[training_message(self.runner.snapshot(i, TRAINING)) for i in ids],
            next_page_token=next_token)

    # -- restarts ------------------------------------------------------------------------

    def resume_interrupted(self) -> None:
        """In the background: resume the filters and runs a restart or a kill interrupted."""
        self.filters.recover_in_background({FILTER: self._filter_work})
        self.runner.recover_in_background({TRAINING: self._training_work})

    def shutdown(self) -> None:
        """Stop every job; each is recorded INTERRUPTED (a run checkpoints first) and
        resumes when the service starts again."""
        self.filters.shutdown()
        self.runner.shutdown()


def register(server: grpc.Server, store: ObjectStore,
             servicer: TrainerServicer | None = None) -> list[str]:
    trainer_pb2_grpc.add_TrainerServiceServicer_to_server(
        servicer or TrainerServicer(store), server)
    return [trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name]


def train_once(argv: list[str]) -> int:
    """`python -m services.trainer.server train ...`: one run to completion, no server (the
    Kubernetes Job). Started again with the same --run-id it resumes from the latest
    checkpoint; SIGTERM (preemption, deletion) checkpoints first and exits 143."""
    parser = argparse.ArgumentParser(prog="python -m services.trainer.server train",
                                     description=train_once.__doc__)
    parser.add_argument("--dataset-id", default="", help="dataset to train on (FilterDataset)")
    parser.add_argument("--run-id", required=True, help="run to start or resume")
    parser.add_argument("--model", default="", help=f"architecture (default {DEFAULT_MODEL})")
    parser.add_argument("--steps", type=int, default=TRAIN_JOB_STEPS,
                        help=f"total steps of the run (default {TRAIN_JOB_STEPS}; 0: no limit)")
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="wall-clock limit of this attempt (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=DEFAULT_CHECKPOINT_EVERY)
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="model/loop option, e.g. ngf=32 or batch_size=256 (repeatable)")
    args = parser.parse_args(argv)
    options = dict(item.split("=", 1) for item in args.option if "=" in item)
    if len(options) != len(args.option):
        parser.error("--option takes NAME=VALUE")

    try:  # what the trainer service following this run's Kubernetes Job reads
        publish = ProgressWriter(open_store(), args.run_id)
    except SocialGanError as exc:
        parser.error(str(exc))
    logger = logging.getLogger("socialgan.trainer")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    last_log = [0.0]

    def report(message: str | None = None, fraction_done: float | None = None,
               **progress: Any) -> None:
        publish(message, fraction_done, **progress)
        if message and (time.monotonic() - last_log[0] >= JOB_LOG_EVERY_S
                        or fraction_done == 1.0):
            last_log[0] = time.monotonic()
            logger.info(message, extra={"step": progress.get("step"),
                                        "images_per_second": progress.get("images_per_second")})
        if stop.is_set():
            raise Cancelled(f"training {args.run_id} stopped by a signal")

    spec = RunSpec(run_id=args.run_id, dataset_id=args.dataset_id, model=args.model,
                   steps=args.steps, seconds=args.seconds, seed=args.seed,
                   checkpoint_every=args.checkpoint_every, options=options)
    try:
        result = train(publish.store, spec, report=report)
    except Cancelled as exc:
        logger.warning("%s; resume by starting the same run again", exc)
        return 143
    except SocialGanError as exc:
        logger.error("cannot train: %s", exc)
        publish(message=f"cannot train: {exc}")
        return 2
    finally:
        publish.flush()
    logger.info("trained %s to step %d; exported %s", args.run_id, result["step"],
                result["export_prefix"], extra={"metrics": result["metrics"]})
    return 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    log.configure("trainer")
    if argv[:1] == ["train"]:
        sys.exit(train_once(argv[1:]))
    store = open_store()
    servicer = TrainerServicer(store)
    running = start_server("trainer", lambda s: register(s, store, servicer))
    servicer.resume_interrupted()
    # On SIGTERM the running job is stopped, which checkpoints it; the next start of the
    # service resumes it (as does starting the same run_id again).
    run_until_signalled(running, on_stop=servicer.shutdown)


if __name__ == "__main__":
    main()

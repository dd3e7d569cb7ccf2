"""The trainer's gRPC server: filters raw sets into datasets and runs training jobs.

`python -m services.trainer.server` serves gRPC; `... server train --run-id R ...` runs
one training to completion without a server (the Kubernetes Job).

Thin by design: each method translates its request into a call of socialgan.filtering
or socialgan.training and the result back into proto; errors the core raises become
status codes in socialgan.rpc.server.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from socialgan import log
from socialgan.errors import SocialGanError
from socialgan.filtering import dataset_summary, iter_build_dataset, read_manifest
from socialgan.jobs import Cancelled, Job, JobRunner, JobSnapshot
from socialgan.rpc.convert import aspect_name, job_status
from socialgan.rpc.server import run_until_signalled, start_server
from socialgan.storage import ObjectStore, open_store
from socialgan.training import DEFAULT_CHECKPOINT_EVERY, DEFAULT_MODEL, RunSpec, prepare_run, train
from socialgan.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from socialgan.validation import check_identifier

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
    p = snap.progress
    return trainer_pb2.TrainingJob(
        status=job_status(snap),
        run_id=snap.job_id,
        dataset_id=p.get("dataset_id", ""),
        model=p.get("model", ""),
        step=p.get("step", 0),
        total_steps=p.get("total_steps", 0),
        losses=p.get("losses", {}),
        images_per_second=p.get("images_per_second", 0.0),
        metrics=p.get("metrics", {}),
        latest_sample_key=p.get("latest_sample_key", ""),
        latest_checkpoint_key=p.get("latest_checkpoint_key", ""),
        export_prefix=p.get("export_prefix", ""),
        samples_written=p.get("samples_written", 0),
    )


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, store: ObjectStore, runner: JobRunner | None = None):
        self.store = store
        # One run at a time: two runs on the same cores (or GPU) only slow each other down;
        # a second StartTraining waits in the queue (state QUEUED).
        self.runner = runner or JobRunner(max_concurrent=1)

    def FilterDataset(self, request, context) -> Iterator[trainer_pb2.FilterProgress]:
        updates = iter_build_dataset(
            self.store,
            request.hashtag,
            resolution=request.resolution if request.HasField("resolution") else 64,
            aspect=aspect_name(request.aspect),
            dataset_id=request.dataset_id or None,
            thresholds=dict(request.thresholds),
            crop=request.crop or "center",
            extra_stages=list(request.extra_stages),
            skip_stages=list(request.skip_stages),
            example_keys=list(request.example_keys),
        )
        last_sent = 0.0
        for update in updates:  # a client that hangs up stops the iteration, and the filter
            now = time.monotonic()
            if update.dataset is None and now - last_sent < FILTER_STREAM_EVERY_S \
                    and update.processed != update.total:
                continue
            last_sent = now
            yield trainer_pb2.FilterProgress(
                processed=update.processed,
                total=update.total,
                kept=update.kept,
                dropped_by_reason=update.dropped_by_reason,
                dataset=dataset_message(update.dataset) if update.dataset else None,
            )

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
        spec = plan.spec

        def work(job: Job) -> str:
            result = train(self.store, spec, report=job.update)
            return (f"trained {result['step']} steps; swd {result['metrics'].get('swd', 0):.1f}; "
                    f"exported {result['export_prefix']}")

        job = self.runner.start("training", spec.run_id, work)
        snap = job.snapshot()
        snap.progress = {"dataset_id": spec.dataset_id, "model": spec.model,
                         "total_steps": spec.steps, "step": plan.resume_step or 0,
                         **snap.progress}
        return training_message(snap)

    def WatchTraining(self, request, context) -> Iterator[trainer_pb2.TrainingJob]:
        job = self.runner.get(check_identifier(request.run_id, "run_id"))
        for snap in job.watch(context.is_active):
            yield training_message(snap)

    def GetTraining(self, request, context) -> trainer_pb2.TrainingJob:
        job = self.runner.get(check_identifier(request.run_id, "run_id"))
        return training_message(job.snapshot())

    def CancelTraining(self, request, context) -> trainer_pb2.TrainingJob:
        job = self.runner.cancel(check_identifier(request.run_id, "run_id"))
        return training_message(job.snapshot())


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

    logger = logging.getLogger("socialgan.trainer")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    last_log = [0.0]

    def report(message: str | None = None, fraction_done: float | None = None,
               **progress: Any) -> None:
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
        result = train(open_store(), spec, report=report)
    except Cancelled as exc:
        logger.warning("%s; resume by starting the same run again", exc)
        return 143
    except SocialGanError as exc:
        logger.error("cannot train: %s", exc)
        return 2
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
    # On SIGTERM the running job is cancelled, which checkpoints it: starting the same
    # run_id again (after a restart) resumes it.
    run_until_signalled(running, on_stop=servicer.runner.shutdown)


if __name__ == "__main__":
    main()

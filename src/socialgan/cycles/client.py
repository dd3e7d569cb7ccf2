"""CycleService as a client: start a cycle, follow it, read the history (the CLI's
`socialgan cycle`, `history` and `schedule`, and the CronJob's `socialgan cycle --remote`)."""

from __future__ import annotations

import sys
import time

import grpc
from tqdm import tqdm

from socialgan.pipeline import QUICK, PipelineOptions
from socialgan.rpc.client import open_channel
from socialgan.rpc.convert import CHOOSE_MODE_ENUM, mode_enum, target_enum
from socialgan.supervisor import Endpoints
from socialgan.v1 import cycle_pb2, cycle_pb2_grpc, publisher_pb2, publisher_pb2_grpc

WATCH = 48 * 3600.0  # a cycle scrapes, trains for its budget and publishes
ENDED = (cycle_pb2.RUN_STATE_SUCCEEDED, cycle_pb2.RUN_STATE_FAILED,
         cycle_pb2.RUN_STATE_CANCELLED, cycle_pb2.RUN_STATE_INTERRUPTED,
         cycle_pb2.RUN_STATE_SKIPPED)


def options_message(opts: PipelineOptions) -> cycle_pb2.CycleOptions:
    return cycle_pb2.CycleOptions(
        choose=CHOOSE_MODE_ENUM.get(opts.choose, publisher_pb2.CHOOSE_MODE_UNSPECIFIED),
        hashtag=opts.hashtag if opts.choose == "manual" else "", source=opts.source,
        limit=opts.limit or 0, model=opts.model, resolution=opts.resolution,
        aspect=opts.aspect, steps=opts.steps, seconds=opts.seconds, options=opts.options,
        seed=opts.seed, target=target_enum(opts.target), mode=mode_enum(opts.mode),
        visibility=opts.visibility, dry_run=opts.dry_run, caption=opts.caption,
        caption_seconds=opts.caption_seconds)


def _stub(endpoints: Endpoints) -> cycle_pb2_grpc.CycleServiceStub:
    return cycle_pb2_grpc.CycleServiceStub(open_channel(endpoints.publisher, endpoints.token))


def start_cycle(endpoints: Endpoints, opts: PipelineOptions,
                trigger: str = "cli") -> cycle_pb2.Run:
    return _stub(endpoints).RunCycle(cycle_pb2.RunCycleRequest(
        options=options_message(opts), trigger=trigger), timeout=QUICK)


def follow_run(endpoints: Endpoints, run: cycle_pb2.Run, quiet: bool = False) -> cycle_pb2.Run:
    """Watch the run until it ends, with a bar of its stages; reconnects when the publisher
    restarts (the run resumes there)."""
    stub = _stub(endpoints)
    with tqdm(total=100, desc=f"cycle {run.run_id}", unit="%", disable=quiet,
              file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {postfix}") as bar:
        while run.state not in ENDED:
            try:
                watch = stub.WatchRun(cycle_pb2.GetRunRequest(run_id=run.run_id),
                                      timeout=WATCH)
                for run in watch:  # noqa: B020 - the last snapshot is the result
                    bar.n = round(run.fraction_done * 100)
                    bar.set_postfix_str(run.message[:80], refresh=False)
                    bar.refresh()
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(2.0)  # the publisher restarts: the run resumes there
            if run.state == cycle_pb2.RUN_STATE_INTERRUPTED:
                time.sleep(2.0)  # recorded before a restart: wait for it to resume
                run = stub.GetRun(cycle_pb2.GetRunRequest(run_id=run.run_id), timeout=QUICK)
                if run.state == cycle_pb2.RUN_STATE_INTERRUPTED and "not resumed" in run.message:
                    break
    return run


def get_post(endpoints: Endpoints, post_id: str) -> publisher_pb2.Post:
    stub = publisher_pb2_grpc.PublisherServiceStub(
        open_channel(endpoints.publisher, endpoints.token))
    return stub.GetPost(publisher_pb2.GetPostRequest(post_id=post_id), timeout=QUICK)


def list_runs(endpoints: Endpoints, page_size: int = 20,
              page_token: str = "") -> cycle_pb2.ListRunsResponse:
    return _stub(endpoints).ListRuns(cycle_pb2.ListRunsRequest(
        page_size=page_size, page_token=page_token), timeout=QUICK)


def get_run(endpoints: Endpoints, run_id: str) -> cycle_pb2.Run:
    return _stub(endpoints).GetRun(cycle_pb2.GetRunRequest(run_id=run_id), timeout=QUICK)


def cancel_run(endpoints: Endpoints, run_id: str) -> cycle_pb2.Run:
    return _stub(endpoints).CancelRun(cycle_pb2.GetRunRequest(run_id=run_id), timeout=QUICK)


def state_word(state: int) -> str:
    return cycle_pb2.RunState.Name(state).removeprefix("RUN_STATE_").lower()


def run_line(run: cycle_pb2.Run) -> str:
    """One line of the history."""
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(run.created_unix))
    what = f"#{run.hashtag}" if run.hashtag else "-"
    where = run.post_url or run.skipped_because or run.message
    return f"{run.run_id}  {when}  {state_word(run.state):<11} {what:<24} {where[:100]}"


def run_report(run: cycle_pb2.Run) -> list[str]:
    """A run, stage by stage."""
    lines = [f"run:        {run.run_id} ({state_word(run.state)}, trigger {run.trigger})",
             f"message:    {run.message}"]
    if run.hashtag:
        lines.append(f"hashtag:    #{run.hashtag}"
                     + (f" (tried {', '.join('#' + t for t in run.tried_hashtags)})"
                        if len(run.tried_hashtags) > 1 else ""))
    if run.evidence_key:
        lines.append(f"evidence:   {run.evidence_key}")
    for stage in run.stages:
        took = (f"{stage.ended_unix - stage.started_unix:7.1f} s"
                if stage.ended_unix and stage.started_unix else "        ")
        ids = " ".join(f"{k}={v}" for k, v in sorted(stage.ids.items()))
        lines.append(f"  {stage.name:<9} {stage.state:<10} {took}  {ids}  {stage.message}"
                     .rstrip())
    if run.post_url:
        lines.append(f"post:       {run.post_url}")
    return lines

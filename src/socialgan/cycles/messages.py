"""Cycle runs as CycleService messages (the publisher's answers and the CLI's history)."""

from __future__ import annotations

from socialgan.cycles.client import options_message
from socialgan.cycles.runner import recorded_options
from socialgan.jobs import JobSnapshot
from socialgan.rpc.convert import job_state_enum
from socialgan.v1 import common_pb2, cycle_pb2

_RUN_STATES = {
    common_pb2.JOB_STATE_QUEUED: cycle_pb2.RUN_STATE_QUEUED,
    common_pb2.JOB_STATE_RUNNING: cycle_pb2.RUN_STATE_RUNNING,
    common_pb2.JOB_STATE_SUCCEEDED: cycle_pb2.RUN_STATE_SUCCEEDED,
    common_pb2.JOB_STATE_FAILED: cycle_pb2.RUN_STATE_FAILED,
    common_pb2.JOB_STATE_CANCELLED: cycle_pb2.RUN_STATE_CANCELLED,
    common_pb2.JOB_STATE_INTERRUPTED: cycle_pb2.RUN_STATE_INTERRUPTED,
}


def run_message(snap: JobSnapshot) -> cycle_pb2.Run:
    p, request = snap.progress, snap.request
    choice = p.get("choice", {})
    skipped = p.get("skipped_because", "")
    stages = [cycle_pb2.RunStage(
        name=s.get("name", name), state=s.get("state", ""),
        started_unix=s.get("started_unix", 0.0), ended_unix=s.get("ended_unix", 0.0),
        ids={k: str(v) for k, v in s.get("ids", {}).items()}, message=s.get("message", ""),
        hashtag=s.get("hashtag", ""))
        for name, s in p.get("stages", {}).items()]
    return cycle_pb2.Run(
        run_id=snap.job_id,
        state=cycle_pb2.RUN_STATE_SKIPPED if skipped else
        _RUN_STATES.get(job_state_enum(snap.state), cycle_pb2.RUN_STATE_UNSPECIFIED),
        message=snap.message, created_unix=snap.created, updated_unix=snap.updated,
        fraction_done=snap.fraction_done, trigger=request.get("trigger", ""),
        options=options_message(recorded_options(request.get("options", {}))),
        hashtag=p.get("hashtag", ""),
        choice_id=choice.get("choice_id", ""), evidence_key=choice.get("evidence_key", ""),
        stages=stages, tried_hashtags=[t["hashtag"] for t in p.get("tried", [])],
        post_id=p.get("post", {}).get("post_id", ""), post_url=p.get("post", {}).get("url", ""),
        skipped_because=skipped)

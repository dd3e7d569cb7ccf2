"""Conversions between core values and the proto messages every service shares."""

from __future__ import annotations

from socialgan import jobs
from socialgan.v1 import common_pb2

_STATE = {
    jobs.QUEUED: common_pb2.JOB_STATE_QUEUED,
    jobs.RUNNING: common_pb2.JOB_STATE_RUNNING,
    jobs.SUCCEEDED: common_pb2.JOB_STATE_SUCCEEDED,
    jobs.FAILED: common_pb2.JOB_STATE_FAILED,
    jobs.CANCELLED: common_pb2.JOB_STATE_CANCELLED,
}
_STATE_NAME = {v: k for k, v in _STATE.items()}


def job_status(snap: jobs.JobSnapshot) -> common_pb2.JobStatus:
    return common_pb2.JobStatus(
        job_id=snap.job_id,
        state=_STATE[snap.state],
        message=snap.message,
        created_unix=snap.created,
        updated_unix=snap.updated,
        fraction_done=snap.fraction_done,
    )


def state_name(state: int) -> str:
    """'running', 'succeeded', ... for a JobState value."""
    return _STATE_NAME.get(state, "unspecified")


def aspect_name(aspect: int) -> str:
    return "banner" if aspect == common_pb2.ASPECT_BANNER else "square"


def format_name(fmt: int) -> str:
    return {common_pb2.IMAGE_FORMAT_JPEG: "jpeg", common_pb2.IMAGE_FORMAT_WEBP: "webp"}.get(
        fmt, "png")

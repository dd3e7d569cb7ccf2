"""Conversions between core values and the proto messages every service shares."""

from __future__ import annotations

from socialgan import jobs
from socialgan.errors import InvalidArgument
from socialgan.serving import output_size, upscale
from socialgan.v1 import common_pb2, generator_pb2, publisher_pb2, trainer_pb2

_STATE = {
    jobs.QUEUED: common_pb2.JOB_STATE_QUEUED,
    jobs.RUNNING: common_pb2.JOB_STATE_RUNNING,
    jobs.SUCCEEDED: common_pb2.JOB_STATE_SUCCEEDED,
    jobs.FAILED: common_pb2.JOB_STATE_FAILED,
    jobs.CANCELLED: common_pb2.JOB_STATE_CANCELLED,
    jobs.INTERRUPTED: common_pb2.JOB_STATE_INTERRUPTED,
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


def job_state_enum(name: str) -> int:
    """The JobState of a job state name ('running', ...)."""
    return _STATE.get(name, common_pb2.JOB_STATE_UNSPECIFIED)


def state_name(state: int) -> str:
    """'running', 'succeeded', ... for a JobState value."""
    return _STATE_NAME.get(state, "unspecified")


# Enum value -> the core's name; UNSPECIFIED (0) means the default. A number missing here
# (a newer client's value, or any int32 a hand-made request carries: proto3 keeps unknown
# enum numbers) is refused rather than silently read as the default.
_ASPECTS = {common_pb2.ASPECT_UNSPECIFIED: "square", common_pb2.ASPECT_SQUARE: "square",
            common_pb2.ASPECT_BANNER: "banner"}
_FORMATS = {common_pb2.IMAGE_FORMAT_UNSPECIFIED: "png", common_pb2.IMAGE_FORMAT_PNG: "png",
            common_pb2.IMAGE_FORMAT_JPEG: "jpeg", common_pb2.IMAGE_FORMAT_WEBP: "webp"}
_TARGETS = {publisher_pb2.PUBLISH_TARGET_UNSPECIFIED: "gallery",
            publisher_pb2.PUBLISH_TARGET_GALLERY: "gallery",
            publisher_pb2.PUBLISH_TARGET_INSTAGRAM: "instagram",
            publisher_pb2.PUBLISH_TARGET_MASTODON: "mastodon",
            publisher_pb2.PUBLISH_TARGET_X: "x",
            publisher_pb2.PUBLISH_TARGET_BLUESKY: "bluesky"}
_TARGET_ENUM = {name: value for value, name in _TARGETS.items()
                if value != publisher_pb2.PUBLISH_TARGET_UNSPECIFIED}
_MODES = {publisher_pb2.PUBLISH_MODE_UNSPECIFIED: "single",
          publisher_pb2.PUBLISH_MODE_SINGLE: "single",
          publisher_pb2.PUBLISH_MODE_TILES: "tiles",
          publisher_pb2.PUBLISH_MODE_CAROUSEL: "carousel",
          publisher_pb2.PUBLISH_MODE_PROFILE_GRID: "profile-grid",
          publisher_pb2.PUBLISH_MODE_BANNER: "banner"}
_MODE_ENUM = {name: value for value, name in _MODES.items()
              if value != publisher_pb2.PUBLISH_MODE_UNSPECIFIED}

# GenerateGrid's size preset and upscaler (None: the default). UPSCALER_OWN is "own:",
# completed by upscaler_model_id.
SIZE_PRESETS = {generator_pb2.SIZE_PRESET_UNSPECIFIED: None,
                generator_pb2.SIZE_PRESET_ORIGINAL: output_size.ORIGINAL,
                generator_pb2.SIZE_PRESET_INSTAGRAM: output_size.INSTAGRAM,
                generator_pb2.SIZE_PRESET_INSTAGRAM_TILES: output_size.INSTAGRAM_TILES,
                generator_pb2.SIZE_PRESET_BANNER: output_size.BANNER}
UPSCALERS = {generator_pb2.UPSCALER_UNSPECIFIED: None,
             generator_pb2.UPSCALER_NONE: upscale.NONE,
             generator_pb2.UPSCALER_LANCZOS: upscale.LANCZOS,
             generator_pb2.UPSCALER_REALESRGAN_X4PLUS: upscale.X4PLUS,
             generator_pb2.UPSCALER_REALESRGAN_ANIME: upscale.ANIME,
             generator_pb2.UPSCALER_OWN: upscale.OWN_PREFIX}
SIZE_PRESET_ENUM = {name: value for value, name in SIZE_PRESETS.items() if name}
_UPSCALER_ENUM = {name: value for value, name in UPSCALERS.items() if name}


def upscaler_fields(name: str) -> tuple[int, str]:
    """(upscaler, upscaler_model_id) of a GenerateGridRequest for the core's name."""
    if upscale.is_own(name):
        return generator_pb2.UPSCALER_OWN, name[len(upscale.OWN_PREFIX):]
    return _UPSCALER_ENUM[name], ""


def enum_name(names: dict[int, str], value: int, field: str, enum: str) -> str:
    """names[value], or InvalidArgument naming the field and the values it takes."""
    if value not in names:
        raise InvalidArgument(field, f"{value} is not a {enum} value; use one of "
                              + ", ".join(str(v) for v in sorted(names)))
    return names[value]


def aspect_name(aspect: int) -> str:
    return enum_name(_ASPECTS, aspect, "aspect", "Aspect")


def format_name(fmt: int) -> str:
    return enum_name(_FORMATS, fmt, "format", "ImageFormat")


def target_name(target: int, field: str = "target") -> str:
    return enum_name(_TARGETS, target, field, "PublishTarget")


def target_enum(name: str) -> int:
    """The PublishTarget of a post's target name (UNSPECIFIED for none known)."""
    return _TARGET_ENUM.get(name, publisher_pb2.PUBLISH_TARGET_UNSPECIFIED)


def mode_name(mode: int, field: str = "mode") -> str:
    return enum_name(_MODES, mode, field, "PublishMode")


def mode_enum(name: str) -> int:
    return _MODE_ENUM.get(name, publisher_pb2.PUBLISH_MODE_UNSPECIFIED)


_CHOOSE_MODES = {publisher_pb2.CHOOSE_MODE_UNSPECIFIED: "vote-else-trending",
                 publisher_pb2.CHOOSE_MODE_MANUAL: "manual",
                 publisher_pb2.CHOOSE_MODE_TRENDING: "trending",
                 publisher_pb2.CHOOSE_MODE_VOTE: "vote",
                 publisher_pb2.CHOOSE_MODE_VOTE_ELSE_TRENDING: "vote-else-trending"}
CHOOSE_MODE_ENUM = {name: value for value, name in _CHOOSE_MODES.items()
                    if value != publisher_pb2.CHOOSE_MODE_UNSPECIFIED}


def choose_mode_name(mode: int, field: str = "mode") -> str:
    return enum_name(_CHOOSE_MODES, mode, field, "ChooseMode")


# UNSPECIFIED is refused: a review must say what the person decided. CLEAR -> "".
_REVIEW_DECISIONS = {trainer_pb2.REVIEW_DECISION_KEEP: "keep",
                     trainer_pb2.REVIEW_DECISION_DROP: "drop",
                     trainer_pb2.REVIEW_DECISION_CLEAR: ""}
REVIEW_DECISION_ENUM = {name or "clear": value for value, name in _REVIEW_DECISIONS.items()}


def review_decision_name(decision: int, field: str = "decision") -> str:
    return enum_name(_REVIEW_DECISIONS, decision, field, "ReviewDecision")

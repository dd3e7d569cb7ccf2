"""Training GANs on filtered datasets: options, the plan, the loop, checkpoints and resume."""

from socialgan.training.checkpoint import latest_pointer, load_latest, save_checkpoint
from socialgan.training.config import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_MODEL,
    LoopOptions,
    RunSpec,
    parse_options,
)
from socialgan.training.loop import train
from socialgan.training.plan import RunPlan, prepare_run, resolve_device

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY", "DEFAULT_MODEL", "LoopOptions", "RunPlan", "RunSpec",
    "latest_pointer", "load_latest", "parse_options", "prepare_run", "resolve_device",
    "save_checkpoint", "train",
]

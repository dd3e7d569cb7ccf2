"""What a training run is: its budget, its loop knobs and its network's options, validated.

Requests carry options as a flat name -> string map (gRPC, CLI); parse_options splits
them into the loop's knobs (LoopOptions) and the architecture's (models.arch_options),
rejecting names neither knows, so a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from socialgan.errors import InvalidArgument
from socialgan.models import RECIPES, arch_options
from socialgan.validation import check_identifier

DEFAULT_MODEL = "dcgan-diffaug"
LOSSES = ("bce", "hinge")
AUGMENTS = ("color", "translation", "cutout")
DEFAULT_CHECKPOINT_EVERY = 500


@dataclass
class LoopOptions:
    """Knobs of the training loop; defaults are the PyTorch DCGAN tutorial's, and a
    model's RECIPE (models.RECIPES) replaces some of them for that model."""

    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # bf16 autocast on CUDA (ignored on CPU, where bf16 convolutions are slower).
    amp: bool = True
    # Fixed-seed sample grid written at every checkpoint: same latents each time, so
    # the grids show the run's progress.
    sample_count: int = 16
    sample_seed: int = 0
    # Loss history resolution: losses are averaged over this many steps per entry.
    log_every: int = 50
    # Older step checkpoints are deleted once a newer one is complete.
    keep_checkpoints: int = 2
    # Real and generated images compared by the metrics at the end (fewer if the set is smaller).
    metric_images: int = 512
    # Images for the SWD recorded at every checkpoint (the metrics history); 0: none.
    checkpoint_metric_images: int = 128
    # "bce": the tutorial's non-saturating loss; "hinge": D stops pushing at a margin.
    loss: str = "bce"
    # DiffAugment policies applied to every D input, comma-separated; "" for none.
    augment: str = ""
    # Decay of the generator's exponential moving average (sampled and exported); 0: off.
    ema_decay: float = 0.0
    # torch.compile the networks (slow first steps; mostly worth it on a GPU).
    compile: bool = False
    # Networks and batches in channels_last (NHWC) memory format: cuDNN's and oneDNN's
    # fast convolution layout (GPU: always was; 2-core AVX2 CPU, DCGAN-64: ~+10%).
    channels_last: bool = True

    def validate(self) -> LoopOptions:
        positive = ("batch_size", "lr", "sample_count", "log_every",
                    "keep_checkpoints", "metric_images")
        if self.checkpoint_metric_images < 0:
            raise InvalidArgument("options.checkpoint_metric_images", "must be >= 0")
        if self.loss not in LOSSES:
            raise InvalidArgument("options.loss", f"{self.loss!r} is not one of {LOSSES}")
        unknown = set(self.augment_policies) - set(AUGMENTS)
        if unknown:
            raise InvalidArgument("options.augment", f"unknown {sorted(unknown)}; known: "
                                  + ", ".join(AUGMENTS))
        if not 0 <= self.ema_decay < 1:
            raise InvalidArgument("options.ema_decay", "must be in [0, 1)")
        for name in positive:
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"options.{name}", f"must be > 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidArgument(f"options.{name}", "must be in [0, 1)")
        if self.sample_count > 64:
            raise InvalidArgument("options.sample_count", "at most 64")
        return self

    @property
    def augment_policies(self) -> list[str]:
        return [p.strip() for p in self.augment.split(",") if p.strip()]


def _parse_value(name: str, default: Any, raw: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return text in ("true", "1", "yes")
        return type(default)(raw)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"options.{name}", f"{raw!r} is not a valid {type(default).__name__}") from None


def parse_options(model: str, options: Mapping[str, Any] | None,
                  fixed: Mapping[str, Any] | None = None) -> tuple[LoopOptions, dict[str, Any]]:
    """Split options into (LoopOptions, architecture options), both validated.

    fixed holds architecture options the dataset decides (e.g. image_size); giving a
    different value for one of them is an error rather than a silent override.
    """
    loop_defaults = {f.name: f.default for f in dataclasses.fields(LoopOptions)}
    arch_defaults = arch_options(model)  # also rejects an unknown model
    loop: dict[str, Any] = {}
    arch: dict[str, Any] = {}
    for name, raw in (options or {}).items():
        if name in loop_defaults:
            loop[name] = _parse_value(name, loop_defaults[name], raw)
        elif name in arch_defaults:
            arch[name] = _parse_value(name, arch_defaults[name], raw)
            if isinstance(arch[name], int) and arch[name] <= 0:
                raise InvalidArgument(f"options.{name}", f"must be > 0, got {arch[name]}")
        else:
            known = ", ".join(sorted([*loop_defaults, *arch_defaults]))
            raise InvalidArgument(f"options.{name}",
                                  f"not an option of {model} training; known: {known}")
    for name, value in (fixed or {}).items():
        if name in arch and arch[name] != value:
            raise InvalidArgument(f"options.{name}",
                                  f"is {value} for this dataset, cannot be {arch[name]}")
        if name in arch_defaults:
            arch[name] = value
    return LoopOptions(**{**RECIPES.get(model, {}), **loop}).validate(), arch_options(model, arch)


@dataclass
class RunSpec:
    """Everything StartTraining asks for. steps is the run's total (a resumed run stops
    at the same step a straight run would); seconds limits this invocation's wall time."""

    run_id: str = ""  # empty: a new id
    dataset_id: str = ""  # may be empty when resuming
    model: str = ""  # empty: DEFAULT_MODEL for a new run, the saved one for a resumed run
    steps: int = 0
    seconds: float = 0.0
    seed: int = 0
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> RunSpec:
        check_identifier(self.run_id, "run_id")
        check_identifier(self.dataset_id, "dataset_id")
        if self.steps < 0 or self.seconds < 0:
            raise InvalidArgument("budget", "steps and seconds cannot be negative")
        if self.steps == 0 and self.seconds == 0:
            raise InvalidArgument("budget", "set steps or seconds (or both) above 0")
        if self.checkpoint_every <= 0:
            raise InvalidArgument("checkpoint_every", f"must be > 0, got {self.checkpoint_every}")
        arch_options(self.model)  # unknown model -> InvalidArgument("model")
        return self

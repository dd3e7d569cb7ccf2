"""What a training run is: its budget, its loop knobs and its network's options, validated.

Requests carry options as a flat name -> string map (gRPC, CLI); parse_options splits
them into the loop's knobs (LoopOptions) and the architecture's (models.arch_options),
rejecting names neither knows, so a typo never silently trains with a default.

Every number a request can set has a range in RANGES, checked before anything is
allocated (NaN is in no range, so it is refused too); the README's table of them is
option_ranges_markdown()'s output, and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from socialgan.errors import InvalidArgument
from socialgan.model_names import DEFAULT_MODEL  # noqa: F401 - the trainer's names live here
from socialgan.models import RECIPES, arch_options
from socialgan.text import CAPTION_MODEL
from socialgan.validation import check_identifier

LOSSES = ("bce", "hinge")
AUGMENTS = ("color", "translation", "cutout")
DEFAULT_CHECKPOINT_EVERY = 500
MAX_SEED = 2**63 - 1  # the proto's int64; torch and numpy seed generators accept it


@dataclass(frozen=True)
class Range:
    """A closed interval unless an end is marked open. NaN fails every comparison, so
    it is never inside one."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        return (("(" if self.low_open else "[") + f"{self.low}, {self.high}"
                + (")" if self.high_open else "]"))


# Bounds of every numeric option and request field, by name. They stop requests that
# cannot train (lr=inf, nc=4) or would try to allocate far more than any machine has
# (ngf=10000000); MAX_NETWORK_PARAMETERS below bounds the combination of widths and size.
RANGES: dict[str, Range] = {
    # the request (RunSpec)
    "steps": Range(0, 10**9),
    "seconds": Range(0, 30 * 86_400),
    "seed": Range(0, MAX_SEED),
    "checkpoint_every": Range(1, 10**9),
    # the loop (LoopOptions)
    "batch_size": Range(1, 4096),
    "lr": Range(0, 1, low_open=True),
    "beta1": Range(0, 1, high_open=True),
    "beta2": Range(0, 1, high_open=True),
    "sample_count": Range(1, 64),
    "sample_seed": Range(0, MAX_SEED),
    "log_every": Range(1, 10**6),
    "keep_checkpoints": Range(1, 100),
    "metric_images": Range(1, 10_000),
    "checkpoint_metric_images": Range(0, 10_000),
    "ema_decay": Range(0, 1, high_open=True),
    # the networks (models.ARCHITECTURES defaults); which values a model accepts
    # within these (image sizes, aspects) it checks itself
    "nz": Range(1, 1024),
    "ngf": Range(1, 1024),
    "ndf": Range(1, 1024),
    "nc": Range(3, 3),
    "image_size": Range(8, 1024),
    "aspect": Range(1, 3),
    "base_size": Range(8, 32),
    "z_channels": Range(1, 256),
}
# Per network (G, and D): 1 GB of float32 weights, 4 GB with gradients and Adam's moments.
MAX_NETWORK_PARAMETERS = 250_000_000
_RANGE_NOTES = {"steps": "`budget.steps`; 0: no step limit (then seconds must be set)",
                "seconds": "`budget.seconds`; 0: no time limit (then steps must be set)",
                "checkpoint_metric_images": "0: no SWD at checkpoints",
                "ema_decay": "0: no EMA generator", "nc": "datasets hold RGB images",
                "image_size": "set by the dataset", "aspect": "set by the dataset",
                "ngf": f"and G at most {MAX_NETWORK_PARAMETERS:,} parameters",
                "ndf": f"and D at most {MAX_NETWORK_PARAMETERS:,} parameters"}


def check_range(name: str, value: float, field_prefix: str = "options.") -> None:
    """InvalidArgument naming the field and its range when value is outside it."""
    if value not in RANGES[name]:
        raise InvalidArgument(f"{field_prefix}{name}", f"must be in {RANGES[name]}, "
                              f"got {str(value)[:100]}")


def option_ranges_markdown() -> str:
    """The README's table of option ranges (tests/test_training_options.py compares)."""
    rows = ["| option or request field | range | note |", "|---|---|---|"]
    rows += [f"| `{name}` | {bounds} | {_RANGE_NOTES.get(name, '')} |"
             for name, bounds in RANGES.items()]
    return "\n".join(rows)


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
        for option in dataclasses.fields(self):
            if option.name in RANGES:
                check_range(option.name, getattr(self, option.name))
        if self.loss not in LOSSES:
            raise InvalidArgument("options.loss", f"{self.loss!r} is not one of {LOSSES}")
        unknown = set(self.augment_policies) - set(AUGMENTS)
        if unknown:
            raise InvalidArgument("options.augment", f"unknown {sorted(unknown)}; known: "
                                  + ", ".join(AUGMENTS))
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
            if name in RANGES:  # words (upsample) are checked by models.arch_options
                check_range(name, arch[name])
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
        check_range("steps", self.steps, "budget.")
        check_range("seconds", self.seconds, "budget.")
        if self.steps == 0 and self.seconds == 0:
            raise InvalidArgument("budget", "set steps or seconds (or both) above 0")
        check_range("seed", self.seed, "")
        check_range("checkpoint_every", self.checkpoint_every, "")
        if self.model != CAPTION_MODEL:  # a text model checks its own options
            arch_options(self.model)  # unknown model -> InvalidArgument("model")
        return self

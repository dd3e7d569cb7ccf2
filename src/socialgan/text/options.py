"""A caption-lm training request, checked before anything trains: the options (named
fields with ranges, as the GAN's are), the dataset, and that its kept images' posts hold
enough text to learn from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.filtering import read_manifest
from socialgan.storage import ObjectStore, keys
from socialgan.text import CAPTION_MODEL
from socialgan.training.config import Range, RunSpec, _parse_value
from socialgan.training.plan import RunPlan

MIN_CAPTIONS = 2  # one to learn from, one to measure on


@dataclass(frozen=True)
class CaptionOptions:
    """Every knob of a caption-lm run; StartTraining's options map sets them by name."""

    # the network (model.ModelConfig)
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1
    # the loop: AdamW, linear warm-up, then cosine decay to lr/10 when steps are set
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    log_every: int = 50
    keep_checkpoints: int = 2
    # the data: captions held out to measure perplexity on; characters rarer than
    # min_char_count share one unknown token
    val_fraction: float = 0.1
    min_char_count: int = 2
    # the memorisation check and the card's example lines: this many lines sampled
    sample_lines: int = 50
    temperature: float = 0.8
    top_k: int = 0  # 0: sample from every character

    def validate(self) -> CaptionOptions:
        for name, bounds in RANGES.items():
            value = getattr(self, name)
            if value not in bounds:
                raise InvalidArgument(f"options.{name}", f"must be in {bounds}, got "
                                      f"{str(value)[:40]}")
        if self.n_embd % self.n_head:
            raise InvalidArgument("options.n_embd", f"{self.n_embd} is not a multiple of "
                                  f"n_head ({self.n_head})")
        return self


RANGES: dict[str, Range] = {
    "block_size": Range(8, 1024), "n_layer": Range(1, 24), "n_head": Range(1, 32),
    "n_embd": Range(8, 2048), "dropout": Range(0, 1, high_open=True),
    "batch_size": Range(1, 4096), "lr": Range(0, 1, low_open=True),
    "weight_decay": Range(0, 1), "warmup_steps": Range(0, 10**6),
    "grad_clip": Range(0, 100), "log_every": Range(1, 10**6), "keep_checkpoints": Range(1, 100),
    "val_fraction": Range(0, 0.5, low_open=True), "min_char_count": Range(1, 10**6),
    "sample_lines": Range(1, 1000), "temperature": Range(0, 5, low_open=True),
    "top_k": Range(0, 10**6),
}


def parse_caption_options(options: Mapping[str, Any] | None) -> CaptionOptions:
    """CaptionOptions from a request's name -> string map; unknown names are refused."""
    defaults = {f.name: f.default for f in dataclasses.fields(CaptionOptions)}
    given = {}
    for name, raw in (options or {}).items():
        if name not in defaults:
            raise InvalidArgument(f"options.{name}", f"not an option of {CAPTION_MODEL} "
                                  "training; known: " + ", ".join(sorted(defaults)))
        given[name] = _parse_value(name, defaults[name], raw)
    return CaptionOptions(**given).validate()


def prepare_caption_run(store: ObjectStore, spec: RunSpec, resume_step: int | None) -> RunPlan:
    """prepare_run for a caption model: spec (run_id, dataset_id filled in) checked, its
    options parsed, and FailedPrecondition when the dataset's posts hold too few captions."""
    from socialgan.text.captions import collect_captions

    if resume_step is not None:
        # The seed splits the captions and draws the batches: a resumed run keeps its own
        # (a request cannot tell seed 0 from no seed).
        spec.seed = int(store.get_json(keys.run_options_key(spec.run_id))["seed"])
    spec.validate()
    manifest = read_manifest(store, spec.dataset_id)
    options = parse_caption_options(spec.options)
    captions = collect_captions(store, spec.dataset_id)
    if len(captions) < MIN_CAPTIONS:
        raise FailedPrecondition(
            f"dataset_id: the kept images of {spec.dataset_id!r} come with {len(captions)} "
            f"usable captions; {CAPTION_MODEL} needs at least {MIN_CAPTIONS} (scrape a source "
            "that records captions or alt text)")
    # loop is the GAN loop's and unused here; the caption options travel as arch_options.
    from socialgan.training.config import LoopOptions

    return RunPlan(spec, LoopOptions(), dataclasses.asdict(options), manifest, resume_step)

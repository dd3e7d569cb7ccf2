"""The caption of a post: the hashtag, how the picture was made and how good the model measured,
kept within Instagram's limits (the strictest of the targets).

    #sunset, dreamed up by a GAN.
    Method: DCGAN (PyTorch tutorial), 64x64, 300 steps
    Metrics: SWD 12.3 · MS-SSIM 0.214
    Model: sunset-20261122-101500-ab12 · seed 7
    Made with SocialGAN
    #gan #generativeart
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from socialgan.errors import InvalidArgument
from socialgan.validation import normalize_hashtag

MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30
_HASHTAG_IN_TEXT = re.compile(r"(?<![\w#])#\w+")

# How the metrics registry's names read in a caption; others are shown as given.
_METRIC_LABELS = {
    "swd": "SWD", "fid": "FID", "kid": "KID", "ms_ssim": "MS-SSIM", "is": "IS",
    "nn_distance": "NN distance", "precision": "precision", "recall": "recall",
    "density": "density", "coverage": "coverage",
}


@dataclass(frozen=True)
class CaptionInputs:
    hashtag: str
    method: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    model_id: str = ""
    seed: int | None = None
    extra_hashtags: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"hashtag": self.hashtag, "method": self.method, "metrics": dict(self.metrics),
                "model_id": self.model_id, "seed": self.seed,
                "extra_hashtags": list(self.extra_hashtags)}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _metric(name: str, value: float) -> str:
    label = _METRIC_LABELS.get(name.lower(), _one_line(name))
    shown = f"{value:.3g}" if math.isfinite(value) else "n/a"
    return f"{label} {shown}"


def count_hashtags(text: str) -> int:
    return len(_HASHTAG_IN_TEXT.findall(text))


def check_caption(text: str, field_name: str = "caption") -> str:
    """Return text if it fits Instagram's limits, else raise InvalidArgument."""
    if len(text) > MAX_CAPTION_CHARS:
        raise InvalidArgument(field_name, f"is {len(text)} characters; at most "
                              f"{MAX_CAPTION_CHARS} are allowed")
    tags = count_hashtags(text)
    if tags > MAX_HASHTAGS:
        raise InvalidArgument(field_name, f"holds {tags} hashtags; at most {MAX_HASHTAGS} "
                              "are allowed")
    return text


def build_caption(inputs: CaptionInputs) -> str:
    """The caption text for inputs; raises InvalidArgument naming the field at fault."""
    tag = normalize_hashtag(inputs.hashtag, "caption.hashtag")
    extras: list[str] = []
    for raw in inputs.extra_hashtags:
        extra = normalize_hashtag(raw, "caption.extra_hashtags")
        if extra != tag and extra not in extras:
            extras.append(extra)
    if 1 + len(extras) > MAX_HASHTAGS:
        raise InvalidArgument("caption.extra_hashtags",
                              f"{1 + len(extras)} hashtags in all; at most {MAX_HASHTAGS}")
    lines = [f"#{tag}, dreamed up by a GAN.",
             f"Method: {_one_line(inputs.method) or 'not recorded'}"]
    metrics = [_metric(k, float(v)) for k, v in sorted(inputs.metrics.items())]
    lines.append("Metrics: " + (" · ".join(metrics) if metrics else "none recorded"))
    if inputs.model_id:
        seed = f" · seed {inputs.seed}" if inputs.seed is not None else ""
        lines.append(f"Model: {_one_line(inputs.model_id)}{seed}")
    lines.append("Made with SocialGAN")
    if extras:
        lines.append(" ".join(f"#{e}" for e in extras))
    return check_caption("\n".join(lines))

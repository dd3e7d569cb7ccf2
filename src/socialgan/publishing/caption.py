"""The caption of a post: the hashtag, how the picture was made and how good the model measured,
fitted to each platform's limits (characters or graphemes, hashtags).

    #sunset, dreamed up by a GAN.
    Method: DCGAN (PyTorch tutorial), 64x64, 300 steps
    Metrics: SWD 12.3 · diversity 0.874
    Model: sunset-20261122-101500-ab12 · seed 7
    Made with SocialGAN
    #gan #generativeart
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from socialgan.errors import InvalidArgument
from socialgan.validation import normalize_hashtag

MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30
_HASHTAG_IN_TEXT = re.compile(r"(?<![\w#])#\w+")

# The quality metrics a reader can judge a model by, in the order shown, and how their names
# read. The GAN's losses (loss_d, loss_g) and per-scale parts (swd_16) say nothing to a
# reader and are left out.
_METRIC_LABELS = {
    "swd": "SWD", "fid": "FID", "kid": "KID", "diversity": "diversity", "ms_ssim": "MS-SSIM",
    "is": "IS", "precision": "precision", "recall": "recall", "density": "density",
    "coverage": "coverage",
}


@dataclass(frozen=True)
class CaptionInputs:
    hashtag: str
    method: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    model_id: str = ""
    seed: int | None = None
    extra_hashtags: tuple[str, ...] = ()
    generated_text: str = ""  # caption mode "generated": the caption model's line
    choice_line: str = ""  # how the hashtag was chosen: "Chosen by 14 votes."
    invitation: str = ""  # "Reply with a hashtag to choose the next run."

    def as_dict(self) -> dict:
        return {"hashtag": self.hashtag, "method": self.method, "metrics": dict(self.metrics),
                "model_id": self.model_id, "seed": self.seed,
                "extra_hashtags": list(self.extra_hashtags),
                "generated_text": self.generated_text, "choice_line": self.choice_line,
                "invitation": self.invitation}


def generated_line(inputs: CaptionInputs) -> str:
    """The caption model's line as one line, or "" when there is none or it fails a safety
    check: text that arrives in a request is checked again whoever wrote it."""
    from socialgan.text.safety import caption_problems  # no torch: the publisher runs it

    line = _one_line(inputs.generated_text)
    return line if line and not caption_problems(line) else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _metric(name: str, value: float) -> str:
    label = _METRIC_LABELS[name.lower()]
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


def _shown_metrics(metrics: Mapping[str, float]) -> list[str]:
    by_name = {k.lower(): float(v) for k, v in metrics.items()}
    return [_metric(name, by_name[name]) for name in _METRIC_LABELS if name in by_name]


def _tags(inputs: CaptionInputs) -> tuple[str, list[str]]:
    tag = normalize_hashtag(inputs.hashtag, "caption.hashtag")
    extras: list[str] = []
    for raw in inputs.extra_hashtags:
        extra = normalize_hashtag(raw, "caption.extra_hashtags")
        if extra != tag and extra not in extras:
            extras.append(extra)
    return tag, extras


def fit_caption(inputs: CaptionInputs, *, max_chars: int = MAX_CAPTION_CHARS,
                max_hashtags: int = MAX_HASHTAGS, length: Callable[[str], int] = len,
                platform: str = "caption") -> str:
    """The caption for inputs within a platform's limits: extra hashtags beyond
    max_hashtags are left out, then the optional lines (model, credit, metrics) until the
    text fits; the hashtag and the method line always stay (the method is shortened last).
    length: how the platform counts (characters, graphemes). InvalidArgument naming the
    field when even the shortest form does not fit."""
    tag, extras = _tags(inputs)
    extras = extras[:max(0, max_hashtags - 1)]
    method = _one_line(inputs.method) or "not recorded"
    metrics = _shown_metrics(inputs.metrics)
    model = ""
    if inputs.model_id:
        seed = f" · seed {inputs.seed}" if inputs.seed is not None else ""
        model = f"Model: {_one_line(inputs.model_id)}{seed}"

    lead = generated_line(inputs)
    chosen = _one_line(inputs.choice_line).replace("#", "")
    invitation = _one_line(inputs.invitation).replace("#", "")

    def text(method: str, metrics: list[str], model: str, credit: bool,
             extras: list[str], lead: str = lead, optional: bool = False) -> str:
        lines = [lead] if lead else []
        lines += [f"#{tag}, dreamed up by a GAN."]
        lines += [chosen] if chosen and optional else []
        lines += [f"Method: {method}",
                  "Metrics: " + (" · ".join(metrics) if metrics else "none recorded")]
        lines += [model] if model else []
        lines += ["Made with SocialGAN"] if credit else []
        lines += [invitation] if invitation and optional else []
        lines += [" ".join(f"#{e}" for e in extras)] if extras else []
        return "\n".join(lines)

    # Shorter and shorter forms; the first that fits is the caption.
    forms = [text(method, metrics, model, True, extras, optional=True),
             text(method, metrics, model, False, extras, optional=True),
             text(method, metrics, model, True, extras),
             text(method, metrics, model, False, extras),
             text(method, metrics, "", False, extras),
             text(method, metrics, "", False, []),
             text(method, metrics[:1], "", False, []),
             # Too long with the caption model's line: the template alone.
             text(method, metrics, model, True, extras, ""),
             text(method, metrics, "", False, [], ""),
             text(method, metrics[:1], "", False, [], "")]
    for form in forms:
        if length(form) <= max_chars:
            return form
    shortest = text("", metrics[:1], "", False, [], "")
    room = max_chars - length(shortest) - 1
    if room >= 8:
        # room counts in the platform's units; a character may weigh more (X: CJK counts 2)
        cut = method[:room - 1]
        while cut and length(text(cut + "…", metrics[:1], "", False, [], "")) > max_chars:
            cut = cut[:-1]
        if cut:
            return text(cut + "…", metrics[:1], "", False, [], "")
    raise InvalidArgument("caption.hashtag", f"#{tag} leaves no room for the method line "
                          f"within {platform}'s {max_chars}")


def build_caption(inputs: CaptionInputs) -> str:
    """The caption text for inputs (the gallery's, within Instagram's character limit);
    raises InvalidArgument naming the field at fault."""
    _, extras = _tags(inputs)
    if 1 + len(extras) > MAX_HASHTAGS:
        raise InvalidArgument("caption.extra_hashtags",
                              f"{1 + len(extras)} hashtags in all; at most {MAX_HASHTAGS}")
    return check_caption(fit_caption(inputs))

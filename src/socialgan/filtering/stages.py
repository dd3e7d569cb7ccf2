"""The per-image stages of the filter and the set stages' thresholds.

Every raw image goes through STAGES in order; the first stage that returns a Drop decides
why the image was left out. A stage is a named function of one Candidate and the run's
FilterContext, with its thresholds declared next to it. SET_STAGES need the whole set
(dataset.py runs them after the per-image stages).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from PIL import Image

from socialgan.errors import InvalidArgument, quote
from socialgan.filtering import outliers, people, quality, set_scores, text_detector
from socialgan.images import BadImage, decode_rgb


@dataclass
class Candidate:
    """One raw image on its way through the stages; stages fill in what they learn."""

    key: str
    image_id: str  # the raw key's sha256 stem
    data: bytes
    image: Image.Image | None = None
    small: Image.Image | None = None  # at most quality.ANALYSIS_SIDE px, for the measures
    scores: dict[str, float] = field(default_factory=dict)
    content_hashes: tuple[str, str] | None = None  # file and pixel sha256


@dataclass(frozen=True)
class Drop:
    reason: str  # short machine-readable tag, the key of the report's counts
    detail: str = ""
    score: float = 0.0  # the measure that decided, in the threshold's units
    threshold: float | None = None


@dataclass
class FilterContext:
    """What stages share during one filter run: the thresholds and what was seen so far."""

    thresholds: dict[str, float]
    width: int = 64
    height: int = 64
    seen_file_sha: set[str] = field(default_factory=set)
    seen_pixel_sha: set[str] = field(default_factory=set)
    text: text_detector.TextDetector | None = None
    nsfw: people.NsfwDetector | None = None
    people_topic: bool = False  # the hashtag is about people: faces are kept


@dataclass(frozen=True)
class Stage:
    name: str
    check: Callable[[Candidate, FilterContext], Drop | None]
    thresholds: Mapping[str, float] = field(default_factory=dict)  # name -> default
    optional: bool = False  # off unless asked for (extra_stages)
    model: bool = False  # runs a neural network: left out of the "fast stages" figure


def _decode(cand: Candidate, ctx: FilterContext) -> Drop | None:
    try:
        cand.image = decode_rgb(cand.data)
    except BadImage as exc:
        return Drop(exc.reason, str(exc))
    except Exception as exc:  # Pillow has more ways to fail than it documents
        return Drop("undecodable", f"{type(exc).__name__}: {exc}")
    cand.scores["width"], cand.scores["height"] = cand.image.size
    return None


def _unfit(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    t = ctx.thresholds
    w, h = cand.image.size
    side = min(w, h)
    if side < t["min_side"]:
        return Drop("too_small", f"shorter side {side}px < min_side {t['min_side']:g}",
                    side, t["min_side"])
    target = ctx.width / ctx.height
    mismatch = max((w / h) / target, target / (w / h))
    cand.scores["aspect_mismatch"] = round(mismatch, 3)
    if mismatch > t["max_aspect_mismatch"]:
        return Drop("extreme_aspect", f"{w}x{h} is {mismatch:.1f}x off the target "
                    f"{ctx.width}:{ctx.height}", mismatch, t["max_aspect_mismatch"])
    crop_height = min(h, w / target)  # the part of the image the crop keeps
    upscale = ctx.height / crop_height
    cand.scores["upscale"] = round(upscale, 3)
    if upscale > t["max_upscale"]:
        return Drop("too_small", f"{w}x{h} needs {upscale:.1f}x upscaling for "
                    f"{ctx.width}x{ctx.height}", upscale, t["max_upscale"])
    return None


def content_hashes(cand: Candidate) -> tuple[str, str]:
    # Raw keys are already content-addressed by file bytes; hashing the decoded pixels
    # as well catches the same picture stored in another container or with other metadata.
    assert cand.image is not None
    return (hashlib.sha256(cand.data).hexdigest(),
            hashlib.sha256(repr(cand.image.size).encode() + cand.image.tobytes()).hexdigest())


def exact_duplicate(cand: Candidate, ctx: FilterContext) -> Drop | None:
    """The first of identical pictures (in raw key order) is kept; decided in that order."""
    file_sha, pixels = cand.content_hashes or content_hashes(cand)
    if file_sha in ctx.seen_file_sha or pixels in ctx.seen_pixel_sha:
        return Drop("duplicate", "same pixels as an image kept earlier")
    ctx.seen_file_sha.add(file_sha)
    ctx.seen_pixel_sha.add(pixels)
    return None


def _low_quality(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    cand.small = quality.small_copy(cand.image)
    m = quality.measure_quality(cand.small)
    cand.scores.update(m.as_scores())
    t = ctx.thresholds
    if m.entropy < t["min_entropy"] or m.contrast < t["min_contrast"]:
        return Drop("flat", f"entropy {m.entropy:.2f} bits, contrast {m.contrast:.1f}",
                    m.entropy, t["min_entropy"])
    # Over-exposure: much of the picture clipped white AND the rest washed out too. Only
    # photos are over-exposed: clipart (flags, emoji on white) has flat colour fields where
    # a photo has texture, and is left to the other stages.
    if m.clipped_bright > t["max_clipped_bright"] and \
            m.rest_luma >= t["overexposed_rest_luma"] and m.rest_flat < 0.5:
        return Drop("overexposed", f"{m.clipped_bright:.0%} of the pixels are clipped white",
                    m.clipped_bright, t["max_clipped_bright"])
    if m.blown_colour > t["max_blown_colour"] and m.rest_flat < 0.5:
        return Drop("overexposed", f"{m.blown_colour:.0%} of the pixels have a colour channel "
                    "clipped", m.blown_colour, t["max_blown_colour"])
    if m.clipped_dark > t["max_clipped_dark"]:
        return Drop("underexposed", f"{m.clipped_dark:.0%} of the pixels are clipped black",
                    m.clipped_dark, t["max_clipped_dark"])
    if m.sharpness < t["min_sharpness"]:
        return Drop("blurry", f"crispest edges {m.sharpness:.1f} (|Laplacian|, 99.5th pct)",
                    m.sharpness,
                    t["min_sharpness"])
    return None


def _text_heavy(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    if ctx.text is None or min(cand.image.size) < text_detector.MIN_SIDE:
        return None  # text in a thumbnail is no text anyone reads
    # The detector looks at DETECT_SIDE px: the small copy the later stages need anyway
    # is a cheaper start than the full image.
    cand.small = cand.small or quality.small_copy(cand.image)
    fraction = ctx.text.text_fraction(cand.small)
    cand.scores["text_fraction"] = round(fraction, 4)
    if fraction > ctx.thresholds["max_text_fraction"]:
        return Drop("text_heavy", f"{fraction:.1%} of the image is text", fraction,
                    ctx.thresholds["max_text_fraction"])
    return None


def _faces(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None
    if ctx.people_topic:
        return None
    small = cand.small or quality.small_copy(cand.image)
    cand.small = small
    cand.scores["flat_share"] = round(outliers.flat_share(small), 4)
    if cand.scores["flat_share"] > set_scores.CLIPART_FLAT_SHARE:
        return None  # a drawn face (emoji, cartoon) is clipart, the other stages' business
    fraction = people.face_fraction(small)
    cand.scores["face_fraction"] = round(fraction, 4)
    if fraction > 0 and fraction >= ctx.thresholds["min_face_fraction"]:
        return Drop("face", f"a portrait: a face covers {fraction:.1%}", fraction,
                    ctx.thresholds["min_face_fraction"])
    return None


def _nsfw(cand: Candidate, ctx: FilterContext) -> Drop | None:
    assert cand.image is not None and ctx.nsfw is not None
    score = ctx.nsfw.score(cand.small or cand.image)
    cand.scores["nsfw"] = round(score, 4)
    if score >= ctx.thresholds["nsfw_min_score"]:
        return Drop("nsfw", f"nudity detected with confidence {score:.2f}", score,
                    ctx.thresholds["nsfw_min_score"])
    return None


STAGES: list[Stage] = [
    Stage("decode", _decode),
    # An image must cover the target without more than max_upscale enlargement, and its
    # aspect must be within max_aspect_mismatch of the target's (a 1:1 photo still makes
    # a 3:1 banner crop; a 6:1 strip makes no square one).
    Stage("unfit", _unfit, {"min_side": 0.0, "max_upscale": 2.0, "max_aspect_mismatch": 3.0}),
    Stage("exact_duplicates", exact_duplicate),
    # 0.04 (was 0.05): the tuning mix's meme caption covers 4.8%; no photo there or in the
    # #nature mix shows any.
    Stage("text", _text_heavy, {"max_text_fraction": 0.04}, model=True),
    Stage("quality", _low_quality, {"min_entropy": 1.0, "min_contrast": 6.0,
                                    "max_clipped_bright": 0.25, "max_blown_colour": 0.75,
                                    "overexposed_rest_luma": 231.0, "max_clipped_dark": 0.5,
                                    "min_sharpness": 7.0}),
    # On by default: portraits and selfies are spam under most hashtags; a hashtag of
    # FILTER_PEOPLE_HASHTAGS keeps them.
    Stage("faces", _faces, {"min_face_fraction": 0.01}),
    Stage("nsfw", _nsfw, {"nsfw_min_score": 0.75}, optional=True, model=True),
]
# Stages that need the whole set of survivors; their thresholds live here.
SET_STAGES: dict[str, dict[str, float]] = {
    # Hamming distance of 64-bit DCT hashes; different pictures are ~32 apart, the
    # evaluation mix's copies (re-encoded, resized, 4% cropped) 0-2.
    "near_duplicates": {"max_hash_distance": 6.0},
    # Rendered graphics among photos (synthetic.py): robust z, over the set, of the distance
    # to the set over the distance to a bank of renders. Chosen on the tuning mix
    # (eval_mixes.build_tuning_mix) and the #nature mix: their photos stay under 1.8 and
    # 2.0, 3 of the 10 tuning wallpapers (and 2 of the 3 #nature ones) lie above.
    "renders": {"max_render_z": 2.0},
    # Robust z-score of the distance to the set (or the examples); at most this share dropped.
    # meaning_z: the same in the photo CNN's features alone (when nudenet is installed);
    # photo sets only (it was trained on photos). The tuning mix's photos stay under 1.7,
    # 3 of its 6 photos of other subjects lie above.
    "outliers": {"outlier_z": 2.75, "meaning_z": 1.75, "max_outlier_share": 0.3},
}
# Stages whose drops still belong to the population the set stages measure against, so
# that switching one on or off (faces for a people hashtag) does not move the others'
# scores. Broken, blurry and text images are left out of it: they are junk for any topic
# and would only widen the spread the outlier scores are measured in.
POPULATION_STAGES = ("faces", "nsfw")
OPTIONAL_STAGES = [s.name for s in STAGES if s.optional]
SKIPPABLE_STAGES = [s.name for s in STAGES if not s.optional and s.name != "decode"] + \
    list(SET_STAGES)


def default_thresholds() -> dict[str, float]:
    values = {name: value for stage in STAGES for name, value in stage.thresholds.items()}
    for limits in SET_STAGES.values():
        values.update(limits)
    return values


def check_thresholds(given: Mapping[str, float] | None) -> dict[str, float]:
    thresholds = default_thresholds()
    for name, value in (given or {}).items():
        if name not in thresholds:
            known = ", ".join(sorted(thresholds)) or "none"
            raise InvalidArgument(f"thresholds.{name}", f"unknown threshold; known: {known}")
        try:
            thresholds[name] = float(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"thresholds.{name}", f"{quote(value)} is not a number") from None
        if not math.isfinite(thresholds[name]):  # NaN compares false: every image would pass
            raise InvalidArgument(f"thresholds.{name}", f"must be a finite number, not {value}")
    return thresholds

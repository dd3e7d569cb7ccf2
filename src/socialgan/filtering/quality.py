"""Per-image measures of technical quality, all on a small grey copy so they cost ~1 ms.

Every measure is a plain number a person can read in the report: sharpness is the
variance of the Laplacian (how much fine detail survives), exposure the luminance
percentiles, information the grey-level entropy in bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 256  # longest side of the copy the measures look at


def small_copy(img: Image.Image, side: int = ANALYSIS_SIDE) -> Image.Image:
    """A copy whose longer side is at most `side`, made with a box filter (fast, no ringing)."""
    w, h = img.size
    scale = side / max(w, h)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float32)


def laplacian_variance(g: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low when edges are smeared (blur)."""
    if min(g.shape) < 3:
        return 0.0
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]) - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def edge_sharpness(g: np.ndarray) -> float:
    """99.5th percentile of |Laplacian|: the crispest edges anywhere in the picture.

    A photo with a sharp subject on a soft background keeps its crisp edges; a blurred
    photo has none. (The variance would call a bokeh background blurry.)
    """
    if min(g.shape) < 3:
        return 0.0
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]) - 4 * g[1:-1, 1:-1]
    flat = np.abs(lap).ravel()
    k = min(flat.size - 1, int(flat.size * 0.995))
    return float(np.partition(flat, k)[k])  # the 99.5th percentile, without a full sort


def entropy_bits(g: np.ndarray) -> float:
    hist = np.bincount(g.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


@dataclass(frozen=True)
class QualityMeasures:
    sharpness: float  # edge_sharpness of the small grey copy
    mean_luma: float
    clipped_bright: float  # share of pixels at or near white
    blown_colour: float  # share of pixels with a colour channel clipped but not white
    clipped_dark: float  # share of pixels at or near black
    rest_luma: float  # median luma of the pixels that are not clipped white
    rest_flat: float  # share of the unclipped pixels in perfectly flat areas (clipart: high)
    entropy: float  # bits of the grey histogram: low for flat, posterised images
    contrast: float  # standard deviation of grey

    def as_scores(self) -> dict[str, float]:
        return {"sharpness": round(self.sharpness, 2), "mean_luma": round(self.mean_luma, 1),
                "clipped_bright": round(self.clipped_bright, 3),
                "clipped_dark": round(self.clipped_dark, 3),
                "blown_colour": round(self.blown_colour, 3),
                "entropy": round(self.entropy, 3), "contrast": round(self.contrast, 2)}


def _rest_flat(g: np.ndarray, clipped: np.ndarray) -> float:
    if min(g.shape) < 2:
        return 1.0
    flat = (np.abs(np.diff(g, axis=1))[:-1, :] < 0.5) & (np.abs(np.diff(g, axis=0))[:, :-1] < 0.5)
    rest = ~clipped[:-1, :-1]
    return float(flat[rest].mean()) if rest.any() else 1.0


def blown_colour_share(small: Image.Image, clipped_white: np.ndarray) -> float:
    """Share of pixels where some channel is saturated (>= 250) but the pixel is not white.

    A bright, saturated subject over-exposed by a stop or two clips its red or yellow
    channels over most of the frame while its luma stays mid-grey, so the white-clipping
    measure misses it; well-exposed photos keep such pixels to their highlights.
    """
    rgb = np.asarray(small.convert("RGB"))
    return float(((rgb.max(axis=2) >= 250) & ~clipped_white).mean())


def measure_quality(small: Image.Image) -> QualityMeasures:
    g = grey(small)
    clipped = g >= 248
    return QualityMeasures(
        sharpness=edge_sharpness(g), mean_luma=float(g.mean()),
        clipped_bright=float(clipped.mean()), blown_colour=blown_colour_share(small, clipped),
        clipped_dark=float((g <= 8).mean()),
        rest_luma=float(np.median(g[~clipped])) if (~clipped).any() else 255.0,
        rest_flat=_rest_flat(g, clipped),
        entropy=entropy_bits(g), contrast=float(g.std()))

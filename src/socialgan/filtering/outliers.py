"""Off-topic outliers: an image embedding and a score of how far each image lies from the set.

The handcrafted embedding needs no weights: colour (hue weighted by saturation, saturation,
value), a 4x4 colour layout, edge orientations on a 2x2 grid, a local-binary texture code
and the share of blank background, each block a unit vector (histograms under a square
root, Hellinger), so every block weighs the same in a Euclidean distance. It separates
photos of a subject from clipart, screenshots and other subjects; it is no semantic model.

FILTER_EMBEDDING=photo-cnn adds the features of a CNN that was trained on real photos and
ships in a package: the backbone of nudenet's YOLOv8n detector (up to its SPPF block,
average-pooled over space, 256 numbers). It knows shapes and objects: alone, it ranks
scikit-image's cat, astronaut, coffee cup and rocket above the nature tiles of the
evaluation mix far better than colour statistics do. Added to the handcrafted blocks it
lifts the ranking only a little, so it stays opt-in for this embedding; on its own it is
the set stages' meaning score (set_scores.py), and beside the handcrafted blocks their
render score, so the filter runs it on every image (~4 ms at 192 px). Nothing is
downloaded: the ONNX file is inside the nudenet wheel. FILTER_CLIP_MODEL may point to a
local TorchScript CLIP image encoder (224x224, CLIP's normalisation, one vector per
image), which then replaces both.

The score of an image is its mean distance to its k nearest neighbours, where k is a tenth
of the set: a small clique of spam (eight emoji in a nature tag) is then still measured
against the bulk of the set. With example images the score is the distance to the nearest
examples instead. Scores become robust z-scores (median, MAD), so one threshold fits sets
of any spread.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from socialgan import settings
from socialgan.errors import FailedPrecondition
from socialgan.filtering.onnx_session import cpu_session

EMBED_SIDE = 128
LAYOUT_GRID = 4  # the colour layout: mean colour of each cell of a 4x4 grid
PHOTO_CNN_SIDE = 192  # nudenet trained at 320; 192 keeps the ranking at a third of the cost
PHOTO_CNN_OUTPUT = "/model.9/cv2/act/Mul_output_0"  # end of the backbone (SPPF)
PHOTO_CNN_BLOCKS = 2  # the CNN's vector weighs as much as this many handcrafted blocks
EMBEDDINGS = ("handcrafted", "photo-cnn")
KNN_DIVISOR = 10  # k, the neighbours an image is measured against, is n / this (3-50)
_CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
_CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def _hist(values: np.ndarray, bins: int, lo: float, hi: float,
          weights: np.ndarray | None = None) -> np.ndarray:
    idx = np.clip(((values - lo) * (bins / (hi - lo))).astype(np.int32), 0, bins - 1)
    h = np.bincount(idx.ravel(), weights=None if weights is None else weights.ravel(),
                    minlength=bins)
    total = h.sum()
    return np.sqrt(h / total) if total > 0 else np.zeros(bins)


def colour_layout(img: Image.Image) -> np.ndarray:
    """Where the colours are: each cell's mean colour as (s cos h, s sin h, v), length <= 1.

    Hue is an angle, so it enters as a point on the colour wheel (red 0.99 is next to
    red 0.01). A pink-and-white wallpaper and a green meadow can share colour histograms
    with some photo of the set, but not the place of their colours.
    """
    cells = img.resize((LAYOUT_GRID, LAYOUT_GRID), Image.Resampling.BOX).convert("HSV")
    hsv = np.asarray(cells, dtype=np.float32) / 255.0
    angle, sat, val = hsv[..., 0] * (2 * np.pi), hsv[..., 1], hsv[..., 2]
    vec = np.stack([sat * np.cos(angle), sat * np.sin(angle), val], axis=-1).ravel()
    return vec / np.sqrt(LAYOUT_GRID * LAYOUT_GRID * 2)  # each cell's length is <= sqrt(2)


def handcrafted_embedding(img: Image.Image) -> np.ndarray:
    """A weight-free descriptor of colour, layout, edges and texture (float32, 132 dims)."""
    blocks = handcrafted_blocks(img)
    # Each block has unit norm (or less); scale so the distance is a mean over blocks.
    return (np.concatenate(blocks) / np.sqrt(len(blocks))).astype(np.float32)


def handcrafted_blocks(img: Image.Image) -> list[np.ndarray]:
    """The handcrafted embedding's blocks, each of unit norm or less."""
    small = img.resize((EMBED_SIDE, EMBED_SIDE), Image.Resampling.BOX)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    hue, sat, val = hsv[..., 0].ravel(), hsv[..., 1].ravel(), hsv[..., 2].ravel()
    blank = ((sat < 0.08) & (val > 0.92)) | (val < 0.04)  # white or black background
    blocks = [
        _hist(hue, 16, 0, 1, weights=sat * (1 - blank)),
        _hist(sat, 8, 0, 1),
        _hist(val, 8, 0, 1),
        np.sqrt([blank.mean(), 1 - blank.mean()]),
        colour_layout(small),
    ]
    g = np.asarray(small.convert("L"), dtype=np.float32)
    gx = g[1:-1, 2:] - g[1:-1, :-2]
    gy = g[2:, 1:-1] - g[:-2, 1:-1]
    mag = np.hypot(gx, gy)
    ang = np.arctan2(gy, gx) % np.pi
    half = mag.shape[0] // 2
    for rows in (slice(0, half), slice(half, None)):
        for cols in (slice(0, half), slice(half, None)):
            blocks.append(_hist(ang[rows, cols].ravel(), 8, 0, np.pi,
                                weights=mag[rows, cols].ravel()))
    strong = mag > 20
    blocks.append(np.sqrt([strong.mean(), 1 - strong.mean()]))
    c = g[1:-1, 1:-1]
    code = ((g[:-2, 1:-1] > c + 4).astype(np.int32) | (g[2:, 1:-1] > c + 4) << 1
            | (g[1:-1, :-2] > c + 4) << 2 | (g[1:-1, 2:] > c + 4) << 3)
    blocks.append(_hist(code.ravel(), 16, 0, 16))
    return blocks


class PhotoCnnEncoder:
    """The backbone of nudenet's detector as an image embedding (onnxruntime, CPU).

    The detector's head is cut off with onnx's extractor, so a forward pass costs ~6 ms
    on two cores instead of ~17 ms for the whole detector.
    """

    def __init__(self, path: Path):
        try:
            import onnx
            import onnx.utils
        except ImportError:
            raise FailedPrecondition("FILTER_EMBEDDING=photo-cnn needs onnx and onnxruntime "
                                     "(pip install '.[filter]')") from None
        model = onnx.utils.Extractor(onnx.load(str(path))).extract_model(
            ["images"], [PHOTO_CNN_OUTPUT])
        self.session = cpu_session(model.SerializeToString())

    def __call__(self, img: Image.Image) -> np.ndarray:
        side = PHOTO_CNN_SIDE
        x = np.asarray(img.convert("RGB").resize((side, side), Image.Resampling.BILINEAR),
                       dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
        (features,) = self.session.run([PHOTO_CNN_OUTPUT], {"images": x})
        vec = features.mean(axis=(2, 3))[0]
        return (vec / (np.linalg.norm(vec) + 1e-8)).astype(np.float32)


def photo_cnn_path() -> Path | None:
    """nudenet's detector ONNX inside the installed wheel, or None without it."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "320n.onnx"
    has_onnx = importlib.util.find_spec("onnx") is not None
    return path if path.is_file() and has_onnx else None


@lru_cache(maxsize=1)
def _photo_cnn(path: str) -> PhotoCnnEncoder:
    return PhotoCnnEncoder(Path(path))


def combined_embedding(cnn: PhotoCnnEncoder):
    """Handcrafted blocks and the CNN's unit vector, the CNN weighing PHOTO_CNN_BLOCKS blocks."""
    def embed(img: Image.Image) -> np.ndarray:
        blocks = handcrafted_blocks(img) + [cnn(img) * np.sqrt(PHOTO_CNN_BLOCKS)]
        weight = len(blocks) - 1 + PHOTO_CNN_BLOCKS
        return (np.concatenate(blocks) / np.sqrt(weight)).astype(np.float32)
    return embed


def photo_vectors(img: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(handcrafted, handcrafted+photo-cnn, photo-cnn) vectors of img, each part made once."""
    blocks = handcrafted_blocks(img)
    hand = (np.concatenate(blocks) / np.sqrt(len(blocks))).astype(np.float32)
    cnn = _photo_cnn(str(photo_cnn_path()))(img)
    both = blocks + [cnn * np.sqrt(PHOTO_CNN_BLOCKS)]
    weight = len(both) - 1 + PHOTO_CNN_BLOCKS
    return hand, (np.concatenate(both) / np.sqrt(weight)).astype(np.float32), cnn


class ClipEncoder:
    """A user-supplied TorchScript CLIP image encoder, loaded from a local file only."""

    def __init__(self, path: Path):
        try:
            import torch
        except ImportError:
            raise FailedPrecondition("FILTER_CLIP_MODEL is set but torch is not installed") \
                from None
        if not path.is_file():
            raise FailedPrecondition(f"FILTER_CLIP_MODEL: no file at {path}")
        self.torch = torch
        self.model = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, img: Image.Image) -> np.ndarray:
        rgb = np.asarray(img.resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32)
        x = ((rgb / 255.0 - _CLIP_MEAN) / _CLIP_STD).transpose(2, 0, 1)[None]
        with self.torch.no_grad():
            out = self.model(self.torch.from_numpy(np.ascontiguousarray(x))).float().numpy()
        vec = out.reshape(-1)
        return (vec / (np.linalg.norm(vec) + 1e-8)).astype(np.float32)


@lru_cache(maxsize=2)
def _clip(path: str) -> ClipEncoder:
    return ClipEncoder(Path(path))


def embedder():
    """(name, function image -> vector) for the outlier stage.

    CLIP when FILTER_CLIP_MODEL is set; else FILTER_EMBEDDING: `handcrafted`, or
    `photo-cnn` (handcrafted plus the CNN inside nudenet's wheel).
    """
    path = settings.get("FILTER_CLIP_MODEL")
    if path:
        return "clip:" + Path(path).name, _clip(path)
    choice = (settings.get("FILTER_EMBEDDING") or "handcrafted").strip().lower()
    if choice not in EMBEDDINGS:
        raise FailedPrecondition(f"FILTER_EMBEDDING={choice!r} is not one of "
                                 f"{', '.join(EMBEDDINGS)}")
    if choice == "handcrafted":
        return "handcrafted", handcrafted_embedding
    cnn_path = photo_cnn_path()
    if cnn_path is None:
        raise FailedPrecondition("FILTER_EMBEDDING=photo-cnn needs nudenet and onnx "
                                 "(pip install '.[filter]')")
    return "handcrafted+photo-cnn", combined_embedding(_photo_cnn(str(cnn_path)))


@lru_cache(maxsize=1)
def render_embedder():
    """(name, function) of the embedding the render stage measures in.

    Handcrafted blocks plus the photo CNN when nudenet and onnx are installed (which
    separates renders from photos best on the tuning mix, AUC 0.99 against 0.95 without),
    else the handcrafted blocks alone.
    """
    cnn_path = photo_cnn_path()
    if cnn_path is None:
        return "handcrafted", handcrafted_embedding
    return "handcrafted+photo-cnn", combined_embedding(_photo_cnn(str(cnn_path)))


def flat_share(img: Image.Image) -> float:
    """Share of pixels whose neighbours have exactly their grey level (within 0.5).

    Camera photos have noise and texture everywhere (a few percent at most); clipart,
    emoji, screenshots and rendered gradients are mostly perfectly flat. Scored against
    the set, so a set of clipart does not flag its clipart.
    """
    g = np.asarray(img.resize((EMBED_SIDE, EMBED_SIDE), Image.Resampling.BOX).convert("L"),
                   dtype=np.float32)
    dx = np.abs(np.diff(g, axis=1))[:-1, :]
    dy = np.abs(np.diff(g, axis=0))[:, :-1]
    return float(((dx < 0.5) & (dy < 0.5)).mean())


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """(value - median) / (1.4826 MAD), the spread never below floor."""
    med = np.median(values)
    mad = np.median(np.abs(values - med)) * 1.4826
    return (values - med) / max(mad, floor)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0))


def outlier_scores(vectors: np.ndarray, examples: np.ndarray | None = None,
                   core: np.ndarray | None = None) -> np.ndarray:
    """Robust z-score of each vector's distance to the set (or to the examples).

    core (a boolean mask) names the images the set is measured by: neighbours come
    from it and its median and spread make the z. Without it, every image is core.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros(0)
    core = np.ones(n, bool) if core is None or core.sum() < 5 else core
    if examples is not None and len(examples):
        d = np.sort(_pairwise(vectors, examples), axis=1)
        raw = d[:, : min(3, len(examples))].mean(1)
    else:
        if n < 5:
            return np.zeros(n)  # too few images to call any of them an outlier
        d = _pairwise(vectors, vectors[core])
        d[np.flatnonzero(core), np.arange(int(core.sum()))] = np.inf  # not its own neighbour
        k = max(3, min(50, int(core.sum()) // KNN_DIVISOR))
        raw = np.sort(d, axis=1)[:, :k].mean(1)
    return robust_z_of(raw, raw[core], max(1e-6, 0.05 * float(np.median(raw[core]))))


def robust_z_of(values: np.ndarray, reference: np.ndarray, floor: float) -> np.ndarray:
    """robust_z of values, with the median and spread of reference."""
    med = np.median(reference)
    mad = np.median(np.abs(reference - med)) * 1.4826
    return (values - med) / max(mad, floor)

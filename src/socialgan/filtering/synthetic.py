"""Rendered graphics among photos: each image against the set and against a bank of renders.

Abstract wallpapers, gradients and low-poly art have no camera noise to tell them from a
foggy sky, and when a third of a set is such art it forms a cluster of its own, so "far
from the rest of the set" misses it. Here every image of the set is measured twice in the
same embedding: its mean distance to its K nearest images of the set, and to its K
nearest images of a bank of renders drawn here with seeded randomness (gradients, waves,
low-poly triangles, blurred blobs, flat icons), with no weights or data downloaded. The score is the
ratio: near 0.5 for a photo among photos, near 1 or above for a picture that looks more
like the renders than like the set.

The ratio's scale depends on how varied the set's photos are (0.6 for tiles of a few
photos, 0.75 for many subjects), so the stage drops by its robust z over the set.
The other way round (photos among clipart) is the outlier stage's flat-share test; this
stage only runs on a photographic set, which the caller checks with is_photo_set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

BANK_SIZE = 60
BANK_SIDE = 256
K = 5  # neighbours on each side: the set is searched for its K nearest, the bank too
PHOTO_SET_FLAT_SHARE = 0.3  # photos have < 0.2 perfectly flat pixels, clipart sets > 0.5
RATIO_SPREAD = 0.05  # least spread of the ratio assumed in a set (photo sets: 0.07-0.11)


def _gradient(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    a, b = rng.uniform(0, 255, (2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    if rng.random() < 0.5:  # radial
        cx, cy = rng.uniform(0, 1, 2)
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    return a * (1 - t[..., None]) + b * t[..., None]


def _waves(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    a, b = rng.uniform(0, 255, (2, 3))
    f, g, phase = rng.uniform(1, 4), rng.uniform(0.5, 2), rng.uniform(0, 6)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * (f * xx + 0.5 * np.sin(2 * np.pi * g * yy) + phase))
    return a * (1 - t[..., None]) + b * t[..., None]


def _low_poly(rng: np.random.Generator, side: int) -> np.ndarray:
    img = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(img)
    base = rng.uniform(0, 255, 3)
    points = rng.uniform(-20, side + 20, (40, 2))
    for _ in range(60):
        tri = points[rng.choice(40, 3, replace=False)]
        colour = tuple(int(v) for v in np.clip(base + rng.normal(0, 30, 3), 0, 255))
        draw.polygon([tuple(p) for p in tri.tolist()], fill=colour)
    return np.asarray(img, np.float32)


def _blobs(rng: np.random.Generator, side: int, blur: bool) -> np.ndarray:
    background = tuple(int(v) for v in rng.uniform(0, 255, 3))
    img = Image.new("RGB", (side, side), (255, 255, 255) if not blur else background)
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x, y, r = rng.uniform(0, side, 3)
        r = r / 3 + 20
        draw.ellipse([x - r, y - r, x + r, y + r],
                     fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(2, 20))))
    return np.asarray(img, np.float32)


def render_bank(count: int = BANK_SIZE, side: int = BANK_SIDE) -> list[Image.Image]:
    """The renders, the same every run (seeded): five kinds in turn."""
    rng = np.random.default_rng(20261201)
    yy, xx = np.mgrid[0:side, 0:side] / side
    bank = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            arr = _gradient(rng, xx, yy)
        elif kind == 1:
            arr = _waves(rng, xx, yy)
        elif kind == 2:
            arr = _low_poly(rng, side)
        else:
            arr = _blobs(rng, side, blur=kind == 3)
        bank.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return bank


_BANKS: dict[str, np.ndarray] = {}


def bank_vectors(name: str, embed: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """The bank in an embedding, computed once per embedding (by name) per process."""
    if name not in _BANKS:
        _BANKS[name] = np.stack([embed(img) for img in render_bank()])
    return _BANKS[name]


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0))


def render_ratio(vectors: np.ndarray, bank: np.ndarray,
                 core: np.ndarray | None = None) -> np.ndarray:
    """Each vector's mean distance to its K nearest others (of core) over that to its K
    nearest renders."""
    n = len(vectors)
    core = np.ones(n, bool) if core is None or core.sum() <= K else core
    if n < K + 1:
        return np.zeros(n)  # too few images to say what the set looks like
    d_set = _pairwise(vectors, vectors[core])
    d_set[np.flatnonzero(core), np.arange(int(core.sum()))] = np.inf
    near_set = np.sort(d_set, axis=1)[:, :K].mean(1)
    near_bank = np.sort(_pairwise(vectors, bank), axis=1)[:, :K].mean(1)
    return near_set / np.maximum(near_bank, 1e-6)


def is_photo_set(flat_shares: np.ndarray) -> bool:
    """Whether most of the set are photos (outliers.flat_share of each image)."""
    return len(flat_shares) > K and float(np.median(flat_shares)) < PHOTO_SET_FLAT_SHARE

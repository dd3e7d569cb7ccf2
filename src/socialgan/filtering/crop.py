"""Cropping to the dataset's aspect: the centre, or where the picture's detail is.

Content-aware crop slides the target-aspect window along the axis with room to spare and
keeps the position holding the most edge energy (gradient magnitude of a small grey copy),
so a subject off-centre in a wide photo is kept in a square crop.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from socialgan.images import fit_crop

CROPS = ("center", "content")


def _best_offset(energy_1d: np.ndarray, window: int) -> int:
    if window >= len(energy_1d):
        return 0
    csum = np.concatenate([[0.0], np.cumsum(energy_1d)])
    sums = csum[window:] - csum[:-window]
    # Ties (flat images) go to the centre.
    centre = (len(sums) - 1) / 2
    best = np.flatnonzero(sums >= sums.max() - 1e-9)
    return int(best[np.argmin(np.abs(best - centre))])


def content_crop(img: Image.Image, width: int, height: int) -> np.ndarray:
    w, h = img.size
    target = width / height
    if abs(w / h - target) < 1e-3:
        return fit_crop(img, width, height)
    scale = min(1.0, 128 / max(w, h))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    g = np.asarray(img.convert("L").resize((sw, sh), Image.Resampling.BOX), dtype=np.float32)
    gy, gx = np.gradient(g)
    energy = np.hypot(gx, gy)
    if w / h > target:  # too wide: slide horizontally
        cw = round(h * target)
        off = _best_offset(energy.sum(0), max(1, round(cw * scale)))
        x0 = min(w - cw, round(off / scale))
        box = (x0, 0, x0 + cw, h)
    else:
        ch = round(w / target)
        off = _best_offset(energy.sum(1), max(1, round(ch * scale)))
        y0 = min(h - ch, round(off / scale))
        box = (0, y0, w, y0 + ch)
    out = img.resize((width, height), Image.Resampling.LANCZOS, box=box)
    return np.asarray(out, dtype=np.uint8)


def crop_to(img: Image.Image, width: int, height: int, strategy: str) -> np.ndarray:
    return content_crop(img, width, height) if strategy == "content" \
        else fit_crop(img, width, height)

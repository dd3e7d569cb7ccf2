"""Text-heavy images (screenshots, quotes, memes): the PP-OCRv4 text detector, offline.

The detector is the ONNX file that ships inside the `rapidocr-onnxruntime` wheel; it
runs through onnxruntime on the CPU. Only its probability map is used: the share of the
picture the detector calls text is the score, no recognition is done.

Where the file comes from, in order: FILTER_TEXT_MODEL, the installed rapidocr package,
data/models/ (scripts/fetch_eval_images.sh extracts it there from the wheel on PyPI).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from socialgan import settings
from socialgan.filtering.onnx_session import cpu_session

MODEL_NAME = "ch_PP-OCRv4_det_infer.onnx"
LOCAL_MODEL = Path("data/models") / MODEL_NAME
# Longest side the detector sees, a multiple of 32. 224 finds the screenshots, handwriting
# and captions of the tuning mix as well as 320 did, at 0.65x the time; 192 misses code.
DETECT_SIDE = 224
MIN_SIDE = 96  # smaller images are not searched for text
PIXEL_THRESHOLD = 0.3  # probability above which a pixel counts as text
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def find_model() -> Path | None:
    configured = settings.get("FILTER_TEXT_MODEL")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "models" / MODEL_NAME
            if candidate.is_file():
                return candidate
    return LOCAL_MODEL if LOCAL_MODEL.is_file() else None


class TextDetector:
    def __init__(self, model: Path):
        self.session = cpu_session(model)
        self.input = self.session.get_inputs()[0].name

    def text_fraction(self, img: Image.Image) -> float:
        """Share of the image's pixels the detector marks as text (0..1)."""
        w, h = img.size
        scale = min(1.0, DETECT_SIDE / max(w, h))
        tw = max(32, round(w * scale / 32) * 32)
        th = max(32, round(h * scale / 32) * 32)
        rgb = np.asarray(img.resize((tw, th), Image.Resampling.BILINEAR), dtype=np.float32)
        bgr = rgb[:, :, ::-1] / 255.0  # the detector was trained on OpenCV's BGR order
        x = ((bgr - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)
        prob = self.session.run(None, {self.input: x})[0]  # run() is thread-safe
        return float((prob[0, 0] > PIXEL_THRESHOLD).mean())


@lru_cache(maxsize=2)
def _detector(model: Path) -> TextDetector:
    return TextDetector(model)


def text_detector() -> TextDetector | None:
    """The shared detector, or None when no model file is installed."""
    model = find_model()
    return _detector(model) if model and model.is_file() else None

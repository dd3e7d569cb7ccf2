"""Optional stages: faces (OpenCV's shipped Haar cascade) and nudity (nudenet).

Both are off unless asked for: a hashtag about portraits wants its faces, and the nudity
detector is a 12 MB model. opencv-python-headless is pinned below 5 because the 5.x
wheels no longer ship the cascades.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
from PIL import Image

from socialgan.errors import FailedPrecondition
from socialgan.filtering.onnx_session import offline_onnxruntime

FACE_SIDE = 400  # longest side the cascade scans
# nudenet's classes that make an image not safe for work; *_COVERED and faces do not.
NSFW_CLASSES = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
})


@lru_cache(maxsize=1)
def _face_cascade():
    try:
        import cv2
    except ImportError:
        raise FailedPrecondition(
            "extra_stages: 'faces' needs opencv-python-headless<5 (pip install '.[filter]')"
        ) from None
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FailedPrecondition(f"extra_stages: 'faces' found no Haar cascade at {path} "
                                 "(opencv 5 wheels ship none: pin opencv-python-headless<5)")
    return cascade


def face_fraction(img: Image.Image) -> float:
    """Share of the image covered by the largest frontal face found (0 when none)."""
    cascade = _face_cascade()
    w, h = img.size
    scale = min(1.0, FACE_SIDE / max(w, h))
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                       Image.Resampling.BOX) if scale < 1 else img
    g = np.asarray(small.convert("L"))
    side = max(20, min(g.shape) // 12)
    faces = cascade.detectMultiScale(g, scaleFactor=1.1, minNeighbors=14, minSize=(side, side))
    if len(faces) == 0:
        return 0.0
    return float(max(fw * fh for _, _, fw, fh in faces) / (g.shape[0] * g.shape[1]))


class NsfwDetector:
    def __init__(self):
        offline_onnxruntime()  # nudenet imports onnxruntime and makes its own session
        try:
            from nudenet import NudeDetector
        except ImportError:
            raise FailedPrecondition(
                "extra_stages: 'nsfw' needs the nudenet package (pip install '.[filter]')"
            ) from None
        self.detector = NudeDetector()
        self._lock = threading.Lock()

    def score(self, img: Image.Image) -> float:
        """Highest confidence of an exposed-nudity detection (0 when none)."""
        bgr = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])
        with self._lock:
            found = self.detector.detect(bgr)
        return max((d["score"] for d in found if d["class"] in NSFW_CLASSES), default=0.0)


@lru_cache(maxsize=1)
def nsfw_detector() -> NsfwDetector:
    return NsfwDetector()

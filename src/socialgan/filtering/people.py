"""People (two of the Haar cascades OpenCV ships) and nudity (nudenet).

Portraits and selfies are spam under most hashtags, so the faces stage is on by default;
hashtags whose topic is people (FILTER_PEOPLE_HASHTAGS: #portrait, #selfie...) skip it.
The nudity detector is a 12 MB model and stays opt-in. opencv-python-headless is pinned
below 5 because the 5.x wheels no longer ship the cascades.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
from PIL import Image

from socialgan import settings
from socialgan.errors import FailedPrecondition
from socialgan.filtering.onnx_session import offline_onnxruntime

FACE_SIDE = 140  # longest side the cascades scan: a portrait's face is large
FACE_MIN_SHARE = 8  # faces narrower than 1/8 of the shorter side are people in a scene
# nudenet's classes that make an image not safe for work; *_COVERED and faces do not.
NSFW_CLASSES = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
})


_local = threading.local()  # a cascade per thread: detectMultiScale keeps state in it
_import_lock = threading.Lock()  # two threads importing cv2 at once see half a module


# Two of OpenCV's frontal cascades, each with the neighbours it needs to find no face in
# the tuning and #nature mixes' 102 photos: the second finds faces the first misses
# (a grey, upscaled one of the tuning mix) and only runs when the first found none.
CASCADES = (("haarcascade_frontalface_default.xml", 6), ("haarcascade_frontalface_alt2.xml", 4))


def _face_cascades():
    if getattr(_local, "cascades", None) is None:
        with _import_lock:
            _local.cascades = [(_load_face_cascade(name), n) for name, n in CASCADES]
    return _local.cascades


def _load_face_cascade(name: str):
    try:
        import cv2
    except ImportError:
        raise FailedPrecondition(
            "extra_stages: 'faces' needs opencv-python-headless<5 (pip install '.[filter]')"
        ) from None
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FailedPrecondition(f"extra_stages: 'faces' found no Haar cascade at {path} "
                                 "(opencv 5 wheels ship none: pin opencv-python-headless<5)")
    return cascade


def face_fraction(img: Image.Image) -> float:
    """Share of the image covered by the largest frontal face found (0 when none)."""
    w, h = img.size
    scale = min(1.0, FACE_SIDE / max(w, h))
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                       Image.Resampling.BOX) if scale < 1 else img
    g = np.asarray(small.convert("L"))
    side = max(20, min(g.shape) // FACE_MIN_SHARE)
    for cascade, neighbours in _face_cascades():
        faces = cascade.detectMultiScale(g, scaleFactor=1.15, minNeighbors=neighbours,
                                         minSize=(side, side))
        if len(faces):
            break
    else:
        return 0.0
    return float(max(fw * fh for _, _, fw, fh in faces) / (g.shape[0] * g.shape[1]))


def people_hashtag(tag: str) -> bool:
    """Whether people are the topic of the hashtag (then faces are kept)."""
    listed = settings.get("FILTER_PEOPLE_HASHTAGS") or ""
    return tag in {t.strip().lstrip("#").lower() for t in listed.split(",") if t.strip()}


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

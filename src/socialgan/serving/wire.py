"""What travels between the generator service and the TorchServe handler.

Request: TorchServe's input map (name -> bytes), {"seed": b"123", "count": b"9"}.
Response: the images as uint8 NHWC in .npy format: compact, exact, and read back with
allow_pickle=False, so neither side ever unpickles what the other sent.
Both ends validate with the same rules, so a bad request fails the same way whether it
comes through GenerateGrid or straight to TorchServe.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from socialgan.errors import InvalidArgument

MIN_COUNT, MAX_COUNT = 1, 64
MAX_SEED = 2**63 - 1
_NPY_MAGIC = b"\x93NUMPY"


def check_count(count: int) -> int:
    if not MIN_COUNT <= count <= MAX_COUNT:
        raise InvalidArgument("count", f"{count} is out of range; give {MIN_COUNT}..{MAX_COUNT}")
    return count


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgument("seed", f"{seed} is out of range; give 0..2^63-1")
    return seed


def encode_request(seed: int, count: int) -> dict[str, bytes]:
    return {"seed": str(check_seed(seed)).encode(), "count": str(check_count(count)).encode()}


def _as_int(inputs: Mapping[str, object], field: str) -> int:
    if field not in inputs:
        raise InvalidArgument(field, "is missing")
    value = inputs[field]
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", errors="replace")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidArgument(field, f"{value!r} is not an integer")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not an integer") from None


def decode_request(inputs: Mapping[str, object]) -> tuple[int, int]:
    """(seed, count) from one request's input map; raises InvalidArgument naming the field.
    TorchServe may hand values over as bytes, bytearray, str or (for JSON) int."""
    return check_seed(_as_int(inputs, "seed")), check_count(_as_int(inputs, "count"))


def encode_images(images: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(images, dtype=np.uint8), allow_pickle=False)
    return buf.getvalue()


def decode_images(data: bytes) -> np.ndarray:
    """uint8 NHWC images from a handler response; anything else is rejected."""
    if not data.startswith(_NPY_MAGIC):
        # TorchServe's gRPC API passes a failed batch item's message on as its prediction.
        text = data[:300].decode("utf-8", errors="replace")
        raise ValueError(f"TorchServe answered an error instead of images: {text}")
    try:
        images = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"TorchServe answered something that is not an image array: {exc}") \
            from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"TorchServe answered an array of {images.dtype} {images.shape}, "
                         "not uint8 NHWC images")
    return images

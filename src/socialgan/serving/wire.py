"""What travels between the generator service and the TorchServe handler.

Request: TorchServe's input map (name -> bytes), {"seed": b"123", "count": b"9"}, plus
{"upscaler": b"realesrgan-anime", "width": b"357", "height": b"357"} when the images are
to be resized (serving/upscale.py runs in the handler, where the model runs).
Response: the images as uint8 NHWC in .npy format: compact, exact, and read back with
allow_pickle=False, so neither side ever unpickles what the other sent. A resized answer is
an .npz of the images and the name of the upscaler that ran (and why, if it fell back).
Both ends validate with the same rules, so a bad request fails the same way whether it
comes through GenerateGrid or straight to TorchServe.

An upscaler model (our own, served as a model of its own) takes the generator's images
instead of a seed: {"images": <.npy>, "width": b"357", "height": b"357"}, and answers like
a resized answer.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from socialgan.errors import InvalidArgument
from socialgan.serving.upscale import UpscaleRequest, check_side, check_upscaler

MIN_COUNT, MAX_COUNT = 1, 64
MAX_SEED = 2**63 - 1
_NPY_MAGIC = b"\x93NUMPY"
_NPZ_MAGIC = b"PK\x03\x04"
_UPSCALE_FIELDS = ("upscaler", "width", "height")


def check_count(count: int) -> int:
    if not MIN_COUNT <= count <= MAX_COUNT:
        raise InvalidArgument("count", f"{count} is out of range; give {MIN_COUNT}..{MAX_COUNT}")
    return count


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgument("seed", f"{seed} is out of range; give 0..2^63-1")
    return seed


def encode_request(seed: int, count: int,
                   upscale: UpscaleRequest | None = None) -> dict[str, bytes]:
    inputs = {"seed": str(check_seed(seed)).encode(), "count": str(check_count(count)).encode()}
    if upscale is not None:
        inputs.update(upscaler=check_upscaler(upscale.upscaler).encode(),
                      width=str(check_side(upscale.width, "width")).encode(),
                      height=str(check_side(upscale.height, "height")).encode())
    return inputs


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


def decode_upscale(inputs: Mapping[str, object]) -> UpscaleRequest | None:
    """The resize a request asks for, or None (the model's own size); all three or none."""
    present = [name for name in _UPSCALE_FIELDS if name in inputs]
    if not present:
        return None
    if len(present) != len(_UPSCALE_FIELDS):
        missing = next(name for name in _UPSCALE_FIELDS if name not in inputs)
        raise InvalidArgument(missing, "is missing (upscaler, width and height go together)")
    name = inputs["upscaler"]
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("ascii", errors="replace")
    return UpscaleRequest(check_upscaler(str(name)),
                          check_side(_as_int(inputs, "width"), "width"),
                          check_side(_as_int(inputs, "height"), "height"))


def encode_upscale_request(images: np.ndarray, width: int, height: int) -> dict[str, bytes]:
    """What an upscaler model is sent: the images to resize to width x height."""
    return {"images": encode_images(images), "width": str(check_side(width, "width")).encode(),
            "height": str(check_side(height, "height")).encode()}


def decode_upscale_request(inputs: Mapping[str, object]) -> tuple[np.ndarray, int, int]:
    """(images, width, height) an upscaler model was sent; InvalidArgument names the field.
    The images are read with allow_pickle=False, like every answer."""
    data = inputs.get("images")
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidArgument("images", "is missing (an .npy of uint8 NHWC images)")
    try:
        images = decode_images(bytes(data))
    except ValueError:
        raise InvalidArgument("images", "is not an .npy of uint8 NHWC images") from None
    check_count(int(images.shape[0]))
    if min(images.shape[1:3]) < 1:
        raise InvalidArgument("images", f"has an empty side: {images.shape}")
    return (images, check_side(_as_int(inputs, "width"), "width"),
            check_side(_as_int(inputs, "height"), "height"))


def encode_images(images: np.ndarray, upscaler: str | None = None, note: str = "") -> bytes:
    """.npy of the images; with upscaler (a resized answer), .npz with its name and note."""
    buf = io.BytesIO()
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if upscaler is None:
        np.save(buf, images, allow_pickle=False)
    else:  # fixed-width unicode arrays, so reading them back needs no pickle either
        np.savez(buf, images=images, upscaler=np.array(upscaler), note=np.array(note))
    return buf.getvalue()


def decode_response(data: bytes) -> tuple[np.ndarray, str | None, str]:
    """(images, the upscaler that ran or None, its note) from a handler response."""
    if not data.startswith(_NPZ_MAGIC):
        return decode_images(data), None, ""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            images, upscaler, note = (archive["images"], str(archive["upscaler"]),
                                      str(archive["note"]))
    except (ValueError, OSError, KeyError) as exc:
        raise ValueError(f"TorchServe answered a broken resized answer: {exc}") from None
    return _check_images(images), upscaler, note


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
    return _check_images(images)


def _check_images(images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"TorchServe answered an array of {images.dtype} {images.shape}, "
                         "not uint8 NHWC images")
    return images

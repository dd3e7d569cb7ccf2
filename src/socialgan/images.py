"""Image helpers every stage shares: safe decoding, resizing, grids, encoding.

Decoding untrusted bytes is bounded twice over. Before any pixel is decoded, the header's
dimensions are checked against the pixel guard (Image.MAX_IMAGE_PIXELS), and the decode's
peak memory is estimated from them (decode_cost); the decode then runs holding that many
bytes of a process-wide budget (IMAGE_DECODE_BUDGET_MB), so however many threads decode at
once, large images take turns instead of adding up; an image that needs more than the whole
budget is refused (over_memory_budget). Every way a decode can fail, documented
by Pillow or not, ends as BadImage with a short reason: one bad file is one named failure.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from socialgan import settings
from socialgan.errors import clip

# Pillow's default guard (~89 Mpx) stays on: bigger images are refused, not decoded.
Image.MAX_IMAGE_PIXELS = 89_478_485

# Magic bytes of the formats we accept -> the file extension we store them under.
_MAGIC: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, ".png"),
    (b"\xff\xd8\xff", 0, ".jpg"),
    (b"GIF87a", 0, ".gif"),
    (b"GIF89a", 0, ".gif"),
    (b"WEBP", 8, ".webp"),
    (b"BM", 0, ".bmp"),
]
# The Pillow plugins allowed to parse what the magic bytes let through, and no others.
_PILLOW_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")

FORMATS = {  # name -> (Pillow format, content type, extension)
    "png": ("PNG", "image/png", ".png"),
    "jpeg": ("JPEG", "image/jpeg", ".jpg"),
    "webp": ("WEBP", "image/webp", ".webp"),
}
# The content type stored with an image, by the extension sniff_extension() gives it.
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}

_WHITE = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_BAND_ROWS = 256  # rows composited at a time, so flattening needs no full-size temporaries
_DETAIL_CHARS = 100  # of an exception's text quoted in a failure's detail


class BadImage(ValueError):
    """The bytes are not an image we can use; .reason is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def sniff_extension(data: bytes) -> str | None:
    """The extension the content's magic bytes say, or None when it is no image we take."""
    for magic, offset, ext in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if ext == ".webp" and data[:4] != b"RIFF":
                continue
            return ext
    return None


# --- the shared decode budget ---------------------------------------------------------------

class DecodeBudget:
    """A byte semaphore: reserve(n) waits until n bytes of `total` are free. Requests are
    served in order, so a large one is not starved by a stream of small ones. (Decoding
    never asks for more than `total`: an image that would need more is refused.)"""

    def __init__(self, total_bytes: int):
        if total_bytes < 1:
            raise ValueError("a decode budget needs at least one byte")
        self.total = total_bytes
        self.in_use = 0
        self.peak = 0  # most bytes ever reserved at once, for tests and benchmarks
        self._free = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        need = max(0, min(nbytes, self.total))
        ticket = object()
        with self._free:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.in_use + need > self.total:
                    self._free.wait()
            finally:  # served, or interrupted while waiting: either way out of the line
                self._queue.remove(ticket)
                self._free.notify_all()  # the next in line may fit as well
            self.in_use += need
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._free:
                self.in_use -= need
                self._free.notify_all()


_budget: DecodeBudget | None = None
_budget_lock = threading.Lock()


def decode_budget() -> DecodeBudget:
    """The process-wide budget, sized by IMAGE_DECODE_BUDGET_MB when first used."""
    global _budget
    with _budget_lock:
        if _budget is None:
            megabytes = settings.get_int("IMAGE_DECODE_BUDGET_MB")
            if megabytes < 1:
                raise settings.ConfigError(
                    f"IMAGE_DECODE_BUDGET_MB={megabytes} must be at least 1")
            _budget = DecodeBudget(megabytes << 20)
            _keep_freed_blocks(_budget.total)
        return _budget


_BLOCK_BYTES = 64 << 20


def _keep_freed_blocks(nbytes: int) -> None:
    """Make Pillow allocate images in 64 MiB blocks and keep up to nbytes of freed ones.

    With Pillow's default 16 MiB blocks, each freed block goes back to the malloc arena of
    the thread that decoded it, and glibc keeps it there for that thread: with 32 download
    threads taking turns at large images, the process would keep one large decode per
    thread, not one budget (8 threads, 3000x3000 images: ~400 MiB instead of ~80). Blocks
    over 32 MiB are mmapped by glibc and returned when freed; the ones Pillow caches for
    its next images are shared by all threads, and there are at most nbytes of them."""
    Image.core.set_block_size(_BLOCK_BYTES)
    Image.core.set_blocks_max(max(Image.core.get_blocks_max(), nbytes // _BLOCK_BYTES))


# --- decoding -------------------------------------------------------------------------------

def _pixel_bytes(mode: str) -> int:
    """Bytes a pixel of `mode` takes in Pillow's memory (RGB is stored in four)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or "transparency" in img.info


def decode_cost(img: Image.Image) -> int:
    """Peak bytes decode_rgb needs for an opened (not yet loaded) image: the decoded pixels,
    an oriented copy when EXIF asks for one, the RGBA and RGB copies of the flattening, and
    the buffer libwebp decodes into before Pillow copies it."""
    pixels = img.width * img.height
    if _has_alpha(img):
        flatten = 8  # an RGBA copy and the RGB result
    else:
        flatten = 0 if img.mode == "RGB" else 4
    per_pixel = _pixel_bytes(img.mode) * 2 + flatten
    if img.format == "WEBP":
        per_pixel += 4
    return pixels * per_pixel + (1 << 20)


def _short(exc: BaseException) -> str:
    return clip(f"{type(exc).__name__}: {exc}", _DETAIL_CHARS)


def _open(data: bytes) -> Image.Image:
    """The image with only its header read, its dimensions checked; raises BadImage."""
    if not data:
        raise BadImage("empty", "zero bytes")
    if sniff_extension(data) is None:
        raise BadImage("not_an_image", "content is not PNG, JPEG, GIF, WebP or BMP")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("decompression_bomb", _short(exc)) from None
    except UnidentifiedImageError:  # its message names a BytesIO object, nothing useful
        raise BadImage("undecodable", "no decoder accepts its header") from None
    except Exception as exc:  # noqa: BLE001 - every parser failure is this file's failure
        raise BadImage("undecodable", _short(exc)) from None
    width, height = img.size
    if width < 1 or height < 1:
        raise BadImage("undecodable", f"the header says {width}x{height} pixels")
    if width * height > Image.MAX_IMAGE_PIXELS:  # the plugins that skip Pillow's own check
        raise BadImage("decompression_bomb", f"{width}x{height} pixels is over the "
                       f"{Image.MAX_IMAGE_PIXELS}-pixel guard")
    return img


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
        return value if isinstance(value, int) else 1
    except Exception:  # noqa: BLE001 - malformed EXIF: the pixels are still good
        return 1


def _flatten(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white, band by band."""
    if not _has_alpha(img):
        return img if img.mode == "RGB" else img.convert("RGB")
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    if rgba is not img:
        img.close()  # the source's pixels are no longer needed
    out = Image.new("RGB", rgba.size, _WHITE)
    for top in range(0, rgba.height, _BAND_ROWS):
        band = rgba.crop((0, top, rgba.width, min(rgba.height, top + _BAND_ROWS)))
        out.paste(band, (0, top), band)  # the band's alpha is the mask
    rgba.close()
    return out


def _decode(img: Image.Image) -> Image.Image:
    """Load an opened image and make it upright RGB on white; raises BadImage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            orientation = _orientation(img)
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
            return _flatten(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("decompression_bomb", _short(exc)) from None
    except MemoryError:
        raise BadImage("too_large", f"out of memory decoding {img.width}x{img.height} "
                       "pixels") from None
    except Exception as exc:  # noqa: BLE001 - Pillow has more ways to fail than it documents
        raise BadImage("undecodable", _short(exc)) from None


@contextmanager
def _decode_memory(img: Image.Image) -> Iterator[None]:
    """Hold the opened image's decode_cost() of the shared budget; BadImage when it needs
    more than the whole budget, so no decode can take more memory than the budget says."""
    budget = decode_budget()
    cost = decode_cost(img)
    if cost > budget.total:
        raise BadImage("over_memory_budget",
                       f"{img.width}x{img.height} {img.mode} needs about {cost >> 20} MiB to "
                       f"decode; IMAGE_DECODE_BUDGET_MB is {budget.total >> 20}")
    with budget.reserve(cost):
        yield


def decode_rgb(data: bytes) -> Image.Image:
    """Decode to an RGB image with EXIF orientation applied and transparency on white,
    holding decode_cost() of the shared budget while decoding.

    Raises BadImage for empty, unknown, truncated, corrupt, oversized or decompression-bomb
    input, for an image that needs more memory than the whole decode budget, and for any
    other error the decoders raise. Animated images yield their first frame.
    """
    img = _open(data)
    with _decode_memory(img):
        return _decode(img)


@dataclass(frozen=True)
class ImageFacts:
    """What a scrape records about bytes that decode: extension, size and frame count."""

    ext: str
    width: int
    height: int
    frames: int


def _frame_count(img: Image.Image) -> int:
    try:
        return max(1, int(getattr(img, "n_frames", 1) or 1))
    except Exception:  # noqa: BLE001 - a broken later frame: the first one decoded
        return 1


def check_image(data: bytes) -> ImageFacts:
    """decode_rgb's checks, keeping only the facts: the decoded pixels are dropped before
    the budget is given back. Raises BadImage like decode_rgb."""
    ext = sniff_extension(data) or ""
    img = _open(data)
    frames = _frame_count(img) if ext in (".gif", ".webp", ".png") else 1
    with _decode_memory(img):
        decoded = _decode(img)  # n_frames left the reader on the first frame
        facts = ImageFacts(ext, decoded.width, decoded.height, frames)
        decoded.close()
    return facts


def fit_crop(img: Image.Image, width: int, height: int) -> np.ndarray:
    """Scale to cover width x height, crop the centre; uint8 HxWx3."""
    fitted = ImageOps.fit(img, (width, height), method=Image.Resampling.LANCZOS)
    return np.asarray(fitted, dtype=np.uint8)


def make_grid(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """Tile N images (N,H,W,3 uint8) into rows of `columns`, white padding between."""
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    grid = np.full(
        (rows * h + (rows + 1) * padding, columns * w + (columns + 1) * padding, c),
        255,
        dtype=np.uint8,
    )
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return grid


DEFAULT_QUALITY = 92  # of jpeg and webp (png is lossless)


def encode(array: np.ndarray, fmt: str = "png", quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an HxWx3 uint8 array as png, jpeg or webp bytes (quality 1..100 if lossy)."""
    pil_format = FORMATS[fmt][0]
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=pil_format,
                                **({"quality": quality} if fmt != "png" else {}))
    return buf.getvalue()

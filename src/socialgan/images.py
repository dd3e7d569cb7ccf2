"""Image helpers every stage shares: safe decoding, resizing, grids, encoding."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps

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

FORMATS = {  # name -> (Pillow format, content type, extension)
    "png": ("PNG", "image/png", ".png"),
    "jpeg": ("JPEG", "image/jpeg", ".jpg"),
    "webp": ("WEBP", "image/webp", ".webp"),
}


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


def decode_rgb(data: bytes) -> Image.Image:
    """Decode to an RGB image with EXIF orientation applied and transparency on white.

    Raises BadImage for empty, unknown, truncated, corrupt or decompression-bomb input.
    Animated images yield their first frame.
    """
    if not data:
        raise BadImage("empty", "zero bytes")
    if sniff_extension(data) is None:
        raise BadImage("not_an_image", "content is not PNG, JPEG, GIF, WebP or BMP")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("decompression_bomb", str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage("undecodable", str(exc)) from None
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


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


def encode(array: np.ndarray, fmt: str = "png") -> bytes:
    """Encode an HxWx3 uint8 array as png, jpeg or webp bytes."""
    pil_format = FORMATS[fmt][0]
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=pil_format, **({"quality": 92} if fmt != "png" else {}))
    return buf.getvalue()

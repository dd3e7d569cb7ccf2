"""The pictures a post is made of: the stored grid with its tiles, and each one re-encoded
to what a platform takes (format, byte cap, width range, aspect range).

GenerateGrid stores a grid at grids/<model_id>/<name>.<ext> and, beside it, its tiles as
<name>-tile-<i>.<ext> and their facts in <name>.json (keys.grid_tiles_key and friends).
A grid stored before tiles were kept has no tiles: the modes that need them refuse it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from socialgan import images
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound, quote
from socialgan.storage import ObjectStore, keys

CONTENT_TYPES = images.CONTENT_TYPES
_PIL_FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
# Lossy re-encoding steps down to this quality before the picture is made smaller instead.
_QUALITIES = (92, 85, 78, 70, 62)


@dataclass
class Rendition:
    """One image exactly as it is sent."""

    data: bytes
    ext: str  # ".jpg", ".png", ".webp"
    width: int
    height: int
    alt_text: str


@dataclass
class GridImages:
    grid_key: str
    grid: bytes
    tiles: list[bytes] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # seed, count, columns, model_id...

    def need_tiles(self, mode: str) -> list[bytes]:
        if not self.tiles:
            raise FailedPrecondition(
                f"grid_key: {quote(self.grid_key)} has no stored tiles, which mode {mode} "
                "needs; generate the grid again with store=true")
        return self.tiles


def load_grid(store: ObjectStore, grid_key: str) -> GridImages:
    """The grid at grid_key with its tiles and facts when they were stored beside it."""
    try:
        grid = store.get_bytes(grid_key)
    except NotFound:
        raise NotFound(f"grid_key: no grid {quote(grid_key)} in storage") from None
    if images.sniff_extension(grid) is None:
        raise InvalidArgument("grid_key", f"{quote(grid_key)} is not a PNG, JPEG or WebP image")
    try:
        meta = store.get_json(keys.grid_facts_key(grid_key))
    except NotFound:
        return GridImages(grid_key, grid)
    tiles = [store.get_bytes(k) for k in meta.get("tile_keys", [])]
    return GridImages(grid_key, grid, tiles, meta)


@dataclass(frozen=True)
class ImageLimits:
    """What a platform takes. Aspect is width / height."""

    max_bytes: int
    ext: str = ".jpg"
    min_width: int = 1
    max_width: int = 8192
    max_pixels: int = 0  # 0: no cap (Mastodon's image_matrix_limit)
    min_aspect: float = 0.0
    max_aspect: float = math.inf

    def describe(self) -> str:
        aspect = ("" if self.min_aspect == 0.0 and self.max_aspect == math.inf else
                  f", aspect {self.min_aspect:.3g}..{self.max_aspect:.3g}")
        return (f"{_PIL_FORMATS[self.ext]} <= {self.max_bytes:,} bytes, width "
                f"{self.min_width}..{self.max_width}{aspect}")


def _pad_to_aspect(img: Image.Image, limits: ImageLimits) -> Image.Image:
    """White margins that bring the picture inside the aspect range (a 3:1 banner becomes
    1.91:1 on Instagram) without cutting any of it."""
    ratio = img.width / img.height
    width, height = img.width, img.height
    if ratio > limits.max_aspect:
        height = math.ceil(img.width / limits.max_aspect)
    elif ratio < limits.min_aspect:
        width = math.ceil(img.height * limits.min_aspect)
    else:
        return img
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    return canvas


def _scaled(img: Image.Image, width: int) -> Image.Image:
    if width == img.width:
        return img
    height = max(1, round(img.height * width / img.width))
    return img.resize((width, height), Image.Resampling.LANCZOS)


def _encode(img: Image.Image, ext: str, quality: int) -> bytes:
    buf = io.BytesIO()
    options = {} if ext == ".png" else {"quality": quality}
    img.save(buf, format=_PIL_FORMATS[ext], **options)
    return buf.getvalue()


def fit_image(data: bytes, limits: ImageLimits, alt_text: str, *,
              field_name: str = "grid_key", width: int | None = None) -> Rendition:
    """data as limits allow: padded into the aspect range, scaled into the width range and
    pixel cap (to `width` when given, e.g. a platform's feed width), encoded as limits.ext,
    then made lighter (quality, then size) until it fits max_bytes. InvalidArgument naming
    field_name when it cannot fit at min_width."""
    try:
        img = images.decode_rgb(data)
    except images.BadImage as exc:
        raise InvalidArgument(field_name, f"the picture does not decode: {exc}") from None
    img = _pad_to_aspect(img, limits)
    width = min(max(width or img.width, limits.min_width), limits.max_width)
    if limits.max_pixels:
        width = min(width, int(math.sqrt(limits.max_pixels * img.width / img.height)))
    while True:
        scaled = _scaled(img, width)
        for quality in (_QUALITIES if limits.ext != ".png" else (0,)):
            encoded = _encode(scaled, limits.ext, quality)
            if len(encoded) <= limits.max_bytes:
                return Rendition(encoded, limits.ext, scaled.width, scaled.height, alt_text)
        if width <= limits.min_width:
            raise InvalidArgument(field_name, f"the picture cannot be made to fit "
                                  f"{limits.describe()}")
        width = max(limits.min_width, int(width * 0.85))

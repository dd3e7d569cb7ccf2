"""generate_grid(): the Generator service's behaviour, independent of gRPC and of the backend.

Validates the request, asks a backend for the images (resized to the asked output size by
an upscaler, where the model runs: serving/upscale.py, serving/output_size.py), tiles and
encodes them, and stores the grid under grids/<model_id>/ when asked. The gRPC servicer and
the CLI both call this.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field

import numpy as np

from socialgan.errors import InvalidArgument
from socialgan.images import DEFAULT_QUALITY, FORMATS, encode, make_grid
from socialgan.models.export import read_card
from socialgan.serving import output_size, upscale, wire
from socialgan.serving.backends import GeneratorBackend
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

DEFAULT_COUNT = 9
# What the grid and the single images may take in one GenerateGridResponse: under the 64 MiB
# a service sends (rpc/server.py), with room for the metadata. 64 banners of 768x256 as PNG
# can reach 75 MB; past this the call would end in gRPC's own "message larger than max".
MAX_RESPONSE_IMAGE_BYTES = 60 << 20


@dataclass(frozen=True)
class GridResult:
    model_id: str
    model_version: str
    seed: int
    count: int
    columns: int
    width: int  # of one generated image
    height: int
    latency_ms: float  # the whole call
    inference_ms: float  # the backend's part of it
    method: str
    hashtag: str
    metrics: dict[str, float]
    grid: bytes
    images: list[bytes] = field(repr=False)
    content_type: str
    grid_key: str | None = None  # set when the grid was stored
    upscaler: str = upscale.NONE  # the one that ran (lanczos when a network could not load)
    upscaler_note: str = ""  # why it is not the one asked for, when it is not
    model_width: int = 0  # of what the model makes, before resizing
    model_height: int = 0
    grid_width: int = 0
    grid_height: int = 0


def default_columns(count: int) -> int:
    return math.ceil(math.sqrt(count))


def grid_name(seed: int, count: int, columns: int, fmt: str, size_tag: str = "") -> str:
    """seed-<seed>-n<count>.png; a non-default column count and a resize (-instagram,
    -480x160) are part of the name."""
    layout = "" if columns == default_columns(count) else f"-c{columns}"
    size = f"-{size_tag}" if size_tag else ""
    return f"seed-{seed}-n{count}{layout}{size}{FORMATS[fmt][2]}"


def _store_tiles(store: ObjectStore, grid_key: str, singles: list[bytes], ext: str,
                 content_type: str, facts: dict) -> None:
    """The grid's images beside it, for the posts made of tiles (a carousel, the nine
    posts of a profile grid), and the facts that say what they are."""
    tile_keys = [keys.grid_tile_key(grid_key, i, ext) for i in range(len(singles))]
    for key, data in zip(tile_keys, singles, strict=True):
        store.put_bytes(key, data, content_type)
    store.put_json(keys.grid_facts_key(grid_key), {**facts, "tile_keys": tile_keys})


def check_quality(quality: int | None, fmt: str) -> int:
    if quality is None:
        return DEFAULT_QUALITY
    if fmt == "png":
        raise InvalidArgument("quality", "png is lossless; quality is for jpeg and webp")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidArgument("quality", f"{str(quality)[:20]} is out of range; give 1..100")
    return quality


def card_metrics(card: dict) -> dict[str, float]:
    """The card's numeric metrics (captions and metadata carry them)."""
    out = {}
    for name, value in (card.get("metrics") or {}).items():
        try:
            out[str(name)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def generate_grid(
    store: ObjectStore,
    backend: GeneratorBackend,
    model_id: str,
    seed: int | None = None,
    count: int | None = None,
    columns: int | None = None,
    fmt: str = "png",
    store_grid: bool = False,
    preset: str | None = None,
    tile_size: tuple[int, int] | None = None,
    upscaler: str | None = None,
    quality: int | None = None,
) -> GridResult:
    """A grid of count images from model_id for seed (random when None), at the model's
    size or resized to a preset or a tile_size (width, height) by upscaler (None: the
    model card's "upscaler", else upscale.DEFAULT_UPSCALER).

    Raises InvalidArgument naming the bad field, NotFound for an unknown model, and
    Unavailable when the backend does not answer.
    """
    started = time.perf_counter()
    check_identifier(model_id, "model_id")
    count = DEFAULT_COUNT if count is None else wire.check_count(count)
    if columns is None:
        columns = default_columns(count)
    elif not 1 <= columns <= count:
        raise InvalidArgument("columns", f"{columns} is out of range; give 1..count ({count})")
    if fmt not in FORMATS:
        raise InvalidArgument("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    quality = check_quality(quality, fmt)
    if upscaler is not None:
        upscale.check_upscaler(upscaler)
    seed = secrets.randbelow(2**31) if seed is None else wire.check_seed(seed)
    card = read_card(store, model_id)
    if card.get("kind") == "upscaler":
        raise InvalidArgument("model_id", f"{model_id} is an upscaler model; give it as "
                              f"upscaler {upscale.OWN_PREFIX}{model_id} with a generator model")
    if card.get("kind") == "caption":  # socialgan.text: it writes captions, not pictures
        raise InvalidArgument("model_id", f"{model_id} is a caption model; ask "
                              "GenerateCaption for its text")
    source = (int(card.get("width", 0)), int(card.get("height", 0)))
    size = output_size.resolve(source, count, columns, preset, tile_size)
    request = None
    if size.tile != source:
        card_default = card.get("upscaler")
        request = upscale.UpscaleRequest(
            upscaler or (card_default if card_default in upscale.UPSCALERS
                         or upscale.is_own(card_default) else upscale.DEFAULT_UPSCALER),
            *size.tile)
        upscale.check_request(request, count, source)  # before any work, naming the field

    inference_started = time.perf_counter()
    if request is None:
        done = upscale.Upscaled(backend.generate(model_id, card, seed, count), upscale.NONE)
    else:
        done = backend.generate_sized(model_id, card, seed, count, request)
    inference_ms = (time.perf_counter() - inference_started) * 1000
    images = done.images
    if images.shape[-1] == 1:  # grayscale models: encode as RGB like everything else
        images = np.repeat(images, 3, axis=-1)

    content_type = FORMATS[fmt][1]
    grid_pixels = output_size.fill_canvas(make_grid(images, columns), size.canvas)
    grid = encode(grid_pixels, fmt, quality)
    singles = [encode(image, fmt, quality) for image in images]
    encoded = len(grid) + sum(map(len, singles))
    if encoded > MAX_RESPONSE_IMAGE_BYTES:
        raise InvalidArgument("count", f"{count} images of {images.shape[2]}x{images.shape[1]} "
                              f"encode to {encoded / 2**20:.0f} MiB as {fmt}, over the "
                              f"{MAX_RESPONSE_IMAGE_BYTES >> 20} MiB a response carries; ask "
                              "for fewer or a smaller format (jpeg, webp)")
    grid_key = None
    if store_grid:
        size_tag = "" if request is None else (
            preset if preset is not None else f"{size.tile[0]}x{size.tile[1]}")
        grid_key = keys.grid_key(model_id, grid_name(seed, count, columns, fmt, size_tag))
        _store_tiles(store, grid_key, singles, FORMATS[fmt][2], content_type, {
            "model_id": model_id, "seed": seed, "count": count, "columns": columns,
            "width": int(images.shape[2]), "height": int(images.shape[1]),
            "hashtag": str(card.get("hashtag", "")), "method": str(card.get("method", ""))})
        store.put_bytes(grid_key, grid, content_type)  # last: a grid that exists has tiles
    return GridResult(
        model_id=model_id,
        model_version=str(card.get("model_version", "")),
        seed=seed,
        count=count,
        columns=columns,
        width=int(images.shape[2]),
        height=int(images.shape[1]),
        latency_ms=(time.perf_counter() - started) * 1000,
        inference_ms=inference_ms,
        method=str(card.get("method", "")),
        hashtag=str(card.get("hashtag", "")),
        metrics=card_metrics(card),
        grid=grid,
        images=singles,
        content_type=content_type,
        grid_key=grid_key,
        upscaler=done.upscaler,
        upscaler_note=done.note,
        model_width=source[0],
        model_height=source[1],
        grid_width=int(grid_pixels.shape[1]),
        grid_height=int(grid_pixels.shape[0]),
    )

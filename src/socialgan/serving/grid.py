"""generate_grid(): the Generator service's behaviour, independent of gRPC and of the backend.

Validates the request, asks a backend for the images, tiles and encodes them, and stores
the grid under grids/<model_id>/ when asked. The gRPC servicer and the CLI both call this.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field

import numpy as np

from socialgan.errors import InvalidArgument
from socialgan.images import FORMATS, encode, make_grid
from socialgan.models.export import read_card
from socialgan.serving import wire
from socialgan.serving.backends import GeneratorBackend
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

DEFAULT_COUNT = 9


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


def default_columns(count: int) -> int:
    return math.ceil(math.sqrt(count))


def grid_name(seed: int, count: int, columns: int, fmt: str) -> str:
    """seed-<seed>-n<count>.png; a non-default column count is part of the name."""
    layout = "" if columns == default_columns(count) else f"-c{columns}"
    return f"seed-{seed}-n{count}{layout}{FORMATS[fmt][2]}"


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
) -> GridResult:
    """A grid of count images from model_id for seed (random when None).

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
    seed = secrets.randbelow(2**31) if seed is None else wire.check_seed(seed)
    card = read_card(store, model_id)

    inference_started = time.perf_counter()
    images = backend.generate(model_id, card, seed, count)
    inference_ms = (time.perf_counter() - inference_started) * 1000
    if images.shape[-1] == 1:  # grayscale models: encode as RGB like everything else
        images = np.repeat(images, 3, axis=-1)

    content_type = FORMATS[fmt][1]
    grid = encode(make_grid(images, columns), fmt)
    singles = [encode(image, fmt) for image in images]
    grid_key = None
    if store_grid:
        grid_key = keys.grid_key(model_id, grid_name(seed, count, columns, fmt))
        store.put_bytes(grid_key, grid, content_type)
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
    )

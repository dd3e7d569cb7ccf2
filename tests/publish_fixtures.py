"""Real grids to publish, stored the way serving/grid.py stores them, and the test env.

stored_grid() composites the committed Twemoji PNGs on white, tiles them with
socialgan.images.make_grid and writes grid + tiles + facts under the same keys that
generate_grid(store_grid=True) uses, so a publishing target reads exactly what it
would read in production.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from socialgan.images import FORMATS, encode, make_grid
from socialgan.storage import keys

TWEMOJI_DIR = Path(__file__).parent / "data" / "twemoji"
ASPECTS = ("square", "banner")
EMOJI_PER_BANNER_TILE = 3  # side by side, so a tile is 3:1


def _emoji(path: Path, size: int) -> np.ndarray:
    """One emoji on a white square of size x size (the PNGs have transparent corners)."""
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    flat = canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(flat, dtype=np.uint8)


def emoji_tiles(count: int, size: int, aspect: str = "square") -> np.ndarray:
    """count tiles (N,H,W,3 uint8): one emoji each, or three side by side for "banner"."""
    if aspect not in ASPECTS:
        raise ValueError(f"aspect {aspect!r} is not one of {ASPECTS}")
    paths = sorted(TWEMOJI_DIR.glob("*.png"))
    per_tile = EMOJI_PER_BANNER_TILE if aspect == "banner" else 1
    if len(paths) < count * per_tile:
        raise ValueError(f"{count} tiles need {count * per_tile} emoji; "
                         f"{TWEMOJI_DIR} has {len(paths)}")
    tiles = []
    for i in range(count):
        parts = [_emoji(p, size) for p in paths[i * per_tile:(i + 1) * per_tile]]
        tiles.append(np.concatenate(parts, axis=1))
    return np.stack(tiles)


def stored_grid(store, *, count: int = 9, columns: int = 3, size: int = 64,
                aspect: str = "square", model_id: str = "run-1", seed: int = 7,
                hashtag: str = "#emoji", method: str = "dcgan", fmt: str = "png") -> str:
    """Store a real grid of count Twemoji tiles, its tiles and its facts; return the grid key.

    The keys and the facts match serving/grid.py `_store_tiles` (tile_keys included),
    and the grid is written last, as there: a grid that exists has tiles.
    """
    tiles = emoji_tiles(count, size, aspect)
    content_type, ext = FORMATS[fmt][1], FORMATS[fmt][2]
    grid = encode(make_grid(tiles, columns), fmt)
    singles = [encode(tile, fmt) for tile in tiles]
    # Named like serving/grid.py grid_name (seed-7-n9.png, seed-7-n4-c2-banner.png), without
    # importing it: that module pulls in torch, seconds per test file.
    layout = "" if columns == math.ceil(math.sqrt(count)) else f"-c{columns}"
    size_tag = "" if aspect == "square" else f"-{aspect}"
    grid_key = keys.grid_key(model_id, f"seed-{seed}-n{count}{layout}{size_tag}{ext}")
    tile_keys = [keys.grid_tile_key(grid_key, i, ext) for i in range(count)]
    for key, data in zip(tile_keys, singles, strict=True):
        store.put_bytes(key, data, content_type)
    store.put_json(keys.grid_facts_key(grid_key), {
        "model_id": model_id, "seed": seed, "count": count, "columns": columns,
        "width": int(tiles.shape[2]), "height": int(tiles.shape[1]),
        "hashtag": hashtag, "method": method, "tile_keys": tile_keys})
    store.put_bytes(grid_key, grid, content_type)
    return grid_key


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes."""
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def publish_env(monkeypatch) -> None:
    """Loopback HTTP allowed for the local servers, short timeouts and backoff, 4 attempts."""
    monkeypatch.setenv("PUBLISHER_ALLOW_LOOPBACK_HTTP", "true")
    monkeypatch.setenv("PUBLISH_TIMEOUT_S", "1")
    monkeypatch.setenv("PUBLISH_BACKOFF_S", "0.01")
    monkeypatch.setenv("PUBLISH_MAX_ATTEMPTS", "4")

"""The output size of a grid request: a preset or a tile size -> one tile's size and the canvas.

    original          the model's own size, no resizing (the default)
    instagram         the whole grid is 1080x1080 (tiles as big as fit, centred on white)
    instagram-tiles   every tile fits 1080x1080 (square models: exactly 1080x1080)
    banner            every tile is 1500x500; only from 3:1 models
    tile_size         width x height of one tile; a 0 side follows the model's aspect
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from socialgan.errors import InvalidArgument
from socialgan.serving.upscale import check_side

ORIGINAL, INSTAGRAM, INSTAGRAM_TILES, BANNER = "original", "instagram", "instagram-tiles", "banner"
PRESETS = (ORIGINAL, INSTAGRAM, INSTAGRAM_TILES, BANNER)
INSTAGRAM_SIDE = 1080
BANNER_SIZE = (1500, 500)
GRID_PADDING = 2  # images.make_grid's default


@dataclass(frozen=True)
class OutputSize:
    tile: tuple[int, int]  # (width, height) of one image
    canvas: tuple[int, int] | None = None  # the grid is padded to exactly this, when set


def _fit(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of source's aspect inside box."""
    scale = min(box[0] / source[0], box[1] / source[1])
    return max(1, math.floor(source[0] * scale)), max(1, math.floor(source[1] * scale))


def resolve(source: tuple[int, int], count: int, columns: int, preset: str | None = None,
            tile_size: tuple[int, int] | None = None) -> OutputSize:
    """The output size for a model making source=(width, height) images; InvalidArgument
    names the field (size_preset, tile_size.width, tile_size.height)."""
    if preset is not None and tile_size is not None:
        raise InvalidArgument("size_preset", "give a preset or a tile_size, not both")
    if preset in (None, ORIGINAL) and tile_size is None:
        return OutputSize(source)
    if min(source) < 1:
        raise InvalidArgument("model_id", "its card records no width and height to resize from")
    if tile_size is not None:
        return OutputSize(_tile_size(source, *tile_size))
    if preset == INSTAGRAM:
        rows = math.ceil(count / columns)
        cell = ((INSTAGRAM_SIDE - (columns + 1) * GRID_PADDING) // columns,
                (INSTAGRAM_SIDE - (rows + 1) * GRID_PADDING) // rows)
        if min(cell) < 1:
            raise InvalidArgument("columns", f"{columns} columns do not fit 1080 pixels")
        return OutputSize(_fit(source, cell), (INSTAGRAM_SIDE, INSTAGRAM_SIDE))
    if preset == INSTAGRAM_TILES:
        return OutputSize(_fit(source, (INSTAGRAM_SIDE, INSTAGRAM_SIDE)))
    if preset == BANNER:
        if source[0] != 3 * source[1]:
            raise InvalidArgument("size_preset", f"banner needs a 3:1 model; this one makes "
                                  f"{source[0]}x{source[1]} (train with aspect 3)")
        return OutputSize(BANNER_SIZE)
    raise InvalidArgument("size_preset", f"{str(preset)[:40]!r} is not one of "
                          f"{', '.join(PRESETS)}")


def _tile_size(source: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    if width == 0 and height == 0:
        raise InvalidArgument("tile_size", "give a width, a height or both")
    if width == 0:
        width = max(1, round(check_side(height, "tile_size.height") * source[0] / source[1]))
    elif height == 0:
        height = max(1, round(check_side(width, "tile_size.width") * source[1] / source[0]))
    return check_side(width, "tile_size.width"), check_side(height, "tile_size.height")


def fill_canvas(grid: np.ndarray, canvas: tuple[int, int] | None) -> np.ndarray:
    """grid centred on a white canvas of (width, height); the grid must fit it."""
    if canvas is None:
        return grid
    width, height = canvas
    h, w = grid.shape[:2]
    if w > width or h > height:
        raise ValueError(f"a {w}x{h} grid does not fit {width}x{height}")
    out = np.full((height, width, grid.shape[2]), 255, dtype=np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    out[y:y + h, x:x + w] = grid
    return out

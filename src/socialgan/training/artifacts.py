"""Pictures of a run, beside its options and metrics under runs/train/<run_id>/:
losses.png (loss curves and the SWD history) and progress.gif (the fixed-seed sample
grids in order). Drawn with Pillow alone, so the trainer needs no plotting library.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw

from socialgan.storage import ObjectStore, keys

COLOURS = {"loss_d": (214, 39, 40), "loss_g": (31, 119, 180), "swd": (44, 160, 44)}
GIF_FRAMES = 60  # at most; long runs keep evenly spaced grids


def losses_key(run_id: str) -> str:
    return keys.run_prefix(run_id) + "losses.png"


def progress_gif_key(run_id: str) -> str:
    return keys.run_prefix(run_id) + "progress.gif"


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
           series: dict[str, list[tuple[float, float]]], title: str) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((left + 4, top + 2), title, fill=(0, 0, 0))
    points = [p for values in series.values() for p in values]
    if len(points) < 1:
        return
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    draw.text((left + 4, bottom - 12), f"step {x0:g}..{x1:g}  y {y0:.3g}..{y1:.3g}",
              fill=(90, 90, 90))
    for row, (name, values) in enumerate(series.items()):
        colour = COLOURS.get(name, (0, 0, 0))
        draw.text((right - 60, top + 2 + 12 * row), name, fill=colour)
        xy = [(left + 5 + (x - x0) / (x1 - x0) * (right - left - 10),
               bottom - 16 - (y - y0) / (y1 - y0) * (bottom - top - 32)) for x, y in values]
        if len(xy) == 1:
            draw.ellipse((xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2), fill=colour)
        else:
            draw.line(xy, fill=colour, width=2)


def loss_curves_png(history: list[dict[str, Any]], metric_history: list[dict[str, Any]],
                    size: tuple[int, int] = (640, 480)) -> bytes:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    losses = {name: [(e["step"], e[name]) for e in history if name in e]
              for name in ("loss_d", "loss_g")}
    _panel(draw, (5, 5, w - 5, h // 2 - 3), losses, "losses (mean per log window)")
    swd = {"swd": [(e["step"], e["swd"]) for e in metric_history if "swd" in e]}
    _panel(draw, (5, h // 2 + 3, w - 5, h - 5), swd, "SWD at checkpoints (lower is better)")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def progression_gif(frames: list[bytes], ms_per_frame: int = 400) -> bytes:
    if len(frames) > GIF_FRAMES:
        step = len(frames) / GIF_FRAMES
        frames = [frames[int(i * step)] for i in range(GIF_FRAMES - 1)] + [frames[-1]]
    images = [Image.open(io.BytesIO(f)).convert("RGB") for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=ms_per_frame,
                   loop=0)
    return buf.getvalue()


def write_run_pictures(store: ObjectStore, run_id: str, history: list[dict[str, Any]],
                       metric_history: list[dict[str, Any]], samples: list[str]) -> None:
    store.put_bytes(losses_key(run_id), loss_curves_png(history, metric_history), "image/png")
    frames = [store.get_bytes(k) for k in samples if store.exists(k)]
    if frames:
        store.put_bytes(progress_gif_key(run_id), progression_gif(frames), "image/gif")

"""Pictures of a run, beside its options and metrics under runs/train/<run_id>/:
losses.png (loss curves and the SWD history) and progress.gif (the fixed-seed sample
grids in order). The chart is matplotlib's (socialgan.dashboard.charts, which the
dashboard also draws live from metrics.json); the GIF is Pillow's.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from socialgan.dashboard.charts import training_curves_png
from socialgan.storage import ObjectStore, keys

GIF_FRAMES = 60  # at most; long runs keep evenly spaced grids


def losses_key(run_id: str) -> str:
    return keys.run_prefix(run_id) + "losses.png"


def progress_gif_key(run_id: str) -> str:
    return keys.run_prefix(run_id) + "progress.gif"


def loss_curves_png(history: list[dict[str, Any]], metric_history: list[dict[str, Any]],
                    size: tuple[int, int] = (800, 560)) -> bytes:
    return training_curves_png(history, metric_history, size)


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

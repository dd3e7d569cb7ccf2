"""Contact sheets: one PNG per drop reason, the rejected images with their scores.

People trust a filter when they can see what it threw away. Each sheet shows up to
SHEET_LIMIT images of one reason, highest score first, each captioned with its score;
near-duplicates show the dropped copy beside the copy that was kept. Files that could
not be decoded get a grey tile with their reason, so the sheet still says how many.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from socialgan.images import BadImage, decode_rgb, encode

THUMB = 112
CAPTION = 14
SHEET_LIMIT = 48
COLUMNS = 8


def _font():
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _thumb(data: bytes | None, size: tuple[int, int]) -> Image.Image:
    tile = Image.new("RGB", size, (200, 200, 200))
    if data is not None:
        try:
            img = decode_rgb(data)
        except (BadImage, Exception):  # noqa: BLE001 - a broken file is exactly what we show
            img = None
        if img is not None:
            img.thumbnail(size, Image.Resampling.BOX)
            tile.paste(img, ((size[0] - img.width) // 2, (size[1] - img.height) // 2))
            return tile
    ImageDraw.Draw(tile).line([(0, 0), size, (0, size[1]), (size[0], 0)], fill=(150, 150, 150))
    return tile


def contact_sheet(entries: Sequence[dict], read: Callable[[str], bytes | None],
                  title: str) -> bytes:
    """A PNG of entries (dicts with key, score, detail and optionally kept_key)."""
    shown = list(entries)[:SHEET_LIMIT]
    font = _font()
    pair = any(e.get("kept_key") for e in shown)
    cell_w = THUMB * 2 + 4 if pair else THUMB
    columns = max(1, min(COLUMNS // (2 if pair else 1), len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    header = 22
    sheet = Image.new("RGB", (columns * (cell_w + 6) + 6, header + rows * (THUMB + CAPTION + 6)),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    more = f" (showing {len(shown)})" if len(entries) > len(shown) else ""
    draw.text((6, 4), f"{title}: {len(entries)} images{more}", fill=(0, 0, 0), font=font)
    for i, entry in enumerate(shown):
        r, c = divmod(i, columns)
        x, y = 6 + c * (cell_w + 6), header + r * (THUMB + CAPTION + 6)
        sheet.paste(_thumb(read(entry["key"]), (THUMB, THUMB)), (x, y))
        if pair:
            sheet.paste(_thumb(read(entry["kept_key"]), (THUMB, THUMB)), (x + THUMB + 4, y))
        caption = f"{entry.get('score', 0):.3g}"
        if pair:
            caption += "  dropped | kept"
        draw.text((x, y + THUMB + 1), caption, fill=(0, 0, 0), font=font)
    return encode(np.asarray(sheet))


def summary_text(dataset_id: str, kept: int, dropped: int,
                 dropped_by_reason: dict[str, int], contact_sheet_keys: dict[str, str]) -> str:
    """The report as a person reads it in a terminal: counts per reason and where to look."""
    lines = [f"dataset {dataset_id}: {kept} kept, {dropped} dropped"]
    for reason, count in sorted(dropped_by_reason.items(), key=lambda kv: -kv[1]):
        sheet = contact_sheet_keys.get(reason, "")
        lines.append(f"  {reason:<20} {count:>6}  {sheet}")
    if "kept" in contact_sheet_keys:
        lines.append(f"  {'kept (sample)':<20} {kept:>6}  {contact_sheet_keys['kept']}")
    return "\n".join(lines)

"""Contact sheets: one PNG per drop reason, the rejected images with their scores.

People trust a filter when they can see what it threw away. Each sheet shows up to
SHEET_LIMIT images of one reason, highest score first, each captioned with its id and
its score against the threshold and the rule that fired;
near-duplicates show the dropped copy beside the copy that was kept. Files that could
not be decoded get a grey tile with their reason, so the sheet still says how many.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from socialgan.errors import NotFound
from socialgan.images import BadImage, decode_rgb, encode
from socialgan.storage import ObjectStore, keys

THUMB = 112
CAPTION = 28  # two lines: the image's id, then its score against the threshold and the rule
SHEET_LIMIT = 48
COLUMNS = 8
HEADER = 22
MARGIN = 6


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


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """text, cut with an ellipsis so that it fits width pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def caption_lines(entry: dict) -> tuple[str, str]:
    """What a tile says: the image's id, and why it is on this sheet.

    A measured drop reads "blurry 4.2 < 7": the score, how it compares with the
    threshold, and the rule. A file that never decoded has no score: its reason and
    detail are shown instead of a meaningless 0.
    """
    image_id = str(entry.get("id") or entry.get("key", "").rsplit("/", 1)[-1].split(".")[0])
    rule = entry.get("reason", "")
    score, threshold = entry.get("score"), entry.get("threshold")
    if entry.get("stage") == "decode" or (score in (None, 0, 0.0) and threshold is None):
        detail = entry.get("detail") or ""
        return image_id, f"{rule}: {detail}" if detail else rule
    if threshold is None:
        return image_id, f"{rule} {score:.3g}"
    op = "<" if score < threshold else ">" if score > threshold else "="
    return image_id, f"{rule} {score:.3g} {op} {threshold:.3g}"


def contact_sheet(entries: Sequence[dict], read: Callable[[str], bytes | None],
                  title: str) -> bytes:
    """A PNG of entries (dicts with key, id, reason, score, threshold, detail, kept_key)."""
    shown = list(entries)[:SHEET_LIMIT]
    font = _font()
    pair = any(e.get("kept_key") for e in shown)
    cell_w = THUMB * 2 + 4 if pair else THUMB
    columns = max(1, min(COLUMNS // (2 if pair else 1), len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    more = f" (showing {len(shown)})" if len(entries) > len(shown) else ""
    heading = f"{title}: {len(entries)} images{more}"
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # A sheet of one or two tiles is narrower than its title: the title sets the width.
    width = max(columns * (cell_w + MARGIN) + MARGIN,
                int(probe.textlength(heading, font=font)) + 2 * MARGIN)
    sheet = Image.new("RGB", (width, HEADER + rows * (THUMB + CAPTION + MARGIN)),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 4), heading, fill=(0, 0, 0), font=font)
    for i, entry in enumerate(shown):
        r, c = divmod(i, columns)
        x, y = MARGIN + c * (cell_w + MARGIN), HEADER + r * (THUMB + CAPTION + MARGIN)
        sheet.paste(_thumb(read(entry["key"]), (THUMB, THUMB)), (x, y))
        if pair:
            sheet.paste(_thumb(read(entry["kept_key"]), (THUMB, THUMB)), (x + THUMB + 4, y))
        first, second = caption_lines(entry)
        if pair:
            first += "  dropped | kept"
        draw.text((x, y + THUMB + 1), _fit(draw, first, font, cell_w), fill=(0, 0, 0), font=font)
        draw.text((x, y + THUMB + 14), _fit(draw, second, font, cell_w), fill=(90, 0, 0),
                  font=font)
    return encode(np.asarray(sheet))


def write_contact_sheets(store: ObjectStore, dataset_id: str, dropped: list[dict],
                          kept: list[dict], outlier_limit: float | None) -> dict[str, str]:
    """One sheet per drop reason and a sample of the kept images; reason -> sheet key."""
    by_reason: dict[str, list[dict]] = defaultdict(list)
    for entry in dropped:
        by_reason[entry["reason"]].append(entry)

    def read(key: str) -> bytes | None:
        try:
            return store.get_bytes(key)
        except NotFound:
            return None

    sheets = {}
    for reason, entries in sorted(by_reason.items()):
        # The most confident drops first; for lower-is-worse measures the lowest.
        lower_is_worse = reason in ("blurry", "flat", "underexposed")
        entries = sorted(entries, key=lambda e: e["score"], reverse=not lower_is_worse)
        key = keys.dataset_contact_sheet_key(dataset_id, reason)
        store.put_bytes(key, contact_sheet(entries, read, f"dropped: {reason}"))
        sheets[reason] = key
    if kept:
        key = keys.dataset_contact_sheet_key(dataset_id, "kept")
        sample = kept[:: max(1, len(kept) // 48)][:48]
        store.put_bytes(key, contact_sheet(
            [{"key": k["key"], "id": k["id"], "reason": "outlier z",
              "score": k["scores"].get("outlier_z", 0.0), "threshold": outlier_limit}
             for k in sample],
            read, f"kept (sample, captioned with outlier z); {len(kept)} kept"))
        sheets["kept"] = key
    return sheets


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

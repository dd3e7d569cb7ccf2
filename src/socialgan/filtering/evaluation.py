"""A labelled noisy "hashtag" mix from real packaged images, and how well the filter cleans it.

The topic is #nature: the good images are tiles of the nature photos of Debian's
mate-backgrounds (scripts/fetch_eval_images.sh). The junk is what spam under a hashtag
looks like, each item labelled with the stage that should catch it: broken files made
here, thumbnails and strips (unfit), re-encoded/resized/cropped copies of good tiles,
blurred/over-/under-exposed/flat pictures, text pages (scikit-image's page and text plus
rendered screenshots and a captioned photo), and off-topic pictures (Twemoji, scikit-image's
coffee, cat, rocket and astronaut, abstract wallpapers). Everything is deterministic.
"""

from __future__ import annotations

import importlib.util
import io
import struct
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

EVAL_DIR = Path("data/filter-eval")
TWEMOJI_DIR = Path(__file__).resolve().parents[3] / "tests" / "data" / "twemoji"
RESOLUTION = 128  # the mix is filtered for 128x128 posts
# Which category each stage's drops belong to.
STAGE_CATEGORY = {
    "decode": "broken", "unfit": "unfit", "exact_duplicates": "duplicate",
    "near_duplicates": "duplicate", "quality": "low_quality", "text": "text",
    "faces": "off_topic", "nsfw": "off_topic", "renders": "off_topic", "outliers": "off_topic",
}
CATEGORIES = ("broken", "unfit", "duplicate", "low_quality", "text", "off_topic")


@dataclass(frozen=True)
class Item:
    name: str
    data: bytes
    label: str  # "good" or one of CATEGORIES


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def skimage_image(name: str) -> Image.Image:
    """One of the images that ship inside the scikit-image wheel (no download)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed (pip install '.[filter]')")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return Image.open(folder / name).convert("RGB")


def lfw_faces(count: int) -> list[Image.Image]:
    """Faces from scikit-image's lfw_subset (25x25 grey), enlarged to 100px."""
    spec = importlib.util.find_spec("skimage")
    assert spec and spec.submodule_search_locations
    arr = np.load(Path(list(spec.submodule_search_locations)[0]) / "data" / "lfw_subset.npy")
    faces = arr[:100]  # the first 100 are faces, the rest are not
    return [Image.fromarray((faces[i] * 255).astype(np.uint8)).convert("RGB")
            .resize((100, 100), Image.Resampling.BICUBIC) for i in range(count)]


def nature_photos(root: Path = EVAL_DIR) -> list[tuple[str, Image.Image]]:
    paths = sorted((root / "nature").glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no evaluation photos under {root}/nature: run "
                                "scripts/fetch_eval_images.sh")
    return [(p.stem, Image.open(p).convert("RGB")) for p in paths]


def quadrants(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    return [img.crop((x, y, x + w // 2, y + h // 2)) for y in (0, h // 2) for x in (0, w // 2)]


def _font(size: int):
    return ImageFont.load_default(size=size)


def screenshot(lines: list[str], size=(480, 360), dark=False) -> Image.Image:
    bg, fg = ((20, 24, 30), (230, 230, 230)) if dark else ((250, 250, 250), (20, 20, 20))
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((16, 14 + i * 26), line, fill=fg, font=_font(20))
    return img


def captioned(img: Image.Image, top: str, bottom: str) -> Image.Image:
    img = img.copy()
    draw = ImageDraw.Draw(img)
    w, h = img.size
    font = _font(max(24, w // 9))
    for text, y in ((top, 8), (bottom, h - w // 9 - 20)):
        draw.text((w // 2, y), text, fill=(255, 255, 255), font=font, anchor="ma",
                  stroke_width=3, stroke_fill=(0, 0, 0))
    return img


def bomb_png(side: int = 30_000) -> bytes:
    """A real PNG whose header claims side x side pixels: a decompression bomb."""
    png = _png(Image.new("RGB", (8, 8), (0, 128, 0)))
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", side, side)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return png[:16] + bytes(ihdr) + crc + png[33:]


TEXT_LINES = [
    "BREAKING: you will not believe what", "happened next in the forest. Click the",
    "link in bio to win a free phone!!!", "Follow @spam_account for daily quotes",
    "and like this post to support us.", "#nature #love #instagood #photooftheday",
    "Terms and conditions apply. Offer ends", "soon. Share with three friends today.",
    "Quote of the day: the best time to", "plant a tree was twenty years ago.",
    "Retweet if you agree, comment below", "and tag someone who needs this today",
]


def build_mix(root: Path = EVAL_DIR) -> list[Item]:
    """The labelled mix: 48 good nature tiles and 58 junk items of six kinds."""
    items: list[Item] = []
    photos = nature_photos(root)
    tiles: list[tuple[str, Image.Image]] = []
    for name, img in photos:
        for q, tile in enumerate(quadrants(img)):
            tiles.append((f"{name}-q{q}", tile))
    for name, tile in tiles:
        items.append(Item(f"good/{name}", _jpeg(tile), "good"))

    # Duplicates: one copy of each photo's first or second tile, three kinds in turn.
    for i, (name, tile) in enumerate(tiles[::4]):
        kind = i % 3
        if kind == 0:
            copy, how = _jpeg(tile, quality=30), "reencoded"
        elif kind == 1:
            copy, how = _png(tile.resize((tile.width * 3 // 5, tile.height * 3 // 5),
                                         Image.Resampling.BILINEAR)), "resized"
        else:
            w, h = tile.size
            copy, how = _jpeg(tile.crop((w // 25, h // 25, w - w // 25, h - h // 25))), "cropped"
        items.append(Item(f"duplicate/{how}-{name}", copy, "duplicate"))
    items.append(Item("duplicate/exact-bmp", _bmp(tiles[5][1]), "duplicate"))

    # Low quality, from whole photos (not the tiles, so they are not also copies).
    for name, img in photos[0:3]:
        items.append(Item(f"low_quality/blurred-{name}",
                          _jpeg(img.resize((512, 320)).filter(ImageFilter.GaussianBlur(7))),
                          "low_quality"))
    for name, img in photos[3:5]:
        bright = ImageEnhance.Brightness(img.resize((512, 320))).enhance(3.5)
        items.append(Item(f"low_quality/overexposed-{name}", _jpeg(bright), "low_quality"))
    for name, img in photos[5:7]:
        dark = ImageEnhance.Brightness(img.resize((512, 320))).enhance(0.1)
        items.append(Item(f"low_quality/underexposed-{name}", _jpeg(dark), "low_quality"))
    items.append(Item("low_quality/flat-grey", _png(Image.new("RGB", (400, 400), (128, 130, 127))),
                      "low_quality"))
    ramp = np.linspace(40, 200, 400, dtype=np.float32)[None, :, None].repeat(400, 0)
    ramp = np.concatenate([ramp, ramp * 0.8, ramp * 0.5], axis=2).astype(np.uint8)
    items.append(Item("low_quality/gradient", _png(Image.fromarray(ramp)), "low_quality"))

    # Unfit: thumbnails too small for 128px, strips too wide for a square.
    for name, img in photos[7:10]:
        thumb = img.copy()
        thumb.thumbnail((56, 56))
        items.append(Item(f"unfit/thumbnail-{name}", _jpeg(thumb), "unfit"))
    for name, img in photos[10:12]:
        w, h = img.size
        items.append(Item(f"unfit/strip-{name}", _jpeg(img.crop((0, h // 2 - w // 14, w,
                                                                  h // 2 + w // 14))), "unfit"))

    # Broken files.
    good_jpeg = items[0].data
    items += [
        Item("broken/empty", b"", "broken"),
        Item("broken/truncated", good_jpeg[: len(good_jpeg) // 3], "broken"),
        Item("broken/html", b"<!doctype html><title>404</title>", "broken"),
        Item("broken/bomb", bomb_png(), "broken"),
        Item("broken/garbage-after-magic", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "broken"),
    ]

    # Text-heavy.
    items.append(Item("text/skimage-page", _png(skimage_image("page.png")), "text"))
    items.append(Item("text/skimage-text", _png(skimage_image("text.png")), "text"))
    for i in range(3):
        items.append(Item(f"text/screenshot-{i}", _png(screenshot(
            TEXT_LINES[i * 4:(i + 1) * 4] + TEXT_LINES[(i * 4 + 6) % 12:(i * 4 + 6) % 12 + 4],
            dark=i == 2)), "text"))
    meme = captioned(photos[8][1].resize((480, 480)), "WHEN THE WIFI", "FINALLY CONNECTS")
    items.append(Item("text/captioned-photo", _jpeg(meme), "text"))

    # Off-topic for #nature.
    emoji = sorted(TWEMOJI_DIR.glob("*.png"))
    for path in emoji[:: max(1, len(emoji) // 5)][:5]:
        items.append(Item(f"off_topic/emoji-{path.stem}", path.read_bytes(), "off_topic"))
    for name in ("coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png"):
        items.append(Item(f"off_topic/skimage-{name}", _jpeg(skimage_image(name)), "off_topic"))
    for name in ("Flow", "Silk", "Gulp"):  # Waves is the same picture as Silk
        img = Image.open(root / "abstract" / f"{name}.jpg").convert("RGB")
        items.append(Item(f"off_topic/abstract-{name}", _jpeg(img.resize((512, 400))),
                          "off_topic"))
    return items


EMOJI_RESOLUTION = 64  # the #emoji mix is filtered for 64x64 posts, as the demo trains


def build_emoji_mix(root: Path = EVAL_DIR) -> list[Item]:
    """A second mix from another domain, for thresholds fitted to neither: #emoji.

    The 48 committed Twemoji are the good images (clipart on transparency, where the
    #nature mix has photos); the junk is the same kinds as there, with photos now the
    off-topic pictures: 4 nature tiles, scikit-image's 4 photos and 2 wallpapers.
    """
    emoji = sorted(TWEMOJI_DIR.glob("*.png"))
    if not emoji:
        raise FileNotFoundError(f"no Twemoji under {TWEMOJI_DIR}")
    items = [Item(f"good/{p.stem}", p.read_bytes(), "good") for p in emoji]
    pictures = [Image.open(p).convert("RGBA") for p in emoji]

    def on_white(img: Image.Image) -> Image.Image:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")

    for i, img in enumerate(pictures[1:16:3]):  # 5 copies, three kinds in turn
        if i % 3 == 0:
            copy, how = _jpeg(on_white(img), quality=40), "reencoded"
        elif i % 3 == 1:
            copy, how = _png(img.resize((48, 48), Image.Resampling.BILINEAR)), "resized"
        else:
            copy, how = _png(img.crop((2, 2, 62, 62))), "cropped"
        items.append(Item(f"duplicate/{how}-{emoji[1 + 3 * i].stem}", copy, "duplicate"))
    items.append(Item("low_quality/flat-grey", _png(Image.new("RGB", (64, 64), (128, 130, 127))),
                      "low_quality"))
    items.append(Item("low_quality/blurred", _png(on_white(pictures[20]).filter(
        ImageFilter.GaussianBlur(4))), "low_quality"))
    items.append(Item("unfit/thumbnail", _png(pictures[30].resize((24, 24))), "unfit"))
    items.append(Item("unfit/strip", _png(on_white(pictures[31]).resize((256, 32))), "unfit"))
    items += [
        Item("broken/empty", b"", "broken"),
        Item("broken/truncated", items[0].data[: len(items[0].data) // 2], "broken"),
        Item("broken/html", b"<!doctype html><title>403</title>", "broken"),
    ]
    for i in range(2):
        items.append(Item(f"text/screenshot-{i}", _png(screenshot(
            TEXT_LINES[i * 6:(i + 1) * 6], dark=i == 1)), "text"))
    for name, img in nature_photos(root)[::3]:
        items.append(Item(f"off_topic/nature-{name}", _jpeg(quadrants(img)[1]), "off_topic"))
    for name in ("coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png"):
        items.append(Item(f"off_topic/skimage-{name}", _jpeg(skimage_image(name)), "off_topic"))
    for name in ("Flow", "Gulp"):
        img = Image.open(root / "abstract" / f"{name}.jpg").convert("RGB")
        items.append(Item(f"off_topic/abstract-{name}", _jpeg(img.resize((512, 400))),
                          "off_topic"))
    return items


def _bmp(img: Image.Image) -> bytes:
    """The pixels of a JPEG-stored tile, in another container: an exact duplicate."""
    decoded = Image.open(io.BytesIO(_jpeg(img))).convert("RGB")
    buf = io.BytesIO()
    decoded.save(buf, format="BMP")
    return buf.getvalue()


@dataclass
class Scores:
    junk_removed: float  # recall of junk overall
    good_kept: float  # share of good images kept
    per_stage: dict[str, dict[str, float]]  # category -> precision, recall, caught, total
    confusion: dict[str, Counter]  # label -> Counter of outcomes (kept or category)


def evaluate(labels: dict[str, str], kept_ids: Iterable[str],
             dropped: Iterable[dict]) -> Scores:
    """labels: image id -> label; dropped: manifest entries with id and stage."""
    outcome = {i: "kept" for i in kept_ids}
    for entry in dropped:
        outcome[entry["id"]] = STAGE_CATEGORY.get(entry["stage"], entry["stage"])
    confusion: dict[str, Counter] = {}
    for image_id, label in labels.items():
        confusion.setdefault(label, Counter())[outcome.get(image_id, "missing")] += 1
    good = confusion.get("good", Counter())
    junk_total = sum(sum(c.values()) for lab, c in confusion.items() if lab != "good")
    junk_caught = sum(sum(v for k, v in c.items() if k != "kept")
                      for lab, c in confusion.items() if lab != "good")
    per_stage = {}
    for cat in CATEGORIES:
        total = sum(confusion.get(cat, Counter()).values())
        caught = confusion.get(cat, Counter())[cat]
        claimed = sum(c[cat] for c in confusion.values())
        per_stage[cat] = {"precision": caught / claimed if claimed else 1.0,
                          "recall": caught / total if total else 1.0,
                          "caught": caught, "claimed": claimed, "total": total}
    return Scores(junk_removed=junk_caught / max(1, junk_total),
                  good_kept=good["kept"] / max(1, sum(good.values())),
                  per_stage=per_stage, confusion=confusion)

"""Two labelled #nature mixes from pictures the filter's thresholds were never chosen on.

The filter was tuned on evaluation.build_mix (mate-backgrounds, scikit-image's photos,
half of the Twemoji). These mixes come from other packages (scripts/fetch_eval_images.sh
puts them under data/filter-eval/packaged/), so a threshold that only fits the old mix
shows here:

- build_tuning_mix: the good images are tiles of KDE Plasma's nature photos; its junk is
  Plasma's abstract art and cartoons, scikit-image's astronaut and other photos.
  Thresholds may be chosen on it.
- build_heldout_mix: the good images are tiles of Lomiri's (Ubuntu Touch's) nature
  photos; its junk is GNOME's and Lomiri's abstract art, matplotlib's Grace Hopper and
  gift clipart, scikit-image's cameraman, Lomiri's indoor and animal photos and the other
  half of the Twemoji. It is kept for the final figures only.

Both carry the same seven kinds of junk, each image labelled with its kind, so the
figures come per kind: near_duplicate, corrupt, text (screenshots, handwriting,
captions), clipart (emoji, icons), abstract (rendered wallpapers vs photos), portrait
and off_topic (photos of other subjects). Everything is deterministic.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from socialgan.filtering.evaluation import (
    EVAL_DIR,
    TWEMOJI_DIR,
    Item,
    _jpeg,
    _png,
    bomb_png,
    lfw_faces,
    skimage_image,
)

PACKAGED_DIR = EVAL_DIR / "packaged"
KINDS = ("near_duplicate", "corrupt", "text", "clipart", "abstract", "portrait", "off_topic")
RESOLUTION = 128

TUNING_NATURE = ("BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf",
                 "Kite", "OneStandsOut", "Path", "summer_1am")
TUNING_ABSTRACT = ("Altai", "Canopee", "Cascade", "Cluster", "Elarun", "Honeywave", "IceCold",
                   "Kokkini", "Opal", "Patak")
HELDOUT_NATURE = ("Bridge", "Dragonfly", "Kleiber", "aitzgorri", "life", "picosdeeuropa",
                  "seeding", "sunset")
HELDOUT_ABSTRACT_LOMIRI = ("Fossa", "Infinite-Sea", "Painting-Colors", "analogpattern", "umang")

SENTENCES = [
    "meet me at the old bridge at seven", "dont forget the milk and the eggs",
    "happy birthday dear grandma, love you", "notes: chapter four, review the maths",
    "the weather was lovely on sunday", "call the plumber before friday please",
    "we walked along the river all day", "remember to water the tomatoes",
    "list: bread, cheese, apples, coffee", "thank you for the lovely flowers",
    "the meeting moved to room twelve", "see you next summer by the lake",
]


def _open(folder: str, name: str) -> Image.Image:
    path = PACKAGED_DIR / folder / f"{name}.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run scripts/fetch_eval_images.sh")
    return Image.open(path).convert("RGB")


def _font(path: Path | str, size: int):
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size=size)


def _sans(size: int):
    return _font("DejaVuSans.ttf", size)


def _mono(size: int):
    return _font("DejaVuSansMono.ttf", size)


def _paper(size: tuple[int, int], rng: np.random.Generator, lined: bool) -> Image.Image:
    w, h = size
    tone = np.array([246, 242, 228], np.float32) + rng.normal(0, 4, 3)
    base = np.ones((h, w, 3), np.float32) * tone
    base += rng.normal(0, 3, (h, w, 1))  # paper grain, as a camera sees it
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    if lined:
        draw = ImageDraw.Draw(img)
        for y in range(50, h, 34):
            draw.line([(0, y), (w, y)], fill=(170, 190, 220), width=1)
    return img


def handwriting(lines: list[str], seed: int, size=(520, 400)) -> Image.Image:
    """A photographed note: a script font, each letter jittered, on grainy paper."""
    rng = np.random.default_rng(seed)
    img = _paper(size, rng, lined=seed % 2 == 0)
    draw = ImageDraw.Draw(img)
    font = _font(PACKAGED_DIR / "Z003.otf", int(30 + seed % 3 * 4))
    ink = [(20, 30, 110), (30, 30, 30), (90, 20, 20)][seed % 3]
    y = 24.0
    for line in lines:
        x = 18.0 + rng.uniform(0, 20)
        for ch in line:
            draw.text((x, y + rng.normal(0, 1.5)), ch, fill=ink, font=font)
            x += draw.textlength(ch, font=font) * rng.uniform(0.95, 1.1)
        y += 34 * rng.uniform(0.97, 1.05)
    img = img.rotate(float(rng.uniform(-6, 6)), resample=Image.Resampling.BICUBIC,
                     fillcolor=(120, 110, 100))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def scribbles(seed: int, size=(480, 360)) -> Image.Image:
    """Cursive-like pen strokes (loops along a baseline) on paper: writing in no font."""
    rng = np.random.default_rng(seed)
    img = _paper(size, rng, lined=False)
    draw = ImageDraw.Draw(img)
    w, h = size
    for row in range(int(rng.integers(6, 9))):
        y0 = 40 + row * 40
        x = 20.0
        while x < w - 60:
            word = int(rng.integers(3, 8))
            t = np.linspace(0, word * 2 * math.pi, word * 24)
            amp = rng.uniform(6, 12, len(t))
            xs = x + t / (2 * math.pi) * rng.uniform(9, 13) + 4 * np.cos(t)
            ys = y0 - amp * (0.5 + 0.5 * np.sin(t)) * rng.choice([1, 1, 1.8], len(t))
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=(25, 35, 90),
                      width=2)
            x = float(xs[-1]) + rng.uniform(12, 24)
    return img.filter(ImageFilter.GaussianBlur(0.5))


def chat_screenshot(messages: list[str], dark: bool) -> Image.Image:
    bg, me, them, fg = ((18, 18, 22), (0, 92, 75), (40, 40, 48), (235, 235, 235)) if dark \
        else ((236, 229, 221), (220, 248, 198), (255, 255, 255), (20, 20, 20))
    img = Image.new("RGB", (400, 640), bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 400, 56], fill=(7, 94, 84))
    draw.text((64, 16), "Sam (nature club)", fill=(255, 255, 255), font=_sans(20))
    y = 72
    for i, text in enumerate(messages):
        mine = i % 2 == 1
        box_w = min(300, int(draw.textlength(text, font=_sans(16))) + 24)
        x = 400 - box_w - 12 if mine else 12
        draw.rounded_rectangle([x, y, x + box_w, y + 40], 10, fill=me if mine else them)
        draw.text((x + 12, y + 10), text[:34], fill=fg, font=_sans(16))
        y += 52
    return img


def code_screenshot(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (560, 380), (30, 31, 34))
    draw = ImageDraw.Draw(img)
    words = ["def", "return", "for", "in", "if", "None", "self", "image", "score", "np.mean",
             "import", "class", "yield", "range", "len", "assert"]
    colours = [(204, 120, 50), (106, 135, 89), (152, 118, 170), (169, 183, 198)]
    for row in range(16):
        draw.text((8, 8 + row * 22), f"{row + 1:>3}", fill=(100, 100, 100), font=_mono(14))
        x = 48 + 16 * int(rng.integers(0, 4))
        for _ in range(int(rng.integers(2, 7))):
            word = str(rng.choice(words))
            draw.text((x, 8 + row * 22), word, fill=colours[int(rng.integers(0, 4))],
                      font=_mono(14))
            x += draw.textlength(word + " ", font=_mono(14))
    return img


def post_screenshot(text: str, photo: Image.Image) -> Image.Image:
    """A social post as a screenshot: header, text, a photo below."""
    img = Image.new("RGB", (480, 600), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse([16, 16, 64, 64], fill=(29, 161, 242))
    draw.text((76, 18), "Daily Nature Facts", fill=(15, 20, 25), font=_sans(18))
    draw.text((76, 42), "@nature_facts_daily - 2h", fill=(100, 110, 120), font=_sans(14))
    words, line, y = text.split(), "", 84
    for word in words:
        if draw.textlength(line + word, font=_sans(20)) > 440:
            draw.text((16, y), line, fill=(15, 20, 25), font=_sans(20))
            line, y = "", y + 28
        line += word + " "
    draw.text((16, y), line, fill=(15, 20, 25), font=_sans(20))
    img.paste(photo.resize((448, 260)), (16, y + 44))
    draw.text((16, 570), "12.4K likes   803 reposts   1,204 replies", fill=(100, 110, 120),
              font=_sans(14))
    return img


def captioned(photo: Image.Image, top: str, bottom: str) -> Image.Image:
    img = photo.resize((480, 480))
    draw = ImageDraw.Draw(img)
    font = _font("DejaVuSans-Bold.ttf", 44)
    for text, y in ((top, 12), (bottom, 410)):
        draw.text((240, y), text, fill=(255, 255, 255), font=font, anchor="ma",
                  stroke_width=3, stroke_fill=(0, 0, 0))
    return img


def icon(seed: int) -> Image.Image:
    """Flat clipart: a few filled shapes in flat colours on white or transparency."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (256, 256), (255, 255, 255, 0 if seed % 2 else 255))
    draw = ImageDraw.Draw(img)
    palette = [(239, 71, 111), (255, 209, 102), (6, 214, 160), (17, 138, 178), (7, 59, 76)]
    kind = seed % 3
    if kind == 0:  # sun
        draw.ellipse([78, 78, 178, 178], fill=palette[1])
        for a in range(0, 360, 45):
            r = math.radians(a)
            draw.line([(128 + 60 * math.cos(r), 128 + 60 * math.sin(r)),
                       (128 + 110 * math.cos(r), 128 + 110 * math.sin(r))],
                      fill=palette[1], width=12)
    elif kind == 1:  # heart
        draw.ellipse([40, 60, 132, 152], fill=palette[0])
        draw.ellipse([124, 60, 216, 152], fill=palette[0])
        draw.polygon([(44, 120), (212, 120), (128, 220)], fill=palette[0])
    else:  # tree badge
        draw.rounded_rectangle([20, 20, 236, 236], 40, fill=palette[3])
        draw.polygon([(128, 40), (60, 170), (196, 170)], fill=palette[2])
        draw.rectangle([116, 170, 140, 215], fill=palette[4])
    x = int(rng.integers(0, 3))
    if x:
        img = img.rotate(15 * x, resample=Image.Resampling.BICUBIC)
    return img


def _rgba_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _corrupt(good: bytes, png: bytes, seed: int) -> list[Item]:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    cut = len(good) // (2 + seed % 3)
    return [
        Item(f"corrupt/truncated-{seed}", good[:cut], "corrupt"),
        Item(f"corrupt/empty-{seed}", b"", "corrupt"),
        Item(f"corrupt/html-{seed}", b"<!doctype html><html><body>Rate limited</body></html>"
             + bytes([seed]), "corrupt"),
        Item(f"corrupt/bomb-{seed}", bomb_png(25_000 + seed), "corrupt"),
        Item(f"corrupt/png-bad-body-{seed}", png[:60] + noise + png[60 + 600:], "corrupt"),
        Item(f"corrupt/jpeg-header-only-{seed}", good[:400], "corrupt"),
    ]


def _copies(tiles: list[tuple[str, Image.Image]], seed: int) -> list[Item]:
    """One copy of every third tile, four kinds in turn."""
    items = []
    for i, (name, tile) in enumerate(tiles[seed % 3::3]):
        kind = (i + seed) % 4
        w, h = tile.size
        if kind == 0:
            copy, how = _jpeg(tile, quality=25 + 10 * (seed % 2)), "reencoded"
        elif kind == 1:
            copy, how = _png(tile.resize((w // 2, h // 2), Image.Resampling.BILINEAR)), "resized"
        elif kind == 2:
            m = max(2, w // (20 + 5 * (seed % 2)))
            copy, how = _jpeg(tile.crop((m, m, w - m, h - m))), "cropped"
        else:
            copy, how = _jpeg(ImageEnhance.Brightness(tile).enhance(1.08), 80), "brightened"
        items.append(Item(f"near_duplicate/{how}-{name}", copy, "near_duplicate"))
    return items


def sixths(img: Image.Image) -> list[Image.Image]:
    """The picture cut 3 x 2: a wallpaper's parts look like photos of their own."""
    w, h = img.size
    return [img.crop((x * w // 3, y * h // 2, (x + 1) * w // 3, (y + 1) * h // 2))
            for y in range(2) for x in range(3)]


def _tiles(folder: str, names: Iterable[str]) -> list[tuple[str, Image.Image]]:
    tiles = []
    for name in names:
        for q, tile in enumerate(sixths(_open(folder, name))):
            tiles.append((f"{name}-t{q}", tile))
    return tiles


def _good(tiles: list[tuple[str, Image.Image]]) -> list[Item]:
    return [Item(f"good/{name}", _jpeg(tile), "good") for name, tile in tiles]


def _abstract(img: Image.Image, name: str, crop: bool) -> Item:
    """A wallpaper, whole or its centre crop (what a reposted crop of it looks like)."""
    w, h = img.size
    if crop:
        return Item(f"abstract/{name}-crop", _jpeg(img.crop((w // 4, h // 4, w * 3 // 4,
                                                               h * 3 // 4))), "abstract")
    return Item(f"abstract/{name}", _jpeg(img.resize((640, 640 * h // w))), "abstract")


def _portraits(photo: Image.Image, face_box: tuple[int, int, int, int], name: str,
               faces: list[Image.Image]) -> list[Item]:
    x0, y0, x1, y1 = face_box
    items = [Item(f"portrait/{name}", _jpeg(photo), "portrait"),
             Item(f"portrait/{name}-face", _jpeg(photo.crop(face_box)), "portrait")]
    pad = (x1 - x0) // 2
    selfie = photo.crop((max(0, x0 - pad), max(0, y0 - pad // 2),
                         min(photo.width, x1 + pad), min(photo.height, y1 + pad * 2)))
    items.append(Item(f"portrait/{name}-selfie", _jpeg(ImageEnhance.Color(selfie)
                                                        .enhance(1.3)), "portrait"))
    items += [Item(f"portrait/{name}-lfw{i}", _jpeg(f), "portrait") for i, f in enumerate(faces)]
    return items


def _emoji(start: int) -> list[Item]:
    paths = sorted(TWEMOJI_DIR.glob("*.png"))[start::2][:8]
    return [Item(f"clipart/emoji-{p.stem}", p.read_bytes(), "clipart") for p in paths]


def build_tuning_mix() -> list[Item]:
    """The mix thresholds may be chosen on: Plasma's photos and art (54 good tiles)."""
    tiles = _tiles("plasma", TUNING_NATURE)
    items = _good(tiles)
    items += _copies(tiles, seed=0)
    items += _corrupt(items[0].data, _png(tiles[1][1]), seed=1)
    items.append(Item("text/skimage-page", _png(skimage_image("page.png")), "text"))
    items += [Item(f"text/handwriting-{i}", _jpeg(handwriting(SENTENCES[i * 4:i * 4 + 6], i)),
                   "text") for i in range(2)]
    items.append(Item("text/scribbles-0", _jpeg(scribbles(0)), "text"))
    items.append(Item("text/chat-0", _png(chat_screenshot(SENTENCES[:8], dark=False)), "text"))
    items.append(Item("text/code-0", _png(code_screenshot(0)), "text"))
    items.append(Item("text/post-0", _png(post_screenshot(
        " ".join(SENTENCES[2:5]), _open("plasma", "Autumn"))), "text"))
    items.append(Item("text/caption-0", _jpeg(captioned(_open("plasma", "Volna"),
                                                         "MONDAY MOOD", "SEND HELP")), "text"))
    items += _emoji(0)
    items += [Item(f"clipart/icon-{i}", _rgba_png(icon(i)), "clipart") for i in range(3)]
    for name in ("FlyingKonqui", "SafeLanding"):
        items.append(Item(f"clipart/cartoon-{name}", _jpeg(_open("plasma", name)), "clipart"))
    for i, name in enumerate(TUNING_ABSTRACT):
        items.append(_abstract(_open("plasma", name), name, crop=i % 2 == 0))
    items += _portraits(skimage_image("astronaut.png"), (150, 20, 290, 190), "astronaut",
                        lfw_faces(6))
    for name in ("coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"):
        items.append(Item(f"off_topic/skimage-{name}", _jpeg(skimage_image(name)), "off_topic"))
    for name in ("ColorfulCups", "Grey"):
        items.append(Item(f"off_topic/{name}", _jpeg(_open("plasma", name)), "off_topic"))
    return items


def build_heldout_mix() -> list[Item]:
    """The mix kept for the final figures: Lomiri's photos, GNOME's art (48 good tiles)."""
    tiles = _tiles("lomiri", HELDOUT_NATURE)
    items = _good(tiles)
    items += _copies(tiles, seed=1)
    items += _corrupt(items[3].data, _png(tiles[5][1]), seed=2)
    items.append(Item("text/skimage-text", _png(skimage_image("text.png")), "text"))
    items += [Item(f"text/handwriting-{i}", _jpeg(handwriting(SENTENCES[(i * 5) % 12:][:5],
                                                              i + 7)), "text")
              for i in range(2)]
    items.append(Item("text/scribbles-1", _jpeg(scribbles(5)), "text"))
    items.append(Item("text/chat-1", _png(chat_screenshot(SENTENCES[4:12], dark=True)), "text"))
    items.append(Item("text/code-1", _png(code_screenshot(3)), "text"))
    items.append(Item("text/post-1", _png(post_screenshot(
        " ".join(SENTENCES[7:10]), _open("lomiri", "free"))), "text"))
    items.append(Item("text/caption-1", _jpeg(captioned(_open("lomiri", "friends"),
                                                         "WHO LET THE DOGS", "OUT")), "text"))
    items += _emoji(1)
    items += [Item(f"clipart/icon-{i}", _rgba_png(icon(i)), "clipart") for i in range(3, 6)]
    gift = (PACKAGED_DIR / "Minduka_Present_Blue_Pack.png").read_bytes()
    items.append(Item("clipart/gift", gift, "clipart"))
    gnome = sorted(p.stem for p in (PACKAGED_DIR / "gnome").glob("*-l.jpg"))[:5]
    for i, name in enumerate(gnome):
        items.append(_abstract(_open("gnome", name), name, crop=i % 2 == 0))
    for i, name in enumerate(HELDOUT_ABSTRACT_LOMIRI):
        items.append(_abstract(_open("lomiri", name), name, crop=i % 2 == 1))
    hopper = Image.open(PACKAGED_DIR / "people" / "grace_hopper.jpg").convert("RGB")
    box = tuple(round(v * hopper.width / 512) for v in (150, 60, 370, 330))
    items += _portraits(hopper, box, "grace_hopper",  # type: ignore[arg-type]
                        lfw_faces(56)[50:56])
    items.append(Item("portrait/cameraman", _jpeg(skimage_image("camera.png")), "portrait"))
    for name in ("Wine", "Picture_0B", "Picture_1A", "greentock", "friends"):
        items.append(Item(f"off_topic/{name}", _jpeg(_open("lomiri", name)), "off_topic"))
    items.append(Item("off_topic/skimage-coins", _jpeg(skimage_image("coins.png")),
                      "off_topic"))
    return items


def evaluate_kinds(labels: dict[str, str], kept_ids: Iterable[str]) -> dict[str, dict]:
    """Per kind: how many there were and how many were removed; for good, how many kept."""
    kept = set(kept_ids)
    totals: Counter[str] = Counter(labels.values())
    out: dict[str, dict] = {}
    for kind, total in sorted(totals.items()):
        n_kept = sum(1 for i, lab in labels.items() if lab == kind and i in kept)
        if kind == "good":
            out[kind] = {"total": total, "kept": n_kept, "share_kept": n_kept / total}
        else:
            out[kind] = {"total": total, "removed": total - n_kept,
                         "share_removed": (total - n_kept) / total}
    junk = [i for i, lab in labels.items() if lab != "good"]
    out["all_junk"] = {"total": len(junk), "removed": sum(i not in kept for i in junk),
                       "share_removed": sum(i not in kept for i in junk) / max(1, len(junk))}
    return out

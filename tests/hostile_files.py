"""Hostile image files, generated: what a scrape or the filter may be handed by anyone.

hostile_files() returns a few hundred small files (all under ~300 kB, generated in about a
second): truncations and corruptions of every accepted format, decompression bombs and
headers that lie about their size, huge frame counts, every colour mode, malformed EXIF,
non-images in image clothing and odd file names. zip_bombs() builds archives that inflate
past the member cap; plant_special_files() puts FIFOs and links that leave the folder
into a folder. Each file has a category, so a test can report outcomes per category.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Hostile:
    name: str  # a file name (may hold spaces, unicode, odd dots)
    data: bytes
    category: str


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def raw_png(width: int, height: int, colour_type: int, rows: bytes, *, bit_depth: int = 8,
            extra: list[tuple[bytes, bytes]] = (), ihdr_size: tuple[int, int] | None = None
            ) -> bytes:
    """A PNG written chunk by chunk, so its chunks can say whatever a test wants."""
    w, h = ihdr_size or (width, height)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    chunks = [png_chunk(b"IHDR", ihdr)]
    chunks += [png_chunk(kind, payload) for kind, payload in extra]
    chunks += [png_chunk(b"IDAT", zlib.compress(rows)), png_chunk(b"IEND", b"")]
    return PNG_MAGIC + b"".join(chunks)


def long_trns_palette_png() -> bytes:
    """Issue #9 item 7: 64x64 colour type 3, a 2-colour PLTE, 300 bytes of tRNS."""
    rows = b"".join(b"\0" + bytes([(x + y) % 2 for x in range(64)]) for y in range(64))
    return raw_png(64, 64, 3, rows, extra=[(b"PLTE", b"\0\0\0\xff\xff\xff"),
                                           (b"tRNS", b"\x80" * 300)])


def _pixels(seed: int, side: int = 32, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, channels), np.uint8)


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _bases() -> dict[str, bytes]:
    rgb = Image.fromarray(_pixels(1))
    frames = [Image.fromarray(_pixels(10 + i)) for i in range(3)]
    return {
        "png": encoded(rgb, "PNG"),
        "jpg": encoded(rgb, "JPEG", quality=90),
        "gif": encoded(rgb.convert("P"), "GIF"),
        "webp": encoded(rgb, "WEBP", quality=80),
        "bmp": encoded(rgb, "BMP"),
        "apng": encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "agif": encoded(frames[0].convert("P"), "GIF", save_all=True,
                        append_images=[f.convert("P") for f in frames[1:]]),
    }


_EXT = {"png": ".png", "jpg": ".jpg", "gif": ".gif", "webp": ".webp", "bmp": ".bmp",
        "apng": ".png", "agif": ".gif"}


def _truncations(bases: dict[str, bytes]) -> list[Hostile]:
    out = []
    for kind, data in bases.items():
        cuts = {0, 1, 4, 8, 12, 16, 24, 33, 50, len(data) // 4, len(data) // 2,
                len(data) - 12, len(data) - 1}
        for cut in sorted(c for c in cuts if 0 <= c < len(data)):
            out.append(Hostile(f"trunc-{kind}-{cut}{_EXT[kind]}", data[:cut], "truncation"))
    return out


def _corruptions(bases: dict[str, bytes]) -> list[Hostile]:
    rng = random.Random(9)
    out = []
    for kind, data in bases.items():
        for i in range(8):
            body = bytearray(data)
            for _ in range(1 + i * 3):
                at = rng.randrange(min(len(body), 8 + i * 40), len(body))
                body[at] ^= 1 << rng.randrange(8)
            out.append(Hostile(f"flip-{kind}-{i}{_EXT[kind]}", bytes(body), "corruption"))
    return out


def _bombs() -> list[Hostile]:
    rows = b"\0" * (1 + 3 * 8) * 8
    out = []
    for w, h in [(100_000, 100_000), (30_000, 30_000), (9_500, 9_500), (65_535, 1_400),
                 (2**31 - 1, 1), (1, 2**31 - 1), (0, 64), (64, 0)]:
        out.append(Hostile(f"bomb-png-ihdr-{w}x{h}.png",
                           raw_png(8, 8, 2, rows, ihdr_size=(w, h)), "bomb"))
    gif = bytearray(encoded(Image.new("P", (8, 8)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65_535, 65_535)  # logical screen
    out.append(Hostile("bomb-gif-screen.gif", bytes(gif), "bomb"))
    jpg = bytearray(encoded(Image.new("RGB", (8, 8)), "JPEG"))
    sof = jpg.find(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 65_500, 65_500)
    out.append(Hostile("bomb-jpg-sof.jpg", bytes(jpg), "bomb"))
    bmp = bytearray(encoded(Image.new("RGB", (8, 8)), "BMP"))
    bmp[18:26] = struct.pack("<ii", 50_000, 50_000)
    out.append(Hostile("bomb-bmp-header.bmp", bytes(bmp), "bomb"))
    bmp[18:26] = struct.pack("<ii", 8, -2**31)
    out.append(Hostile("bomb-bmp-negative-height.bmp", bytes(bmp), "bomb"))
    # Under the guard: decodes, under the shared decode budget (small file, 16 Mpx).
    out.append(Hostile("big-under-guard-4000.png", encoded(Image.new("P", (4000, 4000)),
                                                         "PNG"), "bomb"))
    return out


def _lying_headers(bases: dict[str, bytes]) -> list[Hostile]:
    rows = b"".join(b"\0" + bytes(range(24)) for _ in range(8))
    out = [
        Hostile("lie-ihdr-bigger.png", raw_png(8, 8, 2, rows, ihdr_size=(64, 64)), "lying"),
        Hostile("lie-ihdr-smaller.png", raw_png(8, 8, 2, rows, ihdr_size=(2, 2)), "lying"),
        Hostile("lie-bit-depth-3.png", raw_png(8, 8, 2, rows, bit_depth=3), "lying"),
        Hostile("lie-colour-type-5.png", raw_png(8, 8, 5, rows), "lying"),
        Hostile("lie-palette-no-plte.png", raw_png(8, 8, 3, b"\0" * 72), "lying"),
        Hostile("lie-long-trns.png", long_trns_palette_png(), "lying"),
        Hostile("lie-trns-on-rgb.png", raw_png(8, 8, 2, rows, extra=[(b"tRNS", b"\1" * 99)]),
                "lying"),
        Hostile("lie-plte-300.png", raw_png(8, 8, 3, b"\0" * 72,
                                            extra=[(b"PLTE", b"\7" * 900)]), "lying"),
        Hostile("lie-bad-crc.png", bases["png"][:29] + b"\0\0\0\0" + bases["png"][33:],
                "lying"),
        Hostile("lie-png-magic-jpeg-body.png", PNG_MAGIC + bases["jpg"], "lying"),
        Hostile("lie-jpeg-magic-png-body.jpg", b"\xff\xd8\xff" + bases["png"], "lying"),
        Hostile("lie-png-named.jpg", bases["png"], "lying"),
        Hostile("lie-jpg-named.png", bases["jpg"], "lying"),
        Hostile("lie-riff-not-webp.webp", b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 20, "lying"),
        Hostile("lie-webp-size.webp", bases["webp"][:4] + struct.pack("<I", 2**31)
                + bases["webp"][8:], "lying"),
        Hostile("lie-bmp-offset.bmp", bases["bmp"][:10] + struct.pack("<I", 2**31)
                + bases["bmp"][14:], "lying"),
        Hostile("lie-bmp-bpp-7.bmp", bases["bmp"][:28] + struct.pack("<H", 7)
                + bases["bmp"][30:], "lying"),
        Hostile("lie-idat-garbage.png", raw_png(8, 8, 2, rows)[:41] + b"\xde\xad" * 20
                + png_chunk(b"IEND", b""), "lying"),
        Hostile("lie-chunk-length-huge.png", PNG_MAGIC + struct.pack(">I", 2**31 - 1)
                + b"IHDR" + b"\0" * 20, "lying"),
        Hostile("lie-zlib-bomb-idat.png", raw_png(4000, 4000, 0, b"\0" * (4001 * 4000))
                [:-12] + png_chunk(b"IEND", b""), "lying"),
    ]
    return out


def _frame_counts() -> list[Hostile]:
    out = []
    one = encoded(Image.new("RGB", (8, 8), "red"), "PNG")
    for frames in (2**31 - 1, 65_536, 0):
        actl = png_chunk(b"acTL", struct.pack(">II", frames, 0))
        out.append(Hostile(f"frames-apng-actl-{frames}.png", one[:33] + actl + one[33:],
                           "frames"))
    tiles = [Image.new("P", (2, 2), i % 2) for i in range(3000)]
    for tile in tiles:  # two colours, so no two frames in a row are the same picture
        tile.putpalette([0, 0, 0, 255, 255, 255])
    out.append(Hostile("frames-gif-3000.gif", encoded(tiles[0], "GIF", save_all=True,
                                                      append_images=tiles[1:], duration=1),
                       "frames"))
    webp = [Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(200)]
    out.append(Hostile("frames-webp-200.webp", encoded(webp[0], "WEBP", save_all=True,
                                                       append_images=webp[1:]), "frames"))
    agif = encoded(tiles[0], "GIF", save_all=True, append_images=tiles[1:5])
    out.append(Hostile("frames-gif-truncated-later.gif", agif[: len(agif) - 30], "frames"))
    return out


def _colour_modes() -> list[Hostile]:
    px = _pixels(3, 16, 4)
    out = []
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "CMYK", "YCbCr", "PA",
                 "La", "RGBa", "F", "HSV", "LAB"):
        try:
            img = Image.fromarray(px[:, :, :4]).convert(mode) if mode not in ("I;16",) \
                else Image.fromarray(px[:, :, 0].astype(np.uint16) * 257)
        except (ValueError, OSError):
            continue
        for fmt, ext in (("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"),
                         ("BMP", ".bmp"), ("GIF", ".gif")):
            try:
                data = encoded(img, fmt)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            out.append(Hostile(f"mode-{mode.replace(';', '_')}-{fmt.lower()}{ext}", data,
                               "colour_mode"))
    for bits in (1, 2, 4, 16):
        rows = b"".join(b"\0" + bytes(range(16 * bits // 8 or 1)) for _ in range(16))
        out.append(Hostile(f"mode-gray-{bits}bit.png", raw_png(16, 16, 0, rows, bit_depth=bits),
                           "colour_mode"))
    rows16 = b"".join(b"\0" + bytes(16 * 8) for _ in range(16))
    out.append(Hostile("mode-rgba-16bit.png", raw_png(16, 16, 6, rows16, bit_depth=16),
                       "colour_mode"))
    out.append(Hostile("mode-palette-trns-ok.png",
                       raw_png(2, 2, 3, b"\0\0\1\0\1\0", extra=[
                           (b"PLTE", b"\0\0\0\xff\xff\xff"), (b"tRNS", b"\0")]),
                       "colour_mode"))
    return out


def _exif_jpeg(exif: bytes) -> bytes:
    base = encoded(Image.fromarray(_pixels(5, 16)), "JPEG")
    segment = b"Exif\0\0" + exif
    return base[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + base[2:]


def _tiff_ifd(entries: list[tuple[int, int, int, bytes]], offset: int = 8) -> bytes:
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]
    return b"II*\0" + struct.pack("<I", offset) + body + b"\0\0\0\0"


def _malformed_exif() -> list[Hostile]:
    out = []
    for value in (0, 2, 3, 5, 6, 7, 8, 9, 65_535):
        exif = _tiff_ifd([(0x0112, 3, 1, struct.pack("<H", value))])
        out.append(Hostile(f"exif-orientation-{value}.jpg", _exif_jpeg(exif), "exif"))
    out += [
        Hostile("exif-orientation-string.jpg",
                _exif_jpeg(_tiff_ifd([(0x0112, 2, 4, b"six\0")])), "exif"),
        Hostile("exif-ifd-past-end.jpg", _exif_jpeg(_tiff_ifd([], offset=2**31)), "exif"),
        Hostile("exif-ifd-loop.jpg", _exif_jpeg(b"II*\0\x08\0\0\0\x01\0" + struct.pack(
            "<HHII", 0x8769, 4, 1, 8) + b"\x08\0\0\0"), "exif"),
        Hostile("exif-count-huge.jpg", _exif_jpeg(_tiff_ifd([(0x010F, 2, 2**31, b"\0" * 4)])),
                "exif"),
        Hostile("exif-garbage.jpg", _exif_jpeg(bytes(range(256)) * 4), "exif"),
        Hostile("exif-empty.jpg", _exif_jpeg(b""), "exif"),
        Hostile("exif-bad-byte-order.jpg", _exif_jpeg(b"XX*\0\x08\0\0\0" + b"\0" * 8), "exif"),
    ]
    png = encoded(Image.fromarray(_pixels(6, 16)), "PNG")
    for i, exif in enumerate([b"", b"junk" * 10, _tiff_ifd([(0x0112, 3, 1, b"\x06\0")])]):
        out.append(Hostile(f"exif-png-exif-chunk-{i}.png",
                           png[:33] + png_chunk(b"eXIf", exif) + png[33:], "exif"))
    return out


def _not_images() -> list[Hostile]:
    return [
        Hostile("empty.png", b"", "not_image"),
        Hostile("text.png", b"just some text\n", "not_image"),
        Hostile("page.jpg", b"<html><body>not an image</body></html>", "not_image"),
        Hostile("vector.png", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "not_image"),
        Hostile("doc.png", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "not_image"),
        Hostile("tiff.png", encoded(Image.new("RGB", (4, 4)), "TIFF"), "not_image"),
        Hostile("ico.png", encoded(Image.new("RGB", (16, 16)), "ICO"), "not_image"),
        Hostile("noise.jpg", random.Random(1).randbytes(4096), "not_image"),
        Hostile("zeros.bmp", b"\0" * 1024, "not_image"),
        Hostile("only-magic.png", PNG_MAGIC, "not_image"),
        Hostile("only-magic.gif", b"GIF89a", "not_image"),
        Hostile("only-magic.bmp", b"BM", "not_image"),
    ]


def _odd_names() -> list[Hostile]:
    names = ["with space.png", "ünïcödé-图片.png", "emoji-🙂.png", "new\nline.png",
             "tab\tname.png", "-leading-dash.png", "double..dot.png", "UPPER.PNG",
             "a" * 200 + ".png", "semi;colon&amp.png", "quote'\"name.png", "back\\slash.png",
             "percent%2e%2e.png", "trailing.dot..png", "$(echo hi).png"]
    out = [Hostile(name, encoded(Image.fromarray(_pixels(100 + i, 12)), "PNG"), "odd_name")
           for i, name in enumerate(names)]
    if os.name == "posix":  # not UTF-8: a name that is only bytes
        out.append(Hostile(os.fsdecode(b"latin1-\xe9t\xe9.png"),
                           encoded(Image.fromarray(_pixels(99, 12)), "PNG"), "odd_name"))
    return out


def hostile_files() -> list[Hostile]:
    bases = _bases()
    files = [Hostile(f"valid-{kind}{_EXT[kind]}", data, "valid") for kind, data in bases.items()]
    files += (_truncations(bases) + _corruptions(bases) + _bombs() + _lying_headers(bases)
              + _frame_counts() + _colour_modes() + _malformed_exif() + _not_images()
              + _odd_names())
    names = [f.name for f in files]
    assert len(names) == len(set(names)), "hostile file names must be unique"
    return files


def zip_bombs(folder: Path) -> list[tuple[Path, str]]:
    """Archives that inflate past the 50 MB member cap or lie about their members."""
    made = []
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.png", PNG_MAGIC + b"\0" * (60 << 20))  # 60 MB inflates from ~60 kB
        z.writestr("ok.png", encoded(Image.fromarray(_pixels(7)), "PNG"))
    made.append((bomb, "inflates past the cap"))
    lying = folder / "lying-size.zip"
    with zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.png", PNG_MAGIC + b"\0" * (2 << 20))
        z.writestr("ok.png", encoded(Image.fromarray(_pixels(8)), "PNG"))
    raw = bytearray(lying.read_bytes())
    # Make both the local and the central header declare 100 bytes: the stream inflates more.
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = raw.find(sig)
        size_at = at + (22 if sig == b"PK\x03\x04" else 24)
        raw[size_at:size_at + 4] = struct.pack("<I", 100)
    lying.write_bytes(bytes(raw))
    made.append((lying, "declares 100 bytes"))
    nested = folder / "nested.zip"
    with zipfile.ZipFile(nested, "w") as z:
        z.writestr("inner.png", bomb.read_bytes())  # a zip named .png
        z.writestr("../../escape.png", encoded(Image.new("RGB", (4, 4)), "PNG"))
        z.writestr("/absolute.png", encoded(Image.new("RGB", (5, 5)), "PNG"))
        z.writestr("fine.png", encoded(Image.fromarray(_pixels(9)), "PNG"))
    made.append((nested, "zip inside, traversal names"))
    return made


def plant_special_files(folder: Path, outside: Path) -> dict[str, str]:
    """FIFOs and links in `folder` that lead out of it; name -> what it is. `outside` is
    a folder next to it holding a real image a link points at."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.png").write_bytes(encoded(Image.fromarray(_pixels(77)), "PNG"))
    planted = {}
    os.mkfifo(folder / "fifo.png")
    planted["fifo.png"] = "a FIFO"
    links = {"link-out.png": outside / "secret.png", "link-passwd.png": Path("/etc/passwd"),
             "link-environ.png": Path("/proc/self/environ"), "link-zero.png": Path("/dev/zero"),
             "link-stdin.png": Path("/dev/stdin"), "link-missing.png": folder / "nope.png"}
    for name, target in links.items():
        os.symlink(target, folder / name)
        planted[name] = f"a link to {target}"
    os.symlink(outside, folder / "dir-link-out")
    planted["dir-link-out/secret.png"] = "a file through a folder link out"
    os.symlink(folder / "loop-b.png", folder / "loop-a.png")
    os.symlink(folder / "loop-a.png", folder / "loop-b.png")
    planted["loop-a.png"] = planted["loop-b.png"] = "a link loop"
    return planted

"""Perceptual hashes and near-duplicate groups.

The hash is a DCT hash (pHash): the low frequencies of a 32x32 grey copy compared with
their median, 64 bits. Re-encoding, resizing and light crops move few of those bits, so
copies lie within a small Hamming distance of each other while different pictures lie
around 32 bits apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

HASH_SIDE = 32
LOW = 8  # 8x8 low-frequency block -> 64 bits


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m.astype(np.float32)


_DCT = _dct_matrix(HASH_SIDE)


def phash(img: Image.Image) -> int:
    """64-bit DCT hash of an image (any mode, any size)."""
    g = np.asarray(img.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX),
                   dtype=np.float32)
    low = (_DCT @ g @ _DCT.T)[:LOW, :LOW].ravel()
    bits = low > np.median(low[1:])  # the DC term would dominate the median
    return int(np.packbits(bits).view(">u8")[0])


# A lightly cropped copy looks like the central part of its original: each image is also
# hashed at these central crops, and a copy's whole-image hash is compared with them.
CROP_LEVELS = (0.92, 0.84)


def crop_hashes(img: Image.Image) -> list[int]:
    """The whole image's hash followed by its central crops' hashes."""
    w, h = img.size
    hashes = [phash(img)]
    for level in CROP_LEVELS:
        dx, dy = round(w * (1 - level) / 2), round(h * (1 - level) / 2)
        hashes.append(phash(img.crop((dx, dy, w - dx, h - dy))))
    return hashes


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def colour_signature(img: Image.Image) -> np.ndarray:
    """A 4x4 RGB thumbnail: the DCT hash is grey, so a red and a green flag can share it."""
    return np.asarray(img.convert("RGB").resize((4, 4), Image.Resampling.BOX),
                      dtype=np.float32).ravel()


def near_duplicate_groups(hashes: Sequence[Sequence[int]], max_distance: int,
                          colours: np.ndarray | None = None,
                          max_colour_diff: float = 24.0) -> list[list[int]]:
    """Groups of copies: [leader, copy, copy...]; images must come best first.

    hashes[i] is crop_hashes() of image i (or a one-element list): two images are copies
    when the whole-image hash of either lies within max_distance of any hash of the other
    and, with colours (colour_signature rows), their mean colour difference is at most
    max_colour_diff. Each image joins the first better image it copies (a leader), so
    copies never chain: A~B and B~C does not make A~C. Groups of one are left out.
    """
    n = len(hashes)
    if n < 2:
        return []
    levels = max(len(h) for h in hashes)
    every = np.array([list(h) + [h[0]] * (levels - len(h)) for h in hashes], dtype=np.uint64)
    whole = every[:, 0]
    leader_of = np.full(n, -1)
    groups: dict[int, list[int]] = {}
    block = 256
    for start in range(0, n, block):
        stop = min(n, start + block)
        # rows' whole hash against every level of all earlier images, and the reverse
        dist = np.bitwise_count(whole[start:stop, None, None] ^ every[None, :stop, :]).min(2)
        rev = np.bitwise_count(every[start:stop, None, :] ^ whole[None, :stop, None]).min(2)
        close = np.minimum(dist, rev) <= max_distance
        for r in range(stop - start):
            i = start + r
            for j in np.flatnonzero(close[r, :i]):
                if colours is not None and \
                        np.abs(colours[i] - colours[j]).mean() > max_colour_diff:
                    continue
                if leader_of[j] == -1:  # j is a leader: i copies it
                    leader_of[i] = j
                    groups.setdefault(int(j), [int(j)]).append(i)
                    break
    return list(groups.values())


def copy_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """The distance near_duplicate_groups uses between two images' crop_hashes."""
    return min(min(hamming(a[0], y) for y in b), min(hamming(x, b[0]) for x in a))

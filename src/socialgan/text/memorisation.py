"""Memorisation of a caption model: generated lines that replay a training caption.

A line counts as memorised when any N consecutive words of it (N = 6 by default) are N
consecutive words of some training caption. Words are compared casefolded with their
surrounding punctuation stripped, so 'Sunset, again.' and 'sunset again' are the same
two words.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence

import numpy as np

MEMORISED_WORDS = 6


def words_of(text: str) -> list[str]:
    stripped = (w.strip(".,;:!?\"'()[]{}…-—").casefold() for w in text.split())
    return [w for w in stripped if w]


def ngrams(words: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(words[i:i + n]) for i in range(len(words) - n + 1))


class NgramIndex:
    """Every n-word run of the training captions, for looking generated lines up."""

    def __init__(self, captions: Iterable[str], n: int = MEMORISED_WORDS):
        self.n = n
        self.runs = {g for c in captions for g in ngrams(words_of(c), n)}

    def copied_run(self, line: str) -> str | None:
        """The first n-word run of line found in a training caption, or None."""
        for gram in ngrams(words_of(line), self.n):
            if gram in self.runs:
                return " ".join(gram)
        return None


def memorised_fraction(lines: Sequence[str], captions: Iterable[str],
                       n: int = MEMORISED_WORDS) -> float:
    """The fraction of lines that repeat n or more consecutive words of a caption."""
    if not lines:
        return 0.0
    index = NgramIndex(captions, n)
    return sum(index.copied_run(line) is not None for line in lines) / len(lines)


def ngram_hashes(captions: Iterable[str], n: int = MEMORISED_WORDS) -> np.ndarray:
    """Sorted 64-bit hashes of every n-word run of captions: enough to recognise a replayed
    run later, without keeping the captions' text beside the model."""
    runs = {g for c in captions for g in ngrams(words_of(c), n)}
    return np.unique(np.array([_hash(g) for g in runs], dtype=np.uint64))


def _hash(gram: tuple[str, ...]) -> int:
    digest = hashlib.blake2b("\x1f".join(gram).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def hashes_to_bytes(hashes: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, hashes.astype(np.uint64), allow_pickle=False)
    return buf.getvalue()


def hashes_from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def replays_a_caption(line: str, hashes: np.ndarray, n: int = MEMORISED_WORDS) -> bool:
    """Whether line holds an n-word run whose hash is in hashes (ngram_hashes)."""
    grams = [_hash(g) for g in ngrams(words_of(line), n)]
    return bool(grams) and bool(np.isin(np.array(grams, dtype=np.uint64), hashes).any())

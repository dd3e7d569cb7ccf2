"""The tokenizer: one token per character, the characters of the training captions.

A character model needs no learned merges and never meets a word it cannot spell; on a
few hundred captions that matters more than the shorter sequences BPE would give.
Characters seen fewer than `min_count` times in training share one UNKNOWN token, so a
rare emoji in the validation set is scored (as UNKNOWN) rather than crashing the metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from socialgan.errors import InvalidArgument

END = "\n"  # ends every caption; sampling stops at it
UNKNOWN = "\ufffd"  # stands for every character outside the vocabulary


@dataclass(frozen=True)
class CharVocab:
    chars: tuple[str, ...]  # index -> character; END is 0, UNKNOWN is 1

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> CharVocab:
        counts = Counter(ch for text in texts for ch in text)
        kept = sorted(ch for ch, n in counts.items() if n >= min_count and ch not in (END, UNKNOWN))
        return cls((END, UNKNOWN, *kept))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.chars)})

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def end_id(self) -> int:
        return 0

    @property
    def unknown_id(self) -> int:
        return 1

    def encode(self, text: str) -> list[int]:
        index = self._index  # type: ignore[attr-defined]
        return [index.get(ch, 1) for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def check_known(self, text: str, field: str) -> str:
        """text, or InvalidArgument naming field and the characters the model never saw."""
        index = self._index  # type: ignore[attr-defined]
        unknown = sorted({ch for ch in text if ch not in index or ch in (END, UNKNOWN)})
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:10])
            raise InvalidArgument(field, f"holds characters the model never saw in training "
                                  f"({shown}); leave them out")
        return text

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> CharVocab:
        if len(chars) < 2 or chars[0] != END or chars[1] != UNKNOWN:
            raise ValueError("not a caption vocabulary: END and UNKNOWN must come first")
        return cls(tuple(chars))

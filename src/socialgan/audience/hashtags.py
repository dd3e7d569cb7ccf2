"""What a hashtag candidate becomes before anything may choose it: folded, checked, and
held against the blocklist and the cooldown.

Folding: NFKC (full-width and compatibility forms become plain ones), a leading '#'
dropped, case-folded, and accents stripped when that leaves a pure ASCII tag ('Café' ->
'cafe'); a tag in another script keeps its marks, since stripping them would change the
word ('ガ' is not 'カ'). A valid tag is letters, digits and '_' (any script, through
socialgan.validation.normalize_hashtag), at most MAX_CHOSEN_CHARS long, with at least
one letter: '#2026' is not a hashtag on X or Instagram.
"""

from __future__ import annotations

import fnmatch
import functools
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from socialgan import settings
from socialgan.errors import FailedPrecondition, InvalidArgument, quote
from socialgan.validation import normalize_hashtag

# Tighter than validation's 100: the tag goes into every caption (X allows 280 characters)
# and a real topic is rarely longer; a 60-character "tag" in a reply is almost always noise.
MAX_CHOSEN_CHARS = 50


def fold(raw: str) -> str:
    """The candidate's comparable form (no validity check): see the module docstring."""
    text = unicodedata.normalize("NFKC", raw).strip().removeprefix("#").casefold()
    stripped = "".join(ch for ch in unicodedata.normalize("NFKD", text)
                       if not unicodedata.combining(ch))
    return stripped if stripped.isascii() else unicodedata.normalize("NFC", text)


def normalize_candidate(raw: str, field: str = "hashtag") -> str:
    """The folded tag if it is a valid hashtag to choose, else InvalidArgument naming field."""
    tag = normalize_hashtag(fold(raw) if isinstance(raw, str) else "", field)
    if len(tag) > MAX_CHOSEN_CHARS:
        raise InvalidArgument(field, f"{quote(raw)} is {len(tag)} characters; a chosen "
                                     f"hashtag has at most {MAX_CHOSEN_CHARS}")
    if not any(ch.isalpha() for ch in tag):
        raise InvalidArgument(field, f"{quote(raw)} has no letter; a hashtag needs one")
    return tag


def try_normalize(raw: str) -> str | None:
    """normalize_candidate's tag, or None when raw is not a valid hashtag."""
    try:
        return normalize_candidate(raw)
    except InvalidArgument:
        return None


@dataclass(frozen=True)
class Blocklist:
    exact: frozenset[str]
    patterns: tuple[str, ...]  # entries holding '*'

    @classmethod
    def parse(cls, text: str) -> Blocklist:
        # A comment is told from an entry before folding, which would drop its '#'.
        lines = (line.strip() for line in text.splitlines())
        entries = ["".join(fold(line).split()) for line in lines
                   if line and not line.startswith("#")]
        entries = [e for e in entries if e]
        return cls(frozenset(e for e in entries if "*" not in e),
                   tuple(e for e in entries if "*" in e))

    def __add__(self, other: Blocklist) -> Blocklist:
        return Blocklist(self.exact | other.exact, self.patterns + other.patterns)

    def blocks(self, tag: str) -> bool:
        """Whether the (folded) tag is blocked."""
        return tag in self.exact or any(fnmatch.fnmatchcase(tag, p) for p in self.patterns)


@functools.cache
def _blocklist_of(extra_file: str) -> Blocklist:
    from socialgan.text import safety  # the caption's words block as whole tags too

    own = resources.files(__package__).joinpath("hashtag_blocklist.txt").read_text("utf-8")
    caption_words = "\n".join(safety.parse_blocklist(
        resources.files(safety.__package__).joinpath("blocklist.txt").read_text("utf-8")))
    result = Blocklist.parse(own) + Blocklist.parse(caption_words)
    if extra_file:
        try:
            result += Blocklist.parse(Path(extra_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise FailedPrecondition(f"AUDIENCE_BLOCKLIST_FILE={extra_file[:200]!r} cannot be "
                                     f"read: {type(exc).__name__}") from None
    return result


def blocklist() -> Blocklist:
    """The package's hashtag blocklist, the caption words, and AUDIENCE_BLOCKLIST_FILE's."""
    return _blocklist_of((settings.get("AUDIENCE_BLOCKLIST_FILE") or "").strip())


def cooldown_size() -> int:
    n = settings.get_int("AUDIENCE_COOLDOWN")
    if n < 0:
        raise settings.ConfigError(f"AUDIENCE_COOLDOWN={n} must be 0 or more")
    return n


def cooldown_tags(store, n: int | None = None) -> list[str]:
    """The last n chosen hashtags (AUDIENCE_COOLDOWN by default), newest first."""
    from socialgan.audience.evidence import recent_winners

    return recent_winners(store, cooldown_size() if n is None else n)

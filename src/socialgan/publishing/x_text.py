"""How X counts a post's length: weighted characters, 280 at most.

A simple reading of X's counting rule (twitter-text's v3 configuration), kept small:

- the text is NFC-normalised first, then counted per code point;
- code points in the "light" ranges count 1: U+0000-U+10FF (Latin, Greek, Cyrillic,
  Hebrew, Arabic, Indic scripts...), U+2000-U+200D, U+2010-U+201F, U+2032-U+2037
  (spaces and punctuation); every other code point counts 2 (CJK, Hangul, emoji, and
  also symbols such as the ellipsis U+2026);
- an emoji sequence counts 2 as a whole: what only modifies or joins an emoji (variation
  selectors, skin tones, the keycap mark, tag characters, a zero-width joiner and the emoji
  it joins) adds nothing, a flag (two regional indicators) counts 2, and a light character
  made an emoji by U+FE0F or the keycap mark (1 + U+FE0F + U+20E3) counts 2;
- every http(s) URL counts 23, whatever its length (X wraps links in t.co).

Not modelled: X's full emoji list (a light-range emoji written without U+FE0F, e.g. a bare
U+00A9, counts 1 here) and the rules for URLs without a scheme ("example.com").
"""

from __future__ import annotations

import re
import unicodedata

MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_ZWJ = 0x200D
_EMOJI_PRESENTATION = (0xFE0F, 0x20E3)
_REGIONAL_INDICATORS = (0x1F1E6, 0x1F1FF)


def _light(cp: int) -> bool:
    return any(low <= cp <= high for low, high in _LIGHT_RANGES)


def _emoji_modifier(cp: int) -> bool:
    """A code point that only changes how the emoji before it looks."""
    return (cp in (0xFE0E, 0xFE0F, 0x20E3) or 0x1F3FB <= cp <= 0x1F3FF
            or 0xE0020 <= cp <= 0xE007F)


def _is_emoji(cp: int) -> bool:
    return 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF


def _text_weight(text: str) -> int:
    weight = 0
    after_emoji = False  # the previous code point ended an emoji (or its modifier)
    joined = False  # a zero-width joiner follows an emoji: the next one is part of it
    half_flag = False  # one regional indicator seen; its pair completes the flag
    for ch in text:
        cp = ord(ch)
        if after_emoji and _emoji_modifier(cp):
            continue
        if cp in _EMOJI_PRESENTATION:
            # A light character shown as an emoji (1 + U+FE0F + U+20E3, (c) + U+FE0F):
            # the whole counts 2, as an emoji does.
            weight += 1
            after_emoji = True
            continue
        if after_emoji and cp == _ZWJ:
            joined = True
            continue
        if joined:
            joined = False
            after_emoji = True
            continue  # the joined emoji is part of the sequence already counted
        if _REGIONAL_INDICATORS[0] <= cp <= _REGIONAL_INDICATORS[1]:
            if half_flag:
                half_flag = False
                continue
            half_flag = True
            weight += 2
            after_emoji = True
            continue
        half_flag = False
        weight += 1 if _light(cp) else 2
        after_emoji = _is_emoji(cp)
    return weight


def weighted_length(text: str) -> int:
    """text's length as X counts it (see the module docstring)."""
    text = unicodedata.normalize("NFC", text)
    weight, start = 0, 0
    for match in _URL.finditer(text):
        weight += _text_weight(text[start:match.start()]) + URL_WEIGHT
        start = match.end()
    return weight + _text_weight(text[start:])

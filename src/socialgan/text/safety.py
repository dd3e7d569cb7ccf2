"""What a generated caption may not contain, and the fallback when it does.

A caption trained on strangers' posts can replay their handles, links and numbers, or
worse words: generated text is refused when it holds an @mention, a URL or bare domain,
an e-mail address, a phone number (7 or more digits in one run of digits and
separators), a blocklisted word (blocklist.txt, plus the file CAPTION_BLOCKLIST_FILE
names), a control character, or no letter at all. The checks run on the NFKC folding of
the text, so full-width look-alikes ('＠', 'ｈｔｔｐ') are caught too. They err on the
refusing side: a refused caption costs only the template caption instead.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from importlib import resources
from pathlib import Path

from socialgan import settings
from socialgan.errors import FailedPrecondition

MAX_GENERATED_CHARS = 500

MENTION = re.compile(r"@\s*\w")
EMAIL = re.compile(r"[\w.+-]+\s*@\s*[\w-]+(\.[\w-]+)+")
_TLDS = ("com|net|org|edu|gov|io|co|me|ly|app|dev|xyz|info|biz|link|site|online|shop|"
         "social|tv|gg|ai|us|uk|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|ru|jp|cn|in|br|"
         "au|ca|eu|to|cc|gl|is|sh|fm|im|ws|tk")
URL = re.compile(r"[a-z][a-z0-9+.-]*://|\bwww\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:"
                 + _TLDS + r")\b(?!\.\w)", re.IGNORECASE)
PHONE = re.compile(r"\+?\d(?:[\s().-]*\d){6,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
# Digits and signs written for letters ('sh1t', 'a$$'): folded before the blocklist.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "!": "i"})


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def parse_blocklist(text: str) -> tuple[str, ...]:
    entries = (" ".join(_fold(line).split()) for line in text.splitlines())
    return tuple(e for e in entries if e and not e.startswith("#"))


@functools.cache
def _blocklist_of(extra_file: str) -> tuple[str, ...]:
    words = parse_blocklist(resources.files(__package__).joinpath("blocklist.txt")
                            .read_text(encoding="utf-8"))
    if extra_file:
        try:
            words += parse_blocklist(Path(extra_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise FailedPrecondition(f"CAPTION_BLOCKLIST_FILE={extra_file[:200]!r} cannot be "
                                     f"read: {type(exc).__name__}") from None
    return words


def blocklist() -> tuple[str, ...]:
    """The package's blocklist plus CAPTION_BLOCKLIST_FILE's entries, folded."""
    return _blocklist_of((settings.get("CAPTION_BLOCKLIST_FILE") or "").strip())


def _blocked(folded: str, words: tuple[str, ...]) -> list[str]:
    # Words split on anything but letters and digits; both spellings are checked, so
    # 'a$$hole' and 'asshole' match while 'sussex' (no whole-word 'sex') does not.
    variants = {" ".join(re.findall(r"\w+", folded)),
                " ".join(re.findall(r"\w+", folded.translate(_LEET)))}
    return [w for w in words if any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", v)
                                    for v in variants)]


def caption_problems(text: str, words: tuple[str, ...] | None = None) -> list[str]:
    """Why text may not be posted as a generated caption ([] when it may)."""
    folded = _fold(text)
    problems = []
    if not text.strip():
        problems.append("empty")
    if len(text) > MAX_GENERATED_CHARS:
        problems.append("too_long")
    if _CONTROL.search(text):
        problems.append("control_character")
    if EMAIL.search(folded):
        problems.append("email")
    if MENTION.search(folded):
        problems.append("mention")
    if URL.search(folded):
        problems.append("url")
    if PHONE.search(folded):
        problems.append("phone_number")
    if _blocked(folded, blocklist() if words is None else words):
        problems.append("blocklisted_word")
    if text.strip() and not any(ch.isalpha() for ch in folded):
        problems.append("no_letters")
    return problems


def is_safe_caption(text: str) -> bool:
    return not caption_problems(text)


def safe_caption_or_fallback(text: str, fallback: str) -> tuple[str, list[str]]:
    """(text, []) when text passes every check, else (fallback, the problems found)."""
    problems = caption_problems(text)
    return (fallback, problems) if problems else (text, [])


def scrub_training_caption(text: str) -> str:
    """A caption made fit to learn from: mentions, links, e-mails and phone numbers taken
    out (the model then rarely learns to write them), whitespace collapsed to one line."""
    text = unicodedata.normalize("NFKC", text)
    for pattern in (EMAIL, URL_TOKEN, MENTION_TOKEN, PHONE):
        text = pattern.sub(" ", text)
    return " ".join(_CONTROL.sub(" ", text).split())


# Whole tokens to cut from training text (the checks above only need to find a start).
URL_TOKEN = re.compile(r"(?:[a-z][a-z0-9+.-]*://|\bwww\.)\S*|\b[\w-]+(?:\.[\w-]+)*\.(?:"
                       + _TLDS + r")\b(?:/\S*)?", re.IGNORECASE)
MENTION_TOKEN = re.compile(r"@\w+")

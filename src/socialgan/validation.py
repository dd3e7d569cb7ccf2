"""Checks for user-given names that end up in storage keys or file paths.

Every message quotes the caller's value through errors.quote, so an error never repeats
more than ~100 characters of input however long the input was.
"""

from __future__ import annotations

import re

from socialgan.errors import InvalidArgument, quote

# Hashtags on Instagram/Mastodon/X are letters, digits and underscores (any script).
MAX_HASHTAG_CHARS = 100
_HASHTAG = re.compile(r"\w+")
# A file name holds at most 255 bytes (ext4, xfs, APFS); a key segment stays well under,
# so the local store's '<segment>.json' metadata and '.tmp-*' names fit too. 100
# characters of a non-Latin hashtag can take 400 bytes of UTF-8, hence bytes, not characters.
MAX_SEGMENT_BYTES = 200
# Ids we mint or accept: safe in a key segment, a file name and a TorchServe model name.
MAX_IDENTIFIER_CHARS = 128
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_length(value: str, field: str, max_chars: int) -> str:
    """Return value if it has at most max_chars characters, else raise InvalidArgument."""
    if len(value) > max_chars:
        raise InvalidArgument(
            field, f"{quote(value)} is {len(value)} characters long; at most {max_chars}")
    return value


def check_utf8_bytes(value: str, field: str, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    """Return value if its UTF-8 form has at most max_bytes bytes (by default: fits one
    storage key segment), else raise InvalidArgument."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(
            field, f"{quote(value)} takes {size} bytes as UTF-8; at most {max_bytes}")
    return value


def normalize_hashtag(raw: str, field: str = "hashtag") -> str:
    """Return the hashtag without '#' and lower-cased, or raise InvalidArgument."""
    check_length(raw.strip(), field, MAX_HASHTAG_CHARS + 1)  # +1: the optional '#'
    tag = raw.strip().removeprefix("#").lower()
    if not tag:
        raise InvalidArgument(field, "is empty; give a hashtag such as 'sunset'")
    if len(tag) > MAX_HASHTAG_CHARS or not _HASHTAG.fullmatch(tag):
        raise InvalidArgument(
            field, f"{quote(raw)} is not a hashtag; use letters, digits and '_' "
                   f"(at most {MAX_HASHTAG_CHARS})")
    return check_utf8_bytes(tag, field)


def check_identifier(value: str, field: str) -> str:
    """Return value if it is a safe id (run, dataset, post, job), else raise InvalidArgument."""
    if not value:
        raise InvalidArgument(field, "is empty")
    check_length(value, field, MAX_IDENTIFIER_CHARS)
    if not _IDENTIFIER.fullmatch(value) or ".." in value:
        raise InvalidArgument(
            field, f"{quote(value)} is not a valid id; use letters, digits, '.', '_' and '-'"
        )
    return value

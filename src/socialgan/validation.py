"""Checks for user-given names that end up in storage keys or file paths."""

from __future__ import annotations

import re

from socialgan.errors import InvalidArgument

# Hashtags on Instagram/Mastodon/X are letters, digits and underscores (any script).
_HASHTAG = re.compile(r"^\w{1,100}$")
# Ids we mint or accept: safe in a key segment, a file name and a TorchServe model name.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def normalize_hashtag(raw: str, field: str = "hashtag") -> str:
    """Return the hashtag without '#' and lower-cased, or raise InvalidArgument."""
    tag = raw.strip().removeprefix("#").lower()
    if not tag:
        raise InvalidArgument(field, "is empty; give a hashtag such as 'sunset'")
    if not _HASHTAG.match(tag):
        raise InvalidArgument(
            field, f"{raw!r} is not a hashtag; use letters, digits and '_' (at most 100)"
        )
    return tag


def check_identifier(value: str, field: str) -> str:
    """Return value if it is a safe id (run, dataset, post, job), else raise InvalidArgument."""
    if not value:
        raise InvalidArgument(field, "is empty")
    if not _IDENTIFIER.match(value) or ".." in value:
        raise InvalidArgument(
            field, f"{value!r} is not a valid id; use letters, digits, '.', '_' and '-'"
        )
    return value

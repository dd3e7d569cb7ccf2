"""Data types shared by the publishing targets (which read replies and trends) and the chooser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One reply or comment under one of our published posts.

    ``post_id`` is the platform id of OUR post that this replies to; ``author_id`` is the stable
    platform account id (handles can change, ids cannot), so one-vote-per-account keys on it.
    """

    platform: str
    post_id: str
    reply_id: str
    author_id: str
    author_handle: str
    text: str
    created_unix: float
    is_own: bool = False


@dataclass(frozen=True)
class TrendingTag:
    """One trending hashtag as one source reports it.

    ``source`` names where it came from, e.g. "mastodon:mastodon.social", "bluesky", "x".
    ``uses``/``accounts`` are the source's recent usage counts (0 when it does not say);
    ``rank`` is its 1-based position in the source's list (0 when unknown).
    """

    name: str
    source: str
    uses: int = 0
    accounts: int = 0
    rank: int = 0


def _from_json(cls, value: object, field: str):
    """cls built from a JSON list of objects holding its fields (extra keys ignored)."""
    from dataclasses import fields

    from socialgan.errors import InvalidArgument

    if not isinstance(value, list):
        raise InvalidArgument(field, "must be a JSON list of objects")
    known = {f.name: f.type for f in fields(cls)}
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidArgument(f"{field}[{i}]", "must be a JSON object")
        try:
            out.append(cls(**{k: v for k, v in item.items() if k in known}))
        except TypeError as exc:
            raise InvalidArgument(f"{field}[{i}]", f"lacks a field: {exc}") from None
        for name, kind in known.items():
            wanted = {"str": str, "float": (int, float), "int": int, "bool": bool}[kind]
            got = getattr(out[-1], name)
            if not isinstance(got, wanted) or (kind != "bool" and isinstance(got, bool)):
                raise InvalidArgument(f"{field}[{i}].{name}", f"must be a JSON {kind}")
    return out


def replies_from_json(value: object, field: str = "replies") -> list[Reply]:
    """Replies from a JSON list of objects with Reply's fields."""
    return _from_json(Reply, value, field)


def trending_from_json(value: object, field: str = "trending") -> list[TrendingTag]:
    """Trending tags from a JSON list of objects with TrendingTag's fields."""
    return _from_json(TrendingTag, value, field)

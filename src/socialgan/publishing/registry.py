"""The publish targets by name. Each is made afresh per call from the environment, so a
credential set or rotated in the environment takes effect on the next publish."""

from __future__ import annotations

from collections.abc import Callable

from socialgan.publishing.targets import PublishTarget


def _gallery() -> PublishTarget:
    from socialgan.publishing.gallery import GalleryTarget
    return GalleryTarget()


def _mastodon() -> PublishTarget:
    from socialgan.publishing.mastodon import MastodonTarget
    return MastodonTarget.from_env()


def _instagram() -> PublishTarget:
    from socialgan.publishing.instagram import InstagramTarget
    return InstagramTarget.from_env()


def _bluesky() -> PublishTarget:
    from socialgan.publishing.bluesky import BlueskyTarget
    return BlueskyTarget.from_env()


def _x() -> PublishTarget:
    from socialgan.publishing.x import XTarget
    return XTarget.from_env()


_FACTORIES: dict[str, Callable[[], PublishTarget]] = {
    "gallery": _gallery, "instagram": _instagram, "mastodon": _mastodon,
    "bluesky": _bluesky, "x": _x,
}
TARGET_NAMES = tuple(_FACTORIES)


def make_target(name: str) -> PublishTarget:
    return _FACTORIES[name]()

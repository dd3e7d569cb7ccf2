"""Publishing: a caption from the run's facts, a post record under posts/, and a target that
shows it (the local gallery now; Instagram, Mastodon and X need accounts and come later)."""

from socialgan.publishing.caption import (
    MAX_CAPTION_CHARS,
    MAX_HASHTAGS,
    CaptionInputs,
    build_caption,
    check_caption,
)
from socialgan.publishing.gallery import GalleryTarget, render_gallery
from socialgan.publishing.post import DRAFT, FAILED, PUBLISHED, PUBLISHING, Post
from socialgan.publishing.posting import TARGETS, get_post, get_target, publish
from socialgan.publishing.targets import NotConnectedTarget, PublishTarget

__all__ = [
    "DRAFT", "FAILED", "MAX_CAPTION_CHARS", "MAX_HASHTAGS", "PUBLISHED", "PUBLISHING", "TARGETS",
    "CaptionInputs", "GalleryTarget", "NotConnectedTarget", "Post", "PublishTarget",
    "build_caption", "check_caption", "get_post", "get_target", "publish", "render_gallery",
]

"""Publishing: a caption from the run's facts, the images each platform takes, a post record
under posts/ with the progress that makes it resumable, and the targets: the local gallery
(the default, no account), Mastodon, Instagram, Bluesky and X."""

from socialgan.publishing.caption import (
    MAX_CAPTION_CHARS,
    MAX_HASHTAGS,
    CaptionInputs,
    build_caption,
    check_caption,
    fit_caption,
)
from socialgan.publishing.gallery import GalleryTarget, render_gallery, update_gallery
from socialgan.publishing.post import DRAFT, FAILED, PUBLISHED, PUBLISHING, Post, PostItem
from socialgan.publishing.posting import get_post, get_target, list_post_page, publish
from socialgan.publishing.registry import TARGET_NAMES
from socialgan.publishing.targets import (
    MODES,
    PublishOptions,
    PublishTarget,
    Rendered,
    SendContext,
)

__all__ = [
    "DRAFT", "FAILED", "MAX_CAPTION_CHARS", "MAX_HASHTAGS", "MODES", "PUBLISHED", "PUBLISHING",
    "TARGET_NAMES", "CaptionInputs", "GalleryTarget", "Post", "PostItem",
    "PublishOptions", "PublishTarget", "Rendered", "SendContext", "build_caption",
    "check_caption", "fit_caption", "get_post", "get_target", "list_post_page", "publish",
    "render_gallery", "update_gallery",
]

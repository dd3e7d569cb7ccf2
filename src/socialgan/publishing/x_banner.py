"""X's profile banner (the followers'-banners use case): the 1500x500 file, and the one
endpoint that sets it.

X has no v2 banner endpoint. v1.1 POST account/update_profile_banner.json still exists but
takes OAuth 1.0a user tokens only: with an OAuth 2.0 user token X answers 403 ("Unsupported
Authentication"), and the endpoint may go the way of the v1.1 media upload (404/410). With
the four X_PUBLISH_OAUTH1_* keys set, the call is signed with them instead (OAuth 1.0a
HMAC-SHA1, requests-oauthlib: the secrets sign the request and are never sent). Every
refusal becomes FAILED_PRECONDITION that says where the banner file is, so it can be set by
hand in X's settings; the file is the post's item, written before anything is sent.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps

from socialgan import images, settings
from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.publishing.http import PlatformError, PublishHttp
from socialgan.publishing.media import GridImages, Rendition
from socialgan.publishing.post import PostItem
from socialgan.storage import ObjectStore

BANNER_SIZE = (1500, 500)
MAX_BANNER_BYTES = 5_000_000
BANNER_PATH = "/1.1/account/update_profile_banner.json"
_REFUSED = (401, 403, 404, 410)
OAUTH1_VARS = ("X_PUBLISH_OAUTH1_CONSUMER_KEY", "X_PUBLISH_OAUTH1_CONSUMER_SECRET",
               "X_PUBLISH_OAUTH1_ACCESS_TOKEN", "X_PUBLISH_OAUTH1_ACCESS_SECRET")


@dataclass(frozen=True)
class OAuth1Keys:
    """The app's and the account's OAuth 1.0a keys, for the one v1.1 call that needs them."""

    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_secret: str = field(repr=False)

    @classmethod
    def from_env(cls) -> OAuth1Keys | None:
        """The four keys, None when none is set; FailedPrecondition naming the missing ones
        when only some are."""
        values = [(settings.get(name) or "").strip() for name in OAUTH1_VARS]
        if not any(values):
            return None
        missing = [name for name, value in zip(OAUTH1_VARS, values, strict=True) if not value]
        if missing:
            raise FailedPrecondition(f"{', '.join(missing)}: unset; the X profile banner's "
                                     f"OAuth 1.0a keys are four: {', '.join(OAUTH1_VARS)}")
        return cls(*values)

    def auth(self) -> Any:
        try:
            from requests_oauthlib import OAuth1
        except ImportError:
            raise FailedPrecondition(
                "X_PUBLISH_OAUTH1_*: set, but requests-oauthlib is not installed (pip install "
                "'socialgan[publish]')") from None
        return OAuth1(self.consumer_key, self.consumer_secret, self.access_token,
                      self.access_secret)


def _banner_source(grid: GridImages) -> Image.Image:
    """The picture a banner is made of: a 3:1 tile as it is, else as many tiles side by
    side as make about 3:1 (the top row of a grid of squares), else the whole grid."""
    if not grid.tiles:
        return images.decode_rgb(grid.grid)
    first = images.decode_rgb(grid.tiles[0])
    per_row = max(1, min(len(grid.tiles), round(3 * first.height / first.width)))
    if per_row == 1:
        return first
    row = Image.new("RGB", (first.width * per_row, first.height), "white")
    for i, data in enumerate(grid.tiles[:per_row]):
        tile = first if i == 0 else images.decode_rgb(data).resize(first.size)
        row.paste(tile, (i * first.width, 0))
    return row


def banner_rendition(grid: GridImages, alt_text: str) -> Rendition:
    """The 1500x500 JPEG banner: the source scaled to fit, with white margins where its
    aspect is not 3:1 (nothing is cut off)."""
    padded = ImageOps.pad(_banner_source(grid), BANNER_SIZE, color="white",
                          method=Image.Resampling.LANCZOS)
    for quality in (92, 85, 78, 70):
        buf = io.BytesIO()
        padded.save(buf, format="JPEG", quality=quality)
        if buf.tell() <= MAX_BANNER_BYTES:
            break
    else:  # 1500x500 pixels do not come near 5 MB as a JPEG; kept for the record
        raise InvalidArgument("grid_key", f"the banner does not fit {MAX_BANNER_BYTES:,} bytes")
    return Rendition(buf.getvalue(), ".jpg", *BANNER_SIZE, alt_text)


def set_profile_banner(api: PublishHttp, store: ObjectStore, item: PostItem, data: bytes,
                       oauth1: OAuth1Keys | None = None) -> None:
    """Set the account's banner to data (the item's bytes) through v1.1, signed with the
    OAuth 1.0a keys when there are (their Authorization replaces the OAuth 2.0 one). A
    repeat sets the same picture again, so the call is retried like a read.
    FailedPrecondition naming the kept file where X refuses."""
    auth = {"auth": oauth1.auth()} if oauth1 else {}
    try:
        api.call("POST", BANNER_PATH, files={
            "banner": (f"banner.{item.image_key.rsplit('.', 1)[-1]}", data, item.content_type)},
            **auth)
    except PlatformError as exc:
        if exc.status not in _REFUSED:
            raise
        why = ("with the X_PUBLISH_OAUTH1_* keys: check them" if oauth1 else
               "which takes no OAuth 2.0 user token and has no v2 successor; the "
               "X_PUBLISH_OAUTH1_* keys would sign it")
        raise FailedPrecondition(
            f"X refused the profile banner update ({exc.status} from v1.1 "
            f"account/update_profile_banner, {why}); set the banner by hand from "
            f"{store.url(item.image_key)} ({item.width}x{item.height}, storage key "
            f"{item.image_key})") from None

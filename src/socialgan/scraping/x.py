"""X: the profile banners (1500x500 cover pictures) of an account's followers.

    GET /2/users/by/username/NAME                      -> {"data": {"id", "username"}}
    GET /2/users/ID/followers?max_results=1000&user.fields=profile_banner_url,username,name
        [&pagination_token=T]                          -> {"data": [...], "meta": {"next_token"}}

An app bearer token (X_BEARER_TOKEN). The followers endpoint allows 15 requests per 15
minutes: a 429 carries x-rate-limit-reset (epoch seconds), which the Downloader waits for.
profile_banner_url names the banner without a size; "/1500x500" asks for the full one.
The cursor kept between runs is the pagination_token of the next page. The token goes to
the host of X_API_URL only, over https (socialgan.credentials); banners are fetched
without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from socialgan import settings
from socialgan.credentials import Credential
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.scraping.api import ApiClient, expect
from socialgan.scraping.download import Downloader
from socialgan.scraping.sources import HttpSource, Item

PAGE_SIZE = 1000
BANNER_SIZE = "1500x500"
_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,15}$")


def banner_url(profile_banner_url: str) -> str:
    url = profile_banner_url.rstrip("/")
    return url if re.search(r"/\d+x\d+$", url) else f"{url}/{BANNER_SIZE}"


class XFollowerBannersSource(HttpSource):
    kind = "x"
    pages = True

    def __init__(self, user_id: str = "", username: str = "", *, token: str | None = None,
                 base_url: str | None = None, downloader: Downloader | None = None,
                 api_downloader: Downloader | None = None):
        super().__init__(downloader)
        self.user_id = user_id.strip()
        self.username = username.strip().lstrip("@")
        token = settings.get("X_BEARER_TOKEN") if token is None else token
        base_url = base_url or settings.get("X_API_URL") or ""
        self._has_token = bool(token)
        self.api = ApiClient(
            "x", base_url, Credential.bound("X_BEARER_TOKEN", token or "", [base_url],
                                            url_var="X_API_URL"),
            downloader=api_downloader)

    def describe(self) -> str:
        return f"x:{self.user_id or '@' + self.username} followers' banners"

    def validate(self) -> None:
        if not self.user_id and not self.username:
            raise InvalidArgument("source.x_follower_banners", "give user_id or username")
        if self.user_id and not self.user_id.isdigit():
            raise InvalidArgument("source.x_follower_banners.user_id",
                                  f"{self.user_id!r} is not a numeric user id")
        if self.username and not _USERNAME.match(self.username):
            raise InvalidArgument("source.x_follower_banners.username",
                                  f"{self.username!r} is not an X username")
        if not self._has_token:
            raise FailedPrecondition("x: no token; set X_BEARER_TOKEN")
        if refusal := self.api.credential_refusal():
            raise FailedPrecondition(f"x: X_API_URL: {refusal}")

    def _resolve(self) -> str:
        if self.user_id:
            return self.user_id
        answer = expect(self.api.get(f"2/users/by/username/{self.username}").data, dict,
                        "the user lookup", "x")
        user = answer.get("data")
        if not isinstance(user, dict) or not user.get("id"):
            raise NotFound(f"x: no user @{self.username}")
        self.user_id = str(user["id"])
        return self.user_id

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        user_id = self._resolve()
        token = cursor or ""
        while True:
            page = expect(self.api.get(f"2/users/{user_id}/followers", {
                "max_results": PAGE_SIZE, "pagination_token": token,
                "user.fields": "profile_banner_url,username,name"}).data,
                dict, "the followers page", "x")
            users = expect(page.get("data", []), list, "data", "x")
            for user in users:
                if isinstance(user, dict):
                    yield from self._user_item(user, token)
            nxt = (page.get("meta") or {}).get("next_token") or ""
            if not users or not nxt or nxt == token:
                return
            token = nxt

    def _user_item(self, user: dict[str, Any], cursor: str) -> Iterator[Item]:
        banner = user.get("profile_banner_url")
        if not banner:
            return
        name = str(user.get("username") or "")
        yield Item(source=self.kind, location=banner_url(str(banner)),
                   post_id=str(user.get("id") or banner),
                   permalink=f"https://x.com/{name}" if name else "",
                   author=f"@{name}" if name else "", caption=str(user.get("name") or ""),
                   licence=f"profile banner of @{name}; ask before reuse" if name else "",
                   extra={"follower_of": self.user_id, "kind": "profile_banner"},
                   cursor=cursor)

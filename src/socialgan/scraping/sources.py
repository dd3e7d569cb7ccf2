"""Where scraped images come from: one Source interface, one class per kind of source.

A Source yields candidate Items (where the bytes are, plus what is known about the post)
and fetches an item's bytes. run_scrape() does everything else (checking, deduplicating,
storing, remembering what was seen), so each social source (socialgan.scraping.instagram,
.mastodon, .x) is one class that pages through its API and yields Items whose location is
a media URL; HttpSource fetches those through the Downloader.

Paging sources tag each Item with the cursor of the page it came from, and accept a cursor
to start from: that is how a killed or limited scrape continues where it stopped.

Spec strings (parse_source_spec):
    folder:/data/pics          every image file under the folder, recursively
    zip:/data/pics.zip         every image member of the archive
    folder:/data/pics.zip      the same: a .zip path is read as an archive
    urls:/data/list.txt        one http(s) URL per line; blank lines and '#' comments skipped
    urls:https://a/1.png https://b/2.jpg   inline URLs (separated by spaces or commas)
    /data/pics, /data/pics.zip, /data/list.txt   no prefix: chosen by the path's suffix
    instagram:  instagram:recent   Instagram Graph API hashtag search (top_media / recent_media),
                                   as INSTAGRAM_USER_ID with INSTAGRAM_ACCESS_TOKEN
    mastodon:https://mastodon.social   that instance's public timeline for the hashtag
    x:@username  x:12345           the profile banners of an X account's followers
                                   (X_BEARER_TOKEN); the hashtag only names the collection
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from socialgan.errors import InvalidArgument, NotFound
from socialgan.scraping.download import Downloader, FetchError
from socialgan.v1 import scraper_pb2

# Files and members picked as candidates; their content is then checked by magic bytes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
MAX_LOCAL_BYTES = 50 << 20
URL_LIST_SUFFIXES = (".txt", ".urls", ".lst")

StopCheck = Callable[[], bool] | None


@dataclass(frozen=True)
class Item:
    """One candidate image: where its bytes are and what the source knows about its post."""

    source: str  # kind of source: "folder", "zip", "urls", later "instagram", ...
    location: str  # a file path, a zip member name or a URL: what fetch() reads
    post_id: str = ""
    permalink: str = ""
    author: str = ""
    caption: str = ""
    hashtags: tuple[str, ...] = ()
    timestamp: str = ""  # ISO 8601, UTC
    licence: str = ""
    likes: int | None = None
    # Source-specific facts worth keeping (comments, carousel index, alt text...).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The page cursor that yields this item again (paging sources; "" = the first page).
    cursor: str = ""

    @property
    def seen_key(self) -> str:
        """What the per-source archive remembers this candidate by."""
        return self.post_id or self.location

    def metadata(self) -> dict[str, Any]:
        """What the sidecar records about the item."""
        return {
            "source": self.source, "location": self.location, "post_id": self.post_id,
            "permalink": self.permalink, "author": self.author, "caption": self.caption,
            "hashtags": list(self.hashtags), "timestamp": self.timestamp,
            "likes": self.likes, "licence": self.licence, "extra": dict(self.extra),
        }


class Source(ABC):
    """A place that yields candidate images for a hashtag."""

    kind: str = ""
    # How many fetches run_scrape may run at once: 1 for local files, more for network.
    max_workers: int = 1
    # True when items() pages through an API newest-first and honours its cursor argument.
    pages: bool = False

    @abstractmethod
    def describe(self) -> str:
        """A short spec-like description for logs, job snapshots and manifests."""

    @abstractmethod
    def validate(self) -> None:
        """Raise NotFound/InvalidArgument/FailedPrecondition now when the source cannot yield
        anything, so a request fails up front instead of as a failed job. Must be cheap."""

    @abstractmethod
    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        """Candidates, lazily (a source may page through thousands); paging sources start at
        `cursor` when given (an Item.cursor from an earlier run), others ignore it."""

    @abstractmethod
    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        """The item's bytes; raises FetchError(reason) when they cannot be had."""

    def preflight(self, store, hashtag: str) -> None:
        """Cheap checks against storage (no network) a request can fail on up front, e.g. a
        budget that would be exceeded: raises FailedPrecondition."""
        return None

    def prepare(self, store, hashtag: str) -> str:
        """Called once before items() with the scrape's storage (budgets, cached lookups).
        Raises FailedPrecondition when the scrape must not start; returns a note for the
        job's message ("" when there is nothing to say)."""
        return ""

    def state_id(self) -> str:
        """Names this source's cursor and archive in storage: the same source, the same id."""
        digest = hashlib.sha256(self.describe().encode()).hexdigest()[:16]
        return f"{self.kind}-{digest}"

    def close(self) -> None:
        """Release what items()/fetch() opened."""
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_candidate_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return name.lower().endswith(IMAGE_SUFFIXES)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds")


class FolderSource(Source):
    """Image files under a local folder, recursively, in sorted order; hidden ones skipped."""

    kind = "folder"

    def __init__(self, path: str | Path, max_file_bytes: int = MAX_LOCAL_BYTES):
        self.path = Path(path).expanduser().absolute()
        self.max_file_bytes = max_file_bytes

    def describe(self) -> str:
        return f"folder:{self.path}"

    def validate(self) -> None:
        if not self.path.exists():
            raise NotFound(f"source: folder {str(self.path)!r} does not exist")
        if not self.path.is_dir():
            raise InvalidArgument("source", f"{str(self.path)!r} is not a folder")
        if next(self._files(), None) is None:
            raise InvalidArgument(
                "source", f"folder {str(self.path)!r} holds no image files "
                f"({', '.join(IMAGE_SUFFIXES)})")

    def _files(self) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if _is_candidate_name(name):
                    yield Path(dirpath) / name

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        for file in self._files():
            try:
                mtime = _iso(file.stat().st_mtime)
            except OSError:
                mtime = ""
            yield Item(source=self.kind, location=str(file),
                       post_id=file.relative_to(self.path).as_posix(), timestamp=mtime)

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        try:
            with open(item.location, "rb") as f:
                data = f.read(self.max_file_bytes + 1)
        except OSError as exc:
            raise FetchError("unreadable", f"{item.location}: {exc}") from None
        if len(data) > self.max_file_bytes:
            raise FetchError("too_large", f"{item.location} is over {self.max_file_bytes} bytes")
        return data


class ZipSource(Source):
    """Image members of a .zip archive. Members are read with a size cap, so an archive
    cannot make the scraper inflate gigabytes (a zip bomb) whatever sizes it declares."""

    kind = "zip"

    def __init__(self, path: str | Path, max_member_bytes: int = MAX_LOCAL_BYTES):
        self.path = Path(path).expanduser().absolute()
        self.max_member_bytes = max_member_bytes
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"zip:{self.path}"

    def validate(self) -> None:
        if not self.path.exists():
            raise NotFound(f"source: archive {str(self.path)!r} does not exist")
        if not self.path.is_file() or not zipfile.is_zipfile(self.path):
            raise InvalidArgument("source", f"{str(self.path)!r} is not a zip archive")
        if next(self._members(), None) is None:
            raise InvalidArgument(
                "source", f"archive {str(self.path)!r} holds no image files "
                f"({', '.join(IMAGE_SUFFIXES)})")

    def _archive(self) -> zipfile.ZipFile:
        with self._lock:
            if self._zip is None:
                try:
                    self._zip = zipfile.ZipFile(self.path)
                except (OSError, zipfile.BadZipFile) as exc:
                    raise InvalidArgument("source", f"cannot open {self.path}: {exc}") from None
            return self._zip

    def _members(self) -> Iterator[zipfile.ZipInfo]:
        infos = self._archive().infolist()
        for info in sorted(infos, key=lambda i: i.filename):
            if not info.is_dir() and _is_candidate_name(info.filename):
                yield info

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        for info in self._members():
            stamp = ""
            try:
                stamp = datetime(*info.date_time, tzinfo=timezone.utc).isoformat()
            except ValueError:
                pass
            yield Item(source=self.kind, location=info.filename, post_id=info.filename,
                       timestamp=stamp)

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        archive = self._archive()
        cap = self.max_member_bytes
        try:
            info = archive.getinfo(item.location)
            if info.file_size > cap:
                raise FetchError("too_large",
                                 f"{item.location} declares {info.file_size} bytes; cap {cap}")
            with archive.open(info) as member:
                data = member.read(cap + 1)
        except FetchError:
            raise
        except (KeyError, OSError, EOFError, RuntimeError, NotImplementedError,
                zipfile.BadZipFile, ValueError) as exc:
            # Missing, encrypted, corrupt or oddly compressed members.
            raise FetchError("bad_zip_member", f"{item.location}: {exc}") from None
        if len(data) > cap:
            raise FetchError("too_large", f"{item.location} inflates past {cap} bytes")
        return data

    def close(self) -> None:
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None


class HttpSource(Source):
    """A source whose items are media URLs: fetches them through a Downloader (timeouts,
    retries, size cap, per-host limit, SSRF guard). The social-API sources extend this."""

    def __init__(self, downloader: Downloader | None = None):
        self.downloader = downloader or Downloader()

    @property
    def max_workers(self) -> int:  # type: ignore[override]
        return self.downloader.max_in_flight

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        return self.downloader.get(item.location, should_stop)


class UrlListSource(HttpSource):
    """Image URLs given inline and/or in a file (one per line, '#' comments); each URL once."""

    kind = "urls"

    def __init__(self, urls: Iterable[str] = (), path: str | Path | None = None,
                 downloader: Downloader | None = None):
        super().__init__(downloader)
        self.urls = [u.strip() for u in urls if u.strip()]
        self.path = Path(path).expanduser().absolute() if path else None

    def describe(self) -> str:
        if self.path is None:
            return f"urls:{len(self.urls)} inline"
        extra = f" + {len(self.urls)} inline" if self.urls else ""
        return f"urls:{self.path}{extra}"

    def validate(self) -> None:
        if self.path is not None:
            if not self.path.exists():
                raise NotFound(f"source: URL list {str(self.path)!r} does not exist")
            if not self.path.is_file():
                raise InvalidArgument("source", f"{str(self.path)!r} is not a file")
        if next(self._urls(), None) is None:
            where = f"URL list {str(self.path)!r}" if self.path else "the URL list"
            raise InvalidArgument("source", f"{where} holds no URLs")

    def _urls(self) -> Iterator[str]:
        yield from self.urls
        if self.path is None:
            return
        try:
            with open(self.path, encoding="utf-8") as lines:
                for line in lines:
                    url = line.strip()  # only whole lines are comments: URLs may hold '#'
                    if url and not url.startswith("#"):
                        yield url
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument("source", f"cannot read URL list {self.path}: {exc}") from None

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        seen: set[str] = set()
        for url in self._urls():
            if url not in seen:
                seen.add(url)
                yield Item(source=self.kind, location=url, permalink=url)


# --- spec parsing -------------------------------------------------------------------------

_SCHEME = re.compile(r"^([a-z][a-z_]*):(.*)$", re.DOTALL)
SPEC_HELP = ("folder:/path, zip:/path.zip, urls:/path/list.txt or urls:https://..., "
             "instagram:[top|recent], mastodon:https://instance, x:@username or x:USER_ID")


def _local(path: str) -> Source:
    if not path.strip():
        raise InvalidArgument("source", "the path is empty")
    if path.lower().endswith(".zip"):
        return ZipSource(path)
    return FolderSource(path)


def _instagram(user_id: str = "", edge: str = "") -> Source:
    from socialgan.scraping.instagram import InstagramHashtagSource

    return InstagramHashtagSource(user_id=user_id, edge=edge)


def _mastodon(instance: str) -> Source:
    from socialgan.scraping.mastodon import MastodonHashtagSource

    if not instance:
        raise InvalidArgument("source", "mastodon: needs an instance, e.g. "
                              "mastodon:https://mastodon.social")
    return MastodonHashtagSource(instance)


def _x(user_id: str = "", username: str = "") -> Source:
    from socialgan.scraping.x import XFollowerBannersSource

    return XFollowerBannersSource(user_id=user_id, username=username)


def _x_from_string(rest: str) -> Source:
    if rest.isdigit():
        return _x(user_id=rest)
    return _x(username=rest)


def _from_string(spec: str) -> Source:
    spec = spec.strip()
    if not spec:
        raise InvalidArgument("source", f"is empty; give {SPEC_HELP}")
    if spec.startswith(("http://", "https://")):
        return UrlListSource(urls=[spec])
    match = _SCHEME.match(spec)
    if match is None:  # a bare path: the suffix says what it is
        if spec.lower().endswith(URL_LIST_SUFFIXES):
            return UrlListSource(path=spec)
        return _local(spec)
    kind, rest = match.group(1), match.group(2).strip()
    if kind == "folder":
        return _local(rest)
    if kind == "zip":
        if not rest:
            raise InvalidArgument("source", "zip: needs a path")
        return ZipSource(rest)
    if kind in ("urls", "url"):
        if rest.startswith(("http://", "https://")):
            return UrlListSource(urls=re.split(r"[\s,]+", rest))
        if not rest:
            raise InvalidArgument("source", "urls: needs a file path or URLs")
        return UrlListSource(path=rest)
    if kind in ("instagram", "ig"):
        return _instagram(edge=rest)
    if kind == "mastodon":
        return _mastodon(rest)
    if kind in ("x", "x_follower_banners", "twitter"):
        return _x_from_string(rest)
    raise InvalidArgument("source", f"unknown source kind {kind!r}; use {SPEC_HELP}")


def parse_source_spec(spec: str | scraper_pb2.SourceSpec) -> Source:
    """The Source a spec string or a SourceSpec message names, validated (validate())."""
    if isinstance(spec, scraper_pb2.SourceSpec):
        which = spec.WhichOneof("source")
        if which is None:
            raise InvalidArgument("source", f"is required; give {SPEC_HELP}")
        if which == "spec":
            source = _from_string(spec.spec)
        elif which == "folder":
            source = _local(spec.folder.path)
        elif which == "url_list":
            if not spec.url_list.urls and not spec.url_list.path:
                raise InvalidArgument("source.url_list", "give urls or a path")
            source = UrlListSource(urls=spec.url_list.urls, path=spec.url_list.path or None)
        elif which == "instagram":
            source = _instagram(spec.instagram.user_id, spec.instagram.edge)
        elif which == "mastodon":
            source = _mastodon(spec.mastodon.instance_url)
        elif which == "x_follower_banners":
            source = _x(spec.x_follower_banners.user_id, spec.x_follower_banners.username)
        else:  # a field added to the proto but not here
            raise InvalidArgument("source", f"unsupported source {which!r}; use {SPEC_HELP}")
    elif isinstance(spec, str):
        source = _from_string(spec)
    else:
        raise TypeError(f"source spec must be a str or SourceSpec, not {type(spec).__name__}")
    source.validate()
    return source

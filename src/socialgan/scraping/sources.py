"""Where scraped images come from: one Source interface, one class per kind of source.

A Source yields candidate Items (where the bytes are, plus what is known about the post)
and fetches an item's bytes. run_scrape() does everything else (checking, deduplicating,
storing, remembering what was seen), so each social source (socialgan.scraping.instagram,
.mastodon, .x) is one class that pages through its API and yields Items whose location is
a media URL; HttpSource fetches those through the Downloader. The types live in
scraping.base, the sources on the service's own disk (and the rules for reading it) in
scraping.local_files, pictures a client sends in scraping.upload.

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

Folder, zip and URL-file paths are read on the service's disk, only under its import root
(SCRAPER_IMPORT_DIR; see scraping.local_files): without one, they are PERMISSION_DENIED.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from socialgan.errors import InvalidArgument, NotFound, quote
from socialgan.scraping.base import IMAGE_SUFFIXES, Item, Source, StopCheck, is_candidate_name
from socialgan.scraping.download import Downloader, FetchError
from socialgan.scraping.local_files import (
    MAX_LOCAL_BYTES,
    FolderSource,
    ImportRoot,
    ZipSource,
    open_regular,
    request_error,
    require_root,
)
from socialgan.v1 import scraper_pb2

__all__ = [  # the base types and local sources, importable from here as before
    "IMAGE_SUFFIXES", "MAX_LOCAL_BYTES", "FolderSource", "HttpSource", "ImportRoot", "Item",
    "Source", "StopCheck", "UrlListSource", "ZipSource", "is_candidate_name",
    "local_spec_path", "parse_source_spec", "url_list_spec_path",
]

URL_LIST_SUFFIXES = (".txt", ".urls", ".lst")
# A longer line is no URL anyone means; it is read past (never held whole) and counted.
MAX_URL_CHARS = 8192
URL_TOO_LONG = "url_too_long"
# A line that is no http(s) URL is recorded by its line number, never by its text: a list
# file may hold anything (a key file named as a URL list would otherwise be copied into
# the manifest and the scrape state).
NOT_A_URL = "not_a_url"
_URL_START = re.compile(r"^https?://", re.IGNORECASE)


class HttpSource(Source):
    """A source whose items are media URLs: fetches them through a Downloader (timeouts,
    retries, size cap, per-host limit, SSRF guard). The social-API sources extend this."""

    def __init__(self, downloader: Downloader | None = None):
        self.downloader = downloader or Downloader()

    def bind_stop(self, should_stop: StopCheck) -> None:
        api = getattr(self, "api", None)  # the social-API sources page through an ApiClient
        if api is not None:
            api.should_stop = should_stop

    @property
    def max_workers(self) -> int:  # type: ignore[override]
        return self.downloader.max_in_flight

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        return self.downloader.get(item.location, should_stop)


def _bounded_lines(text: io.TextIOBase, limit: int) -> Iterator[str | None]:
    """A text file's lines, lazily; None for each line longer than limit characters, whose
    rest is skipped in limit-sized reads, so one giant line never sits in memory."""
    while line := text.readline(limit + 1):
        if len(line) > limit and not line.endswith("\n"):
            while line and not line.endswith("\n"):
                line = text.readline(limit + 1)
            yield None
        else:
            yield line


class UrlListSource(HttpSource):
    """Image URLs given inline and/or in a file (one per line, '#' comments); each URL once.
    The file is read lazily, as the scrape takes candidates: a scrape that stops (its limit
    reached, cancelled) stops reading, however long the list. lines_read says how far the
    last walk got."""

    kind = "urls"

    def __init__(self, urls: Iterable[str] = (), path: str | Path | None = None,
                 downloader: Downloader | None = None, *,
                 import_root: ImportRoot | None = None, field: str = "source"):
        super().__init__(downloader)
        self.urls = [u.strip() for u in urls if u.strip()]
        self.path = Path(path).expanduser().absolute() if path else None
        # A library caller naming its own list: links may not leave the list's folder.
        self.root = import_root or (ImportRoot(self.path.parent) if self.path else None)
        self.field = field
        self.lines_read = 0

    def describe(self) -> str:
        if self.path is None:
            return f"urls:{len(self.urls)} inline"
        extra = f" + {len(self.urls)} inline" if self.urls else ""
        return f"urls:{self.path}{extra}"

    def validate(self) -> None:
        if self.path is not None:
            assert self.root is not None
            real = self.root.check(self.path, self.field)
            if not os.path.lexists(real):
                raise NotFound(f"{self.field}: URL list {quote(str(self.path))} does not exist")
            try:  # a FIFO, a device or a link out is refused now, not in the job
                open_regular(real, self.root).close()
            except FetchError as exc:
                raise request_error(exc, self.field) from None
        urls = self._urls()
        try:
            empty = next(urls, None) is None
        finally:
            urls.close()  # the file, now: not whenever the generator is collected
        if empty:
            where = f"URL list {quote(str(self.path))}" if self.path else "the URL list"
            raise InvalidArgument(self.field, f"{where} holds no URLs")

    def _urls(self) -> Iterator[str | None]:
        yield from self.urls
        if self.path is None:
            return
        assert self.root is not None
        self.lines_read = 0
        try:
            raw = open_regular(str(self.path), self.root)
        except FetchError as exc:
            raise request_error(exc, self.field) from None
        # A bad byte spoils one line (an unusable URL, counted), not the whole list.
        with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as text:
            for line in _bounded_lines(text, MAX_URL_CHARS):
                self.lines_read += 1
                url = line.strip() if line is not None else None
                # Only whole lines are comments: URLs may hold '#'.
                if url is None or (url and not url.startswith("#")):
                    yield url

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        seen: set[str] = set()
        for index, url in enumerate(self._urls(), 1):
            # Inline URLs come first, while no file line has been read.
            where = f"line {self.lines_read}" if self.lines_read else f"inline entry {index}"
            if url is None:
                yield Item(source=self.kind, location=where, extra={URL_TOO_LONG: True})
            elif not _URL_START.match(url):
                yield Item(source=self.kind, location=where, extra={NOT_A_URL: True})
            elif url not in seen:
                seen.add(url)
                yield Item(source=self.kind, location=url, permalink=url)

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        if item.extra.get(URL_TOO_LONG):
            raise FetchError(URL_TOO_LONG, f"{item.location} is over {MAX_URL_CHARS} characters")
        if item.extra.get(NOT_A_URL):
            raise FetchError(NOT_A_URL, f"{item.location} is not an http(s) URL")
        return super().fetch(item, should_stop)


# --- spec parsing -------------------------------------------------------------------------

_SCHEME = re.compile(r"^([a-z][a-z_]*):(.*)$", re.DOTALL)
SPEC_HELP = ("folder:/path, zip:/path.zip, urls:/path/list.txt or urls:https://..., "
             "instagram:[top|recent], mastodon:https://instance, x:@username or x:USER_ID")
# parse_source_spec's default: the import root the environment configures.
FROM_ENVIRONMENT = "environment"


def local_spec_path(spec: str) -> tuple[str, str] | None:
    """("folder" | "zip", path) when a spec string names a folder or archive by path (the
    sources a client may upload instead), else None."""
    spec = spec.strip()
    match = _SCHEME.match(spec)
    if match is None:
        if spec.startswith(("http://", "https://")) or spec.lower().endswith(URL_LIST_SUFFIXES):
            return None
        kind, path = "folder", spec
    else:
        kind, path = match.group(1), match.group(2).strip()
        if kind not in ("folder", "zip"):
            return None
    if not path:
        return None
    return ("zip" if kind == "zip" or path.lower().endswith(".zip") else "folder"), path


def url_list_spec_path(spec: str) -> str | None:
    """The file a spec string names as a URL list (urls:PATH, or a bare PATH.txt), else None."""
    spec = spec.strip()
    match = _SCHEME.match(spec)
    if match is None:
        return spec if spec.lower().endswith(URL_LIST_SUFFIXES) else None
    kind, rest = match.group(1), match.group(2).strip()
    if kind in ("urls", "url") and rest and not rest.startswith(("http://", "https://")):
        return rest
    return None


def _local(kind: str, path: str, field: str, root: ImportRoot | None) -> Source:
    if not path.strip():
        raise InvalidArgument(field, "the path is empty")
    root = require_root(root, field)
    if kind == "zip" or path.lower().endswith(".zip"):
        return ZipSource(path, import_root=root, field=field)
    return FolderSource(path, import_root=root, field=field)


def _url_list(urls: Iterable[str], path: str, field: str, root: ImportRoot | None) -> Source:
    if not path:
        return UrlListSource(urls=urls, field=field)
    return UrlListSource(urls=urls, path=path, import_root=require_root(root, field),
                         field=field)


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


def _from_string(spec: str, field: str, root: ImportRoot | None) -> Source:
    spec = spec.strip()
    if not spec:
        raise InvalidArgument(field, f"is empty; give {SPEC_HELP}")
    if spec.startswith(("http://", "https://")):
        return UrlListSource(urls=[spec], field=field)
    local = local_spec_path(spec)
    if local is not None:
        return _local(*local, field, root)
    listing = url_list_spec_path(spec)
    if listing is not None:
        return _url_list((), listing, field, root)
    match = _SCHEME.match(spec)
    assert match is not None  # a bare path is a folder, an archive or a URL list
    kind, rest = match.group(1), match.group(2).strip()
    if kind in ("folder", "zip"):
        raise InvalidArgument(field, f"{kind}: needs a path")
    if kind in ("urls", "url"):
        if rest.startswith(("http://", "https://")):
            return UrlListSource(urls=re.split(r"[\s,]+", rest), field=field)
        raise InvalidArgument(field, "urls: needs a file path or URLs")
    if kind in ("instagram", "ig"):
        return _instagram(edge=rest)
    if kind == "mastodon":
        return _mastodon(rest)
    if kind in ("x", "x_follower_banners", "twitter"):
        return _x_from_string(rest)
    raise InvalidArgument(field, f"unknown source kind {quote(kind)}; use {SPEC_HELP}")


def parse_source_spec(spec: str | scraper_pb2.SourceSpec, *,
                      import_root: ImportRoot | None | str = FROM_ENVIRONMENT) -> Source:
    """The Source a spec string or a SourceSpec message names, validated (validate()).

    Paths are read under import_root only (None: no paths at all; by default the root
    SCRAPER_IMPORT_DIR configures); errors name the request field, e.g. source.folder.path.
    """
    root = ImportRoot.from_env() if import_root == FROM_ENVIRONMENT else import_root
    assert root is None or isinstance(root, ImportRoot)
    if isinstance(spec, scraper_pb2.SourceSpec):
        which = spec.WhichOneof("source")
        if which is None:
            raise InvalidArgument("source", f"is required; give {SPEC_HELP}")
        if which == "spec":
            source = _from_string(spec.spec, "source.spec", root)
        elif which == "folder":
            source = _local("folder", spec.folder.path, "source.folder.path", root)
        elif which == "url_list":
            if not spec.url_list.urls and not spec.url_list.path:
                raise InvalidArgument("source.url_list", "give urls or a path")
            source = _url_list(spec.url_list.urls, spec.url_list.path,
                               "source.url_list.path", root)
        elif which == "instagram":
            source = _instagram(spec.instagram.user_id, spec.instagram.edge)
        elif which == "mastodon":
            source = _mastodon(spec.mastodon.instance_url)
        elif which == "x_follower_banners":
            source = _x(spec.x_follower_banners.user_id, spec.x_follower_banners.username)
        else:  # a field added to the proto but not here
            raise InvalidArgument("source", f"unsupported source {which!r}; use {SPEC_HELP}")
    elif isinstance(spec, str):
        source = _from_string(spec, "source", root)
    else:
        raise TypeError(f"source spec must be a str or SourceSpec, not {type(spec).__name__}")
    source.validate()
    return source

"""Sources on the service's own disk (a folder, a .zip archive), and the rules for reading
any file a request names there.

A path in a request is user input: before this module, `urls:/proc/self/environ` stored the
service's environment (its API tokens), and a folder's links read /etc/shadow or 50 MB of
/dev/zero, and a FIFO hung the scrape beyond cancel. So a server-side path is read only
  - under the import root (SCRAPER_IMPORT_DIR; unset, no server-side path is read at all),
  - after resolving every link: a path or link that leads out of the root is refused,
  - never under /proc, /sys or /dev, whatever the root,
  - and only if it is a regular file: opened with O_NOFOLLOW|O_NONBLOCK and checked with
    fstat() before a byte is read, so a FIFO, socket or device never blocks a worker.
The checks run again on every file a folder walk or a scrape opens (links are resolved per
file, and where the opened file really is is read back from /proc/self/fd), so a link
planted or swapped in the middle of a walk is one named failure, not a read.

A library caller that builds FolderSource/ZipSource itself without a root gets the folder
(or the archive's folder) as the root: links may not leave it.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from socialgan import settings
from socialgan.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SocialGanError,
    clip,
    quote,
)
from socialgan.scraping.base import IMAGE_SUFFIXES, Item, Source, StopCheck, is_candidate_name
from socialgan.scraping.download import FetchError

MAX_LOCAL_BYTES = 50 << 20
IMPORT_ROOT_VAR = "SCRAPER_IMPORT_DIR"
# Kernel and device file systems: reading them leaks secrets (/proc/self/environ) or never
# ends (/dev/zero, /dev/stdin), so they are refused even under a root of "/".
SPECIAL_FILESYSTEMS = ("/proc", "/sys", "/dev")
# Why a file was not read, as counted in a scrape's failed_by_reason.
OUTSIDE_ROOT = "outside_import_root"
NOT_REGULAR = "not_a_regular_file"
UNREADABLE = "unreadable"
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))


BAD_MEMBER_NAME = "bad_name"


def _unsafe_member_name(name: str) -> bool:
    """An archive member name that is absolute or has a '..' part (either slash)."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _special(path: str) -> bool:
    return any(_within(path, fs) for fs in SPECIAL_FILESYSTEMS)


def _private_folders() -> list[str]:
    """The folders holding SocialGAN's own state on this machine (resolved)."""
    names = ("STORAGE_DIR", "TORCHSERVE_WORK_DIR", "TORCHSERVE_MODEL_STORE")
    return [os.path.realpath(value) for value in map(settings.get, names) if value]


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "link")):
        if test(mode):
            return name
    return "special file"


class ImportRoot:
    """The one folder whose files requests may name (SCRAPER_IMPORT_DIR), links resolved."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.path.realpath(os.path.expanduser(os.fspath(path)))
        # SocialGAN's own state is never user input, even under a broad root such as ".":
        # `urls:var/torchserve/key_file.json` would copy TorchServe's keys into a manifest.
        # (A root inside one of them is the operator's explicit choice and stays usable.)
        self.private = [folder for folder in _private_folders()
                        if not _within(self.path, folder)]

    @classmethod
    def from_env(cls) -> ImportRoot | None:
        """The configured root; None when SCRAPER_IMPORT_DIR is unset (no server-side paths)."""
        value = settings.get(IMPORT_ROOT_VAR)
        return cls(value) if value else None

    def __repr__(self) -> str:
        return f"ImportRoot({self.path!r})"

    def contains(self, real_path: str) -> bool:
        """Whether a resolved path lies under the root, outside /proc, /sys and /dev and
        outside SocialGAN's own folders."""
        return (_within(real_path, self.path) and not _special(real_path)
                and not self._private(real_path))

    def _private(self, real_path: str) -> bool:
        return any(_within(real_path, folder) for folder in self.private)

    def check(self, path: str | os.PathLike[str], field: str) -> str:
        """The real path (links resolved) that `path` names, if it lies under the root;
        PermissionDenied naming `field` if it does not. Relative paths are taken from the
        service's working folder. Says nothing about whether the path exists."""
        text = os.fspath(path)
        if not text.strip():
            raise InvalidArgument(field, "the path is empty")
        if "\x00" in text:
            raise InvalidArgument(field, "the path holds a NUL character")
        absolute = os.path.abspath(os.path.expanduser(text))
        real = os.path.realpath(absolute)
        if _special(absolute) or _special(real):
            raise PermissionDenied(field, f"{quote(text)} is under /proc, /sys or /dev, "
                                   "which are never read")
        if _special(self.path) or not os.path.isdir(self.path):
            raise FailedPrecondition(f"{field}: the import root {quote(self.path)} "
                                     f"({IMPORT_ROOT_VAR}) is not a folder outside /proc, "
                                     "/sys and /dev")
        if self._private(real) or self._private(absolute):
            raise PermissionDenied(field, f"{quote(text)} is inside SocialGAN's own storage "
                                   "or TorchServe folders, which are never read as input")
        if not _within(real, self.path):
            raise PermissionDenied(
                field, f"{quote(text)} is outside the import root {quote(self.path)} "
                f"({IMPORT_ROOT_VAR}); send files from elsewhere with UploadImages (the CLI "
                "does that for paths on its machine)")
        return real


def require_root(root: ImportRoot | None, field: str) -> ImportRoot:
    """root, or PermissionDenied naming `field` when the service reads no server-side paths."""
    if root is None:
        raise PermissionDenied(
            field, f"this service reads no files of its own: {IMPORT_ROOT_VAR} is not set; "
            "send the pictures with UploadImages (the CLI does that for paths on its machine)")
    return root


def _opened_path(fd: int) -> str | None:
    """Where an open file really is (Linux), or None where the system cannot say."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_regular(path: str, root: ImportRoot) -> BinaryIO:
    """Open a file for reading if it is a regular file under the root, links resolved;
    FetchError(outside_import_root | not_a_regular_file | unreadable) if not. Never blocks:
    a FIFO or device is refused before and after opening (O_NONBLOCK, fstat)."""
    shown = quote(path)
    real = os.path.realpath(path)
    if not root.contains(real):
        raise FetchError(OUTSIDE_ROOT, f"{shown} leads outside the import root")
    try:
        mode = os.lstat(real).st_mode
        if not stat.S_ISREG(mode):
            raise FetchError(NOT_REGULAR, f"{shown} is a {_file_kind(mode)}")
        fd = os.open(real, _OPEN_FLAGS)
    except FetchError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since realpath() looked
            raise FetchError(OUTSIDE_ROOT, f"{shown} became a link") from None
        raise FetchError(UNREADABLE, f"{shown}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FetchError(NOT_REGULAR, f"{shown} is a {_file_kind(mode)}")
        opened = _opened_path(fd)
        if opened is not None and not root.contains(opened):  # a folder swapped for a link
            raise FetchError(OUTSIDE_ROOT, f"{shown} leads outside the import root")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str, root: ImportRoot, cap: int) -> bytes:
    """A regular file's bytes under the root (open_regular), FetchError(too_large) past cap."""
    with open_regular(path, root) as f:
        try:
            data = f.read(cap + 1)
        except OSError as exc:
            raise FetchError(UNREADABLE, f"{quote(path)}: {exc.strerror}") from None
    if len(data) > cap:
        raise FetchError("too_large", f"{quote(path)} is over {cap} bytes")
    return data


def request_error(exc: FetchError, field: str) -> SocialGanError:
    """A refused file named by the request itself, as the error the request fails with."""
    detail = str(exc).partition(": ")[2] or str(exc)
    if exc.reason == OUTSIDE_ROOT:
        return PermissionDenied(field, detail)
    return InvalidArgument(field, detail)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds")


class FolderSource(Source):
    """Image files under a folder, recursively, in sorted order; hidden ones skipped, linked
    folders not entered, each file read only if it passes open_regular()."""

    kind = "folder"

    def __init__(self, path: str | Path, max_file_bytes: int = MAX_LOCAL_BYTES, *,
                 import_root: ImportRoot | None = None, field: str = "source"):
        self.path = Path(path).expanduser().absolute()
        self.max_file_bytes = max_file_bytes
        self.root = import_root or ImportRoot(self.path)
        self.field = field
        self._top: str | None = None

    def describe(self) -> str:
        return f"{self.kind}:{self.path}"

    def top(self) -> str:
        """The folder's real path, once checked against the root."""
        if self._top is None:
            self._top = self.root.check(self.path, self.field)
        return self._top

    def validate(self) -> None:
        top, shown = self.top(), quote(str(self.path))
        if not os.path.lexists(top):
            raise NotFound(f"{self.field}: folder {shown} does not exist")
        if not os.path.isdir(top):
            raise InvalidArgument(self.field, f"{shown} is not a folder")
        if next(self._files(), None) is None:
            raise InvalidArgument(self.field, f"{quote(self.describe())} holds no image files "
                                  f"({', '.join(IMAGE_SUFFIXES)})")

    def _files(self) -> Iterator[Path]:
        # followlinks=False: a linked folder is never entered; linked files are candidates
        # that fetch() resolves and refuses when they lead outside the root.
        for dirpath, dirnames, filenames in os.walk(self.top()):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if is_candidate_name(name):
                    yield Path(dirpath) / name

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        top = self.top()
        for file in self._files():
            try:
                mtime = _iso(os.lstat(file).st_mtime)  # lstat: a link's target is not touched
            except OSError:
                mtime = ""
            yield Item(source=self.kind, location=str(file),
                       post_id=file.relative_to(top).as_posix(), timestamp=mtime)

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        return read_capped(item.location, self.root, self.max_file_bytes)


class ZipSource(Source):
    """Image members of a .zip archive. Members are read with a size cap, so an archive
    cannot make the scraper inflate gigabytes (a zip bomb) whatever sizes it declares, and
    are never extracted to disk (a member's name is only a name)."""

    kind = "zip"

    def __init__(self, path: str | Path, max_member_bytes: int = MAX_LOCAL_BYTES, *,
                 import_root: ImportRoot | None = None, field: str = "source"):
        self.path = Path(path).expanduser().absolute()
        self.max_member_bytes = max_member_bytes
        self.root = import_root or ImportRoot(self.path.parent)
        self.field = field
        self._file: BinaryIO | None = None
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.kind}:{self.path}"

    def validate(self) -> None:
        real, shown = self.root.check(self.path, self.field), quote(str(self.path))
        if not os.path.lexists(real):
            raise NotFound(f"{self.field}: archive {shown} does not exist")
        if next(self._members(), None) is None:
            raise InvalidArgument(self.field, f"{quote(self.describe())} holds no image files "
                                  f"({', '.join(IMAGE_SUFFIXES)})")

    def _archive(self) -> zipfile.ZipFile:
        with self._lock:
            if self._zip is None:
                real = self.root.check(self.path, self.field)
                try:
                    self._file = open_regular(real, self.root)
                except FetchError as exc:
                    raise request_error(exc, self.field) from None
                try:
                    self._zip = zipfile.ZipFile(self._file)
                except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
                    self._file.close()
                    self._file = None
                    raise InvalidArgument(self.field, f"{quote(self.describe())} is not a "
                                          f"zip archive ({type(exc).__name__})") from None
            return self._zip

    def _members(self) -> Iterator[zipfile.ZipInfo]:
        infos = self._archive().infolist()
        for info in sorted(infos, key=lambda i: i.filename):
            if info.is_dir():
                continue
            if is_candidate_name(info.filename) or (
                    _unsafe_member_name(info.filename)
                    and info.filename.lower().endswith(IMAGE_SUFFIXES)):
                yield info

    def items(self, hashtag: str, cursor: str | None = None) -> Iterator[Item]:
        for info in self._members():
            if _unsafe_member_name(info.filename):
                # Never extracted (members are read in memory), but a name that climbs out
                # or is absolute is a hostile archive's: recorded by reason, not skipped.
                yield Item(source=self.kind, location=clip(info.filename, 200),
                           extra={BAD_MEMBER_NAME: True})
                continue
            stamp = ""
            try:
                stamp = datetime(*info.date_time, tzinfo=timezone.utc).isoformat()
            except ValueError:
                pass
            yield Item(source=self.kind, location=info.filename, post_id=info.filename,
                       timestamp=stamp)

    def fetch(self, item: Item, should_stop: StopCheck = None) -> bytes:
        if item.extra.get(BAD_MEMBER_NAME):
            raise FetchError(BAD_MEMBER_NAME, f"{quote(item.location)} is absolute or climbs "
                             "out with '..'")
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
            if self._file is not None:
                self._file.close()
                self._file = None

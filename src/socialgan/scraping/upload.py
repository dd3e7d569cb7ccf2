"""Pictures a client sends (UploadImages): a folder's image files or one .zip archive, for
pictures that are not on the service's disk (compose, Kubernetes, a remote service).

The service spools an upload into a private temporary folder, bounded (SCRAPER_UPLOAD_MAX_MB
sent per upload and kept by all spools together, MAX_UPLOAD_FILES files, MAX_CONCURRENT_UPLOADS
spools at once; a picture past 50 MB is kept only up to the cap, so the folder source's own
check counts it too_large), then
scrapes that folder or archive with the same FolderSource/ZipSource and run_scrape as every
other source: magic bytes, header and decode checks, bomb guards, raw/ layout, sidecars and
manifest are one code path. The folder goes when that scrape ends. A client's file name is
checked (relative, no '..', no hidden or control characters) and only ever names a file
inside the spool folder, created by the service itself (O_EXCL, O_NOFOLLOW): no upload
writes anywhere else, and the spool holds no links.

upload_parts() is the client's side: a folder on the client's machine is walked with the
same candidate rules and safe reads as a folder source on the service's disk.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from socialgan import settings
from socialgan.errors import InvalidArgument, ResourceExhausted, quote
from socialgan.scraping.base import IMAGE_SUFFIXES, Source, is_candidate_name, is_hidden_name
from socialgan.scraping.download import FetchError
from socialgan.scraping.local_files import (
    MAX_LOCAL_BYTES,
    FolderSource,
    ImportRoot,
    ZipSource,
    open_regular,
)

MAX_UPLOAD_FILES = 100_000
MAX_CONCURRENT_UPLOADS = 4  # spooled at once (receiving or being scraped): bounds the disk
MAX_NAME_CHARS = 1024
MAX_NAME_PART_BYTES = 255  # what file systems allow per path component
MAX_LABEL_CHARS = 100
CHUNK_BYTES = 1 << 20
_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0))


class _Uploaded:
    """What sets an upload's source apart from the same source on the service's disk: it
    is named by the client's label (not the spool path) and its errors by file.name."""

    kind = "upload"

    def __init__(self, path: Path, label: str):
        super().__init__(path, field="file.name")  # FolderSource or ZipSource, by the MRO
        self.label = label

    def describe(self) -> str:
        return f"upload:{self.label}"


class UploadedFolder(_Uploaded, FolderSource):
    """The image files of an upload, in its spool folder."""


class UploadedZip(_Uploaded, ZipSource):
    """The image members of an uploaded archive, in its spool folder."""


def _control(ch: str) -> bool:
    return ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0


def name_problem(name: str) -> str | None:
    """Why a file name cannot be part of an upload (None: it can): what the service refuses
    and the client therefore leaves out."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is over {MAX_NAME_CHARS} characters"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8"
    if any(_control(ch) for ch in name):
        return "holds control characters"
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "must be a relative path without '.', '..' or empty parts"
    if any(len(p.encode()) > MAX_NAME_PART_BYTES for p in parts):
        return f"has a part over {MAX_NAME_PART_BYTES} bytes"
    if is_hidden_name(name) or not (name.lower().endswith(".zip") or is_candidate_name(name)):
        return (f"is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a .zip archive, or "
                "is hidden")
    return None


def clean_label(label: str) -> str:
    """A client's label as it may appear in a job's source: no control characters, short."""
    label = "".join(ch for ch in label if not _control(ch)).strip()[:MAX_LABEL_CHARS]
    return label or "upload"


class UploadSpool:
    """One upload's files in a private temporary folder, until close() (idempotent)."""

    _slots = threading.BoundedSemaphore(MAX_CONCURRENT_UPLOADS)
    # Bytes all open spools keep on disk: together they stay within SCRAPER_UPLOAD_MAX_MB,
    # so uploads at once cannot fill the service's /tmp (256 MB in compose and Kubernetes).
    _held = 0
    _held_lock = threading.Lock()

    def __init__(self, label: str, *, max_bytes: int | None = None,
                 max_file_bytes: int = MAX_LOCAL_BYTES, max_files: int = MAX_UPLOAD_FILES):
        self.max_bytes = (max_bytes if max_bytes is not None
                          else settings.get_int("SCRAPER_UPLOAD_MAX_MB") << 20)
        if not UploadSpool._slots.acquire(blocking=False):
            raise ResourceExhausted(f"uploads: {MAX_CONCURRENT_UPLOADS} uploads are being "
                                    "received or scraped; try again when one has finished")
        self._closed = False
        self.label = clean_label(label)
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.received = 0  # bytes sent, kept or not
        self.kept = 0  # bytes on disk, held of the shared budget
        self.names: set[str] = set()
        self._zip: Path | None = None
        self._current: BinaryIO | None = None
        self._room = 0  # bytes the current file may still take; the rest is dropped
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="socialgan-upload-"))
        except OSError as exc:
            UploadSpool._slots.release()
            raise ResourceExhausted(f"uploads: no room to receive one: {exc.strerror}") from None

    def _check_name(self, name: str) -> PurePosixPath:
        problem = name_problem(name)
        if problem:
            raise InvalidArgument("file.name", f"{quote(name)} {problem}")
        if name in self.names:
            raise InvalidArgument("file.name", f"{quote(name)} comes twice")
        if len(self.names) >= self.max_files:
            raise InvalidArgument("file.name", f"an upload holds at most {self.max_files} files")
        if self._zip is not None or (name.lower().endswith(".zip") and self.names):
            raise InvalidArgument("file.name", "a .zip archive is uploaded alone, not with "
                                  "other files")
        return PurePosixPath(name)

    def start_file(self, name: str) -> None:
        """Begin the next file; the chunks that follow are its bytes."""
        relative = self._check_name(name)
        self._close_current()
        target = self.dir.joinpath(*relative.parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, _CREATE_FLAGS, 0o600)
        except OSError as exc:  # e.g. "a.png" and then "a.png/b.png"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ResourceExhausted(f"file.name: no room for the upload: {exc.strerror}"
                                        ) from None
            raise InvalidArgument("file.name", f"{quote(name)} cannot be stored beside the "
                                  f"files before it: {exc.strerror}") from None
        self._current = os.fdopen(fd, "wb")
        self.names.add(name)
        if relative.suffix.lower() == ".zip":
            self._zip, self._room = target, self.max_bytes  # members are capped when read
        else:
            self._room = self.max_file_bytes + 1  # one byte past the cap says too_large

    def write(self, chunk: bytes) -> None:
        """More bytes of the current file."""
        if self._current is None:
            raise InvalidArgument("chunk", "comes before any file message")
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise InvalidArgument("chunk", f"the upload is over {self.max_bytes} bytes "
                                  "(SCRAPER_UPLOAD_MAX_MB)")
        kept = chunk[: max(self._room, 0)]
        if kept:
            self._hold(len(kept))
            try:
                self._current.write(kept)
            except OSError as exc:
                raise ResourceExhausted(f"chunk: the service cannot store the upload: "
                                        f"{exc.strerror}") from None
            self._room -= len(kept)

    def _hold(self, size: int) -> None:
        with UploadSpool._held_lock:
            if UploadSpool._held + size > self.max_bytes:
                raise ResourceExhausted("chunk: the uploads being received or scraped hold "
                                        "SCRAPER_UPLOAD_MAX_MB already; try again when one "
                                        "has finished")
            UploadSpool._held += size
        self.kept += size

    def _close_current(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            try:
                current.close()
            except OSError as exc:
                raise ResourceExhausted(f"chunk: the service cannot store the upload: "
                                        f"{exc.strerror}") from None

    def source(self) -> Source:
        """The received files as a source, validated (it holds image files)."""
        self._close_current()
        source: Source
        if self._zip is not None:
            source = UploadedZip(self._zip, self.label)
        elif self.names:
            source = UploadedFolder(self.dir, self.label)
        else:
            raise InvalidArgument("file", "the upload holds no files")
        source.validate()
        return source

    def close_with(self, owner: object) -> None:
        """Close the spool when owner (the job's work) is dropped, whether it ran or not (a
        job cancelled while queued never runs its work)."""
        weakref.finalize(owner, self.close)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._close_current()
        except ResourceExhausted:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        with UploadSpool._held_lock:
            UploadSpool._held -= self.kept
            self.kept = 0
        UploadSpool._slots.release()


# --- the client's side --------------------------------------------------------------------

Part = tuple[str, "str | bytes"]  # ("file", name) or ("chunk", bytes), as UploadImagesRequest


def _chunks(data: bytes) -> Iterator[Part]:
    for start in range(0, len(data), CHUNK_BYTES):
        yield "chunk", data[start:start + CHUNK_BYTES]


def upload_parts(kind: str, path: str | Path,
                 on_skip: Callable[[str, str], None] = lambda name, reason: None
                 ) -> Iterator[Part]:
    """What to send for a folder or archive on this machine, in order. A folder's files are
    picked and read as a folder source on the service would (image suffixes, hidden ones
    skipped, only regular files, no link out of the folder); one that cannot be read is
    passed to on_skip(name, reason) and left out."""
    if kind == "zip":
        archive = Path(path).expanduser().absolute()
        try:
            with open_regular(str(archive), ImportRoot(archive.parent)) as f:
                yield "file", archive.name
                while block := f.read(CHUNK_BYTES):
                    yield "chunk", block
        except FetchError as exc:
            on_skip(archive.name, exc.reason)
        return
    folder = FolderSource(path)
    for item in folder.items(""):
        if name_problem(item.post_id):
            on_skip(item.post_id, "bad_name")
            continue
        try:
            data = folder.fetch(item)
        except FetchError as exc:
            on_skip(item.post_id, exc.reason)
            continue
        yield "file", item.post_id
        yield from _chunks(data)

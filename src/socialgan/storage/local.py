"""Storage in a local folder: the embedded default for the one-command run and tests."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from socialgan.errors import NotFound
from socialgan.storage.base import (
    ObjectInfo,
    ObjectStore,
    check_key,
    sha256_bytes,
    sha256_file,
)

# Per-object metadata (sha256, content type) lives beside the data, under this folder,
# so list() of the data tree stays a plain walk.
_META_DIR = ".meta"
_TMP_PREFIX = ".tmp-"
# A temp file is a dead writer's leftover once no process holds its lock and it has not
# changed for this long. The lock protects writes in progress; the grace covers the
# instant between a temp file's creation and its lock, and file systems without locks.
TEMP_GRACE_S = 60.0


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / (check_key(key) + ".json")

    @staticmethod
    def _atomic_write(path: Path, write) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                # Held until the rename, so sweep_leftovers never takes a write in progress;
                # the kernel drops it when the writer dies, however it dies.
                fcntl.flock(f, fcntl.LOCK_EX)
                write(f)
                f.flush()
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _commit(self, key: str, size: int, sha256: str, content_type: str) -> ObjectInfo:
        info = ObjectInfo(key=key, size=size, sha256=sha256, content_type=content_type)
        meta = json.dumps({"sha256": sha256, "content_type": content_type}).encode()
        self._atomic_write(self._meta_path(key), lambda f: f.write(meta))
        return info

    def put_bytes(self, key, data, content_type="application/octet-stream"):
        path = self._path(key)
        self._atomic_write(path, lambda f: f.write(data))
        return self._commit(key, len(data), sha256_bytes(data), content_type)

    def put_file(self, key, path, content_type="application/octet-stream"):
        target = self._path(key)
        with open(path, "rb") as src:
            self._atomic_write(target, lambda f: shutil.copyfileobj(src, f))
        return self._commit(key, target.stat().st_size, sha256_file(target), content_type)

    def get_bytes(self, key):
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no object {key!r} in storage") from None

    def get_file(self, key, path):
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"no object {key!r} in storage")
        with open(source, "rb") as src:
            self._atomic_write(Path(path), lambda f: shutil.copyfileobj(src, f))

    def stat(self, key):
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"no object {key!r} in storage")
        try:
            meta = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            # Written by hand or by an older version: derive what was not recorded.
            meta = {"sha256": sha256_file(path), "content_type": "application/octet-stream"}
        return ObjectInfo(key, path.stat().st_size, meta["sha256"], meta["content_type"])

    def list(self, prefix=""):
        check_key(prefix, prefix=True)
        return iter(sorted(self._walk(prefix)))

    def _walk(self, prefix: str) -> Iterator[str]:
        # Walk only the folder the prefix names, not the whole store.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            dirnames[:] = [d for d in dirnames if not (rel_dir == "." and d == _META_DIR)]
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    yield key

    def sweep_leftovers(self, older_than_s=None):
        """Remove the temp files of writers that died mid-write (kill -9, a lost node):
        unlocked and unchanged for older_than_s (default TEMP_GRACE_S)."""
        cutoff = time.time() - (TEMP_GRACE_S if older_than_s is None else older_than_s)
        removed = 0
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    removed += _remove_if_abandoned(Path(dirpath) / name, cutoff)
        return removed

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def url(self, key):
        return self._path(key).as_uri()


def _remove_if_abandoned(path: Path, cutoff: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # renamed by its writer meanwhile, or a link: not ours to open
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive and writing
        if os.fstat(fd).st_mtime >= cutoff:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)

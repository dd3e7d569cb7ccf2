"""Storage in a local folder: the embedded default for the one-command run and tests."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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
                write(f)
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

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def url(self, key):
        return self._path(key).as_uri()

"""The storage contract both backends meet (tests/test_storage_contract.py pins it)."""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialgan.errors import InvalidArgument, quote
from socialgan.validation import check_utf8_bytes

_SEGMENT = re.compile(r"[\w.\-]+")
MAX_KEY_BYTES = 1024  # S3's limit on an object key
_CHUNK = 1 << 20


def check_key(key: str, *, prefix: bool = False, field: str = "key") -> str:
    """Return key if it is a safe relative object key, else raise InvalidArgument naming field.

    Keys often hold user input (hashtags, ids): no absolute paths, no '..', no empty
    or odd segments, so a key can never name a file outside the store's root; and no
    segment too long for a file name, no key longer than S3 allows.
    """
    check_utf8_bytes(key, field, MAX_KEY_BYTES)
    body = key[:-1] if prefix and key.endswith("/") else key
    if prefix and body == "":
        return key
    segments = body.split("/")
    if key.startswith("/") or "\\" in key or any(
        s in ("", ".", "..") or not _SEGMENT.fullmatch(s) for s in segments
    ):
        raise InvalidArgument(field, f"{quote(key)} is not a valid storage key")
    for segment in segments:
        check_utf8_bytes(segment, field)
    return key


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str
    content_type: str


class ObjectStore(ABC):
    """Flat key -> bytes store. Every object records its sha256 when it is written.

    Writes are atomic: a reader sees the old object, the new one, or none, never a
    partial one. Missing keys raise socialgan.errors.NotFound.
    """

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo: ...

    @abstractmethod
    def put_file(
        self, key: str, path: str | Path, content_type: str = "application/octet-stream"
    ) -> ObjectInfo: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def get_file(self, key: str, path: str | Path) -> None:
        """Download key to path (written atomically)."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with prefix, at any depth, in sorted order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove key; removing a missing key is not an error."""

    @abstractmethod
    def url(self, key: str) -> str:
        """An address a person or tool can open the object at."""

    def sweep_leftovers(self, older_than_s: float | None = None) -> int:
        """Remove what writers killed mid-write left behind (temp files, unfinished
        uploads) older than older_than_s (None: the backend's grace period); never a
        write in progress. Returns how many were removed. open_store() calls it."""
        return 0

    def exists(self, key: str) -> bool:
        from socialgan.errors import NotFound

        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def put_json(self, key: str, value: Any) -> ObjectInfo:
        data = json.dumps(value, indent=2, sort_keys=True).encode()
        return self.put_bytes(key, data, "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

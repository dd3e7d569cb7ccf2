"""Object storage shared by every service: one interface, a local-folder and an S3 backend.

The bucket/key layout is defined in socialgan.storage.keys; nothing else builds keys.
"""

from __future__ import annotations

from socialgan import settings
from socialgan.storage.base import ObjectInfo, ObjectStore
from socialgan.storage.local import LocalObjectStore


def open_store() -> ObjectStore:
    """The store the environment configures (STORAGE_BACKEND and its variables)."""
    backend = settings.get("STORAGE_BACKEND")
    if backend == "local":
        return LocalObjectStore(settings.require("STORAGE_DIR"))
    if backend == "s3":
        from socialgan.storage.s3 import S3ObjectStore  # minio is only needed here

        return S3ObjectStore(
            endpoint=settings.require("S3_ENDPOINT"),
            access_key=settings.require("S3_ACCESS_KEY"),
            secret_key=settings.require("S3_SECRET_KEY"),
            bucket=settings.require("S3_BUCKET"),
            secure=settings.get_bool("S3_SECURE"),
            region=settings.get("S3_REGION"),
        )
    raise settings.ConfigError(f"STORAGE_BACKEND={backend!r}: use 'local' or 's3'")


__all__ = ["ObjectInfo", "ObjectStore", "LocalObjectStore", "open_store"]

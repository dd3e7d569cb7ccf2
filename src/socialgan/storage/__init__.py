"""Object storage shared by every service: one interface, a local-folder and an S3 backend.

The bucket/key layout is defined in socialgan.storage.keys; nothing else builds keys.
"""

from __future__ import annotations

import logging

from socialgan import settings
from socialgan.storage.base import ObjectInfo, ObjectStore
from socialgan.storage.local import LocalObjectStore

log = logging.getLogger("socialgan.storage")


def open_store() -> ObjectStore:
    """The store the environment configures (STORAGE_BACKEND and its variables), swept of
    what writers killed mid-write left in it (every service and job opens it at start)."""
    store = _configured_store()
    try:
        removed = store.sweep_leftovers()
    except Exception as exc:  # a sweep that fails must not keep a service from starting
        log.warning("storage: cannot sweep leftovers of killed writers: %s", exc)
    else:
        if removed:
            log.info("storage: removed %d leftovers of killed writers", removed)
    return store


def _configured_store() -> ObjectStore:
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

"""Storage in an S3 bucket through the minio SDK: MinIO in compose and Kubernetes."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error

from socialgan.errors import NotFound
from socialgan.storage.base import (
    ObjectInfo,
    ObjectStore,
    check_key,
    sha256_bytes,
    sha256_file,
)

# S3 multipart ETags are not content hashes, so the sha256 travels as user metadata.
_SHA_HEADER = "x-amz-meta-sha256"
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
# A multipart upload (minio-py uses one above 5 MiB, e.g. every checkpoint) that a killed
# writer never completed keeps its parts in the bucket, unlisted and billed, until it is
# aborted. S3 cannot tell a dead writer's upload from a slow live one, so only uploads
# started this long ago are aborted (no write of ours takes an hour).
UPLOAD_GRACE_S = 3600.0


class S3ObjectStore(ObjectStore):
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ):
        # Every call has a timeout and bounded retries with backoff (urllib3 does both).
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(
                total=4, backoff_factor=0.3, status_forcelist=(500, 502, 503, 504)
            ),
            maxsize=16,
        )
        self.bucket = bucket
        self.endpoint = endpoint
        self.secure = secure
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        if not self.client.bucket_exists(bucket_name=bucket):
            self.client.make_bucket(bucket_name=bucket)

    def put_bytes(self, key, data, content_type="application/octet-stream"):
        check_key(key)
        sha = sha256_bytes(data)
        self.client.put_object(
            bucket_name=self.bucket,
            object_name=key,
            data=io.BytesIO(data),
            length=len(data),
            content_type=content_type,
            metadata={"sha256": sha},
        )
        return ObjectInfo(key, len(data), sha, content_type)

    def put_file(self, key, path, content_type="application/octet-stream"):
        check_key(key)
        sha = sha256_file(path)
        self.client.fput_object(
            bucket_name=self.bucket,
            object_name=key,
            file_path=str(path),
            content_type=content_type,
            metadata={"sha256": sha},
        )
        return ObjectInfo(key, Path(path).stat().st_size, sha, content_type)

    def get_bytes(self, key):
        check_key(key)
        try:
            response = self.client.get_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            raise self._translate(exc, key) from None
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def get_file(self, key, path):
        check_key(key)
        try:
            # minio writes to a .part file and renames it: atomic for readers of path.
            self.client.fget_object(bucket_name=self.bucket, object_name=key, file_path=str(path))
        except S3Error as exc:
            raise self._translate(exc, key) from None

    def stat(self, key):
        check_key(key)
        try:
            obj = self.client.stat_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            raise self._translate(exc, key) from None
        meta = {k.lower(): v for k, v in (obj.metadata or {}).items()}
        sha = meta.get(_SHA_HEADER)
        if sha is None:  # uploaded by another tool: hash it once now
            sha = sha256_bytes(self.get_bytes(key))
        return ObjectInfo(key, obj.size or 0, sha, obj.content_type or "application/octet-stream")

    def list(self, prefix=""):
        check_key(prefix, prefix=True)
        objects = self.client.list_objects(
            bucket_name=self.bucket, prefix=prefix or None, recursive=True
        )
        return iter(sorted(o.object_name for o in objects if not o.is_dir))

    def delete(self, key):
        check_key(key)
        self.client.remove_object(bucket_name=self.bucket, object_name=key)

    def sweep_leftovers(self, older_than_s=None):
        """Abort the multipart uploads that started more than older_than_s ago (default
        UPLOAD_GRACE_S) and were never completed."""
        grace = UPLOAD_GRACE_S if older_than_s is None else older_than_s
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace)
        removed, key_marker, upload_id_marker = 0, None, None
        while True:
            # minio-py 7 (pinned <8) has ListMultipartUploads and AbortMultipartUpload only
            # as these methods; its public API has no way to list unfinished uploads.
            page = self.client._list_multipart_uploads(
                bucket_name=self.bucket, key_marker=key_marker, upload_id_marker=upload_id_marker)
            for upload in page.uploads:
                if upload.initiated_time is not None and upload.initiated_time <= cutoff:
                    self.client._abort_multipart_upload(
                        bucket_name=self.bucket, object_name=upload.object_name,
                        upload_id=upload.upload_id)
                    removed += 1
            if not page.is_truncated:
                return removed
            key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker

    def url(self, key):
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.endpoint}/{self.bucket}/{check_key(key)}"

    def presigned_get_url(self, key: str, expires_s: int) -> str:
        """A GET URL for key that anyone can open for expires_s seconds (at most 7 days),
        for a platform that fetches the picture itself (Instagram)."""
        return self.client.presigned_get_object(
            bucket_name=self.bucket, object_name=check_key(key),
            expires=timedelta(seconds=expires_s))

    @staticmethod
    def _translate(exc: S3Error, key: str) -> Exception:
        if exc.code in _MISSING:
            return NotFound(f"no object {key!r} in storage")
        return exc

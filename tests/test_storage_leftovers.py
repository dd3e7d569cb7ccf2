"""Issue 9 item 11: a writer killed mid-write leaves nothing behind for good. Local temp
files and S3 unfinished multipart uploads are swept when the store is opened; a write
in progress is never taken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from socialgan.storage import LocalObjectStore, keys, open_store
from socialgan.storage.local import TEMP_GRACE_S
from tests.conftest import make_s3_store

ROOT = Path(__file__).resolve().parents[1]
KEY = keys.checkpoint_key("killed-run", 8)
# The writer copies from a FIFO the test feeds: it is mid-write, for certain, until the
# test stops feeding it.
WRITER = ("import sys; from socialgan.storage import LocalObjectStore; "
          "LocalObjectStore(sys.argv[1]).put_file(sys.argv[2], sys.argv[3])")


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*") if p.is_file()]


def wait_for_partial_temp_file(root: Path, writer: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 30
    while True:
        found = [p for p in temp_files(root) if p.stat().st_size > 0]
        if found:
            return found[0]
        assert writer.poll() is None and time.monotonic() < deadline, "writer never wrote"
        time.sleep(0.02)


def test_a_killed_writers_temp_file_is_swept_and_one_in_progress_is_kept(tmp_path):
    store = LocalObjectStore(tmp_path / "store")
    fifo = tmp_path / "source"
    os.mkfifo(fifo)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), KEY, str(fifo)],
                              cwd=ROOT)
    try:
        with open(fifo, "wb") as feed:
            feed.write(b"\0" * (1 << 20))
            feed.flush()
            temp = wait_for_partial_temp_file(store.root, writer)

            # In progress: kept even by a sweep with no grace at all (its writer holds
            # the lock).
            assert store.sweep_leftovers(older_than_s=0) == 0 and temp.exists()

            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
        assert temp.exists() and not store.exists(KEY)  # what the kill leaves

        assert store.sweep_leftovers(older_than_s=0) == 1
        assert temp_files(store.root) == [] and not store.exists(KEY)
    finally:
        writer.kill()
        writer.wait(timeout=30)


def test_a_fresh_unlocked_temp_file_is_kept_for_the_grace_period(tmp_path):
    # A temp file between its creation and its writer's lock looks abandoned; the grace
    # period keeps it.
    store = LocalObjectStore(tmp_path / "store")
    fresh = store.root / "checkpoints" / "r" / ".tmp-fresh"
    fresh.parent.mkdir(parents=True)
    fresh.write_bytes(b"partial")

    assert store.sweep_leftovers() == 0 and fresh.exists()

    old = time.time() - TEMP_GRACE_S - 5
    os.utime(fresh, (old, old))
    assert store.sweep_leftovers() == 1 and not fresh.exists()


def test_opening_the_configured_store_sweeps_it(tmp_path, monkeypatch):
    root = tmp_path / "store"
    leftover = root / "datasets" / "ds" / ".tmp-abc123"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    kept = LocalObjectStore(root)
    kept.put_bytes("datasets/ds/manifest.json", b"{}")
    monkeypatch.setenv("STORAGE_BACKEND", "local")
    monkeypatch.setenv("STORAGE_DIR", str(root))

    store = open_store()

    assert not leftover.exists() and temp_files(root) == []
    assert store.get_bytes("datasets/ds/manifest.json") == b"{}"


@pytest.fixture
def s3_store(moto_endpoint):
    return make_s3_store(moto_endpoint)


def unfinished_uploads(store) -> list:
    return store.client._list_multipart_uploads(bucket_name=store.bucket).uploads


def test_an_unfinished_s3_multipart_upload_is_aborted_and_objects_are_kept(s3_store):
    # What a writer killed between its parts leaves: an upload begun, one part sent,
    # never completed (S3 keeps such parts until the upload is aborted).
    s3_store.put_bytes("models/m/model.json", b"{}")
    client = s3_store.client
    upload_id = client._create_multipart_upload(bucket_name=s3_store.bucket,
                                                object_name=KEY, headers={})
    client._upload_part(bucket_name=s3_store.bucket, object_name=KEY,
                        data=b"\0" * (5 << 20), headers=None, upload_id=upload_id,
                        part_number=1)
    [upload] = unfinished_uploads(s3_store)

    # moto reports a fixed start time for every upload, so "younger than the grace" is
    # set relative to the start time it reports.
    age = (datetime.now(timezone.utc) - upload.initiated_time).total_seconds()
    assert s3_store.sweep_leftovers(older_than_s=age + 3600) == 0
    assert len(unfinished_uploads(s3_store)) == 1

    assert s3_store.sweep_leftovers(older_than_s=0) == 1
    assert unfinished_uploads(s3_store) == []
    assert s3_store.get_bytes("models/m/model.json") == b"{}" and not s3_store.exists(KEY)

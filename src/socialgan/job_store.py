"""Job records in object storage, so that jobs outlive the process that started them.

Every job a service runs (scrape, filter, training) is written to jobs/<kind>/<job_id>.json
when it starts, when its state changes and on a heartbeat while it runs. A restarted
service reads them back: Get/Watch/Cancel answer for jobs an earlier process ran, List RPCs
page through them, and interrupted jobs are resumed from the request the record keeps.

A record names its owner (host, pid and a random tag) and the time of its last heartbeat.
A job recorded as queued or running whose owner is gone - a kill -9, an OOM kill, a lost
node - reads as INTERRUPTED: nobody runs it any more, and it can be resumed. Jobs that
run or wait to be resumed also have a marker under jobs/<kind>/active/, so that the
periodic look for them lists a handful of keys, not every job ever run.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from socialgan.errors import InvalidArgument, NotFound
from socialgan.jobs import INTERRUPTED, QUEUED, RUNNING, TERMINAL, JobSnapshot
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

HEARTBEAT_S = 5.0  # a running job's record is rewritten this often
STALE_AFTER_BEATS = 3  # missed heartbeats after which an owner on another host counts as gone
RESCAN_BEATS = 6  # a service looks for jobs to resume this many heartbeats apart
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500  # a larger page_size is served as this many (AIP-158)
RECORD_FORMAT = 1


def instance_id() -> str:
    """<host>:<pid>:<tag>: the tag tells a restarted process from its predecessor, which a
    container restart gives the same host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class JobStore:
    """Reads and writes job records on an ObjectStore; one per process and service."""

    def __init__(self, store: ObjectStore, heartbeat_s: float = HEARTBEAT_S):
        self.store = store
        self.heartbeat_s = heartbeat_s
        # A rolling update stops the old process after the new one started: the new one
        # looks again every rescan_s for what the old one left interrupted.
        self.rescan_s = RESCAN_BEATS * heartbeat_s
        self.owner = instance_id()
        self._marked: set[tuple[str, str]] = set()  # active markers this process wrote

    # -- records -------------------------------------------------------------------------

    def save(self, snap: JobSnapshot, **extra: Any) -> None:
        """Write snap as the job's record, owned by this process, with a fresh heartbeat."""
        record = {**asdict(snap), **extra, "format": RECORD_FORMAT, "owner": self.owner,
                  "heartbeat_unix": time.time(), "heartbeat_every_s": self.heartbeat_s}
        self.store.put_json(keys.job_record_key(snap.kind, snap.job_id), record)
        self._mark(snap.kind, snap.job_id, wants_attention(record))

    def _mark(self, kind: str, job_id: str, active: bool) -> None:
        # Written once per job and process, deleted on every final save (a delete of a
        # missing key is no error): a heartbeat costs one write, not three.
        if active and (kind, job_id) not in self._marked:
            self.store.put_bytes(keys.job_active_key(kind, job_id), b"")
            self._marked.add((kind, job_id))
        elif not active:
            self.store.delete(keys.job_active_key(kind, job_id))
            self._marked.discard((kind, job_id))

    def load(self, kind: str, job_id: str) -> dict[str, Any] | None:
        try:
            return self.store.get_json(keys.job_record_key(kind, job_id))
        except NotFound:
            return None

    def job_ids(self, kind: str) -> Iterator[str]:
        """Ids of every recorded job of kind, sorted."""
        prefix = keys.job_prefix(kind)
        for key in self.store.list(prefix):
            name = key[len(prefix):]
            if name.endswith(".json") and "/" not in name:
                yield name[: -len(".json")]

    def active_records(self, kind: str) -> Iterator[dict[str, Any]]:
        """Records of the jobs of kind marked running or due to resume; markers whose job
        has ended since (a process stopped between the two writes) are removed."""
        prefix = keys.job_active_prefix(kind)
        for key in self.store.list(prefix):
            job_id = key[len(prefix):]
            record = self.load(kind, job_id)
            if record is None or not wants_attention(record):
                self.store.delete(key)
            else:
                yield record

    # -- who runs it -----------------------------------------------------------------------

    def owner_gone(self, record: dict[str, Any]) -> bool:
        """True when the process that wrote record is certainly or very likely dead."""
        owner = str(record.get("owner", ""))
        if owner == self.owner:
            return False
        host, _, rest = owner.partition(":")
        pid_text, _, _tag = rest.partition(":")
        if host == socket.gethostname() and pid_text.isdigit():
            pid = int(pid_text)
            # Our own pid under another tag is our predecessor (a restarted container).
            if pid == os.getpid() or not _process_alive(pid):
                return True
        every = float(record.get("heartbeat_every_s") or HEARTBEAT_S)
        silent_for = time.time() - float(record.get("heartbeat_unix") or 0)
        return silent_for > STALE_AFTER_BEATS * every + 1

    def is_orphan(self, record: dict[str, Any]) -> bool:
        """Recorded as queued or running, but nobody runs it any more."""
        return record["state"] in (QUEUED, RUNNING) and self.owner_gone(record)

    def snapshot(self, record: dict[str, Any]) -> JobSnapshot:
        """The record as a snapshot; an orphan reads as INTERRUPTED."""
        state, message = record["state"], record.get("message", "")
        if self.is_orphan(record):
            state = INTERRUPTED
            message = (f"its process stopped (last seen {time.ctime(record['heartbeat_unix'])}"
                       f"); start it again to resume. Last: {message}")
        return JobSnapshot(
            job_id=record["job_id"], kind=record["kind"], state=state, message=message,
            created=record["created"], updated=record["updated"],
            fraction_done=record.get("fraction_done", 0.0),
            progress=record.get("progress", {}), version=record.get("version", 0),
            request=record.get("request", {}))

    # -- cancelling a job another process runs ----------------------------------------------

    def request_cancel(self, kind: str, job_id: str) -> None:
        self.store.put_bytes(keys.job_cancel_key(kind, job_id), b"cancel")

    def cancel_requested(self, kind: str, job_id: str) -> bool:
        return self.store.exists(keys.job_cancel_key(kind, job_id))

    def clear_cancel(self, kind: str, job_id: str) -> None:
        self.store.delete(keys.job_cancel_key(kind, job_id))


def wants_attention(record: dict[str, Any]) -> bool:
    """Running, queued, or interrupted and due to be resumed when a service starts."""
    return record["state"] not in TERMINAL or (
        record["state"] == INTERRUPTED and bool(record.get("resume_on_start")))


def check_page_request(page_size: int, page_token: str) -> tuple[int, str]:
    """(page size to serve, id to start after) of a List request."""
    if page_size < 0:
        raise InvalidArgument("page_size", f"cannot be negative, got {page_size}")
    if page_token:
        check_identifier(page_token, "page_token")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE), page_token


def page_of(ids: Iterable[str], page_size: int, page_token: str,
            newest_first: bool = False) -> tuple[list[str], str]:
    """One page of sorted ids after page_token, and the token of the next page ('' at the
    end). The token is the last id served: pages stay stable while jobs are added.
    newest_first: in descending order (for ids that sort by their start time)."""
    size, after = check_page_request(page_size, page_token)
    page: list[str] = []
    for job_id in sorted(set(ids), reverse=newest_first):
        if after and (job_id >= after if newest_first else job_id <= after):
            continue
        if len(page) == size:
            return page, page[-1]
        page.append(job_id)
    return page, ""

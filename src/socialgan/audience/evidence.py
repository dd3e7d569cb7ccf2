"""A choice's evidence, stored as runs/choices/<choice_id>.json, and how voters are named in it.

With AUDIENCE_VOTER_PRIVACY=hashed (the default) a voter is 'h:' and 16 hex digits of
sha256(salt, platform, account id): the same account gets the same name in every choice
(repeat voters stay visible) while the file holds no handle, no account id and no reply
text. The salt is AUDIENCE_HASH_SALT, else a random one made once and stored under
audience/voter_salt.json. Account ids are public, so whoever can read both the salt and a
choice can test which account a hash is: set AUDIENCE_HASH_SALT from a Secret to keep the
salt out of the bucket. With 'handles' a voter is 'platform:handle'.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from socialgan import settings
from socialgan.errors import NotFound
from socialgan.storage import ObjectStore, keys

PRIVACY_MODES = ("hashed", "handles")


def voter_privacy() -> str:
    mode = (settings.get("AUDIENCE_VOTER_PRIVACY") or "").strip().lower()
    if mode not in PRIVACY_MODES:
        raise settings.ConfigError(
            f"AUDIENCE_VOTER_PRIVACY={mode[:40]!r}: use {' or '.join(PRIVACY_MODES)}")
    return mode


def voter_salt(store: ObjectStore) -> str:
    """AUDIENCE_HASH_SALT, else the store's own salt (made on first use)."""
    configured = settings.get("AUDIENCE_HASH_SALT") or ""
    if configured:
        return configured
    try:
        return store.get_json(keys.VOTER_SALT_KEY)["salt"]
    except NotFound:
        pass
    store.put_json(keys.VOTER_SALT_KEY, {"salt": secrets.token_hex(32)})
    # Read back: should two choosers race, both use the salt that stayed.
    return store.get_json(keys.VOTER_SALT_KEY)["salt"]


class VoterNamer:
    """Names voters for the evidence file as the privacy setting says."""

    def __init__(self, store: ObjectStore, privacy: str | None = None):
        self.privacy = privacy or voter_privacy()
        self._salt = voter_salt(store) if self.privacy == "hashed" else ""

    def __call__(self, platform: str, author_id: str, author_handle: str) -> str:
        if self.privacy == "handles":
            return f"{platform}:{author_handle or author_id}"
        digest = hashlib.sha256(
            "\x00".join((self._salt, platform, author_id)).encode("utf-8", "surrogatepass"))
        return "h:" + digest.hexdigest()[:16]


def write_evidence(store: ObjectStore, record: dict[str, Any]) -> str:
    """Store the record under its choice_id; returns the key."""
    key = keys.choice_record_key(record["choice_id"])
    store.put_json(key, record)
    return key


def read_evidence(store: ObjectStore, choice_id: str) -> dict[str, Any]:
    try:
        return store.get_json(keys.choice_record_key(choice_id))
    except NotFound:
        raise NotFound(f"choice_id: no choice {choice_id!r}") from None


def new_choice_id() -> str:
    """'choice-<yyyymmdd-hhmmss-uuuuuu>-<4hex>': down to the microsecond, so the ids of
    choices made in one second still sort in the order they were made."""
    stamp = time.time_ns() // 1000
    seconds, micros = divmod(stamp, 1_000_000)
    return keys.check_identifier(
        f"choice-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(seconds))}-{micros:06d}-"
        f"{secrets.token_hex(2)}", "choice_id")


def choice_ids(store: ObjectStore) -> list[str]:
    """Every recorded choice, oldest first (the ids sort by the time they were made)."""
    return sorted(k[len(keys.CHOICES_PREFIX):-len(".json")]
                  for k in store.list(keys.CHOICES_PREFIX)
                  if k.endswith(".json") and "/" not in k[len(keys.CHOICES_PREFIX):])


def recent_choices(store: ObjectStore, n: int, *, with_winner: bool = True
                   ) -> list[dict[str, Any]]:
    """The newest n recorded choices (only those that chose a tag, by default), newest first."""
    found: list[dict[str, Any]] = []
    for choice_id in reversed(choice_ids(store)):
        if len(found) >= n:
            break
        try:
            record = read_evidence(store, choice_id)
        except (NotFound, ValueError):  # deleted meanwhile, or not ours: skip it
            continue
        if record.get("winner") or not with_winner:
            found.append(record)
    return found


def recent_winners(store: ObjectStore, n: int) -> list[str]:
    return [r["winner"] for r in recent_choices(store, n)] if n > 0 else []

"""The keys TorchServe's inference and management APIs demand, read from its key file.

TorchServe 0.12 makes its own keys at every start (they cannot be supplied) and writes
them, owner-only, to key_file.json in its working directory:

    {"management": {"key": ..., "expiration time": ...},
     "inference": {"key": ..., "expiration time": ...}, "API": {"key": ...}}

Callers send `authorization: Bearer <key>`: the inference key on the inference API, the
management key on the management API. Keys are secrets: never logged, never in a message.
Import-light (no grpc, no storage): the health check uses it too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from socialgan import settings
from socialgan.serving.torchserve_config import KEY_FILE_NAME


@dataclass(frozen=True)
class TorchServeKeys:
    inference: str
    management: str

    def __repr__(self) -> str:  # never print a key by accident
        return "TorchServeKeys(inference=***, management=***)"

    @staticmethod
    def metadata(key: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key}"),)


def default_key_file() -> Path:
    """TORCHSERVE_KEY_FILE, else key_file.json in TORCHSERVE_WORK_DIR (where TorchServe
    writes it)."""
    configured = settings.get("TORCHSERVE_KEY_FILE")
    if configured:
        return Path(configured)
    return Path(settings.require("TORCHSERVE_WORK_DIR")) / KEY_FILE_NAME


def read_keys(path: str | Path) -> TorchServeKeys | None:
    """The keys in TorchServe's key file; None while the file is missing or half written."""
    try:
        data = json.loads(Path(path).read_text())
        return TorchServeKeys(inference=str(data["inference"]["key"]),
                              management=str(data["management"]["key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def publish_key_file(source: Path, target: Path) -> None:
    """Copy TorchServe's key file to where the generator reads it (a volume the two
    containers share), owner-only, replacing the old one in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Build a TorchServe model archive (.mar) for an exported model.

The .mar holds models/<model_id>/generator.pt (a plain state_dict), its model.json card
and handler.py. Its file name carries a digest of the card (which records the weights'
sha256), so two runs, or two exports under one id, never collide in the shared model
store, and an unchanged model is never packed twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from socialgan.models.export import read_card
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

# Names inside the archive (handler.py reads them from its model_dir).
CARD_FILE = "model.json"
WEIGHTS_FILE = "generator.pt"
HANDLER_FILE = Path(__file__).with_name("handler.py")


@dataclass(frozen=True)
class ModelArchive:
    path: Path
    model_name: str  # the name TorchServe serves it under: the model id
    version: str  # the card's model_version

    @property
    def url(self) -> str:
        """What RegisterModel takes: a file name inside TorchServe's model store."""
        return self.path.name


def archive_name(card: dict) -> str:
    digest = hashlib.sha256(json.dumps(card, sort_keys=True).encode()).hexdigest()[:16]
    return f"{card['model_id']}-{digest}.mar"


def build_mar(store: ObjectStore, model_id: str, model_store: str | Path) -> ModelArchive:
    """The .mar for model_id in model_store, built from storage unless it is already there.

    Written under a temporary name and renamed, so TorchServe (or a concurrent builder)
    never sees half an archive."""
    check_identifier(model_id, "model_id")
    card = read_card(store, model_id)
    model_store = Path(model_store)
    model_store.mkdir(parents=True, exist_ok=True)
    target = model_store / archive_name(card)
    archive = ModelArchive(target, model_id, str(card["model_version"]))
    if target.exists():
        return archive
    with tempfile.TemporaryDirectory(prefix=".build-", dir=model_store) as tmp:
        work = Path(tmp)
        weights = work / WEIGHTS_FILE
        store.get_file(keys.model_weights_key(model_id), weights)
        card_path = work / CARD_FILE
        card_path.write_text(json.dumps(card, indent=2, sort_keys=True))
        (work / "out").mkdir()
        (work / "tmp").mkdir()
        # The archiver stages files in $TMPDIR/<model_name> and deletes whatever is there
        # first: with the shared temp dir, two builds of one model (or anything else at
        # /tmp/<model_id>) would clobber each other. It runs with a private TMPDIR instead.
        command = [sys.executable, "-m", "model_archiver.model_packaging",
                   "--model-name", model_id, "--version", archive.version,
                   "--handler", str(HANDLER_FILE), "--serialized-file", str(weights),
                   "--extra-files", str(card_path), "--export-path", str(work / "out")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TMPDIR": str(work / "tmp")})
        if done.returncode != 0:
            raise RuntimeError(f"torch-model-archiver failed for {model_id} "
                               f"({done.returncode}): {done.stderr.strip()[-2000:]}")
        os.replace(work / "out" / f"{model_id}.mar", target)
    return archive

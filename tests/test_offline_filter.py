"""Offline means offline: the filter, with every stage that runs a model (onnxruntime's text
detector and photo CNN, nudenet's detector, OpenCV's face cascade), writes nothing under
the user's home and leaves onnxruntime's telemetry off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.deploy_support import REPO

# Runs in a fresh interpreter, so onnxruntime is imported for the first time by the filter.
FILTER_EVERY_MODEL = r"""
import hashlib, io, json, pathlib, sys
import numpy as np
from PIL import Image
from socialgan.filtering import build_dataset
from socialgan.storage import LocalObjectStore, keys

store = LocalObjectStore(pathlib.Path(sys.argv[1]))
pictures = [p.read_bytes() for p in sorted(pathlib.Path(sys.argv[2]).glob("*.png"))[:10]]
for seed in range(6):
    buf = io.BytesIO()
    noise = np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "PNG")
    pictures.append(buf.getvalue())
for data in pictures:
    store.put_bytes(keys.raw_image_key("offline", hashlib.sha256(data).hexdigest(), ".png"), data)
summary = build_dataset(store, "offline", resolution=32, dataset_id="offline",
                        extra_stages=("faces", "nsfw"))
print(json.dumps({"stages": summary["stages"],
                  "embedding": store.get_json(summary["report_key"])["embedding"]}))
"""


def test_the_filter_writes_nothing_under_home(tmp_path):
    pytest.importorskip("nudenet")
    pytest.importorskip("onnx")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "ORT_")) and k not in ("HOME", "PYTHONSTARTUP")}
    env.update(HOME=str(home), FILTER_EMBEDDING="photo-cnn", PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        [sys.executable, "-c", FILTER_EVERY_MODEL, str(tmp_path / "store"),
         str(REPO / "tests" / "data" / "twemoji")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    ran = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"text", "faces", "nsfw", "outliers"} <= set(ran["stages"])
    assert ran["embedding"] == "handcrafted+photo-cnn"
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert left == [], f"the filter wrote under HOME: {left}"

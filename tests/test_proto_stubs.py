"""The committed gRPC stubs are exactly what scripts/gen_protos.py generates now."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_a_fresh_generation(tmp_path):
    gen = _load_generator()
    fresh = gen.generate(tmp_path)
    assert fresh, "protoc produced nothing"
    for path in fresh:
        rel = path.relative_to(tmp_path)
        committed = ROOT / "src" / rel
        assert committed.exists(), f"{rel} is not committed: run `make protos`"
        assert committed.read_bytes() == path.read_bytes(), f"{rel} is stale: run `make protos`"
    committed_files = {
        p.relative_to(ROOT / "src")
        for package in gen.STUB_PACKAGES
        for p in (ROOT / "src" / package).iterdir()
        if p.is_file()
    }
    assert committed_files == {p.relative_to(tmp_path) for p in fresh}, "stray stub files"

"""Fixtures shared by the tests: real storage backends, real gRPC servers, real images."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from socialgan.rpc.client import free_port
from socialgan.storage import LocalObjectStore

TEST_TOKEN = "test-token-not-a-secret"
TWEMOJI_DIR = Path(__file__).parent / "data" / "twemoji"


@pytest.fixture(autouse=True)
def _api_token(monkeypatch):
    monkeypatch.setenv("SOCIALGAN_API_TOKEN", TEST_TOKEN)


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3-protocol server (moto in server mode) on loopback for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


def make_s3_store(endpoint: str):
    from socialgan.storage.s3 import S3ObjectStore

    return S3ObjectStore(endpoint=endpoint, access_key="test", secret_key="test",
                         bucket=f"t-{uuid.uuid4().hex[:12]}", secure=False)


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    """Each backend in turn: the same contract must hold for both."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "store")
    return make_s3_store(request.getfixturevalue("moto_endpoint"))


@pytest.fixture
def store(tmp_path):
    """The embedded default backend, for tests about something other than storage."""
    return LocalObjectStore(tmp_path / "store")


@pytest.fixture(scope="session")
def twemoji_paths() -> list[Path]:
    """48 real 64x64 Twemoji PNGs (CC-BY 4.0) committed under tests/data/twemoji."""
    paths = sorted(TWEMOJI_DIR.glob("*.png"))
    assert len(paths) >= 40, "tests/data/twemoji is missing"
    return paths

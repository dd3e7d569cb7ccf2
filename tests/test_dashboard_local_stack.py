"""LocalStack(dashboard_port=...) runs the dashboard as one more child: it answers on its
address with the stack's token, lists the stack's models, and stops with the stack."""

from __future__ import annotations

import shutil
import socket

import httpx
import pytest

from socialgan.storage import LocalObjectStore
from socialgan.supervisor import LocalStack
from tests.dashboard_stack import csrf_of
from tests.test_generate_grid import export_tiny

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("java") is None,
                                 reason="TorchServe needs Java 17 (the set-up installs it)")]


def test_the_local_stack_runs_the_dashboard_when_asked(tmp_path):
    storage = tmp_path / "storage"
    export_tiny(LocalObjectStore(storage), "tiny-dash")
    with LocalStack(workdir=tmp_path / "w", storage_dir=storage, dashboard_port=0) as endpoints:
        url = endpoints.dashboard
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/api/models").status_code == 401
            token = csrf_of(http.get("/login").text)
            assert http.post("/login", data={"password": endpoints.token,
                                             "csrf_token": token}).status_code == 303
            models = http.get("/api/models").json()["models"]
            assert [m["model_id"] for m in models] == ["tiny-dash"]
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:  # stopped with the stack: its port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


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



def test_a_local_run_prints_the_dashboard_and_keeps_it_up_with_the_run_on_it(tmp_path):
    """What `make demo` does (`socialgan demo` runs the dashboard by default): the run on the
    local stack prints the dashboard's address and its run page; with --keep-up the stack
    stays until SIGINT, and the run page shows the run."""
    import re
    import signal
    import subprocess
    import sys
    import threading

    from tests.conftest import TWEMOJI_DIR

    pictures = tmp_path / "pictures"
    shutil.copytree(TWEMOJI_DIR, pictures)
    run = subprocess.Popen(
        [sys.executable, "-m", "socialgan.cli", "run", "--hashtag", "keepup", "--source",
         f"folder:{pictures}", "--steps", "3", "--option", "ngf=4", "--option", "ndf=4",
         "--option", "batch_size=8", "--workdir", str(tmp_path / "w"), "--dashboard-port", "0",
         "--keep-up", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(run.stderr), daemon=True)
    reader.start()
    try:
        page = ""
        for line in run.stdout:  # the results, then the run page once the run is done
            if line.startswith("run page: "):
                page = line.split(": ", 1)[1].strip()
                break
        assert page, "".join(said)[-3000:]
        token = next(re.search(r"SOCIALGAN_API_TOKEN=(\S+);", s).group(1) for s in said
                     if s.startswith("dashboard: "))
        base, path = page.split("/runs/", 1)
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as http:
            csrf = csrf_of(http.get("/login").text)
            assert http.post("/login", data={"password": token, "csrf_token": csrf}) \
                .status_code == 303
            shown = http.get(f"/runs/{path}")
            assert shown.status_code == 200 and path in shown.text and "#keepup" in shown.text
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 0, "".join(said)[-3000:]

"""`python -m services.dashboard.server` as a real process: configured by the environment
only, serving on its PORT, logging JSON without secrets, keeping sessions across a
restart when DASHBOARD_SECRET_KEY is set, and stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from socialgan.rpc.client import free_port
from socialgan.storage import LocalObjectStore
from tests.conftest import TEST_TOKEN
from tests.dashboard_stack import PASSWORD, csrf_of, grpc_services

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "a-fixed-session-key-for-this-test-only"


def start_dashboard(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "services.dashboard.server"], cwd=ROOT,
                                env=env, stdout=sink, stderr=subprocess.STDOUT)


def wait_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the dashboard exited {process.returncode}:\n"
                                 f"{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the dashboard did not answer in {timeout:.0f}s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> bool:
    """SIGTERM; True when the process ended by itself in time (uvicorn shuts down and then
    re-raises the signal, so the status is 0 or -SIGTERM)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20) in (0, -signal.SIGTERM)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


@pytest.fixture
def environment(tmp_path):
    store = LocalObjectStore(tmp_path / "store")
    with grpc_services(store) as addresses:
        port = free_port()
        env = {**os.environ, "SOCIALGAN_API_TOKEN": TEST_TOKEN, "PORT": str(port),
               "LISTEN_HOST": "127.0.0.1", "STORAGE_BACKEND": "local",
               "STORAGE_DIR": str(tmp_path / "store"), "DASHBOARD_PASSWORD": PASSWORD,
               "DASHBOARD_SECRET_KEY": SECRET_KEY,
               "SCRAPER_SERVICE_ADDR": addresses.scraper,
               "TRAINER_SERVICE_ADDR": addresses.trainer,
               "GENERATOR_SERVICE_ADDR": addresses.generator}
        yield env, f"http://127.0.0.1:{port}"


def test_the_server_serves_signs_in_keeps_sessions_across_a_restart_and_stops(environment,
                                                                            tmp_path):
    env, url = environment
    log = tmp_path / "dashboard.log"
    first = start_dashboard(env, log)
    second = None
    try:
        wait_up(url, first, log)
        with httpx.Client(base_url=url, follow_redirects=False, timeout=20) as http:
            token = csrf_of(http.get("/login").text)
            reply = http.post("/login", data={"password": PASSWORD, "csrf_token": token})
            assert reply.status_code == 303
            listed = http.get("/api/runs").json()
            assert listed["trainings"] == [] and listed["scrapes"] == []
            cookie = http.cookies.get("socialgan_session")
        assert stop(first)
        second = start_dashboard(env, log)
        wait_up(url, second, log)
        # The same DASHBOARD_SECRET_KEY: the session signed by the first process holds.
        with httpx.Client(base_url=url, cookies={"socialgan_session": cookie},
                          timeout=20) as http:
            assert http.get("/api/runs").status_code == 200
        assert stop(second)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert TEST_TOKEN not in text and PASSWORD not in text and SECRET_KEY not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    messages = [r.get("message", "") for r in records]
    assert any("dashboard on http://127.0.0.1:" in m for m in messages)
    assert sum("Finished server process" in m for m in messages) == 2  # shut down cleanly


def test_a_short_api_token_stops_the_server_with_a_clear_error(environment, tmp_path):
    env, _ = environment
    log = tmp_path / "dashboard.log"
    process = start_dashboard({**env, "SOCIALGAN_API_TOKEN": "short"}, log)
    assert process.wait(timeout=60) == 2
    assert "SOCIALGAN_API_TOKEN must be at least" in log.read_text()

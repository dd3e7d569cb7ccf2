"""`socialgan up` as a real subprocess: it honours STORAGE_DIR, an exported
SOCIALGAN_API_TOKEN and its port options, and SIGTERM to it stops everything it started
(TorchServe's JVM and workers included) and frees every port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest

from socialgan.rpc.client import free_port, open_channel
from socialgan.storage import LocalObjectStore
from socialgan.supervisor import SERVICES
from socialgan.v1 import generator_pb2, generator_pb2_grpc
from tests.test_generate_grid import export_tiny

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="TorchServe needs Java 17 (the set-up installs it)")

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "exported-token-for-up"


def _wait_for_line(path: Path, prefix: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith(prefix):
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    raise AssertionError(f"no {prefix!r} from socialgan up; its output:\n{path.read_text()}")


def _listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for process in processes:
        try:
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    ports.add(conn.laddr.port)
        except psutil.Error:
            pass
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_up_honours_storage_token_and_ports_and_sigterm_leaves_nothing_behind(tmp_path):
    storage = tmp_path / "my-storage"
    export_tiny(LocalObjectStore(storage), "tiny-up")
    ports = {name: free_port() for name in SERVICES}
    env = {**os.environ, "STORAGE_DIR": str(storage), "SOCIALGAN_API_TOKEN": TOKEN}
    out = tmp_path / "up.out"
    command = [sys.executable, "-m", "socialgan.cli", "up", "--workdir", str(tmp_path / "w")]
    for name, port in ports.items():
        command += [f"--{name}-port", str(port)]
    with open(out, "wb") as sink:
        up = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        line = _wait_for_line(out, "PUBLISHER_SERVICE_ADDR=", up, timeout=240)
        assert line == f"PUBLISHER_SERVICE_ADDR=127.0.0.1:{ports['publisher']}"
        text = out.read_text()
        assert f"GENERATOR_SERVICE_ADDR=127.0.0.1:{ports['generator']}" in text
        assert TOKEN not in text  # an exported token is never echoed

        with open_channel(f"127.0.0.1:{ports['generator']}", TOKEN) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            listed = stub.ListModels(generator_pb2.ListModelsRequest(), timeout=60)
            assert [m.model_id for m in listed.models] == ["tiny-up"]  # from STORAGE_DIR
            # A grid starts a TorchServe worker: one more process SIGTERM must reach.
            grid = stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny-up"),
                                     timeout=120)
            assert len(grid.images) == 9
        with open_channel(f"127.0.0.1:{ports['generator']}", "another-token") as channel:
            with pytest.raises(grpc.RpcError) as raised:
                generator_pb2_grpc.GeneratorServiceStub(channel).ListModels(
                    generator_pb2.ListModelsRequest(), timeout=30)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED

        descendants = psutil.Process(up.pid).children(recursive=True)
        held = _listening_ports(descendants)
        assert set(ports.values()) <= held
        assert len(held) >= len(ports) + 4  # and TorchServe's four (metrics is off)

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0
        psutil.wait_procs(descendants, timeout=10)
        assert [p.pid for p in descendants if not _gone(p)] == []
        assert [port for port in sorted(held) if not _port_free(port)] == []
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()

"""The container health probe (python -m socialgan.rpc.healthcheck) against real servers."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent import futures

import grpc
import pytest

from socialgan.rpc import healthcheck
from socialgan.rpc.server import start_server
from socialgan.torchserve import inference_pb2, inference_pb2_grpc
from tests.conftest import free_port


@pytest.fixture
def serving():
    running = start_server("scraper", lambda server: [], port=0, host="127.0.0.1")
    yield running
    running.stop(grace=0)


class FakeTorchServe(inference_pb2_grpc.InferenceAPIsServiceServicer):
    """Answers Ping only with TorchServe's inference key, as TorchServe does."""

    status = "Healthy"
    key = "fake-inference-key"

    def Ping(self, request, context):
        if ("authorization", f"Bearer {self.key}") not in context.invocation_metadata():
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Token Authorization failed")
        return inference_pb2.TorchServeHealthResponse(health=json.dumps({"status": self.status}))


@pytest.fixture
def torchserve(tmp_path, monkeypatch):
    fake = FakeTorchServe()
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"inference": {"key": fake.key},
                                    "management": {"key": "fake-management-key"}}))
    monkeypatch.setenv("TORCHSERVE_KEY_FILE", str(key_file))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    server.stop(0)


def test_the_compose_healthcheck_command_exits_0_for_a_serving_server(serving):
    run = subprocess.run([sys.executable, "-m", "socialgan.rpc.healthcheck",
                          f"127.0.0.1:{serving.port}"], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr


def test_a_server_that_is_shutting_down_is_unhealthy(serving, capsys):
    serving.health.enter_graceful_shutdown()
    assert healthcheck.main(["--timeout", "1", f"127.0.0.1:{serving.port}"]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_nothing_listening_is_unhealthy_with_a_reason(capsys):
    assert healthcheck.main(["--timeout", "0.5", f"127.0.0.1:{free_port()}"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_a_service_name_means_its_port_on_loopback(serving, monkeypatch):
    monkeypatch.setenv("PORT", str(serving.port))
    assert healthcheck.resolve("scraper") == (f"127.0.0.1:{serving.port}", False)
    assert healthcheck.main(["scraper"]) == 0
    monkeypatch.delenv("PORT")
    assert healthcheck.resolve("publisher") == ("127.0.0.1:50054", False)


def test_torchserve_is_asked_with_its_own_ping(torchserve, monkeypatch, capsys):
    fake, address = torchserve
    assert healthcheck.main(["--torchserve", address]) == 0
    monkeypatch.setenv("TORCHSERVE_INFERENCE_ADDR", address)
    assert healthcheck.main(["torchserve"]) == 0
    fake.status = "Partial Healthy"
    assert healthcheck.main(["--torchserve", address]) == 1
    assert "Partial Healthy" in capsys.readouterr().err
    fake.status, fake.key = "Healthy", "a-new-start-made-new-keys"
    assert healthcheck.main(["--torchserve", address]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err


def test_an_unknown_target_is_a_usage_error(capsys):
    assert healthcheck.main(["scrapper"]) == 1
    assert "neither host:port nor one of" in capsys.readouterr().err

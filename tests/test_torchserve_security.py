"""TorchServe locked down, against one real TorchServe on free loopback ports:
every API wants its key, archives load from the model store only, a model without
workers is never INTERNAL, loaded models are bounded, and nothing lands in $HOME.

One TorchServe for the whole module (started with HOME pointing at an empty folder);
tests that need a bounded or idle residency make their own backend on it.
"""

from __future__ import annotations

import shutil
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import quote

import grpc
import pytest
from google.protobuf import empty_pb2

from services.generator.server import register
from socialgan.errors import InvalidArgument
from socialgan.models.export import read_card
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving import wire
from socialgan.serving.archive import ModelArchive, build_mar
from socialgan.serving.backends import TorchServeBackend
from socialgan.serving.residency import ModelResidency
from socialgan.serving.torchserve import TorchServeConfig, TorchServeProcess
from socialgan.serving.torchserve_keys import TorchServeKeys, read_keys
from socialgan.storage import LocalObjectStore
from socialgan.torchserve import (
    inference_pb2,
    inference_pb2_grpc,
    management_pb2,
    management_pb2_grpc,
)
from socialgan.v1 import generator_pb2, generator_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.http_support import QuietHandler
from tests.test_generate_grid import export_tiny

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="TorchServe needs Java 17 (the set-up installs it)")


class RecordingServer:
    """An HTTP server on 127.0.0.1 that serves `body` at every path and records each
    request: what a TorchServe told to fetch a remote .mar would reach."""

    def __init__(self, body: bytes):
        self.requests: list[str] = []
        server = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802 (the name http.server calls)
                server.requests.append(self.path)
                self.send(200, body)

            do_HEAD = do_GET  # noqa: N815

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def ts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ts-security")
    home = root / "home"
    home.mkdir()
    store = LocalObjectStore(root / "store")
    for model_id, seed in (("tiny-a", 0), ("tiny-b", 1), ("tiny-c", 2)):
        export_tiny(store, model_id, seed=seed)
    config = TorchServeConfig.on_free_ports(root / "model-store")
    with pytest.MonkeyPatch.context() as env:
        # What the user's home would receive from anything TorchServe runs.
        for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TORCH_HOME"):
            env.delenv(name, raising=False)
        env.setenv("HOME", str(home))
        with TorchServeProcess(config, root / "ts") as torchserve:
            client = torchserve.client(store, timeout=30)
            backend = TorchServeBackend(client, ModelResidency(max_loaded=3, idle_seconds=0))
            running = start_server("generator", lambda s: register(s, store, backend),
                                   port=0, token=TEST_TOKEN)
            channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
            try:
                yield SimpleNamespace(
                    root=root, home=home, store=store, config=config, torchserve=torchserve,
                    client=client, backend=backend,
                    keys=read_keys(torchserve.key_file),
                    stub=generator_pb2_grpc.GeneratorServiceStub(channel))
            finally:
                channel.close()
                running.stop(0)
                backend.close()


def _inference(ts):
    return inference_pb2_grpc.InferenceAPIsServiceStub(
        grpc.insecure_channel(ts.config.grpc_inference))


def _management(ts):
    return management_pb2_grpc.ManagementAPIsServiceStub(
        grpc.insecure_channel(ts.config.grpc_management))


def _loaded(ts) -> set[str]:
    """The test's models TorchServe itself lists as registered."""
    return set(ts.client.list_registered()) & {"tiny-a", "tiny-b", "tiny-c"}


def _http_status(url: str, method: str = "GET", key: str | None = None) -> int:
    request = urllib.request.Request(url, method=method)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _refused(call, request, metadata=None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30, metadata=metadata)
    return raised.value.code()


def test_grpc_inference_and_management_refuse_calls_without_the_right_key(ts):
    ts.client.ensure_registered("tiny-a")
    inference, management = _inference(ts), _management(ts)
    predict = inference_pb2.PredictionsRequest(model_name="tiny-a",
                                               input=wire.encode_request(1, 1))
    wrong = TorchServeKeys.metadata("not-the-key")
    swapped = TorchServeKeys.metadata(ts.keys.management)  # right key, wrong API
    for metadata in (None, wrong, swapped):
        assert _refused(inference.Ping, empty_pb2.Empty(), metadata) == \
            grpc.StatusCode.PERMISSION_DENIED
        assert _refused(inference.Predictions, predict, metadata) == \
            grpc.StatusCode.PERMISSION_DENIED
    for metadata in (None, wrong, TorchServeKeys.metadata(ts.keys.inference)):
        for call, request in (
                (management.ListModels, management_pb2.ListModelsRequest()),
                (management.DescribeModel, management_pb2.DescribeModelRequest(
                    model_name="tiny-a")),
                (management.ScaleWorker, management_pb2.ScaleWorkerRequest(
                    model_name="tiny-a", min_worker=0, max_worker=0)),
                (management.UnregisterModel, management_pb2.UnregisterModelRequest(
                    model_name="tiny-a"))):
            assert _refused(call, request, metadata) == grpc.StatusCode.PERMISSION_DENIED
    # The keys are in a file only its owner reads, and in no log.
    assert ts.torchserve.key_file.stat().st_mode & 0o077 == 0
    logs = [ts.torchserve.log_path, *(ts.torchserve.workdir / "logs").glob("*")]
    text = "".join(p.read_text(errors="replace") for p in logs if p.is_file())
    assert ts.keys.inference not in text and ts.keys.management not in text
    # The keys themselves open the door (so the refusals above are about the key).
    inference.Predictions(predict, timeout=30,
                          metadata=TorchServeKeys.metadata(ts.keys.inference))
    assert "tiny-a" in ts.client.list_registered()


def test_http_inference_and_management_refuse_calls_without_the_key(ts):
    ts.client.ensure_registered("tiny-a")
    inference = f"http://{ts.config.http_inference}"
    management = f"http://{ts.config.http_management}"
    for key in (None, "not-the-key"):
        assert _http_status(f"{inference}/ping", key=key) in (400, 401, 403)
        assert _http_status(f"{inference}/predictions/tiny-a", "POST", key) in (400, 401, 403)
        assert _http_status(f"{management}/models", key=key) in (400, 401, 403)
        assert _http_status(f"{management}/models/tiny-a?min_worker=0", "PUT", key) in \
            (400, 401, 403)
    assert _http_status(f"{inference}/ping", key=ts.keys.inference) == 200
    assert _http_status(f"{management}/models", key=ts.keys.management) == 200
    assert "tiny-a" in ts.client.list_registered()


def test_the_metrics_api_which_takes_no_key_is_not_served(ts):
    # TorchServe 0.12 has no token for metrics: the only safe metrics API is none.
    with pytest.raises(OSError) as raised:  # refused, not answered
        urllib.request.urlopen(f"http://{ts.config.metrics}/metrics", timeout=10)
    assert not isinstance(raised.value, urllib.error.HTTPError)  # no port, not a 4xx


def test_remote_mar_url_is_refused_and_never_fetched_even_with_the_management_key(ts):
    mar = build_mar(ts.store, "tiny-b", ts.config.model_store)
    remote = RecordingServer(mar.path.read_bytes())
    try:
        key = TorchServeKeys.metadata(ts.keys.management)
        management = _management(ts)
        for url in (f"{remote.url}/evil.mar", f"{remote.url}/x/tiny-b.mar"):
            request = management_pb2.RegisterModelRequest(
                url=url, model_name="evil", initial_workers=1, synchronous=True)
            assert _refused(management.RegisterModel, request, key) != grpc.StatusCode.OK
            status = _http_status(
                f"http://{ts.config.http_management}/models?url={quote(url, safe='')}"
                "&model_name=evil2", "POST", ts.keys.management)
            assert status >= 400
        # A file:// URL outside the model store is refused the same way.
        outside = ts.root / "outside.mar"
        shutil.copy(mar.path, outside)
        request = management_pb2.RegisterModelRequest(url=f"file://{outside}",
                                                      model_name="evil3", synchronous=True)
        assert _refused(management.RegisterModel, request, key) != grpc.StatusCode.OK
        # The generator's own client never sends anything but a model-store file name.
        with pytest.raises(InvalidArgument, match="url"):
            ts.client.register(ModelArchive(outside, "evil4", "1"))
        with pytest.raises(InvalidArgument, match="url"):
            ts.client.register(ModelArchive(ts.root / f"{remote.url}/evil.mar", "evil5", "1"))
        assert remote.requests == []
        assert not {"evil", "evil2", "evil3", "evil4", "evil5"} & \
            set(ts.client.list_registered())
    finally:
        remote.close()


def test_generate_grid_on_a_model_scaled_to_zero_workers_recovers_never_internal(ts):
    ts.client.ensure_registered("tiny-a")
    ts.client.scale("tiny-a", 0)
    reply = ts.stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny-a", seed=3),
                                 timeout=120)
    assert len(reply.images) == 9
    assert len(ts.client.describe("tiny-a")[0]["workers"]) == 1


def test_loading_more_models_than_the_bound_unloads_the_least_recently_used(ts):
    backend = TorchServeBackend(ts.torchserve.client(ts.store, timeout=30),
                                ModelResidency(max_loaded=2, idle_seconds=0))
    try:
        for model_id in ("tiny-a", "tiny-b"):
            ts.client.ensure_registered(model_id)
            backend.prepare(model_id)
        backend.generate("tiny-a", read_card(ts.store, "tiny-a"), 1, 1)  # b is now the LRU
        backend.generate("tiny-c", read_card(ts.store, "tiny-c"), 1, 1)
        assert _loaded(ts) == {"tiny-a", "tiny-c"}
        backend.generate("tiny-b", read_card(ts.store, "tiny-b"), 1, 1)
        assert _loaded(ts) == {"tiny-b", "tiny-c"}
    finally:
        backend.close()
        ts.client.forget("tiny-a")
        ts.client.forget("tiny-b")


def test_a_model_idle_past_the_timeout_is_unloaded(ts):
    backend = TorchServeBackend(ts.torchserve.client(ts.store, timeout=30),
                                ModelResidency(max_loaded=5, idle_seconds=1))
    try:
        backend.generate("tiny-c", read_card(ts.store, "tiny-c"), 1, 1)
        assert "tiny-c" in ts.client.list_registered()
        deadline = time.monotonic() + 20
        while "tiny-c" in ts.client.list_registered() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert "tiny-c" not in ts.client.list_registered()
    finally:
        backend.close()
        ts.client.forget("tiny-c")


def test_serving_a_grid_writes_nothing_under_home(ts):
    reply = ts.stub.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="tiny-b", seed=5),
                                 timeout=120)
    assert len(reply.images) == 9
    assert sorted(p.name for p in ts.home.rglob("*")) == []
    # Its own home (where HOME points for TorchServe) holds no telemetry either.
    assert not list(ts.torchserve.home.rglob("*onnxruntime*"))

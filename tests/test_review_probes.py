"""Defects an outside review of issue 9 found, each pinned by the probe that showed it.
Real storage, real threads, real sockets on 127.0.0.1; no mocks."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import grpc
import pytest
import torch
import yaml

from services.generator.server import register as register_generator
from services.scraper.server import register as register_scraper
from socialgan import settings
from socialgan.job_store import JobStore
from socialgan.jobs import CANCELLED, INTERRUPTED, JobRunner
from socialgan.models import build_generator
from socialgan.models.export import export_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving.backends import InProcessBackend
from socialgan.supervisor import SERVICES, LocalStack
from socialgan.v1 import (
    common_pb2,
    generator_pb2,
    generator_pb2_grpc,
    scraper_pb2,
    scraper_pb2_grpc,
)
from tests.conftest import TEST_TOKEN
from tests.deploy_support import REPO


def _until_cancelled(job) -> str:
    while True:
        job.check_cancelled()
        time.sleep(0.02)


def test_a_cancel_taken_while_a_restart_rebuilds_the_jobs_work_is_never_undone(store):
    # A service stops mid-scrape: the job is recorded to resume at the next start.
    first = JobRunner(store=JobStore(store, heartbeat_s=0.2))
    first.start("scrape", "job-1", _until_cancelled, {"hashtag": "x"})
    time.sleep(0.3)
    first.shutdown()
    assert JobStore(store).load("scrape", "job-1")["state"] == INTERRUPTED

    # The next process rebuilds its work (for a training run: reading the dataset) while
    # a client cancels it; the Cancel answers CANCELLED.
    second = JobRunner(store=JobStore(store, heartbeat_s=0.2))
    rebuilding, rebuilt, ran = threading.Event(), threading.Event(), threading.Event()

    def make_work(request):
        rebuilding.set()
        rebuilt.wait(5)
        return lambda job: ran.set() or "ran"

    recovery = threading.Thread(target=second.recover, args=({"scrape": make_work},))
    recovery.start()
    try:
        assert rebuilding.wait(5)
        assert second.cancel("job-1", "scrape").state == CANCELLED
    finally:
        rebuilt.set()
        recovery.join(10)
    time.sleep(0.3)
    try:
        assert not ran.is_set(), "the cancelled job was resumed and ran"
        assert JobStore(store).load("scrape", "job-1")["state"] == CANCELLED
    finally:
        second.shutdown()


def test_a_cancel_of_a_job_whose_owner_only_looked_gone_stops_it_where_it_runs(store):
    # B takes A for gone: A runs in this process under another tag, which is what a
    # restarted container's predecessor looks like (and what late heartbeats from another
    # host look like). The Cancel answers CANCELLED; A must stop, not record it running.
    owner = JobRunner(store=JobStore(store, heartbeat_s=0.2))
    owner.start("training", "run-1", _until_cancelled, {})
    time.sleep(0.3)
    other = JobRunner(store=JobStore(store, heartbeat_s=0.2))
    try:
        assert other.cancel("run-1", "training").state == CANCELLED
        deadline = time.monotonic() + 5
        while owner.get("run-1", "training").state != CANCELLED \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert owner.get("run-1", "training").state == CANCELLED
        time.sleep(0.5)  # later heartbeats of the owner keep it so
        assert JobStore(store).load("training", "run-1")["state"] == CANCELLED
    finally:
        owner.shutdown()
        other.shutdown()


def test_the_local_stack_gives_each_child_only_the_credentials_it_reads(tmp_path, monkeypatch):
    # Found: TorchServe's JVM and model workers (and the generator, trainer, publisher)
    # carried MASTODON_ACCESS_TOKEN, X_BEARER_TOKEN, INSTAGRAM_ACCESS_TOKEN and the API
    # token in /proc/<pid>/environ; compose and Kubernetes give TorchServe none of them.
    for name in ("MASTODON_ACCESS_TOKEN", "X_BEARER_TOKEN", "INSTAGRAM_ACCESS_TOKEN",
                 "S3_SECRET_KEY"):
        monkeypatch.setenv(name, f"secret-{name}")
    stack = LocalStack(workdir=tmp_path, token="api-token-of-the-stack")
    env = stack._env({name: 1 for name in SERVICES}, [2, 3, 4, 5, 6])
    show_env = ["-c", "import json, os; print(json.dumps(sorted(os.environ)))"]
    try:
        for child in ("torchserve", *SERVICES):
            stack._spawn(child, show_env, env)
        seen = {}
        for child, process in stack._children.items():
            process.wait(30)
            log = (tmp_path / "logs" / f"{child}.log").read_text()
            seen[child] = set(json.loads(log.strip().splitlines()[-1]))
    finally:
        stack.stop()
    social = {"MASTODON_ACCESS_TOKEN", "X_BEARER_TOKEN", "INSTAGRAM_ACCESS_TOKEN"}
    assert not seen["torchserve"] & (social | {"SOCIALGAN_API_TOKEN", "S3_SECRET_KEY"})
    assert social <= seen["scraper"]
    for child in ("trainer", "generator", "publisher"):
        assert not seen[child] & social, child
        assert {"SOCIALGAN_API_TOKEN", "S3_SECRET_KEY"} <= seen[child]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the overlays")
def test_in_kubernetes_only_the_scraper_gets_the_social_networks_tokens(tmp_path):
    # Found: every service Pod took the whole Secret (envFrom), so a secrets.env with
    # INSTAGRAM_ACCESS_TOKEN / X_BEARER_TOKEN put them into the generator, trainer and
    # publisher too (compose gives them to the scraper alone).
    copy = tmp_path / "k8s"
    shutil.copytree(REPO / "k8s", copy, ignore=shutil.ignore_patterns("secrets.env"))
    social = sorted(n for n, var in settings.ENV_VARS.items()
                    if n.endswith("_TOKEN") and var.services == ("scraper",))
    example = (copy / "base" / "secrets.env.example").read_text()
    (copy / "base" / "secrets.env").write_text(
        example + "".join(f"{name}=secret-{name}\n" for name in social))
    run = subprocess.run(["kubectl", "kustomize", str(copy / "overlays" / "cpu")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert set(social) <= set(secret["data"])
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            whole_secret = any("secretRef" in s for s in c.get("envFrom", []))
            named = {e["name"] for e in c.get("env", [])}
            gets_social = whole_secret or bool(named & set(social))
            assert gets_social is (c["name"] == "scraper"), c["name"]


def test_a_grid_too_large_for_one_response_is_refused_naming_count_and_stores_nothing(store):
    # Found: 64 banners (768x256, the largest a dataset makes) of a noisy model ended as
    # RESOURCE_EXHAUSTED "SERVER: Sent message larger than max (74913942 vs. 67108864)".
    options = {"nz": 8, "ngf": 8, "ndf": 2, "nc": 3, "image_size": 256, "aspect": 3}
    torch.manual_seed(0)
    netG = build_generator("dcgan-diffaug", options)
    for weights in netG.parameters():  # noise compresses worst: the largest PNGs
        weights.data.normal_(0, 0.3)
    export_generator(store, "noisy", netG, {
        "arch": "dcgan-diffaug", "arch_options": options, "latent_dim": 8, "width": 768,
        "height": 256, "hashtag": "sunset", "method": "probe", "metrics": {}})
    backend = InProcessBackend(store)
    running = start_server("generator", lambda s: register_generator(s, store, backend),
                           port=0, token=TEST_TOKEN)
    try:
        stub = generator_pb2_grpc.GeneratorServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        with pytest.raises(grpc.RpcError) as refused:
            stub.GenerateGrid(generator_pb2.GenerateGridRequest(
                model_id="noisy", seed=0, count=64, store=True), timeout=120)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith("count:")
        assert not list(store.list("grids/"))
        smaller = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
            model_id="noisy", seed=0, count=64, format=common_pb2.IMAGE_FORMAT_JPEG),
            timeout=120)
        assert len(smaller.images) == 64
    finally:
        running.stop(grace=0)


@pytest.mark.parametrize("url_var, token_var, spec", [
    ("X_API_URL", "X_BEARER_TOKEN", "x:@someone"),
    ("MASTODON_INSTANCE_URL", "MASTODON_ACCESS_TOKEN", "mastodon:https://mastodon.social"),
])
def test_a_password_in_a_configured_api_url_never_reaches_a_grpc_caller(
        store, monkeypatch, url_var, token_var, spec):
    # Found: StartScrape answered FAILED_PRECONDITION "X_API_URL:
    # 'https://user:hunter2@api.x.com' is not an http(s) URL with a host".
    monkeypatch.setenv(token_var, "token-of-the-account")
    monkeypatch.setenv(url_var, "https://user:hunter2@example.org")
    runner = JobRunner()
    running = start_server("scraper", lambda s: register_scraper(s, store, runner), port=0,
                           token=TEST_TOKEN)
    try:
        stub = scraper_pb2_grpc.ScraperServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartScrape(scraper_pb2.StartScrapeRequest(
                source=scraper_pb2.SourceSpec(spec=spec), hashtag="cats"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.details().startswith(url_var)
        assert "hunter2" not in refused.value.details()
        assert "token-of-the-account" not in refused.value.details()
    finally:
        running.stop(grace=0)
        runner.shutdown()

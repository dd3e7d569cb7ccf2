"""Bad RPCs: >= 500 requests generated from the .proto descriptors against the four services
on loopback; none ends UNKNOWN or INTERNAL (or hangs), and every refusal names its field.

Each case changes one field of a request that is otherwise good (or sends an empty request,
or bytes that are not protobuf), so a refusal must be about that field. A case the service
accepts is fine (a caption may hold emoji); jobs it starts are cancelled at once. Run with
-s to see the counts per status code.

The services run in this process (register() + start_server(), as their main() does), with
a real local store, the generator on its in-process backend (TorchServe is pinned in
test_serving.py) and a fake Mastodon on 127.0.0.1. Name lookups of anything but loopback
fail in this process, so no generated value ever reaches outside the machine.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import pytest
import torch
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

import services.generator.server as generator_service
import services.publisher.server as publisher_service
import services.scraper.server as scraper_service
import services.trainer.server as trainer_service
from socialgan.models import build_generator
from socialgan.models.export import export_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving.backends import InProcessBackend
from socialgan.storage import LocalObjectStore, keys
from socialgan.v1 import (
    common_pb2,
    cycle_pb2,
    cycle_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    publisher_pb2,
    publisher_pb2_grpc,
    scraper_pb2,
    scraper_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tests.conftest import TEST_TOKEN, TWEMOJI_DIR
from tests.local_api_servers import GRAPH_VERSION, FakeSocialApis
from tests.local_api_servers import TOKEN as API_TOKEN
from tests.rpc_fuzz_cases import Case, cases_for

pytestmark = pytest.mark.timeout(300)

CALL_TIMEOUT_S = 5.0  # a bad request is answered well within this, or it counts as a hang
CAPACITY_WAIT_S = 20.0  # the longest a case waits for a free upload slot
CANCEL_WAIT_S = 2.0  # a cancelled job should end by then; the next cases go on regardless
IG_USER = "17841400000000001"
MODEL_ID = "fuzz-model"
TINY = {"ngf": "8", "ndf": "8", "batch_size": "16"}
FILES = (common_pb2, scraper_pb2, trainer_pb2, generator_pb2, publisher_pb2, cycle_pb2)
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED,
         grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAUTHENTICATED}
# Cases that still failed, in code other owners were changing, when this test was written
# (issue 9): printed as KNOWN OPEN instead of failing the test. Delete an entry once fixed.
KNOWN_OPEN: set[tuple[str, str, str]] = set()  # (rpc, field, case) still open: none
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "ip6-localhost", None, b"localhost", b"127.0.0.1"}


@pytest.fixture(scope="module")
def loopback_only():
    """Name lookups of anything but loopback fail: a generated URL can never leave the box."""
    real = socket.getaddrinfo
    refused = []

    def lookup(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in _LOOPBACK or (isinstance(name, str) and name.startswith("127.")):
            return real(host, *args, **kwargs)
        refused.append(name)
        raise socket.gaierror(socket.EAI_NONAME, f"fuzz test: {name!r} is not loopback")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", lookup)
        yield refused


@dataclass
class Stack:
    channels: dict[str, grpc.Channel]
    live: str  # host:port of the fake social APIs, for URL fields
    baselines: dict[str, object]
    outcome_of_baseline: dict[str, grpc.StatusCode]


def _serve(name, register, servers):
    running = start_server(name, register, port=0, host="127.0.0.1", token=TEST_TOKEN)
    servers.append(running)
    return f"127.0.0.1:{running.port}"


def _wait_done(get, timeout=60.0) -> bool:
    """Whether the job get() reports reached an end within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get().status.state not in (common_pb2.JOB_STATE_QUEUED, common_pb2.JOB_STATE_RUNNING):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory, loopback_only):
    root = tmp_path_factory.mktemp("fuzz")
    store = LocalObjectStore(root / "store")
    pics = root / "import" / "pics"
    pics.mkdir(parents=True)
    for path in sorted(TWEMOJI_DIR.glob("*.png"))[:8]:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("fuzz", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    for path in sorted(TWEMOJI_DIR.glob("*.png"))[:2]:
        shutil.copy(path, pics / path.name)
    torch.manual_seed(0)  # an untrained generator serves grids as well as a trained one
    export_generator(store, MODEL_ID, build_generator("dcgan", {"ngf": 8}), {
        "arch": "dcgan", "arch_options": {"ngf": 8}, "latent_dim": 100, "width": 64,
        "height": 64, "hashtag": "fuzz", "method": "dcgan (random init)", "metrics": {}})
    servers = []
    with pytest.MonkeyPatch.context() as mp, FakeSocialApis() as social:
        mp.setenv("SOCIALGAN_API_TOKEN", TEST_TOKEN)
        mp.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
        mp.setenv("SCRAPER_IMPORT_DIR", str(root / "import"))
        mp.setenv("STORAGE_DIR", str(root / "store"))
        # Every social source is configured, against the fake APIs on loopback, so a case
        # reaches the source's own checks instead of stopping at "no token".
        for name, value in {"INSTAGRAM_ACCESS_TOKEN": API_TOKEN, "INSTAGRAM_USER_ID": IG_USER,
                            "INSTAGRAM_GRAPH_URL": f"{social.base}/{GRAPH_VERSION}",
                            "X_BEARER_TOKEN": API_TOKEN, "X_API_URL": social.base,
                            "MASTODON_INSTANCE_URL": social.base,
                            "MASTODON_ACCESS_TOKEN": API_TOKEN}.items():
            mp.setenv(name, value)
        addresses = {
            "scraper": _serve("scraper", lambda s: scraper_service.register(s, store), servers),
            "trainer": _serve("trainer", lambda s: trainer_service.register(s, store), servers),
            "generator": _serve("generator", lambda s: generator_service.register(
                s, store, InProcessBackend(store)), servers),
            "publisher": _serve("publisher", lambda s: publisher_service.register(s, store),
                                servers),
        }
        # Cycles run in the publisher and call the other three, as in a deployment.
        for name, address in addresses.items():
            mp.setenv(f"{name.upper()}_SERVICE_ADDR", address)
        channels = {name: open_channel(address, TEST_TOKEN)
                    for name, address in addresses.items()}
        channels["cycle"] = channels["publisher"]  # CycleService is served there
        try:
            yield _baselines(channels, social.base, pics)
        finally:
            for channel in channels.values():
                channel.close()
            for running in servers:
                running.stop(0)


def _baselines(channels, mastodon_url, pics) -> Stack:
    """A good request for every RPC, made good by running the pipeline once on tiny data."""
    scraper = scraper_pb2_grpc.ScraperServiceStub(channels["scraper"])
    trainer = trainer_pb2_grpc.TrainerServiceStub(channels["trainer"])
    generator = generator_pb2_grpc.GeneratorServiceStub(channels["generator"])
    publisher = publisher_pb2_grpc.PublisherServiceStub(channels["publisher"])
    t = CALL_TIMEOUT_S * 6

    start_scrape = scraper_pb2.StartScrapeRequest(
        hashtag="fuzz", limit=2, source=scraper_pb2.SourceSpec(spec="instagram:top"))
    scrape_id = "fuzz-no-such-scrape"
    # The first folder source the scraper takes: relative to its import root, or absolute.
    for path in ("pics", str(pics)):
        request = scraper_pb2.StartScrapeRequest(
            hashtag="fuzz", limit=2,
            source=scraper_pb2.SourceSpec(folder=scraper_pb2.FolderSource(path=path)))
        try:
            job = scraper.StartScrape(request, timeout=t)
        except grpc.RpcError:
            continue
        start_scrape, scrape_id = request, job.status.job_id
        get = scraper_pb2.GetScrapeRequest(job_id=scrape_id)
        assert _wait_done(lambda get=get: scraper.GetScrape(get, timeout=t))
        break

    filter_request = trainer_pb2.FilterDatasetRequest(hashtag="fuzz", dataset_id="fuzz-ds",
                                                      skip_stages=["outliers"])
    dataset = [u for u in trainer.FilterDataset(filter_request, timeout=t) if u.dataset][-1]
    start_training = trainer_pb2.StartTrainingRequest(
        dataset_id="fuzz-ds", model="dcgan", budget=trainer_pb2.TrainingBudget(steps=2),
        options=TINY, seed=1, checkpoint_every=1)
    # A run to watch, get and cancel; cancelled at once, training is not what is tested here.
    run = trainer.StartTraining(start_training, timeout=t)
    trainer.CancelTraining(trainer_pb2.CancelTrainingRequest(run_id=run.run_id), timeout=t)
    grid = generator.GenerateGrid(generator_pb2.GenerateGridRequest(
        model_id=MODEL_ID, seed=1, count=1, store=True), timeout=t)
    publish = publisher_pb2.PublishRequest(
        target=publisher_pb2.PUBLISH_TARGET_GALLERY, grid_key=grid.grid_key, dry_run=True,
        caption=publisher_pb2.CaptionInputs(hashtag="fuzz", model_id=MODEL_ID, seed=1,
                                            metrics={"swd": 1.0}, extra_hashtags=["art"]))
    post = publisher.Publish(publish, timeout=t)
    cycles = cycle_pb2_grpc.CycleServiceStub(channels["cycle"])
    run_cycle = cycle_pb2.RunCycleRequest(trigger="api", options=cycle_pb2.CycleOptions(
        choose=publisher_pb2.CHOOSE_MODE_MANUAL, hashtag="fuzz", source="folder:pics",
        steps=2, options=TINY, target=publisher_pb2.PUBLISH_TARGET_GALLERY, dry_run=True))
    cycle = cycles.RunCycle(run_cycle, timeout=t)  # a run to get, watch and cancel
    _end_cycle(cycles, cycle.run_id, timeout=60.0)

    fresh_filter = trainer_pb2.FilterDatasetRequest()
    fresh_filter.CopyFrom(filter_request)
    fresh_filter.dataset_id = ""  # a new id each time: an existing one is ALREADY_EXISTS
    fresh_filter.thresholds.update(dict(list(dataset.dataset.thresholds.items())[:1]))
    start_training.run_id = ""
    baselines = {
        "socialgan.v1.ScraperService.StartScrape": start_scrape,
        "socialgan.v1.ScraperService.WatchScrape": scraper_pb2.WatchScrapeRequest(
            job_id=scrape_id),
        "socialgan.v1.ScraperService.GetScrape": scraper_pb2.GetScrapeRequest(job_id=scrape_id),
        "socialgan.v1.ScraperService.CancelScrape": scraper_pb2.CancelScrapeRequest(
            job_id=scrape_id),
        "socialgan.v1.ScraperService.ListTrendingTags": scraper_pb2.ListTrendingTagsRequest(
            instance_url=mastodon_url, limit=5),
        "socialgan.v1.TrainerService.FilterDataset": fresh_filter,
        "socialgan.v1.TrainerService.StartFilter": fresh_filter,
        "socialgan.v1.TrainerService.WatchFilter": trainer_pb2.WatchFilterRequest(
            dataset_id="fuzz-ds"),
        "socialgan.v1.TrainerService.GetFilter": trainer_pb2.GetFilterRequest(
            dataset_id="fuzz-ds"),
        "socialgan.v1.TrainerService.CancelFilter": trainer_pb2.CancelFilterRequest(
            dataset_id="fuzz-ds"),
        "socialgan.v1.ScraperService.UploadImages": [  # a folder of one picture
            scraper_pb2.UploadImagesRequest(start=scraper_pb2.UploadStart(hashtag="fuzz")),
            scraper_pb2.UploadImagesRequest(file=scraper_pb2.UploadFile(name="a.png")),
            scraper_pb2.UploadImagesRequest(chunk=sorted(pics.iterdir())[0].read_bytes()),
        ],
        "socialgan.v1.TrainerService.GetDataset": trainer_pb2.GetDatasetRequest(
            dataset_id="fuzz-ds"),
        "socialgan.v1.TrainerService.StartTraining": start_training,
        "socialgan.v1.TrainerService.WatchTraining": trainer_pb2.WatchTrainingRequest(
            run_id=run.run_id),
        "socialgan.v1.TrainerService.GetTraining": trainer_pb2.GetTrainingRequest(
            run_id=run.run_id),
        "socialgan.v1.TrainerService.CancelTraining": trainer_pb2.CancelTrainingRequest(
            run_id=run.run_id),
        "socialgan.v1.GeneratorService.GenerateGrid": generator_pb2.GenerateGridRequest(
            model_id=MODEL_ID, seed=2, count=1),
        "socialgan.v1.PublisherService.Publish": publish,
        "socialgan.v1.PublisherService.GetPost": publisher_pb2.GetPostRequest(
            post_id=post.post_id),
        "socialgan.v1.PublisherService.ListPosts": publisher_pb2.ListPostsRequest(
            page_size=5, target=publisher_pb2.PUBLISH_TARGET_GALLERY),
        "socialgan.v1.PublisherService.ChooseHashtag": publisher_pb2.ChooseHashtagRequest(
            mode=publisher_pb2.CHOOSE_MODE_MANUAL, hashtag="fuzz"),
        "socialgan.v1.TrainerService.ReviewImage": trainer_pb2.ReviewImageRequest(
            hashtag="fuzz", decision=trainer_pb2.REVIEW_DECISION_KEEP,
            image_id=hashlib.sha256(sorted(TWEMOJI_DIR.glob("*.png"))[0].read_bytes())
            .hexdigest()),
        "socialgan.v1.TrainerService.GetFilterReview": trainer_pb2.GetFilterReviewRequest(
            hashtag="fuzz"),
        "socialgan.v1.CycleService.RunCycle": run_cycle,
        "socialgan.v1.CycleService.GetRun": cycle_pb2.GetRunRequest(run_id=cycle.run_id),
        "socialgan.v1.CycleService.WatchRun": cycle_pb2.GetRunRequest(run_id=cycle.run_id),
        "socialgan.v1.CycleService.CancelRun": cycle_pb2.GetRunRequest(run_id=cycle.run_id),
        "socialgan.v1.CycleService.ListRuns": cycle_pb2.ListRunsRequest(page_size=5),
    }
    return Stack(channels=channels, live=mastodon_url.removeprefix("http://"),
                 baselines=baselines, outcome_of_baseline={})


def _methods():
    for file in FILES:
        for service in file.DESCRIPTOR.services_by_name.values():
            yield from service.methods


def _channel_for(stack: Stack, case: Case) -> grpc.Channel:
    return stack.channels[case.method.containing_service.name.removesuffix("Service").lower()]


def _call(stack: Stack, case: Case) -> tuple[grpc.StatusCode, str, bytes | None]:
    """(status, message, first response) of the case over real gRPC."""
    channel = _channel_for(stack, case)
    path = f"/{case.method.containing_service.full_name}/{case.method.name}"
    client_streams = case.method.client_streaming
    request = iter(case.payloads) if client_streams else case.payloads[0]
    try:
        if case.method.server_streaming:
            open_call = (channel.stream_stream if client_streams else channel.unary_stream)(path)
            replies = open_call(request, timeout=CALL_TIMEOUT_S)
            first = next(replies, None)
            replies.cancel()  # one answer tells; a long filter or watch need not run on
            return grpc.StatusCode.OK, "", first
        open_call = (channel.stream_unary if client_streams else channel.unary_unary)(path)
        return grpc.StatusCode.OK, "", open_call(request, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None


def _call_with_capacity(stack: Stack, case: Case) -> tuple[grpc.StatusCode, str, bytes | None]:
    """_call, asked again while the service answers that its bounded uploads are all in use:
    that is capacity (earlier cases' jobs still ending on a slow machine), not this case's
    outcome. Bounded: after CAPACITY_WAIT_S the answer stands."""
    deadline = time.monotonic() + CAPACITY_WAIT_S
    while True:
        code, details, reply = _call(stack, case)
        busy = code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith("uploads:")
        if not busy or time.monotonic() > deadline:
            return code, details, reply
        time.sleep(0.2)


def _cancel_started_job(stack: Stack, case: Case, reply: bytes | None) -> bool:
    """A job an accepted Start* began is cancelled and waited for, so jobs never pile up
    (uploads, for one, are bounded) and the next cases do not queue behind them. False
    when the job did not end within CANCEL_WAIT_S of its cancel."""
    if reply is None:
        return True
    scraper = scraper_pb2_grpc.ScraperServiceStub(stack.channels["scraper"])
    trainer = trainer_pb2_grpc.TrainerServiceStub(stack.channels["trainer"])
    t, wait = CALL_TIMEOUT_S, CANCEL_WAIT_S
    if case.method.name in ("StartScrape", "UploadImages"):
        job_id = scraper_pb2.ScrapeJob.FromString(reply).status.job_id
        scraper.CancelScrape(scraper_pb2.CancelScrapeRequest(job_id=job_id), timeout=t)
        return _wait_done(lambda: scraper.GetScrape(
            scraper_pb2.GetScrapeRequest(job_id=job_id), timeout=t), timeout=wait)
    elif case.method.name == "StartFilter":
        dataset_id = trainer_pb2.FilterJob.FromString(reply).dataset_id
        trainer.CancelFilter(trainer_pb2.CancelFilterRequest(dataset_id=dataset_id), timeout=t)
        return _wait_done(lambda: trainer.GetFilter(trainer_pb2.GetFilterRequest(
            dataset_id=dataset_id), timeout=t), timeout=wait)
    elif case.method.name == "RunCycle":
        cycles = cycle_pb2_grpc.CycleServiceStub(stack.channels["cycle"])
        return _end_cycle(cycles, cycle_pb2.Run.FromString(reply).run_id, timeout=wait)
    elif case.method.name == "StartTraining":
        run_id = trainer_pb2.TrainingJob.FromString(reply).run_id
        trainer.CancelTraining(trainer_pb2.CancelTrainingRequest(run_id=run_id), timeout=t)
        return _wait_done(lambda: trainer.GetTraining(
            trainer_pb2.GetTrainingRequest(run_id=run_id), timeout=t), timeout=wait)
    return True


def _end_cycle(cycles, run_id: str, timeout: float) -> bool:
    """Cancel the cycle and wait for it to end (a skipped one has ended already)."""
    t = CALL_TIMEOUT_S
    cycles.CancelRun(cycle_pb2.GetRunRequest(run_id=run_id), timeout=t)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = cycles.GetRun(cycle_pb2.GetRunRequest(run_id=run_id), timeout=t).state
        if state not in (cycle_pb2.RUN_STATE_QUEUED, cycle_pb2.RUN_STATE_RUNNING):
            return True
        time.sleep(0.05)
    return False


def _good_request(stack: Stack, method):
    """The method's good request (a list of messages for a client stream); an RPC added
    since the baselines were written gets its empty request."""
    base = stack.baselines.get(method.full_name)
    return base if base is not None else message_factory.GetMessageClass(method.input_type)()


def _all_cases(stack: Stack) -> list[Case]:
    return [case for method in _methods()
            for case in cases_for(method, _good_request(stack, method), stack.live)]


def _baseline_outcome(stack: Stack, method) -> grpc.StatusCode:
    if method.full_name not in stack.outcome_of_baseline:
        base = _good_request(stack, method)
        messages = base if isinstance(base, list) else [base]
        case = Case(method, "", "baseline", tuple(m.SerializeToString() for m in messages), ())
        code, _, reply = _call(stack, case)
        _cancel_started_job(stack, case, reply)
        stack.outcome_of_baseline[method.full_name] = code
    return stack.outcome_of_baseline[method.full_name]


def test_generated_bad_requests_never_end_unknown_or_internal_and_name_their_field(
        stack, loopback_only, capsys):
    cases = _all_cases(stack)
    assert len(cases) >= 500
    assert {c.method.full_name for c in cases} >= set(stack.baselines)
    by_code, by_rpc, failures, seconds, slowest = Counter(), Counter(), [], Counter(), []
    slow_cancels = []  # not asserted here: a job that ignores cancel is no bad-request bug
    known = []  # failures listed in KNOWN_OPEN
    started = time.monotonic()
    for case in cases:
        baseline = _baseline_outcome(stack, case.method)
        begun = time.monotonic()
        code, details, reply = _call_with_capacity(stack, case)
        if not _cancel_started_job(stack, case, reply):
            slow_cancels.append(f"{case.rpc} {case.field}={case.label}")
        seconds[case.rpc] += time.monotonic() - begun
        slowest.append((time.monotonic() - begun, f"{case.rpc} {case.field}={case.label}"))
        by_code[code.name] += 1
        by_rpc[case.rpc] += 1
        named = any(name and name in details for name in case.names)
        if code in NEVER or (code != grpc.StatusCode.OK and code != baseline and not named):
            line = f"{case.rpc} {case.field}={case.label}: {code.name} {details[:160]!r}"
            (known if (case.rpc, case.field, case.label) in KNOWN_OPEN else failures).append(
                line)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\nbad RPCs: {len(cases)} cases over {len(by_rpc)} RPCs in {elapsed:.1f} s; "
              f"by status: {dict(sorted(by_code.items()))}; failures: {len(failures)} "
              f"(+{len(known)} known open); "
              f"non-loopback lookups refused: {len(loopback_only)}")
        print("  baselines that are not OK:", {name: code.name for name, code in
                                               stack.outcome_of_baseline.items()
                                               if code != grpc.StatusCode.OK})
        print(f"  jobs still running {CANCEL_WAIT_S:.0f} s after their cancel:", slow_cancels)
        print("  seconds by RPC:", {k: round(v, 1) for k, v in seconds.most_common(5)})
        print("  slowest:", [f"{name} {t:.1f}s" for t, name in sorted(slowest)[-12:]])
        for line in failures:
            print("  FAIL", line)
        for line in known:
            print("  KNOWN OPEN", line)
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(
        failures[:60])


def test_health_watch_answers_serving_on_all_four_services(stack):
    for name, channel in stack.channels.items():
        updates = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
        assert next(updates).status == health_pb2.HealthCheckResponse.SERVING, name
        updates.cancel()

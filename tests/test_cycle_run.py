"""Whole cycles on the local stack (TorchServe and the four services on loopback; the cycle
is a job of the publisher process): the hashtag chosen from a local Mastodon's trends with a
runner-up fallback, then by the replies to our own post; a cycle a schedule asks for while
another runs is recorded as skipped; a cycle survives a kill -9 of the publisher and resumes
at its stage; a cancel stops the training it was following."""

from __future__ import annotations

import json
import shutil
import time
from types import SimpleNamespace

import pytest

from socialgan.cli import main
from socialgan.cycles.client import cancel_run, get_run, list_runs, start_cycle
from socialgan.pipeline import PipelineOptions
from socialgan.supervisor import SERVICES, LocalStack
from socialgan.v1 import cycle_pb2
from tests import local_mastodon
from tests.conftest import TWEMOJI_DIR
from tests.local_mastodon import OWN_ACCOUNT, FakeMastodon

pytestmark = pytest.mark.timeout(600)

TINY = ["--option", "ngf=4", "--option", "ndf=4", "--option", "batch_size=8"]
TRENDS = [  # the top tag has no pictures in the import folder; the second has
    {"name": "EmptyTag", "url": "https://m.example/tags/emptytag",
     "history": [{"day": "1732233600", "uses": "900", "accounts": "500"}]},
    {"name": "Caturday", "url": "https://m.example/tags/caturday",
     "history": [{"day": "1732233600", "uses": "120", "accounts": "80"}]},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cycles")
    imports = workdir / "import"
    emoji = sorted(TWEMOJI_DIR.glob("*.png"))
    for tag, pictures in (("caturday", emoji[:24]), ("northernlights", emoji[24:48]),
                          ("slowtag", emoji[:24])):
        (imports / tag).mkdir(parents=True)
        for path in pictures:
            shutil.copy(path, imports / tag / path.name)
    with FakeMastodon() as mastodon:
        mastodon.trends = TRENDS
        env = {"PUBLISHER_ALLOW_LOOPBACK_HTTP": "true", "PUBLISH_TIMEOUT_S": "10",
               "PUBLISH_BACKOFF_S": "0.01",
               "MASTODON_PUBLISH_TOKEN": local_mastodon.TOKEN,
               "MASTODON_PUBLISH_INSTANCE_URL": mastodon.base,
               # Trends from the local Mastodon only, on loopback; Bluesky's answers nothing.
               "AUDIENCE_TREND_INSTANCES": mastodon.base, "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
               "BLUESKY_APPVIEW_URL": "http://127.0.0.1:9", "AUDIENCE_MIN_VOTES": "3",
               "SCRAPER_IMPORT_DIR": str(imports), "CYCLE_MIN_IMAGES": "10"}
        stack = LocalStack(workdir=workdir, extra_env=env)
        with stack as endpoints:
            yield SimpleNamespace(stack=stack, endpoints=endpoints, mastodon=mastodon,
                                  storage=workdir / "storage", imports=imports)


def _cli(stack, monkeypatch, capsys, *args: str) -> tuple[int, dict[str, str], str]:
    e = stack.endpoints
    for name in SERVICES:
        monkeypatch.setenv(f"{name.upper()}_SERVICE_ADDR", getattr(e, name))
    monkeypatch.setenv("SOCIALGAN_API_TOKEN", e.token)
    rc = main(list(args))
    captured = capsys.readouterr()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
              for line in captured.out.splitlines() if ":" in line and not line.startswith(" ")}
    return rc, fields, captured.out + captured.err


def _cycle(stack, monkeypatch, capsys, *args: str) -> tuple[dict[str, str], str]:
    rc, fields, text = _cli(stack, monkeypatch, capsys, "cycle", "--remote", "--source",
                            f"folder:{stack.imports}/{{hashtag}}", "--steps", "3", *TINY,
                            "-q", *args)
    assert rc == 0, text
    return fields, text


def _wait_for(stack, run_id: str, done, timeout: float = 240.0) -> cycle_pb2.Run:
    deadline = time.monotonic() + timeout
    while True:
        run = get_run(stack.endpoints, run_id)
        if done(run):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


def _stage(run: cycle_pb2.Run, name: str) -> cycle_pb2.RunStage:
    return next(s for s in run.stages if s.name == name)


def test_a_trending_cycle_falls_back_to_the_runner_up_and_records_everything(
        stack, monkeypatch, capsys):
    """`socialgan cycle --choose vote-else-trending --target gallery`: no votes yet, so the
    top trending tag wins; its folder does not exist, so the runner-up is trained on."""
    fields, text = _cycle(stack, monkeypatch, capsys, "--choose", "vote-else-trending",
                          "--target", "gallery")
    assert fields["hashtag"].startswith("#caturday (tried #emptytag, #caturday)"), text
    caption = fields["caption"]
    run = get_run(stack.endpoints, fields["run"].split()[0])
    assert run.state == cycle_pb2.RUN_STATE_SUCCEEDED and run.trigger == "cli"
    assert list(run.tried_hashtags) == ["emptytag", "caturday"]
    assert [s.name for s in run.stages] == ["choose", "scrape", "filter", "train", "generate",
                                            "caption", "publish"]
    assert all(s.state in ("succeeded", "skipped") for s in run.stages), run
    assert set(_stage(run, "train").ids) == {"run_id"}
    assert _stage(run, "scrape").ids["job_id"] and _stage(run, "filter").ids["dataset_id"]
    assert _stage(run, "publish").ids["post_id"] == run.post_id
    for stage in run.stages:
        assert stage.ended_unix >= stage.started_unix > 0, stage

    # The caption says how the hashtag was chosen; the evidence is under runs/choices/.
    full = _full_caption(stack, run.post_id)
    assert full.startswith("#caturday, dreamed up by a GAN.\n"
                           "Runner-up of the trending choice: emptytag had no images."), full
    assert caption in full
    evidence = json.loads((stack.storage / run.evidence_key).read_text())
    assert evidence["winner"] == "emptytag" and "caturday" in evidence["runner_ups"]

    rc, _, listing = _cli(stack, monkeypatch, capsys, "history")
    assert rc == 0 and run.run_id in listing and "#caturday" in listing


def test_the_audiences_votes_choose_the_next_cycle(stack, monkeypatch, capsys):
    """A cycle posts to Mastodon (by hand: #caturday); three accounts reply #NorthernLights
    (one twice, and we reply too); the next cycle trains on their hashtag."""
    fields, text = _cycle(stack, monkeypatch, capsys, "--hashtag", "caturday",
                          "--target", "mastodon")
    mastodon = stack.mastodon
    status = max(mastodon.statuses, key=int)
    assert "Reply with a hashtag to choose the next run." in mastodon.statuses[status]["content"]
    for i in range(3):
        mastodon.add_reply(status, {"id": f"5000{i}", "acct": f"fan{i}@art.example"},
                           "#NorthernLights next!")
    mastodon.add_reply(status, {"id": "50000", "acct": "fan0@art.example"}, "#NorthernLights")
    mastodon.add_reply(status, OWN_ACCOUNT, "#EmptyTag")

    fields, text = _cycle(stack, monkeypatch, capsys, "--choose", "vote",
                          "--target", "gallery")
    assert fields["hashtag"] == "#northernlights", text
    run = get_run(stack.endpoints, fields["run"].split()[0])
    full = _full_caption(stack, run.post_id)
    assert full.startswith("#northernlights, dreamed up by a GAN.\nChosen by 3 votes."), full
    evidence = json.loads((stack.storage / run.evidence_key).read_text())
    assert evidence["method"] == "vote" and evidence["winner"] == "northernlights"


def test_a_scheduled_cycle_that_would_overlap_is_skipped_and_a_kill_resumes_at_the_stage(
        stack, monkeypatch, capsys):
    """A cycle trains for 20 s; the schedule's beat meanwhile is recorded as skipped. The
    publisher is killed (-9) while the cycle follows its training: restarted, it resumes the
    cycle at the train stage, following the same training run, and the cycle ends."""
    opts = PipelineOptions(hashtag="slowtag", source=f"folder:{stack.imports}/{{hashtag}}",
                           steps=0, seconds=20.0, choose="manual",
                           options={"ngf": "4", "ndf": "4", "batch_size": "8"})
    first = start_cycle(stack.endpoints, opts)
    training = _wait_for(stack, first.run_id, lambda r: any(
        s.name == "train" and s.ids.get("run_id") for s in r.stages))

    rc, _, said = _cli(stack, monkeypatch, capsys, "schedule", "--remote", "--every", "1h",
                       "--now", "--beats", "1", "--hashtag", "caturday", "--source",
                       "folder:x", "--steps", "3")
    assert rc == 0 and f"skipped (cycle {first.run_id} is running)" in said, said
    skipped = list_runs(stack.endpoints, 1).runs[0]  # newest first
    assert skipped.state == cycle_pb2.RUN_STATE_SKIPPED and skipped.trigger == "schedule"
    assert skipped.skipped_because == first.run_id

    stack.stack.restart("publisher", kill=True)
    run = _wait_for(stack, first.run_id, lambda r: r.state in (
        cycle_pb2.RUN_STATE_SUCCEEDED, cycle_pb2.RUN_STATE_FAILED), timeout=300)
    assert run.state == cycle_pb2.RUN_STATE_SUCCEEDED, run
    record = json.loads((stack.storage / "jobs" / "cycle" / f"{run.run_id}.json").read_text())
    assert record["resumes"] == 1  # resumed once, by the restarted publisher
    assert _stage(run, "train").ids["run_id"] == _stage(training, "train").ids["run_id"]
    assert _stage(run, "scrape").ids["job_id"] == _stage(training, "scrape").ids["job_id"]
    trainings = list((stack.storage / "jobs" / "training").glob("*.json"))
    assert sum(_stage(training, "filter").ids["dataset_id"] in p.read_text()
               for p in trainings) == 1  # the training was followed, never started twice


def test_a_cancelled_cycle_cancels_the_training_it_follows(stack):
    opts = PipelineOptions(hashtag="caturday", source=f"folder:{stack.imports}/{{hashtag}}",
                           steps=0, seconds=120.0, choose="manual",
                           options={"ngf": "4", "ndf": "4", "batch_size": "8"})
    run = start_cycle(stack.endpoints, opts)
    run = _wait_for(stack, run.run_id, lambda r: any(
        s.name == "train" and s.ids.get("run_id") for s in r.stages))
    cancel_run(stack.endpoints, run.run_id)
    run = _wait_for(stack, run.run_id, lambda r: r.state == cycle_pb2.RUN_STATE_CANCELLED,
                    timeout=60)
    training_id = _stage(run, "train").ids["run_id"]
    record = stack.storage / "jobs" / "training" / f"{training_id}.json"
    deadline = time.monotonic() + 60
    while json.loads(record.read_text())["state"] != "cancelled":
        assert time.monotonic() < deadline, record.read_text()[:500]
        time.sleep(0.2)


def _full_caption(stack, post_id: str) -> str:
    record = json.loads((stack.storage / "posts" / post_id / "post.json").read_text())
    return record["caption"]



def test_a_rolling_restart_of_the_publisher_resumes_the_cycle_at_its_stage(stack):
    """SIGTERM (a rolling update): the cycle is recorded INTERRUPTED, to resume on the next
    start, while its training goes on in the trainer; the new publisher follows it again."""
    opts = PipelineOptions(hashtag="northernlights",
                           source=f"folder:{stack.imports}/{{hashtag}}", steps=0, seconds=15.0,
                           choose="manual", options={"ngf": "4", "ndf": "4", "batch_size": "8"})
    run = start_cycle(stack.endpoints, opts)
    training = _wait_for(stack, run.run_id, lambda r: any(
        s.name == "train" and s.ids.get("run_id") for s in r.stages))
    stack.stack.restart("publisher")
    record = json.loads((stack.storage / "jobs" / "cycle" / f"{run.run_id}.json").read_text())
    assert record["state"] in ("interrupted", "running"), record["state"]  # resumed already?
    run = _wait_for(stack, run.run_id, lambda r: r.state in (
        cycle_pb2.RUN_STATE_SUCCEEDED, cycle_pb2.RUN_STATE_FAILED), timeout=300)
    assert run.state == cycle_pb2.RUN_STATE_SUCCEEDED, run
    assert _stage(run, "train").ids["run_id"] == _stage(training, "train").ids["run_id"]
    assert _stage(run, "train").state == "succeeded"
    log = (stack.storage.parent / "logs" / "publisher.log").read_text()
    assert f"resumed cycle {run.run_id}" in log

"""Cycles without the other services: the options a RunCycle refuses (each naming its field,
over real gRPC), the schedule's beats, the history's order and pages, and a publisher
that imports without torch (its container has none)."""

from __future__ import annotations

import calendar
import subprocess
import sys
import threading

import grpc
import pytest

from services.publisher.server import register
from socialgan.cycles import CycleRunner, check_cycle_options
from socialgan.cycles.runner import CYCLE
from socialgan.cycles.schedule import Schedule, parse_interval, run_schedule
from socialgan.errors import InvalidArgument
from socialgan.jobs import SUCCEEDED, JobSnapshot
from socialgan.pipeline import PipelineOptions
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.v1 import cycle_pb2, cycle_pb2_grpc, publisher_pb2
from tests.conftest import TEST_TOKEN

GOOD = PipelineOptions(hashtag="", source="folder:pics/{hashtag}", steps=10,
                       choose="vote-else-trending")


@pytest.mark.parametrize(("change", "field"), [
    ({"source": ""}, "options.source"),
    ({"source": "folder:{tag}"}, "options.source"),
    ({"hashtag": "cats"}, "options.hashtag"),  # only by hand
    ({"choose": "manual", "hashtag": "no spaces"}, "options.hashtag"),
    ({"choose": "dice"}, "options.choose"),
    ({"steps": 0, "seconds": 0.0}, "options.steps"),
    ({"steps": -1}, "options.steps"),
    ({"seconds": float("nan")}, "options.seconds"),
    ({"caption_seconds": 1e12}, "options.caption_seconds"),
    ({"limit": 0}, "options.limit"),
    ({"target": "myspace"}, "options.target"),
    ({"visibility": "everyone"}, "options.visibility"),
    ({"caption": "poem"}, "options.caption"),
    ({"aspect": 2}, "options.aspect"),
    ({"resolution": 7}, "options.resolution"),
])
def test_bad_cycle_options_name_their_field(change, field):
    import dataclasses

    with pytest.raises(InvalidArgument) as caught:
        check_cycle_options(dataclasses.replace(GOOD, **change))
    assert caught.value.field == field, str(caught.value)


def test_a_manual_cycle_normalises_its_hashtag():
    import dataclasses

    opts = check_cycle_options(dataclasses.replace(GOOD, choose="manual", hashtag="#Sunset"))
    assert opts.hashtag == "sunset"


@pytest.fixture
def cycle_stub(store):
    running = start_server("publisher", lambda s: register(s, store), port=0,
                           token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        yield cycle_pb2_grpc.CycleServiceStub(channel)
    finally:
        channel.close()
        running.stop(grace=0)


@pytest.mark.parametrize(("options", "field"), [
    (cycle_pb2.CycleOptions(steps=5), "options.source"),
    (cycle_pb2.CycleOptions(source="mastodon", steps=5, target=99), "options.target"),
    (cycle_pb2.CycleOptions(source="mastodon", steps=5, mode=42), "options.mode"),
    (cycle_pb2.CycleOptions(source="mastodon", steps=5, choose=7), "options.choose"),
    (cycle_pb2.CycleOptions(source="mastodon", steps=5, choose=publisher_pb2.CHOOSE_MODE_MANUAL),
     "options.hashtag"),
])
def test_run_cycle_refuses_bad_options_as_invalid_argument(cycle_stub, options, field):
    with pytest.raises(grpc.RpcError) as caught:
        cycle_stub.RunCycle(cycle_pb2.RunCycleRequest(options=options), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field), caught.value.details()


def test_run_lookups_refuse_unknown_and_malformed_ids(cycle_stub):
    with pytest.raises(grpc.RpcError) as caught:
        cycle_stub.GetRun(cycle_pb2.GetRunRequest(run_id="cycle-nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "run_id" in caught.value.details()
    for bad in ("../../etc", "", "x" * 500):
        with pytest.raises(grpc.RpcError) as caught:
            cycle_stub.CancelRun(cycle_pb2.GetRunRequest(run_id=bad), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "run_id" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        cycle_stub.ListRuns(cycle_pb2.ListRunsRequest(page_size=-1), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in caught.value.details()


def test_the_history_is_newest_first_in_stable_pages(store):
    cycles = CycleRunner(store)
    try:
        ids = [f"cycle-2026120{d}T000000000-aaaaaa" for d in range(1, 6)]
        for run_id in ids:  # five recorded runs, as earlier processes left them
            cycles.jobs.store.save(JobSnapshot(run_id, CYCLE, SUCCEEDED, "done", 1.0, 2.0, 1.0,
                                               {}, 1, {"options": {}, "trigger": "cli"}))
        seen, token = [], ""
        while True:
            page, token = cycles.page(2, token)
            seen += [s.job_id for s in page]
            if not token:
                break
        assert seen == ids[::-1]
    finally:
        cycles.shutdown()


def test_intervals_and_cron_expressions():
    assert parse_interval("1d") == 86400 and parse_interval("1h30m") == 5400
    for bad in ("", "5s", "1x", "d1", "1h 30"):
        with pytest.raises(InvalidArgument):
            parse_interval(bad)
    nine = Schedule.parse(cron="0 9 * * *")
    t = float(calendar.timegm((2026, 12, 2, 8, 0, 0)))  # 08:00 UTC
    assert nine.next_after(t) == t + 3600
    assert nine.next_after(t + 3600) == t + 3600 + 86400
    with pytest.raises(InvalidArgument):
        Schedule.parse(cron="every morning")
    with pytest.raises(InvalidArgument):
        Schedule.parse(every="1d", cron="0 9 * * *")


def test_the_schedule_beats_on_time_and_skips_beats_it_slept_through():
    clock = [1000.0]
    beats: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout=None):  # time passes at once
            clock[0] += timeout or 0.0
            return self.is_set()

    def beat():
        beats.append(clock[0])
        if len(beats) == 2:
            clock[0] += 250.0  # a beat that took 2.5 intervals: the missed ones do not pile up

    hourly = Schedule(interval_s=100.0)
    run_schedule(hourly, beat, stop=Stop(), now=lambda: clock[0], beats=4, at_once=True)
    assert beats == [1000.0, 1100.0, 1400.0, 1500.0]


def test_the_publisher_runs_without_torch():
    """The publisher's image installs no torch: its server, the cycle checks and the CLI the
    cycle CronJob runs import without it (the model's own size checks are the trainer's)."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision', 'ts', 'cv2', 'onnxruntime'):\n"
        "            raise ImportError(name + ' is not in the publisher image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import services.publisher.server\n"
        "from socialgan.cycles import check_cycle_options\n"
        "from socialgan.pipeline import PipelineOptions\n"
        "check_cycle_options(PipelineOptions(hashtag='', source='mastodon', steps=5,\n"
        "                                    choose='trending'))\n"
        "from socialgan.cli import build_parser\n"
        "build_parser().parse_args(['cycle', '--remote', '--source', 'mastodon'])\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_every_cycle_rpc_needs_the_token(store):
    running = start_server("publisher", lambda s: register(s, store), port=0,
                           token=TEST_TOKEN)
    calls = {"RunCycle": cycle_pb2.RunCycleRequest(), "GetRun": cycle_pb2.GetRunRequest(),
             "ListRuns": cycle_pb2.ListRunsRequest(), "CancelRun": cycle_pb2.GetRunRequest()}
    try:
        for token in (None, "wrong-token"):
            channel = open_channel(f"127.0.0.1:{running.port}", token)
            stub = cycle_pb2_grpc.CycleServiceStub(channel)
            for name, request in calls.items():
                with pytest.raises(grpc.RpcError) as caught:
                    getattr(stub, name)(request, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, token)
            with pytest.raises(grpc.RpcError) as caught:
                next(stub.WatchRun(cycle_pb2.GetRunRequest(run_id="x"), timeout=10))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            channel.close()
    finally:
        running.stop(grace=0)


def test_the_dashboard_shows_the_votes_that_chose_a_hashtag(store, monkeypatch):
    """The cycle page's "how the hashtag was chosen": the counts of a real tally, voters
    counted (never named on the page), and why replies were ignored."""
    from socialgan.audience.choose import choose_hashtag
    from socialgan.dashboard.cycles import evidence_view
    from tests.test_audience_choose import HOUR, T0, our_post, thread

    for name in ("AUDIENCE_MIN_VOTES", "AUDIENCE_COOLDOWN", "AUDIENCE_BLOCKED_ACCOUNTS"):
        monkeypatch.delenv(name, raising=False)
    our_post(store)
    choice = choose_hashtag(store, "vote", replies=thread(), now=T0 + 25 * HOUR)
    view = evidence_view(store, choice.choice_id)
    assert (view["winner"], view["method"], view["reason"]) == ("cats", "vote",
                                                                "chosen by 3 votes")
    # Nobody blocked here: the spammer's #dogs counts too, and the tie goes to the tag whose
    # first vote came earlier (cats).
    assert [(v["hashtag"], v["votes"], v["voters"]) for v in view["votes"]] == [
        ("cats", 3, 3), ("dogs", 3, 3)]
    assert view["counted_voters"] == 6 and view["ignored_replies"]["own_account"] == 1
    assert evidence_view(store, "") is None and evidence_view(store, "choice-none") is None
    with pytest.raises(InvalidArgument):
        evidence_view(store, "../../etc/passwd")

"""The CLI's cycle commands: `socialgan cycle`, `socialgan history`, `socialgan schedule`.

A cycle is a job of the publisher (CycleService): the CLI asks for one and follows it.
Without --remote, these commands start the local stack in --workdir first, as `run` does;
its scraper reads folder: and zip: sources under SCRAPER_IMPORT_DIR (the local stack's
default: ./data), since a cycle runs on the server side, where no client uploads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from socialgan.cycles.client import (
    follow_run,
    get_post,
    get_run,
    list_runs,
    run_line,
    run_report,
    start_cycle,
    state_word,
)
from socialgan.cycles.schedule import Schedule, run_schedule
from socialgan.errors import InvalidArgument
from socialgan.pipeline import PipelineOptions
from socialgan.supervisor import Endpoints, LocalStack
from socialgan.v1 import cycle_pb2

AddArgs = Callable[..., None]


@contextlib.contextmanager
def endpoints_of(args, page: str = "/", keep_up: bool = False) -> Iterator[Endpoints]:
    """The services a command talks to: at *_SERVICE_ADDR with --remote, else a local stack
    in --workdir (with the dashboard when --dashboard-port is given: its page is printed),
    kept up after the command's work until Ctrl-C when keep_up."""
    if args.remote:
        yield Endpoints.from_env()
        return
    print(f"starting the local stack in {args.workdir}/ (logs in {args.workdir}/logs)",
          file=sys.stderr)
    with LocalStack(workdir=args.workdir.resolve(),
                    dashboard_port=args.dashboard_port) as endpoints:
        if endpoints.dashboard:
            print(f"dashboard: {endpoints.dashboard}{page} (sign in with SOCIALGAN_API_TOKEN="
                  f"{endpoints.token}; it stops with the command unless --keep-up)",
                  file=sys.stderr, flush=True)
        yield endpoints
        if keep_up:
            wait_for_stop("the local stack and its dashboard are up")


def cycle_options(args, options: Callable[[argparse.Namespace], PipelineOptions]
                  ) -> PipelineOptions:
    """--hashtag is a cycle by hand; --choose picks one (default vote-else-trending)."""
    if args.hashtag and args.choose:
        raise InvalidArgument("--hashtag", "give --hashtag (chosen by hand) or --choose, "
                              "not both")
    opts = options(args)
    return dataclasses.replace(
        opts, choose="manual" if args.hashtag else (args.choose or "vote-else-trending"))


def _rpc_error(exc: grpc.RpcError) -> int:
    print(f"socialgan: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 1


def _print_result(endpoints: Endpoints, run: cycle_pb2.Run) -> int:
    for line in run_report(run):
        print(line)
    if run.post_id:
        print(f"caption:    {get_post(endpoints, run.post_id).caption}")
    ok = (cycle_pb2.RUN_STATE_SUCCEEDED, cycle_pb2.RUN_STATE_SKIPPED, cycle_pb2.RUN_STATE_RUNNING,
          cycle_pb2.RUN_STATE_QUEUED)
    return 0 if run.state in ok else 1


def _cycle(args, options) -> int:
    opts = cycle_options(args, options)
    if args.no_wait and not args.remote:
        raise InvalidArgument("--no-wait", "needs --remote: the local stack stops with the "
                              "command")
    with endpoints_of(args, "/cycles", keep_up=args.keep_up) as endpoints:
        try:
            run = start_cycle(endpoints, opts, trigger="cli")
            if run.state == cycle_pb2.RUN_STATE_SKIPPED:
                print(f"skipped: cycle {run.skipped_because} is running", file=sys.stderr)
            elif not args.no_wait:
                run = follow_run(endpoints, run, quiet=args.quiet)
            rc = _print_result(endpoints, run)
        except grpc.RpcError as exc:
            return _rpc_error(exc)
    return rc


def _history(args) -> int:
    endpoints = Endpoints.from_env()
    try:
        if args.run_id:
            run = get_run(endpoints, args.run_id)
            for line in run_report(run):
                print(line)
            return 0
        page = list_runs(endpoints, args.page_size, args.page_token)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    for run in page.runs:
        print(run_line(run))
    if page.next_page_token:
        print(f"more: --page-token {page.next_page_token}")
    return 0


def _schedule(args, options) -> int:
    schedule = Schedule.parse(args.every or "", args.cron or "")
    opts = cycle_options(args, options)
    stop = threading.Event()
    before = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return _beat_until_stopped(args, schedule, opts, stop)
    finally:
        signal.signal(signal.SIGTERM, before)


def _beat_until_stopped(args, schedule: Schedule, opts: PipelineOptions,
                        stop: threading.Event) -> int:
    with endpoints_of(args, "/cycles") as endpoints:
        def beat() -> None:
            try:
                run = start_cycle(endpoints, opts, trigger="schedule")
            except grpc.RpcError as exc:  # the publisher down for a moment: the next beat
                print(f"{_now()} cycle not started: {exc.code().name}: {exc.details()}",
                      flush=True)
                return
            why = f" (cycle {run.skipped_because} is running)" if run.skipped_because else ""
            print(f"{_now()} {run.run_id}: {state_word(run.state)}{why}", flush=True)

        print(f"scheduled: {schedule.describe()}; Ctrl-C or SIGTERM stops", file=sys.stderr)
        try:
            run_schedule(schedule, beat, stop=stop, at_once=args.now, beats=args.beats)
        except KeyboardInterrupt:
            pass
    return 0


def wait_for_stop(what: str) -> None:
    """Until Ctrl-C or SIGTERM (the local stack then stops on its way out)."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"{what}; Ctrl-C or SIGTERM stops them", file=sys.stderr, flush=True)
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def add_cycle_commands(sub, add_pipeline_args: AddArgs,
                       options: Callable[[argparse.Namespace], PipelineOptions]) -> None:
    cyc = sub.add_parser(
        "cycle", help="one whole cycle as a job of the publisher: choose the hashtag (default "
        "vote-else-trending), scrape, filter, train, generate, publish; kept in the history")
    add_pipeline_args(cyc, hashtag=None, source=None, steps=300)
    cyc.add_argument("--no-wait", action="store_true",
                     help="with --remote: print the run's id and return")
    cyc.set_defaults(func=lambda args: _cycle(args, options))

    his = sub.add_parser("history", help="the cycles run so far, newest first, or one run "
                         "stage by stage (PUBLISHER_SERVICE_ADDR, SOCIALGAN_API_TOKEN)")
    his.add_argument("run_id", nargs="?", help="show this run's stages")
    his.add_argument("--page-size", type=int, default=20)
    his.add_argument("--page-token", default="")
    his.set_defaults(func=_history)

    sch = sub.add_parser("schedule", help="start a cycle at every beat of a schedule; a beat "
                         "while a cycle runs is recorded as skipped")
    when = sch.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", help="an interval: 1d, 12h, 90m, 1h30m")
    when.add_argument("--cron", help="a cron expression in UTC, e.g. '0 9 * * *'")
    sch.add_argument("--now", action="store_true", help="the first beat at once")
    sch.add_argument("--beats", type=int, help="stop after this many beats")
    add_pipeline_args(sch, hashtag=None, source=None, steps=300)
    sch.set_defaults(func=lambda args: _schedule(args, options))


"""`socialgan`: the command line. It only parses arguments and calls the library.

    socialgan demo                      the whole pipeline on the bundled Twemoji set
    socialgan run --hashtag H --source folder:PATH [--steps N --resolution N --aspect 1|3 ...]
    socialgan up                        start the local stack and keep it running
    socialgan generate --model-id RUN   one grid from a trained model
    socialgan metrics --run RUN         metrics of a run's export or checkpoint (storage from env)
    socialgan filter --hashtag H        filter scraped images into a dataset, print the report
    socialgan choose --mode MODE        choose the next hashtag (manual, trending, vote,
                                        vote-else-trending) and record its evidence
    socialgan env                       the configuration variables, as a table
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from socialgan import settings
from socialgan.audience.choose import MODES as CHOICE_MODES
from socialgan.cli_cycles import add_cycle_commands, endpoints_of
from socialgan.errors import InvalidArgument, SocialGanError
from socialgan.model_names import DEFAULT_MODEL
from socialgan.pipeline import (
    CAPTION_MODES,
    MODES,
    TARGETS,
    PipelineError,
    PipelineOptions,
    check_options,
    generate,
    run_pipeline,
)
from socialgan.serving.output_size import PRESETS
from socialgan.serving.upscale import UPSCALERS
from socialgan.supervisor import SERVICES, Endpoints, LocalStack

DEMO_IMAGES = Path("data/twemoji")
DEFAULT_WORKDIR = Path("var")
DEMO_OPTIONS = (("ngf", "16"), ("ndf", "16"), ("batch_size", "32"))
# The demo's grid as a phone shows it: 1080x1080, by the Real-ESRGAN model for flat art
# (emoji are flat art; benchmarks/RESULTS.md, issue 15: crisp edges, 0.6 s a grid).
DEMO_SIZE, DEMO_UPSCALER = "instagram", "realesrgan-anime"
# 32 px: ~3.5x the steps of 64 px in the demo's 90 s, and a better grid once upscaled (SWD at
# 64 px 44 vs 69-76 on the Twemoji set; benchmarks/demo_grid.py, issue 15).
DEMO_RESOLUTION = 32


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port (0-65535)")
    return int(text)


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _add_pipeline_args(p: argparse.ArgumentParser, *, hashtag: str | None,
                       source: str | None, steps: int, seconds: float = 0.0,
                       options: tuple[tuple[str, str], ...] = (),
                       dashboard_port: int | None = None, size: str = "",
                       upscaler: str = "", resolution: int = 64) -> None:
    p.add_argument("--hashtag", default=hashtag,
                   help="the hashtag (required unless --choose picks it)")
    p.add_argument("--choose", choices=["trending", "vote", "vote-else-trending"],
                   help="let the publisher choose the hashtag first (ChooseHashtag: the "
                   "audience's replies to this round's posts, or what is trending); the "
                   "caption says how it was chosen")
    p.add_argument("--source", default=source, required=source is None,
                   help="source spec: folder:PATH, zip:PATH or urls:FILE (sent from this "
                   "machine when the scraper may not read the path itself)")
    p.add_argument("--limit", type=int, help="most images to scrape")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"architecture (default {DEFAULT_MODEL}; the tutorial's is dcgan)")
    p.add_argument("--resolution", type=int, default=resolution,
                   help=f"the model's image height in pixels (default {resolution}; "
                   "dcgan-diffaug: 32, 64, 128 or 256)")
    p.add_argument("--aspect", type=int, default=1, metavar="1|3",
                   help="width:height of the images: 1 (square, default) or 3 (filters to "
                   "3:1, trains a 3:1 model and ends with 1500x500 banners)")
    p.add_argument("--size", choices=PRESETS, default=size or None,
                   help="the final grid's size (default: instagram for a social network, "
                   "banner for --aspect 3, the model's own for the gallery)"
                   + (f"; here {size}" if size else ""))
    p.add_argument("--upscaler", type=_upscaler_name, default=upscaler or None,
                   metavar="|".join([*UPSCALERS, "own:ID"]),
                   help="what resizes the final grid (default: the model's, else lanczos)"
                   + (f"; here {upscaler}" if upscaler else ""))
    p.add_argument("--steps", type=int, default=steps, help="training steps (0: no limit)")
    p.add_argument("--seconds", type=float, default=seconds,
                   help="training time limit (0: none)")
    p.add_argument("--option", type=_key_value, action="append", default=list(options),
                   metavar="KEY=VALUE", help="model/training option, e.g. ngf=32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", choices=sorted(TARGETS), default="gallery")
    p.add_argument("--mode", choices=list(MODES), default="single",
                   help="single: the grid as one image; tiles: its images in one post; "
                   "carousel (Instagram); profile-grid (Instagram: nine posts forming a 3x3); "
                   "banner (X: the profile's cover picture)")
    p.add_argument("--visibility", default="", choices=["", "public", "unlisted", "private",
                                                         "direct"],
                   help="Mastodon's (default: the publisher's MASTODON_VISIBILITY)")
    p.add_argument("--caption", choices=CAPTION_MODES, default="template",
                   help="generated: a first line written by a caption model trained on the "
                   "dataset's own captions (the run's facts follow it)")
    p.add_argument("--caption-seconds", type=float, default=60.0,
                   help="training budget of the caption model (--caption generated)")
    p.add_argument("--dry-run", action="store_true",
                   help="render exactly what would be sent into posts/ and the gallery page; "
                   "send nothing")
    p.add_argument("--remote", action="store_true",
                   help="use running services at *_SERVICE_ADDR instead of a local stack")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="local stack: storage, model store and logs (default: var/)")
    p.add_argument("--dashboard-port", type=_port, default=dashboard_port, metavar="PORT",
                   help="local stack: also run the web dashboard on this port (0: a free "
                   "one) and print its address" + (" (default: a free one)"
                                                   if dashboard_port is not None else ""))
    p.add_argument("--keep-up", action="store_true",
                   help="local stack: keep it (and the dashboard) up after the run, until "
                   "Ctrl-C")
    p.add_argument("-q", "--quiet", action="store_true")


def _options(args) -> PipelineOptions:
    return PipelineOptions(
        hashtag=args.hashtag or "", source=args.source, limit=args.limit, model=args.model,
        resolution=args.resolution, aspect=args.aspect, steps=args.steps,
        seconds=args.seconds, options=dict(args.option), seed=args.seed,
        target=args.target, mode=args.mode, visibility=args.visibility, dry_run=args.dry_run,
        caption=args.caption, caption_seconds=args.caption_seconds, choose=args.choose or "",
        size=args.size or "", upscaler=args.upscaler or "")


def _run(args) -> int:
    if not args.hashtag and not args.choose:
        print("socialgan: --hashtag: is required (or --choose to let the audience or the "
              "trends pick it)", file=sys.stderr)
        return 2
    opts = _options(args)
    try:  # before starting anything: a size the model cannot make fails in a second
        check_options(opts)
    except InvalidArgument as exc:
        print(f"socialgan: --{exc}", file=sys.stderr)
        return 2
    with endpoints_of(args, keep_up=args.keep_up) as endpoints:
        result = run_pipeline(endpoints, opts, quiet=args.quiet)
        _print_run(args, opts, result)
        if endpoints.dashboard:
            print(f"run page: {endpoints.dashboard}/runs/{result.training.run_id}",
                  flush=True)
    return 0


def _print_run(args, opts: PipelineOptions, result) -> None:
    print(f"grid:    {result.grid.grid_key}")
    if opts.aspect == 3:  # the banners themselves, ready to upload as cover pictures
        folder = args.workdir / "banners"
        folder.mkdir(parents=True, exist_ok=True)
        for i, banner in enumerate(result.grid.images):
            path = folder / f"{result.training.run_id}-{result.grid.metadata.seed}-{i}.png"
            path.write_bytes(banner)
            print(f"banner:  {path}")
    print(f"post:    {result.post.url}")
    print(f"caption: {result.post.caption}", flush=True)


def _upscaler_name(text: str) -> str:
    if text in UPSCALERS or (text.startswith("own:") and len(text) > 4):
        return text
    raise argparse.ArgumentTypeError(f"{text[:40]!r} is not one of {', '.join(UPSCALERS)} "
                                     "or own:<model_id>")


def _demo(args) -> int:
    if not args.remote and not Path(args.source.split(":", 1)[1]).exists():
        print(f"{args.source}: no demo images; run scripts/fetch_demo_images.sh (make demo "
              "does)", file=sys.stderr)
        return 2
    return _run(args)


def _up(args) -> int:
    import signal

    # An exported STORAGE_DIR / SOCIALGAN_API_TOKEN is the user's choice: keep it.
    storage_dir = settings.get("STORAGE_DIR") if "STORAGE_DIR" in os.environ else None
    exported_token = settings.get("SOCIALGAN_API_TOKEN") or ""
    stack = LocalStack(workdir=args.workdir.resolve(), fixed_ports=True,
                       storage_dir=Path(storage_dir).resolve() if storage_dir else None,
                       ports={name: getattr(args, f"{name}_port") for name in SERVICES
                              if getattr(args, f"{name}_port") is not None},
                       dashboard_port=args.dashboard_port,
                       **({"token": exported_token} if exported_token else {}))
    # SIGTERM stops the stack as Ctrl-C does (the children run in sessions of their own
    # and would outlive us otherwise), during start-up too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        endpoints = stack.start()
        # A token the user exported is theirs already: never echo it.
        print("SOCIALGAN_API_TOKEN=" + ("(as exported)" if exported_token else endpoints.token))
        for name in SERVICES:
            print(f"{name.upper()}_SERVICE_ADDR={getattr(endpoints, name)}")
        if endpoints.dashboard:
            print(f"DASHBOARD_URL={endpoints.dashboard}/")
        print("running; Ctrl-C or SIGTERM stops everything", file=sys.stderr, flush=True)
        sys.stdout.flush()
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the stop short
        stack.stop()
    return 0


def _generate(args) -> int:
    grid = generate(Endpoints.from_env(), args.model_id, seed=args.seed, count=args.count,
                    size=args.size, upscaler=args.upscaler)
    args.out.write_bytes(grid.grid)
    m = grid.metadata
    note = f"; {m.upscaler_note}" if m.upscaler_note else ""
    print(f"{args.out}: {m.count} images of {m.width}x{m.height} ({m.upscaler}{note}), "
          f"grid {m.grid_width}x{m.grid_height}, seed {m.seed}, {m.latency_ms:.0f} ms "
          f"(stored as {grid.grid_key})")
    return 0


def _metrics(args) -> int:
    import json

    from socialgan.metrics.runs import evaluate_run
    from socialgan.storage import open_store

    context = {"fid_weights": args.fid_weights} if args.fid_weights else {}
    names = tuple(n.strip() for n in args.metrics.split(",") if n.strip())
    if args.fid_weights and "fid" not in names:
        names += ("fid",)
    result = evaluate_run(open_store(), args.run, names, count=args.count, step=args.step,
                          **context)
    print(json.dumps(result, indent=2))
    return 0


def _filter(args) -> int:
    import json

    from socialgan.filtering import build_dataset
    from socialgan.filtering.report import summary_text
    from socialgan.storage import open_store

    store = open_store()
    result = build_dataset(
        store, args.hashtag, resolution=args.resolution, aspect=args.aspect,
        dataset_id=args.dataset_id, thresholds=dict(args.threshold), crop=args.crop,
        extra_stages=args.extra_stage, skip_stages=args.skip_stage, example_keys=args.example)
    print(summary_text(result["dataset_id"], result["kept"], result["dropped"],
                       result["dropped_by_reason"], result["contact_sheet_keys"]))
    if args.json:
        print(json.dumps(store.get_json(result["report_key"]), indent=2))
    return 0


def _list(args) -> int:
    import grpc

    from socialgan.listing import list_lines

    try:
        for line in list_lines(args.what, args.address, page_size=args.page_size):
            print(line)
    except grpc.RpcError as exc:
        print(f"socialgan: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    return 0


def _choose(args) -> int:
    import json

    from socialgan.audience.choose import choose_hashtag
    from socialgan.audience.types import replies_from_json, trending_from_json
    from socialgan.storage import open_store

    def read(path: Path | None, field: str):
        if path is None:
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgument(field, f"{str(path)[:200]!r} is not a readable JSON file: "
                                         f"{type(exc).__name__}") from None

    if args.remote:
        return _choose_remote(args)
    store = open_store()
    replies = read(args.replies, "--replies")
    trending = read(args.trending, "--trending")
    choice = choose_hashtag(
        store, args.mode, manual=args.hashtag or "",
        replies=replies_from_json(replies, "--replies") if replies is not None else (),
        trending=trending_from_json(trending, "--trending") if trending is not None else ())
    print(f"hashtag:    #{choice.winner}")
    print(f"reason:     {choice.reason}")
    print(f"runner-ups: {' '.join('#' + t for t in choice.runner_ups) or '(none)'}")
    print(f"evidence:   {choice.evidence_key} ({store.url(choice.evidence_key)})")
    return 0


def _choose_remote(args) -> int:
    import grpc

    from socialgan.rpc.client import open_channel
    from socialgan.rpc.convert import CHOOSE_MODE_ENUM
    from socialgan.v1 import publisher_pb2, publisher_pb2_grpc

    if args.replies or args.trending:
        raise InvalidArgument("--remote", "reads the replies and trends itself; leave out "
                              "--replies and --trending")
    channel = open_channel(settings.require("PUBLISHER_SERVICE_ADDR"),
                           settings.require("SOCIALGAN_API_TOKEN"))
    try:
        stub = publisher_pb2_grpc.PublisherServiceStub(channel)
        try:
            choice = stub.ChooseHashtag(publisher_pb2.ChooseHashtagRequest(
                mode=CHOOSE_MODE_ENUM[args.mode], hashtag=args.hashtag or ""), timeout=120)
        except grpc.RpcError as exc:
            print(f"socialgan: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    finally:
        channel.close()
    print(f"hashtag:    #{choice.hashtag}")
    print(f"reason:     {choice.reason}")
    print(f"runner-ups: {' '.join('#' + t for t in choice.runner_ups) or '(none)'}")
    print(f"evidence:   {choice.evidence_key}")
    for skipped in choice.skipped:
        print(f"skipped:    {skipped}")
    return 0


def _env(args) -> int:
    print("| variable | default | read by | meaning |\n|---|---|---|---|")
    for var in settings.ENV_VARS.values():
        default = "(required)" if var.default is None else f"`{var.default}`"
        print(f"| `{var.name}` | {default} | {', '.join(var.services)} | {var.help} |")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socialgan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the pipeline on the bundled Twemoji images")
    # Sized for a 2-core CPU: about 1.5 minutes of the default model (see benchmarks/
    # RESULTS.md, issue 5); the tutorial's ngf=64, batch 128 is for a GPU.
    _add_pipeline_args(demo, hashtag="emoji", source=f"folder:{DEMO_IMAGES}", steps=0,
                       seconds=90, options=DEMO_OPTIONS, dashboard_port=0,
                       size=DEMO_SIZE, upscaler=DEMO_UPSCALER, resolution=DEMO_RESOLUTION)
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run the pipeline for a hashtag and source")
    _add_pipeline_args(run, hashtag=None, source=None, steps=300)
    run.set_defaults(func=_run)

    up = sub.add_parser("up", help="start TorchServe and the four services on loopback "
                        "(STORAGE_DIR and SOCIALGAN_API_TOKEN from env when exported)")
    up.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    for name in SERVICES:
        up.add_argument(f"--{name}-port", type=_port, metavar="PORT",
                        help=f"{name}'s port (default {settings.DEFAULT_PORTS[name]}; 0: a "
                        "free one)")
    up.add_argument("--dashboard-port", type=_port, metavar="PORT",
                    help="also start the web dashboard on this port (e.g. 8088; 0: a free "
                    "one) and print its address")
    up.set_defaults(func=_up)

    gen = sub.add_parser("generate", help="generate a grid from a trained model")
    gen.add_argument("--model-id", required=True)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--count", type=int, default=9)
    gen.add_argument("--out", type=Path, default=Path("grid.png"))
    gen.add_argument("--size", choices=PRESETS, help="output size preset (default original)")
    gen.add_argument("--upscaler", type=_upscaler_name, metavar="|".join([*UPSCALERS, "own:ID"]),
                     help="what resizes (default: the model's, else lanczos); own:ID is our "
                     "own upscaler, the model of a sr-espcn training run")
    gen.set_defaults(func=_generate)

    met = sub.add_parser("metrics", help="compute metrics of a stored run (STORAGE_* from env)")
    met.add_argument("--run", required=True, help="run id (= model id of its export)")
    met.add_argument("--metrics", default="swd,diversity,memorisation",
                     help="comma-separated names: swd, diversity, memorisation, fid")
    met.add_argument("--count", type=int, default=512, help="generated (and real) images")
    met.add_argument("--step", type=int, help="a checkpoint's step (default: the export, "
                     "else the newest checkpoint)")
    met.add_argument("--fid-weights", default=settings.get("TRAINER_FID_WEIGHTS") or "",
                     help="Inception TorchScript file for FID (nothing is downloaded)")
    met.set_defaults(func=_metrics)

    flt = sub.add_parser("filter", help="filter a scraped hashtag into a dataset and print "
                         "its report (STORAGE_* from env)")
    flt.add_argument("--hashtag", required=True)
    flt.add_argument("--resolution", type=int, default=64)
    flt.add_argument("--aspect", choices=("square", "banner"), default="square")
    flt.add_argument("--dataset-id")
    flt.add_argument("--crop", choices=("center", "content"), default="center")
    flt.add_argument("--threshold", type=_key_value, action="append", default=[],
                     metavar="NAME=VALUE", help="a stage threshold, e.g. min_sharpness=10")
    flt.add_argument("--extra-stage", action="append", default=[], choices=("faces", "nsfw"))
    flt.add_argument("--skip-stage", action="append", default=[])
    flt.add_argument("--example", action="append", default=[], metavar="KEY",
                     help="object key of an example image of the hashtag")
    flt.add_argument("--json", action="store_true", help="also print the whole report")
    flt.set_defaults(func=_filter)

    lst = sub.add_parser("list", help="list the recorded scrapes, datasets, training runs or posts "
                         "of running services (*_SERVICE_ADDR, SOCIALGAN_API_TOKEN from env)")
    lst.add_argument("what", choices=("scrapes", "datasets", "runs", "posts"))
    lst.add_argument("--address", help="host:port of the service (default: from env)")
    lst.add_argument("--page-size", type=int, default=100)
    lst.set_defaults(func=_list)

    cho = sub.add_parser("choose", help="choose the next hashtag and record why under "
                         "runs/choices/ (STORAGE_* and AUDIENCE_* from env)")
    cho.add_argument("--mode", required=True, choices=CHOICE_MODES)
    cho.add_argument("--hashtag", help="the hashtag (--mode manual)")
    cho.add_argument("--replies", type=Path, metavar="FILE",
                     help="JSON list of replies to this round's posts (Reply's fields)")
    cho.add_argument("--trending", type=Path, metavar="FILE",
                     help="JSON list of trending tags (TrendingTag's fields)")
    cho.add_argument("--remote", action="store_true",
                     help="ask the publisher (ChooseHashtag; PUBLISHER_SERVICE_ADDR): it reads "
                     "the replies and trends itself with its accounts")
    cho.set_defaults(func=_choose)

    add_cycle_commands(sub, _add_pipeline_args, _options)

    env = sub.add_parser("env", help="print the configuration variables")
    env.set_defaults(func=_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (PipelineError, settings.ConfigError, TimeoutError, RuntimeError,
            SocialGanError) as exc:
        print(f"socialgan: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("socialgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

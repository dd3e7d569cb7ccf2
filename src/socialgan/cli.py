"""`socialgan`: the command line. It only parses arguments and calls the library.

    socialgan demo                      the whole pipeline on the bundled Twemoji set
    socialgan run --hashtag H --source folder:PATH [--steps N ...]
    socialgan up                        start the local stack and keep it running
    socialgan generate --model-id RUN   one grid from a trained model
    socialgan env                       the configuration variables, as a table
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from socialgan import settings
from socialgan.pipeline import TARGETS, PipelineError, PipelineOptions, generate, run_pipeline
from socialgan.supervisor import Endpoints, LocalStack

DEMO_IMAGES = Path("data/twemoji")
DEFAULT_WORKDIR = Path("var")


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _add_pipeline_args(p: argparse.ArgumentParser, *, hashtag: str | None,
                       source: str | None, steps: int, seconds: float = 0.0,
                       options: tuple[tuple[str, str], ...] = ()) -> None:
    p.add_argument("--hashtag", default=hashtag, required=hashtag is None)
    p.add_argument("--source", default=source, required=source is None,
                   help="source spec: folder:PATH, zip:PATH or urls:FILE")
    p.add_argument("--limit", type=int, help="most images to scrape")
    p.add_argument("--model", default="dcgan")
    p.add_argument("--steps", type=int, default=steps, help="training steps (0: no limit)")
    p.add_argument("--seconds", type=float, default=seconds,
                   help="training time limit (0: none)")
    p.add_argument("--option", type=_key_value, action="append", default=list(options),
                   metavar="KEY=VALUE", help="model/training option, e.g. ngf=32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", choices=sorted(TARGETS), default="gallery")
    p.add_argument("--dry-run", action="store_true", help="build the post, do not publish")
    p.add_argument("--remote", action="store_true",
                   help="use running services at *_SERVICE_ADDR instead of a local stack")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="local stack: storage, model store and logs (default: var/)")
    p.add_argument("-q", "--quiet", action="store_true")


def _options(args) -> PipelineOptions:
    return PipelineOptions(
        hashtag=args.hashtag, source=args.source, limit=args.limit, model=args.model,
        steps=args.steps, seconds=args.seconds, options=dict(args.option), seed=args.seed,
        target=args.target, dry_run=args.dry_run)


def _run(args) -> int:
    opts = _options(args)
    if args.remote:
        result = run_pipeline(Endpoints.from_env(), opts, quiet=args.quiet)
    else:
        print(f"starting the local stack in {args.workdir}/ (logs in {args.workdir}/logs)",
              file=sys.stderr)
        with LocalStack(workdir=args.workdir.resolve()) as endpoints:
            result = run_pipeline(endpoints, opts, quiet=args.quiet)
    print(f"grid:    {result.grid.grid_key}")
    print(f"post:    {result.post.url}")
    print(f"caption: {result.post.caption}")
    return 0


def _demo(args) -> int:
    if not args.remote and not Path(args.source.split(":", 1)[1]).exists():
        print(f"{args.source}: no demo images; run scripts/fetch_demo_images.sh (make demo "
              "does)", file=sys.stderr)
        return 2
    return _run(args)


def _up(args) -> int:
    stack = LocalStack(workdir=args.workdir.resolve(), fixed_ports=True)
    endpoints = stack.start()
    print(f"SOCIALGAN_API_TOKEN={endpoints.token}")
    for name in ("scraper", "trainer", "generator", "publisher"):
        print(f"{name.upper()}_SERVICE_ADDR={getattr(endpoints, name)}")
    print("running; Ctrl-C stops everything", file=sys.stderr)
    try:
        import signal

        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


def _generate(args) -> int:
    grid = generate(Endpoints.from_env(), args.model_id, seed=args.seed, count=args.count)
    args.out.write_bytes(grid.grid)
    m = grid.metadata
    print(f"{args.out}: {m.count} images, seed {m.seed}, {m.latency_ms:.0f} ms "
          f"(stored as {grid.grid_key})")
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
    # Sized for a 2-core CPU: about 1.5 minutes of training, enough to leave the grey
    # phase DCGAN starts in (the tutorial's ngf=64, batch 128 is for a GPU).
    _add_pipeline_args(demo, hashtag="emoji", source=f"folder:{DEMO_IMAGES}", steps=1500,
                       seconds=90, options=(("ngf", "16"), ("ndf", "16"), ("batch_size", "32")))
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run the pipeline for a hashtag and source")
    _add_pipeline_args(run, hashtag=None, source=None, steps=300)
    run.set_defaults(func=_run)

    up = sub.add_parser("up", help="start TorchServe and the four services on loopback")
    up.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    up.set_defaults(func=_up)

    gen = sub.add_parser("generate", help="generate a grid from a trained model")
    gen.add_argument("--model-id", required=True)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--count", type=int, default=9)
    gen.add_argument("--out", type=Path, default=Path("grid.png"))
    gen.set_defaults(func=_generate)

    env = sub.add_parser("env", help="print the configuration variables")
    env.set_defaults(func=_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (PipelineError, settings.ConfigError, TimeoutError, RuntimeError) as exc:
        print(f"socialgan: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("socialgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

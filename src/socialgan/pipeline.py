"""The end-to-end job as a client of the four services: hashtag in, published grid out.

    StartScrape (or UploadImages)/WatchScrape -> FilterDataset -> StartTraining/WatchTraining
        -> GenerateGrid -> Publish

Everything goes over gRPC, so the same code drives the local stack, docker-compose
and Kubernetes; only the Endpoints differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from tqdm import tqdm

from socialgan.errors import InvalidArgument, quote
from socialgan.filtering.dataset import image_size
from socialgan.filtering.report import summary_text
from socialgan.rpc.client import open_channel
from socialgan.rpc.convert import CHOOSE_MODE_ENUM, SIZE_PRESET_ENUM, state_name, upscaler_fields
from socialgan.rpc.requests import MAX_REPEATED, MAX_STRING_CHARS
from socialgan.scraping.sources import UrlListSource, local_spec_path, url_list_spec_path
from socialgan.scraping.upload import upload_parts
from socialgan.serving.output_size import BANNER, PRESETS
from socialgan.serving.upscale import check_upscaler
from socialgan.supervisor import Endpoints
from socialgan.text import CAPTION_MODEL
from socialgan.v1 import (
    common_pb2,
    generator_pb2,
    generator_pb2_grpc,
    publisher_pb2,
    publisher_pb2_grpc,
    scraper_pb2,
    scraper_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

CAPTION_MODES = ("template", "generated")  # PipelineOptions.caption

# Deadlines per call: unary calls are quick; streams last as long as their job.
QUICK = 30.0
GENERATE = 300.0  # the first grid of a model includes registering it with TorchServe
CHOOSE = 300.0  # reading every reply of a round's posts, with the networks' rate limits
LONG = 24 * 3600.0


class PipelineError(RuntimeError):
    """A stage ended without success; the message says which and why."""


@dataclass
class PipelineOptions:
    hashtag: str
    source: str  # a source spec, e.g. "folder:data/twemoji"
    limit: int | None = None
    resolution: int = 64  # the model's height in pixels
    aspect: int = 1  # width / height: 1 (square posts) or 3 (1500x500 banners at the end)
    model: str = "dcgan"
    steps: int = 300
    seconds: float = 0.0
    options: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    grid_seed: int | None = None
    target: str = "gallery"
    mode: str = "single"  # single, tiles, carousel, profile-grid, banner (publishing.MODES)
    # template: the caption from the run's facts; generated: a line written by a caption
    # model trained (caption_seconds) on the dataset's own captions, then the facts.
    caption: str = "template"
    caption_seconds: float = 60.0
    # trending, vote or vote-else-trending: the publisher chooses the hashtag first.
    choose: str = ""
    visibility: str = ""  # Mastodon's; "" the publisher's MASTODON_VISIBILITY
    dry_run: bool = False
    # The final grid's size preset ("": by target, grid_size) and what resizes it ("": the
    # model card's upscaler, else the generator's default).
    size: str = ""
    upscaler: str = ""


@dataclass
class PipelineResult:
    scrape: scraper_pb2.ScrapeJob
    dataset: trainer_pb2.Dataset
    training: trainer_pb2.TrainingJob
    grid: generator_pb2.GenerateGridResponse
    post: publisher_pb2.Post


TARGETS = {
    "gallery": publisher_pb2.PUBLISH_TARGET_GALLERY,
    "instagram": publisher_pb2.PUBLISH_TARGET_INSTAGRAM,
    "mastodon": publisher_pb2.PUBLISH_TARGET_MASTODON,
    "bluesky": publisher_pb2.PUBLISH_TARGET_BLUESKY,
    "x": publisher_pb2.PUBLISH_TARGET_X,
}
MODES = {
    "single": publisher_pb2.PUBLISH_MODE_SINGLE,
    "tiles": publisher_pb2.PUBLISH_MODE_TILES,
    "carousel": publisher_pb2.PUBLISH_MODE_CAROUSEL,
    "profile-grid": publisher_pb2.PUBLISH_MODE_PROFILE_GRID,
    "banner": publisher_pb2.PUBLISH_MODE_BANNER,
}


def grid_size(opts: PipelineOptions) -> str | None:
    """The GenerateGrid size preset a run asks for: banners for a banner run; for a social
    network, 1080 px (the whole grid for one image, each tile for posts made of tiles); the
    model's own size for the gallery; the run's own size when it names one."""
    if opts.size:
        return opts.size
    if opts.aspect == 3:
        return BANNER
    if opts.target == "gallery":
        return None
    return "instagram" if opts.mode == "single" else "instagram-tiles"


# aspect -> (FilterDataset's Aspect, GenerateGrid's size preset, count, columns of the
# final grid). A banner run ends with three 1500x500 banners stacked in one column: each is
# a cover picture on its own (GenerateGridResponse.images), and the stored grid that
# Publish posts shows the three together.
ASPECTS = {1: (common_pb2.ASPECT_SQUARE, None, 9, None),
           3: (common_pb2.ASPECT_BANNER, BANNER, 3, 1)}


def check_options(opts: PipelineOptions, *, model_sizes: bool = True) -> None:
    """InvalidArgument naming aspect or resolution when the run could not train (checked
    before the scrape, as the trainer would check it after the filter). model_sizes: also
    the sizes the model's architecture makes (needs torch; the publisher, which runs cycles
    without it, leaves that to the trainer's StartTraining)."""
    if opts.aspect not in ASPECTS:
        raise InvalidArgument("aspect", f"{str(opts.aspect)[:20]} is not 1 (square) or 3 "
                              "(3:1 banners)")
    image_size(opts.resolution, "banner" if opts.aspect == 3 else "square")  # the filter's range
    if opts.size and opts.size not in PRESETS:
        raise InvalidArgument("size", f"{opts.size[:40]!r} is not one of {', '.join(PRESETS)}")
    if opts.upscaler:
        check_upscaler(opts.upscaler)
    if model_sizes:
        from socialgan.training.plan import check_image_size

        check_image_size(opts.model, opts.options, opts.resolution, opts.aspect)


def _bar(desc: str, total: int | None, quiet: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="img" if "train" not in desc else "step",
                disable=quiet, file=sys.stderr, dynamic_ncols=True, leave=True)


def _require_success(stage: str, status: common_pb2.JobStatus) -> None:
    if status.state != common_pb2.JOB_STATE_SUCCEEDED:
        raise PipelineError(f"{stage} {status.job_id} ended {state_name(status.state)}: "
                            f"{status.message}")


@dataclass
class Follow:
    """How a caller follows a stage's job: the id of one started before (a cycle resuming
    after a restart of its service), and hooks for a new job's id and for progress."""

    job_id: str = ""
    on_start: Callable[[str], None] = lambda job_id: None
    # May raise to stop following (a cancelled cycle); cancel_on tells whether that also
    # cancels the service's job (a Ctrl-C does; a cycle's service shutting down does not:
    # the job goes on, and the resumed cycle follows it again).
    on_progress: Callable[[float, str], None] = lambda fraction, message: None
    cancel_on: Callable[[BaseException], bool] = lambda exc: isinstance(exc, KeyboardInterrupt)

    def started(self, job_id: str) -> None:
        self.job_id = job_id
        self.on_start(job_id)

    def progress(self, fraction: float, message: str) -> None:
        self.on_progress(fraction, message)

    @contextlib.contextmanager
    def cancels(self, cancel: Callable[[], object]) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            if self.cancel_on(exc):
                with contextlib.suppress(grpc.RpcError):
                    cancel()
            raise


def _sayer(quiet: bool) -> Callable[[str], None]:
    return (lambda *_: None) if quiet else (lambda msg: print(msg, file=sys.stderr))


# How a service answers a folder:/zip: path it may not or cannot read: outside its import
# root or none set (PERMISSION_DENIED / FAILED_PRECONDITION), not on its disk (NOT_FOUND).
_NOT_READABLE_THERE = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION,
                       grpc.StatusCode.NOT_FOUND)


def _on_this_machine(kind: str, path: str) -> bool:
    here = Path(path).expanduser()
    return here.is_file() if kind == "zip" else here.is_dir()


def _upload_requests(kind: str, path: str, opts: PipelineOptions,
                     say: Callable[[str], None]) -> Iterator[scraper_pb2.UploadImagesRequest]:
    start = scraper_pb2.UploadStart(hashtag=opts.hashtag, label=Path(path).name)
    if opts.limit:
        start.limit = opts.limit
    yield scraper_pb2.UploadImagesRequest(start=start)
    def skipped(name: str, why: str) -> None:
        say(f"not sent: {quote(name)} ({why})")

    for part, value in upload_parts(kind, path, skipped):
        if part == "file":
            yield scraper_pb2.UploadImagesRequest(file=scraper_pb2.UploadFile(name=str(value)))
        else:
            yield scraper_pb2.UploadImagesRequest(chunk=bytes(value))


def start_scrape(stub: scraper_pb2_grpc.ScraperServiceStub, opts: PipelineOptions,
                 say: Callable[[str], None],
                 upload_from_here: bool = True) -> scraper_pb2.ScrapeJob:
    """StartScrape; a folder: or zip: path the service may not or cannot read but this
    machine has is uploaded from here instead (UploadImages), through the same checks.
    upload_from_here=False (a server-side cycle: the path is a request's, not the user's
    own machine's): the service's refusal stands."""
    request = scraper_pb2.StartScrapeRequest(
        source=scraper_pb2.SourceSpec(spec=opts.source), hashtag=opts.hashtag)
    if opts.limit:
        request.limit = opts.limit
    try:
        return stub.StartScrape(request, timeout=QUICK)
    except grpc.RpcError as exc:
        if (not upload_from_here or exc.code() not in _NOT_READABLE_THERE
                or not (exc.details() or "").startswith("source")):
            raise
        local, listing = local_spec_path(opts.source), url_list_spec_path(opts.source)
        if local is not None and _on_this_machine(*local):
            say(f"the scraper cannot read {local[1]} ({exc.code().name}); sending it from here")
            return stub.UploadImages(_upload_requests(*local, opts, say), timeout=LONG)
        if listing is None or not Path(listing).expanduser().is_file():
            raise
        say(f"the scraper cannot read {listing} ({exc.code().name}); sending its URLs")
    request.source.CopyFrom(scraper_pb2.SourceSpec(
        url_list=scraper_pb2.UrlListSource(urls=_inline_urls(listing))))
    return stub.StartScrape(request, timeout=QUICK)


def _inline_urls(listing: str) -> list[str]:
    """A URL list file on this machine as the inline URLs one request may carry."""
    usable = (item.location for item in UrlListSource(path=listing).items("")
              if len(item.location) <= MAX_STRING_CHARS and not item.extra)
    urls = list(itertools.islice(usable, MAX_REPEATED + 1))  # read no further than needed
    if len(urls) > MAX_REPEATED:
        raise PipelineError(f"{listing} holds more URLs than one request carries "
                            f"({MAX_REPEATED}): put it under the scraper's SCRAPER_IMPORT_DIR")
    return urls


def scrape(endpoints: Endpoints, opts: PipelineOptions, quiet=False, *,
           follow: Follow | None = None, upload_from_here: bool = True) -> scraper_pb2.ScrapeJob:
    """Start the scrape (or, follow.job_id set, watch the one started before) until it ends."""
    follow = follow or Follow()
    stub = scraper_pb2_grpc.ScraperServiceStub(open_channel(endpoints.scraper, endpoints.token))
    job_id = follow.job_id
    if not job_id:
        job_id = start_scrape(stub, opts, _sayer(quiet), upload_from_here).status.job_id
        follow.started(job_id)
    watch = stub.WatchScrape(scraper_pb2.WatchScrapeRequest(job_id=job_id), timeout=LONG)
    with _bar(f"scrape #{opts.hashtag}", opts.limit, quiet) as bar, follow.cancels(
            lambda: stub.CancelScrape(scraper_pb2.CancelScrapeRequest(job_id=job_id),
                                      timeout=QUICK)):
        for job in watch:  # noqa: B020 - the last snapshot is the result
            follow.progress(job.status.fraction_done, f"scraped {job.counts.new} new images")
            c = job.counts
            # A limit is counted in stored images; without one the total is what the source
            # has yielded so far (it grows as pages arrive).
            bar.total = opts.limit or max(c.found, 1)
            bar.n = c.new + c.duplicates if opts.limit else c.found
            bar.set_postfix({"new": c.new, "dup": c.duplicates, "failed": c.failed,
                             "seen": c.skipped, "MB": f"{c.bytes / 1e6:.1f}",
                             "img/s": f"{c.images_per_second:.0f}"}, refresh=False)
            bar.refresh()
    _require_success("scrape", job.status)
    return job


def scrape_summary(job: scraper_pb2.ScrapeJob) -> str:
    """One line for the end of a scrape: what was stored, skipped and why anything failed."""
    c = job.counts
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(c.failed_by_reason.items()))
    return (f"scraped #{job.hashtag} from {job.source}: {c.new} new, {c.duplicates} duplicates, "
            f"{c.skipped} seen before, {c.failed} failed" + (f" ({reasons})" if reasons else "")
            + f"; {c.bytes / 1e6:.1f} MB at {c.images_per_second:.0f} images/s -> "
            f"{job.raw_prefix}")


def filter_dataset(endpoints: Endpoints, opts: PipelineOptions, quiet=False, *,
                   follow: Follow | None = None) -> trainer_pb2.Dataset:
    follow = follow or Follow()
    stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(endpoints.trainer, endpoints.token))
    request = trainer_pb2.FilterDatasetRequest(hashtag=opts.hashtag, resolution=opts.resolution,
                                               aspect=ASPECTS[opts.aspect][0])
    dataset = None
    with _bar("filter", None, quiet) as bar:
        for progress in stub.FilterDataset(request, timeout=LONG):
            bar.total, bar.n = progress.total, progress.processed
            bar.set_postfix(kept=progress.kept, refresh=False)
            bar.refresh()
            follow.progress(progress.processed / max(progress.total, 1),
                            f"filtered {progress.processed} of {progress.total} images")
            if progress.HasField("dataset"):
                dataset = progress.dataset
    if dataset is None:
        raise PipelineError("filter ended without a dataset")
    return dataset


def train(endpoints: Endpoints, opts: PipelineOptions, dataset_id: str,
          quiet=False, *, caption_model: bool = False,
          follow: Follow | None = None) -> trainer_pb2.TrainingJob:
    """The run's GAN, or (caption_model) the caption language model on the same dataset's
    captions, within opts.caption_seconds; follow.job_id set: the run started before."""
    stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(endpoints.trainer, endpoints.token))
    model = CAPTION_MODEL if caption_model else opts.model
    budget = (trainer_pb2.TrainingBudget(seconds=opts.caption_seconds) if caption_model else
              trainer_pb2.TrainingBudget(steps=opts.steps, seconds=opts.seconds))
    follow = follow or Follow()
    run_id, total = follow.job_id, None
    if not run_id:
        job = stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id=dataset_id, model=model, options={} if caption_model else opts.options,
            seed=opts.seed, budget=budget), timeout=QUICK)
        run_id, total = job.run_id, job.total_steps or None
        follow.started(run_id)
    with _bar(f"train {model}", total, quiet) as bar, follow.cancels(
            lambda: stub.CancelTraining(trainer_pb2.CancelTrainingRequest(run_id=run_id),
                                        timeout=QUICK)):
        watch = stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id=run_id),
                                   timeout=LONG)
        for job in watch:  # noqa: B020 - the last snapshot is the result
            bar.total = job.total_steps or bar.total
            bar.n = job.step
            bar.set_postfix({**{k: f"{v:.3f}" for k, v in job.losses.items()},
                             "img/s": f"{job.images_per_second:.0f}"}, refresh=False)
            bar.refresh()
            follow.progress(job.status.fraction_done, f"{model}: step {job.step} of "
                            f"{job.total_steps or '?'}")
    _require_success("training", job.status)
    return job


def generate(endpoints: Endpoints, model_id: str, seed: int | None = None, count: int = 9,
             store: bool = True, size: str | None = None, upscaler: str | None = None,
             columns: int | None = None) -> generator_pb2.GenerateGridResponse:
    """size: a preset name (original, instagram, instagram-tiles, banner); upscaler: none,
    lanczos, realesrgan-x4plus, realesrgan-anime or own:<model_id> (None: the server's
    default)."""
    stub = generator_pb2_grpc.GeneratorServiceStub(
        open_channel(endpoints.generator, endpoints.token))
    request = generator_pb2.GenerateGridRequest(model_id=model_id, count=count, store=store)
    if size:
        request.size_preset = SIZE_PRESET_ENUM[size]
    if upscaler:
        request.upscaler, request.upscaler_model_id = upscaler_fields(upscaler)
    if seed is not None:
        request.seed = seed
    if columns is not None:
        request.columns = columns
    return stub.GenerateGrid(request, timeout=GENERATE)


def choose(endpoints: Endpoints, mode: str) -> publisher_pb2.HashtagChoice:
    stub = publisher_pb2_grpc.PublisherServiceStub(
        open_channel(endpoints.publisher, endpoints.token))
    return stub.ChooseHashtag(publisher_pb2.ChooseHashtagRequest(
        mode=CHOOSE_MODE_ENUM[mode]), timeout=CHOOSE)


def generate_caption(endpoints: Endpoints, model_id: str,
                     seed: int) -> generator_pb2.GenerateCaptionResponse:
    stub = generator_pb2_grpc.GeneratorServiceStub(
        open_channel(endpoints.generator, endpoints.token))
    return stub.GenerateCaption(generator_pb2.GenerateCaptionRequest(model_id=model_id,
                                                                     seed=seed), timeout=QUICK)


def idempotency_key(meta: generator_pb2.GridMetadata, mode: str) -> str:
    """The Publish key of a grid: the same model, seed, count and mode are the same post."""
    return f"{meta.model_id}-{meta.seed}-{meta.count}-{mode}"


def publish_request(grid: generator_pb2.GenerateGridResponse, target: str, dry_run: bool,
                    mode: str = "single", visibility: str = "", generated_text: str = "",
                    choice_line: str = "") -> publisher_pb2.PublishRequest:
    """The Publish of a stored grid, its caption from the grid's facts."""
    meta = grid.metadata
    return publisher_pb2.PublishRequest(
        target=TARGETS[target], grid_key=grid.grid_key, dry_run=dry_run, mode=MODES[mode],
        visibility=visibility,
        idempotency_key=idempotency_key(meta, mode),
        caption=publisher_pb2.CaptionInputs(
            hashtag=meta.hashtag, method=meta.method, metrics=dict(meta.metrics),
            model_id=meta.model_id, seed=meta.seed, generated_text=generated_text,
            choice_line=choice_line))


def publish(endpoints: Endpoints, grid: generator_pb2.GenerateGridResponse, target: str,
            dry_run: bool, mode: str = "single", visibility: str = "",
            generated_text: str = "", choice_line: str = "") -> publisher_pb2.Post:
    stub = publisher_pb2_grpc.PublisherServiceStub(
        open_channel(endpoints.publisher, endpoints.token))
    return stub.Publish(publish_request(grid, target, dry_run, mode, visibility,
                                        generated_text, choice_line), timeout=QUICK)


def written_caption(endpoints: Endpoints, opts: PipelineOptions, dataset_id: str, seed: int,
                    quiet: bool) -> str:
    """The caption model's line for the post (caption mode "generated"), or "" when the
    dataset's posts had too few captions to train on or no line passed the checks: the
    template caption then goes alone, and the run goes on."""
    say = _sayer(quiet)
    try:
        captions = train(endpoints, opts, dataset_id, quiet, caption_model=True)
        written = generate_caption(endpoints, captions.run_id, seed)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        say(f"no caption model: {exc.details()}; the template caption is used")
        return ""
    except PipelineError as exc:
        say(f"no caption model: {exc}; the template caption is used")
        return ""
    text = written.text if written.generated else ""
    say(f"caption model {captions.run_id}: "
        + (repr(text) if text else "no line passed the checks; the template is used"))
    return text


def run_pipeline(
    endpoints: Endpoints, opts: PipelineOptions, quiet: bool = False
) -> PipelineResult:
    """Run every stage in order; raises PipelineError (or grpc.RpcError with the service's
    message) at the first stage that fails, after printing what that stage did."""
    say = _sayer(quiet)
    check_options(opts)
    _, _, count, columns = ASPECTS[opts.aspect]
    size = grid_size(opts)
    try:
        choice_line = ""
        if opts.choose:
            chosen = choose(endpoints, opts.choose)
            say(f"chose #{chosen.hashtag}: {chosen.reason} (evidence {chosen.evidence_key})"
                + "".join(f"\n  left out: {s}" for s in chosen.skipped))
            opts = dataclasses.replace(opts, hashtag=chosen.hashtag)
            choice_line = chosen.caption_line
        scraped = scrape(endpoints, opts, quiet)
        say(scrape_summary(scraped))
        dataset = filter_dataset(endpoints, opts, quiet)
        say(summary_text(dataset.dataset_id, dataset.kept, dataset.dropped,
                         dict(dataset.dropped_by_reason), dict(dataset.contact_sheet_keys)))
        training = train(endpoints, opts, dataset.dataset_id, quiet)
        say(f"run {training.run_id}: {training.step} steps, metrics "
            + ", ".join(f"{k}={v:.4g}" for k, v in sorted(training.metrics.items())))
        grid = generate(endpoints, training.run_id, seed=opts.grid_seed, count=count,
                        size=size, upscaler=opts.upscaler or None, columns=columns)
        say(f"grid {grid.grid_key}: {grid.metadata.count} images of {grid.metadata.width}x"
            f"{grid.metadata.height}, seed {grid.metadata.seed}, "
            f"{grid.metadata.latency_ms:.0f} ms")
        text = written_caption(endpoints, opts, dataset.dataset_id, grid.metadata.seed,
                               quiet) if opts.caption == "generated" else ""
        post = publish(endpoints, grid, opts.target, opts.dry_run, opts.mode, opts.visibility,
                       text, choice_line)
        say(f"post {post.post_id}: {publisher_pb2.PostState.Name(post.state)} at {post.url}")
    except grpc.RpcError as exc:
        raise PipelineError(f"{exc.code().name}: {exc.details()}") from None
    return PipelineResult(scraped, dataset, training, grid, post)

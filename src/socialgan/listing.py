"""`socialgan list`: page through a service's List RPC, one line per job (client side).

    scrapes   ScraperService.ListScrapes  (SCRAPER_SERVICE_ADDR)
    datasets  TrainerService.ListDatasets (TRAINER_SERVICE_ADDR)
    runs      TrainerService.ListTrainings (TRAINER_SERVICE_ADDR)
    posts     PublisherService.ListPosts   (PUBLISHER_SERVICE_ADDR)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from socialgan import settings
from socialgan.rpc.client import open_channel
from socialgan.rpc.convert import state_name
from socialgan.v1 import (
    publisher_pb2,
    publisher_pb2_grpc,
    scraper_pb2,
    scraper_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

TIMEOUT_S = 30.0


def _scrape_line(job: scraper_pb2.ScrapeJob) -> str:
    return f"#{job.hashtag} {job.counts.new} new from {job.source}"


def _dataset_line(item: trainer_pb2.FilterJob) -> str:
    p = item.progress
    return f"#{item.hashtag} {p.kept} kept of {p.total}"


def _run_line(run: trainer_pb2.TrainingJob) -> str:
    return f"{run.model} on {run.dataset_id}, step {run.step}/{run.total_steps or '-'}"


def _post_line(post: publisher_pb2.Post) -> str:
    target = publisher_pb2.PublishTarget.Name(post.target).removeprefix("PUBLISH_TARGET_")
    state = publisher_pb2.PostState.Name(post.state).removeprefix("POST_STATE_").lower()
    return f"{post.post_id}  {state}  {target.lower()}  {post.url or post.error}"


# what -> (address variable, stub, method, request, field of the response, describe)
KINDS: dict[str, tuple[str, Any, str, Any, str, Callable[[Any], str]]] = {
    "scrapes": ("SCRAPER_SERVICE_ADDR", scraper_pb2_grpc.ScraperServiceStub, "ListScrapes",
                scraper_pb2.ListScrapesRequest, "jobs", _scrape_line),
    "datasets": ("TRAINER_SERVICE_ADDR", trainer_pb2_grpc.TrainerServiceStub, "ListDatasets",
                 trainer_pb2.ListDatasetsRequest, "datasets", _dataset_line),
    "runs": ("TRAINER_SERVICE_ADDR", trainer_pb2_grpc.TrainerServiceStub, "ListTrainings",
             trainer_pb2.ListTrainingsRequest, "runs", _run_line),
    "posts": ("PUBLISHER_SERVICE_ADDR", publisher_pb2_grpc.PublisherServiceStub, "ListPosts",
              publisher_pb2.ListPostsRequest, "posts", _post_line),
}


def list_lines(what: str, address: str | None = None, token: str | None = None,
               page_size: int = 100) -> Iterator[str]:
    """'<id>  <state>  <what it is>  <message>' for every job of a kind, page by page."""
    env, stub_class, method, request_class, field, describe = KINDS[what]
    channel = open_channel(address or settings.require(env),
                           token or settings.require("SOCIALGAN_API_TOKEN"))
    try:
        call = getattr(stub_class(channel), method)
        token_of_page = ""
        while True:
            page = call(request_class(page_size=page_size, page_token=token_of_page),
                        timeout=TIMEOUT_S)
            for item in getattr(page, field):
                if "status" not in item.DESCRIPTOR.fields_by_name:  # a post, not a job
                    yield describe(item)
                    continue
                yield (f"{item.status.job_id}  {state_name(item.status.state)}  "
                       f"{describe(item)}  {item.status.message}")
            token_of_page = page.next_page_token
            if not token_of_page:
                return
    finally:
        channel.close()

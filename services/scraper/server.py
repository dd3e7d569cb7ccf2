"""The scraper service: gRPC in front of socialgan.scraping. Run: python -m services.scraper.server

Requests are checked before a job starts: a bad hashtag or limit, a missing source, a
source that does not exist (NOT_FOUND) or holds no candidate files (INVALID_ARGUMENT) is
refused up front. A source whose candidates are all unusable (corrupt, not images,
unreachable) starts a job that ends FAILED with the reasons in its message. Missing
credentials, and an Instagram hashtag budget that the search would exceed, are
FAILED_PRECONDITION up front; an API that refuses or fails during the job ends it FAILED
with the API's name and status in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from socialgan import log
from socialgan.jobs import Job, JobRunner, JobSnapshot
from socialgan.rpc.convert import job_status
from socialgan.rpc.server import run_until_signalled, start_server
from socialgan.scraping import parse_source_spec, run_scrape
from socialgan.scraping.mastodon import trending_tags
from socialgan.scraping.scrape import check_limit, new_scrape_id
from socialgan.storage import ObjectStore, keys, open_store
from socialgan.v1 import scraper_pb2, scraper_pb2_grpc
from socialgan.validation import check_identifier, normalize_hashtag

SERVICE_NAME = scraper_pb2.DESCRIPTOR.services_by_name["ScraperService"].full_name


@dataclass(frozen=True)
class _Request:
    hashtag: str
    source: str


class ScraperServicer(scraper_pb2_grpc.ScraperServiceServicer):
    def __init__(self, store: ObjectStore, runner: JobRunner):
        self.store = store
        self.runner = runner
        self._requests: dict[str, _Request] = {}

    def StartScrape(self, request, context):
        hashtag = normalize_hashtag(request.hashtag)
        limit = check_limit(request.limit if request.HasField("limit") else None)
        source = parse_source_spec(request.source)
        source.preflight(self.store, hashtag)
        job_id = new_scrape_id(hashtag)
        self._requests[job_id] = _Request(hashtag, source.describe())
        incremental = not request.full_rescan
        animated = "skip" if request.skip_animated else "keep"

        def work(job: Job) -> str:
            return run_scrape(self.store, source, hashtag, limit, job,
                              incremental=incremental, animated=animated).summary()

        return self._message(self.runner.start("scrape", job_id, work).snapshot())

    def WatchScrape(self, request, context):
        job = self._job(request.job_id)
        for snap in job.watch(context.is_active):
            yield self._message(snap)

    def GetScrape(self, request, context):
        return self._message(self._job(request.job_id).snapshot())

    def CancelScrape(self, request, context):
        self._job(request.job_id)  # validates the id
        return self._message(self.runner.cancel(request.job_id).snapshot())

    def ListTrendingTags(self, request, context):
        tags = trending_tags(request.instance_url, request.limit or 10)
        return scraper_pb2.ListTrendingTagsResponse(tags=[
            scraper_pb2.TrendingTag(name=t.name, url=t.url, uses_today=t.uses_today,
                                    uses_week=t.uses_week, accounts_week=t.accounts_week)
            for t in tags])

    def _job(self, job_id: str) -> Job:
        return self.runner.get(check_identifier(job_id, "job_id"))

    def _message(self, snap: JobSnapshot) -> scraper_pb2.ScrapeJob:
        req = self._requests.get(snap.job_id, _Request("", ""))
        p = snap.progress
        counts = scraper_pb2.ScrapeCounts(
            found=p.get("found", 0), downloaded=p.get("downloaded", 0),
            duplicates=p.get("duplicates", 0), failed=p.get("failed", 0),
            failed_by_reason=p.get("failed_by_reason", {}), bytes=p.get("bytes", 0),
            images_per_second=p.get("images_per_second", 0.0),
            skipped=p.get("skipped", 0), new=p.get("new", 0))
        return scraper_pb2.ScrapeJob(
            status=job_status(snap), hashtag=req.hashtag, source=req.source, counts=counts,
            manifest_key=keys.scrape_manifest_key(snap.job_id),
            raw_prefix=keys.raw_prefix(req.hashtag) if req.hashtag else "")


def register(server: grpc.Server, store: ObjectStore,
             runner: JobRunner | None = None) -> list[str]:
    scraper_pb2_grpc.add_ScraperServiceServicer_to_server(
        ScraperServicer(store, runner or JobRunner()), server)
    return [SERVICE_NAME]


def main() -> None:
    log.configure("scraper")
    store = open_store()
    runner = JobRunner()
    running = start_server("scraper", lambda s: register(s, store, runner))
    run_until_signalled(running, on_stop=runner.shutdown)


if __name__ == "__main__":
    main()

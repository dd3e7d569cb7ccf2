"""The scraper service: gRPC in front of socialgan.scraping. Run: python -m services.scraper.server

Requests are checked before a job starts: a bad hashtag or limit, a missing source, a
source that does not exist (NOT_FOUND) or holds no candidate files (INVALID_ARGUMENT) is
refused up front. A source whose candidates are all unusable (corrupt, not images,
unreachable) starts a job that ends FAILED with the reasons in its message. Missing
credentials, and an Instagram hashtag budget that the search would exceed, are
FAILED_PRECONDITION up front; an API that refuses or fails during the job ends it FAILED
with the API's name and status in the message.

Paths in requests are read only under SCRAPER_IMPORT_DIR (scraping.local_files; unset: none,
PERMISSION_DENIED naming the field). UploadImages takes pictures from the client instead
(scraping.upload) and scrapes them as a job like any other source.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict

from socialgan import log
from socialgan.errors import InvalidArgument, NotFound
from socialgan.job_store import JobStore, page_of
from socialgan.jobs import Job, JobRunner, JobSnapshot, Work
from socialgan.rpc.convert import job_status
from socialgan.rpc.server import run_until_signalled, start_server
from socialgan.scraping import parse_source_spec, run_scrape
from socialgan.scraping.local_files import ImportRoot
from socialgan.scraping.mastodon import trending_tags
from socialgan.scraping.scrape import check_limit, new_scrape_id
from socialgan.scraping.upload import UploadSpool
from socialgan.storage import ObjectStore, keys, open_store
from socialgan.v1 import scraper_pb2, scraper_pb2_grpc
from socialgan.validation import check_identifier, normalize_hashtag

SERVICE_NAME = scraper_pb2.DESCRIPTOR.services_by_name["ScraperService"].full_name
SCRAPE = "scrape"  # the job kind (jobs/scrape/ in storage)


class ScraperServicer(scraper_pb2_grpc.ScraperServiceServicer):
    def __init__(self, store: ObjectStore, runner: JobRunner):
        self.store = store
        self.runner = runner
        # Read once: the only folder request paths may name (None: no paths at all).
        self.import_root = ImportRoot.from_env()

    def _scrape_work(self, recorded: dict[str, Any]) -> Work:
        """The scrape of a recorded StartScrapeRequest, checked before any job starts. Run
        again (a restart resumes it) it continues from the source's saved state."""
        if "upload" in recorded:
            raise NotFound("the uploaded pictures went with the service process that "
                           "received them; upload them again")
        request = ParseDict(recorded["start"], scraper_pb2.StartScrapeRequest())
        hashtag = normalize_hashtag(request.hashtag)
        limit = check_limit(request.limit if request.HasField("limit") else None)
        source = parse_source_spec(request.source, import_root=self.import_root)
        source.preflight(self.store, hashtag)
        recorded.update(hashtag=hashtag, source=source.describe())
        incremental = not request.full_rescan
        animated = "skip" if request.skip_animated else "keep"

        def work(job: Job) -> str:
            return run_scrape(self.store, source, hashtag, limit, job,
                              incremental=incremental, animated=animated).summary()
        return work

    def StartScrape(self, request, context):
        recorded = {"start": MessageToDict(request, preserving_proto_field_name=True)}
        work = self._scrape_work(recorded)
        job_id = new_scrape_id(recorded["hashtag"])
        return self._message(self.runner.start(SCRAPE, job_id, work, recorded).snapshot())

    def UploadImages(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "start":
            raise InvalidArgument("start", "the first message of an upload must be start")
        start = first.start
        hashtag = normalize_hashtag(start.hashtag)
        limit = check_limit(start.limit if start.HasField("limit") else None)
        spool = UploadSpool(start.label)
        try:
            for message in request_iterator:
                part = message.WhichOneof("part")
                if part == "file":
                    spool.start_file(message.file.name)
                elif part == "chunk":
                    spool.write(message.chunk)
                elif part == "start":
                    raise InvalidArgument("start", "only the first message may be start")
                else:
                    raise InvalidArgument("part", "every message after start sets file or chunk")
            source = spool.source()
        except BaseException:  # a refused or broken-off upload leaves nothing behind
            spool.close()
            raise
        animated = "skip" if start.skip_animated else "keep"

        def work(job: Job) -> str:
            try:  # content addressing stores nothing twice; nothing to skip by name
                return run_scrape(self.store, source, hashtag, limit, job,
                                  incremental=False, animated=animated).summary()
            finally:
                spool.close()

        spool.close_with(work)
        recorded = {"upload": {"label": spool.label, "files": len(spool.names)},
                    "hashtag": hashtag, "source": source.describe()}
        job_id = new_scrape_id(hashtag)
        return self._message(self.runner.start(SCRAPE, job_id, work, recorded).snapshot())

    def WatchScrape(self, request, context):
        job_id = check_identifier(request.job_id, "job_id")
        for snap in self.runner.watch(job_id, SCRAPE, context.is_active):
            yield self._message(snap)

    def GetScrape(self, request, context):
        return self._message(self.runner.snapshot(check_identifier(request.job_id, "job_id"),
                                                  SCRAPE))

    def CancelScrape(self, request, context):
        return self._message(self.runner.cancel(check_identifier(request.job_id, "job_id"),
                                                SCRAPE))

    def ListScrapes(self, request, context):
        ids, next_token = page_of(self.runner.job_ids(SCRAPE), request.page_size,
                                  request.page_token)
        return scraper_pb2.ListScrapesResponse(
            jobs=[self._message(self.runner.snapshot(i, SCRAPE)) for i in ids],
            next_page_token=next_token)

    def resume_interrupted(self) -> None:
        """In the background: restart the scrapes a restart or a kill interrupted (each
        continues from its source's saved state)."""
        self.runner.recover_in_background({SCRAPE: self._scrape_work})

    def ListTrendingTags(self, request, context):
        tags = trending_tags(request.instance_url, request.limit or 10)
        return scraper_pb2.ListTrendingTagsResponse(tags=[
            scraper_pb2.TrendingTag(name=t.name, url=t.url, uses_today=t.uses_today,
                                    uses_week=t.uses_week, accounts_week=t.accounts_week)
            for t in tags])

    def _message(self, snap: JobSnapshot) -> scraper_pb2.ScrapeJob:
        hashtag, source = snap.request.get("hashtag", ""), snap.request.get("source", "")
        p = snap.progress
        counts = scraper_pb2.ScrapeCounts(
            found=p.get("found", 0), downloaded=p.get("downloaded", 0),
            duplicates=p.get("duplicates", 0), failed=p.get("failed", 0),
            failed_by_reason=p.get("failed_by_reason", {}), bytes=p.get("bytes", 0),
            images_per_second=p.get("images_per_second", 0.0),
            skipped=p.get("skipped", 0), new=p.get("new", 0))
        return scraper_pb2.ScrapeJob(
            status=job_status(snap), hashtag=hashtag, source=source, counts=counts,
            manifest_key=keys.scrape_manifest_key(snap.job_id),
            raw_prefix=keys.raw_prefix(hashtag) if hashtag else "")


def register(server: grpc.Server, store: ObjectStore,
             runner: JobRunner | None = None) -> list[str]:
    servicer = ScraperServicer(store, runner or JobRunner(store=JobStore(store)))
    scraper_pb2_grpc.add_ScraperServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]


def main() -> None:
    log.configure("scraper")
    store = open_store()
    servicer = ScraperServicer(store, JobRunner(store=JobStore(store)))

    def add(server: grpc.Server) -> list[str]:
        scraper_pb2_grpc.add_ScraperServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    running = start_server("scraper", add)
    servicer.resume_interrupted()
    # On SIGTERM running scrapes stop (each writes its state) and are recorded
    # INTERRUPTED: the next start of the service continues them.
    run_until_signalled(running, on_stop=servicer.runner.shutdown)


if __name__ == "__main__":
    main()

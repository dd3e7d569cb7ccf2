"""The scraper service over real gRPC on loopback."""

from __future__ import annotations

import shutil

import grpc
import pytest

from services.scraper.server import register
from socialgan.jobs import JobRunner
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.v1 import common_pb2, scraper_pb2, scraper_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_image_server import ImageServer


@pytest.fixture
def service(store, tmp_path, monkeypatch):
    # The service reads request paths under its import root only: here, the test's folder.
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))
    runner = JobRunner()
    running = start_server("scraper", lambda s: register(s, store, runner), port=0,
                           token=TEST_TOKEN)
    address = f"127.0.0.1:{running.port}"
    channel = open_channel(address, TEST_TOKEN)
    yield scraper_pb2_grpc.ScraperServiceStub(channel), address
    channel.close()
    running.stop(grace=0)
    runner.shutdown()


@pytest.fixture
def stub(service):
    return service[0]


@pytest.fixture
def pics(tmp_path, twemoji_paths):
    folder = tmp_path / "pics"
    folder.mkdir()
    for path in twemoji_paths[:12]:
        shutil.copy(path, folder / path.name)
    shutil.copy(twemoji_paths[0], folder / "duplicate.png")
    return folder


def start(stub, spec, hashtag="sunset", **fields):
    source = spec if isinstance(spec, scraper_pb2.SourceSpec) else scraper_pb2.SourceSpec(spec=spec)
    return stub.StartScrape(scraper_pb2.StartScrapeRequest(source=source, hashtag=hashtag,
                                                           **fields), timeout=10)


def watch_to_end(stub, job_id) -> list[scraper_pb2.ScrapeJob]:
    return list(stub.WatchScrape(scraper_pb2.WatchScrapeRequest(job_id=job_id), timeout=30))


def test_start_and_watch_a_folder_scrape_until_it_succeeds(stub, pics, store):
    job = start(stub, f"folder:{pics}", hashtag="#Sunset")
    assert job.hashtag == "sunset" and job.source == f"folder:{pics}"
    assert job.raw_prefix == "raw/sunset/"

    snapshots = watch_to_end(stub, job.status.job_id)

    final = snapshots[-1]
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
    assert (final.counts.found, final.counts.downloaded, final.counts.duplicates) == (13, 13, 1)
    assert final.counts.bytes > 0 and final.counts.images_per_second > 0
    assert final.status.fraction_done == 1.0
    manifest = store.get_json(final.manifest_key)
    assert len(manifest["sha256s"]) == 12
    got = stub.GetScrape(scraper_pb2.GetScrapeRequest(job_id=job.status.job_id), timeout=5)
    assert got.counts == final.counts


def test_folder_message_and_limit(stub, pics):
    spec = scraper_pb2.SourceSpec(folder=scraper_pb2.FolderSource(path=str(pics)))
    job = start(stub, spec, limit=4)
    final = watch_to_end(stub, job.status.job_id)[-1]
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED
    assert final.counts.downloaded == 4


def test_url_list_scrape_over_grpc(stub, monkeypatch, twemoji_paths):
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with ImageServer() as server:
        urls = [server.url(f"/img/{p.name}") for p in twemoji_paths[:3]] + \
            [server.url("/missing.png")]
        spec = scraper_pb2.SourceSpec(url_list=scraper_pb2.UrlListSource(urls=urls))
        final = watch_to_end(stub, start(stub, spec).status.job_id)[-1]
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED
    assert final.counts.downloaded == 3
    assert dict(final.counts.failed_by_reason) == {"http_404": 1}


def test_cancel_stops_a_running_scrape(stub, monkeypatch, twemoji_paths):
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with ImageServer(slow_seconds=0.3) as server:
        urls = [server.url(f"/slow/{p.name}") for p in twemoji_paths[:40]]
        spec = scraper_pb2.SourceSpec(url_list=scraper_pb2.UrlListSource(urls=urls))
        job = start(stub, spec)
        cancelled = stub.CancelScrape(
            scraper_pb2.CancelScrapeRequest(job_id=job.status.job_id), timeout=5)
        final = watch_to_end(stub, job.status.job_id)[-1]
    assert cancelled.status.job_id == job.status.job_id
    assert final.status.state == common_pb2.JOB_STATE_CANCELLED
    assert final.counts.downloaded < 40


def test_path_like_hashtag_is_invalid_argument(stub, pics):
    with pytest.raises(grpc.RpcError) as err:
        start(stub, f"folder:{pics}", hashtag="../x")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hashtag" in err.value.details()


@pytest.mark.parametrize("fields, word", [
    ({"limit": 0}, "limit"),
    ({"source": scraper_pb2.SourceSpec()}, "source"),
])
def test_bad_requests_are_invalid_argument(stub, pics, fields, word):
    request = scraper_pb2.StartScrapeRequest(
        hashtag="sunset", source=scraper_pb2.SourceSpec(spec=f"folder:{pics}"))
    for name, value in fields.items():
        if isinstance(value, scraper_pb2.SourceSpec):
            request.source.CopyFrom(value)
        else:
            setattr(request, name, value)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartScrape(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert word in err.value.details()


def test_empty_folder_is_refused_up_front_naming_the_path(stub, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(grpc.RpcError) as err:
        start(stub, f"folder:{empty}")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(empty) in err.value.details() and "no image files" in err.value.details()


def test_missing_folder_is_not_found(stub, tmp_path):
    with pytest.raises(grpc.RpcError) as err:
        start(stub, f"folder:{tmp_path / 'gone'}")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gone" in err.value.details()


def test_folder_of_unusable_files_ends_failed_with_reasons(stub, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    final = watch_to_end(stub, start(stub, f"folder:{bad}").status.job_id)[-1]
    assert final.status.state == common_pb2.JOB_STATE_FAILED
    assert "no usable images" in final.status.message
    assert final.counts.failed == 2 and final.counts.downloaded == 0


def test_missing_credentials_are_failed_precondition_naming_the_variable(stub, monkeypatch):
    monkeypatch.delenv("INSTAGRAM_ACCESS_TOKEN", raising=False)
    spec = scraper_pb2.SourceSpec(instagram=scraper_pb2.InstagramHashtagSource(user_id="1"))
    with pytest.raises(grpc.RpcError) as err:
        start(stub, spec)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "INSTAGRAM_ACCESS_TOKEN" in err.value.details()


def test_instagram_budget_exceeded_is_refused_up_front(stub, store, monkeypatch):
    from socialgan.scraping.instagram import HASHTAG_BUDGET, HashtagBudget

    monkeypatch.setenv("INSTAGRAM_ACCESS_TOKEN", "token")
    budget = HashtagBudget(store, "17841400000000001")
    for i in range(HASHTAG_BUDGET):
        budget.record(f"tag{i}", str(i))
    spec = scraper_pb2.SourceSpec(instagram=scraper_pb2.InstagramHashtagSource(
        user_id="17841400000000001"))
    with pytest.raises(grpc.RpcError) as err:
        start(stub, spec, hashtag="onemore")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "30 unique hashtags per 7 days" in err.value.details()


def test_mastodon_scrape_over_grpc_then_an_incremental_rerun(stub, monkeypatch):
    from tests.local_api_servers import FakeSocialApis

    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with FakeSocialApis(mastodon_statuses=9, page_size=4) as api:
        first = watch_to_end(stub, start(stub, f"mastodon:{api.base}").status.job_id)[-1]
        again = watch_to_end(stub, start(stub, f"mastodon:{api.base}").status.job_id)[-1]
    assert first.status.state == common_pb2.JOB_STATE_SUCCEEDED, first.status.message
    assert (first.counts.found, first.counts.new, first.counts.skipped) == (9, 9, 0)
    assert again.status.state == common_pb2.JOB_STATE_SUCCEEDED, again.status.message
    assert (again.counts.new, again.counts.skipped) == (0, 4)


def test_api_failure_during_a_scrape_ends_the_job_failed_with_the_reason(stub, monkeypatch):
    from tests.local_api_servers import FakeSocialApis, Fault

    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with FakeSocialApis(mastodon_statuses=3) as api:
        api.fail("/api/v1/timelines/tag/", [Fault(404, body=b'{"error": "Record not found"}')])
        failed = watch_to_end(stub, start(stub, f"mastodon:{api.base}").status.job_id)[-1]
    assert failed.status.state == common_pb2.JOB_STATE_FAILED
    assert "not found (404)" in failed.status.message
    assert "Record not found" in failed.status.message


def test_list_trending_tags(stub, monkeypatch):
    from tests.local_api_servers import FakeSocialApis, Fault

    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")
    with FakeSocialApis() as api:
        reply = stub.ListTrendingTags(scraper_pb2.ListTrendingTagsRequest(
            instance_url=api.base, limit=5), timeout=10)
        api.fail("/api/v1/trends/tags", [Fault(404, body=b'{"error": "Record not found"}')])
        with pytest.raises(grpc.RpcError) as missing:
            stub.ListTrendingTags(scraper_pb2.ListTrendingTagsRequest(instance_url=api.base),
                                  timeout=10)
        api.fail("/api/v1/trends/tags", [Fault(malformed=True)] * 10)  # the client retries
        with pytest.raises(grpc.RpcError) as broken:
            stub.ListTrendingTags(scraper_pb2.ListTrendingTagsRequest(instance_url=api.base),
                                  timeout=10)
    assert [t.name for t in reply.tags] == ["caturday", "sunset"]
    assert reply.tags[0].uses_week == 420
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "malformed JSON" in broken.value.details()
    with pytest.raises(grpc.RpcError) as bad:
        stub.ListTrendingTags(scraper_pb2.ListTrendingTagsRequest(instance_url="ftp://x"),
                              timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("call, request_type", [
    ("GetScrape", scraper_pb2.GetScrapeRequest),
    ("CancelScrape", scraper_pb2.CancelScrapeRequest),
    ("WatchScrape", scraper_pb2.WatchScrapeRequest),
])
def test_unknown_job_is_not_found(stub, call, request_type):
    with pytest.raises(grpc.RpcError) as err:
        result = getattr(stub, call)(request_type(job_id="scrape-nope"), timeout=5)
        list(result) if call == "WatchScrape" else None
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "scrape-nope" in err.value.details()


def test_calls_without_the_token_are_unauthenticated(service, pics):
    _, address = service
    with grpc.insecure_channel(address) as bare:
        stub = scraper_pb2_grpc.ScraperServiceStub(bare)
        with pytest.raises(grpc.RpcError) as err:
            start(stub, f"folder:{pics}")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

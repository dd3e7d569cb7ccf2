"""UploadImages (issue 9, item 1): pictures that are not on the service's disk are sent by the
client and stored through the same checks, raw/ layout and sidecars as every other source.
Real gRPC with the token on loopback, a service without an import root (as in compose)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import grpc
import pytest

from services.scraper.server import ScraperServicer, register
from socialgan.errors import NotFound, ResourceExhausted
from socialgan.jobs import JobRunner
from socialgan.pipeline import PipelineError, PipelineOptions, start_scrape
from socialgan.rpc.client import open_channel
from socialgan.rpc.requests import MAX_REPEATED
from socialgan.rpc.server import start_server
from socialgan.scraping.upload import MAX_CONCURRENT_UPLOADS, UploadSpool
from socialgan.storage import keys
from socialgan.v1 import common_pb2, scraper_pb2, scraper_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.hostile_files import PNG_MAGIC, hostile_files, zip_bombs
from tests.local_image_server import ImageServer

pytestmark = pytest.mark.timeout(120)
QUICK = 30


@pytest.fixture
def spool_dir(tmp_path, monkeypatch) -> Path:
    """Where the service spools uploads (tempfile's folder), to see that nothing stays."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def service(store, spool_dir, monkeypatch):
    monkeypatch.delenv("SCRAPER_IMPORT_DIR", raising=False)  # compose/Kubernetes: none
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
def pics(tmp_path, twemoji_paths) -> Path:
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for path in twemoji_paths[:10]:
        shutil.copy(path, folder / path.name)
    for path in twemoji_paths[10:12]:
        shutil.copy(path, folder / "sub" / path.name)
    shutil.copy(twemoji_paths[0], folder / "sub" / "duplicate.png")
    (folder / "notes.txt").write_text("not a candidate")
    shutil.copy(twemoji_paths[20], folder / ".hidden.png")
    return folder


def upload(stub, source: str, hashtag="up") -> tuple[scraper_pb2.ScrapeJob, list[str]]:
    """The CLI's path: StartScrape, refused for a path the service may not read, then the
    upload. Returns the job and what the client said."""
    said: list[str] = []
    job = start_scrape(stub, PipelineOptions(hashtag=hashtag, source=source), said.append)
    return job, said


def to_end(stub, job: scraper_pb2.ScrapeJob) -> scraper_pb2.ScrapeJob:
    return list(stub.WatchScrape(scraper_pb2.WatchScrapeRequest(job_id=job.status.job_id),
                                 timeout=QUICK))[-1]


def start(hashtag="up", **fields) -> scraper_pb2.UploadImagesRequest:
    return scraper_pb2.UploadImagesRequest(start=scraper_pb2.UploadStart(hashtag=hashtag,
                                                                         **fields))


def file(name: str) -> scraper_pb2.UploadImagesRequest:
    return scraper_pb2.UploadImagesRequest(file=scraper_pb2.UploadFile(name=name))


def chunk(data: bytes) -> scraper_pb2.UploadImagesRequest:
    return scraper_pb2.UploadImagesRequest(chunk=data)


def raw_images(store, hashtag: str) -> list[str]:
    return [k for k in store.list(keys.raw_prefix(hashtag)) if not k.endswith(".json")]


def test_a_folder_on_the_clients_machine_is_uploaded_and_stored_like_a_folder_scrape(
        stub, store, pics, spool_dir):
    job, said = upload(stub, f"folder:{pics}", hashtag="#Sunset")
    assert job.source == "upload:pics" and job.hashtag == "sunset"
    assert any("PERMISSION_DENIED" in line and "sending it from here" in line for line in said)
    final = to_end(stub, job)
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
    c = final.counts
    assert (c.found, c.new, c.duplicates, c.failed) == (13, 12, 1, 0)
    images = raw_images(store, "sunset")
    assert len(images) == 12
    sidecars = [store.get_json(k) for k in store.list("raw/sunset/") if k.endswith(".json")]
    assert {s["source"] for s in sidecars} == {"upload"}
    names = {p.relative_to(pics).as_posix() for p in pics.rglob("*.png")}
    assert {s["post_id"] for s in sidecars} == names - {".hidden.png", "sub/duplicate.png"}
    manifest = store.get_json(final.manifest_key)
    assert manifest["source"] == "upload:pics" and len(manifest["sha256s"]) == 12
    assert not list(spool_dir.iterdir())  # the spool went with the scrape


def test_a_zip_upload_stores_its_image_members_and_names_the_bombs(stub, store, tmp_path,
                                                                  spool_dir):
    made = dict((path.name, path) for path, _ in zip_bombs(tmp_path))
    expected = {"bomb.zip": {"too_large"}, "lying-size.zip": {"bad_zip_member"}}
    for name, reasons in expected.items():
        job, _ = upload(stub, f"zip:{made[name]}", hashtag="zips")
        assert job.source == f"upload:{name}"
        final = to_end(stub, job)
        assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
        assert final.counts.new == 1  # ok.png
        assert set(final.counts.failed_by_reason) == reasons, name
    assert len(raw_images(store, "zips")) == 2
    assert not list(spool_dir.iterdir())


def test_hostile_files_uploaded_from_a_folder_are_each_one_named_outcome(stub, store,
                                                                        tmp_path):
    folder = tmp_path / "hostile"
    folder.mkdir()
    files = hostile_files()
    for hostile in files:
        (folder / hostile.name).write_bytes(hostile.data)
    job, said = upload(stub, f"folder:{folder}", hashtag="hostile")
    final = to_end(stub, job)
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
    # Names the service would refuse (control characters, not UTF-8) stay on the client,
    # each said by name; every other file is one outcome: stored, duplicate or a reason.
    left_out = [line for line in said if line.startswith("not sent:")]
    assert len(left_out) == 3 and all(line.endswith("(bad_name)") for line in left_out)
    c = final.counts
    assert c.found == len(files) - 3 == c.downloaded + c.failed
    assert c.failed >= 100 and c.new >= 20
    assert all(re.fullmatch(r"[a-z0-9_]+", reason) for reason in c.failed_by_reason)
    assert {"undecodable", "decompression_bomb", "not_an_image"} <= set(c.failed_by_reason)


@pytest.mark.parametrize("messages, field", [
    ([], "start"),
    ([file("a.png")], "start"),
    ([start(), start()], "start"),
    ([start(), chunk(b"x")], "chunk"),
    ([start(), file("../evil.png"), chunk(PNG_MAGIC)], "file.name"),
    ([start(), file("/etc/evil.png")], "file.name"),
    ([start(), file("a/../../evil.png")], "file.name"),
    ([start(), file(".hidden.png")], "file.name"),
    ([start(), file("bell\a.png")], "file.name"),
    ([start(), file("notes.txt")], "file.name"),
    ([start(), file("x" * 300 + ".png")], "file.name"),
    ([start(), file("a.png"), file("a.png")], "file.name"),
    ([start(), file("a.png"), file("b.zip")], "file.name"),
    ([start(), file("b.zip"), file("a.png")], "file.name"),
    ([start(), file("a.png"), file("a.png/b.png")], "file.name"),
    ([start()], "file"),
    ([start(hashtag="../x"), file("a.png")], "hashtag"),
    ([start(limit=0), file("a.png")], "limit"),
])
def test_malformed_uploads_are_refused_naming_the_field(stub, store, tmp_path, spool_dir,
                                                         messages, field):
    with pytest.raises(grpc.RpcError) as err:
        stub.UploadImages(iter(messages), timeout=QUICK)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert err.value.details().startswith(f"{field}: ")
    assert not list(spool_dir.iterdir()) and not list(store.list(""))
    assert not (tmp_path / "evil.png").exists() and not Path("/etc/evil.png").exists()


def test_an_upload_past_its_size_bound_is_refused(stub, store, spool_dir, monkeypatch):
    monkeypatch.setenv("SCRAPER_UPLOAD_MAX_MB", "1")
    messages = [start(), file("a.png"), chunk(PNG_MAGIC + b"\0" * (600 << 10)),
                chunk(b"\0" * (600 << 10))]
    with pytest.raises(grpc.RpcError) as err:
        stub.UploadImages(iter(messages), timeout=QUICK)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("chunk: ") and "SCRAPER_UPLOAD_MAX_MB" in \
        err.value.details()
    assert not list(spool_dir.iterdir())


def test_a_picture_past_50_mb_is_counted_too_large_and_not_kept(stub, store, twemoji_paths,
                                                               spool_dir):
    block = b"\0" * (1 << 20)
    messages = [start(), file("good.png"), chunk(twemoji_paths[0].read_bytes()),
                file("big.png"), chunk(PNG_MAGIC), *[chunk(block) for _ in range(51)]]
    final = to_end(stub, stub.UploadImages(iter(messages), timeout=QUICK))
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED
    assert final.counts.new == 1 and dict(final.counts.failed_by_reason) == {"too_large": 1}
    failures = store.get_json(final.manifest_key)
    assert "big.png" in json.dumps(failures)


def test_an_upload_needs_the_token(service):
    _, address = service
    anonymous = scraper_pb2_grpc.ScraperServiceStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError) as err:
        anonymous.UploadImages(iter([start(), file("a.png"), chunk(PNG_MAGIC)]), timeout=QUICK)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_uploads_at_once_are_bounded(stub, spool_dir, twemoji_paths):
    held = [UploadSpool("held") for _ in range(MAX_CONCURRENT_UPLOADS)]
    messages = [start(), file("a.png"), chunk(twemoji_paths[0].read_bytes())]
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.UploadImages(iter(messages), timeout=QUICK)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.details().startswith("uploads: ")
    finally:
        for spool in held:
            spool.close()
    final = to_end(stub, stub.UploadImages(iter(messages), timeout=QUICK))
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED


def test_a_path_the_service_may_read_is_not_uploaded(store, pics, tmp_path, monkeypatch):
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))
    runner = JobRunner()
    running = start_server("scraper", lambda s: register(s, store, runner), port=0,
                           token=TEST_TOKEN)
    try:
        stub = scraper_pb2_grpc.ScraperServiceStub(
            open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN))
        job, said = upload(stub, f"folder:{pics}")
        assert job.source == f"folder:{pics}" and not said
        assert to_end(stub, job).counts.new == 12
    finally:
        running.stop(grace=0)
        runner.shutdown()


def test_an_upload_cut_off_by_a_restart_is_not_resumed(store):
    with pytest.raises(NotFound, match="upload them again"):
        ScraperServicer(store, JobRunner())._scrape_work({"upload": {"label": "pics"}})


def test_a_zip_that_is_not_on_this_machine_is_not_uploaded(stub, tmp_path):
    missing = tmp_path / "nowhere.zip"
    with pytest.raises(grpc.RpcError) as err:
        upload(stub, f"zip:{missing}")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_archive_member_with_an_absolute_name_is_refused_by_name_never_extracted(
        stub, store, tmp_path):
    archive = tmp_path / "escape.zip"
    emoji = Path(__file__).parent / "data" / "twemoji"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{tmp_path}/escape.png", (emoji / "1f30b.png").read_bytes())
        zf.writestr("fine.png", (emoji / "1f317.png").read_bytes())
    final = to_end(stub, upload(stub, f"zip:{archive}")[0])
    assert final.counts.new == 1
    assert dict(final.counts.failed_by_reason) == {"bad_name": 1}
    assert not (tmp_path / "escape.png").exists()


def test_a_url_list_on_the_clients_machine_is_sent_as_its_urls(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")  # the image server: loopback
    with ImageServer() as server:
        listing = tmp_path / "cats.txt"
        listing.write_text(f"# cats\n{server.url('/img/1f30b.png')}\n"
                           f"{server.url('/img/1f317.png')}\n")
        job, said = upload(stub, f"urls:{listing}")
        assert job.source == "urls:2 inline" and "sending its URLs" in said[0]
        assert to_end(stub, job).counts.new == 2
    listing.write_text("".join(f"https://example.com/{i}.png\n" for i in range(MAX_REPEATED + 1)))
    with pytest.raises(PipelineError, match="SCRAPER_IMPORT_DIR"):
        upload(stub, f"urls:{listing}")


def test_uploads_at_once_share_one_byte_budget(monkeypatch):
    monkeypatch.setenv("SCRAPER_UPLOAD_MAX_MB", "1")
    first, second = UploadSpool("first"), UploadSpool("second")
    try:
        first.start_file("a.png")
        first.write(b"\0" * (800 << 10))
        second.start_file("b.png")
        with pytest.raises(ResourceExhausted, match="try again"):
            second.write(b"\0" * (400 << 10))
        first.close()
        second.write(b"\0" * (400 << 10))  # the first one's bytes were given back
    finally:
        first.close()
        second.close()

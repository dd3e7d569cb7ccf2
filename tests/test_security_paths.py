"""Paths in requests are user input (issue 9, item 1): the scraper reads only regular files
under its import root, never through a link that leaves it, never /proc, /sys or /dev, and
a FIFO never blocks a scrape. Everything over real gRPC with the token, on real files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import grpc
import pytest

from services.scraper.server import register
from socialgan.errors import FailedPrecondition, PermissionDenied
from socialgan.jobs import JobRunner
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.scraping import parse_source_spec
from socialgan.scraping.local_files import ImportRoot
from socialgan.storage import keys
from socialgan.supervisor import LocalStack
from socialgan.v1 import common_pb2, scraper_pb2, scraper_pb2_grpc
from tests.conftest import TEST_TOKEN

pytestmark = pytest.mark.timeout(60)
QUICK = 10  # seconds: every refusal and every scrape here takes well under one


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "import"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path, twemoji_paths) -> Path:
    """A folder beside the import root with an image that must never be stored."""
    folder = tmp_path / "outside"
    folder.mkdir()
    shutil.copy(twemoji_paths[5], folder / "secret.png")
    return folder


@contextlib.contextmanager
def scraper(store, import_root: Path | None, monkeypatch):
    if import_root is None:
        monkeypatch.delenv("SCRAPER_IMPORT_DIR", raising=False)
    else:
        monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(import_root))
    runner = JobRunner()
    running = start_server("scraper", lambda s: register(s, store, runner), port=0,
                           token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        yield scraper_pb2_grpc.ScraperServiceStub(channel)
    finally:
        channel.close()
        running.stop(grace=0)
        runner.shutdown()


@pytest.fixture
def stub(store, root, monkeypatch):
    with scraper(store, root, monkeypatch) as running:
        yield running


def start(stub, source, hashtag="paths"):
    if isinstance(source, str):
        source = scraper_pb2.SourceSpec(spec=source)
    return stub.StartScrape(scraper_pb2.StartScrapeRequest(source=source, hashtag=hashtag),
                            timeout=QUICK)


def refusal(stub, source) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        start(stub, source)
    return err.value


def stored_bytes(store) -> bytes:
    return b"".join(store.get_bytes(k) for k in store.list(""))


def unblock(fifo: Path) -> None:
    """Let a reader stuck on the FIFO go (only the code before item 1 ever opened one)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


# --- URL-list files ---------------------------------------------------------------------------

SECRET_FILES = ["/proc/self/environ", "/etc/shadow"]


@pytest.mark.parametrize("path", SECRET_FILES)
@pytest.mark.parametrize("form", ["spec", "url_list"])
def test_url_list_naming_a_secret_file_is_refused_and_nothing_is_stored(stub, store, path,
                                                                         form):
    source = (f"urls:{path}" if form == "spec" else scraper_pb2.SourceSpec(
        url_list=scraper_pb2.UrlListSource(path=path)))
    err = refusal(stub, source)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    field = "source.spec" if form == "spec" else "source.url_list.path"
    assert err.details().startswith(f"{field}: ")
    assert path in err.details()
    assert not list(store.list(""))  # no job, no archive, no manifest: the file was never read


def test_url_list_through_a_link_to_proc_is_refused(stub, store, root):
    (root / "list.txt").symlink_to("/proc/self/environ")
    err = refusal(stub, f"urls:{root / 'list.txt'}")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0]
    assert environ and environ not in stored_bytes(store)


@pytest.mark.parametrize("spec", ["urls:/proc/self/environ", "folder:/dev", "folder:/sys/kernel",
                                  "zip:/proc/self/exe", "folder:/proc/self/root/etc"])
def test_proc_sys_and_dev_are_never_read_even_with_the_whole_disk_as_root(spec):
    with pytest.raises(PermissionDenied, match="never read"):
        parse_source_spec(spec, import_root=ImportRoot("/"))


def test_a_fifo_named_as_url_list_or_zip_is_refused_at_once(stub, root):
    fifos = [root / "list.txt", root / "pics.zip"]
    for fifo in fifos:
        os.mkfifo(fifo)
    try:
        for spec in (f"urls:{fifos[0]}", f"zip:{fifos[1]}"):
            err = refusal(stub, spec)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            assert err.details().startswith("source.spec: ") and "FIFO" in err.details()
    finally:
        for fifo in fifos:
            unblock(fifo)


# --- where paths may point --------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    "folder:{dir}", "zip:{dir}/a.zip", "urls:{dir}/list.txt", "{dir}",
    scraper_pb2.SourceSpec(folder=scraper_pb2.FolderSource(path="{dir}")),
    scraper_pb2.SourceSpec(url_list=scraper_pb2.UrlListSource(path="{dir}/list.txt")),
])
def test_without_an_import_root_no_server_side_path_is_read(store, root, monkeypatch, source,
                                                             twemoji_paths):
    shutil.copy(twemoji_paths[0], root / "a.png")
    with zipfile.ZipFile(root / "a.zip", "w") as zf:
        zf.write(twemoji_paths[0], "a.png")
    (root / "list.txt").write_text("https://example.com/a.png\n")
    if isinstance(source, str):
        source = source.format(dir=root)
        field = "source.spec"
    elif source.HasField("folder"):
        source = scraper_pb2.SourceSpec(folder=scraper_pb2.FolderSource(path=str(root)))
        field = "source.folder.path"
    else:
        source = scraper_pb2.SourceSpec(url_list=scraper_pb2.UrlListSource(
            path=str(root / "list.txt")))
        field = "source.url_list.path"
    with scraper(store, None, monkeypatch) as stub:
        err = refusal(stub, source)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith(f"{field}: ") and "SCRAPER_IMPORT_DIR" in err.details()
    assert not list(store.list(""))


def test_paths_outside_the_root_are_refused_whether_or_not_they_exist(stub, root, outside):
    for spec in (f"folder:{outside}", f"folder:{outside / 'nowhere'}",
                 f"folder:{root}/../outside", f"zip:{outside / 'x.zip'}",
                 f"urls:{outside / 'list.txt'}"):
        err = refusal(stub, spec)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, spec
        assert "outside the import root" in err.details()


def test_a_folder_or_zip_that_is_a_link_out_of_the_root_is_refused(stub, store, root, outside,
                                                                   twemoji_paths):
    (root / "pics").symlink_to(outside, target_is_directory=True)
    with zipfile.ZipFile(outside / "pics.zip", "w") as zf:
        zf.write(twemoji_paths[5], "secret.png")
    (root / "pics.zip").symlink_to(outside / "pics.zip")
    for spec in (f"folder:{root / 'pics'}", f"zip:{root / 'pics.zip'}"):
        assert refusal(stub, spec).code() == grpc.StatusCode.PERMISSION_DENIED
    assert not list(store.list(""))


# --- what a folder walk meets -----------------------------------------------------------------


def _link(target: str):
    """A link to target; a bare name means that file in the outside folder."""
    def plant(folder: Path, outside: Path) -> Path:
        entry = folder / "hostile.png"
        entry.symlink_to(target if target.startswith("/") else outside / target)
        return entry
    return plant


def _fifo(folder: Path, outside: Path) -> Path:
    os.mkfifo(folder / "hostile.png")
    return folder / "hostile.png"


def _dir_link(folder: Path, outside: Path) -> Path:
    (folder / "more").symlink_to(outside, target_is_directory=True)
    return folder / "more"


HOSTILE = {  # what is planted beside one good image -> the failure it must be counted as
    "link to a file outside the root": (_link("secret.png"), "outside_import_root"),
    "link to /etc/shadow": (_link("/etc/shadow"), "outside_import_root"),
    "link to /proc/self/environ": (_link("/proc/self/environ"), "outside_import_root"),
    "link to /dev/zero": (_link("/dev/zero"), "outside_import_root"),
    "link to /dev/stdin": (_link("/dev/stdin"), "outside_import_root"),
    "a FIFO": (_fifo, "not_a_regular_file"),
    # A linked folder is never entered (os.walk without followlinks did not either).
    "link to a folder outside the root": (_dir_link, None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_folder_scrape_never_reads_past_its_root_and_finishes_promptly(
        stub, store, root, outside, twemoji_paths, case):
    plant, reason = HOSTILE[case]
    folder = root / "pics"
    folder.mkdir()
    shutil.copy(twemoji_paths[0], folder / "good.png")
    entry = plant(folder, outside)
    try:
        job = start(stub, f"folder:{folder}")
        final = list(stub.WatchScrape(scraper_pb2.WatchScrapeRequest(
            job_id=job.status.job_id), timeout=QUICK))[-1]
    finally:
        if case == "a FIFO":
            unblock(entry)
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED, final.status.message
    assert final.counts.new == 1
    assert dict(final.counts.failed_by_reason) == ({reason: 1} if reason else {})
    stored = [k for k in store.list(keys.raw_prefix("paths")) if not k.endswith(".json")]
    good = keys.raw_image_key("paths", hashlib.sha256(twemoji_paths[0].read_bytes()).hexdigest(),
                              ".png")
    assert stored == [good]


def test_a_link_that_stays_inside_the_root_is_read(stub, store, root, twemoji_paths):
    shared = root / "shared"
    shared.mkdir()
    shutil.copy(twemoji_paths[1], shared / "b.png")
    folder = root / "pics"
    folder.mkdir()
    shutil.copy(twemoji_paths[0], folder / "a.png")
    (folder / "b.png").symlink_to(shared / "b.png")
    job = start(stub, f"folder:{folder}")
    final = list(stub.WatchScrape(scraper_pb2.WatchScrapeRequest(job_id=job.status.job_id),
                                  timeout=QUICK))[-1]
    assert final.status.state == common_pb2.JOB_STATE_SUCCEEDED
    assert (final.counts.new, final.counts.failed) == (2, 0)


# --- the local stack --------------------------------------------------------------------------


def test_the_local_stack_reads_its_data_folder_in_place(tmp_path, monkeypatch):
    monkeypatch.delenv("SCRAPER_IMPORT_DIR", raising=False)
    env = LocalStack(workdir=tmp_path)._env({"scraper": 1})
    assert env["SCRAPER_IMPORT_DIR"] == str(Path.cwd() / "data")
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))
    assert LocalStack(workdir=tmp_path)._env({"scraper": 1})["SCRAPER_IMPORT_DIR"] == \
        str(tmp_path)


def test_an_import_root_that_is_not_a_folder_is_a_failed_precondition(tmp_path, outside):
    with pytest.raises(FailedPrecondition, match=r"^source: the import root .*SCRAPER_IMPORT_DIR"):
        parse_source_spec(f"folder:{outside}", import_root=ImportRoot(tmp_path / "missing"))

"""Defects a review of the hardening found in local sources, pinned (issue #9, item 1): a
URL list's lines that are no URLs never reach storage, SocialGAN's own folders are never
read as input even under a broad import root, and hostile archive member names are
recorded by reason instead of vanishing."""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path

import pytest

from socialgan.errors import FailedPrecondition, PermissionDenied
from socialgan.scraping import parse_source_spec, run_scrape
from socialgan.scraping.local_files import ImportRoot

FAKE_KEY = "hunter2-management-key-not-a-url"


def everything_stored(store) -> bytes:
    return b"".join(store.get_bytes(k) for k in store.list(""))


def test_lines_that_are_no_urls_are_counted_by_line_number_and_never_stored(
        store, tmp_path, twemoji_paths, monkeypatch):
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))
    listing = tmp_path / "list.txt"
    listing.write_text(f'{{"management": {{"key": "{FAKE_KEY}"}}}}\n{FAKE_KEY}\n'
                       "ftp://host/x.png\n")
    source = parse_source_spec(f"urls:{listing}")
    with pytest.raises(FailedPrecondition):  # nothing usable; the manifest is still written
        run_scrape(store, source, "keys", None)
    stored = everything_stored(store)
    assert stored, "the manifest is written"
    assert FAKE_KEY.encode() not in stored and b"ftp://" not in stored
    manifest = next(store.get_json(k) for k in store.list("runs/scrape/")
                    if k.endswith(".json") and "/state/" not in k)
    assert [(f["name"], f["reason"]) for f in manifest["failures"]] == [
        ("line 1", "not_a_url"), ("line 2", "not_a_url"), ("line 3", "not_a_url")]


@pytest.mark.parametrize("own", ["STORAGE_DIR", "TORCHSERVE_WORK_DIR", "TORCHSERVE_MODEL_STORE"])
def test_socialgans_own_folders_are_never_input_even_under_a_broad_root(tmp_path, monkeypatch,
                                                                        own):
    folder = tmp_path / "var" / own.lower()
    folder.mkdir(parents=True)
    (folder / "key_file.json").write_text(FAKE_KEY)
    monkeypatch.setenv(own, str(folder))
    root = ImportRoot(tmp_path)  # "." on a developer's machine: var/ is inside
    for spec in (f"urls:{folder / 'key_file.json'}", f"folder:{folder}"):
        with pytest.raises(PermissionDenied, match="never read as input"):
            parse_source_spec(spec, import_root=root)
    assert not root.contains(str(folder / "key_file.json"))


def test_a_folder_walk_skips_socialgans_own_folders(store, tmp_path, twemoji_paths,
                                                    monkeypatch):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    shutil.copy(twemoji_paths[0], pictures / "ok.png")
    own = pictures / "storage"  # storage kept inside the folder being imported
    own.mkdir()
    shutil.copy(twemoji_paths[1], own / "stored.png")
    monkeypatch.setenv("STORAGE_DIR", str(own))
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))
    result = run_scrape(store, parse_source_spec(f"folder:{pictures}"), "own", None)
    assert result.counts.new == 1
    assert result.counts.failed_by_reason == {"outside_import_root": 1}


def test_zip_members_with_hostile_names_are_recorded_as_bad_names(store, tmp_path,
                                                                  twemoji_paths, monkeypatch):
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, path in (("../evil.png", twemoji_paths[0]), ("/abs.png", twemoji_paths[1]),
                           ("sub/../../up.png", twemoji_paths[2]), ("ok.png", twemoji_paths[3])):
            z.writestr(zipfile.ZipInfo(name), Path(path).read_bytes())  # names kept raw
    result = run_scrape(store, parse_source_spec(f"zip:{archive}"), "zipnames", None)
    assert result.counts.new == 1
    assert result.counts.failed_by_reason == {"bad_name": 3}
    assert not (tmp_path.parent / "evil.png").exists()
    assert Path(twemoji_paths[0]).exists()


@pytest.mark.parametrize("token", ["replace-me", "t", "  short-token   ", "x" * 15])
def test_a_service_refuses_to_start_with_a_guessable_api_token(token):
    from socialgan.rpc.server import start_server
    from socialgan.settings import ConfigError

    with pytest.raises(ConfigError, match="at least 16 characters"):
        start_server("publisher", lambda server: [], port=0, token=token)


def test_trending_tags_of_a_url_that_is_no_instance_are_refused_naming_instance_url():
    from socialgan.errors import InvalidArgument
    from socialgan.scraping.mastodon import trending_tags

    for url in ("javascript:alert(1)", "http://127.0.0.1:99999/", "https://host/x",
                "http://user:pw@host", "ftp://host", "http://a b", "https://[abc", "https://"):
        with pytest.raises(InvalidArgument, match="^instance_url: "):
            trending_tags(url)


def test_a_caption_model_id_must_be_an_id():
    from services.publisher.server import caption_inputs
    from socialgan.errors import InvalidArgument
    from socialgan.v1 import publisher_pb2

    with pytest.raises(InvalidArgument, match="^caption.model_id: "):
        caption_inputs(publisher_pb2.CaptionInputs(hashtag="x", model_id="../../etc/passwd"))
    assert caption_inputs(publisher_pb2.CaptionInputs(hashtag="x", model_id="run-1")).seed == 0


def test_a_cancel_ends_a_scrape_waiting_in_an_api_retry_at_once_as_cancelled(store,
                                                                             monkeypatch):
    # Before: the walk sat in the API client's backoff (seconds per retry) after a cancel,
    # and then ended FAILED with the API's error instead of CANCELLED.
    import time

    from socialgan.jobs import CANCELLED, JobRunner
    from socialgan.scraping.api import API_POLICY
    from socialgan.scraping.download import Downloader
    from socialgan.scraping.mastodon import MastodonHashtagSource

    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")  # 127.0.0.1:1 only
    slow = Downloader(dataclasses.replace(API_POLICY, backoff_base=5.0, backoff_max=5.0,
                                          allow_private=True))
    source = MastodonHashtagSource("http://127.0.0.1:1", api_downloader=slow)
    runner = JobRunner()
    try:
        runner.start("scrape", "cancel-me", lambda job: run_scrape(store, source, "cancel", None,
                                                                   job).summary())
        time.sleep(0.5)  # inside the first retry's backoff by now
        asked = time.monotonic()
        runner.cancel("cancel-me", "scrape")
        while runner.get("cancel-me", "scrape").snapshot().state != CANCELLED:
            assert time.monotonic() - asked < 2.0, runner.get("cancel-me", "scrape").snapshot()
            time.sleep(0.05)
    finally:
        runner.shutdown()

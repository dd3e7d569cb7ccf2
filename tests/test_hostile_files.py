"""Hostile files (issue #9 figure): a few hundred generated files (tests/hostile_files.py)
through the folder, zip and URL sources and the filter. Crashes 0 (no scrape or filter run
raises), hangs 0 (each run under a watchdog), every outcome named: each file is either
stored (its bytes are in raw/) or listed in the manifest by name with a reason; in the
filter, each raw image is kept or dropped with a reason. Run with -s to see the figures."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from socialgan import images
from socialgan.filtering import build_dataset, read_manifest
from socialgan.scraping import (
    Downloader,
    DownloadPolicy,
    FolderSource,
    UrlListSource,
    ZipSource,
    run_scrape,
)
from socialgan.storage import keys
from tests.hostile_files import Hostile, hostile_files, plant_special_files, zip_bombs
from tests.local_image_server import ImageServer

WATCHDOG_SECONDS = 60


generated = functools.cache(hostile_files)


@pytest.fixture
def hostile() -> list[Hostile]:
    files = generated()
    assert len(files) >= 250
    return files


def valid_png() -> bytes:
    return next(h.data for h in generated() if h.name == "valid-png.png")


@pytest.fixture(autouse=True)
def _local_imports(tmp_path, monkeypatch):
    # Folder and zip sources read under an import root (issue #9 item 1): tmp_path here.
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path))


def within(seconds: float, run, *args, **kwargs):
    """run(*args) on a thread; fails the test as a hang if it takes longer than `seconds`.
    Any exception it raises is raised here: a crash."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = run(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"hang: {getattr(run, '__name__', run)} ran past {seconds}s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def stored_shas(store, hashtag) -> set[str]:
    return {Path(k).stem for k in store.list(keys.raw_prefix(hashtag))
            if not k.endswith(".json")}


def outcomes(store, result, names: dict[str, Hostile]) -> Counter:
    """Each hostile file's outcome: 'stored' or its failure reason; asserts each has one,
    and that nothing is stored that was not handed in."""
    manifest = store.get_json(result.manifest_key)
    assert manifest["failures_not_listed"] == 0
    failures = {f["name"]: f for f in manifest["failures"]}
    stored = stored_shas(store, result.hashtag)
    handed = {hashlib.sha256(h.data).hexdigest() for h in names.values()}
    assert stored <= handed
    seen: Counter = Counter()
    for name, h in names.items():
        if hashlib.sha256(h.data).hexdigest() in stored:
            seen["stored"] += 1
        else:
            assert name in failures, f"{name!r} ({h.category}) has no outcome"
            failure = failures[name]
            assert failure["reason"] and failure["detail"], failure
            seen[failure["reason"]] += 1
    assert sum(seen.values()) == len(names)
    return seen


def figure(label: str, counts: Counter, total: int) -> None:
    reasons = ", ".join(f"{n} {r}" for r, n in counts.most_common())
    print(f"\nhostile files via {label}: {total} files, crashes 0, hangs 0, "
          f"named {sum(counts.values())}/{total}: {reasons}")


def test_hostile_files_through_a_folder(store, tmp_path, hostile):
    folder = tmp_path / "hostile"
    folder.mkdir()
    for h in hostile:
        (folder / h.name).write_bytes(h.data)
    result = within(WATCHDOG_SECONDS, run_scrape, store, FolderSource(folder), "hostile")
    counts = outcomes(store, result, {h.name: h for h in hostile})
    figure("folder", counts, len(hostile))
    assert counts["stored"] >= 100 and counts["undecodable"] >= 50
    assert counts["decompression_bomb"] >= 8


def _member_name(h: Hostile, index: int) -> str:
    try:
        h.name.encode("utf-8")
        return h.name
    except UnicodeEncodeError:  # a name that is only bytes cannot be a zip member's
        return f"member-{index}.png"


def test_hostile_files_through_a_zip(store, tmp_path, hostile):
    archive = tmp_path / "hostile.zip"
    names = {}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for i, h in enumerate(hostile):
            name = _member_name(h, i)
            names[name] = h
            z.writestr(name, h.data)
    result = within(WATCHDOG_SECONDS, run_scrape, store, ZipSource(archive), "hostile")
    counts = outcomes(store, result, names)
    figure("zip", counts, len(names))
    assert counts["stored"] >= 100


def test_zip_bombs_are_named_failures(store, tmp_path):
    folder = tmp_path / "zips"
    folder.mkdir()
    lines, reasons = [], Counter()
    for archive, what in zip_bombs(folder):
        result = within(WATCHDOG_SECONDS, run_scrape, store, ZipSource(archive),
                        f"z{len(lines)}")
        manifest = store.get_json(result.manifest_key)
        failures = {f["name"]: f["reason"] for f in manifest["failures"]}
        reasons.update(failures.values())
        lines.append(f"{archive.name} ({what}): {result.counts.new} stored, {failures}")
        if archive.name == "bomb.zip":
            assert failures == {"zeros.png": "too_large"} and result.counts.new == 1
        if archive.name == "nested.zip":  # never extracted; hostile names named as such
            assert failures["../../escape.png"] == failures["/absolute.png"] == "bad_name"
            assert result.counts.new == 1
        if archive.name == "lying-size.zip":
            assert failures["big.png"] in ("too_large", "bad_zip_member")
    print("\nzip bombs:\n  " + "\n  ".join(lines))


def test_hostile_files_through_urls(store, tmp_path, hostile):
    served = tmp_path / "served"
    served.mkdir()
    names = {}
    with ImageServer(image_dir=served) as server:
        for i, h in enumerate(hostile):
            (served / f"h{i:04d}.bin").write_bytes(h.data)
            names[server.url(f"/img/h{i:04d}.bin")] = h
        policy = DownloadPolicy(allow_private=True, max_attempts=1, max_in_flight=8,
                                per_host_limit=8)
        source = UrlListSource(urls=list(names), downloader=Downloader(policy))
        result = within(WATCHDOG_SECONDS, run_scrape, store, source, "hostile")
    counts = outcomes(store, result, names)
    figure("URLs", counts, len(names))
    assert counts["stored"] >= 100


def test_hostile_files_through_the_filter(store, hostile):
    """Every hostile file put straight into raw/ (as if an older scraper had stored it):
    the filter decodes each under its guards and names what it drops."""
    tag = "hostile"
    raw = {}
    for h in hostile:
        sha = hashlib.sha256(h.data).hexdigest()
        ext = images.sniff_extension(h.data) or ".png"
        key = keys.raw_image_key(tag, sha, ext)
        store.put_bytes(key, h.data)
        store.put_json(keys.raw_sidecar_key(tag, sha), {"sha256": sha, "source": "test"})
        raw[key] = h
    summary = within(WATCHDOG_SECONDS, build_dataset, store, tag, dataset_id="hostile-ds",
                     skip_stages=("text",), contact_sheets=True)
    manifest = read_manifest(store, "hostile-ds")
    kept = {k["key"] for k in manifest["kept_images"]}
    dropped = {d["key"]: d["reason"] for d in manifest["dropped_images"]}
    assert kept | set(dropped) == set(raw) and not kept & set(dropped)
    assert all(dropped.values())
    counts = Counter(dropped.values()) + Counter({"kept": len(kept)})
    figure("the filter", counts, len(raw))
    assert summary["kept"] == len(kept) >= 10
    assert counts["undecodable"] >= 50


def test_fifos_and_links_out_of_the_folder_neither_hang_nor_leak(store, tmp_path):
    """A FIFO and links leaving the folder (to a file beside it, /etc/passwd,
    /proc/self/environ, /dev/zero, /dev/stdin, a folder outside, a loop) next to a good
    image: the scrape finishes, stores the good image only, and reads nothing outside."""
    folder = tmp_path / "specials"
    folder.mkdir()
    (folder / "good.png").write_bytes(valid_png())
    planted = plant_special_files(folder, tmp_path / "outside")
    fifo = folder / "fifo.png"
    source = FolderSource(folder)
    source.validate()
    try:
        result = within(20, run_scrape, store, source, "specials")
    finally:  # unblock a reader stuck on the FIFO (the code before item 1 opened it)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    stored = stored_shas(store, "specials")
    assert stored == {hashlib.sha256(valid_png()).hexdigest()}
    failures = {f["name"]: f["reason"] for f in store.get_json(result.manifest_key)["failures"]}
    print(f"\nFIFOs and links ({len(planted)} planted): 1 stored; named failures {failures}")
    # Each planted file is a named failure; the folder link is not walked into at all.
    assert set(failures) == set(planted) - {"dir-link-out/secret.png"}
    assert all(failures.values())


"""The storage contract, run against both backends (local folder, and S3 via a real
S3-protocol server on loopback)."""

from __future__ import annotations

import hashlib

import pytest

from socialgan.errors import InvalidArgument, NotFound
from socialgan.storage import keys


def test_put_get_roundtrip_records_sha256(any_store):
    data = b"\x89PNG fake but bytes are bytes" * 100
    info = any_store.put_bytes("raw/sunset/a.png", data, "image/png")
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert any_store.get_bytes("raw/sunset/a.png") == data
    stat = any_store.stat("raw/sunset/a.png")
    assert (stat.size, stat.sha256, stat.content_type) == (len(data), info.sha256, "image/png")


def test_overwrite_replaces_whole_object(any_store):
    any_store.put_bytes("runs/x.json", b"old-and-longer")
    any_store.put_bytes("runs/x.json", b"new")
    assert any_store.get_bytes("runs/x.json") == b"new"
    assert any_store.stat("runs/x.json").sha256 == hashlib.sha256(b"new").hexdigest()


def test_missing_object_is_not_found(any_store, tmp_path):
    with pytest.raises(NotFound):
        any_store.get_bytes("models/nope/model.json")
    with pytest.raises(NotFound):
        any_store.stat("models/nope/model.json")
    with pytest.raises(NotFound):
        any_store.get_file("models/nope/model.json", tmp_path / "out")
    assert not any_store.exists("models/nope/model.json")


def test_list_is_recursive_sorted_and_prefix_bounded(any_store):
    for key in ["raw/b/2.png", "raw/a/1.png", "raw/a/sub/3.png", "rawx/4.png", "grids/5.png"]:
        any_store.put_bytes(key, b"x")
    assert list(any_store.list("raw/")) == ["raw/a/1.png", "raw/a/sub/3.png", "raw/b/2.png"]
    assert list(any_store.list("raw/a/")) == ["raw/a/1.png", "raw/a/sub/3.png"]
    assert "rawx/4.png" in list(any_store.list(""))
    assert list(any_store.list("nothing/")) == []


def test_files_and_json_roundtrip(any_store, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    info = any_store.put_file("checkpoints/run1/step-00000001.pt", src)
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "copy.bin"
    any_store.get_file("checkpoints/run1/step-00000001.pt", out)
    assert out.read_bytes() == src.read_bytes()
    any_store.put_json("runs/train/r/options.json", {"steps": 3, "hashtag": "sunset"})
    assert any_store.get_json("runs/train/r/options.json") == {"steps": 3, "hashtag": "sunset"}


def test_delete_is_idempotent(any_store):
    any_store.put_bytes("posts/p/post.json", b"{}")
    any_store.delete("posts/p/post.json")
    any_store.delete("posts/p/post.json")
    assert not any_store.exists("posts/p/post.json")
    assert list(any_store.list("posts/")) == []


@pytest.mark.parametrize(
    "key", ["../x", "/etc/passwd", "raw/../../x", "raw//x", "a\\b", "", "raw/./x", "raw/x y"]
)
def test_unsafe_keys_are_refused(any_store, key):
    with pytest.raises(InvalidArgument):
        any_store.put_bytes(key, b"x")


@pytest.mark.parametrize("hashtag", ["../x", "a/b", "", "x" * 101, "sun set"])
def test_keys_built_from_user_input_are_validated(hashtag):
    with pytest.raises(InvalidArgument, match="hashtag"):
        keys.raw_prefix(hashtag)


def test_hashtags_are_normalised_into_keys():
    assert keys.raw_image_key("#Sunset", "ab" * 32, ".png") == f"raw/sunset/{'ab' * 32}.png"
    with pytest.raises(InvalidArgument, match="run_id"):
        keys.checkpoint_prefix("../x")


def test_local_store_keeps_no_partial_files(store):
    store.put_bytes("raw/t/a.png", b"data")
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert store.url("raw/t/a.png").startswith("file://")

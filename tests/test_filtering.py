"""The skeleton filter: raw/<hashtag>/ -> uint8 shards + manifest + report."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.filtering import build_dataset, dataset, load_dataset, read_manifest
from socialgan.images import decode_rgb
from socialgan.storage import keys

TAG = "emoji"


def put_raw(store, data: bytes, ext: str = ".png", tag: str = TAG) -> str:
    """Store bytes the way the scraper does: content-addressed, with a sidecar."""
    sha = hashlib.sha256(data).hexdigest()
    store.put_bytes(keys.raw_image_key(tag, sha, ext), data)
    store.put_json(keys.raw_sidecar_key(tag, sha), {"source": "test", "sha256": sha})
    return sha


def reencoded(png: bytes) -> bytes:
    """The same pixels in another container: different file, same picture."""
    buf = io.BytesIO()
    decode_rgb(png).save(buf, format="BMP")
    return buf.getvalue()


def bomb_png(png: bytes, side: int = 30_000) -> bytes:
    """A real PNG whose header claims side x side pixels (900 Mpx): Pillow's bomb guard."""
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", side, side)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return png[:16] + bytes(ihdr) + crc + png[33:]


@pytest.fixture
def emoji(store, twemoji_paths):
    """The real Twemoji as a raw set; returns their sha256 ids."""
    return [put_raw(store, p.read_bytes()) for p in twemoji_paths]


def test_real_images_become_uint8_nhwc_shards_with_manifest_and_report(store, emoji):
    result = build_dataset(store, "#Emoji", dataset_id="ds1")

    assert result["kept"] == len(emoji) and result["dropped"] == 0
    images, manifest = load_dataset(store, "ds1")
    assert images.dtype == np.uint8 and images.shape == (len(emoji), 64, 64, 3)
    assert images.std() > 20  # real pictures, not a blank array
    assert manifest["hashtag"] == TAG and manifest["parameters"]["resolution"] == 64
    assert {k["id"] for k in manifest["kept_images"]} == set(emoji)
    report = store.get_json(keys.dataset_report_key("ds1"))
    assert report["total"] == len(emoji) and report["kept"] == len(emoji)
    assert report["dropped_by_reason"] == {} and "min_side" in report["thresholds"]
    assert result["shard_keys"] == [keys.dataset_shard_key("ds1", 0)]


def test_broken_files_are_dropped_with_their_reason_and_exact_duplicates_collapse(
        store, twemoji_paths):
    good = [p.read_bytes() for p in twemoji_paths[:10]]
    good_ids = [put_raw(store, data) for data in good]
    truncated = put_raw(store, good[0][: len(good[0]) // 2])
    empty = put_raw(store, b"", ext=".jpg")
    text = put_raw(store, b"<html>not an image</html>", ext=".png")
    bomb = put_raw(store, bomb_png(good[1]))
    duplicate = put_raw(store, reencoded(good[2]), ext=".bmp")

    result = build_dataset(store, TAG, dataset_id="ds2")

    assert result["kept"] == 10
    assert result["dropped_by_reason"] == {"undecodable": 1, "empty": 1, "not_an_image": 1,
                                           "decompression_bomb": 1, "duplicate": 1}
    reasons = {d["id"]: d["reason"] for d in read_manifest(store, "ds2")["dropped_images"]}
    dropped_copy = duplicate if duplicate in reasons else good_ids[2]  # first key is kept
    assert reasons == {truncated: "undecodable", empty: "empty", text: "not_an_image",
                       bomb: "decompression_bomb", dropped_copy: "duplicate"}
    report = store.get_json(result["report_key"])
    assert report["total"] == 15 and report["dropped"] == 5  # sidecars are not images


def test_banner_aspect_crops_to_three_by_one(store, emoji):
    result = build_dataset(store, TAG, resolution=32, aspect="banner", dataset_id="wide")

    images, _ = load_dataset(store, "wide")
    assert (result["width"], result["height"]) == (96, 32)
    assert images.shape == (len(emoji), 32, 96, 3)


def test_images_are_split_into_shards_and_load_back_in_manifest_order(store, emoji,
                                                                     monkeypatch):
    whole = build_dataset(store, TAG, dataset_id="whole")
    monkeypatch.setattr(dataset, "SHARD_IMAGES", 10)

    result = build_dataset(store, TAG, dataset_id="sharded")

    assert len(whole["shard_keys"]) == 1
    assert len(result["shard_keys"]) == 5  # 48 images: 4 x 10 + 8
    images, manifest = load_dataset(store, "sharded")
    np.testing.assert_array_equal(images, load_dataset(store, "whole")[0])
    assert [k["id"] for k in manifest["kept_images"]] == \
        [k["id"] for k in read_manifest(store, "whole")["kept_images"]]


def test_min_side_threshold_drops_small_images_and_unknown_thresholds_are_rejected(
        store, emoji):
    small = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 30, 30)).save(small, format="PNG")
    put_raw(store, small.getvalue())

    result = build_dataset(store, TAG, thresholds={"min_side": 32}, dataset_id="big")
    assert result["dropped_by_reason"] == {"too_small": 1}

    with pytest.raises(InvalidArgument, match="thresholds.blurriness"):
        build_dataset(store, TAG, thresholds={"blurriness": 0.5})


def test_progress_reports_every_image_and_ends_at_total(store, emoji):
    calls = []

    build_dataset(store, TAG, progress=lambda *args: calls.append(args))

    assert calls[0] == (0, len(emoji), 0, {})
    assert calls[-1] == (len(emoji), len(emoji), len(emoji), {})
    assert [c[0] for c in calls] == list(range(len(emoji) + 1))


def test_an_empty_raw_set_is_not_found_and_naming_the_hashtag(store):
    with pytest.raises(NotFound, match="#nothing"):
        build_dataset(store, "nothing")


def test_a_set_with_nothing_usable_fails_and_writes_no_manifest(store):
    put_raw(store, b"")
    put_raw(store, b"garbage bytes")

    with pytest.raises(FailedPrecondition, match="no usable images for #emoji"):
        build_dataset(store, TAG, dataset_id="junk")
    assert not store.exists(keys.dataset_manifest_key("junk"))


@pytest.mark.parametrize("kwargs, field", [
    ({"resolution": 4}, "resolution"),
    ({"aspect": "portrait"}, "aspect"),
    ({"dataset_id": "../x"}, "dataset_id"),
])
def test_bad_parameters_are_rejected_naming_the_field(store, emoji, kwargs, field):
    with pytest.raises(InvalidArgument) as err:
        build_dataset(store, TAG, **kwargs)
    assert err.value.field == field


def test_bad_hashtag_is_rejected(store):
    with pytest.raises(InvalidArgument, match="hashtag"):
        build_dataset(store, "../x")


def test_loading_a_missing_dataset_is_not_found(store):
    with pytest.raises(NotFound, match="no dataset 'missing'"):
        load_dataset(store, "missing")


def test_filtering_and_loading_work_on_both_storage_backends(any_store, twemoji_paths):
    for path in twemoji_paths[:6]:
        put_raw(any_store, path.read_bytes())

    build_dataset(any_store, TAG, dataset_id="both")

    images, manifest = load_dataset(any_store, "both")
    assert images.shape == (6, 64, 64, 3) and manifest["kept"] == 6

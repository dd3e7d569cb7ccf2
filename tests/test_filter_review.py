"""The filter review: a person keeps an image the filter dropped, or drops one it kept, and
the next dataset of the hashtag follows them; what cannot be trained on stays out."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from socialgan.errors import InvalidArgument, NotFound
from socialgan.filtering import build_dataset, read_manifest
from socialgan.filtering.review import read_review, review_image
from socialgan.storage import keys
from tests.conftest import TWEMOJI_DIR


def _put(store, tag: str, data: bytes, ext: str = ".png") -> str:
    sha = hashlib.sha256(data).hexdigest()
    store.put_bytes(keys.raw_image_key(tag, sha, ext), data)
    return sha


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def hashtag(store) -> dict[str, str]:
    """24 real Twemoji, a flat grey square (the filter drops it), a broken file."""
    ids = {p.stem: _put(store, "emoji", p.read_bytes())
           for p in sorted(TWEMOJI_DIR.glob("*.png"))[:24]}
    ids["grey"] = _put(store, "emoji", _png(Image.new("RGB", (64, 64), (128, 128, 128))))
    ids["broken"] = _put(store, "emoji", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return ids


def _outcome(store, dataset_id: str) -> tuple[dict, dict]:
    manifest = read_manifest(store, dataset_id)
    return ({e["id"]: e for e in manifest["kept_images"]},
            {e["id"]: e for e in manifest["dropped_images"]})


def test_the_next_dataset_follows_the_review(store, hashtag):
    build_dataset(store, "emoji", resolution=32, dataset_id="before", contact_sheets=False)
    kept, dropped = _outcome(store, "before")
    grey, broken = hashtag["grey"], hashtag["broken"]
    assert grey in dropped and broken in dropped
    some_emoji = sorted(kept)[0]

    review_image(store, "#Emoji", grey, "keep")  # a person wants the grey square
    review_image(store, "emoji", broken, "keep")  # and the broken file: it cannot be
    review_image(store, "emoji", some_emoji, "drop")
    assert read_review(store, "emoji") == {grey: "keep", broken: "keep", some_emoji: "drop"}

    build_dataset(store, "emoji", resolution=32, dataset_id="after", contact_sheets=False)
    kept, dropped = _outcome(store, "after")
    assert grey in kept and kept[grey]["review"] == "keep"
    assert dropped[some_emoji]["reason"] == "reviewed"
    assert dropped[some_emoji]["detail"] == "dropped in the filter review"
    assert broken in dropped and dropped[broken]["reason"] != "reviewed"  # still undecodable
    manifest = read_manifest(store, "after")
    assert manifest["parameters"]["reviewed"] == {"keep": 2, "drop": 1}
    shards = np.load(io.BytesIO(store.get_bytes(manifest["shard_keys"][0])))
    assert shards.shape[0] == manifest["kept"]  # the kept grey square is trained on

    review_image(store, "emoji", grey, "")  # cleared: the filter decides again
    build_dataset(store, "emoji", resolution=32, dataset_id="cleared", contact_sheets=False)
    assert hashtag["grey"] in _outcome(store, "cleared")[1]


@pytest.mark.parametrize(("image_id", "decision", "error", "field"), [
    ("../../etc/passwd", "keep", InvalidArgument, "image_id"),
    ("A" * 64, "keep", InvalidArgument, "image_id"),
    ("0" * 64, "keep", NotFound, "image_id"),  # not an image of this hashtag
    (None, "maybe", InvalidArgument, "decision"),
])
def test_a_review_names_what_it_refuses(store, hashtag, image_id, decision, error, field):
    with pytest.raises(error) as caught:
        review_image(store, "emoji", image_id or hashtag["grey"], decision)
    assert str(caught.value).startswith(field)
    with pytest.raises(InvalidArgument):
        review_image(store, "no such tag!", hashtag["grey"], "keep")
    assert read_review(store, "emoji") == {}


def test_a_reviewed_drop_takes_its_look_alikes_but_never_a_reviewed_keep(tmp_path):
    """Real photo tiles (the tuning mix's goods: six tiles of each of nine wallpapers). A
    person drops one tile of BytheWater: the next dataset also leaves out the tiles that
    look like it (reason off_topic, stage review, naming it), except one they kept."""
    from socialgan.filtering import eval_mixes as em
    from socialgan.storage import LocalObjectStore
    from tests.test_filter_generalisation import goods, outcome, put

    store = LocalObjectStore(tmp_path)
    names = put(store, goods(em.build_tuning_mix()))
    ids = {name: image_id for image_id, name in names.items()}
    review_image(store, "nature", ids["good/BytheWater-t0"], "drop")
    build_dataset(store, "nature", resolution=128, dataset_id="one", skip_stages=["text"],
                  contact_sheets=False)
    _, dropped = outcome(store, "one", names)
    assert dropped["good/BytheWater-t0"]["reason"] == "reviewed"
    alike = {n: d for n, d in dropped.items()
             if d["stage"] == "review" and n != "good/BytheWater-t0"}
    assert {"good/BytheWater-t1", "good/BytheWater-t2"} <= set(alike), sorted(alike)
    assert all(d["reason"] == "off_topic" and d["detail"] ==
               f"like {ids['good/BytheWater-t0']}, which the filter review dropped"
               for d in alike.values()), {n: (d["reason"], d["detail"]) for n, d in alike.items()}
    assert len(alike) <= 0.3 * len(names)

    review_image(store, "nature", ids["good/BytheWater-t1"], "keep")
    build_dataset(store, "nature", resolution=128, dataset_id="two", skip_stages=["text"],
                  contact_sheets=False)
    kept, dropped = outcome(store, "two", names)
    assert "good/BytheWater-t1" in kept and dropped["good/BytheWater-t2"]["stage"] == "review"

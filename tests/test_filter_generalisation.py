"""Issue 13: a filter that generalises (people as their own reason, rendered graphics among
photos, scores that do not move with which stages ran, readable contact sheets).

Real images only: tiles of KDE Plasma's photos and art and scikit-image's astronaut, from
socialgan.filtering.eval_mixes (scripts/fetch_eval_images.sh fetches them).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from socialgan.filtering import build_dataset, read_manifest, report
from socialgan.filtering import eval_mixes as em
from socialgan.images import sniff_extension
from socialgan.storage import LocalObjectStore, keys


@pytest.fixture(scope="module")
def mix():
    if not (em.PACKAGED_DIR / ".complete").is_file():
        pytest.fail("the packaged evaluation pictures are missing: run "
                    "scripts/fetch_eval_images.sh")
    return em.build_tuning_mix()


def put(store, items, tag="nature") -> dict[str, str]:
    names = {}
    for item in items:
        sha = hashlib.sha256(item.data).hexdigest()
        names[sha] = item.name
        store.put_bytes(keys.raw_image_key(tag, sha, sniff_extension(item.data) or ".jpg"),
                        item.data)
    return names


def pick(mix, *names):
    chosen = [i for i in mix if i.name in names]
    assert len(chosen) == len(names)
    return chosen


def goods(mix, n=None):
    return [i for i in mix if i.label == "good"][:n]


def outcome(store, dataset_id, names):
    m = read_manifest(store, dataset_id)
    kept = {names[k["id"]]: k for k in m["kept_images"]}
    dropped = {names[d["id"]]: d for d in m["dropped_images"]}
    return kept, dropped


def test_the_mixes_are_deterministic_and_labelled_with_the_seven_kinds(mix):
    again = em.build_tuning_mix()
    assert [hashlib.sha256(i.data).digest() for i in again] == \
        [hashlib.sha256(i.data).digest() for i in mix]
    assert {i.label for i in mix} == set(em.KINDS) | {"good"}
    held = em.build_heldout_mix()
    assert {i.label for i in held} == set(em.KINDS) | {"good"}
    # No photo or wallpaper is in both: the held-out mix is made of other packages' images.
    pictures = ("good", "abstract", "portrait", "off_topic")
    assert not {i.data for i in held if i.label in pictures} & \
        {i.data for i in mix if i.label in pictures}


def test_a_portrait_is_dropped_by_default_and_kept_under_a_people_hashtag(tmp_path, mix):
    items = goods(mix, 12) + pick(mix, "portrait/astronaut-face", "portrait/astronaut-lfw0")
    skip = ["text", "renders", "outliers", "near_duplicates"]
    store = LocalObjectStore(tmp_path)
    names = put(store, items)
    build_dataset(store, "nature", resolution=128, dataset_id="n", skip_stages=skip,
                  contact_sheets=False)
    kept, dropped = outcome(store, "n", names)
    assert dropped["portrait/astronaut-face"]["reason"] == "face"
    assert dropped["portrait/astronaut-lfw0"]["reason"] == "face"
    assert not [n for n, d in dropped.items() if n.startswith("good/") and d["stage"] == "faces"]

    names = put(store, items, tag="selfie")  # in FILTER_PEOPLE_HASHTAGS by default
    build_dataset(store, "selfie", resolution=128, dataset_id="s", skip_stages=skip,
                  contact_sheets=False)
    kept, dropped = outcome(store, "s", names)
    assert "portrait/astronaut-face" in kept
    assert not [d for d in dropped.values() if d["stage"] == "faces"]


def test_the_people_hashtags_are_a_setting(tmp_path, mix, monkeypatch):
    monkeypatch.setenv("FILTER_PEOPLE_HASHTAGS", "astronauts")
    store = LocalObjectStore(tmp_path)
    names = put(store, goods(mix, 6) + pick(mix, "portrait/astronaut-face"), tag="astronauts")
    build_dataset(store, "astronauts", resolution=128, dataset_id="a", contact_sheets=False,
                  skip_stages=["text", "renders", "outliers"])
    kept, _ = outcome(store, "a", names)
    assert "portrait/astronaut-face" in kept


def test_rendered_wallpapers_among_photos_are_dropped_as_graphic(tmp_path, mix):
    walls = ("abstract/Cascade-crop", "abstract/IceCold-crop", "abstract/Canopee")
    store = LocalObjectStore(tmp_path)
    names = put(store, goods(mix) + pick(mix, *walls))
    build_dataset(store, "nature", resolution=128, dataset_id="r", skip_stages=["text"],
                  contact_sheets=False)
    kept, dropped = outcome(store, "r", names)
    for wall in walls:
        assert dropped[wall]["reason"] == "graphic", dropped.get(wall) or kept[wall]["scores"]
        assert dropped[wall]["score"] > dropped[wall]["threshold"]
    lost = [n for n, d in dropped.items() if n.startswith("good/") and d["stage"] == "renders"]
    # At most two of 54 photos, both tiles of summer_1am's violet sky: its second tile sits
    # at the cutoff (a render z of 2.10 against 2.0 with numpy 2.4/pillow 13, just under
    # it with the versions before), so the bound is not one tile's luck.
    assert len(lost) <= 2, lost
    assert all(n.startswith("good/summer_1am") for n in lost), lost
    assert all("render_z" in k["scores"] for k in kept.values())


def test_set_scores_do_not_move_when_a_content_stage_is_switched_off(tmp_path, mix):
    """Issue 13: switching the face stage on let abstract images through (scores depended
    on what else was left in the set). Images a content stage drops still count."""
    photos = [i for i in goods(mix) if "ColdRipple" not in i.name][:24]  # fog: "flat"
    items = photos + pick(mix, "portrait/astronaut-face", "portrait/astronaut",
                                  "portrait/astronaut-selfie", "abstract/Canopee")
    store = LocalObjectStore(tmp_path)
    names = put(store, items)
    build_dataset(store, "nature", resolution=128, dataset_id="on", skip_stages=["text"],
                  contact_sheets=False)
    build_dataset(store, "nature", resolution=128, dataset_id="off",
                  skip_stages=["text", "faces"], contact_sheets=False)
    on, dropped_on = outcome(store, "on", names)
    off, _ = outcome(store, "off", names)
    assert dropped_on["portrait/astronaut-face"]["reason"] == "face"
    common = set(on) & set(off)
    assert len(common) >= 15
    for name in common:
        for score in ("outlier_z", "render_z"):
            assert on[name]["scores"][score] == off[name]["scores"][score], (name, score)


def test_handwriting_and_screenshots_count_as_text(mix):
    from socialgan.filtering import text_detector
    from socialgan.filtering.quality import small_copy
    from socialgan.images import decode_rgb

    detector = text_detector.text_detector()
    assert detector is not None, "the PP-OCR detector comes with scripts/fetch_eval_images.sh"
    texts = [i for i in mix if i.label == "text" and "caption" not in i.name]
    assert any("handwriting" in i.name for i in texts) and any("chat" in i.name for i in texts)
    for item in texts:
        assert detector.text_fraction(small_copy(decode_rgb(item.data))) > 0.05, item.name
    for item in goods(mix, 12):
        assert detector.text_fraction(small_copy(decode_rgb(item.data))) < 0.01, item.name


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "PNG")
    return buf.getvalue()


def _ink_columns(sheet: Image.Image, top: int, bottom: int) -> np.ndarray:
    band = np.asarray(sheet.convert("L"))[top:bottom]
    return np.flatnonzero((band < 128).any(axis=0))


def test_a_tile_says_id_score_against_threshold_and_rule():
    assert report.caption_lines({"id": "abc123", "reason": "blurry", "score": 4.2,
                                 "threshold": 7.0, "stage": "quality"}) == \
        ("abc123", "blurry 4.2 < 7")
    assert report.caption_lines({"id": "d", "reason": "text_heavy", "score": 0.31,
                                 "threshold": 0.05, "stage": "text"})[1] == \
        "text_heavy 0.31 > 0.05"


def test_an_undecodable_file_shows_its_reason_not_a_zero():
    entry = {"id": "e0", "key": "raw/x/e0.jpg", "reason": "empty", "score": 0.0,
             "threshold": None, "stage": "decode", "detail": "0 bytes"}
    first, second = report.caption_lines(entry)
    assert first == "e0" and second == "empty: 0 bytes" and "0.0" not in second
    sheet = Image.open(io.BytesIO(report.contact_sheet([entry], lambda k: b"", "dropped: empty")))
    assert sheet.format == "PNG"


def test_a_one_image_sheet_does_not_cut_its_title():
    title = "dropped: decompression_bomb (a long reason name for one tile)"
    entry = {"id": "f1", "key": "raw/x/f1.png", "reason": "flat", "score": 2.0,
             "threshold": 6.0, "stage": "quality"}
    png = report.contact_sheet([entry], lambda k: _png((90, 120, 200)), title)
    sheet = Image.open(io.BytesIO(png))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    heading = f"{title}: 1 images"
    assert sheet.width >= probe.textlength(heading, font=report._font()) + report.MARGIN
    ink = _ink_columns(sheet, 2, report.HEADER - 2)
    assert ink.max() < sheet.width - 2  # the title's last letter is inside the sheet
    assert ink.max() > report.THUMB + 2 * report.MARGIN  # and longer than one tile

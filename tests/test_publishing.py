"""Captions, the local gallery, dry runs and idempotent publishing, in process and over gRPC."""

from __future__ import annotations

import re

import grpc
import pytest

from services.publisher.server import register
from socialgan.errors import FailedPrecondition, InvalidArgument, NotFound
from socialgan.publishing import (
    DRAFT,
    MAX_CAPTION_CHARS,
    PUBLISHED,
    CaptionInputs,
    build_caption,
    get_post,
    posting,
    publish,
)
from socialgan.publishing.caption import count_hashtags
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.storage import keys
from socialgan.v1 import publisher_pb2, publisher_pb2_grpc
from tests.conftest import TEST_TOKEN

GRID = "grids/run-1/grid.png"
INPUTS = CaptionInputs(hashtag="#Sunset", method="DCGAN (PyTorch tutorial), 64x64, 300 steps",
                       metrics={"swd": 12.345, "ms_ssim": 0.2141}, model_id="run-1", seed=7)


@pytest.fixture
def grid(twemoji_paths) -> bytes:
    return twemoji_paths[0].read_bytes()


def with_grid(store, data: bytes, key: str = GRID):
    store.put_bytes(key, data, "image/png")
    return store


def test_caption_names_hashtag_method_and_metrics():
    text = build_caption(INPUTS)
    lines = text.splitlines()
    assert lines[0] == "#sunset, dreamed up by a GAN."
    assert lines[1] == "Method: DCGAN (PyTorch tutorial), 64x64, 300 steps"
    assert lines[2] == "Metrics: SWD 12.3 · MS-SSIM 0.214"
    assert lines[3] == "Model: run-1 · seed 7"
    assert "Made with SocialGAN" in text
    assert count_hashtags(text) == 1


def test_caption_without_metrics_or_method_says_so():
    text = build_caption(CaptionInputs(hashtag="cats", extra_hashtags=("GAN", "cats", "#art")))
    assert "Method: not recorded" in text and "Metrics: none recorded" in text
    assert text.splitlines()[-1] == "#gan #art"  # the main tag is not repeated
    # The GAN's losses say nothing to a reader: only quality metrics are shown.
    losses = build_caption(CaptionInputs(hashtag="cats", metrics={"loss_d": 0.5, "loss_g": 1.2}))
    assert "Metrics: none recorded" in losses and "loss" not in losses


def test_caption_limits_are_enforced():
    with pytest.raises(InvalidArgument, match="caption.extra_hashtags"):
        build_caption(CaptionInputs(hashtag="a", extra_hashtags=tuple(f"t{i}" for i in range(30))))
    assert count_hashtags(build_caption(CaptionInputs(
        hashtag="a", extra_hashtags=tuple(f"t{i}" for i in range(29))))) == 30
    # A method line too long for the platform is shortened (it is the last thing to go),
    # not refused: the caption still fits.
    long_method = build_caption(CaptionInputs(hashtag="a", method="x" * MAX_CAPTION_CHARS))
    assert len(long_method) <= MAX_CAPTION_CHARS and "x…" in long_method
    with pytest.raises(InvalidArgument, match="caption.hashtag"):
        build_caption(CaptionInputs(hashtag="../x"))
    with pytest.raises(InvalidArgument, match="caption.hashtag"):
        build_caption(CaptionInputs(hashtag=""))


def test_publish_to_the_gallery_on_both_backends(any_store, grid):
    with_grid(any_store, grid)
    post = publish(any_store, "gallery", GRID, INPUTS)

    assert post.state == PUBLISHED and not post.dry_run
    # The post's items are stored as posts/<id>/item-<i>.<ext>; the gallery's one item is
    # the grid as generated.
    assert post.image_key == keys.post_item_key(post.post_id, 0, ".png")
    assert any_store.get_bytes(post.image_key) == grid
    assert any_store.get_json(keys.post_record_key(post.post_id))["state"] == "published"
    page = any_store.get_bytes(keys.GALLERY_INDEX_KEY).decode()
    assert f'src="{post.post_id}/item-0.png"' in page  # relative: works from disk or a server
    assert "#sunset, dreamed up by a GAN." in page
    assert post.url.endswith(f"posts/index.html#{post.post_id}")
    assert get_post(any_store, post.post_id) == post


def test_gallery_lists_posts_newest_first_and_escapes_html(store, grid, monkeypatch):
    with_grid(store, grid)
    monkeypatch.setattr(posting, "_now", lambda: 1_000_000.0)
    older = publish(store, "gallery", GRID, INPUTS)
    monkeypatch.setattr(posting, "_now", lambda: 2_000_000.0)
    newer = publish(store, "gallery", GRID, CaptionInputs(
        hashtag="sunset", method='<script>alert("x")</script> & <b>bold</b>'))

    page = store.get_bytes(keys.GALLERY_INDEX_KEY).decode()
    ids = re.findall(r'<article id="([^"]+)"', page)
    assert ids == [newer.post_id, older.post_id]
    assert "<script>" not in page and "<b>" not in page
    # Escaped as Jinja2 escapes (markupsafe: a double quote becomes &#34;).
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert "1970-01-12" in page and "1970-01-24" in page  # each post's date


def test_dry_run_stores_a_draft_shown_on_the_gallery_as_not_sent(store, grid):
    # A dry run renders exactly what would be sent into posts/ and the gallery page (#10),
    # marked as a draft that was not sent.
    with_grid(store, grid)
    post = publish(store, "gallery", GRID, INPUTS, dry_run=True)
    assert post.state == DRAFT and post.dry_run
    assert store.exists(keys.post_record_key(post.post_id))
    page = store.get_bytes(keys.GALLERY_INDEX_KEY).decode()
    assert f'id="{post.post_id}"' in page and "Dry run for gallery (single): not sent." in page

    published = publish(store, "gallery", GRID, INPUTS)
    page = store.get_bytes(keys.GALLERY_INDEX_KEY).decode()
    assert published.post_id in page and post.post_id in page
    assert page.count("not sent.") == 1 and "Published to the gallery." in page


def test_same_idempotency_key_returns_the_same_post(store, grid):
    with_grid(store, grid)
    first = publish(store, "gallery", GRID, INPUTS, idempotency_key="req-42")
    again = publish(store, "gallery", GRID, INPUTS, idempotency_key="req-42")
    other = publish(store, "gallery", GRID, INPUTS, idempotency_key="req-43")

    assert again == first and other.post_id != first.post_id
    records = [k for k in store.list("posts/") if k.endswith("post.json")]
    assert len(records) == 2
    page = store.get_bytes(keys.GALLERY_INDEX_KEY).decode()
    assert page.count(f'id="{first.post_id}"') == 1
    with pytest.raises(FailedPrecondition, match="req-42"):
        publish(store, "gallery", "grids/run-1/other.png", INPUTS, idempotency_key="req-42")


def test_missing_grid_is_not_found_naming_the_key(store):
    with pytest.raises(NotFound, match="grids/run-1/nope.png"):
        publish(store, "gallery", "grids/run-1/nope.png", INPUTS)
    assert list(store.list("posts/")) == []


def test_social_targets_need_credentials_but_can_dry_run(store, grid):
    with_grid(store, grid)
    for target in ("instagram", "mastodon", "x"):
        with pytest.raises(FailedPrecondition, match="needs account credentials"):
            publish(store, target, GRID, INPUTS)
    assert list(store.list("posts/")) == []
    draft = publish(store, "instagram", GRID, INPUTS, dry_run=True)
    assert draft.state == DRAFT and draft.target == "instagram"


def test_bad_arguments_name_their_field(store, grid):
    with_grid(store, grid)
    with pytest.raises(InvalidArgument, match="target"):
        publish(store, "myspace", GRID, INPUTS)
    with pytest.raises(InvalidArgument, match="grid_key"):
        publish(store, "gallery", "../etc/passwd", INPUTS)
    with pytest.raises(InvalidArgument, match="post_id"):
        get_post(store, "../x")
    with pytest.raises(NotFound, match="post-missing"):
        get_post(store, "post-missing")


# --- over gRPC ------------------------------------------------------------------------------

@pytest.fixture
def service(store):
    running = start_server("publisher", lambda s: register(s, store), port=0, token=TEST_TOKEN)
    address = f"127.0.0.1:{running.port}"
    channel = open_channel(address, TEST_TOKEN)
    yield publisher_pb2_grpc.PublisherServiceStub(channel), address
    channel.close()
    running.stop(grace=0)


def request(**fields) -> publisher_pb2.PublishRequest:
    caption = publisher_pb2.CaptionInputs(hashtag="sunset", method="DCGAN", metrics={"swd": 3.5},
                                          model_id="run-1", seed=7)
    return publisher_pb2.PublishRequest(**{"grid_key": GRID, "caption": caption, **fields})


def test_publish_and_get_post_over_grpc(service, store, grid):
    stub, _ = service
    with_grid(store, grid)
    post = stub.Publish(request(target=publisher_pb2.PUBLISH_TARGET_GALLERY,
                                idempotency_key="k1"), timeout=10)
    assert post.state == publisher_pb2.POST_STATE_PUBLISHED
    assert post.target == publisher_pb2.PUBLISH_TARGET_GALLERY
    assert "#sunset" in post.caption and "SWD 3.5" in post.caption and "seed 7" in post.caption
    assert stub.GetPost(publisher_pb2.GetPostRequest(post_id=post.post_id), timeout=5) == post
    assert stub.Publish(request(idempotency_key="k1"), timeout=10) == post  # unspecified: gallery

    draft = stub.Publish(request(dry_run=True), timeout=10)
    assert draft.state == publisher_pb2.POST_STATE_DRAFT and draft.dry_run


@pytest.mark.parametrize("call, code, word", [
    (lambda s: s.Publish(request(grid_key="grids/run-1/none.png"), timeout=5),
     grpc.StatusCode.NOT_FOUND, "grids/run-1/none.png"),
    (lambda s: s.GetPost(publisher_pb2.GetPostRequest(post_id="post-nope"), timeout=5),
     grpc.StatusCode.NOT_FOUND, "post-nope"),
    (lambda s: s.GetPost(publisher_pb2.GetPostRequest(post_id=""), timeout=5),
     grpc.StatusCode.INVALID_ARGUMENT, "post_id"),
    (lambda s: s.Publish(request(caption=publisher_pb2.CaptionInputs(hashtag="../x")), timeout=5),
     grpc.StatusCode.INVALID_ARGUMENT, "caption.hashtag"),
    (lambda s: s.Publish(request(target=publisher_pb2.PUBLISH_TARGET_MASTODON), timeout=5),
     grpc.StatusCode.FAILED_PRECONDITION, "needs account credentials"),
])
def test_errors_over_grpc(service, store, grid, call, code, word):
    stub, _ = service
    with_grid(store, grid)
    with pytest.raises(grpc.RpcError) as err:
        call(stub)
    assert err.value.code() == code
    assert word in err.value.details()


def test_publisher_requires_the_token(service):
    _, address = service
    with grpc.insecure_channel(address) as bare:
        stub = publisher_pb2_grpc.PublisherServiceStub(bare)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetPost(publisher_pb2.GetPostRequest(post_id="post-1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

"""The walking skeleton end to end: TorchServe and the four services as processes on
loopback, driven over gRPC from hashtag to a published 3x3 grid on real images."""

from __future__ import annotations

import io
import shutil

import grpc
import numpy as np
import pytest
from PIL import Image

from socialgan.errors import InvalidArgument
from socialgan.pipeline import PipelineOptions, generate, run_pipeline
from socialgan.rpc.client import open_channel
from socialgan.storage import LocalObjectStore
from socialgan.supervisor import LocalStack
from socialgan.v1 import (
    publisher_pb2,
    scraper_pb2,
    scraper_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tests.conftest import TWEMOJI_DIR

pytestmark = pytest.mark.timeout(600)

TINY = {"ngf": "8", "ndf": "8", "batch_size": "16"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("stack")
    with LocalStack(workdir=workdir) as endpoints:
        yield workdir, endpoints


@pytest.fixture(scope="module")
def result(stack, tmp_path_factory):
    _, endpoints = stack
    source = tmp_path_factory.mktemp("pics")
    for path in sorted(TWEMOJI_DIR.glob("*.png")):
        shutil.copy(path, source / path.name)
    opts = PipelineOptions(hashtag="Emoji", source=f"folder:{source}", steps=20,
                           options=TINY, grid_seed=7)
    return run_pipeline(endpoints, opts, quiet=True)


def test_pipeline_publishes_a_3x3_grid_of_generated_images(stack, result):
    workdir, _ = stack
    assert result.scrape.counts.downloaded == 48
    assert result.dataset.kept == 48
    assert result.training.step == 20
    grid = Image.open(io.BytesIO(result.grid.grid))
    meta = result.grid.metadata
    assert (meta.count, meta.columns, meta.width, meta.height) == (9, 3, 64, 64)
    assert len(result.grid.images) == 9
    # 3 tiles of 64 px and 4 padding strips of 2 px each way.
    assert grid.size == (3 * 64 + 4 * 2, 3 * 64 + 4 * 2)
    for tile in result.grid.images:
        assert Image.open(io.BytesIO(tile)).size == (64, 64)

    store = LocalObjectStore(workdir / "storage")
    assert store.get_bytes(result.grid.grid_key) == result.grid.grid
    post = result.post
    assert post.state == publisher_pb2.POST_STATE_PUBLISHED
    assert "#emoji" in post.caption and "DCGAN" in post.caption and "SWD" in post.caption
    page = store.get_bytes("posts/index.html").decode()
    assert post.post_id in page or post.url.split("/")[-2] in page


def test_same_seed_gives_the_same_grid_through_torchserve(stack, result):
    _, endpoints = stack
    again = generate(endpoints, result.training.run_id, seed=7, store=False)
    assert again.images == result.grid.images


def test_the_trained_model_gives_a_1080_grid_upscaled_in_torchserve(stack, result):
    _, endpoints = stack
    reply = generate(endpoints, result.training.run_id, seed=7, store=False,
                     size="instagram", upscaler="realesrgan-anime")
    meta = reply.metadata
    assert Image.open(io.BytesIO(reply.grid)).size == (1080, 1080)
    assert (meta.upscaler, meta.upscaler_note) == ("realesrgan-anime", "")
    assert (meta.model_width, meta.width) == (64, 357)
    # The same latents as the 64 px grid: shrunk back, each tile is close to its original.
    for small, big in zip(result.grid.images, reply.images, strict=True):
        back = Image.open(io.BytesIO(big)).convert("RGB").resize((64, 64), Image.LANCZOS)
        diff = np.abs(np.asarray(back, float) - np.asarray(Image.open(io.BytesIO(small))
                                                           .convert("RGB"), float))
        assert diff.mean() < 20, diff.mean()


def test_a_run_names_its_grid_size_and_upscaler_and_bad_ones_fail_first(stack):
    _, endpoints = stack
    for opts, field in [(PipelineOptions(hashtag="x", source="folder:/nowhere", size="huge"),
                         "size"),
                        (PipelineOptions(hashtag="x", source="folder:/nowhere",
                                         upscaler="bicubic"), "upscaler")]:
        with pytest.raises(InvalidArgument) as raised:
            run_pipeline(endpoints, opts, quiet=True)
        assert raised.value.field == field


@pytest.mark.parametrize("count", [0, 10000])
def test_bad_counts_are_invalid_arguments(stack, result, count):
    _, endpoints = stack
    with pytest.raises(grpc.RpcError) as err:
        generate(endpoints, result.training.run_id, count=count)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "count" in err.value.details()


def test_unknown_run_is_not_found(stack):
    _, endpoints = stack
    with pytest.raises(grpc.RpcError) as err:
        generate(endpoints, "no-such-run")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-run" in err.value.details()


def test_path_like_hashtag_is_refused(stack):
    _, endpoints = stack
    stub = scraper_pb2_grpc.ScraperServiceStub(open_channel(endpoints.scraper, endpoints.token))
    with pytest.raises(grpc.RpcError) as err:
        stub.StartScrape(scraper_pb2.StartScrapeRequest(
            hashtag="../x", source=scraper_pb2.SourceSpec(spec=f"folder:{TWEMOJI_DIR}")),
            timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hashtag" in err.value.details()


def test_empty_source_is_a_clear_error(stack, tmp_path):
    _, endpoints = stack
    stub = scraper_pb2_grpc.ScraperServiceStub(open_channel(endpoints.scraper, endpoints.token))
    try:
        job = stub.StartScrape(scraper_pb2.StartScrapeRequest(
            hashtag="empty", source=scraper_pb2.SourceSpec(spec=f"folder:{tmp_path}")),
            timeout=10)
    except grpc.RpcError as exc:  # rejected up front: tmp_path is outside the import root
        assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.PERMISSION_DENIED)
        assert exc.details().startswith("source")
        return
    final = list(stub.WatchScrape(scraper_pb2.WatchScrapeRequest(job_id=job.status.job_id),
                                  timeout=30))[-1]
    assert final.status.message and final.counts.downloaded == 0


def test_training_an_unknown_dataset_is_not_found(stack):
    _, endpoints = stack
    stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(endpoints.trainer, endpoints.token))
    with pytest.raises(grpc.RpcError) as err:
        stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id="missing", model="dcgan", budget=trainer_pb2.TrainingBudget(steps=1)),
            timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

"""The caption language model (issue 14): it learns the captions of a dataset's kept
images better than the unigram baseline, resumes bit for bit, never lets a mention, link,
e-mail, phone number or blocklisted word through, and serves GenerateCaption over gRPC.

The captions are the standard library's docstring summaries (PSF License 2.0), posted
under small random pictures and filtered by the project's own filter (caption_support).
Networks are tiny (1 layer, 32 wide), so every training here takes a second or two.
"""

from __future__ import annotations

import grpc
import pytest
import torch

from services.generator.server import register as register_generator
from services.trainer.server import register as register_trainer
from socialgan.errors import FailedPrecondition, NotFound
from socialgan.jobs import Cancelled
from socialgan.models import build_generator
from socialgan.models.export import export_generator, read_card
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.serving.backends import InProcessBackend
from socialgan.storage import LocalObjectStore, keys
from socialgan.text import CAPTION_MODEL, memorisation
from socialgan.text.captions import collect_captions
from socialgan.text.export import weights_key
from socialgan.text.generate import generate_caption, sample_caption
from socialgan.text.safety import (
    caption_problems,
    safe_caption_or_fallback,
    scrub_training_caption,
)
from socialgan.text.stdlib_captions import stdlib_captions
from socialgan.training import RunSpec, latest_pointer, train
from socialgan.v1 import (
    common_pb2,
    generator_pb2,
    generator_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tests.caption_support import build_captioned_dataset
from tests.conftest import TEST_TOKEN

TINY = {"n_layer": "1", "n_head": "2", "n_embd": "32", "block_size": "32",
        "batch_size": "16", "warmup_steps": "10", "sample_lines": "5"}
DATASET = "stdlib-ds"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit comparisons, and the 2 shared cores
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = LocalObjectStore(tmp_path_factory.mktemp("captions") / "store")
    build_captioned_dataset(store, "stdlib", stdlib_captions(300), DATASET)
    return store


@pytest.fixture(scope="module")
def trained(store):
    """One run of 200 steps, model id 'lm'."""
    return train(store, RunSpec(run_id="lm", dataset_id=DATASET, model=CAPTION_MODEL,
                                steps=200, checkpoint_every=100, options=TINY))


# -- the data --------------------------------------------------------------------------


def test_captions_and_alt_texts_of_the_kept_images_come_from_their_sidecars(store):
    captions = collect_captions(store, DATASET)
    posted = stdlib_captions(300)
    assert len(captions) == 300
    # Each kept image gives its post's caption, then its alt text (images in manifest order).
    pairs = set(zip(captions[::2], captions[1::2], strict=True))
    assert pairs == set(zip(posted[::2], posted[1::2], strict=True))
    with pytest.raises(NotFound, match="dataset_id"):
        collect_captions(store, "no-such-ds")


def test_training_text_is_scrubbed_of_mentions_links_emails_and_phones():
    raw = "Sunset by @ana_b at https://x.com/p/1 (mail a.b@c.org, +1 555 010 9999)\n #sky"
    assert scrub_training_caption(raw) == "Sunset by at (mail , ) #sky"


# -- training, metrics, resume ---------------------------------------------------------


def test_training_beats_the_unigram_baseline_and_exports_a_card_with_the_metrics(store,
                                                                                  trained):
    metrics = trained["metrics"]
    assert metrics["val_perplexity"] < metrics["unigram_perplexity"]
    assert metrics["bigram_perplexity"] < metrics["unigram_perplexity"]
    assert 0.0 <= metrics["memorised_fraction"] <= 1.0
    card = read_card(store, "lm")
    assert card["arch"] == CAPTION_MODEL and card["hashtag"] == "stdlib"
    assert card["metrics"] == metrics and len(card["example_lines"]) == 5
    assert store.exists(weights_key("lm")) and trained["export_prefix"] == "models/lm/"
    assert latest_pointer(store, "lm")["step"] == 200
    assert "validation perplexity" in trained["summary"]


def _weights(store, run_id: str) -> dict[str, torch.Tensor]:
    import io

    return torch.load(io.BytesIO(store.get_bytes(weights_key(run_id))), weights_only=True)


def _cancel_at(step: int):
    def report(message=None, fraction_done=None, **progress):
        if progress.get("step", 0) >= step and (message or "").startswith("step"):
            raise Cancelled(f"stopped at {progress['step']}")
    return report


def _crash_at(step: int):
    def report(message=None, fraction_done=None, **progress):
        if progress.get("step", 0) >= step:
            raise RuntimeError("the process died")
    return report


@pytest.mark.parametrize("interrupt", ["cancel", "crash"])
def test_a_run_resumed_after_an_interruption_makes_the_same_model_as_a_straight_run(
        store, monkeypatch, interrupt):
    import socialgan.text.train as caption_train

    monkeypatch.setattr(caption_train, "REPORT_EVERY_S", 0.0)  # report every step
    spec = {"dataset_id": DATASET, "model": CAPTION_MODEL, "steps": 60,
            "checkpoint_every": 25, "seed": 5, "options": TINY}
    straight = train(store, RunSpec(run_id=f"straight-{interrupt}", **spec))
    run_id = f"resumed-{interrupt}"
    if interrupt == "cancel":  # the job is stopped: it checkpoints where it is
        with pytest.raises(Cancelled):
            train(store, RunSpec(run_id=run_id, **spec), report=_cancel_at(37))
        assert latest_pointer(store, run_id)["step"] == 37
    else:  # the process dies: the last periodic checkpoint is what is left
        with pytest.raises(RuntimeError):
            train(store, RunSpec(run_id=run_id, **spec), report=_crash_at(37))
        assert latest_pointer(store, run_id)["step"] == 25
    resumed = train(store, RunSpec(run_id=run_id, steps=60, checkpoint_every=25))
    assert store.get_json(keys.run_options_key(run_id))["resumed_from_step"] in (37, 25)
    assert resumed["metrics"] == straight["metrics"]
    a, b = _weights(store, f"straight-{interrupt}"), _weights(store, run_id)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (store.get_json(keys.run_metrics_key(run_id))["history"]
            == store.get_json(keys.run_metrics_key(f"straight-{interrupt}"))["history"])


# -- safety ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("Golden hour with @ana", "mention"),
    ("Golden hour with ＠ana", "mention"),  # full-width look-alike
    ("Write to ana.b@example.org today", "email"),
    ("More at https://example.org/p", "url"),
    ("More at www.example.org", "url"),
    ("See example.com for prints", "url"),
    ("Ｓｅｅ ｅｘａｍｐｌｅ．ｃｏｍ", "url"),
    ("Call +1 (555) 010-9999 now", "phone_number"),
    ("Call 555 0109 999", "phone_number"),
    ("What a shit sky", "blocklisted_word"),
    ("What a sh1t sky", "blocklisted_word"),
    ("Link in bio for more", "blocklisted_word"),
    ("tab\x07bell", "control_character"),
    ("   ", "empty"),
    ("12 34", "no_letters"),
])
def test_unsafe_text_is_refused_for_the_right_reason(text, problem):
    assert problem in caption_problems(text)


@pytest.mark.parametrize("text", [
    "Return the sum of 2024 values, e.g. the mean.",
    "Sussex skies at dusk #sunset",  # 'sex' only inside a word
    "Read os.path and shutil.copy docs.",
])
def test_ordinary_captions_pass(text):
    assert caption_problems(text) == []


def test_a_refused_caption_falls_back_and_an_extra_blocklist_file_counts(tmp_path,
                                                                        monkeypatch):
    assert safe_caption_or_fallback("Lovely light", "TEMPLATE") == ("Lovely light", [])
    assert safe_caption_or_fallback("ping @ana", "TEMPLATE") == ("TEMPLATE", ["mention"])
    extra = tmp_path / "extra-blocklist.txt"
    extra.write_text("# ours\nLovely Light\n")
    monkeypatch.setenv("CAPTION_BLOCKLIST_FILE", str(extra))
    assert caption_problems("lovely   light!") == ["blocklisted_word"]


def test_a_model_that_only_replays_its_captions_falls_back_to_the_template(tmp_path):
    store = LocalObjectStore(tmp_path / "store")
    phrase = "the quiet harbour lights come on one by one"
    parrot = [f"{phrase} {end}" for end in ("tonight", "again", "at last", "slowly", "for us",
                                            "once more")]
    build_captioned_dataset(store, "harbour", parrot, "parrot-ds")
    train(store, RunSpec(run_id="parrot", dataset_id="parrot-ds", model=CAPTION_MODEL,
                         steps=200, checkpoint_every=200,
                         options={**TINY, "lr": "0.01", "dropout": "0", "min_char_count": "1"}))
    result = sample_caption(store, "parrot", seed=1)
    assert not result.generated and result.attempts == 8
    assert all("memorised" in problems for problems in result.rejected)
    assert result.text.startswith("#harbour, dreamed up by a GAN.")
    assert generate_caption(store, "parrot", 1, fallback="mine") == "mine"


def test_memorised_fraction_counts_lines_with_six_words_of_a_caption():
    captions = ["Return the number of items in the queue."]
    lines = ["Return the number of items in it", "Return the number of apples today"]
    assert memorisation.memorised_fraction(lines, captions) == 0.5
    hashes = memorisation.ngram_hashes(captions)
    assert memorisation.replays_a_caption("so: return THE number of items, in", hashes)
    assert not memorisation.replays_a_caption(lines[1], hashes)


# -- over gRPC -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator(store, trained):
    torch.manual_seed(0)
    export_generator(store, "gan", build_generator("dcgan", {"ngf": 8, "ndf": 8}), {
        "arch": "dcgan", "arch_options": {"ngf": 8, "ndf": 8}, "latent_dim": 100,
        "width": 64, "height": 64, "hashtag": "stdlib", "method": "test"})
    running = start_server("generator", lambda s: register_generator(
        s, store, InProcessBackend(store)), port=0, token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    yield generator_pb2_grpc.GeneratorServiceStub(channel)
    channel.close()
    running.stop(0)


def _caption(stub, **fields):
    return stub.GenerateCaption(generator_pb2.GenerateCaptionRequest(**fields), timeout=30)


def test_generate_caption_gives_the_same_text_for_a_seed_and_honours_the_prompt(generator):
    first = _caption(generator, model_id="lm", seed=3)
    assert first.text and first == _caption(generator, model_id="lm", seed=3)
    assert first.text != _caption(generator, model_id="lm", seed=4).text
    assert first.hashtag == "stdlib" and first.metrics["val_perplexity"] > 0
    assert first.generated and first.attempts >= 1 and caption_problems(first.text) == []
    prompted = _caption(generator, model_id="lm", seed=3, prompt="Return the")
    assert prompted.text.startswith("Return the")


@pytest.mark.parametrize(("fields", "code", "word"), [
    ({"model_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "model_id"),
    ({"model_id": "../lm"}, grpc.StatusCode.INVALID_ARGUMENT, "model_id"),
    ({"model_id": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "model_id"),
    ({"model_id": "gan"}, grpc.StatusCode.INVALID_ARGUMENT, "model_id"),
    ({"model_id": "lm", "seed": -1}, grpc.StatusCode.INVALID_ARGUMENT, "seed"),
    ({"model_id": "lm", "prompt": "hi @ana"}, grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ({"model_id": "lm", "prompt": "snow \u2603"}, grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ({"model_id": "lm", "prompt": "x" * 101}, grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
])
def test_generate_caption_refuses_bad_requests_naming_the_field(generator, fields, code, word):
    with pytest.raises(grpc.RpcError) as raised:
        _caption(generator, **fields)
    assert raised.value.code() == code and word in raised.value.details()


def test_start_training_with_the_caption_model_trains_and_exports_it(store):
    running = start_server("trainer", lambda s: register_trainer(s, store), port=0,
                           token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    try:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        started = stub.StartTraining(trainer_pb2.StartTrainingRequest(
            run_id="lm-rpc", dataset_id=DATASET, model=CAPTION_MODEL,
            budget=trainer_pb2.TrainingBudget(steps=60), checkpoint_every=30, options=TINY),
            timeout=30)
        assert started.model == CAPTION_MODEL
        last = list(stub.WatchTraining(trainer_pb2.WatchTrainingRequest(run_id="lm-rpc"),
                                       timeout=60))[-1]
        assert last.status.state == common_pb2.JOB_STATE_SUCCEEDED, last.status.message
        assert "validation perplexity" in last.status.message
        assert last.metrics["val_perplexity"] > 0 and last.export_prefix == "models/lm-rpc/"
        with pytest.raises(grpc.RpcError) as raised:
            stub.StartTraining(trainer_pb2.StartTrainingRequest(
                dataset_id=DATASET, model=CAPTION_MODEL,
                budget=trainer_pb2.TrainingBudget(steps=10), options={"n_embd": "33"}),
                timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "options.n_embd" in raised.value.details()
    finally:
        channel.close()
        running.stop(0)


def test_an_image_dataset_without_captions_is_refused_up_front(tmp_path):
    store = LocalObjectStore(tmp_path / "store")
    build_captioned_dataset(store, "quiet", ["", "", "", ""], "quiet-ds")
    with pytest.raises(FailedPrecondition, match="dataset_id"):
        train(store, RunSpec(dataset_id="quiet-ds", model=CAPTION_MODEL, steps=10))


def test_a_caption_model_is_listed_but_asked_for_a_grid_is_refused(generator):
    listed = {m.model_id: m for m in generator.ListModels(generator_pb2.ListModelsRequest(),
                                                          timeout=30).models}
    assert "character-level GPT" in listed["lm"].method and not listed["lm"].loaded
    with pytest.raises(grpc.RpcError) as raised:
        generator.GenerateGrid(generator_pb2.GenerateGridRequest(model_id="lm"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GenerateCaption" in raised.value.details()

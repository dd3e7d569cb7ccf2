"""The caption model's training loop (the trainer's model kind "caption-lm"), in nanoGPT's
shape: the captions -> one token tensor, then sample a batch, step, repeat until the
budget is spent; checkpoints along the way; metrics and the exported model at the end.

Resumable like the GAN: the checkpoint (training.checkpoint: step file first, `latest`
pointer after) holds the network, AdamW's moments, the batch sampler's and dropout's
random states and the histories, so a run stopped and started again with its run_id
makes the same model, bit for bit on the CPU, as a run never stopped.

The metrics come from the same run: validation perplexity per character against the
unigram and Kneser-Ney bigram baselines (baselines.py) on the held-out captions, and the
fraction of sampled lines that replay 6 or more consecutive words of a caption
(memorisation.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from socialgan.errors import FailedPrecondition
from socialgan.jobs import Cancelled
from socialgan.storage import ObjectStore, keys
from socialgan.text import CAPTION_MODEL, baselines, memorisation
from socialgan.text.captions import collect_captions
from socialgan.text.export import export_caption_model
from socialgan.text.model import CaptionLM, ModelConfig, sample_line
from socialgan.text.options import CaptionOptions
from socialgan.text.vocab import END, CharVocab
from socialgan.training.checkpoint import load_latest, save_checkpoint
from socialgan.training.plan import RunPlan

log = logging.getLogger("socialgan.text")

Report = Callable[..., None]
REPORT_EVERY_S = 0.5
SAMPLE_SEED = 1_000_003  # seeds of the memorisation sample: apart from the ones people ask
CARD_EXAMPLE_LINES = 5


# -- the data --------------------------------------------------------------------------


@dataclass
class CaptionCorpus:
    """The captions split into training and validation, and both as token ids. Each
    caption is followed by END, and the streams start with END: the model learns where
    captions start and stop."""

    vocab: CharVocab
    train_captions: list[str]
    val_captions: list[str]
    train_ids: torch.Tensor
    val_ids: torch.Tensor

    @classmethod
    def split(cls, captions: Sequence[str], opts: CaptionOptions, seed: int) -> CaptionCorpus:
        order = list(dict.fromkeys(captions))  # de-duplicated: a copy in both halves leaks
        random.Random(seed).shuffle(order)
        n_val = min(len(order) - 1, max(1, round(len(order) * opts.val_fraction)))
        val, train = order[:n_val], order[n_val:]
        vocab = CharVocab.build(train, min_count=opts.min_char_count)

        def stream(texts: list[str]) -> torch.Tensor:
            return torch.tensor(vocab.encode(END + END.join(texts) + END), dtype=torch.long)

        corpus = cls(vocab, train, val, stream(train), stream(val))
        if len(corpus.train_ids) <= opts.block_size + 1:
            raise FailedPrecondition(
                f"the training captions hold {len(corpus.train_ids)} characters; "
                f"options.block_size {opts.block_size} needs more (lower it)")
        return corpus


def model_config(opts: CaptionOptions, vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, block_size=opts.block_size, n_layer=opts.n_layer,
                       n_head=opts.n_head, n_embd=opts.n_embd, dropout=opts.dropout)


# -- the training state and one step ---------------------------------------------------


@dataclass
class TrainState:
    """Everything a resumed run needs, and nothing it can recompute."""

    model: CaptionLM
    optimizer: torch.optim.Optimizer
    batch_rng: torch.Generator
    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)  # loss windows
    loss_window: list[float] = field(default_factory=list)  # the window being filled
    eval_history: list[dict[str, float]] = field(default_factory=list)

    def to_checkpoint(self, run_id: str, vocab: CharVocab) -> dict[str, Any]:
        return {"format": 1, "kind": CAPTION_MODEL, "run_id": run_id, "step": self.step,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": {"batches": self.batch_rng.get_state(),
                        "dropout": torch.get_rng_state()},
                "vocab": vocab.to_json(), "seconds": self.seconds, "history": self.history,
                "loss_window": self.loss_window, "eval_history": self.eval_history}

    def restore(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.batch_rng.set_state(saved["rng"]["batches"])
        torch.set_rng_state(saved["rng"]["dropout"])
        self.step, self.seconds = saved["step"], saved["seconds"]
        self.history, self.eval_history = saved["history"], saved["eval_history"]
        self.loss_window = saved["loss_window"]


def new_state(opts: CaptionOptions, vocab_size: int, seed: int) -> TrainState:
    torch.manual_seed(seed)  # initial weights and dropout (inside the run's fork_rng)
    model = CaptionLM(model_config(opts, vocab_size))
    # nanoGPT's split: matrices decay, biases, norms and embeddings' positions do not.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": opts.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=opts.lr, betas=(0.9, 0.99))
    return TrainState(model, optimizer, torch.Generator().manual_seed(seed))


def learning_rate(opts: CaptionOptions, step: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to lr/10 over total_steps (constant when the run
    has only a time budget: its length is not known in advance)."""
    if step < opts.warmup_steps:
        return opts.lr * (step + 1) / opts.warmup_steps
    if not total_steps or total_steps <= opts.warmup_steps:
        return opts.lr
    progress = min(1.0, (step - opts.warmup_steps) / (total_steps - opts.warmup_steps))
    return opts.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def random_batch(ids: torch.Tensor, batch_size: int, block_size: int,
                 rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(len(ids) - block_size - 1, (batch_size,), generator=rng)
    x = torch.stack([ids[s:s + block_size] for s in starts.tolist()])
    y = torch.stack([ids[s + 1:s + 1 + block_size] for s in starts.tolist()])
    return x, y


def train_step(state: TrainState, corpus: CaptionCorpus, opts: CaptionOptions,
               total_steps: int) -> float:
    """One AdamW step on a random batch; the batch's loss (nats per character)."""
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate(opts, state.step, total_steps)
    x, y = random_batch(corpus.train_ids, opts.batch_size, opts.block_size, state.batch_rng)
    state.model.train()
    _, loss = state.model(x, y)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if opts.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), opts.grad_clip)
    state.optimizer.step()
    state.step += 1
    return loss.item()


@torch.no_grad()
def perplexity(model: CaptionLM, ids: torch.Tensor, block_size: int) -> float:
    """exp(mean nats) of every token after the first, in consecutive windows of
    block_size (each token sees the rest of its window as context)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(ids) - 1, block_size):
            x = ids[start:start + block_size][None]
            y = ids[start + 1:start + 1 + block_size][None]
            x = x[:, : y.shape[1]]
            _, loss = model(x, y)
            total += float(loss) * y.numel()
            count += y.numel()
    finally:
        model.train(was_training)
    return math.exp(total / count)


# -- the run ---------------------------------------------------------------------------


def _no_report(message: str | None = None, fraction_done: float | None = None,
               **progress: Any) -> None:
    pass


def _method(opts: CaptionOptions, params: int, step: int, corpus: CaptionCorpus) -> str:
    return (f"character-level GPT ({opts.n_layer} layers, {opts.n_embd} wide, "
            f"{params / 1e6:.2f} M parameters), {step} steps on "
            f"{len(corpus.train_captions)} captions")


def train_caption_model(store: ObjectStore, plan: RunPlan,
                        report: Report | None = None) -> dict[str, Any]:
    """Train (or resume) plan's caption-lm run until its budget is spent, then measure it
    and export it to models/<run_id>/. Returns the final progress dict (the GAN loop's
    keys, with the caption metrics)."""
    spec, report = plan.spec, report or _no_report
    opts = CaptionOptions(**plan.arch_options)
    run_id = spec.run_id
    corpus = CaptionCorpus.split(collect_captions(store, spec.dataset_id), opts, spec.seed)
    baseline = {
        "unigram_perplexity": baselines.unigram_perplexity(
            corpus.train_ids.tolist(), corpus.val_ids.tolist(), len(corpus.vocab)),
        "bigram_perplexity": baselines.bigram_perplexity(
            corpus.train_ids.tolist(), corpus.val_ids.tolist(), len(corpus.vocab))}
    started = time.time()
    # The run's own RNG: dropout draws from the global generator, which other jobs in the
    # process share; forking keeps them apart and the checkpoint can restore it exactly.
    with torch.random.fork_rng(devices=[]):
        state = new_state(opts, len(corpus.vocab), spec.seed)
        if plan.resume_step is not None:
            saved = load_latest(store, run_id)
            assert saved is not None
            if saved.get("vocab") != corpus.vocab.to_json():
                raise FailedPrecondition(
                    f"run {run_id!r}: the captions of dataset {spec.dataset_id!r} changed since "
                    "its checkpoint (another vocabulary); start a new run_id")
            state.restore(saved)
            log.info("resuming %s from step %d", run_id, state.step)
        store.put_json(keys.run_options_key(run_id), {
            "run_id": run_id, "dataset_id": spec.dataset_id, "model": CAPTION_MODEL,
            "hashtag": plan.dataset["hashtag"], "options": spec.options,
            "caption_options": dataclasses.asdict(opts), "seed": spec.seed,
            "checkpoint_every": spec.checkpoint_every,
            "budget": {"steps": spec.steps, "seconds": spec.seconds}, "device": "cpu",
            "captions": {"train": len(corpus.train_captions), "val": len(corpus.val_captions)},
            "resumed_from_step": plan.resume_step, "started_unix": started})
        progress = _run_loop(store, plan, opts, corpus, state, report)
        return _finish(store, plan, opts, corpus, state, baseline, progress, report)


def _save(store: ObjectStore, run_id: str, state: TrainState, corpus: CaptionCorpus,
          opts: CaptionOptions) -> str:
    key = save_checkpoint(store, run_id, state.step, state.to_checkpoint(run_id, corpus.vocab),
                          keep=opts.keep_checkpoints)
    store.put_json(keys.run_metrics_key(run_id), {
        "run_id": run_id, "step": state.step, "history": state.history,
        "eval_history": state.eval_history})
    return key


def _run_loop(store: ObjectStore, plan: RunPlan, opts: CaptionOptions, corpus: CaptionCorpus,
              state: TrainState, report: Report) -> dict[str, Any]:
    spec = plan.spec
    progress: dict[str, Any] = {
        "run_id": spec.run_id, "dataset_id": spec.dataset_id, "model": CAPTION_MODEL,
        "step": state.step, "total_steps": spec.steps, "losses": {}, "images_per_second": 0.0,
        "metrics": {}, "latest_sample_key": "", "samples_written": 0, "export_prefix": "",
        "latest_checkpoint_key": keys.checkpoint_key(spec.run_id, state.step)
        if plan.resume_step is not None else ""}
    checkpointed = state.step if plan.resume_step is not None else None
    t0 = time.monotonic()
    seconds_before = state.seconds
    deadline = t0 + spec.seconds if spec.seconds else math.inf
    last_report, window = t0, state.loss_window

    def checkpoint() -> None:
        nonlocal checkpointed
        state.seconds = seconds_before + time.monotonic() - t0
        progress["latest_checkpoint_key"] = _save(store, spec.run_id, state, corpus, opts)
        checkpointed = state.step

    try:
        while (not spec.steps or state.step < spec.steps) and time.monotonic() < deadline:
            window.append(train_step(state, corpus, opts, spec.steps))
            if len(window) == opts.log_every:
                state.history.append({"step": state.step, "loss": sum(window) / len(window)})
                window.clear()
            if state.step % spec.checkpoint_every == 0:
                val = perplexity(state.model, corpus.val_ids, opts.block_size)
                state.eval_history.append({"step": state.step, "val_perplexity": val})
                progress["metrics"] = {"val_perplexity": val}
                checkpoint()
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY_S or state.step == spec.steps:
                last_report = now
                loss = state.history[-1]["loss"] if state.history else (
                    sum(window) / len(window) if window else 0.0)
                progress.update(step=state.step, losses={"loss": loss})
                fraction = max(state.step / spec.steps if spec.steps else 0.0,
                               (now - t0) / spec.seconds if spec.seconds else 0.0)
                report(message=f"step {state.step}" + (f"/{spec.steps}" if spec.steps else "")
                       + f", loss {loss:.3f}", fraction_done=min(1.0, fraction), **progress)
    except Cancelled:
        progress["step"] = state.step
        if checkpointed != state.step:
            checkpoint()
        with contextlib.suppress(Cancelled):
            report(message=f"cancelled at step {state.step}", **progress)
        raise
    if checkpointed != state.step:
        checkpoint()
    if window:
        progress["losses"] = {"loss": sum(window) / len(window)}
    progress["step"] = state.step
    return progress


def _finish(store: ObjectStore, plan: RunPlan, opts: CaptionOptions, corpus: CaptionCorpus,
            state: TrainState, baseline: dict[str, float], progress: dict[str, Any],
            report: Report) -> dict[str, Any]:
    spec = plan.spec
    report(message=f"step {state.step}: computing metrics", **progress)
    val = perplexity(state.model, corpus.val_ids, opts.block_size)
    lines = [sample_line(state.model, corpus.vocab, SAMPLE_SEED + i, temperature=opts.temperature,
                         top_k=opts.top_k) for i in range(opts.sample_lines)]
    every_caption = corpus.train_captions + corpus.val_captions
    memorised = memorisation.memorised_fraction(lines, every_caption)
    metrics = {"val_perplexity": val, **baseline, "memorised_fraction": memorised,
               **progress["losses"]}
    progress["metrics"] = metrics
    params = sum(p.numel() for p in state.model.parameters())
    card = {"hashtag": plan.dataset["hashtag"], "dataset_id": spec.dataset_id,
            "steps": state.step, "seed": spec.seed,
            "method": _method(opts, params, state.step, corpus),
            "vocab": corpus.vocab.to_json(), "metrics": metrics,
            "example_lines": lines[:CARD_EXAMPLE_LINES],
            "memorised_words": memorisation.MEMORISED_WORDS,
            "sampling": {"temperature": opts.temperature, "top_k": opts.top_k},
            "captions": {"train": len(corpus.train_captions),
                         "val": len(corpus.val_captions)}}
    progress["export_prefix"] = export_caption_model(store, spec.run_id, state.model,
                                                     every_caption, card)
    progress["summary"] = (
        f"trained {state.step} steps; validation perplexity {val:.2f} (unigram "
        f"{baseline['unigram_perplexity']:.2f}, bigram {baseline['bigram_perplexity']:.2f}); "
        f"{memorised:.0%} of {len(lines)} lines memorised; exported {progress['export_prefix']}")
    with contextlib.suppress(Cancelled):  # too late to cancel: the model is exported
        report(message=progress["summary"], fraction_done=1.0, **progress)
    return progress

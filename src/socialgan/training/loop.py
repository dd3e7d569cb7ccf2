"""The training loop, readable in one sitting (in the spirit of nanoGPT and the PyTorch
DCGAN tutorial): dataset -> device once, then D step, G step, repeat until the budget
is spent; checkpoints, samples and history to storage along the way; metrics and the
exported generator at the end.

Progress goes to `report`, which has Job.update's signature (message=, fraction_done=,
**progress) and may raise jobs.Cancelled; the loop then checkpoints and re-raises, so a
cancelled run can be resumed by starting it again with the same run_id.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from socialgan import metrics, settings
from socialgan.filtering import load_dataset
from socialgan.images import encode, make_grid
from socialgan.jobs import Cancelled
from socialgan.models import (
    TITLES,
    UPSCALER_MODELS,
    build_discriminator,
    build_generator,
    generate_uint8,
)
from socialgan.models.export import export_generator
from socialgan.storage import ObjectStore, keys
from socialgan.text import CAPTION_MODEL
from socialgan.training import artifacts, distributed
from socialgan.training.augment import diff_augment
from socialgan.training.checkpoint import load_latest, save_checkpoint
from socialgan.training.config import RunSpec
from socialgan.training.losses import LossWindow, check_finite_weights, loss_of_d, loss_of_g
from socialgan.training.plan import prepare_run, resolve_device

log = logging.getLogger("socialgan.training")

Report = Callable[..., None]

METRICS = ("swd", "diversity", "memorisation")
REPORT_EVERY_S = 0.5  # progress (and the cancel check) at most this often
# Seed of the latents the final metrics use; apart from sample_seed so the grids
# people see are not the images the metric was computed on.
METRIC_SEED = 1_000_003


def _method(model: str, width: int, height: int, steps: int, images: int) -> str:
    return f"{TITLES.get(model, model)}, {width}x{height}, {steps} steps on {images} images"


def _no_report(message: str | None = None, fraction_done: float | None = None,
               **progress: Any) -> None:
    pass


@torch.no_grad()
def _generate(netG: nn.Module, seed: int, count: int, latent_dim: int,
              chunk: int = 128) -> np.ndarray:
    """count images in eval mode (what the exported generator will make), in chunks."""
    was_training = netG.training
    netG.eval()
    try:
        parts = [generate_uint8(netG, seed + i, min(chunk, count - start), latent_dim)
                 for i, start in enumerate(range(0, count, chunk))]
    finally:
        netG.train(was_training)
    return np.concatenate(parts)


@torch.no_grad()
def _update_ema(netG_ema: nn.Module, netG: nn.Module, max_decay: float, step: int) -> None:
    # Warm-up: early on the average spans fewer steps, so short runs are not dominated
    # by the random initial weights.
    decay = min(max_decay, (1 + step) / (10 + step))
    for p_ema, p in zip(netG_ema.parameters(), netG.parameters(), strict=True):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(netG_ema.buffers(), netG.buffers(), strict=True):
        b_ema.copy_(b)


def train(store: ObjectStore, spec: RunSpec, report: Report | None = None,
          device: str | torch.device | None = None) -> dict[str, Any]:
    """Train (or resume) spec.run_id until its budget is spent, then compute metrics and
    export the generator to models/<run_id>/. Returns the final progress dict."""
    plan = prepare_run(store, spec)
    if plan.spec.model == CAPTION_MODEL:  # a text model: its own loop (socialgan.text)
        from socialgan.text.train import train_caption_model

        return train_caption_model(store, plan, report)
    if plan.spec.model in UPSCALER_MODELS:  # not a GAN: trained by its own loop
        from socialgan.training.sr import train_upscaler

        return train_upscaler(store, plan, report or _no_report, torch.device(device)
                              if device is not None else resolve_device())
    spec, opts = plan.spec, plan.loop
    run_id, nz, bs = spec.run_id, plan.latent_dim, opts.batch_size
    report = report or _no_report
    device = torch.device(device) if device is not None else resolve_device()
    ranks = distributed.from_env()  # torchrun: one process per GPU, else a no-op
    if ranks.world > 1:
        device = ranks.device
        bs = max(1, bs // ranks.world)  # batch_size stays the global batch
    started = time.time()

    # Data: decoded once by the filter; here one uint8 NHWC tensor on the device.
    images, manifest = load_dataset(store, spec.dataset_id)
    data = torch.from_numpy(images).to(device)
    height, width = images.shape[1:3]

    # Networks and optimisers, as in the tutorial. Seeding inside fork_rng makes the
    # initial weights reproducible without touching the process-wide RNG other jobs use.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        netG = build_generator(spec.model, plan.arch_options).to(device)
        netD = build_discriminator(spec.model, plan.arch_options).to(device)
    if opts.channels_last:
        netG = netG.to(memory_format=torch.channels_last)
        netD = netD.to(memory_format=torch.channels_last)
    # The EMA generator is what samples, metrics and the export use: an average over the
    # last ~1/(1-decay) steps is smoother than any single step's weights.
    netG_ema = copy.deepcopy(netG).eval().requires_grad_(False) if opts.ema_decay else None
    adam = {"lr": opts.lr, "betas": (opts.beta1, opts.beta2)}
    if device.type == "cuda":
        adam["fused"] = True  # one kernel per step for all parameters
    optG = torch.optim.Adam(netG.parameters(), **adam)
    optD = torch.optim.Adam(netD.parameters(), **adam)
    # Own generators for batch choice, latents and augmentation: a resumed run draws
    # exactly what the uninterrupted run would have drawn.
    data_rng = torch.Generator().manual_seed(spec.seed)
    noise_rng = torch.Generator(device=device).manual_seed(spec.seed + 1)
    aug_rng = torch.Generator(device=device).manual_seed(spec.seed + 2)
    policies = opts.augment_policies
    window = LossWindow(device)

    step, history, samples, metric_history, seconds_before = 0, [], [], [], 0.0
    if plan.resume_step is not None:
        state = load_latest(store, run_id)
        assert state is not None
        netG.load_state_dict(state["netG"])
        netD.load_state_dict(state["netD"])
        optG.load_state_dict(state["optG"])
        optD.load_state_dict(state["optD"])
        if netG_ema is not None:
            netG_ema.load_state_dict(state.get("netG_ema") or state["netG"])
        data_rng.set_state(state["rng"]["data"])
        noise_rng.set_state(state["rng"]["noise"])
        if "augment" in state["rng"]:
            aug_rng.set_state(state["rng"]["augment"])
        if "loss_window" in state:
            window.load_state_dict(state["loss_window"])
        step, history, samples = state["step"], state["history"], state["samples"]
        metric_history = state.get("metric_history", [])
        seconds_before = state.get("seconds", 0.0)
        log.info("resuming %s from step %d", run_id, step)
    if ranks.rank:  # other ranks draw other batches and latents than rank 0 (saved above)
        data_rng.manual_seed(spec.seed + 7919 * ranks.rank + step)
        noise_rng.manual_seed(spec.seed + 7919 * ranks.rank + step + 1)
    sampler = netG_ema if netG_ema is not None else netG
    trainG, trainD = ranks.wrap(netG), ranks.wrap(netD)
    if opts.compile:
        trainG, trainD = torch.compile(trainG), torch.compile(trainD)
    checkpointed_step = step if plan.resume_step is not None else None

    if ranks.is_main:  # only rank 0 writes to storage
        store.put_json(keys.run_options_key(run_id), {
            "run_id": run_id, "dataset_id": spec.dataset_id, "hashtag": manifest["hashtag"],
            "model": spec.model, "options": spec.options, "loop": dataclasses.asdict(opts),
            "arch_options": plan.arch_options, "seed": spec.seed, "checkpoint_every":
            spec.checkpoint_every, "budget": {"steps": spec.steps, "seconds": spec.seconds},
            "device": str(device), "images": len(images), "resumed_from_step": plan.resume_step,
            "started_unix": started,
        })

    progress: dict[str, Any] = {
        "run_id": run_id, "dataset_id": spec.dataset_id, "model": spec.model, "step": step,
        "total_steps": spec.steps, "losses": {}, "images_per_second": 0.0, "metrics": {},
        "latest_sample_key": samples[-1] if samples else "",
        "latest_checkpoint_key": keys.checkpoint_key(run_id, step) if checkpointed_step
        is not None else "",
        "samples_written": len(samples), "export_prefix": "",
    }

    def run_seconds() -> float:  # training time over every attempt of the run
        return seconds_before + time.monotonic() - t0

    def write_history() -> None:
        if not ranks.is_main:
            return
        store.put_json(keys.run_metrics_key(run_id), {
            "run_id": run_id, "step": step, "history": history, "samples": samples,
            "metric_history": metric_history, "metrics": progress["metrics"]})

    def require_finite() -> None:  # diverged() before anything non-finite is kept
        window.mean(step)
        check_finite_weights(step, (netG, netD, netG_ema))

    def record_grid_and_swd() -> None:
        """The fixed-seed sample grid and the SWD of this step, for the run files."""
        require_finite()
        if not ranks.is_main:
            return
        sample = make_grid(_generate(sampler, opts.sample_seed, opts.sample_count, nz),
                           columns=math.ceil(math.sqrt(opts.sample_count)))
        sample_key = keys.run_sample_key(run_id, step)
        store.put_bytes(sample_key, encode(sample), "image/png")
        samples.append(sample_key)
        if opts.checkpoint_metric_images:
            pick = np.random.default_rng(spec.seed).permutation(len(images))[
                : opts.checkpoint_metric_images]
            swd = metrics.compute(images[pick], _generate(sampler, METRIC_SEED, len(pick), nz),
                                  ("swd",), seed=spec.seed)["swd"]
            metric_history.append({"step": step, "swd": swd, "seconds": run_seconds()})
            progress["metrics"] = {**progress["metrics"], "swd": swd}
        progress.update(latest_sample_key=sample_key, samples_written=len(samples))

    def checkpoint() -> None:
        """Save the full state, if it is still finite, then the run files."""
        nonlocal checkpointed_step
        require_finite()
        checkpointed_step = step
        if not ranks.is_main:
            return
        state = {
            "format": 2, "step": step, "run_id": run_id, "dataset_id": spec.dataset_id,
            "model": spec.model, "arch_options": plan.arch_options,
            "loop": dataclasses.asdict(opts), "netG": netG.state_dict(),
            "netD": netD.state_dict(), "optG": optG.state_dict(), "optD": optD.state_dict(),
            "netG_ema": netG_ema.state_dict() if netG_ema is not None else None,
            "rng": {"data": data_rng.get_state(), "noise": noise_rng.get_state(),
                    "augment": aug_rng.get_state()}, "loss_window": window.state_dict(),
            "history": history, "samples": samples, "metric_history": metric_history,
            "seconds": run_seconds(),
        }
        key = save_checkpoint(store, run_id, step, state, keep=opts.keep_checkpoints)
        write_history()
        progress.update(latest_checkpoint_key=key)

    def next_batch() -> torch.Tensor:
        # Random minibatch (with replacement) -> float in [-1, 1], NCHW view of NHWC data
        # (channels_last strides already: the permute copies nothing).
        index = torch.randint(len(data), (bs,), generator=data_rng).to(device)
        return data[index].permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def discriminate(x: torch.Tensor) -> torch.Tensor:  # every D input augmented alike
        return trainD(diff_augment(x, policies, aug_rng) if policies else x)

    use_amp = opts.amp and device.type == "cuda"
    t0 = time.monotonic()
    deadline = t0 + spec.seconds if spec.seconds else math.inf
    last_report, report_step = t0, step

    def budget_left() -> bool:
        # With several ranks they must agree, or one would wait for the others forever.
        return (not spec.steps or step < spec.steps) and not ranks.any(
            time.monotonic() >= deadline, device)

    def fraction() -> float:
        parts = [step / spec.steps if spec.steps else 0.0,
                 (time.monotonic() - t0) / spec.seconds if spec.seconds else 0.0]
        return min(1.0, max(parts))

    try:
        while budget_left():
            real = next_batch()
            z = torch.randn(bs, nz, 1, 1, device=device, generator=noise_rng)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                # D: tell real from fake.
                fake = trainG(z)
                if ranks.world > 1:  # DDP: one D forward per backward
                    logits = discriminate(torch.cat([real, fake.detach()]))
                    loss_d = loss_of_d(opts.loss, logits[: len(logits) // 2],
                                       logits[len(logits) // 2:])
                else:
                    loss_d = loss_of_d(opts.loss, discriminate(real),
                                       discriminate(fake.detach()))
            optD.zero_grad(set_to_none=True)
            loss_d.backward()
            optD.step()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss_g = loss_of_g(opts.loss, discriminate(fake))  # G: make D call fakes real
            optG.zero_grad(set_to_none=True)
            loss_g.backward()
            optG.step()
            if netG_ema is not None:
                _update_ema(netG_ema, netG, opts.ema_decay, step)
            step += 1
            window.add(loss_d, loss_g)

            if window.steps == opts.log_every:
                history.append(window.close(step, run_seconds()))
                progress["losses"] = {k: history[-1][k] for k in ("loss_d", "loss_g")}
            if step % spec.checkpoint_every == 0:
                record_grid_and_swd()
                checkpoint()
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY_S or step % spec.checkpoint_every == 0:
                if window.steps:
                    progress["losses"] = window.mean(step)
                progress["images_per_second"] = (step - report_step) * bs / max(
                    now - last_report, 1e-6)
                progress["step"] = step
                last_report, report_step = now, step
                losses = progress["losses"]
                report(message=f"step {step}" + (f"/{spec.steps}" if spec.steps else "")
                       + f", loss_d {losses['loss_d']:.3f}, loss_g {losses['loss_g']:.3f}",
                       fraction_done=fraction(), **progress)
    except Cancelled:
        progress["step"] = step
        if checkpointed_step != step:
            checkpoint()
        log.info("%s cancelled at step %d; checkpoint %s", run_id, step,
                 progress["latest_checkpoint_key"])
        with contextlib.suppress(Cancelled):  # record where the run stopped, for watchers
            report(message=f"cancelled at step {step}", **progress)
        raise

    elapsed = time.monotonic() - t0
    trained = step - (plan.resume_step or 0)
    progress["step"] = step
    progress["images_per_second"] = trained * bs / elapsed if trained and elapsed > 0 else 0.0
    if checkpointed_step != step:
        # An end between two checkpoint_every steps: its grid, SWD and last loss window go
        # to the run files after the state is saved, never into it, so a later resume
        # records the same histories an uninterrupted run does.
        checkpoint()
        record_grid_and_swd()
    if window.steps:
        history.append(window.close(step, run_seconds()))
        progress["losses"] = {k: history[-1][k] for k in ("loss_d", "loss_g")}
    report(message=f"step {step}: computing metrics", fraction_done=fraction(), **progress)

    # Metrics: a fixed random subset of the real images vs as many generated ones.
    pick = np.random.default_rng(spec.seed).permutation(len(images))[: opts.metric_images]
    fake_images = _generate(sampler, METRIC_SEED, len(pick), nz)
    fid_weights = settings.get("TRAINER_FID_WEIGHTS") or ""
    scores = metrics.compute(images[pick], fake_images,
                             METRICS + (("fid",) if fid_weights else ()), seed=spec.seed,
                             train=images, fid_weights=fid_weights)
    losses = progress["losses"] or (
        {"loss_d": history[-1]["loss_d"], "loss_g": history[-1]["loss_g"]} if history else {})
    progress["metrics"] = {**scores, **losses}
    write_history()
    if not ranks.is_main:
        return progress
    artifacts.write_run_pictures(store, run_id, history, metric_history, samples)

    card_metrics = {"swd": scores["swd"], **losses}
    progress["export_prefix"] = export_generator(store, run_id, sampler, {
        "arch": spec.model, "arch_options": plan.arch_options, "latent_dim": nz,
        "width": int(width), "height": int(height), "hashtag": manifest["hashtag"],
        "method": _method(spec.model, int(width), int(height), step, len(images)),
        "metrics": card_metrics, "dataset_id": spec.dataset_id, "run_id": run_id,
        "steps": step, "seed": spec.seed,
    })
    with contextlib.suppress(Cancelled):  # too late to cancel: the model is exported
        report(message=f"trained {step} steps, swd {scores['swd']:.1f}; exported "
               f"{progress['export_prefix']}", fraction_done=1.0, **progress)
    return progress

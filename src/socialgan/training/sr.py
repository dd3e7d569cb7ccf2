"""Training our own upscaler (model "sr-espcn", socialgan.models.sr_espcn) on a hashtag's
full-size images.

A GAN trains on the dataset's small crops; the upscaler learns from the same kept images at
the size they were scraped (the raw files the manifest lists), which is the detail the
64 px set threw away. Each step cuts random crop x crop patches, makes their small
versions with a degradation (blur, x`scale` bicubic shrink, noise, JPEG on a `degraded`
share of the patches; the rest get only the shrink) and fits the network to bring them
back, with an L1 loss. The share is 0.2 by default: on 12 held-out photos (60 s runs,
benchmarks/upscale_quality.py) a share of 0.5 fell 0.9 dB under bicubic, noise and JPEG
teaching it to smooth clean inputs; 0.2 kept +0.6 dB and most of the robustness. A tenth of
the images (at least one) is held out: the card's metrics are the PSNR of the model and of
bicubic on them, x`scale` down and back up.

Checkpoints, resume, progress reports and the export follow the GAN loop's conventions
(training.loop): the same keys, the same report signature, the same model card.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from socialgan.errors import FailedPrecondition
from socialgan.images import BadImage, decode_rgb
from socialgan.jobs import Cancelled
from socialgan.models import TITLES, build_generator
from socialgan.models.export import export_generator
from socialgan.models.sr_espcn import upscale_uint8
from socialgan.storage import ObjectStore, keys
from socialgan.training.checkpoint import load_latest, save_checkpoint
from socialgan.training.plan import RunPlan

log = logging.getLogger("socialgan.training.sr")

MAX_SIDE = 768  # full-size images are shrunk to this, to bound memory (1000 x 768^2 x 3 B)
MAX_IMAGES = 2000
EVAL_SIDE = 256  # centre crop of a held-out image the metrics use
REPORT_EVERY_S = 0.5


def load_full_size(store: ObjectStore, manifest: dict[str, Any]) -> list[np.ndarray]:
    """The dataset's kept images as scraped (HxWx3 uint8), at most MAX_SIDE a side."""
    out = []
    for entry in manifest.get("kept_images", [])[:MAX_IMAGES]:
        try:
            image = decode_rgb(store.get_bytes(entry["key"]))
        except BadImage as exc:  # changed since the filter read it: leave it out
            log.warning("%s: %s", entry["key"], exc)
            continue
        if max(image.size) > MAX_SIDE:
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.BICUBIC)
        out.append(np.asarray(image, dtype=np.uint8))
    return out


def split_held_out(images: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, held out): every tenth image held out, at least one when there are two."""
    if len(images) < 2:
        return images, images
    held = set(range(min(5, len(images) - 1), len(images), 10))
    return ([image for i, image in enumerate(images) if i not in held],
            [image for i, image in enumerate(images) if i in held])


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (sigma in pixels, one per image; 0: none), 7x7 taps."""
    taps = torch.arange(-3, 4, dtype=x.dtype, device=x.device)
    s = sigma.clamp(min=1e-3)[:, None]
    kernel = torch.exp(-(taps[None] ** 2) / (2 * s ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # N x 7
    n, c, h, w = x.shape
    y = F.pad(x.reshape(1, n * c, h, w), (3, 3, 3, 3), mode="reflect")
    k = kernel.repeat_interleave(c, 0)
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """One small image (3 x h x w in [0, 255]) through a JPEG encode and decode."""
    image = Image.fromarray(x.round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=int(quality))
    return torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1).float()


def degrade(hr: torch.Tensor, arch: dict[str, Any], rng: np.random.Generator) -> torch.Tensor:
    """The small inputs of hr (N x 3 x H x W, [0, 255]): a `degraded` share of the batch
    blurred (sigma 0.2..`blur` px), shrunk x scale by bicubic, with Gaussian noise (sigma
    0..`noise`, of 255) and JPEG (quality `jpeg`..95); the rest only shrunk (what a clean
    image looks like). blur 0, noise 0 and jpeg 100 each turn their step off."""
    n, scale = len(hr), arch["scale"]
    rough = rng.random(n) < arch["degraded"]
    mask = torch.from_numpy(rough)[:, None, None, None]
    x = hr
    if arch["blur"] > 0:
        sigma = torch.from_numpy(rng.uniform(0.2, max(0.2, arch["blur"]), n)).float()
        x = torch.where(mask, _blur(hr, sigma), hr)
    lr = F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True,
                       align_corners=False)
    if arch["noise"] > 0:
        sigma = torch.from_numpy(rng.uniform(0, arch["noise"], n)).float()[:, None, None, None]
        noise = torch.randn(lr.shape, generator=torch.Generator().manual_seed(
            int(rng.integers(2**31))))
        lr = torch.where(mask, lr + noise * sigma, lr)
    if arch["jpeg"] < 100:
        for i in np.flatnonzero(rough):
            quality = rng.integers(arch["jpeg"], max(arch["jpeg"], 95) + 1)
            lr[i] = _jpeg(lr[i].clamp(0, 255), quality)
    return lr.clamp(0, 255)


def random_crops(images: list[np.ndarray], count: int, side: int,
                 rng: np.random.Generator) -> torch.Tensor:
    """count random side x side patches (N x 3 x side x side, float [0, 255])."""
    usable = [image for image in images if min(image.shape[:2]) >= side]
    patches = []
    for index in rng.integers(len(usable), size=count):
        image = usable[index]
        y = rng.integers(image.shape[0] - side + 1)
        x = rng.integers(image.shape[1] - side + 1)
        patch = image[y:y + side, x:x + side]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patches.append(np.ascontiguousarray(patch))
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * math.log10(255.0 ** 2 / max(mse, 1e-10)))


def held_out_scores(net: torch.nn.Module, held_out: list[np.ndarray],
                    scale: int) -> dict[str, float]:
    """PSNR (dB, RGB) of the model and of bicubic on the held-out images' centre crops,
    shrunk x scale with bicubic (Pillow) and brought back."""
    ours, bicubic = [], []
    for image in held_out:
        h, w = image.shape[:2]
        side = min(EVAL_SIDE, h, w) // scale * scale
        y, x = (h - side) // 2, (w - side) // 2
        reference = np.ascontiguousarray(image[y:y + side, x:x + side])
        small = np.asarray(Image.fromarray(reference).resize((side // scale,) * 2,
                                                             Image.BICUBIC))
        bicubic.append(psnr(reference, np.asarray(
            Image.fromarray(small).resize((side, side), Image.BICUBIC))))
        ours.append(psnr(reference, upscale_uint8(net, small[None])[0]))
    return {"psnr": float(np.mean(ours)), "psnr_bicubic": float(np.mean(bicubic)),
            "psnr_gain": float(np.mean(ours) - np.mean(bicubic)), "held_out_images": len(held_out)}


def train_upscaler(store: ObjectStore, plan: RunPlan, report, device: torch.device
                   ) -> dict[str, Any]:
    """Train plan's upscaler model until its budget is spent, then score and export it to
    models/<run_id>/. Returns the final progress dict (training.loop.train's shape)."""
    spec, opts, arch = plan.spec, plan.loop, plan.arch_options
    run_id, started = spec.run_id, time.time()
    images = load_full_size(store, plan.dataset)
    train_set, held_out = split_held_out(images)
    side = arch["crop"]
    if not any(min(image.shape[:2]) >= side for image in train_set):
        raise FailedPrecondition(
            f"dataset {spec.dataset_id!r}: no kept image is {side} px on its short side; "
            "lower options.crop")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        net = build_generator(spec.model, arch).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=opts.lr, betas=(opts.beta1, opts.beta2))
    rng = np.random.default_rng(spec.seed)
    step, history, seconds_before = 0, [], 0.0
    if plan.resume_step is not None:
        state = load_latest(store, run_id)
        assert state is not None
        net.load_state_dict(state["net"])
        optimiser.load_state_dict(state["optimiser"])
        step, history, seconds_before = state["step"], state["history"], state["seconds"]
        rng = np.random.default_rng([spec.seed, step])  # a fresh, still reproducible stream
    store.put_json(keys.run_options_key(run_id), {
        "run_id": run_id, "dataset_id": spec.dataset_id, "hashtag": plan.dataset["hashtag"],
        "model": spec.model, "options": spec.options, "loop": dataclasses.asdict(opts),
        "arch_options": arch, "seed": spec.seed, "checkpoint_every": spec.checkpoint_every,
        "budget": {"steps": spec.steps, "seconds": spec.seconds}, "device": str(device),
        "images": len(images), "resumed_from_step": plan.resume_step, "started_unix": started})
    progress: dict[str, Any] = {
        "run_id": run_id, "dataset_id": spec.dataset_id, "model": spec.model, "step": step,
        "total_steps": spec.steps, "losses": {}, "images_per_second": 0.0, "metrics": {},
        "latest_sample_key": "", "latest_checkpoint_key": "", "samples_written": 0,
        "export_prefix": ""}
    t0 = time.monotonic()
    deadline = t0 + spec.seconds if spec.seconds else math.inf
    window: list[float] = []

    def checkpoint() -> None:
        key = save_checkpoint(store, run_id, step, {
            "format": 1, "step": step, "run_id": run_id, "model": spec.model,
            "arch_options": arch, "net": net.state_dict(), "optimiser": optimiser.state_dict(),
            "history": history, "seconds": seconds_before + time.monotonic() - t0},
            keep=opts.keep_checkpoints)
        progress["latest_checkpoint_key"] = key

    last_report, report_step = t0, step
    try:
        while (not spec.steps or step < spec.steps) and time.monotonic() < deadline:
            hr = random_crops(train_set, opts.batch_size, side, rng)
            lr = degrade(hr, arch, rng)
            out = net(lr.to(device).div(127.5).sub(1))
            loss = F.l1_loss(out, hr.to(device).div(127.5).sub(1))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            window.append(loss.item())
            if len(window) == opts.log_every:
                history.append({"step": step, "loss": float(np.mean(window))})
                window.clear()
            if step % spec.checkpoint_every == 0:
                checkpoint()
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY_S:
                progress.update(step=step, losses={"loss": window[-1] if window else loss.item()},
                                images_per_second=(step - report_step) * opts.batch_size
                                / max(now - last_report, 1e-6))
                last_report, report_step = now, step
                fraction = max(step / spec.steps if spec.steps else 0.0,
                               (now - t0) / spec.seconds if spec.seconds else 0.0)
                report(message=f"step {step}, l1 {loss.item():.4f}",
                       fraction_done=min(1.0, fraction), **progress)
    except Cancelled:
        progress["step"] = step
        checkpoint()
        raise
    progress["step"] = step
    checkpoint()
    net.eval()
    scores = held_out_scores(net, held_out, arch["scale"])
    progress["metrics"] = scores
    progress["export_prefix"] = export_generator(store, run_id, net, {
        "kind": "upscaler", "arch": spec.model, "arch_options": arch, "latent_dim": 0,
        "scale": arch["scale"], "width": 0, "height": 0, "hashtag": plan.dataset["hashtag"],
        "method": f"{TITLES.get(spec.model, spec.model)} x{arch['scale']}, {step} steps on "
                  f"{len(train_set)} full-size images", "metrics": scores,
        "dataset_id": spec.dataset_id, "run_id": run_id, "steps": step, "seed": spec.seed})
    # training.launcher.finished_message words a run's end from "summary" when it is there.
    progress["summary"] = (f"trained {step} steps; psnr {scores['psnr']:.2f} dB (bicubic "
                           f"{scores['psnr_bicubic']:.2f}); exported {progress['export_prefix']}")
    with contextlib.suppress(Cancelled):  # too late to cancel: the model is exported
        report(message=progress["summary"], fraction_done=1.0, **progress)
    return progress

"""Training throughput: the trainer's loop vs a tutorial-equivalent loop, in one run.

    python benchmarks/train_throughput.py [--seconds 40] [--ngf 64] [--batch-size 128]
                                          [--images data/twemoji] [--device auto]

Both train the same DCGAN-64 (the tutorial's ngf=ndf=64, batch 128, Adam 2e-4/0.5, BCE)
on the same PNGs for the same wall-clock time, each in its own subprocess so its peak
memory is its own:

- tutorial: an ImageFolder-style dataset that opens, converts, resizes, centre-crops and
  normalises every image every epoch, a DataLoader with worker processes, fp32, plain
  Adam (what the seeds' notebook did; torchvision's transforms written out with PIL);
- trainer: socialgan.training.train on a dataset the filter decoded once (uint8 on the
  device, batches by indexing), with its own choices (channels_last; bf16 autocast and
  fused Adam on CUDA). --trainer-options k=v,... adds loop options (e.g. channels_last=false).

img/s counts real images through D per second after a warm-up step; peak memory is the
process's max RSS (CPU) or torch's max allocated (CUDA).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def tutorial_loop(args) -> dict:
    from socialgan.models import build_discriminator, build_generator

    device = torch.device(args.device)
    paths = sorted(Path(args.images).glob("*.png"))

    class ImageFolderLike(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            image = Image.open(paths[i]).convert("RGB")
            w, h = image.size  # Resize(64): shorter side to 64, then CenterCrop(64)
            scale = 64 / min(w, h)
            image = image.resize((max(64, round(w * scale)), max(64, round(h * scale))),
                                 Image.BILINEAR)
            left, top = (image.width - 64) // 2, (image.height - 64) // 2
            image = image.crop((left, top, left + 64, top + 64))
            x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)
            return (x - 0.5) / 0.5, 0  # ToTensor + Normalize(0.5, 0.5)

    loader = torch.utils.data.DataLoader(ImageFolderLike(), batch_size=args.batch_size,
                                         shuffle=True, num_workers=args.workers,
                                         drop_last=True, persistent_workers=args.workers > 0)
    options = {"ngf": args.ngf, "ndf": args.ngf}
    torch.manual_seed(0)
    netG = build_generator("dcgan", options).to(device)
    netD = build_discriminator("dcgan", options).to(device)
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    images, t0, deadline = 0, None, None
    while True:
        for real, _ in loader:
            real = real.to(device)
            bs = real.shape[0]
            ones, zeros = torch.ones(bs, device=device), torch.zeros(bs, device=device)
            fake = netG(torch.randn(bs, 100, 1, 1, device=device))
            loss_d = bce(netD(real), ones) + bce(netD(fake.detach()), zeros)
            optD.zero_grad()
            loss_d.backward()
            optD.step()
            loss_g = bce(netD(fake), ones)
            optG.zero_grad()
            loss_g.backward()
            optG.step()
            loss_g.item()  # the tutorial logs losses every few steps; this syncs
            if t0 is None:  # first step: warm-up (worker start, allocator)
                t0 = time.monotonic()
                deadline = t0 + args.seconds
                continue
            images += bs
            if time.monotonic() >= deadline:
                return {"images_per_second": images / (time.monotonic() - t0)}


def trainer_loop(args) -> dict:
    from socialgan.filtering import build_dataset
    from socialgan.storage import LocalObjectStore, keys
    from socialgan.training import RunSpec, train

    store = LocalObjectStore(Path(args.workdir) / "store")
    for path in sorted(Path(args.images).glob("*.png")):
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("bench", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    dataset = build_dataset(store, "bench", dataset_id="bench-ds")
    options = {"ngf": str(args.ngf), "ndf": str(args.ngf), "batch_size": str(args.batch_size),
               "metric_images": "64", "checkpoint_metric_images": "0",
               **dict(kv.split("=", 1) for kv in args.trainer_options.split(",") if kv)}
    spec = RunSpec(run_id="bench", dataset_id=dataset["dataset_id"], model="dcgan",
                   steps=1, seconds=0, checkpoint_every=10**9, options=options)
    train(store, spec, device=args.device)  # warm-up step, as the tutorial loop has
    spec = RunSpec(run_id="bench", steps=0, seconds=args.seconds, checkpoint_every=10**9)
    result = train(store, spec, device=args.device)
    return {"images_per_second": result["images_per_second"], "images": dataset["kept"]}


def child(args) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = (tutorial_loop if args.child == "tutorial" else trainer_loop)(args)
    if args.device == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["peak_mib_workers"] = resource.getrusage(
            resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (tutorial)")
    parser.add_argument("--images", default="data/twemoji")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--trainer-options", default="",
                        help="extra trainer loop options, k=v,... (e.g. channels_last=false)")
    parser.add_argument("--child", choices=["tutorial", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        child(args)
        return
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else \
        f"CPU, {os.cpu_count()} cores"
    print(f"DCGAN-64 ngf=ndf={args.ngf}, batch {args.batch_size}, {args.seconds:g} s each, "
          f"{device_name}, torch {torch.__version__}, load average before "
          f"{os.getloadavg()[0]:.2f}")
    from socialgan.training.config import LoopOptions
    loop = LoopOptions()
    chosen = {"channels_last": loop.channels_last, "compile": loop.compile,
              "amp (CUDA only)": loop.amp, "threads": os.cpu_count() or 1,
              **dict(kv.split("=", 1) for kv in args.trainer_options.split(",") if kv)}
    print("trainer settings: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for which in ("tutorial", "trainer"):
            cmd = [sys.executable, __file__, "--child", which, "--workdir", workdir,
                   "--seconds", str(args.seconds), "--ngf", str(args.ngf), "--batch-size",
                   str(args.batch_size), "--workers", str(args.workers), "--images",
                   args.images, "--device", args.device,
                   "--trainer-options", args.trainer_options]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[which] = json.loads(out.split("RESULT ", 1)[1])
            print(f"{which:9s} {results[which]['images_per_second']:9.1f} img/s   peak "
                  f"{results[which]['peak_mib']:7.0f} MiB"
                  + (f" (+ workers {results[which]['peak_mib_workers']:.0f} MiB max)"
                     if which == "tutorial" and args.device == "cpu" else ""))
    speedup = results["trainer"]["images_per_second"] / results["tutorial"]["images_per_second"]
    print(f"speed-up  {speedup:.2f}x   (trainer on {results['trainer']['images']} filtered "
          f"images; load average after {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

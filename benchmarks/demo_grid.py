"""The demo's grid: G's upsampling and the training size, in the demo's seconds (issue 15).

    python benchmarks/demo_grid.py [--seconds 90] [--steps 0]
                                   [--configs 64-transposed,64-nearest,32-nearest]
                                   [--sets demo,icons] [--figures benchmarks/figures]

Trains the default model (dcgan-diffaug) with the demo's options (socialgan demo:
ngf=ndf=16, batch 32) for the same training seconds (RunSpec.seconds; --steps 0: no step
limit) once per config, on two sets:

- demo: the Twemoji set `make demo` trains on (data/twemoji, scripts/fetch_demo_images.sh);
- icons: the Adwaita icon theme's 64 px icons (/usr/share/icons/Adwaita/64x64, Debian's
  adwaita-icon-theme), monochrome line art; nothing was tuned on it.

A config is RESOLUTION-UPSAMPLE[-wWIDTH]: 64-transposed (the old demo), 64-nearest (the
default since issue 15's first part), 32-nearest (a 32 px model: ~4x fewer pixels a step, so
more steps in the same seconds), 32-nearest-w32 (and ngf=ndf=32). Each trains through the
project's own filter (at its resolution) and trainer (socialgan.training.train).

Compared at the size the user sees, 64 px: "swd@64" is the trainer's metric
(socialgan.metrics.sliced_wasserstein, x1e3, lower is better) of 512 generated images (fixed
latents) against up to 512 of the 64 px real set (the trainer's pick), with a 32 px model's
images upscaled to 64 by realesrgan-anime (x4 then Lanczos down, upscale_images) and, on
the next line, by Lanczos. Also printed: the steps reached, the trainer's own final SWD (at
the model's size), the lattice energy at 64 px (socialgan.metrics.lattice; the real sets
0.0002), the trainer's diversity (MS-SSIM of fake pairs minus real pairs), the training
seconds and the load average as the run started. Writes, per set, a PNG of 4x4 samples per
config (the same latents) beside 16 reals, every tile at 128 px: reals by Lanczos from
their 64 px, generated ones by realesrgan-anime (what the demo's upscaled grid shows).
Single-threaded torch, so it runs beside other work.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from socialgan.cli import DEMO_OPTIONS
from socialgan.filtering import build_dataset, load_dataset
from socialgan.images import make_grid
from socialgan.metrics import lattice_energy, sliced_wasserstein
from socialgan.models import generate_uint8
from socialgan.models.export import load_generator
from socialgan.serving.upscale import ANIME, LANCZOS, UpscaleRequest, upscale_images
from socialgan.storage import LocalObjectStore, keys
from socialgan.training import DEFAULT_MODEL, RunSpec, train

ROOT = Path(__file__).resolve().parents[1]
SETS = {"demo": ROOT / "data" / "twemoji", "icons": Path("/usr/share/icons/Adwaita/64x64")}
FIGURE_SEED, FIGURE_COLUMNS, FIGURE_TILE = 7, 4, 128
METRIC_IMAGES, SEEN = 512, 64  # generated images for swd@64; the size the user sees


def put_images(store: LocalObjectStore, hashtag: str, folder: Path) -> int:
    paths = sorted(folder.rglob("*.png"))
    for path in paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key(hashtag, hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return len(paths)


def parse_config(text: str) -> tuple[int, str, dict[str, str]]:
    """'32-nearest-w32' -> (32, 'nearest', {'ngf': '32', 'ndf': '32'})."""
    parts = text.split("-")
    resolution, upsample, extra = int(parts[0]), parts[1], {}
    for part in parts[2:]:
        if not part.startswith("w"):
            raise SystemExit(f"config {text!r}: RESOLUTION-UPSAMPLE[-wWIDTH]")
        extra = {"ngf": part[1:], "ndf": part[1:]}
    return resolution, upsample, extra


@contextlib.contextmanager
def native_stderr_off():
    """The ncnn wheel prints a progress line per image to fd 2: keep the output readable."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def resize(images: np.ndarray, size: int, upscaler: str) -> np.ndarray:
    """images at size x size by upscaler (upscale_images, in chunks its CPU bound allows)."""
    if images.shape[1] == size:
        return images
    with native_stderr_off():
        return np.concatenate([upscale_images(images[i:i + 64],
                                              UpscaleRequest(upscaler, size, size)).images
                               for i in range(0, len(images), 64)])


def figure(panels: dict[str, np.ndarray], path: Path) -> None:
    """Panels side by side (the caption names them)."""
    gap = np.full((panels[next(iter(panels))].shape[0], 16, 3), 255, np.uint8)
    row = np.concatenate([part for grid in panels.values() for part in (grid, gap)][:-1], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours, no dither: a quarter of the bytes, and no dither pattern to mistake
    # for the lattice.
    Image.fromarray(row).quantize(256, method=Image.Quantize.MEDIANCUT,
                                  dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0,
                        help="training seconds per run (RunSpec.seconds; 0: none)")
    parser.add_argument("--steps", type=int, default=0, help="steps per run (0: no limit)")
    parser.add_argument("--configs", default="64-transposed,64-nearest,32-nearest")
    parser.add_argument("--sets", default="demo,icons")
    parser.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = {name: parse_config(name) for name in args.configs.split(",")}
    budget = ", ".join(part for part in (f"{args.seconds:g} s" if args.seconds else "",
                                         f"{args.steps} steps" if args.steps else "") if part)
    print(f"{DEFAULT_MODEL}, demo options {dict(DEMO_OPTIONS)}, {budget} per run, "
          f"seed {args.seed}, 1 torch thread, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        store = LocalObjectStore(Path(workdir) / "store")
        for name in args.sets.split(","):
            folder = SETS[name]
            if not folder.is_dir():
                print(f"{name}: {folder} missing, skipped (demo: scripts/fetch_demo_images.sh)")
                continue
            found = put_images(store, name, folder)
            kept, sets = {}, {}
            for resolution in sorted({SEEN} | {c[0] for c in configs.values()}, reverse=True):
                kept[resolution] = build_dataset(store, name, resolution=resolution,
                                                 dataset_id=f"{name}-{resolution}")["kept"]
                sets[resolution] = load_dataset(store, f"{name}-{resolution}")[0]
            reals = sets[SEEN]
            shown_folder = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
            print(f"{name}: {found} files in {shown_folder}, kept by the filter "
                  + ", ".join(f"{kept[r]} at {r} px" for r in kept)
                  + f"; real lattice energy {lattice_energy(reals):.4f}", flush=True)
            reference = reals[np.random.default_rng(args.seed).permutation(len(reals))
                              [:METRIC_IMAGES]]  # the trainer's pick, at 64 px
            pick = np.random.default_rng(FIGURE_SEED).permutation(len(reals))
            panels = {"real": make_grid(resize(reals[pick[:FIGURE_COLUMNS ** 2]],
                                               FIGURE_TILE, LANCZOS), FIGURE_COLUMNS)}
            for config, (resolution, upsample, extra) in configs.items():
                run_id = f"{name}-{config}"
                load = os.getloadavg()[0]
                started = time.perf_counter()
                result = train(store, RunSpec(
                    run_id=run_id, dataset_id=f"{name}-{resolution}", model=DEFAULT_MODEL,
                    steps=args.steps, seconds=args.seconds, seed=args.seed,
                    checkpoint_every=10**9,
                    options={**dict(DEMO_OPTIONS), **extra, "upsample": upsample,
                             "checkpoint_metric_images": "0"}), device="cpu")
                seconds = time.perf_counter() - started
                netG, card = load_generator(store, run_id)
                with torch.no_grad():
                    shown = generate_uint8(netG, FIGURE_SEED, FIGURE_COLUMNS ** 2,
                                           card["latent_dim"])
                    many = generate_uint8(netG, FIGURE_SEED + 1, METRIC_IMAGES,
                                          card["latent_dim"])
                panels[config] = make_grid(resize(shown, FIGURE_TILE, ANIME), FIGURE_COLUMNS)
                m = result["metrics"]
                for upscaler in ([ANIME, LANCZOS] if resolution < SEEN else ["none"]):
                    seen = resize(many, SEEN, upscaler)
                    s = sliced_wasserstein(reference, seen, seed=args.seed)
                    label = config + ("" if upscaler == "none" else f" +{upscaler.split('-')[-1]}")
                    print(f"  {label:24s} {result['step']:5d} steps  swd@64 {s['swd']:6.1f} "
                          f"(64/32/16: {s['swd_64']:.0f}/{s['swd_32']:.0f}/{s['swd_16']:.0f})"
                          f"  lattice {lattice_energy(seen):.4f}  diversity "
                          f"{m['diversity']:+.3f}  trainer swd@{resolution} {m['swd']:5.1f}  "
                          f"{seconds:4.0f} s (load {load:.2f})", flush=True)
            path = args.figures / f"demo_grid_{name}.png"
            figure(panels, path)
            print(f"  figure: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
                  f"({' | '.join(panels)}; {FIGURE_TILE} px tiles)", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

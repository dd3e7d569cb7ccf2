"""The demo's grid before and after resize-then-convolve upsampling in G (issue 15).

    python benchmarks/demo_grid.py [--steps 500] [--variants transposed,nearest]
                                   [--figures benchmarks/figures]

Trains the default model (dcgan-diffaug) at the demo's size (socialgan demo: ngf=ndf=16,
batch 32, 64 px) for the same number of steps once per G upsampling variant, on two sets:

- demo: the Twemoji set `make demo` trains on (data/twemoji, scripts/fetch_demo_images.sh);
- icons: the Adwaita icon theme's 64 px icons (/usr/share/icons/Adwaita/64x64, Debian's
  adwaita-icon-theme), monochrome line art; nothing was tuned on it.

Each goes through the project's own filter and trainer (socialgan.training.train), so the
SWD printed is the trainer's final metric (x1e3, lower is better: 512 generated vs up to
512 real images at fixed seeds). Also printed: the lattice energy (socialgan.metrics.lattice:
share of detail at period 2 px; the real sets 0.0002) and the training time. Writes, per set,
a PNG of 6x6 samples per variant (the same latents) beside 36 reals, at 1x, into
--figures. Single-threaded torch,
so it runs beside other work: ~1 minute per 250 steps per run on this 2-core machine.
"""

from __future__ import annotations

import argparse
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
from socialgan.metrics import lattice_energy
from socialgan.models import generate_uint8
from socialgan.models.export import load_generator
from socialgan.storage import LocalObjectStore, keys
from socialgan.training import DEFAULT_MODEL, RunSpec, train

ROOT = Path(__file__).resolve().parents[1]
SETS = {"demo": ROOT / "data" / "twemoji", "icons": Path("/usr/share/icons/Adwaita/64x64")}
FIGURE_SEED, FIGURE_COLUMNS = 7, 6


def put_images(store: LocalObjectStore, hashtag: str, folder: Path) -> int:
    paths = sorted(folder.rglob("*.png"))
    for path in paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key(hashtag, hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return len(paths)


def figure(panels: dict[str, np.ndarray], path: Path) -> None:
    """Panels side by side at 1x, as a phone shows 64 px tiles (the caption names them)."""
    gap = np.full((panels[next(iter(panels))].shape[0], 8, 3), 255, np.uint8)
    row = np.concatenate([part for grid in panels.values() for part in (grid, gap)][:-1], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours, no dither: a quarter of the bytes, and no dither pattern to mistake
    # for the lattice.
    Image.fromarray(row).quantize(256, method=Image.Quantize.MEDIANCUT,
                                  dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--variants", default="transposed,nearest")
    parser.add_argument("--sets", default="demo,icons")
    parser.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = args.variants.split(",")
    print(f"{DEFAULT_MODEL}, demo options {dict(DEMO_OPTIONS)}, {args.steps} steps per run, "
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
            dataset = build_dataset(store, name, dataset_id=f"{name}-ds")
            reals, _ = load_dataset(store, f"{name}-ds")
            print(f"{name}: {found} files in {folder}, {dataset['kept']} kept by the filter; "
                  f"real lattice energy {lattice_energy(reals):.4f}", flush=True)
            pick = np.random.default_rng(FIGURE_SEED).permutation(len(reals))
            panels = {"real": make_grid(reals[pick[:FIGURE_COLUMNS ** 2]], FIGURE_COLUMNS)}
            for variant in variants:
                run_id = f"{name}-{variant}"
                started = time.perf_counter()
                result = train(store, RunSpec(
                    run_id=run_id, dataset_id=f"{name}-ds", model=DEFAULT_MODEL,
                    steps=args.steps, seed=args.seed, checkpoint_every=10**9,
                    options={**dict(DEMO_OPTIONS), "upsample": variant,
                             "checkpoint_metric_images": "0"}), device="cpu")
                seconds = time.perf_counter() - started
                netG, card = load_generator(store, run_id)
                fakes = generate_uint8(netG, FIGURE_SEED, FIGURE_COLUMNS ** 2, card["latent_dim"])
                panels[variant] = make_grid(fakes, FIGURE_COLUMNS)
                many = generate_uint8(netG, FIGURE_SEED + 1, 256, card["latent_dim"])
                m = result["metrics"]
                print(f"  {variant:10s} swd {m['swd']:6.1f} (64/32/16: {m['swd_64']:.0f}/"
                      f"{m['swd_32']:.0f}/{m['swd_16']:.0f})  lattice "
                      f"{lattice_energy(many):.4f}  diversity {m['diversity']:+.3f}  "
                      f"{seconds:5.0f} s", flush=True)
            path = args.figures / f"demo_grid_{name}.png"
            figure(panels, path)
            print(f"  figure: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
                  f"({' | '.join(panels)})", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

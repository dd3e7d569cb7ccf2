"""The filter review's look-alike rule (filtering.set_pass.drop_like_reviewed) on real photo
tiles: every good picture of a mix reviewed as dropped in turn, one at a time; how many of
its sibling tiles (the other tiles of the same wallpaper) the rule takes with it, and how
many other pictures.

    python benchmarks/review_lookalikes.py [--mix tuning] [--mix heldout]

LOOK_ALIKE and NEAR_AS were chosen on the tuning mix; the held-out mix is for the figure.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from socialgan.filtering import eval_mixes, outliers, quality, set_pass  # noqa: E402

MIXES = {"tuning": eval_mixes.build_tuning_mix, "heldout": eval_mixes.build_heldout_mix}


def wallpaper(name: str) -> str:
    return name.rsplit("-t", 1)[0]  # good/BytheWater-t3 -> good/BytheWater


def measure(mix: str) -> str:
    embedding, embed = outliers.embedder()
    pictures = []
    for item in MIXES[mix]():
        if item.label == "good":
            with Image.open(io.BytesIO(item.data)) as image:
                vector = embed(quality.small_copy(image.convert("RGB")))
            pictures.append(set_pass.Survivor(
                key=item.name, image_id=item.name, area=0, size=0, sharpness=0.0, hashes=[],
                colours=np.zeros(3), embedding=vector, scores={}))
    siblings = taken = others = others_taken = 0
    for reviewed in pictures:
        rest = [p for p in pictures if p is not reviewed]
        gone: list[dict] = []
        set_pass.drop_like_reviewed(rest, [(reviewed.image_id, reviewed.embedding)], set(),
                                    0.3, gone.append)
        same = {p.image_id for p in rest if wallpaper(p.image_id) == wallpaper(reviewed.image_id)}
        siblings += len(same)
        others += len(rest) - len(same)
        taken += sum(g["id"] in same for g in gone)
        others_taken += sum(g["id"] not in same for g in gone)
    return (f"{mix}: {len(pictures)} single-picture reviews ({embedding} embedding); sibling "
            f"tiles taken {taken}/{siblings} ({taken / siblings:.0%}), other pictures taken "
            f"{others_taken}/{others} ({others_taken / others:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", action="append", choices=sorted(MIXES))
    for mix in parser.parse_args().mix or ["tuning", "heldout"]:
        print(measure(mix), flush=True)


if __name__ == "__main__":
    main()

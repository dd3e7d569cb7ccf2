"""The scores the set stages decide by, measured once over the set's population.

The population is every distinct image that passed the per-image stages, plus those the
faces or nsfw stage dropped (dataset.POPULATION_STAGES): whether those stages ran then
moves nobody else's score. Each score is a robust z over the population (median and
MAD), so one threshold fits sets of any spread:

- render_z (synthetic.py): distance to the set over distance to a bank of renders;
- outlier_z: distance to the set (or the examples) in the outlier embedding;
- flat_z: share of perfectly flat pixels, two-sided (clipart among photos, or photos
  among clipart);
- meaning_z: distance to the set (or the examples) in the photo CNN's features alone,
  which know a cat from a meadow (AUC 0.98 and 0.93 on the tuning and #nature mixes,
  against 0.65 and 0.49 for the handcrafted embedding). Photo sets only: the CNN was
  trained on photos, and among emoji it ranks by noise.

In a photo set the clipart (mostly flat pixels) is the flat-share test's business: it is
left out of the core the render and meaning scores are measured against, so that its
distance does not widen the spread the photos are measured in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from socialgan.filtering import outliers, quality, synthetic

FLAT_SHARE_SPREAD = 0.08  # least spread of flat_share assumed in a set (photos: 0.00-0.2)
CLIPART_FLAT_SHARE = 0.35  # photos stay under 0.25 perfectly flat pixels; emoji 0.5-0.95


class Member(Protocol):
    image_id: str
    scores: dict[str, float]
    embedding: np.ndarray | None
    render_vec: np.ndarray | None
    cnn_vec: np.ndarray | None


@dataclass
class SetScores:
    photo_set: bool = False
    render_z: dict[str, float] = field(default_factory=dict)
    outlier_z: dict[str, float] = field(default_factory=dict)
    flat_z: dict[str, float] = field(default_factory=dict)
    meaning_z: dict[str, float] = field(default_factory=dict)


Embed = Callable[[Image.Image], np.ndarray]


def measure(population: Sequence[Member], examples: Sequence[Image.Image],
            embed: Embed | None, render: tuple[str, Embed | None]) -> SetScores:
    """Every member's scores; examples (the user's pictures) replace the set as reference."""
    # In id order: the same images give the same scores to the last bit, whichever ran.
    population = sorted(population, key=lambda s: s.image_id)
    ids = [s.image_id for s in population]
    out = SetScores()
    if not population:
        return out
    flat = np.array([s.scores["flat_share"] for s in population])
    out.photo_set = synthetic.is_photo_set(flat)
    core = flat <= CLIPART_FLAT_SHARE if out.photo_set else None
    render_name, render_embed = render
    if render_embed is not None and len(population) > synthetic.K:
        ratios = synthetic.render_ratio(np.stack([s.render_vec for s in population]),
                                        synthetic.bank_vectors(render_name, render_embed),
                                        core)
        z = outliers.robust_z_of(ratios, ratios if core is None else ratios[core],
                                 synthetic.RATIO_SPREAD)
        out.render_z = dict(zip(ids, z.tolist(), strict=True))
    if embed is not None:
        reference = np.stack([embed(quality.small_copy(e)) for e in examples]) \
            if examples else None
        z = outliers.outlier_scores(np.stack([s.embedding for s in population]), reference)
        out.outlier_z = dict(zip(ids, z.tolist(), strict=True))
        out.flat_z = dict(zip(ids, outliers.robust_z(flat, FLAT_SHARE_SPREAD).tolist(),
                              strict=True))
        if out.photo_set and population[0].cnn_vec is not None:
            reference = np.stack([outliers.photo_vectors(quality.small_copy(e))[2]
                                  for e in examples]) if examples else None
            z = outliers.outlier_scores(np.stack([s.cnn_vec for s in population]), reference,
                                        core)
            out.meaning_z = dict(zip(ids, z.tolist(), strict=True))
    return out

"""The set stages: what is decided over every image that passed the per-image stages.

In order: near-duplicate groups collapse to their best copy (and a copy no better than a
picture already dropped for quality goes too), then rendered graphics among photos, then
off-topic outliers, each scored against the rest of the set (set_scores.py). Each function
takes the survivors and returns those it keeps, reporting every drop through `drop`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from socialgan.filtering.near_duplicates import copy_distance, near_duplicate_groups

Drop = Callable[[dict[str, Any]], None]
# A near-copy of a picture dropped for quality goes too only when their colours agree this
# well (mean absolute difference of the colour signatures, 0..255).
SAME_COLOURS = 24.0


@dataclass
class Survivor:
    """What the set stages and the report need of an image that passed the per-image stages."""

    key: str
    image_id: str
    area: int
    size: int  # file bytes: of two copies at one size, the less compressed is better
    sharpness: float
    hashes: list[int]  # crop_hashes: whole image, then central crops
    colours: np.ndarray  # colour_signature
    embedding: np.ndarray | None
    scores: dict[str, float]
    render_vec: np.ndarray | None = None
    cnn_vec: np.ndarray | None = None


def collapse_near_duplicates(survivors: list[Survivor], rejected: Sequence[Survivor],
                             max_distance: int, drop: Drop) -> list[Survivor]:
    """Keep the best copy of each near-duplicate group (largest, least compressed,
    sharpest), and drop a copy no better than a picture dropped for quality (`rejected`)."""
    if len(survivors) < 2:
        return survivors
    gone: set[int] = set()
    order = sorted(range(len(survivors)), key=lambda i: (
        -survivors[i].area, -survivors[i].size, -survivors[i].sharpness, i))
    ranked = [survivors[i] for i in order]
    for group in near_duplicate_groups([s.hashes for s in ranked], max_distance,
                                       np.stack([s.colours for s in ranked])):
        group = [order[i] for i in group]
        best = survivors[group[0]]
        for i in group[1:]:
            s = survivors[i]
            drop({"id": s.image_id, "key": s.key, "stage": "near_duplicates",
                  "reason": "near_duplicate", "score": copy_distance(s.hashes, best.hashes),
                  "threshold": max_distance,
                  "detail": f"copy of {best.image_id} (kept: larger or sharper)",
                  "kept_key": best.key, "scores": s.scores})
            gone.add(i)
    for i, s in enumerate(survivors):
        if i in gone:
            continue
        for r in rejected:
            d = copy_distance(s.hashes, r.hashes)
            if d <= max_distance and s.area <= r.area and s.size <= r.size and \
                    np.abs(s.colours - r.colours).mean() <= SAME_COLOURS:
                drop({"id": s.image_id, "key": s.key, "stage": "near_duplicates",
                      "reason": "near_duplicate", "score": d, "threshold": max_distance,
                      "detail": f"no better copy of {r.image_id}, which was dropped as "
                      f"{r.scores['reason']}", "kept_key": r.key, "scores": s.scores})
                gone.add(i)
                break
    return [s for i, s in enumerate(survivors) if i not in gone]


def drop_renders(survivors: list[Survivor], render_z: Mapping[str, float], photo_set: bool,
                 limit: float, render_name: str, drop: Drop) -> list[Survivor]:
    """Record every survivor's render z; among photos, drop those that look rendered."""
    if not render_z:
        return survivors
    for s in survivors:
        s.scores["render_z"] = round(render_z[s.image_id], 3)
    if not photo_set:
        return survivors
    kept = []
    for s in survivors:
        r = render_z[s.image_id]
        if r > limit:
            drop({"id": s.image_id, "key": s.key, "stage": "renders", "reason": "graphic",
                  "score": round(r, 3), "threshold": limit,
                  "detail": f"looks rendered, not photographed: {r:.1f} robust z of "
                  f"set/render distance > {limit:g} ({render_name})", "scores": s.scores})
        else:
            kept.append(s)
    return kept


def drop_outliers(survivors: list[Survivor], measured, limits: Mapping[str, float],
                  from_examples: bool, embedding_name: str, drop: Drop) -> list[Survivor]:
    """Drop the off-topic: far from the set (or the examples) in the embedding, two-sided on
    the share of flat pixels (clipart among photos and photos among clipart), or of another
    subject by the photo CNN; each measure against its own threshold, the most confident
    first, at most max_outlier_share of the set."""
    if not survivors:
        return survivors
    z_set = np.array([measured.outlier_z[s.image_id] for s in survivors])
    z_flat = np.array([measured.flat_z[s.image_id] for s in survivors])
    z_meaning = np.array([measured.meaning_z.get(s.image_id, 0.0) for s in survivors])
    z = np.maximum(z_set, np.abs(z_flat))
    for s, score, meaning in zip(survivors, z, z_meaning, strict=True):
        s.scores["outlier_z"] = round(float(score), 3)
        if measured.meaning_z:
            s.scores["meaning_z"] = round(float(meaning), 3)
    excess = np.maximum(z / limits["outlier_z"], z_meaning / limits["meaning_z"])
    cap = int(limits["max_outlier_share"] * len(survivors))
    order = [i for i in np.argsort(-excess) if excess[i] > 1][:cap]
    source = f"the {'examples' if from_examples else 'set'}"
    for i in order:
        s = survivors[i]
        if z_meaning[i] / limits["meaning_z"] >= z[i] / limits["outlier_z"]:
            score, limit = z_meaning[i], limits["meaning_z"]
            detail = f"{score:.1f} robust z from {source} (photo CNN: another subject)"
        elif abs(z_flat[i]) >= z_set[i]:
            score, limit = z[i], limits["outlier_z"]
            detail = (f"{s.scores['flat_share']:.0%} perfectly flat pixels: "
                      + ("synthetic among photos" if z_flat[i] > 0 else
                         "a photo among synthetic images"))
        else:
            score, limit = z[i], limits["outlier_z"]
            detail = f"{score:.1f} robust z from {source} ({embedding_name} embedding)"
        drop({"id": s.image_id, "key": s.key, "stage": "outliers", "reason": "off_topic",
              "score": round(float(score), 3), "threshold": limit, "detail": detail,
              "scores": s.scores})
    gone = {survivors[i].image_id for i in order}
    return [s for s in survivors if s.image_id not in gone]


def _nearest(vectors: np.ndarray, k: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows: (indices, distances), nearest first; memory stays at
    chunk x n distances however large the set."""
    n = len(vectors)
    k = min(k, n - 1)
    sq = (vectors ** 2).sum(axis=1)
    idx = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k))
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * vectors[rows] @ vectors.T
        d2[np.arange(d2.shape[0]), np.arange(start, rows.stop)] = np.inf  # not itself
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(d2, part, axis=1).argsort(axis=1)
        idx[rows] = np.take_along_axis(part, order, axis=1)
        dist[rows] = np.sqrt(np.maximum(np.take_along_axis(d2, idx[rows], axis=1), 0.0))
    return idx, dist


# Chosen on the tuning mix (one reviewed drop at a time, each of its 54 photo tiles): 43%
# of the reviewed tile's sibling tiles go, 0.27% of the other pictures. Held out, reported:
# 38% and 2.0% (benchmarks/RESULTS.md).
LOOK_ALIKE = 2.0  # at most this many times the set's median nearest-neighbour distance
NEAR_AS = 1.5  # and at most this many times as far as the picture's nearest kept one


def drop_like_reviewed(survivors: list[Survivor], rejected: Sequence[tuple[str, np.ndarray]],
                       spared: set[str], max_share: float, drop: Drop) -> list[Survivor]:
    """The filter review's drops as examples (a nearest-neighbour rule fitted on the fly):
    a survivor with a picture a person dropped about as near as its nearest kept picture
    (within NEAR_AS of it, in the outlier embedding), and within LOOK_ALIKE x the set's
    median nearest-neighbour distance, goes too. Pictures a person kept (`spared`) never
    do; at most max_share of the set goes, the nearest first. One pass: a look-alike of a
    look-alike stays. `rejected`: (image id, embedding) of the pictures a person dropped."""
    if not rejected or len(survivors) < 2 or survivors[0].embedding is None:
        return survivors
    vectors = np.stack([s.embedding for s in survivors]).astype(np.float64)
    near_dist = _nearest(vectors, 1)[1][:, 0]
    typical = LOOK_ALIKE * float(np.median(near_dist))
    bad = np.stack([v for _, v in rejected]).astype(np.float64)
    to_bad = np.sqrt(np.maximum((vectors ** 2).sum(axis=1)[:, None]
                                + (bad ** 2).sum(axis=1)[None, :] - 2.0 * vectors @ bad.T, 0.0))
    nearest_bad = to_bad.argmin(axis=1)
    found = sorted((float(to_bad[i, k]), i, rejected[k][0])
                   for i, k in enumerate(nearest_bad)
                   if survivors[i].image_id not in spared
                   and to_bad[i, k] < min(NEAR_AS * near_dist[i], typical))
    gone = found[: int(max_share * len(survivors))]
    for d, i, like in gone:
        s = survivors[i]
        drop({"id": s.image_id, "key": s.key, "stage": "review", "reason": "off_topic",
              "score": round(d, 3), "threshold": round(typical, 3),
              "detail": f"like {like}, which the filter review dropped", "scores": s.scores})
    left = {i for _, i, _ in gone}
    return [s for i, s in enumerate(survivors) if i not in left]

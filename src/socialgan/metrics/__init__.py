"""Image-set metrics by name, computable on any two uint8 NHWC sets (real vs generated).

A metric takes (real, fake, seed=..., **context) and returns {name: value}; the first key
is the headline (e.g. "swd"), the others its parts (e.g. "swd_64"). context carries what
some metrics need besides the two sets: train= (the whole training set, for
memorisation) and fid_weights= (a user-supplied Inception file; FID is never computed
without one). Adding a metric is one entry here; `socialgan metrics` computes any of
them later on any run's checkpoint or exported model (socialgan.metrics.runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from socialgan.errors import InvalidArgument
from socialgan.metrics.diversity import diversity, ms_ssim
from socialgan.metrics.fid import fid, frechet_distance
from socialgan.metrics.lattice import lattice, lattice_energy
from socialgan.metrics.memorisation import memorisation, nearest_training_images
from socialgan.metrics.swd import sliced_wasserstein

Metric = Callable[..., dict[str, float]]

METRICS: dict[str, Metric] = {
    "swd": sliced_wasserstein,
    "diversity": diversity,
    "memorisation": memorisation,
    "fid": fid,
    "lattice": lattice,
}


def compute(real: np.ndarray, fake: np.ndarray, names: Iterable[str] = ("swd",),
            seed: int = 0, **context: Any) -> dict[str, float]:
    """Every named metric of fake against real, merged into one dict."""
    result: dict[str, float] = {}
    for name in names:
        if name not in METRICS:
            raise InvalidArgument("metrics", f"unknown metric {name!r}; known: "
                                  + ", ".join(sorted(METRICS)))
        result.update(METRICS[name](real, fake, seed=seed, **context))
    return result


__all__ = ["METRICS", "Metric", "compute", "diversity", "fid", "frechet_distance",
           "lattice", "lattice_energy", "memorisation", "ms_ssim", "nearest_training_images",
           "sliced_wasserstein"]

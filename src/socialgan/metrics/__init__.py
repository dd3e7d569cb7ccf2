"""Image-set metrics by name, computable on any two uint8 NHWC sets (real vs generated).

A metric takes (real, fake, seed=...) and returns {name: value}; the first key is the
headline (e.g. "swd"), the others its parts (e.g. "swd_64"). Adding one is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from socialgan.errors import InvalidArgument
from socialgan.metrics.swd import sliced_wasserstein

Metric = Callable[..., dict[str, float]]

METRICS: dict[str, Metric] = {
    "swd": sliced_wasserstein,
}


def compute(real: np.ndarray, fake: np.ndarray, names: Iterable[str] = ("swd",),
            seed: int = 0) -> dict[str, float]:
    """Every named metric of fake against real, merged into one dict."""
    result: dict[str, float] = {}
    for name in names:
        if name not in METRICS:
            raise InvalidArgument("metrics", f"unknown metric {name!r}; known: "
                                  + ", ".join(sorted(METRICS)))
        result.update(METRICS[name](real, fake, seed=seed))
    return result


__all__ = ["METRICS", "Metric", "compute", "sliced_wasserstein"]

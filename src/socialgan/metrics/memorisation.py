"""Memorisation: the nearest training image of every generated image.

A GAN trained on a few hundred images can learn to replay them. For each generated
image we find the closest training image (RMS pixel distance at 32 px, in [0, 1] units,
so tiny shifts in fine detail do not hide a copy) and report how many are near-copies
and how far the generated set is from the training set on average. The indices are
available too (nearest_training_images), to look at the pairs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# An RMS distance below this (at 32 px, [0, 1] pixels) looks like a copy to the eye.
COPY_RMS = 0.03


def _features(images: np.ndarray, size: int = 32) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    if min(h, w) > size:
        x = F.adaptive_avg_pool2d(x, (size, size * w // h))
    return x.flatten(1)


@torch.no_grad()
def nearest_training_images(fake: np.ndarray, train: np.ndarray,
                            chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest training image, its RMS distance) per generated image."""
    a, b = _features(fake), _features(train)
    indices, distances = [], []
    for start in range(0, len(a), chunk):
        d = torch.cdist(a[start:start + chunk], b)  # L2 over all pixel values
        best, index = d.min(dim=1)
        indices.append(index)
        distances.append(best / a.shape[1] ** 0.5)
    return torch.cat(indices).numpy(), torch.cat(distances).numpy()


def memorisation(real: np.ndarray, fake: np.ndarray, *, seed: int = 0,
                 train: np.ndarray | None = None, **_context) -> dict[str, float]:
    """{"memorisation": fraction of generated images that are near-copies of a training
    image, "nn_rms": mean RMS distance to the nearest one}. train defaults to real."""
    _, distances = nearest_training_images(fake, real if train is None else train)
    return {"memorisation": float((distances < COPY_RMS).mean()),
            "nn_rms": float(distances.mean())}

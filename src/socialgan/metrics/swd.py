"""ProGAN's sliced Wasserstein distance (Karras et al. 2018): realism per spatial scale.

Each image set becomes a Laplacian pyramid (5x5 binomial filter, down to 16px); from
every level, random 7x7 RGB patches are drawn, normalised per channel, and the two
patch clouds are compared along random 1-D projections, where the Wasserstein distance
is just the mean gap between sorted values. No network weights are needed, so it runs
offline and is comparable between runs. Lower is better; x1e3 as ProGAN reports it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_KERNEL = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).expand(3, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _KERNEL * gain, groups=3)


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # Zero-insertion then blur with 4x gain: the exact inverse-scale filter of the pyramid.
    up = x.new_zeros(x.shape[0], x.shape[1], *size)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)


def laplacian_pyramid(images: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """Band-pass levels of float NCHW images, finest first; the last level is the
    low-pass image once its shorter side reaches min_size."""
    levels = []
    current = images
    while min(current.shape[-2:]) > min_size:
        small = _blur(current)[:, :, ::2, ::2]
        levels.append(current - _upsample(small, tuple(current.shape[-2:])))
        current = small
    levels.append(current)
    return levels


def _patch_positions(level: torch.Tensor, per_image: int, size: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, h, w = level.shape
    return (torch.randint(0, h - size + 1, (n, per_image), generator=gen),
            torch.randint(0, w - size + 1, (n, per_image), generator=gen))


def _descriptors(level: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                 size: int) -> np.ndarray:
    n, c = level.shape[:2]
    windows = level.unfold(2, size, 1).unfold(3, size, 1)  # N, C, H', W', size, size (a view)
    patches = windows[torch.arange(n)[:, None], :, ys, xs]  # N, P, C, size, size
    patches = patches.reshape(-1, c, size, size)
    # Per-channel normalisation makes the distance about structure, not overall colour scale.
    mean = patches.mean(dim=(0, 2, 3), keepdim=True)
    std = patches.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    return ((patches - mean) / std).reshape(patches.shape[0], -1).numpy()


def _sliced_distance(a: np.ndarray, b: np.ndarray, directions: int, repeats: int,
                     rng: np.random.Generator) -> float:
    total = 0.0
    for _ in range(repeats):
        proj = rng.standard_normal((directions, a.shape[1]), dtype=np.float32)
        proj /= np.linalg.norm(proj, axis=1, keepdims=True)
        # Sorting along the last axis of a (directions, points) array: numpy does this
        # several times faster than torch on CPU.
        pa = np.sort(proj @ a.T, axis=1)
        pb = np.sort(proj @ b.T, axis=1)
        total += float(np.abs(pa - pb).mean())
    return total / repeats


@torch.no_grad()
def sliced_wasserstein(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    seed: int = 0,
    patches_per_image: int = 128,
    patch_size: int = 7,
    directions: int = 128,
    repeats: int = 4,
    min_size: int = 16,
    **_context,
) -> dict[str, float]:
    """SWD x1e3 between two uint8 NHWC image sets of the same size: "swd" (mean over
    levels) and "swd_<height>" per pyramid level. Sets of different counts are cut to
    the smaller, so both patch clouds have the same number of points."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"image shapes differ: {real.shape[1:]} vs {fake.shape[1:]}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    real_t = torch.from_numpy(np.ascontiguousarray(real[:n])).permute(0, 3, 1, 2).float()
    fake_t = torch.from_numpy(np.ascontiguousarray(fake[:n])).permute(0, 3, 1, 2).float()
    result = {}
    for level_real, level_fake in zip(laplacian_pyramid(real_t, min_size),
                                      laplacian_pyramid(fake_t, min_size), strict=True):
        # Both sets are sampled at the same patch positions and along the same projections
        # (common random numbers): identical sets score exactly 0 and run-to-run noise
        # does not swamp small differences.
        ys, xs = _patch_positions(level_real, patches_per_image, patch_size, gen)
        a = _descriptors(level_real, ys, xs, patch_size)
        b = _descriptors(level_fake, ys, xs, patch_size)
        result[f"swd_{level_real.shape[2]}"] = 1e3 * _sliced_distance(a, b, directions,
                                                                      repeats, rng)
    result["swd"] = float(np.mean(list(result.values())))
    return result

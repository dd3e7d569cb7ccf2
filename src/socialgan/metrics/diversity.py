"""Diversity: MS-SSIM between random pairs of generated images vs pairs of real images.

Two images from a collapsed generator look alike, so their mean pairwise MS-SSIM is
higher than the real set's. "diversity" is fake minus real: about 0 when the generated
set is as varied as the real one, towards +1 as it collapses to one image (and below 0
for sets more varied than the reals, e.g. noise). No network weights involved.

The MS-SSIM here is the usual product of per-scale contrast-structure terms and the
coarsest scale's luminance term (Wang et al. 2003), with a 7x7 Gaussian window and as
many scales as 64 px images allow (down to 16 px), so it is "MS-SSIM-style" rather
than the 5-scale, 11x11 original meant for larger images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_C1, _C2 = 0.01 ** 2, 0.03 ** 2


def _window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    pad = window.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), window, groups=x.shape[1])


def ms_ssim(a: torch.Tensor, b: torch.Tensor, min_size: int = 16) -> torch.Tensor:
    """Per-pair MS-SSIM of float NCHW images in [0, 1] (3 channels)."""
    window = _window()
    scales = 1
    while scales < len(_WEIGHTS) and min(a.shape[-2:]) // 2 ** scales >= min_size:
        scales += 1
    weights = torch.tensor(_WEIGHTS[:scales])
    weights = weights / weights.sum()
    result = torch.ones(a.shape[0])
    for scale in range(scales):
        mu_a, mu_b = _filter(a, window), _filter(b, window)
        var_a = _filter(a * a, window) - mu_a ** 2
        var_b = _filter(b * b, window) - mu_b ** 2
        cov = _filter(a * b, window) - mu_a * mu_b
        cs = ((2 * cov + _C2) / (var_a + var_b + _C2)).mean(dim=(1, 2, 3)).clamp_min(0)
        result = result * cs ** weights[scale]
        if scale == scales - 1:
            lum = ((2 * mu_a * mu_b + _C1) / (mu_a ** 2 + mu_b ** 2 + _C1)).mean(dim=(1, 2, 3))
            result = result * lum.clamp_min(0) ** weights[scale]
        else:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return result


def _mean_pair_ms_ssim(images: np.ndarray, pairs: np.ndarray) -> float:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return float(ms_ssim(x[pairs[:, 0]], x[pairs[:, 1]]).mean())


@torch.no_grad()
def diversity(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, pairs: int = 256,
              **_context) -> dict[str, float]:
    """{"diversity": fake - real, "msssim_fake", "msssim_real"} over `pairs` random
    pairs of distinct images (the same index pairs in both sets)."""
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError("diversity needs at least 2 images per set")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, pairs)
    second = (first + rng.integers(1, n, pairs)) % n  # never the same image twice
    index = np.stack([first, second], axis=1)
    fake_score = _mean_pair_ms_ssim(fake[:n], index)
    real_score = _mean_pair_ms_ssim(real[:n], index)
    return {"diversity": fake_score - real_score, "msssim_fake": fake_score,
            "msssim_real": real_score}

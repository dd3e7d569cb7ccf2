"""DiffAugment (Zhao et al. 2020): differentiable augmentations of every D input.

D sees augmented reals and augmented fakes alike, and the generator's gradient flows
through the augmentation, so D cannot memorise a small set's exact pixels while G is
still asked to match the un-augmented distribution. Every random draw comes from the
torch.Generator passed in: its state is the augmentation state a checkpoint keeps, so a
resumed run augments exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, device=gen.device, generator=gen).to(x)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
    x = x + (_uniform(x, gen, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, gen, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, gen, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio of its size, filling with zeros (mid-grey)."""
    n, _, h, w = x.shape
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = gen.device
    shift_y = torch.randint(-max_y, max_y + 1, (n, 1, 1), device=dev, generator=gen)
    shift_x = torch.randint(-max_x, max_x + 1, (n, 1, 1), device=dev, generator=gen)
    rows = torch.arange(h, device=dev)[None, :, None] + shift_y + 1  # +1: the zero padding
    cols = torch.arange(w, device=dev)[None, None, :] + shift_x + 1
    rows, cols = rows.clamp(0, h + 1).to(x.device), cols.clamp(0, w + 1).to(x.device)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # N, H+2, W+2, C
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random rectangle of ratio x the image size per image."""
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = gen.device
    top = torch.randint(0, h + (1 - cut_h % 2), (n, 1, 1), device=dev, generator=gen)
    left = torch.randint(0, w + (1 - cut_w % 2), (n, 1, 1), device=dev, generator=gen)
    rows = torch.arange(h, device=dev)[None, :, None]
    cols = torch.arange(w, device=dev)[None, None, :]
    inside = ((rows >= top - cut_h // 2) & (rows < top + cut_h - cut_h // 2)
              & (cols >= left - cut_w // 2) & (cols < left + cut_w - cut_w // 2))
    return x * (~inside).to(x)[:, None].to(x.device)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policies: list[str], gen: torch.Generator) -> torch.Tensor:
    """x (NCHW in [-1, 1]) with each named augmentation applied in order."""
    for name in policies:
        x = POLICIES[name](x, gen)
    return x

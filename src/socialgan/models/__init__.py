"""GAN architectures by name: the one registry training, export and serving all use.

A generator is rebuilt from its model card ("arch" + "arch_options") and a plain
state_dict, so serving never unpickles code (torch.load(..., weights_only=True)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from socialgan.errors import InvalidArgument, quote
from socialgan.models import dcgan, dcgan_diffaug, lapgan

# name -> (build_generator(**options), build_discriminator(**options), default options)
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], Callable[..., nn.Module], dict]] = {
    "dcgan": (dcgan.Generator, dcgan.Discriminator, dcgan.DEFAULTS),
    "dcgan-diffaug": (dcgan_diffaug.Generator, dcgan_diffaug.Discriminator,
                      dcgan_diffaug.DEFAULTS),
    "lapgan": (lapgan.Generator, lapgan.Discriminator, lapgan.DEFAULTS),
}
# name -> how the model is trained: defaults of training.config.LoopOptions fields for it
# (a request's options override them). dcgan's are the tutorial's: BCE, no tricks.
RECIPES: dict[str, dict[str, Any]] = {
    "dcgan": {"loss": "bce", "augment": "", "ema_decay": 0.0},
    "dcgan-diffaug": dcgan_diffaug.RECIPE,
    "lapgan": lapgan.RECIPE,
}
# Human-readable names for model cards and captions.
TITLES = {"dcgan": "DCGAN (PyTorch tutorial)",
          "dcgan-diffaug": "DCGAN + DiffAugment, hinge, spectral norm, EMA",
          "lapgan": "LAPGAN (Laplacian pyramid)"}


def arch_options(arch: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture's defaults with overrides applied; unknown names are rejected."""
    if arch not in ARCHITECTURES:
        raise InvalidArgument("model", f"unknown architecture {quote(arch)}; known: "
                              + ", ".join(sorted(ARCHITECTURES)))
    defaults = ARCHITECTURES[arch][2]
    options = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise InvalidArgument(f"options.{key}", f"not an option of {arch}; known: "
                                  + ", ".join(sorted(defaults)))
        options[key] = type(defaults[key])(value)
    return options


def build_generator(arch: str, options: dict[str, Any]) -> nn.Module:
    return ARCHITECTURES[arch][0](**arch_options(arch, options))


def build_discriminator(arch: str, options: dict[str, Any]) -> nn.Module:
    return ARCHITECTURES[arch][1](**arch_options(arch, options))


def latents(seed: int, count: int, latent_dim: int) -> torch.Tensor:
    """The latent batch a seed names: the same seed gives the same images everywhere."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(count, latent_dim, 1, 1, generator=generator)


@torch.no_grad()
def generate_uint8(netG: nn.Module, seed: int, count: int, latent_dim: int) -> np.ndarray:
    """count images from netG for seed, as uint8 NHWC (what grids and files are made of)."""
    device = next(netG.parameters()).device
    images = netG(latents(seed, count, latent_dim).to(device)).float()
    images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()

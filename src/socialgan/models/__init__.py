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
from socialgan.models import dcgan, dcgan_diffaug, lapgan, sr_espcn

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
    "sr-espcn": sr_espcn.RECIPE,
}
# Upscaler models: trained by StartTraining (model=...) and exported like the GANs, but they
# make big images from small ones (socialgan.training.sr), not images from latents.
# name -> (build_network(**options), default options)
UPSCALER_MODELS: dict[str, tuple[Callable[..., nn.Module], dict]] = {
    "sr-espcn": (sr_espcn.ESPCN, sr_espcn.DEFAULTS),
}
# Human-readable names for model cards and captions.
TITLES = {"dcgan": "DCGAN (PyTorch tutorial)",
          "dcgan-diffaug": "DCGAN + DiffAugment, hinge, spectral norm, EMA",
          "lapgan": "LAPGAN (Laplacian pyramid)",
          "sr-espcn": "ESPCN super-resolution (own upscaler)"}


# Options added after models were exported: name -> the value a saved card or checkpoint
# that lacks it was made with (new runs get ARCHITECTURES' default instead).
ABSENT_OPTIONS: dict[str, dict[str, Any]] = {"dcgan-diffaug": dcgan_diffaug.ABSENT}
# Options that take one of a few words, not a number.
OPTION_CHOICES = {"upsample": dcgan.UPSAMPLING}


def arch_options(arch: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture's defaults with overrides applied; unknown names are rejected."""
    if arch in UPSCALER_MODELS:
        defaults = UPSCALER_MODELS[arch][1]
    elif arch in ARCHITECTURES:
        defaults = ARCHITECTURES[arch][2]
    else:
        raise InvalidArgument("model", f"unknown architecture {quote(arch)}; known: "
                              + ", ".join(sorted([*ARCHITECTURES, *UPSCALER_MODELS])))
    options = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise InvalidArgument(f"options.{key}", f"not an option of {arch}; known: "
                                  + ", ".join(sorted(defaults)))
        options[key] = type(defaults[key])(value)
        if key in OPTION_CHOICES and options[key] not in OPTION_CHOICES[key]:
            raise InvalidArgument(f"options.{key}", f"{str(value)[:40]!r} is not one of "
                                  + ", ".join(OPTION_CHOICES[key]))
    return options


def saved_arch_options(arch: str, saved: dict[str, Any]) -> dict[str, Any]:
    """The options a stored network (model card, checkpoint) was built with: what it
    says, and for an option it predates, what that option's absence meant then."""
    return arch_options(arch, {**ABSENT_OPTIONS.get(arch, {}), **saved})


# Both builders read options as saved_arch_options does: every caller passes either a
# stored card's options or a full set from arch_options, so only an old card lacks one.
def build_generator(arch: str, options: dict[str, Any]) -> nn.Module:
    """The network a model card names: a GAN's generator, or an upscaler model's network."""
    if arch in UPSCALER_MODELS:
        return UPSCALER_MODELS[arch][0](**arch_options(arch, options))
    return ARCHITECTURES[arch][0](**saved_arch_options(arch, options))


def build_discriminator(arch: str, options: dict[str, Any]) -> nn.Module:
    return ARCHITECTURES[arch][1](**saved_arch_options(arch, options))


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

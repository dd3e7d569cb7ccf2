"""LAPGAN (Denton et al. 2015): a coarse generator plus one residual generator per
Laplacian-pyramid level, for 128 or 256 px.

The coarse generator makes a base_size image from z (DCGAN-style); each level doubles
the size and adds a residual made by a small conv net that sees the upsampled image and
z (projected to a few channels and tiled), so every level is conditioned on the coarser
one as in the paper. One discriminator per level judges the image at that level's scale
(the low-pass image at 16, 32, 64 ... px), so each residual generator answers to the
discriminator of its own scale.

Difference from the paper, on purpose: the levels are trained jointly, end to end, as
one network rather than one GAN per level in sequence; this keeps one generator per
model card (one state_dict, one build_generator call) for export and serving.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from socialgan.models.dcgan import _doubling, _init_weights
from socialgan.models.dcgan_diffaug import RECIPE as _DIFFAUG_RECIPE
from socialgan.models.dcgan_diffaug import check_aspect

# upsample: how the coarse generator doubles (models.dcgan.UPSAMPLING). Its lattice is
# smoothed by the bilinear pyramid above it, so the tutorial's layer stays the default here.
DEFAULTS = {"nz": 100, "ngf": 32, "ndf": 32, "nc": 3, "image_size": 128, "aspect": 1,
            "base_size": 16, "z_channels": 8, "upsample": "transposed"}
# Adam stays at 2e-4/0.5/0.999: dcgan-diffaug's faster settings were tuned on its own
# networks only.
RECIPE = dict(_DIFFAUG_RECIPE, batch_size=32, lr=2e-4, beta1=0.5, beta2=0.999)


def _pyramid_levels(image_size: int, base_size: int) -> int:
    if image_size not in (64, 128, 256):
        raise ValueError(f"image_size {image_size} is not one of 64, 128, 256")
    if base_size not in (8, 16, 32) or base_size >= image_size:
        raise ValueError(f"base_size {base_size} must be 8, 16 or 32 and below image_size")
    return int(math.log2(image_size // base_size))


class _Coarse(nn.Module):
    """z -> base_size image, DCGAN-style."""

    def __init__(self, nz: int, ngf: int, nc: int, base_size: int, aspect: int,
                 upsample: str = "transposed"):
        super().__init__()
        ups = int(math.log2(base_size // 4))
        width = ngf * 2 ** ups
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, (4, 4 * aspect), 1, 0,
                                                      bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(ups):
            layers += [*_doubling(width, width // 2, upsample, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.Conv2d(width, nc, 3, 1, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z)


class _Residual(nn.Module):
    """(upsampled image, tiled z code) -> the level's Laplacian residual."""

    def __init__(self, ngf: int, nc: int, z_channels: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc + z_channels, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.Conv2d(ngf, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, nc, 3, 1, 1),
        )

    def forward(self, up, code):
        return self.main(torch.cat([up, code.expand(-1, -1, *up.shape[-2:])], dim=1))


class Generator(nn.Module):
    def __init__(self, nz=100, ngf=32, ndf=32, nc=3, image_size=128, aspect=1, base_size=16,
                 z_channels=8, upsample="transposed"):
        super().__init__()
        levels = _pyramid_levels(image_size, base_size)
        self.coarse = _Coarse(nz, ngf * 2, nc, base_size, check_aspect(aspect), upsample)
        self.codes = nn.ModuleList(nn.Linear(nz, z_channels) for _ in range(levels))
        self.residuals = nn.ModuleList(_Residual(ngf, nc, z_channels) for _ in range(levels))
        self.apply(_init_weights)

    def forward(self, z):
        image = self.coarse(z)
        flat = z.flatten(1)
        for code, residual in zip(self.codes, self.residuals, strict=True):
            up = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
            image = up + residual(up, code(flat)[:, :, None, None])
        return image.clamp(-1, 1)


class _LevelD(nn.Module):
    def __init__(self, size: int, ndf: int, nc: int, aspect: int):
        super().__init__()
        layers: list[nn.Module] = []
        width_in, width = nc, ndf
        while size > 4:
            layers += [spectral_norm(nn.Conv2d(width_in, width, 4, 2, 1)),
                       nn.LeakyReLU(0.2, inplace=True)]
            width_in, width, size = width, min(width * 2, ndf * 8), size // 2
        layers += [spectral_norm(nn.Conv2d(width_in, 1, (4, 4 * aspect), 1, 0))]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).reshape(-1)


class Discriminator(nn.Module):
    """One discriminator per pyramid scale; the logits of all scales, concatenated."""

    def __init__(self, nz=100, ngf=32, ndf=32, nc=3, image_size=128, aspect=1, base_size=16,
                 z_channels=8, upsample="transposed"):
        super().__init__()
        levels = _pyramid_levels(image_size, base_size)
        check_aspect(aspect)
        self.sizes = [image_size // 2 ** i for i in range(levels + 1)]
        self.levels = nn.ModuleList(_LevelD(size, ndf, nc, aspect) for size in self.sizes)

    def forward(self, x):
        logits = []
        for i, level in enumerate(self.levels):
            logits.append(level(x))
            if i + 1 < len(self.levels):
                x = F.avg_pool2d(x, 2)
        return torch.cat(logits)

"""The PyTorch DCGAN tutorial's networks (64x64), kept as the faithful baseline.

Differences from the tutorial, both numerically equivalent: the discriminator returns
logits (training uses BCEWithLogitsLoss instead of Sigmoid + BCELoss, which is stabler),
and width/depth are options so tests can train a tiny model.
"""

from __future__ import annotations

from torch import nn

DEFAULTS = {"nz": 100, "ngf": 64, "ndf": 64, "nc": 3, "image_size": 64}


def _init_weights(module: nn.Module) -> None:
    # The tutorial's init: conv weights N(0, 0.02), batch-norm scale N(1, 0.02), bias 0.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _levels(image_size: int) -> int:
    if image_size not in (32, 64, 128, 256):
        raise ValueError(f"image_size {image_size} is not one of 32, 64, 128, 256")
    return {32: 3, 64: 4, 128: 5, 256: 6}[image_size]


# How a generator layer doubles the size. "transposed" is the tutorial's strided
# ConvTranspose2d(4, 2, 1): its kernel overlaps unevenly (2 taps on one output pixel, 1 on
# its neighbour), which draws a period-2 dot lattice over the images (Odena et al. 2016,
# "Deconvolution and Checkerboard Artifacts"). "nearest"/"bilinear" resize first, then a
# 3x3 convolution: every output pixel sees the same number of taps, so no lattice.
UPSAMPLING = ("transposed", "nearest", "bilinear")


def check_upsample(upsample: str) -> str:
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample {upsample!r} is not one of {', '.join(UPSAMPLING)}")
    return upsample


def _doubling(width_in: int, width_out: int, upsample: str, bias: bool) -> list[nn.Module]:
    if check_upsample(upsample) == "transposed":
        return [nn.ConvTranspose2d(width_in, width_out, 4, 2, 1, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode=upsample),
            nn.Conv2d(width_in, width_out, 3, 1, 1, bias=bias)]


def generator_layers(nz: int, ngf: int, nc: int, image_size: int, seed_width: int = 4,
                     last_bias: bool = False, upsample: str = "transposed") -> nn.Sequential:
    """The DCGAN generator stack: a seed map of 4 x seed_width from the latent, then
    layers doubling the size until image_size (by `upsample`, see UPSAMPLING). Shared by
    every DCGAN-class model, so their exports have the same layout."""
    levels = _levels(image_size)
    width = ngf * 2 ** (levels - 1)
    layers: list[nn.Module] = [
        # On the 1x1 latent this is a dense layer, whatever `upsample` is: no lattice.
        nn.ConvTranspose2d(nz, width, (4, seed_width), 1, 0, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(True),
    ]
    for _ in range(levels - 1):
        layers += [
            *_doubling(width, width // 2, upsample, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(True),
        ]
        width //= 2
    layers += [*_doubling(width, nc, upsample, bias=last_bias), nn.Tanh()]
    return nn.Sequential(*layers)


class Generator(nn.Module):
    def __init__(self, nz=100, ngf=64, ndf=64, nc=3, image_size=64):
        super().__init__()
        self.main = generator_layers(nz, ngf, nc, image_size)
        self.apply(_init_weights)

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, nz=100, ngf=64, ndf=64, nc=3, image_size=64):
        super().__init__()
        levels = _levels(image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for _ in range(levels - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x):
        return self.main(x).view(-1)

"""The default model for small, noisy sets: DCGAN-class networks made hard to overfit.

The tutorial's DCGAN loses on a ~2k-image set: its discriminator memorises the reals
within a hundred steps and the generator never leaves grey noise. This model keeps
the DCGAN generator (so it is as cheap to serve) and changes what makes D win:

- spectral norm on every D convolution and no batch norm in D (Miyato et al. 2018),
  which bounds how sharply D can separate the two sets;
- the hinge loss, which stops pushing D once a sample is classified with margin;
- DiffAugment (Zhao et al. 2020) on every D input, real and fake, and an EMA copy of
  G for sampling and export: both are training choices, so they live in RECIPE (the
  loop's defaults for this model), not in the networks;
- G doubles its size by nearest-neighbour resize and a 3x3 convolution, not the
  tutorial's strided transposed convolution, whose dot lattice covered the demo's grid
  (same steps, demo set: SWD 146.7 -> 55.9; benchmarks/RESULTS.md, 2026-12-02).

Banners: aspect=3 makes 3:1 images (e.g. 64x192) by starting from a 4x12 seed map.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import spectral_norm

from socialgan.models.dcgan import _init_weights, _levels, generator_layers

# upsample: resize-then-convolve ("nearest") rather than the tutorial's strided transposed
# convolution, which leaves a dot lattice (models.dcgan.UPSAMPLING; benchmarks/demo_grid.py).
DEFAULTS = {"nz": 100, "ngf": 32, "ndf": 32, "nc": 3, "image_size": 64, "aspect": 1,
            "upsample": "nearest"}
# What an option means when a model card or checkpoint lacks it: models exported before
# the option existed were made with this value, whatever new runs default to.
ABSENT = {"upsample": "transposed"}
# Loop defaults for this model (training.config.LoopOptions fields); a request overrides any.
# Adam 5e-4 with beta1=0, beta2=0.99 rather than the tutorial's 2e-4/0.5/0.999: with a
# spectral-norm D and hinge loss, momentum-free Adam is the usual choice (SNGAN, SAGAN,
# StyleGAN2), and a short CPU run needs the larger step. Demo size, 90 s on 2 cores
# (benchmarks/train_quality.py): SWD 166-223 -> 56-69 and tiled blobs -> emoji-like
# shapes. The EMA stays: at lr 5e-4 (betas 0.5/0.999) turning it off gave 123, not 87.
RECIPE = {"loss": "hinge", "augment": "color,translation,cutout", "ema_decay": 0.999,
          "batch_size": 64, "lr": 5e-4, "beta1": 0.0, "beta2": 0.99}


def check_aspect(aspect: int) -> int:
    if aspect not in (1, 3):
        raise ValueError(f"aspect {aspect} is not 1 (square) or 3 (banner, 3:1)")
    return aspect


class Generator(nn.Module):
    def __init__(self, nz=100, ngf=32, ndf=32, nc=3, image_size=64, aspect=1,
                 upsample="nearest"):
        super().__init__()
        self.main = generator_layers(nz, ngf, nc, image_size, seed_width=4 * check_aspect(aspect),
                                     last_bias=True, upsample=upsample)
        self.apply(_init_weights)

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, nz=100, ngf=32, ndf=32, nc=3, image_size=64, aspect=1,
                 upsample="nearest"):
        super().__init__()
        levels = _levels(image_size)
        seed_w = 4 * check_aspect(aspect)
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(nc, ndf, 4, 2, 1)),
                                   nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(levels - 1):
            layers += [spectral_norm(nn.Conv2d(width, width * 2, 4, 2, 1)),
                       nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        layers += [spectral_norm(nn.Conv2d(width, 1, (4, seed_w), 1, 0))]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).reshape(-1)

"""Our own upscaler: an ESPCN-class super-resolution network (Shi et al. 2016), small enough
to train and run on a CPU, trained per hashtag on its own full-size images
(socialgan.training.sr).

The network predicts a correction to bicubic upsampling rather than the whole image: three
convolutions on the small image, then a sub-pixel shuffle to `scale` times the size, added
to the bicubic upscale. The last convolution starts at zero, so an untrained network is
exactly bicubic and training can only move it from there; the shuffle's own checkerboard
(its outputs start equal) never appears.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from socialgan.errors import InvalidArgument

# Network options (the model card's arch_options) and, beside them, how it is trained:
# HR crop side, and the degradation that makes its small inputs (socialgan.training.sr).
DEFAULTS = {"scale": 4, "channels": 32, "nc": 3, "crop": 64, "degraded": 0.2, "blur": 1.0,
            "noise": 4.0, "jpeg": 75}
NETWORK_OPTIONS = ("scale", "channels", "nc")
# The loop's defaults for this model (training.config.LoopOptions fields): Adam at 1e-3
# with the usual betas, as ESPCN/FSRCNN train; no GAN tricks.
RECIPE = {"loss": "bce", "augment": "", "ema_decay": 0.0, "batch_size": 16, "lr": 1e-3,
          "beta1": 0.9, "beta2": 0.999, "metric_images": 64}
# name -> (low, high), inclusive: checked before anything is allocated.
OPTION_RANGES = {"scale": (2, 4), "channels": (4, 128), "nc": (3, 3), "crop": (16, 256),
                 "degraded": (0.0, 1.0), "blur": (0.0, 4.0), "noise": (0.0, 50.0),
                 "jpeg": (10, 100)}


def check_options(arch: dict[str, Any]) -> None:
    """InvalidArgument naming the option when it is outside OPTION_RANGES."""
    for name, (low, high) in OPTION_RANGES.items():
        if not low <= arch[name] <= high:
            raise InvalidArgument(f"options.{name}", f"must be in [{low}, {high}], "
                                  f"got {str(arch[name])[:40]}")
    if arch["crop"] % arch["scale"]:
        raise InvalidArgument("options.crop", f"{arch['crop']} is not a multiple of scale "
                              f"({arch['scale']})")


class ESPCN(nn.Module):
    def __init__(self, scale=4, channels=32, nc=3, **_training_options):
        super().__init__()
        self.scale = int(scale)
        self.body = nn.Sequential(
            nn.Conv2d(nc, channels, 5, 1, 2), nn.ReLU(True),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(channels, channels // 2, 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(channels // 2, nc * self.scale ** 2, 3, 1, 1),
        )
        self.shuffle = nn.PixelShuffle(self.scale)
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x):
        """x in [-1, 1], N x 3 x h x w -> N x 3 x (scale h) x (scale w), in [-1, 1]."""
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return (base + self.shuffle(self.body(x))).clamp(-1, 1)


@torch.no_grad()
def upscale_uint8(net: nn.Module, images: np.ndarray, chunk: int = 16) -> np.ndarray:
    """uint8 NHWC images -> uint8 NHWC at net.scale times the size."""
    device = next(net.parameters()).device
    out = []
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.array(images[start:start + chunk])).to(device)  # a copy: writable
        x = x.permute(0, 3, 1, 2).float().div(127.5).sub(1)
        y = net(x).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        out.append(y.permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)

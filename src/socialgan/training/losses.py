"""The GAN losses by name, the window that averages them for the loss history, and the
check that stops a run whose numbers are no longer finite.

A run that goes NaN or infinite (lr too high, a bad batch) never recovers: every later
step and the exported generator would be noise. It fails instead, before its state is
checkpointed or exported, so the last checkpoint and any model served stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from socialgan.errors import FailedPrecondition

_bce = nn.functional.binary_cross_entropy_with_logits
_relu = nn.functional.relu


def loss_of_d(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: "bce" (the tutorial's), or "hinge" (D stops pushing at a margin)."""
    if kind == "hinge":
        return _relu(1 - real_logits).mean() + _relu(1 + fake_logits).mean()
    return (_bce(real_logits, torch.ones_like(real_logits))
            + _bce(fake_logits, torch.zeros_like(fake_logits)))


def loss_of_g(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss: non-saturating BCE (make D call the fakes real), or hinge's -D(G(z))."""
    if kind == "hinge":
        return -fake_logits.mean()
    return _bce(fake_logits, torch.ones_like(fake_logits))


def diverged(step: int, what: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"training diverged at step {step}: {what} is not finite (NaN or infinity); the run "
        "stops without exporting, its last finite checkpoint is kept; start a new run with "
        "a lower lr")


def check_finite_weights(step: int, nets: Iterable[nn.Module | None]) -> None:
    """Raise diverged() when any parameter of nets is NaN or infinite (one device sync)."""
    for net in nets:
        if net is not None and not bool(torch.stack(
                [torch.isfinite(p).all() for p in net.parameters()]).all()):
            raise diverged(step, f"a weight of {type(net).__name__}")


class LossWindow:
    """Losses summed on the device and read once per log window: reading them every step
    would make a GPU wait for each step to finish. Its sum goes into checkpoints, so a
    resumed run's windows (and loss history) end where an uninterrupted run's do."""

    def __init__(self, device: torch.device):
        self.sum = torch.zeros(2, device=device)
        self.steps = 0

    def add(self, loss_d: torch.Tensor, loss_g: torch.Tensor) -> None:
        self.sum += torch.stack([loss_d.detach(), loss_g.detach()]).float()
        self.steps += 1

    def mean(self, step: int) -> dict[str, float]:
        """{"loss_d", "loss_g"} over the window so far; diverged() if one is not finite."""
        loss_d, loss_g = (self.sum / max(1, self.steps)).tolist()
        for name, value in (("loss_d", loss_d), ("loss_g", loss_g)):
            if not math.isfinite(value):
                raise diverged(step, name)
        return {"loss_d": loss_d, "loss_g": loss_g}

    def close(self, step: int, seconds: float) -> dict[str, Any]:
        """The window's history entry; the next window starts empty."""
        entry = {"step": step, **self.mean(step), "seconds": seconds}
        self.sum.zero_()
        self.steps = 0
        return entry

    def state_dict(self) -> dict[str, Any]:
        return {"sum": self.sum.detach().cpu(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sum.copy_(state["sum"])
        self.steps = int(state["steps"])

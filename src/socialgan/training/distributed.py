"""Multi-GPU training with torchrun/DDP: one process per GPU, the same loop in each.

    torchrun --nproc_per_node=8 -m services.trainer.server train --run-id R ...

Without torchrun (or with one process) nothing here does anything and the loop is the
single-device one. Under torchrun, every rank trains on its own random batches
(batch_size is the global batch, split across ranks), DDP averages the gradients, and
only rank 0 writes to storage (checkpoints, samples, history, the export).

Not run on a multi-GPU machine yet (none was lent while writing it); the CPU path
(gloo) is what tests can exercise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    device: torch.device | None = None  # the rank's device, when distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" \
            else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if flag is True on any (so all ranks stop at one step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def from_env() -> Ranks:
    """The ranks torchrun started (it sets the rendezvous variables that
    init_process_group reads itself), or a single process."""
    if not dist.is_torchelastic_launched():
        return Ranks()
    use_cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if world == 1:
        return Ranks()
    device = torch.device("cpu")
    if use_cuda:  # one GPU per process, ranks filling each node in order
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return Ranks(rank, world, device)

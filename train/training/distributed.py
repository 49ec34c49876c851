"""Process-group setup for ``torchrun`` (nccl on GPUs, gloo on CPUs); a no-op for one process."""

from __future__ import annotations

import torch
import torch.distributed as dist

from lrclr.ranks import Ranks


def setup_distributed(use_cuda: bool) -> Ranks:
    """Read torchrun's environment; start the process group when there is more than one rank.

    The backend follows the training device, not the machine: ``--device cpu`` on a GPU machine
    must use gloo, since nccl only moves CUDA tensors and would bind rank N to a GPU N that a
    one-GPU machine does not have.
    """
    ranks = Ranks.from_environment()
    if ranks.enabled and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group(backend=backend)
    return ranks


def teardown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_across_ranks(value: float, context: Ranks, device: torch.device) -> float:
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size

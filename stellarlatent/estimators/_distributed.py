"""The few `torch.distributed` collectives the training loop needs.

Every function is a no-op (or returns its single-process answer) when no
process group is initialised, so the estimators run unchanged outside
``torchrun``.
"""

import os

import torch
import torch.distributed as dist

__all__ = ["init_from_environment", "is_distributed", "world_size", "rank", "local_rank",
           "barrier", "all_true", "sum_totals", "average_buffers"]


def is_distributed():
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size():
    return dist.get_world_size() if is_distributed() else 1


def rank():
    return dist.get_rank() if is_distributed() else 0


def local_rank():
    """This process's index on its node (``LOCAL_RANK`` set by torchrun), else 0."""
    return int(os.environ.get("LOCAL_RANK", 0))


def init_from_environment(backend=None):
    """Join the process group described by torchrun's environment variables.

    Does nothing (and returns False) when the process was not launched by
    ``torchrun`` with more than one process, or when a group already exists.
    The backend defaults to NCCL when CUDA is available and gloo otherwise.
    """
    if not dist.is_available() or dist.is_initialized():
        return False
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    dist.init_process_group(backend)
    return True


def barrier():
    if is_distributed():
        dist.barrier()


def _collective_device(device):
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def all_true(flag, device):
    """Whether ``flag`` holds on every process."""
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device(device))
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def sum_totals(totals, count, device):
    """Sum per-process loss totals (a dict of floats) and spectrum counts over processes."""
    keys = sorted(totals)
    values = torch.tensor([totals[k] for k in keys] + [float(count)], dtype=torch.float64,
                          device=_collective_device(device))
    dist.all_reduce(values)
    values = values.tolist()
    return dict(zip(keys, values[:-1])), int(round(values[-1]))


def average_buffers(module):
    """Average floating-point buffers (batch-norm running statistics) over processes.

    Without synchronised batch norm (on CPU) each process updates its running
    statistics on its own share of the batches; averaging them keeps every
    process's copy of the network identical.
    """
    world = dist.get_world_size()
    for buffer in module.buffers():
        if torch.is_floating_point(buffer):
            reduced = buffer.detach().to(_collective_device(buffer.device), copy=True)
            dist.all_reduce(reduced)
            buffer.copy_(reduced.to(buffer.device) / world)

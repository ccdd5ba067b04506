"""Sizes a user can type, checked against the memory this machine has, before any work.

A network of a million neurons, a patch set of a billion patches or a simulation of a billion
steps would otherwise end in the allocator's raw error ("you tried to allocate 4000000000000
bytes") or run until the machine swaps. Each entry point that takes a size estimates what it
will hold (`require`) and refuses, with the estimate, what is available and which parameters
set it, when the estimate exceeds what the system can still give (``MemAvailable``). Estimates
count the largest tensors only: they are lower bounds, so nothing possible is refused.
"""
from __future__ import annotations

from pathlib import Path

import torch


class MemoryEstimateError(ValueError):
    """A size that cannot fit in this machine's memory; the message gives the estimate and what sets it."""


def available_memory() -> int | None:
    """Bytes of memory the system can still give (MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_on(device) -> int | None:
    """Free bytes on `device`: the GPU's free memory for CUDA, the system's for the CPU."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)  # what the driver has, plus what torch's cache holds unused
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return available_memory()


def require(nbytes: float, what: str, lower: str, device="cpu") -> None:
    """Refuse `what` (e.g. "a network of 1000000 neurons") when its estimated `nbytes` exceed what `device`
    has free; `lower` names the parameters that set it ("n_neurons, n_in")."""
    have = available_on(device)
    if have is not None and nbytes > have:
        raise MemoryEstimateError(f"{what} needs about {nbytes / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB "
                                  f"available on {torch.device(device).type}: lower {lower}")


def itemsize(dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()

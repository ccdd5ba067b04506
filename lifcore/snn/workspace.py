"""Buffers kept between calls, for the tensors of a computation that never leave it.

On a CPU a fresh tensor of a few tens of MB is paid for in page faults every time (about 35 ms
for 100 MB on the 2-core machine of the benchmarks, a quarter of a BPTT step), because glibc
hands large freed blocks back to the system. The input current and ``dE/dv`` of the hand-written
BPTT (`lifcore.snn.bptt`) and the chunk buffers and per-sample sums of one-pass e-prop
(`lifcore.snn.eprop`) are used only inside one call, so they live here instead: one buffer per
name, shape, dtype and device, per thread (autograd runs one backward at a time per device and
thread). Outputs and saved tensors are never taken from here. `release_workspace` frees them.
"""
from __future__ import annotations

import threading

import torch

_local = threading.local()


def buffer(name: str, shape: tuple, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The kept buffer `name` of this shape, dtype and device (contents undefined)."""
    buffers = _local.__dict__.setdefault("buffers", {})
    key = (name, torch.device(device).type, torch.device(device).index)
    tensor = buffers.get(key)
    if tensor is None or tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
        buffers.pop(key, None)  # the old one is freed before the new one is made
        tensor = buffers[key] = torch.empty(shape, dtype=dtype, device=device)
    return tensor


def release_workspace() -> None:
    """Free every buffer this thread keeps."""
    _local.__dict__.pop("buffers", None)


def workspace_bytes() -> int:
    """Bytes this thread's buffers hold."""
    return sum(t.numel() * t.element_size() for t in _local.__dict__.get("buffers", {}).values())

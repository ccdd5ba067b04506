"""Device selection shared by every lifcore entry point (`device="auto"` picks CUDA)."""
from __future__ import annotations

import torch

ALLOWED_DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's `device` argument into a `torch.device`.

    "auto" (or None) picks CUDA when it is present, else the CPU. A device that is
    not known, or not present on this machine, raises ValueError naming `device`.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device; allowed: {', '.join(ALLOWED_DEVICES)}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, which this machine does not have; use 'cpu' or 'auto'")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} asks for MPS, which this machine does not have; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not supported; allowed: {', '.join(ALLOWED_DEVICES)}")
    return dev


def check_device_name(device) -> None:
    """Raise ValueError unless `device` names a device lifcore supports, present here or not: a
    config may be written for another machine (a sweep sent from a cluster's login node to GPU
    nodes); `resolve_device` checks presence where the run trains."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device; allowed: {', '.join(ALLOWED_DEVICES)}") from err
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not supported; allowed: {', '.join(ALLOWED_DEVICES)}")

"""Measured, not assumed: wall time and peak memory of a gradient computation.

On the CPU, the computation runs alone in a fresh (spawned) Python process, and its peak
memory is that process's resident high-water mark during the call (``VmHWM``, reset just
before it through ``/proc/self/clear_refs``) minus its resident size before, so nothing the
notebook allocated before can hide it. (A forked child would be
cheaper but can hang in torch's OpenMP thread pool.) The arguments are read once before, so
that the pages of an input shared with the parent do not count as the call's memory, and the
function runs once before the measured call, so that what torch, MKL and OpenMP set up on first
use (8 to 12 MiB, the whole measurement for a small network) does not count either; after that
warm-up the buffers `lifcore.snn.workspace` keeps are released and glibc hands its free memory
back (``malloc_trim``), so that the measured call pays for everything it allocates. On CUDA it is
``torch.cuda.max_memory_allocated`` above the memory in use before the call.
"""
from __future__ import annotations

import ctypes
import gc
import multiprocessing as mp
import resource
import time

import torch

def gradient_call(method: str, net, x, loss, mode: str = "full") -> None:
    """One gradient computation of `lifcore.snn.grad.gradients`, result discarded (picklable for a child process)."""
    from .grad import gradients

    gradients(net, x, loss, method, mode)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _touch(args) -> None:
    """Read every tensor in `args` (and every module's parameters and buffers) once. Tensors
    reach a spawned child in shared memory, whose pages count in its resident size only once
    read: unread, a [T, B, n] input would count as the computation's own memory."""
    for arg in args:
        tensors = [arg] if torch.is_tensor(arg) else list(arg.state_dict().values()) if isinstance(arg, torch.nn.Module) else []
        for tensor in tensors:
            tensor.sum()


def _return_free_memory() -> None:
    from .workspace import release_workspace

    release_workspace()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: freed memory may stay resident, the peak is then a lower bound
        pass


def _child(fn, args, threads, queue):
    torch.set_num_threads(threads)
    _touch(args)
    fn(*args)  # warm-up: the libraries' own start-up is not the computation's memory
    _return_free_memory()
    try:  # reset the high-water mark (Linux >= 4.0), so that start-up peaks cannot hide the call's
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        before = _status_kib("VmRSS")
        fn(*args)
        peak = (_status_kib("VmHWM") - before) / 1024.0
    except OSError:  # no /proc: the growth of ru_maxrss (a lower bound)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn(*args)
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0
    gc.collect()
    gc.freeze()  # the set-up's objects out of the collector's reach: a full pass is no part of the computation's time
    start = time.perf_counter()  # timed on a third, warm call
    fn(*args)
    queue.put((time.perf_counter() - start, peak))


def time_and_peak_memory(fn, *args, device: torch.device | str = "cpu") -> tuple[float, float]:
    """``(seconds, peak MiB)`` of ``fn(*args)``; on the CPU `fn` and `args` must pickle
    (a module-level function such as `gradient_call`). The peak is that of a call after a
    warm-up call, the time that of a third one (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        fn(*args)
        torch.cuda.synchronize(device)
        from .workspace import release_workspace

        release_workspace()  # the measured call pays for its kept buffers too
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        fn(*args)
        torch.cuda.synchronize(device)
        return time.perf_counter() - start, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(fn, args, torch.get_num_threads(), queue))
    process.start()
    try:
        result = queue.get(timeout=3600)
    finally:
        process.join()
    return result

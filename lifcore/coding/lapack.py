"""The CPU kernel behind the information of the coding model: ``logdet(K + diag d_b)`` and
``(K + diag d_b)^-1`` for two shared kernels K and a batch of diagonals (issue 13).

Per sample and kernel, in one ``N x N`` buffer that stays in cache::

    A = K + diag(d_b)     copy, add the diagonal
    A = L L^T             LAPACK potrf (N^3/3 flops): logdet A = 2 sum log L_ii
    L -> L^-1             triangular inverse, by column blocks (N^3/3; in trsm, `_triangular_inverse`)
    L^-1 -> A^-1          LAPACK lauum, L^-T L^-1 (N^3/3)

and ``sum_b w_b A_b^-1`` and ``diag A_b^-1`` are kept: what the gradient needs, without a
``[B, N, N]`` tensor ever being formed (the batched torch path reads and writes five of
them, 46 MB each at N = 300, B = 128). LAPACK comes from SciPy's Cython API (the function
pointers SciPy exports for Cython, called through ctypes, which lets other threads run):
the batch is split over `workers` threads, each factorising its own samples
single-threaded. Why not torch's LAPACK: on the AMD CPUs this project measures on, MKL's
float32 ``spotrf`` runs at 27 % of the matmul peak against OpenBLAS's 53 %, and its
``slauum`` is not exported; `benchmarks/coding_step.py` prints both.

Workers default to one less than the cores this process may use (one on a 2-core machine):
a second CPU-bound process then slows a step by less than 1.5x (issue 13; a thread pool
spinning on a core that another process holds slowed a step by 17x). Set
``LIFCORE_WORKERS`` to override.
"""
from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

TRIANGULAR_BLOCK = 60  # columns per triangular solve in `_triangular_inverse` (best of 30..300 at N = 300)


def default_workers() -> int:
    """``LIFCORE_WORKERS``, or the usable cores minus one (at least 1)."""
    value = os.environ.get("LIFCORE_WORKERS")
    if value is not None:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"LIFCORE_WORKERS={value!r} must be a positive integer")
        return int(value)
    return max(1, len(os.sched_getaffinity(0)) - 1)


class _Routines:
    """potrf, lauum and trsm for one precision, from SciPy's Cython capsules."""

    def __init__(self, prefix: str, scalar):
        from scipy.linalg import cython_blas, cython_lapack

        get_name, get_pointer = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        c, i, p = ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_void_p

        def bind(module, name, *argtypes):
            capsule = module.__pyx_capi__[prefix + name]
            return ctypes.CFUNCTYPE(None, *argtypes)(get_pointer(capsule, get_name(capsule)))

        self.potrf = bind(cython_lapack, "potrf", c, i, p, i, i)
        self.lauum = bind(cython_lapack, "lauum", c, i, p, i, i)
        self.trsm = bind(cython_blas, "trsm", c, c, c, c, i, i, ctypes.POINTER(scalar), p, i, p, i)
        self.scalar = scalar


_PRECISIONS = {torch.float32: ("s", ctypes.c_float), torch.float64: ("d", ctypes.c_double)}
_ROUTINES: dict = {}


def routines(dtype: torch.dtype) -> _Routines:
    if dtype not in _ROUTINES:
        _ROUTINES[dtype] = _Routines(*_PRECISIONS[dtype])
    return _ROUTINES[dtype]


def available(tensor: torch.Tensor) -> bool:
    """Whether the kernel can run on `tensor` (CPU, float32 or float64, SciPy's Cython API)."""
    if tensor.device.type != "cpu" or tensor.dtype not in _PRECISIONS:
        return False
    try:
        routines(tensor.dtype)
    except (ImportError, KeyError, AttributeError):
        return False
    return True


_L, _N = b"L", b"N"


def _int(value: int):
    return ctypes.byref(ctypes.c_int(value))


def _triangular_inverse(lib: _Routines, factor: int, out: int, n: int, itemsize: int) -> None:
    """``X = L^-1`` into `out` (column-major, holding the identity) for the lower-triangular
    column-major `factor`, both ``n x n``.

    Column block ``j0:j1`` of X is zero above row j0, so it solves ``L[j0:, j0:] X[j0:, j0:j1]
    = I[j0:, j0:j1]`` only (BLAS trsm near the matmul peak): 1.3 N^3/3 flops for blocks of
    N/5, against N^3 for one solve with the whole identity; LAPACK's own trtri runs at 14 %
    of the peak at N = 300 (OpenBLAS, unblocked).
    """
    one = lib.scalar(1.0)
    for j0 in range(0, n, TRIANGULAR_BLOCK):
        offset = (j0 + j0 * n) * itemsize
        lib.trsm(_L, _L, _N, _N, _int(n - j0), _int(min(TRIANGULAR_BLOCK, n - j0)), ctypes.byref(one),
                 factor + offset, _int(n), out + offset, _int(n))


def _worker(lib, kernels, diagonal, weights, samples, log_diagonal, inverse_diagonal, with_inverse):
    """One worker: its samples, both kernels. Returns (sum_b w_b A_b^-1 per kernel, failures)."""
    n_kernels, n = kernels.shape[0], kernels.shape[1]
    buffer, inverse = np.empty((n, n), dtype=kernels.dtype), np.empty((n, n), dtype=kernels.dtype)
    identity = np.eye(n, dtype=kernels.dtype)
    address, inverse_address, itemsize = buffer.ctypes.data, inverse.ctypes.data, buffer.itemsize
    diagonal_view, inverse_diagonal_view = buffer.reshape(-1)[:: n + 1], inverse.reshape(-1)[:: n + 1]
    sums = np.zeros((n_kernels, n, n), dtype=kernels.dtype) if with_inverse else None
    info, failures = ctypes.c_int(0), []
    for b in samples:
        for k in range(n_kernels):
            np.copyto(buffer, kernels[k])
            diagonal_view += diagonal[b]
            lib.potrf(_L, _int(n), address, _int(n), ctypes.byref(info))
            if info.value != 0:
                failures.append((k, b))
                continue
            log_diagonal[k, b] = diagonal_view  # to float64 first: the logs cancel between kernels
            np.log(log_diagonal[k, b], out=log_diagonal[k, b])
            if with_inverse:
                np.copyto(inverse, identity)
                _triangular_inverse(lib, address, inverse_address, n, itemsize)
                lib.lauum(_L, _int(n), inverse_address, _int(n), ctypes.byref(info))
                inverse_diagonal[k, b] = inverse_diagonal_view
                # the strict upper triangle is X's (zero) part: dropped anyway in `_symmetric`
                sums[k] += inverse if weights is None else weights[b] * inverse
    return sums, failures


def _symmetric(lower_in_column_major: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose column-major lower triangle (the C-order upper) is given."""
    upper = np.triu(lower_in_column_major)
    return upper + np.triu(upper, 1).T


def shifted_logdet(kernels: torch.Tensor, diagonal: torch.Tensor, with_inverse: bool = True,
                   weights: torch.Tensor | None = None, workers: int | None = None) -> dict:
    """For kernels ``[k, N, N]`` (symmetric) and diagonals ``[B, N]``, with ``A_kb = K_k + diag d_b``:

    ``log_diagonal`` ``[k, B, N]`` float64, ``log L_ii`` of each Cholesky factor (``logdet =
    2 sum``); with `with_inverse`, ``inverse_diagonal`` ``[k, B, N]`` (``diag A_kb^-1``) and
    ``inverse_sum`` ``[k, N, N]`` (``sum_b w_b A_kb^-1``, w = 1 without `weights`);
    ``failures``: the (k, b) pairs whose matrix is not positive definite.
    """
    lib = routines(kernels.dtype)
    kernels_np = kernels.detach().contiguous().numpy()
    diagonal_np = diagonal.detach().to(kernels.dtype).contiguous().numpy()
    weights_np = None if weights is None else weights.detach().to(kernels.dtype).numpy()
    n_kernels, batch, n = kernels.shape[0], diagonal.shape[0], kernels.shape[-1]
    log_diagonal = np.zeros((n_kernels, batch, n), dtype=np.float64)
    inverse_diagonal = np.zeros((n_kernels, batch, n), dtype=kernels_np.dtype) if with_inverse else None
    workers = min(default_workers() if workers is None else workers, batch)
    parts = [range(start, batch, workers) for start in range(workers)]
    arguments = (lib, kernels_np, diagonal_np, weights_np)
    with _single_threaded_blas():
        if workers == 1:
            results = [_worker(*arguments, parts[0], log_diagonal, inverse_diagonal, with_inverse)]
        else:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda part: _worker(*arguments, part, log_diagonal, inverse_diagonal,
                                                             with_inverse), parts))
    out = {"log_diagonal": torch.from_numpy(log_diagonal),
           "failures": sorted(f for _, failed in results for f in failed)}
    if with_inverse:
        total = sum(sums for sums, _ in results)
        out["inverse_sum"] = torch.from_numpy(np.stack([_symmetric(m) for m in total]))
        out["inverse_diagonal"] = torch.from_numpy(inverse_diagonal)
    return out


_CONTROLLER = None


def _single_threaded_blas():
    """Each worker's LAPACK calls run on its own thread only (threadpoolctl, cached)."""
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")

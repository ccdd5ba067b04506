"""Where the time of a coding step goes: the step, its FLOP floor, the matmul peak
it is measured against, and a `torch.profiler` breakdown by part.

Shared by `benchmarks/coding_step.py` and the chapter "Where the time goes". A step is what
`lifcore.train.loop` does per batch, without the constraint method's bookkeeping:
gains at the batch, the shared kernels ``W (C_x + s_in^2 I) W^T`` and ``s_in^2 W W^T``, the
per-sample factorisations (`lifcore.coding.info.gain_scaled_information`), the backward,
the optimiser (and the deck's renormalisation), and the recorder's per-step matrices.

FLOP floor of one step (N neurons, D inputs, batch B), LAPACK's counts::

    per sample, 2 matrices:  Cholesky N^3/3 + inverse from the factor 2N^3/3   -> 2 N^3
    shared, forward:         W C_x (2ND^2), (W C_x) W^T (2N^2 D), W W^T (2N^2 D) -> 2ND^2 + 4N^2 D
    shared, backward:        through both products to W                          -> 2ND^2 + 8N^2 D

(6 N^3 and 10 N^3 where D = N.)

at the float32 (or float64) matmul peak measured in the same process on the same cores.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from .coding import info, lapack

PARTS = ("gains", "shared kernels", "factorisations", "backward", "optimiser", "logging")


def step_flops(n: int, batch: int, dim: int | None = None) -> float:
    """FLOPs a step of `n` neurons on `dim` inputs (default `n`) must do (module docstring)."""
    dim = n if dim is None else dim
    return 4 * n * dim**2 + 12 * n**2 * dim + batch * 2 * n**3


def matmul_peak(dtype=torch.float32, device="cpu", size: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of a ``size x size`` matmul here, with the current torch threads (best of `repeats`)."""
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    return 2 * size**3 / min(timed(lambda: a @ b, device, repeats))


def timed(fn, device="cpu", repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn` (after `warmup`), synchronising CUDA."""
    return interleaved({"fn": fn}, device, repeats, warmup)["fn"]


def interleaved(fns: dict, device="cpu", repeats: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Wall-clock seconds of `repeats` calls of each function, run round-robin (after `warmup`
    calls each), synchronising CUDA: the drifts of a shared machine hit every contender alike."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def median_ms(fn, device="cpu", repeats: int = 5) -> float:
    return 1e3 * statistics.median(timed(fn, device, repeats))


class CodingStep:
    """One training step of `encoder` on patches `x` ``[B, D]`` (``C_x`` = `input_covariance`).

    `backend` and `workers` go to `info.gain_scaled_information`; ``backend="direct"`` is the
    textbook path instead: ``Sigma_r``, ``Sigma_n`` as ``[B, N, N]`` products and Cholesky
    log-determinants under autograd. Each part runs under a `record_function` label (`PARTS`).
    """

    def __init__(self, encoder, x, input_covariance, backend: str = "auto", workers: int | None = None,
                 lr: float = 1e-4):
        self.encoder, self.x, self.backend, self.workers = encoder, x, backend, workers
        self.cov = input_covariance.to(encoder.weights)
        self.optimizer = torch.optim.SGD(encoder.parameters(), lr=lr)

    def information(self) -> torch.Tensor:
        enc = self.encoder
        with record_function("gains"):
            gain = enc.gain_of_current(enc.current(self.x))
        if self.backend == "direct":
            with record_function("factorisations"):
                noise = info.noise_covariance(enc.weights, gain, enc.input_noise, enc.output_noise)
                response = info.response_covariance(enc.weights, gain, self.cov, enc.input_noise, enc.output_noise)
                logdet = [2 * torch.linalg.cholesky(m).diagonal(dim1=-2, dim2=-1).log().sum(-1) for m in (response, noise)]
            return 0.5 * (logdet[0] - logdet[1]), gain, None
        with record_function("shared kernels"):
            signal = info.wcxw(enc.weights, self.cov)
            wwt = enc.weights @ enc.weights.t()
        with record_function("factorisations"):
            mi = info.gain_scaled_information(signal, wwt, gain, enc.input_noise, enc.output_noise,
                                              backend=self.backend, workers=self.workers)
        return mi, gain, (signal, wwt)

    def __call__(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        mi, gain, shared = self.information()
        loss = -mi.mean()
        with record_function("backward"):
            loss.backward()
        with record_function("optimiser"):
            self.optimizer.step()
            self.encoder.project_()
        with record_function("logging"):
            if shared is not None:
                self.encoder.mean_covariances(gain, *shared)
            return loss.item()


def profile_parts(step: CodingStep, steps: int = 3) -> dict[str, float]:
    """Milliseconds per step of each of `PARTS` (and ``"other"``: the step's remainder), from
    `torch.profiler` over `steps` steps after a warm-up step."""
    step()
    start = time.perf_counter()
    with native_output([]), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    total = (time.perf_counter() - start) * 1e3 / steps
    events = {e.key: e.cpu_time_total / 1e3 / steps for e in prof.key_averages() if e.key in PARTS}
    parts = {name: events.get(name, 0.0) for name in PARTS}
    parts["other"] = max(0.0, total - sum(parts.values()))
    return parts


@contextmanager
def threads(n: int | None):
    """Run torch with `n` intra-op threads inside the block (None: as it is)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- log-determinants by four factorisations (the deck's "LU decomposition?") ---------------
LOGDET_METHODS = {
    "Cholesky": lambda a: 2 * torch.linalg.cholesky(a).diagonal(dim1=-2, dim2=-1).log().sum(-1),
    "LU (slogdet)": lambda a: torch.linalg.slogdet(a)[1],
    "eigendecomposition": lambda a: torch.linalg.eigvalsh(a).log().sum(-1),
    "QR": lambda a: torch.linalg.qr(a)[1].diagonal(dim1=-2, dim2=-1).abs().log().sum(-1),
}
# FLOPs per N x N matrix, forward (LAPACK counts; eigvalsh: the tridiagonal reduction)
LOGDET_FLOPS = {"Cholesky": 1 / 3, "LU (slogdet)": 2 / 3, "eigendecomposition": 4 / 3, "QR": 4 / 3}


def compare_logdets(kernel: torch.Tensor, diagonal: torch.Tensor, dtype, repeats: int = 3) -> list[dict]:
    """``logdet(K + diag d_b)`` and its gradient ``(K + diag d_b)^-1`` for each b, by each of
    `LOGDET_METHODS` (torch, autograd) and by lifcore's kernel (`lifcore.coding.lapack` on CPU:
    Cholesky, then the inverse from the factor), in `dtype`.

    Rows: method, forward and backward milliseconds (medians), how many log-determinants
    came out undefined (NaN: an eigenvalue or a pivot at or below zero), and the largest
    relative errors of the others and of the batch's summed gradient against float64 Cholesky. ``kernel`` ``[N, N]`` and ``diagonal`` ``[B, N]`` are float64.
    A ``kernel`` of ``[B, N, N]`` is one matrix per sample (the deck's own form ``G_b K G_b + s_out^2 I``); lifcore's
    kernel, which shares K over the batch, has no row then.
    """
    if kernel.dim() not in (2, 3) or kernel.shape[-2:] != (diagonal.shape[-1],) * 2 or (kernel.dim() == 3 and kernel.shape[0] != diagonal.shape[0]):
        raise ValueError(f"kernel must be [N, N] or [B, N, N] with diagonal [B, N]; got {tuple(kernel.shape)} and {tuple(diagonal.shape)}")
    matrices64 = kernel.clone() if kernel.dim() == 3 else kernel.expand(diagonal.shape[0], -1, -1).clone()
    matrices64.diagonal(dim1=-2, dim2=-1).add_(diagonal)
    chol = torch.linalg.cholesky(matrices64)
    reference = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    reference_grad = torch.cholesky_inverse(chol).sum(0)
    matrices = matrices64.to(dtype)
    rows = []

    def row(method, forward, backward, logdet, grad_sum):
        finite = logdet.isfinite()
        error = ((logdet.double() - reference).abs() / reference.abs())[finite]
        rows.append({"method": method, "dtype": str(dtype).replace("torch.", ""), "forward ms": forward,
                     "backward ms": backward, "undefined": int((~finite).sum()),
                     "logdet error": error.max().item() if error.numel() else float("nan"),
                     "gradient error": ((grad_sum.double() - reference_grad).abs().max()
                                        / reference_grad.abs().max()).item()})

    for method, fn in LOGDET_METHODS.items():
        forward, backward = [], []
        for _ in range(repeats + 1):
            a = matrices.clone().requires_grad_()
            start = time.perf_counter()
            value = fn(a)
            middle = time.perf_counter()
            value.sum().backward()
            forward.append(middle - start)
            backward.append(time.perf_counter() - middle)
        row(method, 1e3 * statistics.median(forward[1:]), 1e3 * statistics.median(backward[1:]), value.detach(), a.grad.sum(0))
    if kernel.dim() == 2 and lapack.available(matrices):
        kernels, diag = kernel.to(dtype)[None], diagonal.to(dtype)
        forward = statistics.median(timed(lambda: lapack.shifted_logdet(kernels, diag, False, workers=1), repeats=repeats))
        both = statistics.median(timed(lambda: lapack.shifted_logdet(kernels, diag, True, workers=1), repeats=repeats))
        out = lapack.shifted_logdet(kernels, diag, True, workers=1)
        row("Cholesky, lifcore's kernel", 1e3 * forward, 1e3 * (both - forward), 2 * out["log_diagonal"][0].sum(-1),
            out["inverse_sum"][0])
    return rows


_LU_CHILD = """
import sys, torch
matrices = torch.load(sys.argv[1], weights_only=True)
torch.set_num_threads(int(sys.argv[2]))
torch.save(torch.linalg.slogdet(matrices)[1], sys.argv[3])
"""


def batched_lu_check(matrices: torch.Tensor, n_threads: int = 2, timeout: float = 120.0) -> dict:
    """``slogdet`` of a batch with `n_threads` torch threads, against float64 Cholesky: the largest
    relative ``error``, the lines the LAPACK library ``printed`` meanwhile, and whether it ``hung``.

    It runs in a child process, killed after `timeout` seconds: with torch 2.13 and more than one
    MKL thread on AMD CPUs, batched LU returns wrong determinants, and it can also spin for ever
    (``mkl_lapack_sgetrf`` waiting on a thread team that never comes); a hung check reports
    ``hung=True`` and an undefined error instead of hanging its caller."""
    import os
    import subprocess
    import sys
    import tempfile

    reference = 2 * torch.linalg.cholesky(matrices.double()).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    with tempfile.TemporaryDirectory() as folder:
        given, answer = os.path.join(folder, "matrices.pt"), os.path.join(folder, "slogdet.pt")
        torch.save(matrices.detach().cpu().contiguous(), given)
        env = {**os.environ, "OMP_NUM_THREADS": str(n_threads), "MKL_NUM_THREADS": str(n_threads)}
        try:
            done = subprocess.run([sys.executable, "-c", _LU_CHILD, given, str(n_threads), answer], env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as stopped:  # run() has killed the child
            printed = (stopped.stdout or b"").decode(errors="replace") if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
            return {"error": float("nan"), "printed": [line for line in printed.splitlines() if line.strip()],
                    "hung": True, "timeout": timeout}
        printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        if done.returncode != 0:
            raise RuntimeError(f"the batched LU check failed in its child process (exit {done.returncode}): "
                               + " | ".join(printed[-3:]))
        value = torch.load(answer, weights_only=True)
    return {"error": ((value.double() - reference).abs() / reference.abs()).max().item(), "printed": printed,
            "hung": False, "timeout": timeout}


@contextmanager
def native_output(lines: list):
    """Catch what native code writes to the process's stdout and stderr (file descriptors 1
    and 2: MKL's messages, the profiler's start and stop lines) into `lines`, so that none
    reaches a published page."""
    import os
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())

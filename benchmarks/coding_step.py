"""One training step of the efficient-coding model (issues 3, 10, 13, 32): B = 128, N = 300 neurons on D inputs.

Run on demand: ``python benchmarks/coding_step.py [--device auto] [--batch 128] [-n 300] [--dim 972]``
(``--dim`` defaults to N; 972 is the deck's model, 18 x 18 x 3 patches).

For the deck's model (softplus encoder) and the project's LIF-curve model, prints in one run:
the step time of lifcore's path (`lifcore.coding.lapack` on CPU: each sample's Cholesky and
inverse in cache, `workers` threads), of the batched torch path, and of the textbook path
(``[B, N, N]`` covariances, Cholesky under autograd); the FLOP floor (`lifcore.timing`) at
the matmul peak measured here on the cores the step uses, and the ratio. Then the same
with a CPU-bound process beside it (a Python busy loop), and the slowdown.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os

import torch

import lifcore
from lifcore import timing
from lifcore.coding import SoftLIFEncoder, SoftplusEncoder, lapack


def busy_loop():
    while True:
        pass


def step_times(n, dim, batch, device, dtype, workers, repeats) -> dict:
    torch.manual_seed(0)
    a = torch.randn(dim, dim, dtype=torch.float64)
    cov = (a @ a.t() / dim + 1e-3 * torch.eye(dim, dtype=torch.float64)).to(device, dtype)
    x = torch.randn(batch, dim, device=device, dtype=dtype)
    out = {}
    for name, make in (("deck (softplus)", SoftplusEncoder), ("LIF curve", SoftLIFEncoder)):
        for backend in (("auto", "torch", "direct") if device.type == "cpu" else ("auto", "direct")):
            encoder = make(dim=dim, n_neurons=n, device=device, dtype=dtype)
            step = timing.CodingStep(encoder, x, cov, backend=backend, workers=workers)
            out[name, backend] = timing.median_ms(step, device, repeats)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("-n", type=int, default=300, help="N, neurons")
    parser.add_argument("--dim", type=int, default=None, help="D, inputs (default N; the deck's model: 972)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--workers", type=int, default=None, help="lapack workers (default: cores - 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-busy", action="store_true", help="skip the run beside a busy process")
    args = parser.parse_args()
    device, dtype = lifcore.resolve_device(args.device), getattr(torch, args.dtype)
    dim = args.dim or args.n
    workers = args.workers or lapack.default_workers()
    cores = len(os.sched_getaffinity(0))
    used = workers if device.type == "cpu" else None
    with timing.threads(used):
        peak_used = timing.matmul_peak(dtype, device)
    with timing.threads(cores if device.type == "cpu" else None):
        peak_all = timing.matmul_peak(dtype, device)
    flops = timing.step_flops(args.n, args.batch, dim)
    floor_ms = flops / peak_used * 1e3
    print(f"device={device} dtype={args.dtype} B={args.batch} N={args.n} D={dim} torch threads={torch.get_num_threads()} "
          f"lapack workers={workers} cores={cores}")
    print(f"matmul peak on the {used or 'GPU'} core(s) the step uses: {peak_used / 1e9:.1f} GFLOP/s "
          f"(all {cores} cores: {peak_all / 1e9:.1f}); step {flops / 1e9:.2f} GFLOP, floor {floor_ms:.1f} ms "
          f"(on all cores {flops / peak_all * 1e3:.1f} ms)")
    quiet = step_times(args.n, dim, args.batch, device, dtype, workers, args.repeats)
    busy = None
    if not args.no_busy and device.type == "cpu":
        spinner = multiprocessing.Process(target=busy_loop, daemon=True)
        spinner.start()
        try:
            busy = step_times(args.n, dim, args.batch, device, dtype, workers, args.repeats)
        finally:
            spinner.terminate()
    header = f"{'model':18s}{'path':9s}{'ms':>9s}{'x floor':>9s}" + (f"{'busy ms':>10s}{'slowdown':>10s}" if busy else "")
    print(header)
    for (model, backend), ms in quiet.items():
        line = f"{model:18s}{'lifcore' if backend == 'auto' else backend:9s}{ms:9.1f}{ms / floor_ms:9.2f}"
        if busy:
            line += f"{busy[model, backend]:10.1f}{busy[model, backend] / ms:10.2f}"
        print(line)


if __name__ == "__main__":
    main()

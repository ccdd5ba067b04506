"""One training step of the efficient-coding model (issues 3, 10): B = 128, N = D = 300.

Run on demand: ``python benchmarks/coding_step.py [--device auto] [--batch 128]``.
For each encoder (the project's soft-LIF and the deck's softplus), compares, in one run, lifcore's step (shared ``W C_x W^T`` and ``W W^T``, a per-sample
diagonal, Cholesky log-determinants with an inverse-based backward) with the direct
formula (per-sample ``Sigma_r``, ``Sigma_n`` as ``[B, N, N]`` products and
``torch.logdet`` under autograd), and both with a FLOP floor at the float32 matmul
peak measured here.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import lifcore
from lifcore.coding import SoftLIFEncoder, SoftplusEncoder, info


def timed(fns: dict, device, repeats: int) -> dict:
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("-n", type=int, default=300, help="N = D")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = lifcore.resolve_device(args.device)
    n, batch = args.n, args.batch
    torch.manual_seed(0)
    a = torch.randn(n, n, dtype=torch.float64)
    cov = (a @ a.t() / n + 1e-3 * torch.eye(n, dtype=torch.float64)).float().to(device)
    x = torch.randn(batch, n, device=device)
    fns = {}
    for name, model in (("soft_lif", SoftLIFEncoder(dim=n, n_neurons=n, device=device)),
                        ("softplus", SoftplusEncoder(dim=n, n_neurons=n, device=device))):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def lifcore_step(model=model, opt=opt):
            opt.zero_grad()
            (-model.information(x, cov)["MI"].mean()).backward()
            opt.step()

        def direct_step(model=model, opt=opt):
            opt.zero_grad()
            gain = model.gain(x)
            noise = info.noise_covariance(model.weights, gain, model.input_noise, model.output_noise)
            response = info.response_covariance(model.weights, gain, cov, model.input_noise, model.output_noise)
            (-0.5 * (torch.logdet(response) - torch.logdet(noise)).mean()).backward()
            opt.step()

        fns[f"{name} lifcore"], fns[f"{name} direct"] = lifcore_step, direct_step

    m1, m2 = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    t = timed(fns | {"matmul": lambda: m1 @ m2}, device, args.repeats)
    peak = 2 * 2048**3 / t["matmul"]
    # shared W C_x W^T (4 n^3) and W W^T (2 n^3); per sample two Cholesky (n^3/3 each) forward
    # and two inverses from the factor (about n^3 each) backward
    flops = 6 * n**3 + batch * (2 * n**3 / 3 + 2 * n**3)
    print(f"device={device} threads={torch.get_num_threads()} B={batch} N=D={n}")
    print(f"float32 matmul peak measured here {peak / 1e9:.1f} GFLOP/s; step FLOP estimate {flops / 1e9:.2f} GFLOP, "
          f"floor {flops / peak * 1e3:.1f} ms")
    print(f"{'':32s}{'median ms':>10s}{'vs direct':>10s}{'x floor':>9s}")
    for encoder in ("soft_lif", "softplus"):
        for name in ("direct", "lifcore"):
            key = f"{encoder} {name}"
            print(f"{key + ' step':32s}{t[key] * 1e3:10.1f}{t[key] / t[encoder + ' direct']:10.2f}"
                  f"{t[key] / (flops / peak):9.1f}")


if __name__ == "__main__":
    main()

"""Forward and BPTT train-step time of `LIFNetwork` against a plain hand-written torch loop.

Run on demand: ``python benchmarks/lif_step.py [--device auto] [--repeats 7]``.
Prints medians, the ratio LIFNetwork / plain loop (both measured in this run), and
each train step's share of the machine's float32 matmul peak, also measured here.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import lifcore


class PlainSpike(torch.autograd.Function):
    """Heaviside with Bellec's pseudo-derivative, written out (the baseline knows nothing of lifcore)."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u > 0).float()

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * 0.3 * torch.clamp(1 - u.abs(), min=0)


def plain_forward(x, w_in, w_rec, alpha=0.95, v_th=1.0):
    current = x @ w_in.t()
    w_rec_t = (w_rec * (1 - torch.eye(w_rec.shape[0], device=w_rec.device))).t()
    v = torch.zeros(x.shape[1], w_rec.shape[0], device=x.device)
    z = torch.zeros_like(v)
    zs = []
    for c in current.unbind(0):
        v = alpha * v + c + z @ w_rec_t - v_th * z
        z = PlainSpike.apply(v - v_th)
        zs.append(z)
    return torch.stack(zs)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_times(fns: dict, device, repeats) -> dict:
    """Median wall time of each function, run round-robin so that drifts of a shared
    2-core machine hit every contender alike."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_peak(device, n=2048, repeats=5):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / median_times({"mm": lambda: a @ b}, device, repeats)["mm"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("-T", type=int, default=100)
    parser.add_argument("-B", type=int, default=128)
    parser.add_argument("-n", type=int, default=300, help="n_in = n_neurons")
    args = parser.parse_args()
    device = lifcore.resolve_device(args.device)
    T, B, n = args.T, args.B, args.n
    torch.manual_seed(0)
    x = (torch.rand(T, B, n, device=device) < 0.05).float()
    loss = lifcore.RateLoss(r0=0.05)

    net = lifcore.LIFNetwork(n, n, alpha=0.95, w_in_scale=3.0, device=device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    w_in = net.w_in.detach().clone().requires_grad_(True)
    w_rec = net.w_rec.detach().clone().requires_grad_(True)
    opt_plain = torch.optim.SGD([w_in, w_rec], lr=1e-3)

    def lif_train():
        opt.zero_grad()
        z, _ = net(x)
        loss(z).backward()
        opt.step()

    def plain_train():
        opt_plain.zero_grad()
        loss(plain_forward(x, w_in, w_rec)).backward()
        opt_plain.step()

    def eprop_train():
        grads, _ = lifcore.eprop_gradients(net, x, loss)
        lifcore.snn.grad.apply_gradients(net, grads)
        opt.step()

    with torch.no_grad():
        fwd = median_times({"lif": lambda: net(x), "plain": lambda: plain_forward(x, w_in, w_rec)}, device, args.repeats)
    t_fwd_lif, t_fwd_plain = fwd["lif"], fwd["plain"]
    step = median_times({"lif": lif_train, "plain": plain_train, "eprop": eprop_train}, device, args.repeats)
    t_lif, t_plain, t_eprop = step["lif"], step["plain"], step["eprop"]
    peak = matmul_peak(device)
    # matmul FLOPs of a train step: forward (input + recurrent) and twice that backward
    flops = 3 * 2 * T * B * (n + n) * n
    print(f"device={device} threads={torch.get_num_threads()} T={T} B={B} n_in=n_neurons={n}")
    print(f"float32 matmul peak measured here: {peak / 1e9:.1f} GFLOP/s; train-step FLOP floor {flops / peak * 1e3:.1f} ms")
    print(f"{'':24s}{'median ms':>10s}{'vs plain':>10s}{'% peak':>8s}")
    print(f"{'forward, plain loop':24s}{t_fwd_plain * 1e3:10.1f}{1.0:10.2f}")
    print(f"{'forward, LIFNetwork':24s}{t_fwd_lif * 1e3:10.1f}{t_fwd_lif / t_fwd_plain:10.2f}")
    print(f"{'BPTT step, plain loop':24s}{t_plain * 1e3:10.1f}{1.0:10.2f}{flops / t_plain / peak * 100:8.1f}")
    print(f"{'BPTT step, LIFNetwork':24s}{t_lif * 1e3:10.1f}{t_lif / t_plain:10.2f}{flops / t_lif / peak * 100:8.1f}")
    print(f"{'e-prop step (2 passes)':24s}{t_eprop * 1e3:10.1f}{t_eprop / t_plain:10.2f}")


if __name__ == "__main__":
    main()

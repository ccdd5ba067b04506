"""A LIF network's forward and BPTT train step: lifcore against a plain loop, snnTorch and Norse.

Run on demand: ``python benchmarks/lif_step.py [--device auto] [--repeats 15] [--no-memory]``
(``make benchmark``). Every contender runs the same network (B = 128, n_in = n = 300, T = 100,
alpha = 0.95, threshold 1, reset by subtraction, no self-connections, no bias) with the same
surrogate (fast sigmoid, slope 25), interleaved round-robin so that the drifts of a shared
machine hit all alike; medians are printed with ratios against the fastest peer, and the FLOP
floor is taken at the float32 matmul peak (a 2048 x 2048 product, 8192 on a GPU) timed in the
same round-robin.

* lifcore fused: `LIFNetwork` with the hand-written BPTT (`lifcore.snn.bptt`);
* lifcore autograd: the same network, autograd through `lif_step` (the reference path);
* plain loop: a hand-written torch loop with a spike `autograd.Function`, nothing of lifcore;
* snnTorch ``RLeaky`` (subtract reset, bias zeroed and frozen, diagonal zeroed): the same
  forward pass (its reset is detached, lifcore's "detach_reset" mode; the spikes are checked
  equal to lifcore's); the input projection is computed for all steps at once, as lifcore does;
* Norse ``LIFRecurrent`` (SuperSpike surrogate, alpha 25, no autapses): Norse's own LIF, with a
  synaptic current and reset to zero, so not the same spikes; it projects the input per step.

The peers are optional: ``pip install --no-deps snntorch norse nir nirtorch h5py`` installs them
beside the CPU torch of `requirements.txt` (without ``--no-deps`` Norse pulls torchvision and
a CUDA build of torch). Then e-prop's step (one pass) against BPTT's, and, in a fresh process
each, the peak memory of both at T = 100 and T = 1000 (`lifcore.snn.measure`).
"""
from __future__ import annotations

import argparse
import statistics

import torch

import lifcore
from lifcore.snn.grad import apply_gradients
from lifcore.snn.measure import gradient_call, time_and_peak_memory
from lifcore.timing import interleaved

SLOPE = 25.0  # fast-sigmoid slope, the same for every contender


class PlainSpike(torch.autograd.Function):
    """Heaviside with the fast-sigmoid pseudo-derivative, written out (the baseline knows nothing of lifcore)."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g / (1.0 + SLOPE * u.abs()) ** 2


def plain_forward(x, w_in, w_rec, alpha=0.95, v_th=1.0):
    current = x @ w_in.t()
    w_rec_t = (w_rec * (1 - torch.eye(w_rec.shape[0], device=w_rec.device, dtype=w_rec.dtype))).t()
    v = torch.zeros(x.shape[1], w_rec.shape[0], device=x.device, dtype=x.dtype)
    z = torch.zeros_like(v)
    zs = []
    for c in current.unbind(0):
        v = alpha * v + c + z @ w_rec_t - v_th * z
        z = PlainSpike.apply(v - v_th)
        zs.append(z)
    return torch.stack(zs)


def snntorch_model(net: lifcore.LIFNetwork):
    """snnTorch's RLeaky with lifcore's weights, or None when snnTorch is not installed."""
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        return None
    fc = torch.nn.Linear(net.n_in, net.n_neurons, bias=False).to(net.w_in)
    lif = snntorch.RLeaky(beta=net.alpha, linear_features=net.n_neurons, threshold=1.0, reset_mechanism="subtract",
                          spike_grad=surrogate.fast_sigmoid(slope=SLOPE)).to(net.w_in)
    with torch.no_grad():
        fc.weight.copy_(net.w_in)
        lif.recurrent.weight.copy_(net.w_rec * net.off_diagonal)
        lif.recurrent.bias.zero_()
    lif.recurrent.bias.requires_grad_(False)

    def forward(x):
        current = fc(x)  # all steps at once, as lifcore and the plain loop do
        spk, mem = lif.reset_mem()
        spikes = []
        for current_t in current.unbind(0):
            spk, mem = lif(current_t, spk, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return forward, [fc.weight, lif.recurrent.weight]


def norse_model(net: lifcore.LIFNetwork):
    """Norse's LIFRecurrent of the same size, or None when Norse is not installed."""
    try:
        from norse.torch import LIFParameters, LIFRecurrent
    except ImportError:
        return None
    p = LIFParameters(method="super", alpha=torch.as_tensor(SLOPE), v_th=torch.as_tensor(1.0))
    model = LIFRecurrent(net.n_in, net.n_neurons, p=p, autapses=False).to(net.w_in)
    return (lambda x: model(x)[0]), list(model.parameters())


def median_times(fns: dict, device, repeats) -> dict:
    """Median wall time of each function, interleaved round-robin (`lifcore.timing.interleaved`)."""
    return {name: statistics.median(ts) for name, ts in interleaved(fns, device, repeats).items()}


def train_step(forward, params, x, loss):
    opt = torch.optim.SGD(params, lr=1e-6)

    def step():
        opt.zero_grad()
        loss(forward(x)).backward()
        opt.step()

    return step


def contenders(net, x):
    """name -> (forward(x) -> z, trainable parameters); lifcore first, peers after."""
    w_in = net.w_in.detach().clone().requires_grad_(True)
    w_rec = net.w_rec.detach().clone().requires_grad_(True)
    found = {
        "lifcore fused": (lambda x: net(x)[0], list(net.parameters())),
        "lifcore autograd": (lambda x: net(x, path="autograd")[0], list(net.parameters())),
        "plain loop": (lambda x: plain_forward(x, w_in, w_rec, net.alpha), [w_in, w_rec]),
    }
    for name, make in (("snnTorch RLeaky", snntorch_model), ("Norse LIFRecurrent", norse_model)):
        model = make(net)
        if model is None:
            print(f"{name}: not installed (pip install --no-deps snntorch norse nir nirtorch h5py)")
        else:
            found[name] = model
    return found


def peak_memory(net, loss, T, B, device, method):
    x = (torch.rand(T, B, net.n_in, device=device) < 0.05).to(net.w_in.dtype)
    return time_and_peak_memory(gradient_call, method, net, x, loss, device=device)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("-T", type=int, default=100)
    parser.add_argument("-B", type=int, default=128)
    parser.add_argument("-n", type=int, default=300, help="n_in = n_neurons")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs (fresh processes)")
    args = parser.parse_args()
    device = lifcore.resolve_device(args.device)
    T, B, n = args.T, args.B, args.n
    torch.manual_seed(0)
    x = (torch.rand(T, B, n, device=device) < 0.05).float()
    loss = lifcore.RateLoss(r0=0.05)
    net = lifcore.LIFNetwork(n, n, alpha=0.95, w_in_scale=3.0, surrogate="fast_sigmoid", device=device)
    models = contenders(net, x)

    with torch.no_grad():
        z_lif = net(x, detach_reset=True)[0]
        if "snnTorch RLeaky" in models:
            differ = (models["snnTorch RLeaky"][0](x) != z_lif).sum().item()
            print(f"snnTorch RLeaky against lifcore: {differ} of {z_lif.numel()} spikes differ (same network)")
        differ = (models["plain loop"][0](x) != z_lif).sum().item()
        print(f"plain loop against lifcore: {differ} of {z_lif.numel()} spikes differ; firing rate {z_lif.mean().item():.3f} per step")
        forward = median_times({name: (lambda f=f: f(x)) for name, (f, _) in models.items()}, device, args.repeats)
    size = 2048 if device.type == "cpu" else 8192
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    # the matmul peak is timed in the same round-robin as the train steps, so that it sees the same machine
    step = median_times({**{name: train_step(f, p, x, loss) for name, (f, p) in models.items()},
                         "matmul": lambda: a @ b}, device, args.repeats)
    peak = 2 * size**3 / step.pop("matmul")
    # the matmul FLOPs BPTT cannot avoid: forward input and recurrent products, backward recurrent
    # product, grad W_in and grad W_rec (each 2 T B n^2 here). No contender computes a gradient for x:
    # the first version of this benchmark counted one for it (6 products), a floor 1.2x too high.
    flops = 5 * 2 * T * B * n * n
    floor = flops / peak
    peers = [name for name in models if not name.startswith("lifcore")]
    fastest = min(peers, key=lambda name: step[name])
    print(f"\ndevice={device} threads={torch.get_num_threads()} T={T} B={B} n_in=n_neurons={n}")
    print(f"float32 matmul peak measured here: {peak / 1e9:.1f} GFLOP/s; BPTT FLOP floor (5 products, "
          f"{flops / 1e9:.2f} GFLOP) {floor * 1e3:.1f} ms")
    print(f"{'':22s}{'forward ms':>11s}{'train ms':>10s}{'x floor':>9s}{'fastest peer / this':>21s}")
    for name in models:
        print(f"{name:22s}{forward[name] * 1e3:11.1f}{step[name] * 1e3:10.1f}{step[name] / floor:9.2f}"
              f"{step[fastest] / step[name]:21.2f}")
    print(f"fastest peer: {fastest}; lifcore fused is {step[fastest] / step['lifcore fused']:.2f}x faster, "
          f"at {step['lifcore fused'] / floor:.2f}x the FLOP floor")
    libraries = [name for name in peers if name != "plain loop"]
    if libraries:
        library = min(libraries, key=lambda name: step[name])
        print(f"fastest SNN library: {library}; lifcore fused is {step[library] / step['lifcore fused']:.2f}x faster")

    opt = torch.optim.SGD(net.parameters(), lr=1e-6)

    def eprop(passes):
        def run():
            grads, _ = lifcore.eprop_gradients(net, x, loss, passes=passes)
            apply_gradients(net, grads)
            opt.step()
        return run

    versus = median_times({"bptt": train_step(models["lifcore fused"][0], models["lifcore fused"][1], x, loss),
                           "eprop": eprop(1), "eprop2": eprop(2)}, device, args.repeats)
    print(f"\ne-prop step (one pass) {versus['eprop'] * 1e3:.1f} ms, two passes {versus['eprop2'] * 1e3:.1f} ms, "
          f"BPTT (fused) {versus['bptt'] * 1e3:.1f} ms: e-prop / BPTT = {versus['eprop'] / versus['bptt']:.2f}")
    if args.no_memory:
        return
    print("peak memory of one gradient (MiB, fresh process each):")
    for method in ("eprop", "bptt"):
        short, long = (peak_memory(net, loss, steps, B, device, method) for steps in (T, 10 * T))
        print(f"  {method:6s} T={T}: {short:8.1f}   T={10 * T}: {long:8.1f}   ratio {long / short:.2f}")


if __name__ == "__main__":
    main()

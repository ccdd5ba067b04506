"""The toy problem's basin map: 10^4 initial conditions x 10^4 iterations (issue 4).

Run on demand: ``python benchmarks/toy_basin.py [--grid 100] [--steps 10000]``.
Times `lifcore.toy.two_losses` on the whole grid at once, and the deck's own loop
(autograd, two SGD optimisers, one start) on `--deck-steps` iterations, and prints the
ratio of the deck's cost extrapolated to the same grid x iterations against ours.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from lifcore import toy


def deck_loop(iterations: int) -> None:
    """The slide's code (one start), without the print."""
    x1 = torch.tensor(2.0, requires_grad=True)
    x2 = torch.tensor(1.0, requires_grad=True)
    cov = nn.Parameter(torch.tensor([[1, 0.7], [0.7, 1]]), requires_grad=False)
    u = torch.tensor([1.0, 1.5], requires_grad=False)

    def forward(x):
        return torch.exp(-torch.matmul(torch.matmul(x - u, cov), x - u))

    optimizer = torch.optim.SGD([x1, x2], lr=0.01)
    optimizer2 = torch.optim.SGD([x2], lr=0.2)
    for _ in range(iterations):
        x = torch.stack((x1, x2))
        optimizer.zero_grad()
        optimizer2.zero_grad()
        z = -forward(x)
        z.backward(retain_graph=True)
        optimizer.step()
        optimizer.zero_grad()
        loss_2 = (x2 - torch.tensor(3)) ** 2
        loss_2.backward()
        optimizer2.step()
        optimizer2.zero_grad()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=100, help="grid side: grid^2 initial conditions")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--deck-steps", type=int, default=2_000)
    args = parser.parse_args()
    side = torch.linspace(-4, 6, args.grid, dtype=torch.float64)
    starts = torch.stack(torch.meshgrid(side, side, indexing="ij"), -1).reshape(-1, 2)
    point = toy.two_losses_stationary_point()
    start = time.perf_counter()
    _, hit = toy.two_losses(starts, args.steps, last_only=True, tolerance=1e-3, reference=(point.x1, point.x2))
    ours = time.perf_counter() - start
    start = time.perf_counter()
    deck_loop(args.deck_steps)
    deck_per_iteration = (time.perf_counter() - start) / args.deck_steps
    deck_total = deck_per_iteration * len(starts) * args.steps
    print(f"threads={torch.get_num_threads()} {len(starts)} starts x {args.steps} iterations")
    print(f"lifcore.toy.two_losses: {ours:.2f} s ({ours / (len(starts) * args.steps) * 1e9:.1f} ns per start-iteration); "
          f"{(hit >= 0).float().mean():.1%} of starts within 1e-3 of the stationary point")
    print(f"deck loop: {deck_per_iteration * 1e6:.0f} us per iteration, {deck_total / 3600:.1f} h extrapolated "
          f"to the same grid: ratio deck / lifcore = {deck_total / ours:.0f}")


if __name__ == "__main__":
    main()

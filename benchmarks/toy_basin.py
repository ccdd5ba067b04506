"""The toy problem's basin map: 10^4 initial conditions x 10^4 iterations (issue 4).

Run on demand: ``python benchmarks/toy_basin.py [--grid 100] [--steps 10000]``.
Times `lifcore.toy.alternating` on the whole grid at once, and the deck's own loop
(autograd, two SGD optimisers, one start) on `--deck-steps` iterations, and prints the
ratio of the deck's cost extrapolated to the same grid x iterations against ours.
"""
from __future__ import annotations

import argparse
import time

import torch

from lifcore import toy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=100, help="grid side: grid^2 initial conditions")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--deck-steps", type=int, default=2_000)
    args = parser.parse_args()
    side = torch.linspace(-4, 6, args.grid, dtype=torch.float64)
    starts = torch.stack(torch.meshgrid(side, side, indexing="ij"), -1).reshape(-1, 2)
    point = toy.alternating_stationary_point()
    start = time.perf_counter()
    _, hit = toy.alternating(starts, args.steps, last_only=True, tolerance=1e-3, reference=(point.x1, point.x2))
    ours = time.perf_counter() - start
    start = time.perf_counter()
    toy.deck_loop((2.0, 1.0), args.deck_steps)
    deck_per_iteration = (time.perf_counter() - start) / args.deck_steps
    deck_total = deck_per_iteration * len(starts) * args.steps
    print(f"threads={torch.get_num_threads()} {len(starts)} starts x {args.steps} iterations")
    print(f"lifcore.toy.alternating: {ours:.2f} s ({ours / (len(starts) * args.steps) * 1e9:.1f} ns per start-iteration); "
          f"{(hit >= 0).float().mean():.1%} of starts within 1e-3 of the stationary point")
    print(f"deck loop: {deck_per_iteration * 1e6:.0f} us per iteration, {deck_total / 3600:.1f} h extrapolated "
          f"to the same grid: ratio deck / lifcore = {deck_total / ours:.0f}")


if __name__ == "__main__":
    main()

"""What writing TensorBoard event files costs a training run (issue 16): at most 5% of a step.

Run on demand: ``python benchmarks/event_log.py [--steps 2000] [--repeats 2]``.

Trains the deck's model at the book's size (64 neurons, 8 x 8 colour patches, batches of 128,
the deck's logging intervals scaled to the run: scalars every 10 steps, histograms and images
every `steps / 20`) into a fresh cache, with and without the event files, alternating, and
prints the seconds per step of each (the best of `repeats`) and their ratio. The baseline is
the same run without events, measured in the same process.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from lifcore.train import deck_config, train


def seconds_per_step(config, tensorboard: bool) -> float:
    """From the first step's end to the last's (the data cut and C_x before training are left out;
    every recorder measurement, event write and checkpoint between them is in)."""
    stamps = []
    with tempfile.TemporaryDirectory() as cache:
        train(config, cache_dir=cache, progress=False, tensorboard=tensorboard,
              callback=lambda step, model: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    config = deck_config(args.steps, n_neurons=64, patch_size=8, batch_size=128, n_patches=20000, cov_batches=100,
                         eval_size=128, device="cpu")
    print(f"deck model, {config.n_neurons} neurons, D = {config.dim}, B = {config.batch_size}, {config.steps} steps; "
          f"scalars every {config.log_every}, histograms every {config.histogram_every}, images every {config.matrices_every}")
    seconds_per_step(config.replace(steps=20), False)  # warm-up: data cut, threads, caches
    times = {True: [], False: []}
    for _ in range(args.repeats):
        for events in (False, True):
            times[events].append(seconds_per_step(config, events))
    without, with_events = min(times[False]), min(times[True])
    print(f"without event files: {1e3 * without:.2f} ms per step (runs: {', '.join(f'{1e3 * t:.2f}' for t in times[False])})")
    print(f"with event files:    {1e3 * with_events:.2f} ms per step (runs: {', '.join(f'{1e3 * t:.2f}' for t in times[True])})")
    print(f"ratio: {with_events / without:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()

"""A trained run scored after the fact: its information on held-out patches, its rates on training patches.

The history (`lifcore.train.record`) measures a run on a fixed batch while it trains; these score the
finished model on as many patches as asked, at the run's own operating point or at another one
("clean": G and the rates at the patch; "noisy": at one draw of the input noise per patch, as the deck's
code evaluates them), so that runs trained at different operating points are compared on one footing.
Nothing here changes a run (this module is not part of the run cache's code digest).
"""
from __future__ import annotations

import torch

from .loop import Run

OPERATING_POINTS = ("clean", "noisy")


def _points(run: Run, x: torch.Tensor, gain_at: str | None, seed: int) -> torch.Tensor:
    gain_at = gain_at or run.config.gain_at
    if gain_at not in OPERATING_POINTS:
        raise ValueError(f"gain_at={gain_at!r} is unknown; allowed: {', '.join(map(repr, OPERATING_POINTS))}")
    x = x.to(run.model.weights)
    if gain_at == "noisy":
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        x = x + run.model.input_noise * noise.to(x.device)
    return x


@torch.no_grad()
def held_out(run: Run, count: int = 1024, gain_at: str | None = None, seed: int = 0, batch: int = 256) -> dict:
    """The model on the first `count` held-out patches (images the training never saw): the information
    ``I`` (nats per patch, the mean) and each neuron's mean ``rates`` ``[N]``."""
    points = _points(run, run.data.test[:count], gain_at, seed)
    cov = run.input_covariance.to(run.model.weights)
    information, rates = [], []
    for part in points.split(batch):
        out = run.model.evaluate(part, cov)
        information.append(out["MI"])
        rates.append(out["rate"])
    return {"I": torch.cat(information).mean().item(), "rates": torch.cat(rates).mean(0).cpu()}


@torch.no_grad()
def training_rates(run: Run, count: int = 8192, gain_at: str | None = None, seed: int = 1) -> torch.Tensor:
    """Each neuron's mean rate ``[N]`` over the last `count` training patches (the rate constraint's own
    distribution; held-out scenes differ in contrast, and with them the rates)."""
    points = _points(run, run.data.train[-count:], gain_at, seed)
    return run.model.rate(points).mean(0).cpu()


def late_change(steps, values, share: float = 0.25) -> dict:
    """How a logged series moved over the last `share` of its steps (e.g. ``run.series("info/I")``): the
    ``change`` (last value minus the value at the first record in that stretch), the same ``relative`` to the
    last value's size, and the least-squares ``slope`` per step there. A run whose information still changes
    by more than a percent or so over its last quarter has not settled."""
    import numpy as np

    if not 0 < share <= 1:
        raise ValueError(f"share={share!r} must be in (0, 1]")
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.ndim != 1 or steps.shape != values.shape or len(steps) < 2:
        raise ValueError(f"steps and values must be two 1-D series of the same length >= 2; got {steps.shape}, {values.shape}")
    late = steps >= steps[-1] - share * (steps[-1] - steps[0])
    if late.sum() < 2:
        late[-2:] = True
    change = values[-1] - values[late][0]
    return {"change": float(change), "relative": float(change / abs(values[-1])) if values[-1] else float("nan"),
            "slope": float(np.polyfit(steps[late], values[late], 1)[0])}

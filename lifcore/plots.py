"""Figures several chapters draw the same way (matplotlib is imported only when one is drawn).

* `ridge`: histograms of one quantity at several training steps, stacked with an offset,
  the later ones in front: TensorBoard's "offset" histogram view, in which the deck shows
  ``histogram/r`` (seed 000, page 5).
"""
from __future__ import annotations

import numpy as np


def ridge(ax, steps, samples, bins, color="C0", overlap: float = 2.5, label_every: int | None = None):
    """Draw one histogram per step of `steps` (values in `samples`, a list of 1-D arrays) on `ax`.

    Each histogram is a filled curve of density, normalised to the tallest one, and raised by its
    row; the earliest step is at the top, as TensorBoard draws them. Returns the bin edges.
    """
    steps = list(steps)
    if len(steps) != len(samples) or not steps:
        raise ValueError(f"steps ({len(steps)}) and samples ({len(samples)}) must be equally long and not empty")
    edges = np.asarray(bins, dtype=float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    densities = [np.histogram(np.clip(np.asarray(s, dtype=float), edges[0], edges[-1]), bins=edges, density=True)[0]
                 for s in samples]
    top = max(float(d.max()) for d in densities) or 1.0
    n = len(steps)
    shades = np.linspace(0.35, 1.0, n)
    for row, (density, shade) in enumerate(zip(densities, shades)):
        base = n - 1 - row
        ax.fill_between(centres, base, base + overlap * density / top, color=color, alpha=0.35 + 0.5 * shade,
                        lw=0.6, edgecolor="white", zorder=row)
    every = label_every or max(1, n // 6)
    ticks = [n - 1 - row for row in range(0, n, every)]
    ax.set_yticks(ticks, [f"{steps[row]}" for row in range(0, n, every)])
    ax.set_ylim(-0.2, n - 1 + overlap + 0.2)
    ax.set_xlim(edges[0], edges[-1])
    return edges

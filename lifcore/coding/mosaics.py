"""A population of receptive fields as mosaics: the centres of each polarity and how regular they are.

Retinal ganglion cells of one type tile the retina in a mosaic whose centres are far more
regular than random points. The classical measure is the nearest-neighbour regularity index
(Wässle & Riemann 1978; Cook 1996)::

    RI = mean(d_nn) / std(d_nn)        d_nn: each centre's distance to its nearest neighbour

about 1.91 for uniform random points (a Poisson process: Rayleigh-distributed d_nn), 3 to 8
for retinal mosaics, infinite for a perfect lattice. Here the centres come from each filter's
difference-of-Gaussians fit (`lifcore.coding.dog.fit`), the polarity from its centre's sign, and
only filters of the "centre-surround" kind (`lifcore.coding.fields.kinds`) count: a mosaic is
of cells of one kind. Deck's lab: +L, -L, +S, -S mosaics appeared for 600 neurons on 9 x 9
patches (its April 24, 2024 notes); Jun, Field & Pearson find ON and OFF mosaics for DoG kernels.
"""
from __future__ import annotations

import math

import torch

from .dog import DoGFit

POLARITIES = {"ON": 1.0, "OFF": -1.0}


def nearest_neighbour_distances(points: torch.Tensor) -> torch.Tensor:
    """Each point's distance to its nearest other point: ``[M]`` for points ``[M, 2]`` (M >= 2)."""
    points = torch.as_tensor(points, dtype=torch.float64)
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be [M, 2]; got {tuple(points.shape)}")
    if points.shape[0] < 2:
        raise ValueError(f"a nearest-neighbour distance needs two points or more; got {points.shape[0]}")
    distance = torch.cdist(points, points)
    distance.fill_diagonal_(float("inf"))
    return distance.amin(1)


def regularity_index(points: torch.Tensor) -> float:
    """``mean / std`` of the nearest-neighbour distances of `points` ``[M, 2]`` (module docstring);
    nan for fewer than three points (a standard deviation of one pair is meaningless)."""
    points = torch.as_tensor(points, dtype=torch.float64)
    if points.shape[0] < 3:
        return float("nan")
    d = nearest_neighbour_distances(points)
    return float(d.mean() / d.std().clamp_min(1e-300))


def mosaics(fit: DoGFit, labels: list[str], kind: str = "centre-surround") -> dict[str, dict]:
    """For each polarity: the ``centres`` ``[M, 2]`` of the filters labelled `kind`, their
    ``widths`` (centre sigma, pixels), ``index`` (the neurons) and the ``regularity`` index."""
    if len(labels) != fit.centre.shape[0]:
        raise ValueError(f"labels has {len(labels)} entries for {fit.centre.shape[0]} fitted filters")
    chosen = torch.tensor([label == kind for label in labels], dtype=torch.bool)
    out = {}
    for name, sign in POLARITIES.items():
        index = torch.nonzero(chosen & (fit.polarity == sign)).flatten()
        centres = fit.centre[index]
        out[name] = {"centres": centres, "widths": fit.centre_width[index], "index": index,
                     "regularity": regularity_index(centres)}
    return out


def hexagonal_lattice(count: int, patch_size: int, offset: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """`count` centres ``[count, 2]`` (pixels, ``(y, x)``) of the widest hexagonal lattice that puts that many
    inside the patch's inscribed disc (radius ``p/2 - 1/2``, the deck's circular mask), the `count` nearest
    the patch's centre. `offset` shifts the lattice by a fraction of its spacing (``(1/2, 1/(2 sqrt 3))``:
    the centres of the other lattice's triangles, an interleaved second mosaic)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r} must be a positive integer")
    centre, radius = (patch_size - 1) / 2, patch_size / 2 - 0.5

    def points(spacing: float) -> torch.Tensor:
        reach = int(2 * radius / spacing) + 3
        i, j = torch.meshgrid(torch.arange(-reach, reach + 1), torch.arange(-reach, reach + 1), indexing="ij")
        x = spacing * (j + 0.5 * (i % 2) + offset[0])
        y = spacing * (math.sqrt(3) / 2 * i + offset[1])
        inside = x**2 + y**2 <= radius**2
        return torch.stack((centre + y[inside], centre + x[inside]), 1).double()

    cell = math.sqrt(2 * math.pi * radius**2 / (math.sqrt(3) * count))  # hexagonal cells of this spacing tile the disc
    low, high = cell / 4, 2 * cell  # a quarter of the tiling spacing always fits `count` (16 times as many points)
    for _ in range(60):  # the widest spacing that still fits `count` points
        middle = (low + high) / 2
        low, high = (middle, high) if len(points(middle)) >= count else (low, middle)
    found = points(low)
    return found[((found - centre) ** 2).sum(1).argsort()[:count]]

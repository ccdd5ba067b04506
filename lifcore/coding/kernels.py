"""Operations on the filters ``W`` ``[N, D]`` that the deck's training applies (DECK-CODE.md).

* `renormalize_`: every filter back to unit norm (the deck, after every optimiser step);
* `jitter_`: ``W <- W |W|^power``, then unit norm (the deck, every 5,000 iterations between
  300,000 and 500,000, power 0.25): large weights grow relative to small ones;
* `spatial_variance`: the deck's "kernel variance", the centring penalty (weight 0.02 in the
  same window): the spread of each unit-norm filter's colour-averaged energy around its
  centre, along each image axis.

A filter is a patch in `lifcore.coding.data`'s layout, ``(y, x, colour)`` flattened.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def renormalize_(weights: torch.Tensor) -> torch.Tensor:
    """In place: ``W_j <- W_j / |W_j|`` for every row j."""
    weights.div_(weights.norm(dim=1, keepdim=True))
    return weights


@torch.no_grad()
def jitter_(weights: torch.Tensor, power: float) -> torch.Tensor:
    """In place: ``W <- W |W|^power`` elementwise, then unit norm per row."""
    weights.mul_(weights.abs().pow(power))
    return renormalize_(weights)


def spatial_variance(weights: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """The deck's centring penalty, averaged over the N filters (differentiable).

    With ``w = W_j / |W_j|`` averaged over the colours into ``m[y, x]``, the energy along each
    axis ``e_y = sum_x m[y, x]^2`` and ``e_x = sum_y m[y, x]^2`` gives
    ``var_y = sum_y (y - mu_y)^2 e_y`` with ``mu_y = sum_y y e_y``, and the penalty is
    ``mean_j (var_y + var_x)``. The deck does not divide by ``sum e`` (below 1 once the colours
    are averaged: 1/3 for an achromatic filter), so ``mu`` is not the filter's centre and a
    filter on a single pixel still pays a penalty that grows with its distance from pixel 0.
    """
    if weights.dim() != 2 or weights.shape[1] != channels * patch_size**2:
        raise ValueError(f"weights must be [N, {channels} * patch_size^2 = {channels * patch_size**2}]; "
                         f"got {tuple(weights.shape)}")
    unit = weights / weights.norm(dim=1, keepdim=True)
    mean_colour = unit.reshape(-1, patch_size, patch_size, channels).mean(-1)  # [N, y, x]
    coords = torch.arange(patch_size, dtype=weights.dtype, device=weights.device)
    total = 0.0
    for energy in (mean_colour.pow(2).sum(2), mean_colour.pow(2).sum(1)):  # [N, y], [N, x]
        centre = (coords * energy).sum(1, keepdim=True)
        total = total + ((coords - centre) ** 2 * energy).sum(1)
    return total.mean()

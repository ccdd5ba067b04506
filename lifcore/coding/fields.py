"""Receptive fields described by a few numbers, and an order of the neurons that groups alike.

A filter is a row of ``W`` ``[N, D]`` in `lifcore.coding.data`'s layout ``(y, x, colour)``.
For each filter, with ``m[y, x]`` its colour-mean (luminance) part and ``e = w^2 / |w|^2``
its energy per pixel and colour:

* ``centre``: the energy-weighted position ``(sum y e, sum x e)`` (pixels);
* ``spread``: the energy-weighted distance from that centre (pixels; small = localized);
* ``polarity``: the sign of ``m`` at the filter's most energetic pixel (+1 ON, -1 OFF);
* ``luminance_share``: the share of the energy in the colour-mean part (1: achromatic,
  0: purely colour-opponent).

`neuron_order` sorts by polarity, then by colour, then by position (row-major), so that a
matrix over neurons (a covariance) shows any structure those properties carry as blocks.
"""
from __future__ import annotations

import torch

ORDER_KEYS = ("polarity", "colour", "position")


def describe(weights: torch.Tensor, patch_size: int, channels: int = 3) -> dict[str, torch.Tensor]:
    """``centre`` ``[N, 2]``, ``spread``, ``polarity``, ``luminance_share`` ``[N]`` (float64)."""
    w = torch.as_tensor(weights).detach().double().cpu()
    if w.dim() != 2 or w.shape[1] != channels * patch_size**2:
        raise ValueError(f"weights must be [N, {channels} * patch_size^2 = {channels * patch_size**2}]; "
                         f"got {tuple(w.shape)}")
    fields = w.reshape(-1, patch_size, patch_size, channels)
    energy = (fields**2).sum(-1)
    energy = energy / energy.sum((1, 2), keepdim=True).clamp_min(1e-300)  # [N, y, x], sums to 1
    coords = torch.arange(patch_size, dtype=torch.float64)
    cy = (energy.sum(2) * coords).sum(1)
    cx = (energy.sum(1) * coords).sum(1)
    dy, dx = coords[None, :, None] - cy[:, None, None], coords[None, None, :] - cx[:, None, None]
    spread = (energy * (dy**2 + dx**2)).sum((1, 2)).sqrt()
    luminance = fields.mean(-1)  # [N, y, x]
    peak = energy.flatten(1).argmax(1)
    polarity = torch.sign(luminance.flatten(1).gather(1, peak[:, None])[:, 0])
    polarity[polarity == 0] = 1.0
    lum_energy = channels * (luminance**2).sum((1, 2))
    share = lum_energy / (fields**2).sum((1, 2, 3)).clamp_min(1e-300)
    return {"centre": torch.stack((cy, cx), 1), "spread": spread, "polarity": polarity, "luminance_share": share}


def neuron_order(weights: torch.Tensor, patch_size: int, by=ORDER_KEYS) -> torch.Tensor:
    """Indices that sort the neurons by `by` (a sequence of "polarity", "colour", "position",
    most significant first): ON before OFF, achromatic before colour-opponent, top-left first."""
    unknown = [key for key in by if key not in ORDER_KEYS]
    if unknown:
        raise ValueError(f"by={tuple(by)!r} has unknown keys {unknown}; allowed: {', '.join(ORDER_KEYS)}")
    d = describe(weights, patch_size)
    n = d["spread"].shape[0]
    columns = {"polarity": -d["polarity"], "colour": torch.round(-d["luminance_share"] * 4) / 4,
               "position": torch.round(d["centre"][:, 0]) * patch_size + torch.round(d["centre"][:, 1])}
    order = torch.arange(n)
    for key in reversed(tuple(by)):  # stable sorts, least significant key first
        order = order[torch.sort(columns[key][order], stable=True).indices]
    return order

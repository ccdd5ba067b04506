"""Receptive fields described by a few numbers, and an order of the neurons that groups alike.

A filter is a row of ``W`` ``[N, D]`` in `lifcore.coding.data`'s layout ``(y, x, colour)``.
For each filter, with ``m[y, x]`` its colour-mean (luminance) part and ``e = w^2 / |w|^2``
its energy per pixel and colour:

* ``centre``: the energy-weighted position ``(sum y e, sum x e)`` (pixels);
* ``spread``: the energy-weighted distance from that centre (pixels; small = localized);
* ``polarity``: the sign of ``m`` at the filter's most energetic pixel (+1 ON, -1 OFF);
* ``luminance_share``: the share of the energy in the colour-mean part (1: achromatic,
  0: purely colour-opponent).

`measures` adds what a receptive-field kind rests on (issue 14), each in [0, 1]:

* ``localization = 1 - spread / spread_uniform``: 0 for energy spread evenly over the patch
  (white noise), near 1 for a point; ``spread_uniform = sqrt((p^2 - 1) / 6)`` is the spread of
  uniform energy on a p x p patch;
* ``orientation``: ``|sum_k P(k) e^{2 i theta_k}| / sum_k P(k)`` over the filter's power
  spectrum without its DC term (summed over colours): 1 when the power lies along one
  direction (a Gabor), 0 when it is isotropic (a blob, a difference of Gaussians);
* ``surround``: the share of the luminance part's absolute mass whose sign is opposite to the
  polarity, counted only when that mass lies farther from the centre on average than the rest
  (a difference of Gaussians: about 1/2; a blob: 0);
* ``colour_opponency = 1 - luminance_share``;
* ``smoothness``: the share of the filter's power (summed over colours, DC included) at spatial
  frequencies of at most 2 cycles per patch (wavelengths of half the patch or more): 13 / p^2 for
  white noise (the frequencies in that disc; 0.04 at p = 18), near 1 for a field smooth at the
  patch's scale (a broad blob or edge), low for a field of many small lobes. Relative to the patch,
  not the pixel, so that images resampled to a finer pixel (`image_scale`) do not make every field
  smooth.

* ``peak_share``: the share of the energy in the most energetic pixel (1 for a single pixel);
* from each filter's difference-of-Gaussians fit (`lifcore.coding.dog.fit`): ``dog_quality``
  (the share of the energy the DoG explains), ``centre_width`` and ``surround_width`` (sigma,
  pixels), ``dog_surround`` (the surround's mass over the centre's, 1 when balanced) and
  ``dog_polarity``.

`kinds` turns them into one label per filter, in this order: "noise" (localization below
`LOCALIZED` and smoothness below `SMOOTH`: spread over the patch and of many small lobes; a field as
broad as the patch but smooth at its scale, like the deck's page-1 kernels, is not noise, issue 32), "pixel" (peak share at least `PIXEL`: localized, but to one pixel, the
degenerate answer), "centre-surround" (a DoG explains at least `DOG_FIT` of the filter, its
centre is at least `CENTRE_WIDTH` pixels wide, sigma, and its surround at least `DOG_SURROUND`
of the centre's mass), "oriented" (orientation at least `ORIENTED`), else "blob".
`tests/test_fields.py` checks each on synthetic filters.

`neuron_order` sorts by polarity, then by colour, then by position (row-major), so that a
matrix over neurons (a covariance) shows any structure those properties carry as blocks.
"""
from __future__ import annotations

import math

import torch

from . import dog

ORDER_KEYS = ("polarity", "colour", "position")
KINDS = ("noise", "pixel", "oriented", "centre-surround", "blob")
LOCALIZED, PIXEL, ORIENTED = 0.3, 0.5, 0.4
# smooth: 75 % of the power at 2 cycles per patch or fewer (the deck's page-1 kernels read from its figure: 0.90 or
# more for 90 % of them; white noise at p = 18: 0.04; a random start's remains of many small lobes: 0.2 to 0.5)
SMOOTH, SMOOTH_CYCLES = 0.75, 2.0
# centre-surround: a DoG explains 80 % of the filter, its centre is wider than a pixel (sigma half a pixel:
# full width at half maximum 1.2 pixels), and its surround holds a quarter of the centre's mass or more
DOG_FIT, CENTRE_WIDTH, DOG_SURROUND = 0.8, 0.5, 0.25


def describe(weights: torch.Tensor, patch_size: int, channels: int = 3) -> dict[str, torch.Tensor]:
    """``centre`` ``[N, 2]``, ``spread``, ``polarity``, ``luminance_share``, ``peak_share`` ``[N]`` (float64)."""
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
    return {"centre": torch.stack((cy, cx), 1), "spread": spread, "polarity": polarity, "luminance_share": share,
            "peak_share": energy.flatten(1).amax(1)}


def measures(weights: torch.Tensor, patch_size: int, channels: int = 3, fit: dog.DoGFit | None = None) -> dict[str, torch.Tensor]:
    """`describe` plus ``localization``, ``orientation``, ``surround``, ``colour_opponency`` and the
    DoG fit's numbers ``[N]`` (module docstring); `fit`: the filters' `dog.fit`, when already at hand."""
    d = describe(weights, patch_size, channels)
    fit = dog.fit(weights, patch_size, channels) if fit is None else fit
    w = torch.as_tensor(weights).detach().double().cpu()
    p = patch_size
    fields = w.reshape(-1, p, p, channels)
    localization = (1 - d["spread"] / math.sqrt((p * p - 1) / 6)).clamp(0, 1)
    power = (torch.fft.fft2(fields.permute(0, 3, 1, 2)).abs() ** 2).sum(1)  # [N, ky, kx]
    k = torch.fft.fftfreq(p, dtype=torch.float64)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    phase = torch.exp(2j * torch.atan2(ky, kx))
    low = (ky**2 + kx**2).sqrt() <= SMOOTH_CYCLES / p + 1e-12
    smoothness = (power * low).sum((1, 2)) / power.sum((1, 2)).clamp_min(1e-300)  # DC included
    power[:, 0, 0] = 0.0
    orientation = (power * phase).sum((1, 2)).abs() / power.sum((1, 2)).clamp_min(1e-300)
    luminance = fields.mean(-1) * d["polarity"][:, None, None]  # the polarity's sign is positive
    coords = torch.arange(p, dtype=torch.float64)
    distance = ((coords[None, :, None] - d["centre"][:, 0, None, None]) ** 2
                + (coords[None, None, :] - d["centre"][:, 1, None, None]) ** 2).sqrt()
    same, opposite = luminance.clamp_min(0), (-luminance).clamp_min(0)

    def mean_distance(mass):
        return (mass * distance).sum((1, 2)) / mass.sum((1, 2)).clamp_min(1e-300)

    share = opposite.sum((1, 2)) / (same + opposite).sum((1, 2)).clamp_min(1e-300)
    surround = torch.where(mean_distance(opposite) > mean_distance(same), share, torch.zeros_like(share))
    return d | {"localization": localization, "orientation": orientation, "surround": surround, "smoothness": smoothness,
                "colour_opponency": 1 - d["luminance_share"], "dog_quality": fit.quality, "centre_width": fit.centre_width,
                "surround_width": fit.surround_width, "dog_surround": fit.surround, "dog_polarity": fit.polarity}


def kinds(weights: torch.Tensor, patch_size: int, channels: int = 3, fit: dog.DoGFit | None = None) -> list[str]:
    """One of `KINDS` per filter (module docstring); `fit` as in `measures`."""
    m = measures(weights, patch_size, channels, fit)
    labels = []
    for loc, smooth, peak, ori, quality, width, surround in zip(
            *(m[k].tolist() for k in ("localization", "smoothness", "peak_share", "orientation", "dog_quality",
                                      "centre_width", "dog_surround"))):
        centre_surround = quality >= DOG_FIT and width >= CENTRE_WIDTH and surround >= DOG_SURROUND
        labels.append("noise" if loc < LOCALIZED and smooth < SMOOTH else "pixel" if peak >= PIXEL else "centre-surround" if centre_surround
                      else "oriented" if ori >= ORIENTED else "blob")
    return labels


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

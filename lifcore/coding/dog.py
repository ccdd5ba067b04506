"""Differences of Gaussians: a receptive field's shape in five numbers, drawn and fitted.

A colour filter on a ``p x p`` patch (`lifcore.coding.data`'s layout ``(y, x, colour)``) is,
for a centre ``c = (c_y, c_x)``, widths ``sigma_c < sigma_s`` (pixels) and per-colour
amplitudes ``a`` (centre) and ``s`` (surround) ``[3]``::

    w(y, x, k) = a_k exp(-rho^2 / (2 sigma_c^2)) - s_k exp(-rho^2 / (2 sigma_s^2)),   rho = |(y, x) - c|

`dog_fields` draws it, with one pair of widths for all colours or one per colour.
`DoGFilters` is the deck's parametrisation of a population's filters by it (`Code/shapes.py`
at dcb198e, its `train.py`'s default ``shape="difference-of-gaussian"``): per neuron a learned
centre, and per colour ``d_k (exp(-A_k rho^2) - C_k exp(-B_k rho^2))`` with ``A_k > B_k``,
``0 < C_k < 1`` and ``d`` of unit norm over the colours, each filter then scaled to unit norm
(the encoder option ``filter_shape="dog"``). `fit` finds, for every
filter at once, the DoG that explains most of it: for given ``c, sigma_c, sigma_s`` the six
amplitudes are a least-squares solution in closed form (two basis images, three colours), so
only the centre and the widths are searched (by Adam from four starts: centre at the energy's
centroid with three centre widths, or at its peak). What a fit says (`DoGFit`):

* ``quality``: the share of the filter's energy the DoG explains, ``1 - |w - dog|^2 / |w|^2``;
* ``centre_width`` ``sigma_c`` and ``surround_width`` ``sigma_s`` (pixels);
* ``surround``: the surround's mass along the centre's colour over the centre's mass,
  ``(s . a / |a|) sigma_s^2 / (|a| sigma_c^2)``: 0 for a Gaussian blob, 1 for a balanced DoG
  (no response to a uniform patch of the centre's colour), negative when the broad part has
  the centre's sign;
* ``polarity``: +1 (ON) when the centre's luminance ``sum_k a_k`` is positive, else -1 (OFF);
  the largest centre amplitude's sign for a purely colour-opponent centre;
* ``colour``: the centre's colour ``a / |a|``, and ``luminance_share`` ``(sum_k a_k)^2 / (3 |a|^2)``.

`lifcore.coding.fields` uses it for the "centre-surround" kind, `lifcore.coding.mosaics` for the
centres of a population.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

WIDTH_RATIO = 1.2  # sigma_s >= 1.2 sigma_c: a "surround" as narrow as its centre only rescales the centre
MIN_WIDTH = 0.2    # pixels


def _grid(patch_size: int, dtype, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    axis = torch.arange(patch_size, dtype=dtype, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return y.reshape(-1), x.reshape(-1)


def squared_distances(centre: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``|(y, x) - centre|^2`` on the pixel grid, ``[N, p*p]`` for centres ``[N, 2]``."""
    y, x = _grid(patch_size, centre.dtype, centre.device)
    return (y - centre[:, :1]) ** 2 + (x - centre[:, 1:]) ** 2


def gaussians(centre: torch.Tensor, width: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``exp(-|(y, x) - centre|^2 / (2 width^2))`` on the pixel grid: ``[N, p*p]`` for centre ``[N, 2]``, width ``[N]``."""
    return torch.exp(-squared_distances(centre, patch_size) / (2 * width[:, None] ** 2))


def dog_fields(centre: torch.Tensor, centre_width: torch.Tensor, surround_width: torch.Tensor,
               centre_amplitude: torch.Tensor, surround_amplitude: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Filters ``[N, p*p*C]`` (module docstring): centre ``[N, 2]``, widths ``[N]`` (all colours) or
    ``[N, C]`` (one per colour), amplitudes ``[N, C]``."""
    rho2 = squared_distances(centre, patch_size)[:, :, None]  # [N, p*p, 1]

    def per_colour(width):
        return width[:, None, None] if width.dim() == 1 else width[:, None, :]

    w = (centre_amplitude[:, None, :] * torch.exp(-rho2 / (2 * per_colour(centre_width) ** 2))
         - surround_amplitude[:, None, :] * torch.exp(-rho2 / (2 * per_colour(surround_width) ** 2)))
    return w.reshape(centre.shape[0], -1)


class DoGFilters(nn.Module):
    """The deck's DoG filters (module docstring) of `n_neurons` on ``patch_size x patch_size x channels``
    patches: ``weights()`` ``[N, p*p*channels]``, each of unit norm.

    Parameters, as the deck's `Shape` and `DifferenceOfGaussianShape` (dcb198e): ``centres``
    ``[N, 2]`` (pixels; from U(p/4 - 1/4, 3p/4 - 3/4), the centre half of the patch), and per
    neuron and colour ``log_a``, ``log_b`` (``A = e^log_a + e^log_b > B = e^log_b``; both -3 at
    first), ``logit_c`` (``C = sigmoid``; 0 at first) and ``d`` (N(0, 1) at first). In widths,
    ``sigma_c = (2 A)^-1/2`` and ``sigma_s = (2 B)^-1/2``: 2.2 and 3.2 pixels at first.
    """

    def __init__(self, n_neurons: int, patch_size: int, channels: int = 3, generator: torch.Generator | None = None,
                 device="cpu", dtype=torch.float32):
        super().__init__()
        for name, value in (("n_neurons", n_neurons), ("patch_size", patch_size), ("channels", channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        self.patch_size, self.channels = patch_size, channels
        factory = dict(device=device, dtype=dtype)
        p = patch_size
        centres = torch.rand(n_neurons, 2, generator=generator) * (p - 1) / 2 + (p - 1) / 4
        self.centres = nn.Parameter(centres.to(**factory))
        self.log_a = nn.Parameter(torch.full((n_neurons, channels), -3.0, **factory))
        self.log_b = nn.Parameter(torch.full((n_neurons, channels), -3.0, **factory))
        self.logit_c = nn.Parameter(torch.zeros(n_neurons, channels, **factory))
        self.d = nn.Parameter(torch.randn(n_neurons, channels, generator=generator).to(**factory))

    def shape(self) -> dict[str, torch.Tensor]:
        """``centre``, per-colour ``centre_width``, ``surround_width`` (pixels), ``centre_amplitude``, ``surround_amplitude``."""
        b = self.log_b.exp()
        a = self.log_a.exp() + b
        d = self.d / self.d.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return {"centre": self.centres, "centre_width": (2 * a).rsqrt(), "surround_width": (2 * b).rsqrt(),
                "centre_amplitude": d, "surround_amplitude": d * torch.sigmoid(self.logit_c)}

    def weights(self) -> torch.Tensor:
        w = dog_fields(**self.shape(), patch_size=self.patch_size)
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass
class DoGFit:
    """The best DoG of each filter (module docstring); every field float64. Widths are per colour,
    ``[N, C]``, as the deck's DoG family has them; `centre_width` and `surround_width` ``[N]`` are
    their means weighted by each colour's centre amplitude."""

    centre: torch.Tensor              # [N, 2]
    centre_widths: torch.Tensor       # [N, C]
    surround_widths: torch.Tensor     # [N, C]
    centre_amplitude: torch.Tensor    # [N, C]
    surround_amplitude: torch.Tensor  # [N, C]
    quality: torch.Tensor             # [N]
    patch_size: int

    def _weighted(self, widths: torch.Tensor) -> torch.Tensor:
        weight = self.centre_amplitude.abs()
        return (weight * widths).sum(1) / weight.sum(1).clamp_min(1e-300)

    @property
    def centre_width(self) -> torch.Tensor:
        return self._weighted(self.centre_widths)

    @property
    def surround_width(self) -> torch.Tensor:
        return self._weighted(self.surround_widths)

    @property
    def surround(self) -> torch.Tensor:
        """``M_s . M_c / |M_c|^2`` with the per-colour masses ``M_c = a sigma_c^2``, ``M_s = s sigma_s^2``:
        the surround's mass along the centre's colour over the centre's mass."""
        centre_mass = self.centre_amplitude * self.centre_widths**2
        surround_mass = self.surround_amplitude * self.surround_widths**2
        return (surround_mass * centre_mass).sum(1) / (centre_mass**2).sum(1).clamp_min(1e-300)

    @property
    def polarity(self) -> torch.Tensor:
        a = self.centre_amplitude
        lum = a.sum(1)
        largest = a.gather(1, a.abs().argmax(1, keepdim=True))[:, 0]
        sign = torch.where(lum.abs() > 1e-6 * a.norm(dim=1), torch.sign(lum), torch.sign(largest))
        return torch.where(sign == 0, torch.ones_like(sign), sign)

    @property
    def colour(self) -> torch.Tensor:
        return self.centre_amplitude / self.centre_amplitude.norm(dim=1, keepdim=True).clamp_min(1e-300)

    @property
    def luminance_share(self) -> torch.Tensor:
        return self.colour.sum(1) ** 2 / self.colour.shape[1]

    def fields(self) -> torch.Tensor:
        """The fitted DoGs, ``[N, p*p*C]``."""
        return dog_fields(self.centre, self.centre_widths, self.surround_widths, self.centre_amplitude,
                          self.surround_amplitude, self.patch_size)


def _widths(params: torch.Tensor, patch_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``sigma_c`` in ``[MIN_WIDTH, p/2]`` and ``sigma_s`` in ``[WIDTH_RATIO sigma_c, p]``, ``[M, C]`` each, from
    ``params[:, 2:]`` (C centre numbers, then C surround numbers)."""
    sigma_c = MIN_WIDTH + (patch_size / 2 - MIN_WIDTH) * torch.sigmoid(params[:, 2:2 + channels])
    low = WIDTH_RATIO * sigma_c
    return sigma_c, low + (patch_size - low) * torch.sigmoid(params[:, 2 + channels:])


def _solve(params: torch.Tensor, w: torch.Tensor, patch_size: int):
    """Amplitudes in closed form (one 2 x 2 least-squares problem per colour) and the residual energy,
    for ``params`` ``[M, 2 + 2C]`` and filters `w` ``[M, C, p*p]`` (colour first).

    With the two basis images ``g_c``, ``-g_s`` of a colour, its amplitudes solve ``G a = b`` with
    ``G = [[g_c.g_c, -g_c.g_s], [-g_c.g_s, g_s.g_s]]`` and ``b = (g_c.w, -g_s.w)``, and the residual is
    ``|w|^2 - b^T G^-1 b``: no residual image is formed."""
    channels = w.shape[1]
    sigma_c, sigma_s = _widths(params, patch_size, channels)
    rho2 = squared_distances(params[:, :2], patch_size)[:, None, :]  # [M, 1, P]
    g_c = torch.exp(-rho2 / (2 * sigma_c[:, :, None] ** 2))  # [M, C, P]
    g_s = torch.exp(-rho2 / (2 * sigma_s[:, :, None] ** 2))
    cc, cs, ss = (g_c * g_c).sum(-1), (g_c * g_s).sum(-1), (g_s * g_s).sum(-1)
    bc, bs = (g_c * w).sum(-1), -(g_s * w).sum(-1)
    det = (cc * ss - cs * cs).clamp_min(1e-12 * cc * ss)  # the two Gaussians are never identical (WIDTH_RATIO)
    a_c = (ss * bc + cs * bs) / det  # G^-1 b, with G's off-diagonal -cs
    a_s = (cs * bc + cc * bs) / det
    residual = (w * w).sum((1, 2)) - (bc * a_c + bs * a_s).sum(1)
    return torch.stack((a_c, a_s), 1), residual, sigma_c, sigma_s  # amplitudes [M, 2, C]


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def fit(weights: torch.Tensor, patch_size: int, channels: int = 3, iterations: int = 150) -> DoGFit:
    """The best DoG of every row of `weights` ``[N, channels * p^2]`` (module docstring); deterministic."""
    w = torch.as_tensor(weights).detach().double().cpu()
    if w.dim() != 2 or w.shape[1] != channels * patch_size**2:
        raise ValueError(f"weights must be [N, {channels} * patch_size^2 = {channels * patch_size**2}]; "
                         f"got {tuple(w.shape)}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations={iterations!r} must be a positive integer")
    n, p = w.shape[0], patch_size
    w = w.reshape(n, p * p, channels)
    energy = (w**2).sum(-1)
    energy = energy / energy.sum(1, keepdim=True).clamp_min(1e-300)
    y, x = _grid(p, torch.float64)
    centroid = torch.stack(((energy * y).sum(1), (energy * x).sum(1)), 1)
    peak = energy.argmax(1)
    starts = []
    for centre, width in ((centroid, 0.7), (centroid, 1.5), (centroid, 3.0), (torch.stack((y[peak], x[peak]), 1), 1.0)):
        t_c = _logit(torch.full((n, channels), (width - MIN_WIDTH) / (p / 2 - MIN_WIDTH), dtype=torch.float64))
        starts.append(torch.cat((centre, t_c, torch.zeros(n, channels, dtype=torch.float64)), 1))
    params = torch.cat(starts).requires_grad_(True)  # [S N, 2 + 2C]
    targets = w.transpose(1, 2).repeat(len(starts), 1, 1)  # [S N, C, P]
    total = (targets**2).sum((1, 2)).clamp_min(1e-300)
    optimizer = torch.optim.Adam([params], lr=0.05)
    with torch.enable_grad():  # also when called under no_grad
        for _ in range(iterations):
            optimizer.zero_grad()
            _, residual, _, _ = _solve(params, targets, p)
            (residual / total).sum().backward()
            optimizer.step()
    with torch.no_grad():
        amplitudes, residual, sigma_c, sigma_s = _solve(params, targets, p)
        quality = (1 - residual / total).reshape(len(starts), n)
        best = quality.argmax(0)
        pick = best * n + torch.arange(n)
        return DoGFit(centre=params[pick, :2].detach().clone(), centre_widths=sigma_c[pick], surround_widths=sigma_s[pick],
                      centre_amplitude=amplitudes[pick, 0], surround_amplitude=amplitudes[pick, 1],
                      quality=quality[best, torch.arange(n)], patch_size=p)

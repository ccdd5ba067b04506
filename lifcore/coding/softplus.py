"""The deck's encoder: a softplus with learned gain and threshold (DECK-CODE.md "The model").

For a patch x ``[D]`` and N neurons with unit-norm filters ``W`` ``[N, D]``::

    y = W (x + n_x)                     n_x ~ N(0, 0.4^2 I)
    r = a softplus(y - b; beta) + n_r   n_r ~ N(0, 3^2 I),  softplus(u; beta) = log(1 + e^{beta u}) / beta
    G = diag(a sigmoid(beta (y - b)))   the local gain, at the noisy input (gain_at="noisy")

with ``a = exp(log_gain)``, ``b = exp(log_threshold)`` per neuron and beta = 2.5. Rates are
in units where the deck's target is 1. Initialisation as the deck's code: ``W`` from
``0.02 randn`` rescaled to unit norm per filter, ``log_gain ~ 0.02 randn``,
``log_threshold ~ 0.02 randn - 1``. The deck renormalises ``W`` after every step
(``renormalize=True``, `Encoder.project_`).

``filter_shape="dog"`` draws the filters from the deck's difference-of-Gaussians parameters
(`lifcore.coding.dog.DoGFilters`, its `train.py` default; needs `patch_size`).

The homeostatic gain of the deck's "Gamma" method (`lifcore.constraints.homeostatic`)
replaces ``a`` by a value set from outside (`set_homeostatic_gain`); ``log_gain`` is then
unused.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..device import resolve_device
from .dog import DoGFilters
from .encoder import FILTER_SHAPES, Encoder
from .kernels import renormalize_


class SoftplusEncoder(Encoder):
    """Parameters ``weights`` ``[N, D]``, ``log_gain`` ``[N]``, ``log_threshold`` ``[N]``.
    Parameter groups: ``filters`` = [W] (or the DoG parameters), ``nonlinearity`` = [log_gain, log_threshold]."""

    def __init__(self, dim: int = 300, n_neurons: int = 300, input_noise: float = 0.4, output_noise: float = 3.0,
                 softplus_beta: float = 2.5, gain_at: str = "noisy", renormalize: bool = True, device="cpu",
                 dtype=torch.float32, filter_shape: str = "pixels", patch_size: int | None = None):
        super().__init__(input_noise, output_noise, gain_at, renormalize)
        dim, n_neurons = self.check_sizes(dim, n_neurons, dtype, resolve_device(device))
        if not softplus_beta > 0:
            raise ValueError(f"softplus_beta={softplus_beta!r} must be > 0")
        if filter_shape not in FILTER_SHAPES:
            raise ValueError(f"filter_shape={filter_shape!r} is unknown; allowed: {', '.join(map(repr, FILTER_SHAPES))}")
        self.softplus_beta = float(softplus_beta)
        factory = dict(device=resolve_device(device), dtype=dtype)
        if filter_shape == "dog":
            if patch_size is None or 3 * patch_size**2 != dim:
                raise ValueError(f"filter_shape='dog' needs patch_size with dim = 3 patch_size^2; got patch_size={patch_size!r}, "
                                 f"dim={dim}")
            self.shape = DoGFilters(n_neurons, patch_size, **factory)
        else:
            weights = 0.02 * torch.randn(n_neurons, dim, **factory)
            self.weights = nn.Parameter(renormalize_(weights) if renormalize else weights)
        self.log_gain = nn.Parameter(0.02 * torch.randn(n_neurons, **factory))
        self.log_threshold = nn.Parameter(0.02 * torch.randn(n_neurons, **factory) - 1.0)
        self.register_buffer("homeostatic_gain", None, persistent=False)  # the method keeps its state

    @property
    def gain_factor(self) -> torch.Tensor:
        """``a`` ``[N]``: ``exp(log_gain)``, or the homeostatic gain when one is set."""
        return self.log_gain.exp() if self.homeostatic_gain is None else self.homeostatic_gain

    @property
    def threshold(self) -> torch.Tensor:
        """``b = exp(log_threshold)`` ``[N]``."""
        return self.log_threshold.exp()

    def set_homeostatic_gain(self, gain: torch.Tensor | None) -> None:
        """Fix ``a`` to `gain` ``[N]`` (no gradient), or back to ``exp(log_gain)`` with None."""
        self.homeostatic_gain = None if gain is None else gain.detach().to(self.weights)

    def current(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weights.t()

    def rate_of_current(self, u: torch.Tensor) -> torch.Tensor:
        return self.gain_factor * F.softplus(u - self.threshold, beta=self.softplus_beta)

    def gain_of_current(self, u: torch.Tensor) -> torch.Tensor:
        return self.gain_factor * torch.sigmoid(self.softplus_beta * (u - self.threshold))

    def nonlinearity_values(self) -> dict[str, torch.Tensor]:
        """The deck's names: ``gain`` a and ``bias`` b (its `histogram/bias` is the threshold)."""
        return {"gain": self.gain_factor, "bias": self.threshold}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        filters = [self.weights] if self.filter_shape == "pixels" else list(self.shape.parameters())
        return {"filters": filters, "nonlinearity": [self.log_gain, self.log_threshold]}

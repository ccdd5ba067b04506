"""The project's own encoder: the LIF transfer curve of Part I as the nonlinearity (DESIGN section 5).

For a patch x (D = 300) and N = 300 neurons::

    u = W (x + n_x) + b          n_x ~ N(0, s_in^2 I)     input current
    r = f(u; v_th) + n_r         n_r ~ N(0, s_out^2 I)    f = LIF f-I curve (lifcore.snn.transfer)
    G(x) = diag f'(W x + b)                                local gain

f is the smooth LIF f-I curve (spikes per step) of `lifcore.snn.transfer.soft_lif_rate`, so
the rate a neuron reports is the rate a `lifcore.snn.lif` neuron would fire at under that
current. The information, KL and covariance matrices come from `lifcore.coding.encoder`.
The deck's own encoder is `lifcore.coding.softplus`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..device import resolve_device
from ..snn.transfer import check_alpha
from ..snn.transfer import soft_lif_rate, soft_lif_rate_derivative
from .encoder import Encoder
from .kernels import renormalize_


class SoftLIFEncoder(Encoder):
    """``W`` ``[N, D]`` (``weights``), bias ``b`` ``[N]`` and per-neuron threshold
    ``v_th = exp(log_v_th)`` (kept positive by construction).

    `input_noise` s_in is in patch units (patches have unit variance per dimension on
    average); `output_noise` s_out in spikes per step. `sharpness` is that of the soft
    f-I curve. The initial bias puts every neuron at `initial_rate` for a zero input.
    Parameter groups: ``filters`` = [W], ``nonlinearity`` = [b] (and log v_th with
    `learn_threshold`; otherwise the thresholds stay fixed: a bias already shifts the curve).
    """

    def __init__(self, dim: int = 300, n_neurons: int = 300, alpha: float = 0.9, v_th: float = 1.0,
                 input_noise: float = 0.4, output_noise: float = 0.02, sharpness: float = 10.0,
                 weight_scale: float = 0.1, initial_rate: float = 0.05, gain_at: str = "clean",
                 renormalize: bool = False, learn_threshold: bool = False, device="cpu", dtype=torch.float32):
        super().__init__(input_noise, output_noise, gain_at, renormalize)
        dim, n_neurons = self.check_sizes(dim, n_neurons, dtype, resolve_device(device))
        for name, value in (("v_th", v_th), ("sharpness", sharpness)):
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0")
        self.alpha = check_alpha(alpha)
        if self.alpha == 1.0:
            raise ValueError("alpha=1.0 (no leak) has no smooth f-I curve here; use alpha in (0, 1)")
        self.sharpness = float(sharpness)
        factory = dict(device=resolve_device(device), dtype=dtype)
        self.weights = nn.Parameter(torch.randn(n_neurons, dim, **factory) * (weight_scale / math.sqrt(dim)))
        if renormalize:
            renormalize_(self.weights)
        self.bias = nn.Parameter(torch.full((n_neurons,), self.current_for_rate(initial_rate, v_th), **factory))
        self.learn_threshold = bool(learn_threshold)
        self.log_v_th = nn.Parameter(torch.full((n_neurons,), math.log(v_th), **factory),
                                     requires_grad=self.learn_threshold)

    def current_for_rate(self, rate: float, v_th: float) -> float:
        """The constant current at which the soft f-I curve fires at `rate` (bisection)."""
        low, high = -1.0, 10.0 * v_th
        for _ in range(100):
            mid = 0.5 * (low + high)
            value = soft_lif_rate(torch.tensor(mid, dtype=torch.float64), self.alpha, v_th, self.sharpness).item()
            low, high = (mid, high) if value < rate else (low, mid)
        return 0.5 * (low + high)

    @property
    def v_th(self) -> torch.Tensor:
        return self.log_v_th.exp()

    def current(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weights.t() + self.bias

    def rate_of_current(self, u: torch.Tensor) -> torch.Tensor:
        return soft_lif_rate(u, self.alpha, self.v_th, self.sharpness)

    def gain_of_current(self, u: torch.Tensor) -> torch.Tensor:
        return soft_lif_rate_derivative(u, self.alpha, self.v_th, self.sharpness)

    def nonlinearity_values(self) -> dict[str, torch.Tensor]:
        return {"bias": self.bias, "threshold": self.v_th}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"filters": [self.weights], "nonlinearity": [self.bias] + ([self.log_v_th] if self.learn_threshold else [])}

"""The efficient-coding encoder of seed 000 ("300x300 color model"; DESIGN section 5).

For a patch x (D = 300) and N = 300 neurons::

    u = W (x + n_x) + b          n_x ~ N(0, s_in^2 I)     input current
    r = f(u; v_th) + n_r         n_r ~ N(0, s_out^2 I)    f = LIF transfer curve (lifcore.transfer)
    G(x) = diag f'(W x + b)                                local gain

f is the smooth LIF f-I curve (spikes per step) of `lifcore.transfer.soft_lif_rate`, so
the rate a neuron reports is the rate a `lifcore.lif` neuron would fire at under that
current. The mutual information of the linear-Gaussian approximation (Karklin &
Simoncelli 2011) is computed by `information`, from the matrices of `lifcore.info`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import info
from .device import resolve_device
from .lif import check_alpha
from .transfer import soft_lif_rate, soft_lif_rate_derivative


class EfficientCodingModel(nn.Module):
    """``W`` ``[N, D]`` (``weights``), bias ``b`` ``[N]`` and per-neuron threshold
    ``v_th = exp(log_v_th)`` (kept positive by construction; `bias_threshold` learns it).

    `input_noise` s_in is in patch units (patches have unit variance per dimension on
    average); `output_noise` s_out in spikes per step. `sharpness` is that of the soft
    f-I curve. The initial bias puts every neuron at `initial_rate` for a zero input.
    """

    def __init__(self, dim: int = 300, n_neurons: int = 300, alpha: float = 0.9, v_th: float = 1.0,
                 input_noise: float = 0.4, output_noise: float = 0.02, sharpness: float = 10.0,
                 weight_scale: float = 0.1, initial_rate: float = 0.05, device="cpu", dtype=torch.float32):
        super().__init__()
        for name, value in (("dim", dim), ("n_neurons", n_neurons)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        for name, value in (("input_noise", input_noise), ("output_noise", output_noise), ("v_th", v_th),
                            ("sharpness", sharpness)):
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0")
        self.alpha = check_alpha(alpha)
        if self.alpha == 1.0:
            raise ValueError("alpha=1.0 (no leak) has no smooth f-I curve here; use alpha in (0, 1)")
        self.input_noise, self.output_noise, self.sharpness = float(input_noise), float(output_noise), float(sharpness)
        factory = dict(device=resolve_device(device), dtype=dtype)
        self.weights = nn.Parameter(torch.randn(n_neurons, dim, **factory) * (weight_scale / math.sqrt(dim)))
        self.bias = nn.Parameter(torch.full((n_neurons,), self.current_for_rate(initial_rate, v_th), **factory))
        self.log_v_th = nn.Parameter(torch.full((n_neurons,), math.log(v_th), **factory))

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

    @property
    def n_neurons(self) -> int:
        return self.weights.shape[0]

    def current(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weights.t() + self.bias

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free rate ``f(W x + b)`` ``[B, N]`` (spikes per step): what the constraint acts on."""
        return soft_lif_rate(self.current(x), self.alpha, self.v_th, self.sharpness)

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        """``g = f'(W x + b)`` ``[B, N]``, the diagonal of G."""
        return soft_lif_rate_derivative(self.current(x), self.alpha, self.v_th, self.sharpness)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A noisy response ``r = f(W (x + n_x) + b) + n_r``."""
        n_x = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * self.input_noise
        r = soft_lif_rate(self.current(x + n_x), self.alpha, self.v_th, self.sharpness)
        return r + torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype) * self.output_noise

    def information(self, x: torch.Tensor, input_covariance: torch.Tensor, with_matrices: bool = False) -> dict:
        """Per-sample mutual information (nats) of the batch `x` given ``C_x``.

        ``W C_x W^T`` and ``W W^T`` are shared by the batch; per sample only a diagonal
        and two Cholesky factorisations remain (`info.gain_scaled_information`). With
        `with_matrices`, the batch means of MI_numerator (Sigma_r) and MI_denominator
        (Sigma_n), and WCxW, come back too (no gradient).
        """
        weights = self.weights
        signal = info.wcxw(weights, input_covariance.to(weights.dtype))
        wwt = weights @ weights.t()
        gain = self.gain(x)
        out = {"MI": info.gain_scaled_information(signal, wwt, gain, self.input_noise, self.output_noise),
               "gain": gain}
        if with_matrices:
            with torch.no_grad():
                noise_cov = info.noise_covariance(weights, gain, self.input_noise, self.output_noise, wwt=wwt)
                response_cov = info.response_covariance(weights, gain, input_covariance, self.input_noise,
                                                        self.output_noise, signal=signal, noise=noise_cov)
            out |= {"MI_numerator": response_cov.mean(0), "MI_denominator": noise_cov.mean(0), "WCxW": signal.detach()}
        return out

    @torch.no_grad()
    def average_covariances(self, batches, input_covariance: torch.Tensor, with_gain: bool = True) -> dict:
        """``MI_numerator`` and ``MI_denominator`` averaged over every patch of `batches`
        (an iterable of ``[B, D]``), and ``WCxW``; float64. ``with_gain=False`` drops G:
        ``W C_x W^T + s_in^2 W W^T + s_out^2 I`` and ``s_in^2 W W^T + s_out^2 I``.

        Since ``E_x[G K G] = E_x[g g^T] * K`` (elementwise) for a shared K, only the second
        moment of the gains is accumulated: one ``[N, B] x [B, N]`` product per batch.
        """
        weights = self.weights.double()
        signal = info.wcxw(weights, input_covariance.double())
        noise_kernel = self.input_noise**2 * (weights @ weights.t())
        gain_moment = torch.zeros_like(signal)
        count = 0
        for x in batches:
            gain = self.gain(x.to(self.weights)).double()
            gain_moment += gain.t() @ gain
            count += x.shape[0]
        moment = gain_moment / count if with_gain else torch.ones_like(signal)
        floor = self.output_noise**2 * torch.eye(signal.shape[0], dtype=signal.dtype, device=signal.device)
        denominator = moment * noise_kernel + floor
        return {"MI_numerator": moment * signal + denominator, "MI_denominator": denominator, "WCxW": signal}

    def kl(self, x: torch.Tensor, input_covariance: torch.Tensor) -> torch.Tensor:
        """Per-sample ``E_r KL(p(x|r) || p(x))`` (nats) through the posterior covariance."""
        # float64 always: C_x^-1 (condition number ~1e6 for natural patches) is too much for float32
        return info.posterior_kl(self.weights.double(), self.gain(x).double(), input_covariance.double(),
                                 self.input_noise, self.output_noise)

"""The LIF transfer (f-I) curve: steady-state rate under a constant input current.

Units are those of the discrete model of `lifcore.snn.lif`: the current ``I`` is what is
added to ``v`` each step, the rate is in spikes per step (divide by dt for Hz), and
``alpha = exp(-dt/tau_m)``.

Closed form (the continuous-time LIF with tau_m = -dt/ln(alpha)): the membrane
relaxes to ``v_inf = I / (1 - alpha)`` and climbs from the reset potential ``v_r`` to
``v_th`` in ``tau_m ln((v_inf - v_r) / (v_inf - v_th))``, so

    f(I) = -ln(alpha) / ln(1 + (v_th - v_r) / (v_inf - v_th))    for v_inf > v_th, else 0.

``v_r = 0`` is the textbook LIF (``discrete=False``). The discrete network is exact
between spikes (its map is the ODE sampled at dt), but it subtracts ``v_th`` one to two
steps after the true crossing, 1.5 steps on average; undoing that delay is the same as
resetting at the crossing to ``v_r = -v_th (alpha^(-3/2) - 1)`` (``discrete=True``, the
default). Against simulated spike counts the textbook form is off by up to 8% at
alpha = 0.95, the corrected one by under 2% (tests/test_transfer.py states the bounds).
`lifcore.snn.lif.simulated_rate` counts the spikes of the network itself.
``soft_lif_rate`` replaces ``v_inf - v_th`` by a softplus and
gates the result with a sigmoid, which makes f smooth with a gain f'(I) > 0 everywhere
(needed by the coding model of seed 000, where G = diag f'(W x + b)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or not (0.0 < alpha <= 1.0):
        raise ValueError(f"alpha={alpha!r} must be a number in (0, 1] (alpha = exp(-dt/tau_m))")
    return float(alpha)


def check_v_th(v_th) -> None:
    bad = (torch.as_tensor(v_th) <= 0).any().item() if torch.is_tensor(v_th) else not (v_th > 0)
    if bad:
        raise ValueError(f"v_th={v_th!r} must be > 0 (every neuron's threshold)")


def reset_gap(alpha: float, v_th: float, discrete: bool = True) -> float:
    """``v_th - v_r``: the climb after a spike (``v_r = -v_th (alpha^(-3/2) - 1)`` when `discrete`)."""
    return v_th * alpha ** -1.5 if discrete else v_th


def lif_rate(current: torch.Tensor, alpha: float, v_th: float = 1.0, discrete: bool = True) -> torch.Tensor:
    """Closed-form f-I curve ``f(I)`` (spikes per step), zero below rheobase ``I = v_th (1 - alpha)``."""
    alpha = check_alpha(alpha)
    check_v_th(v_th)
    current = torch.as_tensor(current)
    if alpha == 1.0:  # perfect integrator with subtractive reset: one spike per v_th of charge
        return torch.clamp(current, min=0.0) / v_th
    drive = current / (1.0 - alpha) - v_th  # v_inf - v_th
    safe = torch.where(drive > 0, drive, torch.ones_like(drive))
    rate = -math.log(alpha) / torch.log1p(reset_gap(alpha, v_th, discrete) / safe)
    return torch.where(drive > 0, rate, torch.zeros_like(rate))


def _soft_parts(current, alpha, v_th, sharpness):
    """``d = v_inf - v_th``, ``s(d)`` (softplus, clamped above 0 so that nothing divides by
    an underflowed zero) and ``sigma(k d / v_th)``."""
    current = torch.as_tensor(current)
    drive = current / (1.0 - alpha) - v_th
    scaled = drive * (sharpness / v_th)
    tiny = torch.finfo(current.dtype).tiny if current.is_floating_point() else 1e-300
    soft_drive = (F.softplus(scaled) * (v_th / sharpness)).clamp_min(tiny ** 0.5)
    return soft_drive, torch.sigmoid(scaled)


def soft_lif_rate(current: torch.Tensor, alpha: float, v_th: float = 1.0, sharpness: float = 10.0,
                  discrete: bool = True) -> torch.Tensor:
    """Smooth f-I curve ``f(I) = h(s(d)) * sigmoid(k d / v_th)``, ``d = v_inf - v_th``, with

        h(s) = -ln(alpha) / ln(1 + (v_th - v_r) / s),    s(d) = softplus(k d / v_th) v_th / k,

    k = `sharpness`. The softplus alone would leave a tail that decays like 1/|d| below
    rheobase (the LIF onset is logarithmic); the sigmoid makes it decay like exp(k d / v_th).
    Both factors tend to the hard curve as k grows."""
    alpha = check_alpha(alpha)
    check_v_th(v_th)
    if alpha == 1.0:
        return F.softplus(torch.as_tensor(current) * sharpness / v_th) / sharpness
    soft_drive, gate = _soft_parts(current, alpha, v_th, sharpness)
    return -math.log(alpha) / torch.log1p(reset_gap(alpha, v_th, discrete) / soft_drive) * gate


def soft_lif_rate_derivative(current: torch.Tensor, alpha: float, v_th: float = 1.0,
                             sharpness: float = 10.0, discrete: bool = True) -> torch.Tensor:
    """``d soft_lif_rate / dI`` in closed form (the gain ``f'`` of G = diag f'(W x + b)).

    With ``g = v_th - v_r``, ``L = ln(1 + g/s)``, ``c = -ln(alpha)``, ``sigma = sigmoid(k d / v_th)``
    (and ``ds/dd = sigma``)::

        f' = [ c g / (L^2 s (s + g)) sigma^2 + (c / L) (k / v_th) sigma (1 - sigma) ] / (1 - alpha)
    """
    alpha = check_alpha(alpha)
    check_v_th(v_th)
    if alpha == 1.0:
        return torch.sigmoid(torch.as_tensor(current) * sharpness / v_th) / v_th
    soft_drive, gate = _soft_parts(current, alpha, v_th, sharpness)
    gap = reset_gap(alpha, v_th, discrete)
    log_term = torch.log1p(gap / soft_drive)
    c = -math.log(alpha)
    through_drive = c / log_term**2 * gap / (soft_drive * (soft_drive + gap)) * gate**2
    through_gate = c / log_term * (sharpness / v_th) * gate * (1.0 - gate)
    return (through_drive + through_gate) / (1.0 - alpha)


def equalising_rates(current: torch.Tensor, mean_rate: float | None = None) -> torch.Tensor:
    """The rates that would make a neuron's output distribution the one of largest entropy, for the
    currents ``[P, n]`` it receives (P stimuli, n neurons; each column on its own), from their empirical
    distribution function ``F_j = (rank + 1/2) / P`` (ranks 0 to P - 1; equal currents are ranked in their order):

    * ``mean_rate=None``: a bounded output, Laughlin (1981): ``r = F_j(u)``, the output uniform on
      [0, 1] (scale it by the largest rate);
    * ``mean_rate`` = m (a number, or ``[n]``, one per neuron): a non-negative output of mean m (a
      rate constraint): the exponential distribution, ``r = -m ln(1 - F_j(u))``.

    Both are noise-free predictions: with noise the optimal curve is flatter where the noise is large."""
    if not torch.is_tensor(current) or current.dim() != 2 or current.shape[0] < 2:
        shape = tuple(current.shape) if torch.is_tensor(current) else type(current).__name__
        raise ValueError(f"current must be a tensor [P >= 2 stimuli, n neurons]; got {shape}")
    if mean_rate is not None:
        try:
            mean = torch.as_tensor(mean_rate, dtype=torch.float64).to(current.device) if not isinstance(mean_rate, bool) else None
        except (TypeError, ValueError, RuntimeError):
            mean = None
        if (mean is None or mean.dim() > 1 or (mean.dim() == 1 and mean.numel() != current.shape[1])
                or not bool(((mean > 0) & torch.isfinite(mean)).all())):
            raise ValueError(f"mean_rate must be a finite number > 0, one per neuron ([n = {current.shape[1]}], each > 0) or None; "
                             f"got {mean_rate!r}")
    P = current.shape[0]
    ranks = current.double().argsort(0).argsort(0).to(torch.float64)
    cdf = (ranks + 0.5) / P
    return cdf if mean_rate is None else -mean * torch.log1p(-cdf)

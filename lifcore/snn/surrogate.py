"""The spike nonlinearity z = H(v - v_th) and its pseudo-derivatives psi = dz/dv.

Seed 001, slide "The eligibility vector for LIF neurons": the Heaviside has no useful
derivative, so the backward pass (BPTT) and e-prop both use a pseudo-derivative
``psi_j[t]``. Spikes fire on ``v > v_th`` (strictly), as in Bellec et al.'s code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def bellec_pseudo_derivative(v_minus_th: torch.Tensor, v_th, gamma: float = 0.3) -> torch.Tensor:
    """Piecewise-linear pseudo-derivative of Bellec et al. (2020):

        psi = gamma / v_th * max(0, 1 - |v - v_th| / v_th),  gamma = 0.3
    """
    return (gamma / v_th) * torch.clamp(1.0 - v_minus_th.abs() / v_th, min=0.0)


def fast_sigmoid_pseudo_derivative(v_minus_th: torch.Tensor, v_th, slope: float = 25.0) -> torch.Tensor:
    """Fast-sigmoid pseudo-derivative (Zenke & Ganguli 2018; snnTorch's default):

        psi = 1 / (1 + slope * |v - v_th|)^2
    """
    return 1.0 / (1.0 + slope * v_minus_th.abs()) ** 2


def _bellec_into(v_th: torch.Tensor, gamma: float = 0.3):
    """`bellec_pseudo_derivative` as ``psi = s v_th - |s v - s v_th|`` clamped at 0, ``s = gamma / v_th^2``
    (the same function: s > 0), in four in-place kernels and no allocation."""
    s = gamma / v_th**2
    s_v_th, minus_s_v_th = s * v_th, -s * v_th

    def into(out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        torch.addcmul(minus_s_v_th, v, s, out=out)
        out.abs_()
        torch.sub(s_v_th, out, out=out)
        return out.clamp_min_(0.0)

    return into


def _fast_sigmoid_into(v_th: torch.Tensor, slope: float = 25.0):
    """`fast_sigmoid_pseudo_derivative` as ``(1 + |slope v - slope v_th|)^-2``, four in-place kernels."""
    minus_slope_v_th = -slope * v_th

    def into(out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        torch.add(minus_slope_v_th, v, alpha=slope, out=out)
        return out.abs_().add_(1.0).pow_(-2)

    return into


@dataclass(frozen=True)
class Surrogate:
    """A named pseudo-derivative ``psi(v - v_th, v_th)``.

    `prepare_into` (optional) makes, for one threshold tensor, a function ``into(out, v)`` that
    writes ``psi(v - v_th)`` into `out` without allocating: the hand-written BPTT
    (`lifcore.snn.bptt`) calls it once per step. Without it, `into` falls back to `pseudo_derivative`.
    """

    name: str
    pseudo_derivative: Callable[..., torch.Tensor]
    prepare_into: Callable[[torch.Tensor], Callable] | None = None

    def __call__(self, v_minus_th: torch.Tensor, v_th) -> torch.Tensor:
        return self.pseudo_derivative(v_minus_th, v_th)

    def into(self, v_th: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``into(out, v)``: ``out <- psi(v - v_th)`` for this `v_th`."""
        if self.prepare_into is not None:
            return self.prepare_into(v_th)
        return lambda out, v: out.copy_(self.pseudo_derivative(v - v_th, v_th))


SURROGATES = {
    "bellec": Surrogate("bellec", bellec_pseudo_derivative, _bellec_into),
    "fast_sigmoid": Surrogate("fast_sigmoid", fast_sigmoid_pseudo_derivative, _fast_sigmoid_into),
}


def get_surrogate(surrogate: str | Surrogate) -> Surrogate:
    """Look a surrogate up by name; an unknown name raises ValueError naming `surrogate`."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate={surrogate!r} is unknown; allowed: {', '.join(map(repr, SURROGATES))}")
    return SURROGATES[surrogate]


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``grad * psi`` backward.

    The gradient reaches `v_th` through ``v_minus_th = v - v_th`` (dz/dv_th = -psi);
    the dependence of psi's *shape* on v_th is not differentiated, as in Bellec et al.
    """

    @staticmethod
    def forward(ctx, v_minus_th, v_th, surrogate):
        ctx.save_for_backward(v_minus_th)
        ctx.v_th = v_th.detach() if torch.is_tensor(v_th) else v_th
        ctx.surrogate = surrogate
        return (v_minus_th > 0).to(v_minus_th.dtype)

    @staticmethod
    def backward(ctx, grad_z):
        (v_minus_th,) = ctx.saved_tensors
        return grad_z * ctx.surrogate(v_minus_th, ctx.v_th), None, None


def spike(v_minus_th: torch.Tensor, v_th, surrogate: Surrogate) -> torch.Tensor:
    """z = H(v - v_th) with the pseudo-derivative `surrogate` in the backward pass."""
    return _SpikeFunction.apply(v_minus_th, v_th, surrogate)

"""A filter step preconditioned by the input covariance (issue 32: the deck's model learned from its
own random start in thousands of steps instead of millions).

Why plain SGD is slow from a random start (a heuristic, not a theorem): the filters see the patches
through ``W (x + n_x)``, and the information's gradient with respect to a filter is a sum of a term
in ``W C_x`` and one in ``s_in^2 W`` (the input noise), each times the gains; natural patches' C_x
has eigenvalues over many orders of magnitude (their 1/f^2 spectrum), so a random start's parts
along directions of little variance move slowly and stay as speckle for a long time, while the
parts along the large ones need a small learning rate to be stable.

The preconditioned step is SGD in a whitened parametrisation of the filters::

    W = V Q,   Q = P^(1/2),   P = m (C_x + s_in^2 I)^-1,   m = lambda_max(C_x + s_in^2 I)

The network sees the whitened input ``Q (x + n_x)``; a step of SGD on V at rate lr moves W by
``-lr (dL/dV) Q = -lr (dL/dW) P``: every direction of the input at the pace SGD gives the one of
largest variance. `m` keeps SGD's step there, where SGD's stability is decided, so lr keeps its
meaning; every other direction moves faster, up to ``m / s_in^2`` times for those the input
noise swamps (the noise bounds P: they are not blown up without end).

Where the filters are held at unit norm after every step (the deck's renormalisation, ``tangent=True``),
the step is ``-lr T (P (T g))`` with ``T g = g - (g . w) w / |w|^2`` each filter's tangent projection:
the radial part of the gradient, which the renormalisation would discard anyway, is removed before P
(P would otherwise turn it into a tangent move, along the directions of least variance, that need
not descend), and the result is projected again, so that a small step descends (``(Tg) P (Tg) >= 0``).
With it the step is SGD on V on the sphere's tangent plane, not in the whole of V.

What it does on the deck's model (issue 32; the Kyoto thumbnails, the deck's per-neuron Lagrange with the
recipe's clean gain, nonlinearity and multiplier steps and cosine decay, from the deck's random start, held-out
information in bits):

* 100 neurons, 2,000 steps at lr 0.001: 42.46 bits against 40.79 from the closed-form lattice start trained as
  long and 21.8 for plain SGD at lr 0.5 (the chapter "The colour model converges" sets the recipe's plain SGD at
  lr 0.01 beside it); on the thumbnails resampled to the dataset's pixel (``image_scale=2.5``) 34.27 against
  the lattice's 31.53 (both within 1 % over the last quarter there). Part of the filters become small
  centre-surround fields and colour blobs, half or more stay noise (50 % and 73 % by
  `lifcore.coding.fields.kinds`): the information is reached before the fields are.
* with the radial part of the gradient left in before P (projected only after it), the same runs end lower
  (38.4 and 31.5 bits), and at 300 neurons on the resampled thumbnails (45.9 bits) 95 % of the filters are noise.
* at lr 0.01 the amplified gradient noise of the directions of little variance rotates every filter away
  (median cosine between start and end 0.00 after 200 steps) and the information falls; clipping the
  preconditioned gradient instead of the plain one shrinks every step.

`tests/test_precondition.py` checks the step against autograd of the same objective through
``W = V Q``.
"""
from __future__ import annotations

import torch

PRECONDITIONS = ("none", "input")


def input_metric(input_covariance: torch.Tensor, input_noise: float) -> torch.Tensor:
    """``P = m (C_x + s_in^2 I)^-1`` ``[D, D]`` (float64, symmetric), ``m = lambda_max(C_x + s_in^2 I)``."""
    if input_covariance.ndim != 2 or input_covariance.shape[0] != input_covariance.shape[1]:
        raise ValueError(f"input_covariance must be a square matrix [D, D]; got shape {tuple(input_covariance.shape)}")
    if not input_noise > 0:
        raise ValueError(f"input_noise={input_noise!r} must be > 0: it bounds the preconditioner (m / s_in^2)")
    dim = input_covariance.shape[0]
    shifted = input_covariance.double() + input_noise**2 * torch.eye(dim, dtype=torch.float64,
                                                                     device=input_covariance.device)
    values, vectors = torch.linalg.eigh(shifted)
    if not bool((values > 0).all()):
        raise ValueError(f"C_x + s_in^2 I has an eigenvalue {values.min().item():.3g} <= 0: C_x is not a covariance")
    metric = (vectors / values) @ vectors.t() * values[-1]
    return 0.5 * (metric + metric.t())


def whitening_factor(metric: torch.Tensor) -> torch.Tensor:
    """``Q = P^(1/2)`` (symmetric): the parametrisation ``W = V Q`` that the step is SGD on."""
    values, vectors = torch.linalg.eigh(metric)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.t()


class InputPreconditioner:
    """Replaces the gradient of `weights` ``[N, D]`` by ``(dL/dW) P`` (with `tangent`, ``T((T dL/dW) P)``, T each
    row's tangent projection), in place, after clipping and before the optimiser's step
    (`ConstraintMethod.clip_`, in every step whose parameters include `weights`)."""

    def __init__(self, weights: torch.nn.Parameter, input_covariance: torch.Tensor, input_noise: float,
                 tangent: bool = True):
        if weights.ndim != 2 or weights.shape[1] != input_covariance.shape[-1]:
            raise ValueError(f"weights {tuple(weights.shape)} do not act on inputs of dimension "
                             f"{input_covariance.shape[-1]} (C_x)")
        self.weights, self.tangent = weights, bool(tangent)
        self.metric = input_metric(input_covariance, input_noise).to(weights.device, weights.dtype)

    @torch.no_grad()
    def apply_(self) -> None:
        w = self.weights
        if w.grad is None:
            return
        g = self._tangent(w.grad) if self.tangent else w.grad
        g = g @ self.metric
        w.grad.copy_(self._tangent(g) if self.tangent else g)

    def _tangent(self, g: torch.Tensor) -> torch.Tensor:
        w = self.weights
        return g - (g * w).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True).clamp_min(1e-30) * w

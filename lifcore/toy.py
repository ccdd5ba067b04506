"""The toy problem of seed 000 ("Why doesn't this work?"): climb a 2-D Gaussian bump while
a second optimiser pulls x2 to 3.

    f(x) = exp(-(x - u)^T P (x - u)),   u = (1, 1.5),   P = [[1, .7], [.7, 1]]

The deck's loop (its `Gamma_toy.py`), each iteration: SGD (lr 0.01) on -f over (x1, x2),
then SGD (``fr_lr`` 0.2) on (x2 - 3)^2 over x2 alone. `alternating` is that loop with the
gradients written out (``grad(-f) = 2 f P (x - u)``), vectorised over K initial conditions;
`lagrange` and `penalty` are the update rules of `lifcore.constraints` on the same problem.
(In the deck's coding model, Two_losses moves disjoint parameters; here both optimisers
move x2: the scheme is `lifcore.constraints`' ``alternating``, not its ``two_losses``.)
`disjoint` is the toy as the deck's coding model runs Two_losses: both gradients at the
same point, then the second optimiser steps x2 alone and the first x1 alone. The tests
run the deck's own code as the oracle, and the methods of `lifcore.constraints` against
these loops.

Trajectories are ``[kept, 2]`` for one start ``[2]`` or ``[kept, K, 2]`` for ``[K, 2]``;
``traj[0] = x0`` and ``traj[j]`` is the point after ``j * every`` iterations (with
``last_only``, just ``[x0, x_final]``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from . import memory

CENTER = (1.0, 1.5)
COUPLING = 0.7  # the off-diagonal of P (the diagonal is 1)
TARGET_X2 = 3.0
# the constrained optimum: on x2 = 3, f is largest where d f/d x1 = 0, x1 = u1 - 0.7 (3 - u2)
CONSTRAINED_OPTIMUM = (CENTER[0] - COUPLING * (TARGET_X2 - CENTER[1]), TARGET_X2)
METHODS = ("alternating", "disjoint", "lagrange", "penalty")


def bump(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``f(x) = exp(-(x - u)^T P (x - u))``."""
    d1, d2 = x1 - CENTER[0], x2 - CENTER[1]
    return torch.exp(-(d1 * d1 + 2 * COUPLING * d1 * d2 + d2 * d2))


def ascent_gradient(x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``grad(-f) = 2 f P (x - u)``: the gradient the first optimiser descends."""
    d1, d2 = x1 - CENTER[0], x2 - CENTER[1]
    two_f = 2.0 * torch.exp(-(d1 * d1 + 2 * COUPLING * d1 * d2 + d2 * d2))
    return two_f * (d1 + COUPLING * d2), two_f * (COUPLING * d1 + d2)


def _start(x0, dtype) -> tuple[torch.Tensor, bool]:
    x0 = torch.as_tensor(x0).to(dtype)  # stays on its device: a CUDA x0 runs on the GPU
    if x0.dim() not in (1, 2) or x0.shape[-1] != 2 or x0.numel() == 0:
        raise ValueError(f"x0 must be [2] or [K, 2] with K >= 1; got {tuple(x0.shape)}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 holds NaN or Inf: every start must be a finite point (x1, x2)")
    single = x0.dim() == 1
    return (x0[None] if single else x0).clone(), single


def _check(steps, every, **rates):
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps={steps!r} must be an integer >= 0")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every={every!r} must be a positive integer")
    for name, value in rates.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value!r} must be a finite number >= 0")


def run(method: str, x0, steps: int, lr: float = 0.01, fr_lr: float = 0.2, *, multiplier_lr: float = 0.2,
        rate_weight: float = 1.0, rho: float = 0.0, every: int = 1, last_only: bool = False, dtype=torch.float64,
        tolerance: float | None = None, reference: tuple[float, float] | None = None):
    """Iterate one method from every start in `x0`; see the module docstring for the shape.

    `fr_lr` is the second optimiser's lr (alternating, on ``rate_weight (x2 - 3)^2``);
    `multiplier_lr` the dual step of the multiplier (lagrange, with the augmentation
    ``rho/2 (x2 - 3)^2`` when `rho` > 0); penalty descends ``-f + rate_weight (x2 - 3)^2``.
    With `tolerance`, also return, per start,
    the iteration from which the point stays within `tolerance` of `reference` (the
    constrained optimum by default; -1: not within it at the end), as ``(traj, hit)``.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; allowed: {', '.join(map(repr, METHODS))}")
    _check(steps, every, lr=lr, fr_lr=fr_lr, multiplier_lr=multiplier_lr, rate_weight=rate_weight, rho=rho)
    x, single = _start(x0, dtype)
    kept_points = 2 if last_only else steps // every + 1
    memory.require((kept_points + 8) * x.shape[0] * 2 * x.element_size(), f"{x.shape[0]} starts kept at {kept_points} steps",
                   "the number of starts (grid), steps, or keep fewer (every, last_only)", x.device)
    x1, x2 = x[:, 0].clone(), x[:, 1].clone()
    multiplier = torch.zeros_like(x1)
    kept = [x.clone()]
    hit = None
    if tolerance is not None:
        ref1, ref2 = reference if reference is not None else CONSTRAINED_OPTIMUM
        hit = torch.full(x1.shape, -1, dtype=torch.long, device=x1.device)
    for i in range(1, steps + 1):
        g1, g2 = ascent_gradient(x1, x2)
        if method == "alternating":
            x1.sub_(lr * g1)
            x2.sub_(lr * g2)
            x2.sub_(fr_lr * rate_weight * 2.0 * (x2 - TARGET_X2))  # second optimiser, on the updated x2
        elif method == "disjoint":  # the deck's Two_losses order: the rate step on x2, the information step on x1
            x2.sub_(fr_lr * rate_weight * 2.0 * (x2 - TARGET_X2))
            x1.sub_(lr * g1)  # with the gradient taken before the rate step
        elif method == "lagrange":
            error = x2 - TARGET_X2
            x1.sub_(lr * g1)
            x2.sub_(lr * (g2 + multiplier + rho * error))
            multiplier.add_(multiplier_lr * error)  # dual ascent, on the error before the step
        else:  # penalty
            x1.sub_(lr * g1)
            x2.sub_(lr * (g2 + rate_weight * 2.0 * (x2 - TARGET_X2)))
        if hit is not None:
            close = ((x1 - ref1) ** 2 + (x2 - ref2) ** 2) < tolerance**2
            hit = torch.where((hit < 0) & close, i, torch.where(close, hit, -1))
        if (not last_only and i % every == 0) or (last_only and i == steps):
            kept.append(torch.stack((x1, x2), -1))
    traj = torch.stack(kept)
    traj = traj[:, 0] if single else traj
    if hit is None:
        return traj
    return traj, (hit[0] if single else hit)


def alternating(x0, steps: int, lr: float = 0.01, fr_lr: float = 0.2, **kwargs):
    """The deck's two-optimiser toy loop (`Gamma_toy.py`; both optimisers move x2)."""
    return run("alternating", x0, steps, lr, fr_lr, **kwargs)


def disjoint(x0, steps: int, lr: float = 0.01, fr_lr: float = 0.2, **kwargs):
    """The toy as the deck's coding model runs Two_losses: the first optimiser moves x1 alone, the
    second x2 alone. Its fixed point is the constrained optimum itself: x2 = 3 from the second
    step, and then ``d f / d x1 = 0`` on that line."""
    return run("disjoint", x0, steps, lr, fr_lr, **kwargs)


def lagrange(x0, steps: int, lr: float = 0.01, multiplier_lr: float = 0.2, rho: float = 0.0, **kwargs):
    """Gradient descent on ``-f + lambda (x2 - 3) + rho/2 (x2 - 3)^2`` and ascent on lambda
    (`lifcore.constraints`' lagrange with its own dual step; ``rho > 0`` is the augmented Lagrangian)."""
    return run("lagrange", x0, steps, lr, multiplier_lr=multiplier_lr, rho=rho, **kwargs)


def penalty(x0, steps: int, lr: float = 0.01, rate_weight: float = 10.0, **kwargs):
    """Gradient descent on ``-f + rate_weight (x2 - 3)^2``."""
    return run("penalty", x0, steps, lr, rate_weight=rate_weight, **kwargs)


@dataclass(frozen=True)
class StationaryPoint:
    x1: float
    x2: float
    offset: float  # distance to the constrained optimum


def alternating_stationary_point(lr: float = 0.01, fr_lr: float = 0.2) -> StationaryPoint:
    """The fixed point of one full iteration of `alternating`, solved numerically.

    A fixed point needs the first step to leave x1 alone, so ``d f / d x1 = 0``: x1 sits on
    the ridge ``x1 = u1 - 0.7 (x2 - u2)``, where ``P (x - u) = (0, (1 - 0.7^2) d)`` with
    ``d = x2 - u2`` and ``f = exp(-(1 - 0.7^2) d^2)``. The second step maps ``y2`` to
    ``(1 - 2 c) y2 + 6 c`` (c = fr_lr), and x2 must come back to itself::

        2 c (x2 - 3) + (1 - 2 c) lr 2 (1 - 0.7^2) d exp(-(1 - 0.7^2) d^2) = 0,

    one equation in x2, solved by bisection near 3. Its root is below 3 (the bump pulls x2
    down) by roughly ``lr (1 - 2c) / (2c)`` times the bump's slope: the two optimisers
    meet where their steps cancel, not at the constrained optimum.
    """
    _check(0, 1, lr=lr, fr_lr=fr_lr)
    if not 0 < fr_lr < 0.5:
        raise ValueError(f"fr_lr={fr_lr!r} must be in (0, 0.5) for the second step to contract")
    k = 1.0 - COUPLING**2

    def residual(x2: float) -> float:
        d = x2 - CENTER[1]
        return 2 * fr_lr * (x2 - TARGET_X2) + (1 - 2 * fr_lr) * lr * 2 * k * d * math.exp(-k * d * d)

    low, high = TARGET_X2 - 1.0, TARGET_X2 + 1.0
    if residual(low) * residual(high) > 0:
        raise ValueError(f"no stationary point within 1 of x2 = 3 for lr={lr}, fr_lr={fr_lr}")
    for _ in range(200):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if residual(low) * residual(mid) > 0 else (low, mid)
    x2 = 0.5 * (low + high)
    x1 = CENTER[0] - COUPLING * (x2 - CENTER[1])
    return StationaryPoint(x1, x2, math.hypot(x1 - CONSTRAINED_OPTIMUM[0], x2 - CONSTRAINED_OPTIMUM[1]))


def deck_loop(start=(2.0, 1.0), iterations: int = 1000) -> torch.Tensor:
    """The code of the slide "Why doesn't this work?", verbatim but for the start, the count,
    and recording (x1, x2) after each iteration (the slide printed the stack taken before the
    steps). The oracle of `tests/test_toy.py` and the baseline of `benchmarks/toy_basin.py`;
    it runs in torch's default dtype (float32, as on the slide). Returns ``[iterations + 1, 2]``.
    """
    x1 = torch.tensor(start[0], requires_grad = True)
    x2 = torch.tensor(start[1], requires_grad = True)
    cov = nn.Parameter(torch.tensor([[1,0.7], [0.7,1]]), requires_grad = False)
    u = torch.tensor([1.0,1.5], requires_grad = False)

    def forward(x):
        return torch.exp(-torch.matmul(torch.matmul(x-u,cov),x-u))

    optimizer = torch.optim.SGD([x1,x2], lr = 0.01)
    optimizer2 = torch.optim.SGD([x2], lr = 0.2)
    trajectory = [(x1.item(), x2.item())]
    for i in range(iterations):
        x = torch.stack((x1,x2))
        optimizer.zero_grad()
        optimizer2.zero_grad()
        #Let's start first optimization
        z = -forward(x)
        z.backward(retain_graph = True)
        optimizer.step()
        optimizer.zero_grad()

        #Lets start second optimization
        loss_2 = (x2 - torch.tensor(3))**2
        loss_2.backward()
        optimizer2.step()

        optimizer2.zero_grad()
        trajectory.append((x1.item(), x2.item()))
    return torch.tensor(trajectory, dtype=torch.float64)

"""Firing-rate constraint methods (seed 000; DESIGN section 4), for any model.

A model is anything a `closure` can evaluate: ``closure() -> (objective, rate)`` where
`objective` is the loss to minimise (``-I`` for the coding model, ``-f`` for the toy)
and `rate` the per-unit rates ``[..., N]`` (already averaged over the batch). The rate
error is ``rbar - r0`` with ``rbar`` the mean over units (``fr_scope="population"``) or
``r_j - r0`` for each unit (``fr_scope="neuron"``).

Methods (one `step` each):

* ``lagrange``: minimise ``objective + lambda . (rbar - r0) + rho/2 |rbar - r0|^2`` over the
  parameters, then the dual step ``lambda += lagrange_lr * (rbar - r0)`` (gradient ascent on
  lambda, simultaneous). ``rho = 0`` is the plain Lagrangian; ``rho > 0`` the augmented one
  (method of multipliers), which converges where the objective curves the wrong way along
  the constraint, as in the toy problem, where plain descent-ascent circles for ever;
* ``two_losses`` (the slides' "Gamma" method): one optimiser (lr) steps on the
  objective, then a second (``fr_lr``) on ``gamma * (rbar - r0)^2``, alternately, exactly
  as in the toy model of the deck;
* ``bias_threshold``: as ``two_losses``, but the rate loss moves only ``rate_params``
  (biases and thresholds) and the objective only ``info_params`` (the weights);
* ``penalty``: one optimiser on ``objective + gamma * (rbar - r0)^2``.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

METHODS = ("lagrange", "two_losses", "bias_threshold", "penalty")
FR_SCOPES = ("population", "neuron")
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def rate_error(rate: torch.Tensor, r0: float, fr_scope: str) -> torch.Tensor:
    """``rbar - r0`` (a scalar, population) or ``r - r0`` per unit (neuron)."""
    return (rate.mean(-1) if fr_scope == "population" else rate) - r0


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(map(repr, allowed))}")


class ConstrainedOptimizer:
    """Steps a model under a firing-rate constraint with one of `METHODS`.

    `info_params` are moved by the objective; `rate_params` by the rate loss of the
    alternating methods (default: the same parameters; ``bias_threshold`` needs them
    given). ``lagrange`` and ``penalty`` move the union of both with one optimiser.
    `n_units` sizes the multiplier for ``fr_scope="neuron"``.
    """

    def __init__(self, method: str, info_params: Iterable[torch.Tensor], rate_params: Iterable[torch.Tensor] | None = None,
                 *, r0: float, lr: float, fr_lr: float | None = None, gamma: float = 1.0,
                 lagrange_lr: float | None = None, fr_scope: str = "population", optimizer: str = "sgd",
                 n_units: int | None = None, rho: float = 0.0):
        check_choice("method", method, METHODS)
        check_choice("fr_scope", fr_scope, FR_SCOPES)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        for name, value in (("lr", lr), ("gamma", gamma)):
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0")
        if not rho >= 0:
            raise ValueError(f"rho={rho!r} must be >= 0 (the augmented-Lagrangian weight)")
        self.rho = float(rho)
        self.method, self.fr_scope, self.r0, self.gamma = method, fr_scope, float(r0), float(gamma)
        self.info_params = list(info_params)
        self.rate_params = list(rate_params) if rate_params is not None else list(self.info_params)
        if method == "bias_threshold" and rate_params is None:
            raise ValueError("method='bias_threshold' needs rate_params (the biases and thresholds)")
        self.fr_lr = float(fr_lr if fr_lr is not None else lr)
        self.lagrange_lr = float(lagrange_lr if lagrange_lr is not None else lr)
        opt = OPTIMIZERS[optimizer]
        if method in ("lagrange", "penalty"):
            union = list({id(p): p for p in self.info_params + self.rate_params}.values())
            self.optimizers = {"main": opt(union, lr=lr)}
        else:
            self.optimizers = {"info": opt(self.info_params, lr=lr), "rate": opt(self.rate_params, lr=self.fr_lr)}
        device = self.info_params[0].device
        dtype = self.info_params[0].dtype
        shape = () if fr_scope == "population" else ((n_units,) if n_units else ())
        if fr_scope == "neuron" and method == "lagrange" and not n_units:
            raise ValueError("fr_scope='neuron' with method='lagrange' needs n_units (one multiplier per unit)")
        self.lagrange_multiplier = torch.zeros(shape, device=device, dtype=dtype)

    def set_learning_rates(self, lr: float, fr_lr: float | None = None) -> None:
        """Set the (scheduled) learning rates of the next step."""
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = (fr_lr if fr_lr is not None else lr) if name == "rate" else lr

    def rate_loss(self, error: torch.Tensor) -> torch.Tensor:
        return self.gamma * (error**2).sum()

    def step(self, closure: Callable[[], tuple[torch.Tensor, torch.Tensor]], measure_after_rate_step: bool = False) -> dict:
        """One step; returns the objective and rate error measured before it (and, for the
        alternating methods, the objective after the objective's own step and, if asked,
        after the rate step)."""
        objective, rate = closure()
        error = rate_error(rate, self.r0, self.fr_scope)
        record = {"objective": objective.detach(), "rate_error": error.detach()}
        if self.method == "lagrange":
            loss = objective + (self.lagrange_multiplier * error).sum() + 0.5 * self.rho * (error**2).sum()
            self._descend("main", loss)
            self.lagrange_multiplier += self.lagrange_lr * error.detach()  # dual ascent
        elif self.method == "penalty":
            self._descend("main", objective + self.rate_loss(error))
        else:
            self._descend("info", objective)
            objective_after, rate = closure()
            record["objective_after_info_step"] = objective_after.detach()
            self._descend("rate", self.rate_loss(rate_error(rate, self.r0, self.fr_scope)))
            if measure_after_rate_step:
                with torch.no_grad():
                    record["objective_after_rate_step"] = closure()[0].detach()
        record["lagrange_multiplier"] = self.lagrange_multiplier.clone()
        return record

    def _descend(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def state_dict(self) -> dict:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "lagrange_multiplier": self.lagrange_multiplier.clone()}

    def load_state_dict(self, state: dict) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.lagrange_multiplier.copy_(state["lagrange_multiplier"])

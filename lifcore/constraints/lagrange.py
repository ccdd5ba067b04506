"""The Lagrange method (seed 000, "Lagrange"; DECK-CODE.md "The rate constraint").

The augmented Lagrangian, one multiplier per constraint::

    L = objective + sum_j lambda_j h_j + rho/2 sum_j h_j^2

descended over the parameters and *ascended* over the multipliers lambda. The deck's
code (``multiplier_lr=None``, the default): lambda is a parameter of the same SGD
optimiser, initialised ``U(0, 1)``, with its gradient ``h`` negated before the step, the
gradient norm clipped over all parameters and lambda together, rho = 1, one multiplier
per neuron. The project's variant (``multiplier_lr`` a number): a separate dual step
``lambda += multiplier_lr * h`` after the descent (simultaneous, h from before the
step), multipliers starting at zero (``multiplier_init="zero"``); ``rho = 0`` is the
plain Lagrangian, which circles for ever on the toy problem.
"""
from __future__ import annotations

import torch

from .base import ConstraintMethod, check_choice, check_positive

MULTIPLIER_INITS = ("uniform", "zero")


def augmented_lagrangian(multiplier: torch.Tensor, error: torch.Tensor, rho: float) -> torch.Tensor:
    """``sum_j lambda_j h_j + rho/2 sum_j h_j^2``: what the constraint adds to the objective (the spiking
    network's `lifcore.snn.information.InformationLoss` takes its rho term from two halves of a batch)."""
    return (multiplier * error).sum() + 0.5 * rho * (error**2).sum()


class Lagrange(ConstraintMethod):
    name = "lagrange"

    def __init__(self, info_params, rate_params=None, *, rho: float = 1.0, multiplier_lr: float | None = None,
                 multiplier_init: str = "uniform", **common):
        super().__init__(info_params, rate_params, **common)
        check_choice("multiplier_init", multiplier_init, MULTIPLIER_INITS)
        if not (isinstance(rho, (int, float)) and rho >= 0):
            raise ValueError(f"rho={rho!r} must be a number >= 0 (the augmented-Lagrangian weight)")
        if multiplier_lr is not None:
            check_positive(multiplier_lr=multiplier_lr)
        shape = self.state_shape("one multiplier")
        self.rho, self.multiplier_lr = float(rho), multiplier_lr
        reference = self.info_params[0]
        if multiplier_init == "uniform":  # the deck's torch.rand, drawn from the global generator after the model
            multiplier = torch.rand(shape, dtype=reference.dtype).to(reference.device)
        else:
            multiplier = torch.zeros(shape, dtype=reference.dtype, device=reference.device)
        self.multiplier = multiplier.requires_grad_(multiplier_lr is None)
        stepped = self.all_params + ([self.multiplier] if multiplier_lr is None else [])
        self.optimizers = {"main": self.make_optimizer(stepped, self.lr)}
        self.stepped = stepped

    @property
    def lagrange_multiplier(self) -> torch.Tensor:
        return self.multiplier.detach()

    def constraint_term(self, error):
        return augmented_lagrangian(self.multiplier.detach(), error, self.rho)

    def step(self, evaluate):
        evaluation = evaluate()
        error = self.error(evaluation)
        multiplier = self.multiplier if self.multiplier_lr is None else self.multiplier.detach()
        loss = evaluation.objective + augmented_lagrangian(multiplier, error, self.rho)
        optimizer = self.optimizers["main"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.multiplier_lr is None:
            self.multiplier.grad.neg_()  # ascent on lambda: its gradient is h, negated before the shared step
        self.clip_(self.stepped)
        optimizer.step()
        self.project()
        if self.multiplier_lr is not None:
            with torch.no_grad():
                self.multiplier += self.multiplier_lr * error.detach()  # dual ascent, h from before the step
        return self.record(evaluation, error, loss, lagrange_multiplier=self.multiplier.detach().clone())

    def rate_moves(self, param) -> bool:
        return any(param is p for p in self.all_params)

    def state_dict(self):
        return super().state_dict() | {"lagrange_multiplier": self.multiplier.detach().clone()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        with torch.no_grad():
            self.multiplier.copy_(state["lagrange_multiplier"])

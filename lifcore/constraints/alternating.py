"""The alternating scheme of the deck's toy problem, as a method of the project's own.

Each step: the objective's optimiser (``lr``) steps over `info_params`; then, on a fresh
evaluation of the same batch, the rate optimiser (``fr_lr``) steps on
``rate_weight * sum h^2`` over `rate_params`. With ``rate_params`` left out both steps move
the same parameters: the toy's loop (seed 000, "Why doesn't this work?"), which
`lifcore.toy` writes out in closed form. With disjoint ``rate_params`` it is the
bias-and-threshold reading of the slide in the toy's order (information step first);
the deck's own Two_losses is `lifcore.constraints.two_losses`.

It settles where the two steps cancel, not at the constrained optimum: an offset that
grows with ``lr / (rate_weight * fr_lr)`` (`lifcore.toy.alternating_stationary_point`).
"""
from __future__ import annotations

import torch

from .base import ConstraintMethod


class Alternating(ConstraintMethod):
    name = "alternating"

    def __init__(self, info_params, rate_params=None, **common):
        super().__init__(info_params, rate_params, **common)
        self.optimizers = {"info": self.make_optimizer(self.info_params, self.lr),
                           "rate": self.make_optimizer(self.rate_params, self.fr_lr, factors=False)}

    def constraint_term(self, error):
        return self.rate_loss(error)

    def rate_moves(self, param) -> bool:
        return any(param is p for p in self.rate_params)

    def step(self, evaluate):
        evaluation = evaluate()
        error = self.error(evaluation)
        self.descend("info", evaluation.objective, self.info_params)
        self.project()
        after_info = evaluate()
        self.descend("rate", self.rate_loss(self.error(after_info)), self.rate_params)
        self.project()
        extra = {"objective_after_info_step": after_info.objective.detach()}
        if self.measure:
            with torch.no_grad():
                extra["objective_after_rate_step"] = evaluate().objective.detach()
        return self.record(evaluation, error, evaluation.objective, **extra)

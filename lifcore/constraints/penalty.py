"""The penalty method (the project's own): one optimiser on ``objective + rate_weight sum h^2``."""
from __future__ import annotations

from .base import ConstraintMethod


class Penalty(ConstraintMethod):
    name = "penalty"

    def __init__(self, info_params, rate_params=None, **common):
        super().__init__(info_params, rate_params, **common)
        self.optimizers = {"main": self.make_optimizer(self.all_params, self.lr)}

    def constraint_term(self, error):
        return self.rate_loss(error)

    def rate_moves(self, param) -> bool:
        return any(param is p for p in self.all_params)

    def step(self, evaluate):
        evaluation = evaluate()
        error = self.error(evaluation)
        loss = evaluation.objective + self.rate_loss(error)
        self.descend("main", loss, self.all_params)
        self.project()
        return self.record(evaluation, error, loss)

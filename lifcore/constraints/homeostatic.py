"""The deck's "Gamma" method (December 2023 to 2024-01-23; DECK-CODE.md): a homeostatic gain.

No rate loss and no gradient: each neuron's gain is the inverse of an exponential moving
average of its own batch-mean rate,

    a_j = 1 / rbar_j,    rbar_j <- (1 - ema) rbar_j + ema r_j    (ema = 0.001, rbar_j = 1 at the start)

updated after every step with the rate of that step's forward pass (computed with the
gain in force). The objective's optimiser moves the filters and the threshold. Because
``r_j`` already contains ``a_j``, the fixed point is ``r_j = sqrt(s_j)`` with ``s_j`` the
mean softplus output, not ``r_j = 1``: the gain normalises, it does not hold a target.
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import ConstraintMethod


class HomeostaticGain(ConstraintMethod):
    name = "gamma"

    def __init__(self, info_params, rate_params=None, *, set_gain: Callable[[torch.Tensor], None],
                 ema: float = 0.001, **common):
        super().__init__(info_params, None, **common)
        if not (isinstance(ema, (int, float)) and 0 < ema <= 1):
            raise ValueError(f"homeostatic_ema={ema!r} must be in (0, 1]")
        shape = self.state_shape("one gain")
        self.ema, self.set_gain = float(ema), set_gain
        reference = self.info_params[0]
        self.average_rate = torch.ones(shape, dtype=reference.dtype, device=reference.device)
        self.set_gain(self.gain())
        self.optimizers = {"main": self.make_optimizer(self.info_params, self.lr)}

    def gain(self) -> torch.Tensor:
        """``a = 1 / rbar`` (one per neuron, or one for all with the population scope)."""
        return 1.0 / self.average_rate

    def rate_moves(self, param) -> bool:
        return False

    def step(self, evaluate):
        evaluation = evaluate()
        error = self.error(evaluation)
        self.descend("main", evaluation.objective, self.info_params)
        self.project()
        with torch.no_grad():
            rate = evaluation.rate.detach()
            rate = rate.mean(-1) if self.fr_scope == "population" else rate
            self.average_rate.mul_(1.0 - self.ema).add_(self.ema * rate)
        self.set_gain(self.gain())
        return self.record(evaluation, error, evaluation.objective, homeostatic_gain=self.gain().clone())

    def state_dict(self):
        return super().state_dict() | {"average_rate": self.average_rate.clone()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.average_rate.copy_(state["average_rate"])
        self.set_gain(self.gain())

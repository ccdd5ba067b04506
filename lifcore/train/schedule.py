"""The schedule of a run: learning rates, and the deck's jitter and centring window.

Iterations are counted from 1, as the deck's `train.py` counts them (the loop's step s,
0-based, is iteration s + 1):

* learning rate: constant, exponential or cosine decay from `lr` to ``lr * lr_final_factor``
  (set before each step, the rate step's `fr_lr` alike), or the deck's plateau decay:
  PyTorch's ``ReduceLROnPlateau`` on the objective step's optimiser, stepped with the
  step's loss after every iteration past `plateau_start`;
* jitter: ``W <- W |W|^power`` (then unit norm) before iterations ``jitter_start,
  jitter_start + jitter_every, ..., jitter_stop``;
* centring: the penalty ``centering_weight * spatial variance`` is part of the objective
  for ``centering_start <= iteration < centering_stop``.
"""
from __future__ import annotations

import math

import torch

from .config import TrainConfig


def cosine_factor(progress: float, final: float) -> float:
    """The cosine decay from 1 at ``progress = 0`` to `final` at ``progress = 1``."""
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


class Schedule:
    def __init__(self, config: TrainConfig, info_optimizer: torch.optim.Optimizer):
        self.config = config
        self.plateau = None
        if config.lr_schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                info_optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience,
                threshold=config.plateau_threshold, threshold_mode="rel", cooldown=config.plateau_cooldown)

    def learning_rate(self, step: int, base: float) -> float:
        """The scheduled rate at (0-based) `step` for a base rate (not used by the plateau schedule)."""
        config = self.config
        progress = step / max(config.steps - 1, 1)
        if config.lr_schedule == "exponential":
            return base * config.lr_final_factor**progress
        if config.lr_schedule == "cosine":
            return base * cosine_factor(progress, config.lr_final_factor)
        return base

    def set_learning_rates(self, method, step: int) -> None:
        if self.plateau is None:
            method.set_learning_rates(self.learning_rate(step, method.lr), self.learning_rate(step, method.fr_lr))

    def jitter_now(self, iteration: int) -> bool:
        c = self.config
        return bool(c.jitter_every) and c.jitter_start <= iteration <= c.jitter_stop \
            and (iteration - c.jitter_start) % c.jitter_every == 0

    def centering_now(self, iteration: int) -> bool:
        c = self.config
        return c.centering_weight > 0 and c.centering_start <= iteration < c.centering_stop

    def after_step(self, iteration: int, loss: float) -> None:
        if self.plateau is not None and iteration > self.config.plateau_start:
            self.plateau.step(loss)

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])

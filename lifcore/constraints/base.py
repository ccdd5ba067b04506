"""The driver every firing-rate constraint method shares (seed 000; DESIGN section 4).

A method steps a model given a closure ``evaluate() -> Evaluation``: the `objective` to
minimise (``-I`` for the coding model, ``-f`` for the toy) and the per-unit `rate`
``[N]`` (already averaged over the batch). Calling the closure twice in one step must
give the same batch and the same noise draw (the training loop guarantees it). The rate
error is

    h_j = r_j - r0             (fr_scope="neuron": one constraint per unit, the deck's)
    h   = mean_j r_j - r0      (fr_scope="population": one for the population mean)
    h_b = mean_j r_bj - r0     (fr_scope="patch": one per patch of the batch, on its population rate;
                                needs the per-sample rates ``rates`` [B, N] in the evaluation)

Each method is one class with a `step`; `constraint_term(h)` is what the constraint adds
to the loss that the filters see (its gradient is the logged ``W_grad/rate``), None when
it adds nothing. `project` (the encoder's unit-norm renormalisation) is called after every
optimiser step that moves the filters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

FR_SCOPES = ("neuron", "population", "patch")
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


@dataclass
class Evaluation:
    """What a constraint method needs from one forward pass."""

    objective: torch.Tensor             # scalar, to minimise
    rate: torch.Tensor                  # [N] batch-mean rate of each unit
    rates: torch.Tensor | None = None   # [B, N] per-sample rates (the "patch" scope needs them)


def rate_error(rate: torch.Tensor, r0: float, fr_scope: str, rates: torch.Tensor | None = None) -> torch.Tensor:
    """``h = r - r0`` per unit (neuron), ``mean(r) - r0`` (population), or each sample's
    ``mean_j r_bj - r0`` from `rates` ``[B, N]`` (patch)."""
    if fr_scope == "patch":
        if rates is None:
            raise ValueError("fr_scope='patch' needs the per-sample rates [B, N]")
        return rates.mean(-1) - r0
    return (rate.mean(-1) if fr_scope == "population" else rate) - r0


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(map(repr, allowed))}")


def check_positive(**values) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value < float("inf")):
            raise ValueError(f"{name}={value!r} must be a finite number > 0")


def unique(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return list({id(p): p for p in params}.values())


class ConstraintMethod:
    """Base class: parameters, optimisers, clipping, learning rates, state.

    `info_params` are moved by the objective, `rate_params` by a rate step (methods that
    have one); by default the same parameters. `lr` is the objective's learning rate,
    `fr_lr` the rate step's (default `lr`), `rate_weight` the weight of ``sum h^2``,
    `clip_grad_norm` (> 0) clips the norm of the objective step's gradient over all
    parameters, as the deck's ``clip_grad_norm_(all_params, 20)``. `n_neurons` sizes the state
    a method keeps per unit (multipliers, average rates). `lr_factors` (``{parameter: factor}``)
    gives some parameters a learning rate of their own, `factor` times their optimiser's (a
    parameter group of its own; a schedule scales every group alike).
    """

    name = "base"

    def __init__(self, info_params: Iterable[torch.Tensor], rate_params: Iterable[torch.Tensor] | None = None, *,
                 r0: float, lr: float, fr_lr: float | None = None, rate_weight: float = 1.0, optimizer: str = "sgd",
                 fr_scope: str = "neuron", clip_grad_norm: float = 0.0, project: Callable[[], None] | None = None,
                 n_neurons: int | None = None, lr_factors: dict | None = None, preconditioners: list | None = None):
        check_choice("fr_scope", fr_scope, FR_SCOPES)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_positive(lr=lr, rate_weight=rate_weight)
        if fr_lr is not None:
            check_positive(fr_lr=fr_lr)
        if not (isinstance(clip_grad_norm, (int, float)) and clip_grad_norm >= 0):
            raise ValueError(f"clip_grad_norm={clip_grad_norm!r} must be >= 0 (0: no clipping)")
        self.info_params = unique(info_params)
        self.rate_params = unique(rate_params) if rate_params is not None else list(self.info_params)
        if not self.info_params:
            raise ValueError("info_params is empty: the objective must move at least one parameter")
        self.r0, self.lr, self.fr_lr = float(r0), float(lr), float(fr_lr if fr_lr is not None else lr)
        self.rate_weight, self.fr_scope, self.clip = float(rate_weight), fr_scope, float(clip_grad_norm)
        self.optimizer_class = OPTIMIZERS[optimizer]
        self.project = project or (lambda: None)
        self.n_neurons = n_neurons  # units with a constraint each (fr_scope="neuron"); a method with state per unit needs it
        self.lr_factors = {id(p): float(f) for p, f in (lr_factors or {}).items()}
        for factor in self.lr_factors.values():
            check_positive(lr_factor=factor)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.preconditioners = list(preconditioners or [])  # `precondition.InputPreconditioner`s, after clipping
        self.measure = False  # methods with parts: record the objective after each part (set per step by the loop)

    # -- what a method defines ------------------------------------------------------------
    def step(self, evaluate: Callable[[], Evaluation]) -> dict:
        """One step; returns a record with at least ``objective``, ``rate_error``, ``loss``."""
        raise NotImplementedError

    def constraint_term(self, error: torch.Tensor) -> torch.Tensor | None:
        """The constraint's part of the loss the filters descend, as a function of ``h``."""
        return None

    def rate_moves(self, param: torch.Tensor) -> bool:
        """Whether `constraint_term`'s gradient reaches `param` in this method's step."""
        return False

    @property
    def lagrange_multiplier(self) -> torch.Tensor | None:
        return None

    # -- shared ---------------------------------------------------------------------------
    def state_shape(self, what: str) -> tuple:
        """The shape of the state a method keeps per constraint (`what`, e.g. "one multiplier"):
        ``()`` for the population mean, ``(n_neurons,)`` per neuron; the patch scope changes its
        constraints with every batch and can keep none."""
        if self.fr_scope == "patch":
            raise ValueError(f"fr_scope='patch' changes its constraints with every batch; method={self.name!r} keeps "
                             f"{what} per constraint: use 'neuron' or 'population'")
        if self.fr_scope == "neuron" and not self.n_neurons:
            raise ValueError(f"fr_scope='neuron' needs n_neurons ({what} per neuron)")
        return () if self.fr_scope == "population" else (self.n_neurons,)

    @property
    def all_params(self) -> list[torch.Tensor]:
        return unique(self.info_params + self.rate_params)

    @property
    def info_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of the objective step (the one a plateau schedule acts on)."""
        return self.optimizers.get("info") or self.optimizers["main"]

    def error(self, evaluation: Evaluation) -> torch.Tensor:
        return rate_error(evaluation.rate, self.r0, self.fr_scope, evaluation.rates)

    def rate_loss(self, error: torch.Tensor) -> torch.Tensor:
        """``rate_weight * sum h^2`` (the deck's ``loss_FR`` with weight 1)."""
        return self.rate_weight * (error**2).sum()

    def make_optimizer(self, params: list[torch.Tensor], lr: float, factors: bool = True) -> torch.optim.Optimizer:
        """An optimiser of `optimizer_class` over `params` at `lr`, one parameter group per learning-rate
        factor (`lr_factors`; 1 for the others, and for all with ``factors=False``: a rate step has
        its own `fr_lr`), each group keeping its ``lr_factor``."""
        groups: dict[float, list] = {}
        for p in params:
            groups.setdefault(self.lr_factors.get(id(p), 1.0) if factors else 1.0, []).append(p)
        return self.optimizer_class([{"params": ps, "lr": lr * f, "lr_factor": f} for f, ps in groups.items()], lr=lr)

    def clip_(self, params: list[torch.Tensor]) -> None:
        """Between a backward and its optimiser step: the clipping of the gradient's norm over `params` (the
        deck's, on the gradient of its loss), then the preconditioners (`preconditioners`). Clipping the
        preconditioned gradient instead would let its large parts where patches have little variance
        shrink the whole step."""
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], self.clip)
        for preconditioner in self.preconditioners:  # only in a step that moves its parameter
            if any(p is preconditioner.weights for p in params):
                preconditioner.apply_()

    def descend(self, name: str, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
        """Zero, backward, clip (over `params`), step the optimiser `name`."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.clip_(params)
        optimizer.step()

    def set_learning_rates(self, lr: float, fr_lr: float | None = None) -> None:
        """Set the learning rates of the next step (a schedule): `lr` for the objective's
        optimiser, `fr_lr` for a separate rate optimiser."""
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                base = (fr_lr if fr_lr is not None else lr) if name == "rate" else lr
                group["lr"] = base * group.get("lr_factor", 1.0)

    def state_dict(self) -> dict:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])

    @staticmethod
    def record(evaluation: Evaluation, error: torch.Tensor, loss: torch.Tensor, **extra) -> dict:
        return {"objective": evaluation.objective.detach(), "rate_error": error.detach(), "loss": loss.detach(), **extra}

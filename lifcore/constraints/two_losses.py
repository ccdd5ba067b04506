"""The deck's Two_losses (DECK-CODE.md; `train.py` at dcb198e, "firing_restriction = Two_losses").

Two SGD optimisers on disjoint parameters, in this order within one iteration:

1. the rate step: ``fr_lr`` on ``sum_j h_j^2`` over the nonlinearity (gain and threshold);
2. the information step: ``lr`` over the filters W, with the gradient of the objective
   computed *before* the rate step (one forward, ``retain_graph``), clipped over all
   parameters (the clip's norm includes the objective's gradient of gain and threshold,
   which is computed but not applied), then W renormalised.

What the code computed beyond the slide's description: the deck zeroes the first
optimiser's gradients *before* ``loss_FR.backward()``, so the rate loss's gradient of W
stays in ``W.grad`` and the information step descends ``-I + sum_j h_j^2`` over W, at
``lr``. ``weights_see_rate_loss=True`` (the default) reproduces that; ``False`` is the
disjoint scheme the slide describes (the filters see the information term alone).
``FR_learning_rate`` scales only the gain-and-threshold step either way. With ``shared=True``
(and gain and threshold among `info_params`) the information step moves them too, with the
objective's gradient: the project's variant that tests what the deck's order costs.

With `measure` set, the objective on the same batch and noise is recorded
before the iteration, after the rate step and after both steps (the deck's slide
"Recording KL before and after adjusting FR", in the deck's step order).
"""
from __future__ import annotations

import torch

from .base import ConstraintMethod


class TwoLosses(ConstraintMethod):
    name = "two_losses"

    def __init__(self, info_params, rate_params, *, weights_see_rate_loss: bool = True, shared: bool = False,
                 **common):
        if rate_params is None:
            raise ValueError("method='two_losses' needs rate_params (the nonlinearity's gain and threshold)")
        super().__init__(info_params, rate_params, **common)
        overlap = {id(p) for p in self.info_params} & {id(p) for p in self.rate_params}
        if overlap and not shared:
            raise ValueError("method='two_losses' moves disjoint parameter sets; info_params and rate_params overlap "
                             "(pass shared=True for an information step that moves the rate's parameters too, or "
                             "use method='alternating', the toy's scheme)")
        self.rate_ids = {id(p) for p in self.rate_params}
        self.weights_see_rate_loss = bool(weights_see_rate_loss)
        self.optimizers = {"info": self.make_optimizer(self.info_params, self.lr),
                           "rate": self.make_optimizer(self.rate_params, self.fr_lr, factors=False)}

    def constraint_term(self, error):
        return self.rate_loss(error)

    def rate_moves(self, param) -> bool:
        return self.weights_see_rate_loss and any(param is p for p in self.info_params) and id(param) not in self.rate_ids

    def step(self, evaluate):
        evaluation = evaluate()
        error = self.error(evaluation)
        rate_loss = self.rate_loss(error)
        params = self.all_params
        info_grads = torch.autograd.grad(evaluation.objective, params, retain_graph=True, allow_unused=True)
        rate_grads = torch.autograd.grad(rate_loss, params, allow_unused=True)
        grads = {id(p): (g, r) for p, g, r in zip(params, info_grads, rate_grads)}

        def zero_or(g, p):
            return g if g is not None else torch.zeros_like(p)

        # 1. the rate step moves gain and threshold
        for p in self.rate_params:
            p.grad = zero_or(grads[id(p)][1], p)
        self.optimizers["rate"].step()
        extra = {}
        if self.measure:
            with torch.no_grad():
                extra["objective_after_rate_step"] = evaluate().objective.detach()
        # 2. the information step moves W, with the gradient from before the rate step
        for p in self.rate_params:  # the deck's backward computes these; its clip counts them (applied only if shared)
            p.grad = zero_or(grads[id(p)][0], p)
        for p in self.info_params:
            if id(p) in self.rate_ids:
                continue
            g_info, g_rate = grads[id(p)]
            g = zero_or(g_info, p)
            p.grad = g + g_rate if (self.weights_see_rate_loss and g_rate is not None) else g
        self.clip_(params)
        self.optimizers["info"].step()
        self.project()
        for p in params:
            p.grad = None
        if self.measure:
            with torch.no_grad():
                extra["objective_after_both_steps"] = evaluate().objective.detach()
        return self.record(evaluation, error, evaluation.objective, **extra)

"""Training a `LIFNetwork` on a spike loss with e-prop or BPTT (seed 001, "RNN Gradients").

`fit` runs `steps` optimiser steps on fixed or freshly drawn inputs, with a tqdm bar,
and returns the history (loss, mean rate, seconds per step). Same seed, same device,
same history.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from .grad import GRADIENT_METHODS, apply_gradients, check_mode, gradients
from .lif import LIFNetwork
from .losses import SpikeLoss


def fit(net: LIFNetwork, inputs: torch.Tensor | Callable[[int], torch.Tensor], loss: SpikeLoss, method: str = "eprop",
        steps: int = 100, lr: float = 1e-2, progress: bool = True, mode: str = "full",
        on_step: Callable[[int], None] | None = None, lr_final_factor: float = 1.0) -> dict:
    """Train `net` in place. `inputs` is a ``[T, B, n_in]`` tensor or ``step -> tensor``;
    `method` "eprop" or "bptt" (with the BPTT `mode`, see `lifcore.snn.grad.gradients`).
    After each optimiser step the loss takes its own step (`SpikeLoss.after_step`: the Lagrange
    multipliers of `InformationLoss`), then `on_step(step)` is called (a held-out measurement).
    `lr_final_factor` < 1: the learning rate decays from `lr` to ``lr * lr_final_factor`` on a cosine
    (`lifcore.train.schedule.cosine_factor`); 1, constant. Networks with an `input_norm` have their
    input weights' rows set back to it after every step (`LIFNetwork.project_`)."""
    if method not in GRADIENT_METHODS:
        raise ValueError(f"method={method!r} is unknown; allowed: {', '.join(map(repr, GRADIENT_METHODS))}")
    check_mode(mode)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    if isinstance(lr_final_factor, bool) or not isinstance(lr_final_factor, (int, float)) or not 0 < lr_final_factor <= 1:
        raise ValueError(f"lr_final_factor={lr_final_factor!r} must be a number in (0, 1] (1: a constant learning rate)")
    from ..train.schedule import cosine_factor  # here: lifcore.train imports lifcore.snn
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    history = {"loss": [], "rate": [], "seconds": []}
    for step in tqdm(range(steps), disable=not progress, desc=method):
        x = inputs(step) if callable(inputs) else inputs
        if lr_final_factor < 1:
            for group in optimizer.param_groups:
                group["lr"] = lr * cosine_factor(step / max(steps - 1, 1), lr_final_factor)
        start = time.perf_counter()
        grads, value = gradients(net, x, loss, method, mode)
        optimizer.zero_grad()
        apply_gradients(net, grads)
        optimizer.step()
        net.project_()
        loss.after_step()
        history["seconds"].append(time.perf_counter() - start)
        history["loss"].append(float(value))
        if not torch.isfinite(torch.as_tensor(value)):
            raise FloatingPointError(f"{method} training diverged at step {step}: loss {float(value)}")
        with torch.no_grad():
            z, _ = net(x)
        history["rate"].append(z.mean().item())
        if on_step is not None:
            on_step(step)
    return history

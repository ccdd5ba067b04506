"""Gradient estimators for `LIFNetwork`: BPTT (`lifcore.snn.bptt`, or autograd through the loop)
and e-prop (`lifcore.snn.eprop`), behind one `gradients` call; `gradient_alignment` reports how
far e-prop is from full BPTT (seed 001, slides "RNN Gradients" to "Deriving e-prop from BPTT").
When z is detached on both the recurrent and the reset path (``stop_z``), BPTT and e-prop compute
the same gradient; `tests/test_grad.py` runs that check.
"""
from __future__ import annotations

import torch

from .bptt import MODES as BPTT_MODES
from .eprop import eprop_gradients, named_trainable
from .lif import LIFNetwork
from .losses import SpikeLoss


def check_mode(mode: str) -> None:
    """`mode` must be one of `BPTT_MODES` (what BPTT detaches); the error names the allowed ones."""
    if mode not in BPTT_MODES:
        raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(map(repr, BPTT_MODES))}")


def bptt_gradients(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, mode: str = "full", path: str = "fused"):
    """Gradients of ``loss(z)`` by BPTT through the unrolled loop.

    `mode`: "full" (nothing detached), "detach_reset" (no gradient through the reset
    term), "stop_z" (no gradient through z on the recurrent and reset paths). `path`:
    "fused" (the hand-written backward of `lifcore.snn.bptt`) or "autograd" (through
    `lif_step`, the reference). Returns ``(grads, loss_value)`` with `grads` keyed by parameter name.
    """
    check_mode(mode)
    params = named_trainable(net)
    z, _ = net(x, detach_reset=mode == "detach_reset", stop_z=mode == "stop_z", path=path)
    value = loss(z)
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(p)) for (name, p), g in zip(params.items(), grads)}, value.detach()


GRADIENT_METHODS = ("eprop", "bptt")


def gradients(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, method: str = "eprop", mode: str = "full"):
    """``(grads, loss_value)`` by `method`: "eprop", or "bptt" with the BPTT `mode` ("full",
    "detach_reset" or "stop_z"; ignored by e-prop)."""
    if method not in GRADIENT_METHODS:
        raise ValueError(f"method={method!r} is unknown; allowed: {', '.join(map(repr, GRADIENT_METHODS))}")
    check_mode(mode)
    if method == "eprop":
        return eprop_gradients(net, x, loss)
    return bptt_gradients(net, x, loss, mode=mode)


def gradient_alignment(reference: dict, estimate: dict) -> dict[str, float]:
    """Cosine similarity and relative error ``|g - g_ref| / |g_ref|`` over all parameters together."""
    ref = torch.cat([reference[k].flatten() for k in reference])
    est = torch.cat([estimate[k].flatten() for k in reference])
    ref_norm = ref.norm()
    return {
        "cosine": (torch.dot(ref, est) / (ref_norm * est.norm()).clamp_min(1e-300)).item(),
        "relative_error": ((est - ref).norm() / ref_norm.clamp_min(1e-300)).item(),
    }


def apply_gradients(net: LIFNetwork, grads: dict) -> None:
    """Write `grads` into ``p.grad`` so that any torch optimiser can step on e-prop gradients."""
    for name, p in named_trainable(net).items():
        p.grad = grads[name].clone()

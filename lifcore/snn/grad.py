"""Gradient estimators for `LIFNetwork`: BPTT (autograd) and e-prop (Bellec et al. 2020).

Seed 001, slides "RNN Gradients" to "The eligibility vector for LIF neurons". For the
LIF of `lifcore.snn.lif` the eligibility vector of synapse j <- i is a low-pass of the
*presynaptic* activity only,

    eps_ji[t] = alpha eps_ji[t-1] + z_i[t-1]     (recurrent; eps[0] = 0)
    eps_ji[t] = alpha eps_ji[t-1] + x_i[t]       (input;  eps[-1] = 0)
    e_ji[t]   = psi_j[t] eps_ji[t]
    grad W_ji = sum_t L_j[t] e_ji[t],   L_j[t] = dE/dz_j[t],

so it is kept as one trace per presynaptic neuron, and each step costs one outer
product ``(L psi)^T eps`` per weight matrix. Bias and threshold have traces of their
own: ``dv/db`` low-passes 1, ``dv/dv_th`` low-passes ``-z_j`` (the reset), and
``dz/dv_th = -psi``.

When z is detached on both the recurrent and the reset path (``stop_z``), BPTT and
e-prop compute the same gradient; `tests/test_grad.py` runs that check, and
``gradient_alignment`` reports how far e-prop is from full BPTT.
"""
from __future__ import annotations

import torch

from .lif import LIFNetwork, LIFParameters, lif_step, zero_state
from .losses import SpikeLoss

BPTT_MODES = ("full", "detach_reset", "stop_z")


def named_trainable(net: LIFNetwork) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in net.named_parameters() if p.requires_grad}


def bptt_gradients(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, mode: str = "full"):
    """Gradients of ``loss(z)`` by autograd through the unrolled loop.

    `mode`: "full" (nothing detached), "detach_reset" (no gradient through the reset
    term), "stop_z" (no gradient through z on the recurrent and reset paths).
    Returns ``(grads, loss_value)`` with `grads` keyed by parameter name.
    """
    if mode not in BPTT_MODES:
        raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(map(repr, BPTT_MODES))}")
    params = named_trainable(net)
    z, _ = net(x, detach_reset=mode == "detach_reset", stop_z=mode == "stop_z")
    value = loss(z)
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(p)) for (name, p), g in zip(params.items(), grads)}, value.detach()


@torch.no_grad()
def _eprop_pass(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, accumulate: bool):
    """One forward pass in time; with `accumulate`, the e-prop gradient sums (memory O(B n + n^2))."""
    params: LIFParameters = net.parameters_for_step()
    T, B, _ = x.shape
    state = zero_state(B, net.n_neurons, device=x.device, dtype=x.dtype)
    learn_threshold = isinstance(net.v_th, torch.nn.Parameter)
    if accumulate:
        grad_in = torch.zeros_like(net.w_in)
        grad_rec = torch.zeros_like(net.w_rec) if net.recurrent else None
        grad_bias = torch.zeros_like(net.bias) if net.bias is not None else None
        grad_th = torch.zeros_like(net.v_th) if learn_threshold else None
        trace_in = torch.zeros(B, net.n_in, device=x.device, dtype=x.dtype)
        trace_rec = torch.zeros(B, net.n_neurons, device=x.device, dtype=x.dtype)
        trace_th = torch.zeros(B, net.n_neurons, device=x.device, dtype=x.dtype)
        trace_bias = 0.0
    alpha = net.alpha
    for t, x_t in enumerate(x.unbind(0)):
        current = x_t @ net.w_in.t()  # per step, not precomputed: memory stays independent of T
        if net.bias is not None:
            current = current + net.bias
        z_prev = state.z
        state, z = lif_step(state, current, params)
        if not accumulate:
            loss.observe(t, z)
            continue
        # eligibility vectors, all evaluated at step t (they use z[t-1] and x[t])
        trace_in.mul_(alpha).add_(x_t)
        trace_rec.mul_(alpha).add_(z_prev)
        trace_th.mul_(alpha).sub_(z_prev)
        trace_bias = alpha * trace_bias + 1.0
        psi = net.surrogate(state.v - params.v_th, params.v_th)
        signal = loss.learning_signal(t, z) * psi  # L_j[t] psi_j[t]
        grad_in.addmm_(signal.t(), trace_in)
        if grad_rec is not None:
            grad_rec.addmm_(signal.t(), trace_rec)
        if grad_bias is not None:
            grad_bias += signal.sum(0) * trace_bias
        if grad_th is not None:
            grad_th += (signal * (trace_th - 1.0)).sum(0)  # dv/dv_th - 1: reset path and dz/dv_th = -psi
    if not accumulate:
        return None
    grads = {"w_in": grad_in}
    if grad_rec is not None:
        grads["w_rec"] = grad_rec * net.off_diagonal
    if grad_bias is not None:
        grads["bias"] = grad_bias
    if grad_th is not None:
        grads["v_th"] = grad_th
    return grads


def eprop_gradients(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss):
    """e-prop gradients of `loss`, forward in time, memory independent of T.

    A loss whose learning signal needs statistics of the whole trajectory (a rate,
    a variance) gets a first forward pass that collects them; the second pass then
    knows ``L[t]`` at every step. Returns ``(grads, loss_value)``.
    """
    net.check_input(x)
    loss.begin(x.shape[0], (x.shape[1], net.n_neurons), x.device, x.dtype)
    if loss.needs_statistics:
        _eprop_pass(net, x, loss, accumulate=False)
    grads = _eprop_pass(net, x, loss, accumulate=True)
    return {name: grads[name] for name in named_trainable(net)}, loss.value()


GRADIENT_METHODS = ("eprop", "bptt")


def gradients(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, method: str = "eprop", mode: str = "full"):
    """``(grads, loss_value)`` by `method`: "eprop", or "bptt" with the BPTT `mode` ("full",
    "detach_reset" or "stop_z"; ignored by e-prop)."""
    if method not in GRADIENT_METHODS:
        raise ValueError(f"method={method!r} is unknown; allowed: {', '.join(map(repr, GRADIENT_METHODS))}")
    if mode not in BPTT_MODES:
        raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(map(repr, BPTT_MODES))}")
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

"""BPTT through a whole LIF sequence as one autograd node, with the backward written out.

Autograd through `lif_step` records about ten nodes per step and replays them one by one;
for this neuron the backward is one recurrent product per step plus elementwise work, and
every weight gradient is one product over all steps (issue 17). With the network of
`lifcore.snn.lif` (``W`` the diagonal-free W_rec, ``I[t] = W_in x[t] + b``)::

    v[t] = alpha v[t-1] + I[t] + z[t-1] W^T - v_th z[t-1],   z[t] = H(v[t] - v_th),   psi[t] = psi(v[t] - v_th)

and ``delta[t] = dE/dv[t]``, ``zeta[t] = dE/dz[t]`` (total derivatives), the backward is::

    zeta[t]  = dE/dz[t] (the loss's own)  +  delta[t+1] W  -  v_th delta[t+1]
    delta[t] = zeta[t] psi[t]  +  alpha delta[t+1]  +  dE/dv[t] (the loss's own)

    dE/dW_in = sum_t delta[t]^T x[t],   dE/dW^T = sum_t z[t-1]^T delta[t]   (one [n, T B] x [T B, .] product each)
    dE/db = sum_{t,b} delta[t],   dE/dv_th = -sum_{t,b} delta[t] z[t-1] - sum_{t,b} zeta[t] psi[t]

(seed 001, slides "RNN Gradients" and "Deriving e-prop from BPTT"). ``detach_reset`` drops the
``- v_th delta[t+1]`` term of zeta, ``stop_z`` drops both z-paths, so that its backward needs no
product at all (and equals e-prop). The reset is the diagonal of the recurrent product
(``W^T - diag(v_th)``: W has no self-connections), so a step is one ``addmm`` and two elementwise
kernels forward, one ``addmm`` and six elementwise kernels backward, none of which allocates.

Only ``x``, ``v`` and ``z`` (inputs and outputs anyway) are saved; psi is recomputed from ``v[t]``
step by step in the backward, so no ``[T, B, n]`` tensor of it is made. ``I`` and ``delta`` never leave the call, so they live in
`lifcore.snn.workspace` buffers. `tests/test_bptt.py` checks every mode against autograd
through `lif_step` (float64, 1e-10).
"""
from __future__ import annotations

import torch

from .surrogate import Surrogate
from .workspace import buffer


# Steps of input current per product: a [10 B, n_in] x [n_in, n] product writes 1.5 MB, which the
# next ten steps read from cache; one product over all steps runs at ~60% of the matmul peak on
# the benchmark's CPU (its [T B, n] output leaves the cache), ten steps at a time at ~80%.
INPUT_CHUNK = 10


def _with_reset(w_rec_t: torch.Tensor, v_th: torch.Tensor) -> torch.Tensor:
    """``W^T - diag(v_th)``: the reset ``- v_th z[t-1]`` is the diagonal of the recurrent product,
    which W (no self-connections) leaves free, so one ``addmm`` does both."""
    w = w_rec_t.detach().clone()
    w.diagonal().sub_(v_th.detach())
    return w


def chunk_current(current: torch.Tensor, x: torch.Tensor, t: int, w_in: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """``I[t] = W_in x[t] + b`` from the chunk buffer `current` ``[K, B, n]``: at every K-th step the next K
    steps' currents are one product, written into the buffer just before the steps read them (in cache)."""
    K = current.shape[0]
    if t % K == 0:
        torch.matmul(x[t:t + K], w_in.t(), out=current[:min(K, x.shape[0] - t)])
        if bias is not None:
            current += bias
    return current[t % K]


def lif_step_into(v_out: torch.Tensor, z_out: torch.Tensor, current_t: torch.Tensor, v: torch.Tensor | None,
                  z: torch.Tensor | None, alpha: float, w_step: torch.Tensor | None, v_th: torch.Tensor) -> None:
    """The step of `lifcore.snn.lif` written into `v_out`, `z_out` (``[B, n]``, no allocation; `v_out` may be `v`)::

        v[t] = alpha v[t-1] + I[t] + z[t-1] (W^T - diag v_th)    (or - v_th z[t-1] without recurrence)
        z[t] = H(v[t] - v_th)

    `w_step` is ``W^T - diag(v_th)`` (`_with_reset`) or None; ``v = z = None`` is rest: ``v[0] = I[0]``.
    The one step of the fused BPTT (`LIFSequence`) and of e-prop's one pass (`lifcore.snn.eprop`): both
    call it, so the two paths round alike (`lif_step`, the autograd reference, is written for autograd)."""
    if v is None:
        v_out.copy_(current_t)
    else:
        torch.add(current_t, v, alpha=alpha, out=v_out)
        if w_step is not None:
            v_out.addmm_(z, w_step)
        else:
            v_out.addcmul_(v_th, z, value=-1.0)
    torch.gt(v_out, v_th, out=z_out)  # the Heaviside, as 0./1. in the input's dtype


SECOND_DERIVATIVE = ("the fused BPTT of LIFNetwork has its backward written by hand and cannot be differentiated again "
                     "(a double backward): use LIFNetwork.forward(x, path='autograd'), autograd through the unrolled "
                     "loop, for higher derivatives")


class LIFSequence(torch.autograd.Function):
    """``x [T, B, n_in], W_in, b, W^T, v_th, v0, z0 -> z, v`` (each ``[T, B, n]``), backward by hand."""

    @staticmethod
    def forward(ctx, x, w_in, bias, w_rec_t, v_th, v0, z0, alpha: float, surrogate: Surrogate, mode: str):
        ctx.set_materialize_grads(False)  # an unused output (often v) costs no [T, B, n] of zeros
        T, B, _ = x.shape
        n = w_in.shape[0]
        like = dict(dtype=x.dtype, device=x.device)
        v_all, z_all = torch.empty(T, B, n, **like), torch.empty(T, B, n, **like)
        w_step = _with_reset(w_rec_t, v_th) if w_rec_t is not None else None
        # I[t] = W_in x[t] + b, INPUT_CHUNK steps per product, just before the steps use it (in cache)
        current = buffer("bptt_current", (min(INPUT_CHUNK, T), B, n), **like)
        v, z = v0, z0  # None, None: from rest
        for t in range(T):
            lif_step_into(v_all[t], z_all[t], chunk_current(current, x, t, w_in, bias), v, z, alpha, w_step, v_th)
            v, z = v_all[t], z_all[t]
        ctx.save_for_backward(x, w_in, v_all, z_all, w_rec_t, w_step, v_th, z0)
        ctx.alpha, ctx.surrogate, ctx.mode = alpha, surrogate, mode
        return z_all, v_all

    @staticmethod
    def backward(ctx, grad_z, grad_v):
        with torch.no_grad():
            grads = LIFSequence._backward(ctx, grad_z, grad_v)
        if not torch.is_grad_enabled():
            return grads
        # create_graph=True: the first-order gradients as ever, and an error only if they are differentiated
        # again, as torch's once_differentiable does, with a message that says which path can
        refuse = torch._C._functions.DelayedError(SECOND_DERIVATIVE.encode(), len(grads))

        def flagged(g):
            if g is not None:
                g = g.detach()
                g.requires_grad = True
            return g

        return refuse(*[flagged(g) for g in grads])

    @staticmethod
    def _backward(ctx, grad_z, grad_v):
        x, w_in, v_all, z_all, w_rec_t, w_step, v_th, z0 = ctx.saved_tensors
        alpha, mode = ctx.alpha, ctx.mode
        T, B, n = v_all.shape
        like = dict(dtype=v_all.dtype, device=v_all.device)
        v_th = v_th.detach()
        # what dE/dz[t] receives from v[t+1]: [B, n] @ back, or -v_th * delta (no recurrence), or nothing
        if mode == "stop_z":
            back = None
        elif mode == "full":
            back = w_step.t() if w_step is not None else "reset"
        else:  # detach_reset: the recurrent path only
            back = w_rec_t.detach().t() if w_rec_t is not None else None
        psi_into = ctx.surrogate.into(v_th)
        delta_all = buffer("bptt_delta", (T, B, n), **like)  # dE/dv: used here only, so kept between calls
        zeta, psi = torch.empty(B, n, **like), torch.empty(B, n, **like)
        delta_next = None
        # step by step from the end, each view made when it is used: a list of all 4 T views at once set off
        # Python's garbage collector (gen 2, ~45 ms at T = 800) inside the call; these views make no cycles
        for t in range(T - 1, -1, -1):
            v_t, delta_t = v_all[t], delta_all[t]
            grad_z_t = grad_z[t] if grad_z is not None else None
            grad_v_t = grad_v[t] if grad_v is not None else None
            dz = grad_z_t  # zeta[t] = dE/dz[t] + what v[t+1] sends back
            if delta_next is not None and back is not None:
                if back == "reset":
                    dz = torch.addcmul(grad_z_t if grad_z_t is not None else zeta.zero_(), v_th, delta_next, value=-1.0, out=zeta)
                elif grad_z_t is None:
                    dz = torch.mm(delta_next, back, out=zeta)
                else:
                    dz = torch.addmm(grad_z_t, delta_next, back, out=zeta)
            if dz is None:
                delta_t.zero_()
            else:
                torch.mul(dz, psi_into(psi, v_t), out=delta_t)
            if delta_next is not None:
                delta_t.add_(delta_next, alpha=alpha)
            if grad_v_t is not None:
                delta_t.add_(grad_v_t)
            delta_next = delta_t
        needs = ctx.needs_input_grad
        grad_x = grad_w_in = grad_bias = grad_w = grad_th = grad_v0 = grad_z0 = None
        delta_flat = delta_all.reshape(-1, n)
        if needs[0]:
            grad_x = delta_all @ w_in
        if needs[1]:
            grad_w_in = delta_flat.t() @ x.reshape(-1, x.shape[-1])  # sum_t delta[t]^T x[t]: one product
        delta_sum = delta_flat.sum(0) if (needs[2] or needs[4]) else None
        if needs[2]:
            grad_bias = delta_sum
        if w_rec_t is not None and (needs[3] or needs[4]):
            # sum_t z[t-1]^T delta[t]: one product over all steps; its diagonal is the reset's sum_t,b z_j delta_j
            grad_w = z_all[:-1].reshape(-1, n).t() @ delta_all[1:].reshape(-1, n)
            if z0 is not None:
                grad_w.addmm_(z0.t(), delta_all[0])
        if needs[4]:
            if grad_w is not None:
                reset = grad_w.diagonal().clone()
            else:
                reset = (delta_all[1:] * z_all[:-1]).sum((0, 1))
                if z0 is not None:
                    reset += (delta_all[0] * z0).sum(0)
            # sum_t zeta psi = sum_t (delta[t] - alpha delta[t+1] - dE/dv[t]) = alpha delta[0] + (1 - alpha) sum_t delta[t] - ...
            spike = alpha * delta_all[0].sum(0) + (1.0 - alpha) * delta_sum
            if grad_v is not None:
                spike -= grad_v.sum((0, 1))
            grad_th = -(reset + spike)
        if grad_w is not None:
            grad_w.diagonal().zero_()  # W has no self-connections: the diagonal went to v_th
        if needs[5]:
            grad_v0 = alpha * delta_all[0]
        if needs[6]:
            grad_z0 = torch.zeros_like(z0)
            if back == "reset":
                grad_z0.addcmul_(v_th, delta_all[0], value=-1.0)
            elif back is not None:
                grad_z0.addmm_(delta_all[0], back)
        return (grad_x, grad_w_in, grad_bias, grad_w if needs[3] else None, grad_th, grad_v0, grad_z0,
                None, None, None)


MODES = ("full", "detach_reset", "stop_z")


def lif_sequence(x: torch.Tensor, w_in: torch.Tensor, bias: torch.Tensor | None, w_rec_t: torch.Tensor | None,
                 v_th: torch.Tensor, alpha: float, surrogate: Surrogate, v0: torch.Tensor | None = None,
                 z0: torch.Tensor | None = None, mode: str = "full"):
    """``z, v`` ``[T, B, n]`` of the LIF network driven by ``x`` ``[T, B, n_in]`` through
    ``I[t] = W_in x[t] + b`` (see module docstring), differentiable with the hand-written backward.
    `bias` may be None, `w_rec_t` (the transposed, diagonal-free W_rec) None for no recurrence;
    `v_th` is a ``[n]`` tensor; `v0` and `z0` (``[B, n]``, both or neither) start from a given
    state instead of rest. `mode`: "full", "detach_reset" or "stop_z" (what BPTT detaches)."""
    if (v0 is None) != (z0 is None):
        raise ValueError("v0 and z0 must be given together (a state) or both left out (start at rest)")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(map(repr, MODES))}")
    return LIFSequence.apply(x, w_in, bias, w_rec_t, v_th, v0, z0, alpha, surrogate, mode)

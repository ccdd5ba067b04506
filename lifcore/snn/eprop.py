"""e-prop (Bellec et al. 2020) for `LIFNetwork`: gradients forward in time, memory independent of T.

Seed 001, slides "RNN Gradients" to "The eligibility vector for LIF neurons". For the
LIF of `lifcore.snn.lif` the eligibility vector of synapse j <- i is a low-pass of the
*presynaptic* activity only,

    eps_ji[t] = alpha eps_ji[t-1] + z_i[t-1]     (recurrent; eps[0] = 0)
    eps_ji[t] = alpha eps_ji[t-1] + x_i[t]       (input;  eps[-1] = 0)
    e_ji[t]   = psi_j[t] eps_ji[t]
    grad W_ji = sum_t L_j[t] e_ji[t],   L_j[t] = dE/dz_j[t],

so it is kept as one trace per presynaptic neuron. Bias and threshold have traces of their
own: ``dv/db`` low-passes 1, ``dv/dv_th`` low-passes ``-z_j`` (the reset), and ``dz/dv_th = -psi``.

**One pass** (issue 17). The steps are taken in chunks of `chunk`; a chunk's ``L psi`` and
traces wait in ``[chunk, B, .]`` buffers and are summed by one product, so memory does not
grow with T. A loss whose signal is known at step t (a readout) sums ``(L psi)^T eps`` over
steps and samples at once. A loss whose signal needs the whole trajectory (a rate, a rate
variance) is *factorised*, ``L_bj[t] = sum_k a_k,bj f_k,bj[t]`` (`lifcore.snn.losses`): the
pass keeps, per sample, ``S_k,b = sum_t (f_k psi)_b[t]^T eps_b[t]`` (``[B, n, n_in + n]``, a
batched product per chunk) and contracts it with the coefficients ``a_k`` at the end:
``grad W_ji = sum_k sum_b a_k,bj S_k,bji``. Exactly the two-pass result (the same sums in
another order), in one run of the network; `passes=2` keeps the two-pass computation as the
reference (`tests/test_grad.py`).

When z is detached on both the recurrent and the reset path (``stop_z``), BPTT and e-prop
compute the same gradient; `tests/test_grad.py` runs that check.
"""
from __future__ import annotations

import torch

from .bptt import INPUT_CHUNK, _with_reset, chunk_current, lif_step_into
from .lif import LIFNetwork, LIFParameters, lif_step, zero_state
from .losses import SpikeLoss
from .workspace import buffer

# Steps per chunk. The chunk's buffers hold chunk x B x (2 n + n_in) numbers, the per-sample sums
# B x n x (n_in + n) whatever T; 50 steps keep the buffers at a third of the sums (n = n_in) and the
# per-sample products long enough to run near the speed of one large product.
DEFAULT_CHUNK = 50


def named_trainable(net: LIFNetwork) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in net.named_parameters() if p.requires_grad}


def eprop_gradients(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, *, passes: int = 1,
                    chunk: int = DEFAULT_CHUNK):
    """e-prop gradients of `loss`, forward in time, memory independent of T. Returns ``(grads, loss_value)``.

    `passes=1` (default): one run of the network, for every loss that is online or factorised
    (all of `lifcore.snn.losses` but a sum with a readout); other losses fall back to two.
    `passes=2`: the reference, a first run collects the trajectory's statistics, the second
    knows ``L[t]`` at every step. `chunk`: steps summed per product in the one-pass scheme.
    """
    if not isinstance(loss, SpikeLoss):
        raise ValueError(f"loss={loss!r} must be one of lifcore's spike losses (RateLoss, RateVarianceLoss, ReadoutLoss, or "
                         "their SumLoss): e-prop needs a loss's learning signal dE/dz[t], which a plain function does not "
                         "give; bptt_gradients differentiates any function of the spikes")
    net.check_input(x)
    if passes not in (1, 2):
        raise ValueError(f"passes={passes!r} must be 1 or 2")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be a positive integer (steps per product)")
    loss.begin(x.shape[0], (x.shape[1], net.n_neurons), x.device, x.dtype)
    if passes == 2 or (loss.needs_statistics and not loss.factorised):
        if loss.needs_statistics:
            _two_pass_step(net, x, loss, accumulate=False)
        grads = _two_pass_step(net, x, loss, accumulate=True)
    else:
        grads = _one_pass(net, x, loss, chunk)
    return {name: grads[name] for name in named_trainable(net)}, loss.value()


class _OnePass:
    """The state of one e-prop pass: the network's step, the eligibility traces of the current
    chunk, the learning signal times psi per factor, and the sums they are flushed into."""

    def __init__(self, net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, chunk: int):
        T, B, n_in = x.shape
        n = net.n_neurons
        self.net, self.x, self.loss, self.online = net, x, loss, not loss.needs_statistics
        self.n_in, self.n, self.alpha = n_in, n, net.alpha
        self.m = n_in + (n if net.recurrent else 0)  # presynaptic traces: [input | recurrent]
        self.like = like = dict(device=x.device, dtype=x.dtype)
        self.v_th = net.v_th.detach()
        self.w_step = _with_reset(net.parameters_for_step().w_rec_t, self.v_th) if net.recurrent else None
        trainable = named_trainable(net)
        self.learn_bias, self.learn_threshold = "bias" in trainable, "v_th" in trainable
        self.psi_into = net.surrogate.into(self.v_th)
        self.K = min(chunk, T)
        self.eps = buffer("eprop_traces", (self.K, B, self.m), **like)  # traces of the chunk's steps
        self.current = buffer("eprop_current", (min(INPUT_CHUNK, T), B, n), **like)
        self.v, self.z, self.z_prev = (torch.zeros(B, n, **like) for _ in range(3))
        self.trace_th = torch.zeros(B, n, **like)
        self.trace_th_minus_1 = torch.empty(B, n, **like)
        self.trace_bias = 0.0
        self.psi = torch.empty(B, n, **like)
        self.keys = None  # the factors' names, known at the first step

    def step(self, t: int) -> None:
        """The network's step t (`lif_step_into`, the step `lif_sequence` takes) and its traces."""
        x, alpha, k = self.x, self.alpha, t % self.K
        bias = self.net.bias.detach() if self.net.bias is not None else None
        current_t = chunk_current(self.current, x, t, self.net.w_in.detach(), bias)
        self.z, self.z_prev = self.z_prev, self.z  # z_prev <- z[t-1]; z's buffer takes z[t]
        rest = t == 0
        lif_step_into(self.v, self.z, current_t, None if rest else self.v, None if rest else self.z_prev, alpha,
                      self.w_step, self.v_th)
        # eps[t] = alpha eps[t-1] + [x[t] | z[t-1]], all evaluated at step t
        e, n_in = self.eps[k], self.n_in
        if t == 0:
            e[:, :n_in].copy_(x[0])
            e[:, n_in:].zero_()
        else:
            previous = self.eps[k - 1] if k > 0 else self.eps[self.K - 1]
            torch.add(x[t], previous[:, :n_in], alpha=alpha, out=e[:, :n_in])
            if self.net.recurrent:
                torch.add(self.z_prev, previous[:, n_in:], alpha=alpha, out=e[:, n_in:])
        self.trace_bias = alpha * self.trace_bias + 1.0
        if self.learn_threshold:
            self.trace_th.mul_(alpha).sub_(self.z_prev)
            torch.sub(self.trace_th, 1.0, out=self.trace_th_minus_1)

    def _allocate(self, keys) -> None:
        B, n, like = self.z.shape[0], self.n, self.like
        self.keys = keys
        self.P = {key: buffer(f"eprop_signal:{key}", (self.K, B, n), **like) for key in keys}
        self.S = {}
        shape = (n,) if self.online else (B, n)  # online: summed over samples at once
        self.S_bias = {key: torch.zeros(shape, **like) for key in keys}
        self.S_th = {key: torch.zeros(shape, **like) for key in keys}

    def signal(self, t: int) -> None:
        """``P_k[t] = f_k[t] psi[t]`` for every factor (the learning signal itself when online)."""
        loss, z = self.loss, self.z
        if self.online:
            factors = {"signal": loss.learning_signal(t, z)}
        else:
            loss.observe(t, z)
            factors = loss.signal_factors(t, z)
        if self.keys is None:
            self._allocate(list(factors))
            # psi goes straight into the buffer of the factor 1 (a loss's factors keep their kind)
            self.psi_key = next((key for key in self.keys if factors[key] is None), None)
        k = t % self.K
        psi = self.psi_into(self.P[self.psi_key][k] if self.psi_key else self.psi, self.v)
        for key in self.keys:
            f, p = factors[key], self.P[key][k]
            if f is not None:
                torch.mul(psi, f, out=p)
            elif key != self.psi_key:
                p.copy_(psi)
            if self.learn_bias:
                self.S_bias[key].add_(p.sum(0) if self.online else p, alpha=self.trace_bias)
            if self.learn_threshold:
                if self.online:
                    self.S_th[key].add_((p * self.trace_th_minus_1).sum(0))
                else:
                    self.S_th[key].addcmul_(p, self.trace_th_minus_1)

    def flush(self, steps: int, last: bool) -> None:
        """Sum the chunk's first `steps` steps: ``S_k += sum_t P_k[t]^T eps[t]``. The last chunk of a
        factorised loss, whose coefficients are known by then, goes straight into the gradient:
        ``sum_k sum_t (a_k P_k[t])^T eps[t]`` over steps and samples, one product."""
        n, m, eps = self.n, self.m, self.eps[:steps]
        if last and not self.online:
            coefficients = self.loss.signal_coefficients()
            signal = self.P[self.keys[0]][:steps].mul_(coefficients[self.keys[0]])  # L psi, written over P
            for key in self.keys[1:]:
                signal.addcmul_(self.P[key][:steps], coefficients[key])
            self.last = signal.reshape(-1, n).t() @ eps.reshape(-1, m)
            return
        for key in self.keys:
            P = self.P[key][:steps]
            if self.online:  # over steps and samples in one product
                if key not in self.S:
                    self.S[key] = torch.zeros(n, m, **self.like)
                self.S[key].addmm_(P.reshape(-1, n).t(), eps.reshape(-1, m))
            elif key in self.S:  # per sample: [B, n, steps] x [B, steps, m]
                self.S[key].baddbmm_(P.permute(1, 2, 0), eps.permute(1, 0, 2))
            else:
                self.S[key] = torch.bmm(P.permute(1, 2, 0), eps.permute(1, 0, 2),
                                        out=buffer(f"eprop_sums:{key}", (eps.shape[1], n, m), **self.like))

    def gradients(self) -> dict[str, torch.Tensor]:
        """The e-prop gradients: the sums themselves (online), or the last chunk's product plus the
        earlier chunks' per-sample sums contracted with the coefficients."""
        if self.online:
            weights, bias, threshold = self.S["signal"], self.S_bias["signal"], self.S_th["signal"]
        else:
            coefficients = self.loss.signal_coefficients()
            B, n = self.z.shape
            weights = self.last
            bias, threshold = torch.zeros(n, **self.like), torch.zeros(n, **self.like)
            for key in self.keys:  # grad W_ji += sum_k sum_b a_k,bj S_k,bji
                a = coefficients[key].expand(B, n)
                if key in self.S:
                    for a_b, S_b in zip(a.unbind(0), self.S[key].unbind(0)):  # B reads of [n, m]: faster than einsum's copy
                        weights.addcmul_(a_b[:, None], S_b)
                bias += (a * self.S_bias[key]).sum(0)
                threshold += (a * self.S_th[key]).sum(0)
        grads = {"w_in": weights[:, :self.n_in].contiguous()}
        if self.net.recurrent:
            grads["w_rec"] = weights[:, self.n_in:] * self.net.off_diagonal
        if self.learn_bias:
            grads["bias"] = bias
        if self.learn_threshold:
            grads["v_th"] = threshold
        return grads


@torch.no_grad()
def _one_pass(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, chunk: int) -> dict[str, torch.Tensor]:
    run = _OnePass(net, x, loss, chunk)
    T = x.shape[0]
    for t in range(T):
        run.step(t)
        run.signal(t)
        if t % run.K == run.K - 1 or t == T - 1:
            run.flush(t % run.K + 1, last=t == T - 1)
    return run.gradients()


@torch.no_grad()
def _two_pass_step(net: LIFNetwork, x: torch.Tensor, loss: SpikeLoss, accumulate: bool):
    """One forward pass in time; with `accumulate`, the e-prop gradient sums (memory O(B n + n^2)).
    The reference of the one-pass scheme: it asks the loss for ``L[t]`` step by step."""
    params: LIFParameters = net.parameters_for_step()
    T, B, _ = x.shape
    state = zero_state(B, net.n_neurons, device=x.device, dtype=x.dtype)
    learn_threshold = "v_th" in named_trainable(net)
    learn_bias = "bias" in named_trainable(net)
    if accumulate:
        grad_in = torch.zeros_like(net.w_in)
        grad_rec = torch.zeros_like(net.w_rec) if net.recurrent else None
        grad_bias = torch.zeros_like(net.bias) if learn_bias else None
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

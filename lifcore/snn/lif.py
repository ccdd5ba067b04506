"""The discrete-time LIF network of seed 001 (slide "Leaky integrate and fire neurons").

Reset by subtraction, no self-connections, time-major ``[T, B, n]`` tensors::

    v_j[t+1] = alpha v_j[t] + sum_{i != j} W_rec[j,i] z_i[t] + sum_i W_in[j,i] x_i[t+1] + b_j - v_th_j z_j[t]
    z_j[t]   = H(v_j[t] - v_th_j)

From a zero state, ``v[0] = W_in x[0] + b``. ``alpha = exp(-dt / tau_m)``.

Shape (as in Norse): a pure functional step ``lif_step(state, current, params) ->
(state, z)``, a loop ``lif_forward`` around it, and a thin ``nn.Module``,
``LIFNetwork``, that holds the parameters. The input projection ``W_in x + b`` is
computed for all steps at once; only the recurrent product stays in the time loop.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .. import memory
from ..arguments import integer
from ..device import resolve_device
from .bptt import lif_sequence
from .surrogate import Surrogate, get_surrogate, spike
from .transfer import check_alpha, check_v_th

PATHS = ("fused", "autograd")


class LIFState(NamedTuple):
    """Membrane potential ``v`` and spikes ``z`` of the last step, each ``[B, n]``."""

    v: torch.Tensor
    z: torch.Tensor


class LIFParameters(NamedTuple):
    """What one step needs. ``w_rec_t`` is the *transposed*, diagonal-free W_rec (or None)."""

    alpha: float
    v_th: torch.Tensor | float
    w_rec_t: torch.Tensor | None
    surrogate: Surrogate


def zero_state(batch: int, n: int, *, device=None, dtype=torch.float32) -> LIFState:
    v = torch.zeros(batch, n, device=device, dtype=dtype)
    return LIFState(v, torch.zeros_like(v))


def lif_step(state: LIFState, current: torch.Tensor, params: LIFParameters, *,
             detach_reset: bool = False, stop_z: bool = False) -> tuple[LIFState, torch.Tensor]:
    """One step: ``(v[t], z[t]), I[t+1] -> (v[t+1], z[t+1])``.

    `current` is ``W_in x[t+1] + b``. ``detach_reset`` stops the gradient through the
    reset term ``v_th z[t]``; ``stop_z`` stops it through z on both the reset and the
    recurrent path (``stop_z_gradients`` of Bellec et al.'s code: then BPTT equals e-prop).
    """
    z_rec = state.z.detach() if stop_z else state.z
    z_reset = state.z.detach() if (stop_z or detach_reset) else state.z
    # fused: alpha v + I - v_th z (+ z W_rec^T), four kernels in all
    v = torch.add(current, state.v, alpha=params.alpha)
    v = torch.addcmul(v, params.v_th, z_reset, value=-1.0) if torch.is_tensor(params.v_th) else v - params.v_th * z_reset
    if params.w_rec_t is not None:
        v = torch.addmm(v, z_rec, params.w_rec_t)
    z = spike(v - params.v_th, params.v_th, params.surrogate)
    return LIFState(v, z), z


def lif_forward(current: torch.Tensor, params: LIFParameters, state: LIFState | None = None, *,
                detach_reset: bool = False, stop_z: bool = False):
    """Run `lif_step` over ``current`` ``[T, B, n]``; return ``z, v`` (``[T, B, n]``) and the last state."""
    if state is None:
        state = zero_state(current.shape[1], current.shape[2], device=current.device, dtype=current.dtype)
    zs, vs = [], []
    # unbind, not current[t]: indexing makes the backward about 2.5x slower (issue 2).
    for current_t in current.unbind(0):
        state, z = lif_step(state, current_t, params, detach_reset=detach_reset, stop_z=stop_z)
        zs.append(z)
        vs.append(state.v)
    return torch.stack(zs), torch.stack(vs), state


class LIFNetwork(nn.Module):
    """A recurrent (or feed-forward) layer of LIF neurons that feels like a torch layer.

    >>> net = LIFNetwork(n_in=50, n_neurons=100, alpha=0.95)
    >>> z, v = net(torch.rand(200, 8, 50))      # x: [T, B, n_in] -> z, v: [T, B, n_neurons]

    Parameters: ``w_in`` ``[n_neurons, n_in]``; ``w_rec`` ``[n_neurons, n_neurons]`` (None when
    ``recurrent=False``) whose diagonal is held at zero, also under training (the
    forward pass uses ``w_rec * (1 - I)``, so the diagonal never gets a gradient);
    optional ``bias`` ``[n_neurons]`` (``learn_bias``) and a per-neuron learnable
    threshold ``v_th`` (``learn_threshold``). `input_norm`: every row of ``w_in`` is held at this
    norm (`project_`; None, the default: free); it then sets the rows' size, and `w_in_scale` only their start.
    """

    def __init__(self, n_in: int, n_neurons: int, alpha: float = 0.95, v_th: float = 1.0, recurrent: bool = True,
                 surrogate: str | Surrogate = "bellec", *, learn_bias: bool = False, learn_threshold: bool = False,
                 w_in_scale: float = 1.0, w_rec_scale: float = 1.0, input_norm: float | None = None,
                 device: str | torch.device | None = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        n_in, n_neurons = integer("n_in", n_in), integer("n_neurons", n_neurons)
        self.alpha = check_alpha(alpha)
        check_v_th(v_th)
        self.surrogate = get_surrogate(surrogate)
        dev = resolve_device(device)
        # the weights, their gradients and an optimiser's state: three copies of n (n_in + 2 n) numbers
        memory.require(3 * n_neurons * (n_in + 2 * n_neurons) * memory.itemsize(dtype),
                       f"a network of {n_neurons} neurons with {n_in} inputs", "n_neurons or n_in", dev)
        self.n_in, self.n_neurons, self.recurrent = n_in, n_neurons, bool(recurrent)
        factory = dict(device=dev, dtype=dtype)
        self.w_in = nn.Parameter(torch.randn(n_neurons, n_in, **factory) * (w_in_scale / math.sqrt(n_in)))
        if self.recurrent:
            off_diagonal = 1.0 - torch.eye(n_neurons, **factory)
            self.register_buffer("off_diagonal", off_diagonal)
            self.w_rec = nn.Parameter(torch.randn(n_neurons, n_neurons, **factory) * (w_rec_scale / math.sqrt(n_neurons)) * off_diagonal)
        else:
            self.register_buffer("off_diagonal", None)
            self.w_rec = None
        if input_norm is not None and (isinstance(input_norm, bool) or not isinstance(input_norm, (int, float))
                                       or not 0 < input_norm < math.inf):
            raise ValueError(f"input_norm={input_norm!r} must be a finite number > 0 (the norm of every row of w_in) or None")
        self.input_norm = None if input_norm is None else float(input_norm)
        self.project_()
        self.bias = nn.Parameter(torch.zeros(n_neurons, **factory)) if learn_bias else None
        v_th_tensor = torch.full((n_neurons,), float(v_th), **factory)
        if learn_threshold:
            self.v_th = nn.Parameter(v_th_tensor)
        else:
            self.register_buffer("v_th", v_th_tensor)

    @torch.no_grad()
    def project_(self) -> None:
        """With `input_norm`: every row of ``w_in`` back to that norm (`fit` calls it after each step), so
        that a neuron's input filter keeps its size and only its shape, bias and threshold learn; else nothing."""
        if self.input_norm is not None:
            self.w_in.mul_(self.input_norm / self.w_in.norm(dim=1, keepdim=True).clamp_min(1e-30))

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        """``W_in x[t] + b`` for every step at once: one ``[T*B, n_in] x [n_in, n_neurons]`` product."""
        self.check_input(x)
        current = x @ self.w_in.t()
        return current if self.bias is None else current + self.bias

    def check_input(self, x: torch.Tensor) -> None:
        """`x` must be a finite ``[T, B, n_in]`` tensor with T, B >= 1, of the network's dtype and
        device: a NaN would silently give zero spikes (``NaN > v_th`` is False) beside NaN potentials."""
        if not torch.is_tensor(x) or x.dim() != 3 or x.shape[-1] != self.n_in:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must be a [T, B, n_in={self.n_in}] tensor; got {shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x must have at least one time step and one sample (T, B >= 1); got shape {tuple(x.shape)}")
        if x.dtype != self.w_in.dtype:
            rebuild = f" or build the network with dtype={x.dtype}" if x.dtype in (torch.float32, torch.float64) else ""
            raise ValueError(f"x has dtype {x.dtype} but the network is {self.w_in.dtype}: convert the input "
                             f"(x.to({self.w_in.dtype})){rebuild}")
        if x.device != self.w_in.device:
            raise ValueError(f"x is on {x.device} but the network is on {self.w_in.device}")
        steps, batch = x.shape[:2]  # the input current, z, v and what BPTT keeps: four [T, B, n] tensors
        memory.require(4 * steps * batch * self.n_neurons * x.element_size(),
                       f"a sequence of T = {steps} steps x B = {batch} samples x {self.n_neurons} neurons",
                       "T, the batch or n_neurons", x.device)
        # a finite sum means finite entries (NaN and Inf propagate); only an overflowing sum of
        # large finite values needs the elementwise check (7 ms for a [100, 128, 300] input)
        if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
            raise ValueError("x holds NaN or Inf values: the network's input must be finite")

    def parameters_for_step(self) -> LIFParameters:
        w_rec_t = (self.w_rec * self.off_diagonal).t() if self.recurrent else None
        return LIFParameters(self.alpha, self.v_th, w_rec_t, self.surrogate)

    def forward(self, x: torch.Tensor, state: LIFState | None = None, *, detach_reset: bool = False,
                stop_z: bool = False, path: str = "fused"):
        """``x`` ``[T, B, n_in]`` -> ``z, v`` ``[T, B, n_neurons]``, from a zero state unless `state` is given.

        `path` is how BPTT differentiates the sequence: "fused" (default), one autograd node with
        the backward written out (`lifcore.snn.bptt`, about 1.4x faster on a CPU); "autograd",
        autograd through `lif_step`, the reference the fused path is tested against.
        """
        if path not in PATHS:
            raise ValueError(f"path={path!r} is unknown; allowed: {', '.join(map(repr, PATHS))}")
        if path == "autograd":
            z, v, _ = lif_forward(self.input_current(x), self.parameters_for_step(), state,
                                  detach_reset=detach_reset, stop_z=stop_z)
            return z, v
        self.check_input(x)
        mode = "stop_z" if stop_z else "detach_reset" if detach_reset else "full"
        v0, z0 = (state.v, state.z) if state is not None else (None, None)
        return lif_sequence(x, self.w_in, self.bias, self.parameters_for_step().w_rec_t, self.v_th, self.alpha,
                            self.surrogate, v0, z0, mode)

    def extra_repr(self) -> str:
        return (f"n_in={self.n_in}, n_neurons={self.n_neurons}, alpha={self.alpha}, recurrent={self.recurrent}, "
                + (f"input_norm={self.input_norm}, " if self.input_norm is not None else "")
                + f"surrogate={self.surrogate.name!r}, learn_bias={self.bias is not None}, "
                f"learn_threshold={isinstance(self.v_th, nn.Parameter)}")


def simulated_rate(current: torch.Tensor, alpha: float, v_th: float | torch.Tensor = 1.0, steps: int = 2000,
                   warmup: int = 200) -> torch.Tensor:
    """Spike count / steps of uncoupled LIF neurons of `lifcore.snn.lif` driven by each constant current.
    `v_th` is one threshold, or a tensor of one per current (a trained network's thresholds)."""
    alpha = check_alpha(alpha)
    check_v_th(v_th)
    steps, warmup = integer("steps", steps), integer("warmup", warmup, low=0)
    current = torch.as_tensor(current, dtype=torch.float64).flatten()
    if torch.is_tensor(v_th):
        v_th = v_th.detach().to(current.device, torch.float64).flatten()
        if not bool(torch.isfinite(v_th).all()):
            raise ValueError("v_th holds NaN or Inf values: every threshold must be a finite number > 0")
        if v_th.numel() == 1:
            v_th = float(v_th)
        elif v_th.numel() != current.numel():
            raise ValueError(f"v_th has {v_th.numel()} thresholds for {current.numel()} currents: give one, or one per current")
    else:
        v_th = float(v_th)
    memory.require(3 * (warmup + steps) * current.numel() * 8, f"simulating {current.numel()} neurons for {warmup + steps} steps",
                   "steps (fi_steps) or the number of currents (fi_points)")
    drive = current.expand(warmup + steps, 1, current.numel())
    params = LIFParameters(alpha, v_th, None, get_surrogate("bellec"))
    with torch.no_grad():
        z, _, _ = lif_forward(drive, params)
    return z[warmup:].mean(dim=(0, 1))

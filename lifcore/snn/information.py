"""What a spiking population's spike counts tell about its input, and a loss that trains a network on it.

Seed 001, "Training a dynamical system by using multivariate information": a network of neurons is a
channel that learns its transformation from the statistics of its input. The information is that of the
linear-Gaussian channel of seed 000 (`lifcore.coding.info`), measured on spike counts instead of computed
from a model. A batch holds P patches, each presented R times (sample ``b = p R + k``, patch-major): in
presentation k of patch p, neuron j fires ``c_pkj`` spikes in T steps, its rate ``r_pkj = c_pkj / T``
(spikes per step). To second order the rates are a signal, their mean over presentations, plus noise::

    Sigma_r = Cov[r]          + s_out^2 I     response covariance, of one presentation of a random patch
    Sigma_n = E_p Cov_k[r | p] + s_out^2 I     noise covariance, the spread across presentations of a patch
    I(X; R) = 1/2 [logdet Sigma_r - logdet Sigma_n]                     nats (bits: / ln 2)

``s_out`` (`output_noise`, spikes per step) is a readout noise added to both, as seed 000's output noise:
it keeps both matrices positive definite when a neuron is silent or fires the same count at every
presentation, and bounds what one neuron can carry. Both covariances are unbiased: the noise from the
within-patch scatter over ``P (R - 1)`` degrees of freedom, ``W``; the response from the patch means ``m_p``
as in a one-way analysis of variance, ``Sigma_r = Cov_p[m_p] + (1 - 1/R) W`` (the presentations of one
patch are correlated, so the covariance of all ``P R`` rates over ``P R - 1`` would fall short of the signal
by a factor ``R (P - 1) / (P R - 1)``); log-determinants by Cholesky (`lifcore.coding.info.logdet_spd`).
For a population whose rates are Gaussian, ``r = A s_p + n``, this is the exact
``1/2 logdet(I + (Sigma + s_out^2 I)^-1 A C A^T)`` (tests/test_count_information.py).

`InformationLoss` is ``-I`` plus the per-neuron rate constraint of the Lagrange method
(`lifcore.constraints.lagrange`) on the same counts. Its learning signal is ``dE/dz_bj[t] = (dE/dr_bj) / T``,
the same at every step and known at the end of the presentation: a factorised signal
(`lifcore.snn.losses`), so e-prop computes it in one pass with memory flat in T.
"""
from __future__ import annotations

import math

import torch

from ..arguments import integer
from ..coding.info import NATS_PER_BIT, StreamingCovariance, logdet_spd
from .losses import CountLoss


def check_rates(rates: torch.Tensor, repeats: int) -> tuple[int, int]:
    """`rates` ``[P R, n]`` (patch-major) with `repeats` R >= 2; returns ``(P, R)`` or names what is wrong."""
    repeats = integer("repeats", repeats, low=2)
    if not torch.is_tensor(rates) or rates.dim() != 2 or not rates.is_floating_point():
        shape = tuple(rates.shape) if torch.is_tensor(rates) else type(rates).__name__
        raise ValueError(f"rates must be a float tensor [P * repeats, n_neurons] (presentations x neurons); got {shape}")
    if rates.shape[0] % repeats or rates.shape[0] // repeats < 2:
        raise ValueError(f"rates has {rates.shape[0]} presentations: it must hold P >= 2 patches x repeats = {repeats} "
                         "presentations each (sample b = p * repeats + k)")
    return rates.shape[0] // repeats, repeats


def count_covariances(rates: torch.Tensor, repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Sigma_r, Sigma_n)`` ``[n, n]`` each, unbiased (module docstring), without the readout noise (differentiable)."""
    P, R = check_rates(rates, repeats)
    grouped = rates.reshape(P, R, -1)
    means = grouped.mean(1)
    within = (grouped - means[:, None]).reshape(P * R, -1)
    noise = within.t() @ within / (P * (R - 1))
    centred = means - means.mean(0)
    return centred.t() @ centred / (P - 1) + (1 - 1 / R) * noise, noise


def _with_readout(response: torch.Tensor, noise: torch.Tensor, output_noise: float) -> torch.Tensor:
    eye = torch.eye(response.shape[-1], dtype=response.dtype, device=response.device) * output_noise**2
    return 0.5 * (logdet_spd(response + eye, name="the response covariance Sigma_r of the counts")
                  - logdet_spd(noise + eye, name="the noise covariance Sigma_n of the counts"))


def check_output_noise(output_noise: float) -> float:
    if isinstance(output_noise, bool) or not isinstance(output_noise, (int, float)) or not 0 < output_noise < math.inf:
        raise ValueError(f"output_noise={output_noise!r} must be a finite number > 0 (the readout noise s_out, "
                         "spikes per step: it keeps the covariances positive definite)")
    return float(output_noise)


def count_information(rates: torch.Tensor, repeats: int, output_noise: float) -> torch.Tensor:
    """``I(X; R)`` in nats of one batch of rates ``[P R, n]`` (see the module docstring), in float64,
    differentiable with respect to `rates`."""
    output_noise = check_output_noise(output_noise)
    response, noise = count_covariances(rates.double(), repeats)
    return _with_readout(response, noise, output_noise)


class StreamingCountInformation:
    """The held-out information of many batches: both covariances accumulated in float64 over every
    presentation (`lifcore.coding.info.StreamingCovariance`), the log-determinants taken once."""

    def __init__(self, n_neurons: int, repeats: int, output_noise: float, device=None):
        self.n, self.repeats = integer("n_neurons", n_neurons), integer("repeats", repeats, low=2)
        self.output_noise = check_output_noise(output_noise)
        self.means = StreamingCovariance(self.n, device)  # of the patches' mean rates
        self.scatter = torch.zeros(self.n, self.n, dtype=torch.float64, device=device)
        self.patches = 0

    def update(self, rates: torch.Tensor) -> "StreamingCountInformation":
        P, R = check_rates(rates, self.repeats)
        if rates.shape[1] != self.n:
            raise ValueError(f"rates has {rates.shape[1]} neurons; this estimator counts {self.n}")
        rates = rates.detach().to(self.scatter.device, torch.float64)
        grouped = rates.reshape(P, R, -1)
        self.means.update(grouped.mean(1))
        within = (grouped - grouped.mean(1, keepdim=True)).reshape(P * R, -1)
        self.scatter += within.t() @ within
        self.patches += P
        return self

    def covariances(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.patches < 2:
            raise ValueError("no batch yet: update the estimator with at least one batch of rates")
        noise = self.scatter / (self.patches * (self.repeats - 1))
        return self.means.covariance() + (1 - 1 / self.repeats) * noise, noise

    def information(self) -> float:
        """``I(X; R)`` in nats over every presentation seen so far."""
        return float(_with_readout(*self.covariances(), self.output_noise))

    def information_bits(self) -> float:
        return self.information() / NATS_PER_BIT


def noisy_presentations(patches: torch.Tensor, repeats: int, steps: int, input_noise: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The input ``x`` ``[T, P R, D]`` of `patches` ``[P, D]``: each patch held for T = `steps` steps and
    presented `repeats` times, ``x[t, p R + k] = x_p + s_in xi`` with fresh ``xi ~ N(0, I)`` at every step
    (`input_noise` s_in, patch units), so that two presentations of one patch differ."""
    repeats, steps = integer("repeats", repeats, low=2), integer("steps", steps)
    if not torch.is_tensor(patches) or patches.dim() != 2 or not patches.is_floating_point():
        shape = tuple(patches.shape) if torch.is_tensor(patches) else type(patches).__name__
        raise ValueError(f"patches must be a float tensor [P, D]; got {shape}")
    if isinstance(input_noise, bool) or not isinstance(input_noise, (int, float)) or not 0 <= input_noise < math.inf:
        raise ValueError(f"input_noise={input_noise!r} must be a finite number >= 0 (patch units)")
    from .. import memory  # the [T, P R, D] noise, drawn, moved and added: three of them
    memory.require(3 * steps * patches.shape[0] * repeats * patches.shape[1] * patches.element_size(),
                   f"{steps} steps x {patches.shape[0]} patches x {repeats} presentations of {patches.shape[1]} inputs",
                   "the steps, the batch or the repeats", patches.device)
    held = patches.repeat_interleave(repeats, 0).expand(steps, -1, -1)
    drawn_on = generator.device if generator is not None else patches.device  # where the generator draws
    noise = torch.randn(held.shape, generator=generator, dtype=patches.dtype, device=drawn_on).to(patches.device)
    return held + input_noise * noise


class InformationLoss(CountLoss):
    """``E = -I(X; R) + sum_j lambda_j h_j + rho/2 sum_j h^A_j h^B_j`` on the rates ``r_bj = (1/T) sum_t z_bj[t]``.

    ``I`` is `count_information` (nats) of the batch, whose samples are P patches x `repeats`
    presentations (patch-major); ``h_j = mean_b r_bj / r0 - 1`` is neuron j's rate error relative to the
    target `r0` (spikes per step), so that one `multiplier_lr` serves any r0. The augmented term of the
    Lagrange method (`lifcore.constraints.lagrange.augmented_lagrangian`, ``rho/2 h^2``) is taken from the
    errors ``h^A``, ``h^B`` of the two halves of the batch's patches: an unbiased ``rho/2 (E h)^2``. The
    whole batch's ``h^2`` would add its sampling variance, ``rho Var_p(r_j) / (2 P r0^2)``: a penalty on how
    much each neuron's rate varies across patches, the very signal I counts (at rho = 1000 and P = 64 it
    outweighs I, and long runs lose what they learned). The multipliers lambda
    start at zero and ascend after every optimiser step, ``lambda += multiplier_lr * h`` with h from
    the step's own evaluation (the project's Lagrange variant, `lifcore.constraints.lagrange`: `after_step`).

    Learning signal: ``L_bj[t] = (dE/dr_bj) / T`` at every t (``dE/dr`` by autograd on the ``[B, n]``
    rates at the end of the presentation): factorised with the single factor 1.
    """

    def __init__(self, repeats: int, r0: float, output_noise: float = 0.01, rho: float = 1.0,
                 multiplier_lr: float = 1.0):
        self.repeats = integer("repeats", repeats, low=2)
        if isinstance(r0, bool) or not isinstance(r0, (int, float)) or not 0 < r0 < 1:
            raise ValueError(f"r0={r0!r} must be a rate in (0, 1) spikes per step")
        self.output_noise = check_output_noise(output_noise)
        for name, value, low in (("rho", rho, 0.0), ("multiplier_lr", multiplier_lr, 0.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < math.inf:
                raise ValueError(f"{name}={value!r} must be a finite number >= {low:g}")
        self.r0, self.rho, self.multiplier_lr = float(r0), float(rho), float(multiplier_lr)
        self.multiplier: torch.Tensor | None = None  # [n], made at the first batch
        self.error: torch.Tensor | None = None       # h of the last evaluation
        self.last_information: float | None = None

    def _energy(self, rates: torch.Tensor) -> torch.Tensor:
        """E of the rates ``[B, n]``; keeps I and h of this evaluation for `after_step` and the records."""
        check_rates(rates, self.repeats)
        if self.multiplier is None or self.multiplier.shape[0] != rates.shape[1]:
            self.multiplier = torch.zeros(rates.shape[1], dtype=torch.float64, device=rates.device)
        information = count_information(rates, self.repeats, self.output_noise)
        rates64 = rates.double()
        error = rates64.mean(0) / self.r0 - 1.0
        self.error, self.last_information = error.detach(), float(information.detach())
        # rho/2 h_A h_B from two halves of the batch's patches: its expectation is rho/2 (E h)^2, where rho/2 h^2
        # of the whole batch adds rho Var_p(r_j) / (2 P r0^2), a penalty on each neuron's spread across patches
        # (the signal), larger than I itself at the chapter's rho = 1000 and P = 64
        half = (rates.shape[0] // self.repeats // 2) * self.repeats
        error_a, error_b = rates64[:half].mean(0) / self.r0 - 1.0, rates64[half:].mean(0) / self.r0 - 1.0
        return -information + (self.multiplier * error).sum() + 0.5 * self.rho * (error_a * error_b).sum()

    def __call__(self, z):
        return self._energy(z.sum(0) / z.shape[0]).to(z.dtype)

    def begin(self, T, z_shape, device=None, dtype=torch.float32):
        if z_shape[0] % self.repeats or z_shape[0] // self.repeats < 2:
            raise ValueError(f"a batch of {z_shape[0]} samples: InformationLoss needs P >= 2 patches x repeats = "
                             f"{self.repeats} presentations (noisy_presentations makes such a batch)")
        super().begin(T, z_shape, device, dtype)
        self._coefficient = None

    def signal_coefficients(self):
        """``{"one": dE/dr / T}`` ``[B, n]``, from the counts of the whole presentation."""
        if self._coefficient is None:
            with torch.enable_grad():
                rates = (self.count / self.T).double().requires_grad_(True)
                self._value = self._energy(rates)
                (grad,) = torch.autograd.grad(self._value, rates)
            self._coefficient = (grad / self.T).to(self.count.dtype)
        return {"one": self._coefficient}

    def value(self):
        self.signal_coefficients()
        return self._value.detach().to(self.count.dtype)

    def after_step(self) -> None:
        """The multipliers' dual ascent, ``lambda += multiplier_lr * h`` (h of the step's own evaluation)."""
        if self.error is not None:
            self.multiplier += self.multiplier_lr * self.error
            self.error = None  # one ascent per evaluation

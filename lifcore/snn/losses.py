"""Losses on spike trains ``z`` ``[T, B, n]``, each with its exact learning signal ``L = dE/dz``.

Every loss can be evaluated two ways, and the tests check that they agree:

* ``loss(z)``: the value on a whole trajectory, differentiable (BPTT uses this);
* streamed, as e-prop needs it: ``begin`` once, ``observe(t, z_t)`` for every step
  (only when ``needs_statistics``: the running sums the signal depends on), then
  ``learning_signal(t, z_t)`` for every step of a second pass. Memory is independent of T;
* factorised, for e-prop in one pass (issue 17): a loss whose signal needs the whole
  trajectory writes it as ``L_bj[t] = sum_k a_k,bj f_k,bj[t]``, factors ``f_k[t]`` known at
  step t (`signal_factors`, None for the factor 1) and coefficients ``a_k`` known at the end
  (`signal_coefficients`). e-prop then keeps, per sample, ``sum_t f_k psi eps`` and contracts
  it with ``a_k`` once the pass is over.

``L_j[t]`` is the *partial* derivative of E with respect to ``z_j[t]`` (seed 001,
slide "Deriving e-prop from BPTT").
"""
from __future__ import annotations

import torch


class SpikeLoss:
    """Interface of a loss on spikes (see module docstring)."""

    needs_statistics = False

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def begin(self, T: int, z_shape: tuple[int, int], device=None, dtype=torch.float32) -> None:
        self.T = T

    def observe(self, t: int, z_t: torch.Tensor) -> None:
        pass

    def learning_signal(self, t: int, z_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def value(self) -> torch.Tensor:
        """The loss value from the statistics collected by `observe`."""
        raise NotImplementedError

    def signal_factors(self, t: int, z_t: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """The step-t factors ``f_k[t]`` (``[B, n]``, ``[B, 1]``, or None for 1) of a factorised signal."""
        raise NotImplementedError

    def signal_coefficients(self) -> dict[str, torch.Tensor]:
        """The coefficients ``a_k`` (``[B, n]`` or ``[B, 1]``), once every step was observed."""
        raise NotImplementedError

    def after_step(self) -> None:
        """What the loss does after each optimiser step (`InformationLoss`: its multipliers' dual ascent); nothing here."""

    @property
    def factorised(self) -> bool:
        """Whether this loss writes its learning signal as ``sum_k a_k f_k[t]`` (see module docstring)."""
        return type(self).signal_factors is not SpikeLoss.signal_factors

    def learning_signal_of(self, z: torch.Tensor) -> torch.Tensor:
        """``dE/dz`` for a whole trajectory through the streamed path (for checks and figures)."""
        self.begin(z.shape[0], tuple(z.shape[1:]), z.device, z.dtype)
        if self.needs_statistics:
            for t, z_t in enumerate(z.unbind(0)):
                self.observe(t, z_t)
        return torch.stack([self.learning_signal(t, z_t) for t, z_t in enumerate(z.unbind(0))])


class CountLoss(SpikeLoss):
    """A loss of the spike counts ``c_bj = sum_t z_bj[t]`` alone: its learning signal ``dE/dc_bj`` is the same
    at every step and known once the counts are, a factorised signal with the single factor 1. A subclass
    defines `__call__`, `signal_coefficients` (``{"one": dE/dc}`` from ``self.count``) and `value`."""

    needs_statistics = True

    def begin(self, T, z_shape, device=None, dtype=torch.float32):
        super().begin(T, z_shape, device, dtype)
        self.count = torch.zeros(z_shape, device=device, dtype=dtype)

    def observe(self, t, z_t):
        self.count += z_t

    def signal_factors(self, t, z_t):
        return {"one": None}

    def learning_signal(self, t, z_t):  # the same at every step: the counts were observed in the first pass
        return self.signal_coefficients()["one"]


class RateLoss(CountLoss):
    """Seed 001, slide "RNN Gradients": ``E = rate_weight * mean_b sum_j (r_bj - r0)^2``,
    ``r_bj = (1/T) sum_t z_bj[t]`` (spikes per step); the slide's ``alpha`` is `rate_weight`.

    Learning signal: ``L_bj[t] = 2 rate_weight (r_bj - r0) / (T B)``, constant in t.
    """

    def __init__(self, r0: float, rate_weight: float = 1.0):
        if not (0.0 <= r0 <= 1.0):
            raise ValueError(f"r0={r0!r} must be a rate in [0, 1] spikes per step")
        self.r0, self.rate_weight = float(r0), float(rate_weight)

    def __call__(self, z):
        rate = z.sum(0) / z.shape[0]  # not z.mean(0): its backward writes a [T, B, n] tensor, sum's is a view
        return self.rate_weight * ((rate - self.r0) ** 2).sum(-1).mean()

    def value(self):
        return self.rate_weight * ((self.count / self.T - self.r0) ** 2).sum(-1).mean()

    def signal_coefficients(self):  # L[t] = a, the same at every step
        B = self.count.shape[0]
        return {"one": (2.0 * self.rate_weight / (self.T * B)) * (self.count / self.T - self.r0)}


class RateVarianceLoss(SpikeLoss):
    """Seed 001, slide "Constraining the global firing rate distribution":

        E = rate_weight * mean_b (sigma_b - sigma_r)^2,   sigma_b = (1/T) sum_t (n_b[t] - mu_b)^2,
        n_b[t] = (1/N) sum_j z_bj[t] (population rate),  mu_b = (1/T) sum_t n_b[t].

    (`rate_weight` is the slide's beta.) Exact learning signal (the slide's "± beta (sigma - sigma_r)(r - mu_r)", constants included):

        L_bj[t] = dE/dz_bj[t] = 4 rate_weight / (B T N) * (sigma_b - sigma_r) * (n_b[t] - mu_b)

    (the mu-dependence of sigma drops out because sum_t (n[t] - mu) = 0). The sign of
    ``n_b[t] - mu_b`` is the "push-pull": above-mean steps are pushed down when sigma is too large.
    """

    needs_statistics = True

    def __init__(self, sigma_r: float, rate_weight: float = 1.0):
        if sigma_r < 0:
            raise ValueError(f"sigma_r={sigma_r!r} must be >= 0 (a variance)")
        self.sigma_r, self.rate_weight = float(sigma_r), float(rate_weight)

    @staticmethod
    def population_rate(z):
        return z.mean(-1)

    def __call__(self, z):
        n = self.population_rate(z)  # [T, B]
        sigma = ((n - n.mean(0)) ** 2).mean(0)
        return self.rate_weight * ((sigma - self.sigma_r) ** 2).mean()

    def begin(self, T, z_shape, device=None, dtype=torch.float32):
        super().begin(T, z_shape, device, dtype)
        self.N = z_shape[-1]
        # Welford's running mean and sum of squared deviations of n_b[t], per batch element.
        self.mean = torch.zeros(z_shape[0], device=device, dtype=dtype)
        self.m2 = torch.zeros_like(self.mean)

    def observe(self, t, z_t):
        n = self.population_rate(z_t)
        delta = n - self.mean
        self.mean += delta / (t + 1)
        self.m2 += delta * (n - self.mean)

    def sigma(self):
        return self.m2 / self.T

    def learning_signal(self, t, z_t):
        B = z_t.shape[0]
        n = self.population_rate(z_t)
        scale = 4.0 * self.rate_weight / (B * self.T * self.N) * (self.sigma() - self.sigma_r) * (n - self.mean)
        return scale[:, None].expand_as(z_t)

    def value(self):
        return self.rate_weight * ((self.sigma() - self.sigma_r) ** 2).mean()

    def signal_factors(self, t, z_t):
        return {"population_rate": self.population_rate(z_t)[:, None], "one": None}

    def signal_coefficients(self):  # L[t] = k (n[t] - mu) = k n[t] + (-k mu)
        k = 4.0 * self.rate_weight / (self.mean.shape[0] * self.T * self.N) * (self.sigma() - self.sigma_r)
        return {"population_rate": k[:, None], "one": (-k * self.mean)[:, None]}


class ReadoutLoss(SpikeLoss):
    """A per-step linear readout ``y[t] = W_out z[t]`` regressed on ``target`` ``[T, B, k]``:

        E = 1/(2B) sum_t sum_b ||y_b[t] - target_b[t]||^2,   L[t] = (y[t] - target[t]) W_out / B.

    Its learning signal is known at step t: e-prop needs a single forward pass.
    """

    def __init__(self, w_out: torch.Tensor, target: torch.Tensor):
        if target.dim() != 3 or target.shape[-1] != w_out.shape[0]:
            raise ValueError(f"target must be [T, B, {w_out.shape[0]}] (w_out is [k, n_neurons]); got {tuple(target.shape)}")
        self.w_out, self.target = w_out, target

    def __call__(self, z):
        y = z @ self.w_out.t()
        return 0.5 * ((y - self.target) ** 2).sum() / z.shape[1]

    def begin(self, T, z_shape, device=None, dtype=torch.float32):
        super().begin(T, z_shape, device, dtype)
        self.total = torch.zeros((), device=device, dtype=dtype)

    def learning_signal(self, t, z_t):
        error = z_t @ self.w_out.t() - self.target[t]
        self.total += 0.5 * (error**2).sum() / z_t.shape[0]
        return error @ self.w_out / z_t.shape[0]

    def value(self):
        return self.total


class SumLoss(SpikeLoss):
    """The sum of several spike losses, ``E = sum_k E_k``; its learning signal is the sum of theirs.

    Used to constrain the rate variance at a held mean rate (``RateLoss(r0) + RateVarianceLoss(sigma_r)``),
    so that networks trained to different variances are compared at one mean rate.
    """

    def __init__(self, *losses: SpikeLoss):
        if not losses or not all(isinstance(loss, SpikeLoss) for loss in losses):
            raise ValueError("losses must be one or more SpikeLoss instances")
        self.losses = losses
        self.needs_statistics = any(loss.needs_statistics for loss in losses)

    def __call__(self, z):
        return sum(loss(z) for loss in self.losses)

    def begin(self, T, z_shape, device=None, dtype=torch.float32):
        super().begin(T, z_shape, device, dtype)
        for loss in self.losses:
            loss.begin(T, z_shape, device, dtype)

    def observe(self, t, z_t):
        for loss in self.losses:
            if loss.needs_statistics:
                loss.observe(t, z_t)

    def learning_signal(self, t, z_t):
        return sum(loss.learning_signal(t, z_t) for loss in self.losses)

    def value(self):
        return sum(loss.value() for loss in self.losses)

    def after_step(self):
        for loss in self.losses:
            loss.after_step()

    @property
    def factorised(self):  # a readout term (its signal known online, no factors) falls back to two passes
        return all(loss.factorised for loss in self.losses)

    def signal_factors(self, t, z_t):
        factors = {}
        for loss in self.losses:
            factors.update(loss.signal_factors(t, z_t))
        return factors

    def signal_coefficients(self):  # the same factor in two losses: coefficients add
        total = {}
        for loss in self.losses:
            for key, a in loss.signal_coefficients().items():
                total[key] = total[key] + a if key in total else a
        return total

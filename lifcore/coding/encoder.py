"""The encoder interface of the efficient-coding model (seed 000; DESIGN section 5).

An encoder maps a patch x ``[D]`` to N rates through filters ``W`` ``[N, D]`` and a
pointwise nonlinearity f::

    u = W x (+ b)                     current (the encoder's `current`)
    r = f(u) + n_r                    rate, n_r ~ N(0, s_out^2 I)
    G(x) = diag f'(u)                 local gain

Two implementations: `SoftLIFEncoder` (the project's own: f is the LIF f-I curve of
Part I) and `SoftplusEncoder` (the deck's: ``f = a softplus(u - b; beta = 2.5)``).
Everything that follows from W, f and f' is written once, here: the information of
the linear-Gaussian channel and its matrices (`lifcore.coding.info`), the posterior KL,
and the covariances averaged over many batches.

The filters are free pixels (``filter_shape="pixels"``, ``weights`` a parameter) or drawn from
the deck's difference-of-Gaussians parameters (``"dog"``, `lifcore.coding.dog.DoGFilters`;
``weights`` is then computed from them at every call and has no gradient of its own).

Where the gain and the constrained rate are evaluated is the encoder's `gain_at`:
"clean" (at x, the project's choice) or "noisy" (at ``x + n_x``, one draw of the
input noise per patch, as the deck's code does). `operating_point` applies it.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import memory
from ..arguments import integer
from . import info
from .kernels import renormalize_

GAIN_AT = ("clean", "noisy")
FILTER_SHAPES = ("pixels", "dog")


class Encoder(nn.Module):
    """Interface (see the module docstring). A subclass sets ``weights`` ``[N, D]`` and
    defines `current`, `rate_of_current`, `gain_of_current` and `parameter_groups`."""

    weights: nn.Parameter

    def __init__(self, input_noise: float, output_noise: float, gain_at: str = "clean", renormalize: bool = False):
        super().__init__()
        # subclasses call `check_sizes` with their dim, n_neurons, dtype and device before allocating
        for name, value in (("input_noise", input_noise), ("output_noise", output_noise)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name}={value!r} must be > 0")
        if gain_at not in GAIN_AT:
            raise ValueError(f"gain_at={gain_at!r} is unknown; allowed: {', '.join(map(repr, GAIN_AT))}")
        self.input_noise, self.output_noise = float(input_noise), float(output_noise)
        self.gain_at, self.renormalize = gain_at, bool(renormalize)

    @staticmethod
    def check_sizes(dim, n_neurons, dtype, device) -> tuple[int, int]:
        """`dim` and `n_neurons` as positive ints, refused (with the estimate) when the filters and the N x N
        kernels an evaluation forms (``W C_x W^T``, ``W W^T``, their gradients) cannot fit on `device`."""
        dim, n_neurons = integer("dim", dim), integer("n_neurons", n_neurons)
        memory.require((3 * n_neurons * dim + 8 * n_neurons**2) * memory.itemsize(dtype),
                       f"an encoder of {n_neurons} neurons on {dim} inputs", "n_neurons or the patch size (dim)", device)
        return dim, n_neurons

    def check_batch(self, x, input_covariance) -> None:
        """`x` a batch of patches ``[B, D]`` (B >= 1) of the filters' dtype, `input_covariance` ``[D, D]``."""
        if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            hint = " (one patch: x[None])" if torch.is_tensor(x) and x.dim() == 1 and x.shape[0] == self.dim else ""
            raise ValueError(f"x must be a batch of patches [B, D = {self.dim}]; got {shape}{hint}")
        if x.shape[0] < 1:
            raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}): give at least one patch")
        if not x.is_floating_point():
            raise ValueError(f"x has dtype {x.dtype}: patches are floating-point numbers (x.to({self.weights.dtype}))")
        if not torch.is_tensor(input_covariance) or tuple(input_covariance.shape) != (self.dim, self.dim):
            shape = tuple(input_covariance.shape) if torch.is_tensor(input_covariance) else type(input_covariance).__name__
            raise ValueError(f"input_covariance must be C_x [D, D] = [{self.dim}, {self.dim}]; got {shape}")

    # -- what an implementation defines ---------------------------------------------------
    def current(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def rate_of_current(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def gain_of_current(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"filters": [W], "nonlinearity": [...]}``: what the information step and a rate step move."""
        raise NotImplementedError

    def nonlinearity_values(self) -> dict[str, torch.Tensor]:
        """The nonlinearity's per-neuron values ``[N]`` by name, as a run records their histograms."""
        raise NotImplementedError

    # -- written once ---------------------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        """The filters ``W`` ``[N, D]``: the parameter ``weights`` (free pixels), or drawn from the DoG
        parameters of the submodule ``shape``. (A property of the class: `nn.Module` keeps the
        parameter in ``_parameters``, so that ``self.weights = nn.Parameter(...)`` still registers it.)"""
        parameters = self.__dict__["_parameters"]
        if "weights" in parameters:
            return parameters["weights"]
        shape = self.__dict__["_modules"].get("shape")
        if shape is None:
            raise AttributeError("weights")
        return shape.weights()

    @property
    def filter_shape(self) -> str:
        return "pixels" if "weights" in self.__dict__["_parameters"] else "dog"

    @property
    def n_neurons(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        return self.weights.shape[1]

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free rate ``f(u)`` ``[B, N]`` at `x` (what a rate constraint acts on)."""
        return self.rate_of_current(self.current(x))

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        """``g = f'(u)`` ``[B, N]`` at `x`, the diagonal of G."""
        return self.gain_of_current(self.current(x))

    def operating_point(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Where G and the constrained rate are evaluated: `x` ("clean") or ``x + n_x`` ("noisy")."""
        if self.gain_at == "clean":
            return x
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device if generator else x.device)
        return x + self.input_noise * noise.to(x.device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A noisy response ``r = f(W (x + n_x) (+ b)) + n_r`` ``[B, N]``."""
        drawn_on = generator.device if generator is not None else x.device  # where the generator draws
        n_x = torch.randn(x.shape, generator=generator, device=drawn_on, dtype=x.dtype).to(x.device) * self.input_noise
        r = self.rate(x + n_x)
        return r + torch.randn(r.shape, generator=generator, device=drawn_on, dtype=r.dtype).to(r.device) * self.output_noise

    @torch.no_grad()
    def project_(self) -> None:
        """After an optimiser step: rescale every filter to unit norm when `renormalize` (the deck's;
        DoG filters are of unit norm by construction)."""
        if self.renormalize and self.filter_shape == "pixels":
            renormalize_(self.weights)

    def evaluate(self, x: torch.Tensor, input_covariance: torch.Tensor) -> dict:
        """One pass at `x` (an operating point ``[B, D]``): per-sample information ``MI`` (nats),
        rates ``rate`` and gains ``gain`` ``[B, N]``, and the shared ``signal = W C_x W^T`` and
        ``wwt = W W^T``.

        ``W C_x W^T`` and ``W W^T`` are shared by the batch; per sample only a diagonal and two
        Cholesky factorisations remain (`info.gain_scaled_information`).
        """
        self.check_batch(x, input_covariance)
        weights = self.weights
        u = self.current(x)
        gain = self.gain_of_current(u)
        signal = info.wcxw(weights, input_covariance.to(weights.dtype))
        wwt = weights @ weights.t()
        mi = info.gain_scaled_information(signal, wwt, gain, self.input_noise, self.output_noise)
        return {"MI": mi, "rate": self.rate_of_current(u), "gain": gain, "signal": signal, "wwt": wwt}

    def information(self, x: torch.Tensor, input_covariance: torch.Tensor, with_matrices: bool = False) -> dict:
        """Per-sample mutual information ``MI`` (nats) of the batch `x` given ``C_x``, and ``gain``.

        With `with_matrices`, the batch means of ``MI_numerator`` (Sigma_r) and
        ``MI_denominator`` (Sigma_n), and ``WCxW``, come back too (no gradient); ``WCxW`` is
        ``W (C_x + s_in^2 I) W^T``, what the deck's code logged under that name (its
        input-noise term included).
        """
        info.check_covariance(input_covariance, "input_covariance")  # and `evaluate` checks the batch
        out = self.evaluate(x, input_covariance)
        result = {"MI": out["MI"], "gain": out["gain"]}
        if with_matrices:
            with torch.no_grad():
                result |= self.mean_covariances(out["gain"], out["signal"], out["wwt"])
        return result

    def mean_covariances(self, gain: torch.Tensor, signal: torch.Tensor, wwt: torch.Tensor) -> dict:
        """Batch means of MI_numerator and MI_denominator from the gains ``[B, N]`` and the shared
        kernels, and WCxW (float64). Since ``E_x[G K G] = E_x[g g^T] * K`` (elementwise) for a
        shared K, one ``[N, B] x [B, N]`` product does it."""
        gain, signal, wwt = gain.detach().double(), signal.detach().double(), wwt.detach().double()
        return covariances_from_moment(gain.t() @ gain / gain.shape[0], signal, wwt, self.input_noise, self.output_noise)

    @torch.no_grad()
    def average_covariances(self, batches, input_covariance: torch.Tensor, with_gain: bool = True) -> dict:
        """``MI_numerator`` and ``MI_denominator`` averaged over every patch of `batches` (an
        iterable of ``[B, D]``, gains at each patch as given), and ``WCxW``; float64.
        ``with_gain=False`` drops G: ``W (C_x + s_in^2 I) W^T + s_out^2 I`` and ``s_in^2 W W^T + s_out^2 I``."""
        weights = self.weights.double()
        signal = info.wcxw(weights, input_covariance.to(weights))
        wwt = weights @ weights.t()
        moment = torch.zeros_like(signal)
        count = 0
        for x in batches:
            gain = self.gain(x.to(self.weights)).double()
            moment += gain.t() @ gain
            count += x.shape[0]
        moment = moment / count if with_gain else torch.ones_like(signal)
        return covariances_from_moment(moment, signal, wwt, self.input_noise, self.output_noise)

    def kl(self, x: torch.Tensor, input_covariance: torch.Tensor) -> torch.Tensor:
        """Per-sample ``E_r KL(p(x|r) || p(x))`` (nats) through the ``D x D`` posterior covariance."""
        self.check_batch(x, input_covariance)
        info.check_covariance(input_covariance, "input_covariance")
        # float64 always: C_x^-1 (condition number ~1e6 for natural patches) is too much for float32
        return info.posterior_kl(self.weights.double(), self.gain(x).double(), input_covariance.double(),
                                 self.input_noise, self.output_noise)


def covariances_from_moment(moment: torch.Tensor, signal: torch.Tensor, wwt: torch.Tensor, input_noise: float,
                            output_noise: float) -> dict:
    """MI_numerator ``E[G W (C_x + s_in^2 I) W^T G] + s_out^2 I``, MI_denominator
    ``E[G s_in^2 W W^T G] + s_out^2 I`` from ``E[g g^T]``, and WCxW ``W (C_x + s_in^2 I) W^T``."""
    noise_kernel = input_noise**2 * wwt
    floor = output_noise**2 * torch.eye(signal.shape[0], dtype=signal.dtype, device=signal.device)
    denominator = moment * noise_kernel + floor
    return {"MI_numerator": moment * signal + denominator, "MI_denominator": denominator,
            "WCxW": signal + noise_kernel}

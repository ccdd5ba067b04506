"""Information metrics of the linear-Gaussian coding model (seed 000; DESIGN section 5).

For a patch x, gain ``g = f'(W x + b)`` and ``A = G W`` (``G = diag g``), the response is,
to first order, ``r = A x + A n_x + n_r``: a Gaussian channel with

    Sigma_n(x) = s_in^2 G W W^T G + s_out^2 I              noise covariance   (MI_denominator)
    Sigma_r(x) = G W C_x W^T G + Sigma_n(x)                response covariance (MI_numerator)
    WCxW       = W C_x W^T                                  (the slides' third matrix)

    I(X;R) ~= 1/2 E_x[ logdet Sigma_r(x) - logdet Sigma_n(x) ]           (nats)

and, by a separate path through the D x D posterior covariance of x given r,

    Sigma_post(x) = (C_x^-1 + A^T Sigma_n^-1 A)^-1
    KL = E_x E_r KL(p(x|r) || p(x)) = 1/2 E_x[ logdet C_x - logdet Sigma_post(x) ]

(the trace and mean terms of the Gaussian KL cancel, because E_r[mu mu^T] = C_x - Sigma_post).
The two are equal for this model (Sylvester's determinant identity); `tests/test_info.py`
checks that to 1e-6. Log-determinants use Cholesky: a matrix that is not positive
definite raises `NotPositiveDefiniteError`, or gets the explicit `jitter` that is logged.
"""
from __future__ import annotations

import logging
import math

import torch

from . import lapack

log = logging.getLogger(__name__)
NATS_PER_BIT = math.log(2.0)


class NotPositiveDefiniteError(ValueError):
    """A covariance that should be positive definite is not (Cholesky failed)."""


class StreamingCovariance:
    """Mean and covariance of a stream of batches ``[B, D]``, accumulated in float64.

    Chan et al.'s pairwise merge of (count, mean, M2): stable where the textbook
    ``E[x x^T] - mu mu^T`` loses digits, and "1 batch of 128" and "1000 batches" are the
    same code with another count.
    """

    def __init__(self, dim: int, device=None):
        self.dim, self.count = dim, 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def update(self, batch: torch.Tensor) -> "StreamingCovariance":
        if batch.dim() != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"batch must be [B, {self.dim}]; got {tuple(batch.shape)}")
        batch = batch.to(self.mean.device, torch.float64)
        n_b = batch.shape[0]
        mean_b = batch.mean(0)
        centred = batch - mean_b
        m2_b = centred.t() @ centred
        total = self.count + n_b
        delta = mean_b - self.mean
        self.m2 += m2_b + torch.outer(delta, delta) * (self.count * n_b / total)
        self.mean += delta * (n_b / total)
        self.count = total
        return self

    def covariance(self, unbiased: bool = True) -> torch.Tensor:
        if self.count < 2:
            raise ValueError(f"a covariance needs two samples or more; have {self.count}")
        return self.m2 / (self.count - 1 if unbiased else self.count)


def logdet_spd(matrix: torch.Tensor, jitter: float | None = None, name: str = "matrix") -> torch.Tensor:
    """``logdet`` of (a batch of) symmetric positive-definite matrices by Cholesky.

    Not positive definite: `NotPositiveDefiniteError` naming `name`, or, when `jitter` is
    given, ``jitter * mean(diag) * I`` is added and a warning says so. The gradient with
    respect to `matrix` is ``A^-1`` (symmetric; the matrix is taken as symmetric).
    """
    chol, info = torch.linalg.cholesky_ex(matrix.detach())
    if bool((info > 0).any()):
        if jitter is None:
            raise NotPositiveDefiniteError(
                f"{name} is not positive definite (Cholesky failed at {int((info > 0).sum())} of "
                f"{info.numel()} matrices); pass jitter=... to add a multiple of the identity")
        eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
        scale = matrix.detach().diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None].abs()
        log.warning("%s is not positive definite: adding jitter %.1e x mean diagonal", name, jitter)
        matrix = matrix + jitter * scale * eye
        chol = torch.linalg.cholesky(matrix.detach())
    if not matrix.requires_grad:
        return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return _LogdetFromFactor.apply(matrix, chol)


class _LogdetFromFactor(torch.autograd.Function):
    """``logdet`` from a precomputed Cholesky factor, with the backward ``grad * A^-1``.

    Autograd's own Cholesky backward costs several triangular solves per matrix; the
    gradient of a log-determinant is simply the inverse, ``cholesky_inverse(L)``.
    """

    @staticmethod
    def forward(ctx, matrix, chol):
        ctx.save_for_backward(chol)
        return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    @staticmethod
    def backward(ctx, grad):
        (chol,) = ctx.saved_tensors
        return grad[..., None, None] * torch.cholesky_inverse(chol), None


def wcxw(weights: torch.Tensor, input_covariance: torch.Tensor) -> torch.Tensor:
    """``W C_x W^T`` ``[N, N]`` (the slides' `WCxW`)."""
    return weights @ input_covariance @ weights.t()


def noise_covariance(weights: torch.Tensor, gain: torch.Tensor, input_noise: float, output_noise: float,
                     wwt: torch.Tensor | None = None) -> torch.Tensor:
    """``Sigma_n = s_in^2 G W W^T G + s_out^2 I`` for each row of `gain` ``[B, N]`` -> ``[B, N, N]`` (MI_denominator)."""
    wwt = weights @ weights.t() if wwt is None else wwt
    eye = torch.eye(wwt.shape[0], dtype=wwt.dtype, device=wwt.device)
    return input_noise**2 * gain[:, :, None] * wwt * gain[:, None, :] + output_noise**2 * eye


def response_covariance(weights: torch.Tensor, gain: torch.Tensor, input_covariance: torch.Tensor,
                        input_noise: float, output_noise: float, signal: torch.Tensor | None = None,
                        noise: torch.Tensor | None = None) -> torch.Tensor:
    """``Sigma_r = G W C_x W^T G + Sigma_n`` ``[B, N, N]`` (MI_numerator)."""
    signal = wcxw(weights, input_covariance) if signal is None else signal
    noise = noise_covariance(weights, gain, input_noise, output_noise) if noise is None else noise
    return gain[:, :, None] * signal * gain[:, None, :] + noise


def check_covariance(matrix: torch.Tensor, name: str) -> None:
    """A covariance as the model needs it: a finite, symmetric, positive-definite float matrix (Cholesky
    tells the last), or a ValueError naming `name` and what it is instead."""
    if not torch.is_tensor(matrix) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or not matrix.shape[0]:
        shape = tuple(matrix.shape) if torch.is_tensor(matrix) else type(matrix).__name__
        raise ValueError(f"{name} must be a square matrix [D, D]; got {shape}")
    if not matrix.is_floating_point():
        raise ValueError(f"{name} has dtype {matrix.dtype}: a covariance is float32 or float64")
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError(f"{name} holds NaN or Inf values")
    m = matrix.detach().double()
    scale = m.abs().amax().clamp_min(torch.finfo(torch.float64).tiny)
    if float((m - m.t()).abs().amax() / scale) > 100 * torch.finfo(matrix.dtype).eps:
        raise ValueError(f"{name} is not symmetric (largest |C - C^T| / max|C| above 100 eps): a covariance is symmetric")
    if int(torch.linalg.cholesky_ex(m)[1]) != 0:
        raise NotPositiveDefiniteError(f"{name} is not positive definite (its Cholesky factorisation fails): a patch "
                                       "covariance estimated from more patches than dimensions is")


def mutual_information(response_cov: torch.Tensor, noise_cov: torch.Tensor, jitter: float | None = None) -> torch.Tensor:
    """``1/2 (logdet Sigma_r - logdet Sigma_n)`` per sample, nats (divide by `NATS_PER_BIT` for bits).

    Both must be (batches of) symmetric matrices of the same size: Cholesky reads one triangle, so a
    non-symmetric input would otherwise be silently taken for another matrix."""
    for name, m in (("response_cov", response_cov), ("noise_cov", noise_cov)):
        if not torch.is_tensor(m) or m.dim() < 2 or m.shape[-1] != m.shape[-2]:
            raise ValueError(f"{name} must be a square matrix [..., N, N]; got "
                             f"{tuple(m.shape) if torch.is_tensor(m) else type(m).__name__}")
        if m.numel() == 0:
            raise ValueError(f"{name} is empty (shape {tuple(m.shape)}): give at least one N x N matrix, N >= 1")
        if m.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name} has dtype {m.dtype}: the log-determinants need float32 or float64 "
                             f"({name}.double())")
        if not bool(torch.isfinite(m).all()):
            raise ValueError(f"{name} holds NaN or Inf values")
        scale = m.detach().abs().amax().clamp_min(torch.finfo(m.dtype).tiny)
        if float((m.detach() - m.detach().transpose(-1, -2)).abs().amax() / scale) > 100 * torch.finfo(m.dtype).eps:
            raise ValueError(f"{name} is not symmetric (largest |M - M^T| / max|M| above 100 eps): a covariance is symmetric")
    if response_cov.shape[-1] != noise_cov.shape[-1]:
        raise ValueError(f"response_cov is {response_cov.shape[-1]} x {response_cov.shape[-1]} but noise_cov is "
                         f"{noise_cov.shape[-1]} x {noise_cov.shape[-1]}: both are covariances of the same N responses")
    return 0.5 * (logdet_spd(response_cov, jitter, "MI_numerator (Sigma_r)")
                  - logdet_spd(noise_cov, jitter, "MI_denominator (Sigma_n)"))


def gain_scaled_information(signal: torch.Tensor, wwt: torch.Tensor, gain: torch.Tensor, input_noise: float,
                            output_noise: float, min_gain: float = 1e-8, backend: str = "auto",
                            workers: int | None = None) -> torch.Tensor:
    """The same MI as `mutual_information`, per sample, without forming ``[B, N, N]`` products.

    With ``G = diag g`` (g > 0), ``logdet(G K G + s^2 I) = 2 sum log g + logdet(K + s^2 G^-2)``,
    and the ``2 sum log g`` cancels between numerator and denominator::

        I(x) = 1/2 [ logdet(W C_x W^T + s_in^2 W W^T + D) - logdet(s_in^2 W W^T + D) ],  D = diag(s_out^2 / g^2)

    so every sample costs a shared N x N matrix plus its own diagonal. Gains below
    `min_gain` (silent neurons) are clamped there: such a neuron's ``D_ii`` is huge, and its
    two log-factors, equal to float64 rounding, cancel (the difference is taken per neuron,
    in float64). `backend`: "lapack" (CPU, `lifcore.coding.lapack`, `workers` threads),
    "torch" (batched ``torch.linalg``, any device), or "auto" (lapack where it can run).
    """
    if backend not in SHIFTED_LOGDET_BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; allowed: {', '.join(map(repr, SHIFTED_LOGDET_BACKENDS))}")
    noise_kernel = input_noise**2 * wwt
    diagonal = output_noise**2 / gain.clamp_min(min_gain) ** 2  # [B, N]
    numerator = signal + noise_kernel
    needs_inverse = torch.is_grad_enabled() and any(t.requires_grad for t in (numerator, noise_kernel, diagonal))
    return _SharedKernelInformation.apply(numerator, noise_kernel, diagonal, backend, workers, needs_inverse)


SHIFTED_LOGDET_BACKENDS = ("auto", "lapack", "torch")
_KERNEL_NAMES = ("W (C_x + s_in^2 I) W^T + s_out^2 G^-2", "s_in^2 W W^T + s_out^2 G^-2")


def shifted_logdet(kernels: torch.Tensor, diagonal: torch.Tensor, with_inverse: bool, backend: str = "auto",
                   weights: torch.Tensor | None = None, workers: int | None = None) -> dict:
    """``log L_ii`` of ``K_k + diag d_b`` ``[k, B, N]`` (float64), and with `with_inverse` the sums
    ``sum_b w_b (K_k + diag d_b)^-1`` ``[k, N, N]`` and diagonals ``[k, B, N]`` of the inverses;
    see `lifcore.coding.lapack.shifted_logdet` (same keys) for the CPU kernel."""
    if backend == "lapack" or (backend == "auto" and lapack.available(kernels)):
        return lapack.shifted_logdet(kernels, diagonal, with_inverse, weights, workers)
    matrices = kernels[:, None].expand(-1, diagonal.shape[0], -1, -1).clone()
    matrices.diagonal(dim1=-2, dim2=-1).add_(diagonal)
    chol, info = torch.linalg.cholesky_ex(matrices)
    out = {"log_diagonal": chol.diagonal(dim1=-2, dim2=-1).double().log(),
           "failures": [tuple(i) for i in (info > 0).nonzero().tolist()]}
    if with_inverse:
        inverse = torch.cholesky_inverse(chol)
        out["inverse_diagonal"] = inverse.diagonal(dim1=-2, dim2=-1)
        out["inverse_sum"] = inverse.sum(1) if weights is None else torch.einsum("b,kbij->kij", weights, inverse)
    return out


class _SharedKernelInformation(torch.autograd.Function):
    """``I_b = 1/2 [logdet(K_num + diag d_b) - logdet(K_den + diag d_b)]`` and its gradient::

        dI_b/dK_num = 1/2 A_num,b^-1     dI_b/dK_den = -1/2 A_den,b^-1     dI_b/dd_b = 1/2 diag(A_num,b^-1 - A_den,b^-1)

    The inverses are formed in the forward, while each factor is in cache, and only their
    batch sums and diagonals are kept. A backward with equal upstream gradients (a batch
    mean, what training differentiates) scales the sums; any other weighting recomputes
    them, weighted (`tests/test_info.py` checks both against autograd of ``torch.logdet``).
    """

    @staticmethod
    def forward(ctx, numerator, denominator, diagonal, backend, workers, needs_inverse):
        kernels = torch.stack([numerator, denominator]).detach()
        out = shifted_logdet(kernels, diagonal.detach(), needs_inverse, backend, workers=workers)
        # a NaN passes some Cholesky codes unnoticed: a non-finite factor is a failure too
        failures = set(out["failures"]) | {tuple(i) for i in (~out["log_diagonal"].isfinite().all(-1)).nonzero().tolist()}
        if failures:
            k, _ = min(failures)
            raise NotPositiveDefiniteError(f"{_KERNEL_NAMES[k]} is not positive definite (Cholesky failed at "
                                           f"{len(failures)} of {2 * diagonal.shape[0]} matrices, or a factor is not "
                                           "finite); are the gains and the filters finite?")
        if needs_inverse:
            ctx.save_for_backward(kernels, diagonal.detach(), out["inverse_sum"], out["inverse_diagonal"])
            ctx.backend, ctx.workers = backend, workers
        information = (out["log_diagonal"][0] - out["log_diagonal"][1]).sum(-1)
        return information.to(numerator.dtype)

    @staticmethod
    def backward(ctx, grad):
        kernels, diagonal, inverse_sum, inverse_diagonal = ctx.saved_tensors
        grad_diagonal = 0.5 * grad[:, None] * (inverse_diagonal[0] - inverse_diagonal[1])
        if bool((grad == grad[0]).all()):
            sums = grad[0] * inverse_sum
        else:
            sums = shifted_logdet(kernels, diagonal, True, ctx.backend, weights=grad, workers=ctx.workers)["inverse_sum"]
        return 0.5 * sums[0], -0.5 * sums[1], grad_diagonal, None, None, None


def posterior_precision(weights: torch.Tensor, gain: torch.Tensor, input_covariance: torch.Tensor,
                        noise_cov: torch.Tensor) -> torch.Tensor:
    """``C_x^-1 + A^T Sigma_n^-1 A`` with ``A = G W``, per sample ``[B, D, D]``."""
    a = gain[:, :, None] * weights  # [B, N, D]
    chol = torch.linalg.cholesky(noise_cov)
    whitened = torch.linalg.solve_triangular(chol, a, upper=False)  # L^-1 A: A^T Sigma_n^-1 A = whitened^T whitened
    return torch.cholesky_inverse(torch.linalg.cholesky(input_covariance)) + whitened.transpose(-1, -2) @ whitened


def posterior_covariance(weights, gain, input_covariance, noise_cov) -> torch.Tensor:
    """``Sigma_post = (C_x^-1 + A^T Sigma_n^-1 A)^-1`` ``[B, D, D]``: what x still varies by once r is seen."""
    # Cholesky, not torch.linalg.inv: the precision is SPD, and torch 2.13's batched LU (behind inv, solve,
    # slogdet) returns wrong results with more than one MKL thread on AMD CPUs (issue 13)
    return torch.cholesky_inverse(torch.linalg.cholesky(posterior_precision(weights, gain, input_covariance, noise_cov)))


def posterior_kl(weights: torch.Tensor, gain: torch.Tensor, input_covariance: torch.Tensor,
                 input_noise: float, output_noise: float) -> torch.Tensor:
    """``E_r KL(p(x|r) || p(x)) = 1/2 (logdet C_x - logdet Sigma_post)`` per sample, nats.

    Computed from the D x D posterior, not from Sigma_r and Sigma_n (an independent path).
    """
    noise_cov = noise_covariance(weights, gain, input_noise, output_noise)
    precision = posterior_precision(weights, gain, input_covariance, noise_cov)
    return 0.5 * (logdet_spd(input_covariance, name="C_x") + logdet_spd(precision, name="posterior precision"))


def conditional_entropy(input_entropy: torch.Tensor, information: torch.Tensor) -> torch.Tensor:
    """``H(X|R) = H_X - I(X;R)`` (nats; Gaussian bound)."""
    return input_entropy - information

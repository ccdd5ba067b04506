"""The fast information path (issue 13): `lifcore.coding.lapack` and the shared-kernel
autograd function against the direct formula, in float64, including silent neurons."""
import math

import pytest
import torch

from lifcore import timing
from lifcore.coding import SoftplusEncoder, info, lapack
from lifcore.train import deck_config, train

S_IN, S_OUT = 0.4, 0.3


def problem(n=40, d=40, batch=6, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(n, d, generator=g, dtype=torch.float64) / d**0.5
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = a @ a.t() / d + 0.1 * torch.eye(d, dtype=torch.float64)
    gain = torch.rand(batch, n, generator=g, dtype=torch.float64) + 0.05
    gain[0, :7] = 0.0  # silent neurons: f'(u) = 0 exactly
    gain[2, 3] = 1e-12
    return weights.to(dtype), cov.to(dtype), gain.to(dtype)


def direct(weights, cov, gain):
    """``1/2 [logdet Sigma_r - logdet Sigma_n]`` from the [B, N, N] covariances, float64 Cholesky."""
    noise = info.noise_covariance(weights, gain, S_IN, S_OUT)
    response = info.response_covariance(weights, gain, cov, S_IN, S_OUT)
    logdet = [2 * torch.linalg.cholesky(m).diagonal(dim1=-2, dim2=-1).log().sum(-1) for m in (response, noise)]
    return 0.5 * (logdet[0] - logdet[1])


def fast(weights, cov, gain, backend, workers=None):
    return info.gain_scaled_information(info.wcxw(weights, cov), weights @ weights.t(), gain, S_IN, S_OUT,
                                        backend=backend, workers=workers)


def gradients(fn, weights, gain, upstream):
    w, g = weights.clone().requires_grad_(), gain.clone().requires_grad_()
    value = fn(w, g)
    (value * upstream).sum().backward()
    return value.detach(), w.grad, g.grad


@pytest.mark.parametrize("backend,workers", [("lapack", 1), ("lapack", 3), ("torch", None)])
@pytest.mark.parametrize("upstream", ["mean", "weighted"])
def test_fast_information_and_its_gradient_equal_the_direct_formula(backend, workers, upstream):
    weights, cov, gain = problem()
    weights_up = torch.full((gain.shape[0],), 1 / gain.shape[0], dtype=torch.float64) if upstream == "mean" \
        else torch.linspace(-1.0, 2.0, gain.shape[0], dtype=torch.float64)  # not a mean: the recomputing backward
    ref = gradients(lambda w, g: direct(w, cov, g), weights, gain, weights_up)
    got = gradients(lambda w, g: fast(w, cov, g, backend, workers), weights, gain, weights_up)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-8, atol=1e-10)
    # the silent neurons' gain gradient is where the clamp (min_gain) acts: compare the others
    live = gain > 1e-8
    torch.testing.assert_close(got[2][live], ref[2][live], rtol=1e-8, atol=1e-10)


def test_float32_fast_path_is_within_float32_rounding_of_float64():
    weights, cov, gain = problem(n=120, d=120, batch=4)
    reference = direct(weights, cov, gain)
    value = fast(weights.float(), cov.float(), gain.float(), "lapack", 2)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), reference, rtol=0, atol=2e-4 * reference.abs().max().item())


def test_a_silent_neuron_carries_no_information():
    """Removing a neuron whose gain is exactly 0 leaves the information unchanged (direct formula,
    N - 1 neurons), on the fast path."""
    weights, cov, gain = problem()
    all_neurons = fast(weights, cov, gain, "lapack", 1)[0]
    without = direct(weights[7:], cov, gain[:, 7:])[0]  # sample 0's neurons 0..6 are silent
    torch.testing.assert_close(all_neurons, without, rtol=1e-12, atol=1e-12)


def test_workers_change_nothing_but_rounding_and_a_run_repeats_exactly():
    weights, cov, gain = problem(batch=9)
    one = gradients(lambda w, g: fast(w, cov, g, "lapack", 1), weights, gain, torch.ones(9, dtype=torch.float64))
    four = gradients(lambda w, g: fast(w, cov, g, "lapack", 4), weights, gain, torch.ones(9, dtype=torch.float64))
    again = gradients(lambda w, g: fast(w, cov, g, "lapack", 4), weights, gain, torch.ones(9, dtype=torch.float64))
    for a, b, c in zip(one, four, again):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert torch.equal(b, c)


def test_not_positive_definite_names_the_matrix_and_an_unknown_backend_is_refused():
    weights, cov, gain = problem()
    with pytest.raises(info.NotPositiveDefiniteError, match=r"W \(C_x \+ s_in\^2 I\) W\^T"):
        fast(weights, cov, gain * float("nan"), "lapack", 1)
    with pytest.raises(ValueError, match="backend='lu'.*'auto', 'lapack', 'torch'"):
        fast(weights, cov, gain, "lu")


def test_lifcore_workers_variable_is_checked(monkeypatch):
    monkeypatch.setenv("LIFCORE_WORKERS", "zero")
    with pytest.raises(ValueError, match="LIFCORE_WORKERS='zero' must be a positive integer"):
        lapack.default_workers()
    monkeypatch.setenv("LIFCORE_WORKERS", "3")
    assert lapack.default_workers() == 3


def test_no_lu_factorisation_on_the_training_or_evaluation_paths(monkeypatch):
    """torch 2.13's batched LU (inv, solve, slogdet, det, logdet on [B, N, N]) returns wrong values
    with more than one MKL thread on AMD CPUs (issue 13; one matrix at a time is right): lifcore's
    own paths never call it on a batch."""
    def refusing(original):
        def call(matrix, *args, **kwargs):
            if matrix.dim() > 2:
                raise AssertionError("a batched LU-based torch.linalg call was reached")
            return original(matrix, *args, **kwargs)
        return call

    for name in ("inv", "inv_ex", "solve", "solve_ex", "slogdet", "det", "lu_factor", "lu_factor_ex"):
        monkeypatch.setattr(torch.linalg, name, refusing(getattr(torch.linalg, name)))
    for name in ("logdet", "slogdet", "det", "inverse"):
        monkeypatch.setattr(torch, name, refusing(getattr(torch, name)))
    config = deck_config(12, method="lagrange", n_neurons=16, patch_size=4, batch_size=32, n_patches=2000,
                         eval_size=32, cov_batches=4, kl_every=6)
    run = train(config, cache_dir=None, progress=False)
    assert run.series("info/KL_posterior")[0] == [0, 6, 12]
    model = SoftplusEncoder(dim=16, n_neurons=16, dtype=torch.float64)
    x = torch.randn(5, 16, dtype=torch.float64)
    noise = info.noise_covariance(model.weights.detach(), model.gain(x).detach(), 0.4, 3.0)
    post = info.posterior_covariance(model.weights.detach(), model.gain(x).detach(), torch.eye(16, dtype=torch.float64),
                                     noise)
    assert post.shape == (5, 16, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_information_equals_cpu():
    weights, cov, gain = problem()
    cpu = fast(weights, cov, gain, "lapack", 1)
    gpu = fast(weights.cuda(), cov.cuda(), gain.cuda(), "auto")
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)


def test_the_batched_lu_check_stops_a_hung_child_and_reports_it(monkeypatch):
    from lifcore import timing

    a = torch.randn(4, 6, 6, dtype=torch.float64)
    matrices = a @ a.transpose(1, 2) + 6 * torch.eye(6, dtype=torch.float64)
    found = timing.batched_lu_check(matrices, n_threads=1, timeout=60)
    assert not found["hung"] and found["error"] < 1e-10
    monkeypatch.setattr(timing, "_LU_CHILD", "import time\nprint('spinning', flush=True)\ntime.sleep(60)")
    found = timing.batched_lu_check(matrices, n_threads=1, timeout=2)
    assert found["hung"] and found["timeout"] == 2 and math.isnan(found["error"])


def test_compare_logdets_deck_form_is_per_sample():
    """The deck's own form G_b K G_b + s^2 I, one matrix per sample: every method's log-determinant agrees with
    float64 Cholesky (an independent closed form: logdet(G K G + s^2 I) = logdet(K + s^2 G^-2) + 2 sum log g),
    and lifcore's shared-kernel row is absent; a kernel of the wrong shape is refused by name."""
    torch.manual_seed(0)
    n, b = 12, 5
    a = torch.randn(n, n, dtype=torch.float64)
    kernel = a @ a.T / n
    g = torch.rand(b, n, dtype=torch.float64) + 0.1
    deck_form = g[:, :, None] * kernel * g[:, None, :]
    rows = timing.compare_logdets(deck_form, torch.ones(b, n, dtype=torch.float64), torch.float64, repeats=1)
    assert {r["method"] for r in rows} == set(timing.LOGDET_METHODS)
    assert all(r["undefined"] == 0 and r["logdet error"] < 1e-10 for r in rows)
    shifted = kernel + torch.diag_embed(1 / g**2)
    closed = torch.linalg.slogdet(shifted)[1] + 2 * g.log().sum(-1)
    assert torch.allclose(torch.linalg.slogdet(deck_form + torch.eye(n, dtype=torch.float64))[1], closed)
    with pytest.raises(ValueError, match="kernel must be"):
        timing.compare_logdets(deck_form[:2], torch.ones(b, n, dtype=torch.float64), torch.float64)


def test_step_flops_shared_part_is_what_torch_counts():
    """The FLOP floor's shared kernels (W C_x W^T and W W^T, forward and backward to W) against torch's own
    count of the same products, with D != N as in the deck's model (N neurons on 3 x 18^2 inputs, scaled down);
    the per-sample part is LAPACK's 2 N^3 for each of the B samples."""
    from torch.utils.flop_counter import FlopCounterMode

    from lifcore import timing
    from lifcore.coding import info

    n, dim, batch = 7, 19, 5
    w = torch.randn(n, dim, dtype=torch.float64, requires_grad=True)
    cov = torch.eye(dim, dtype=torch.float64)
    with FlopCounterMode(display=False) as counter:
        (info.wcxw(w, cov).sum() + (w @ w.t()).sum()).backward()
    assert counter.get_total_flops() == timing.step_flops(n, batch, dim) - batch * 2 * n**3
    assert timing.step_flops(n, batch) == 16 * n**3 + batch * 2 * n**3  # D = N: the old count

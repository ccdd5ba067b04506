"""Information metrics (issue 3) against closed forms and independent computations."""
import math

import numpy as np
import pytest
import torch

from lifcore.coding import info


def test_streaming_covariance_over_1000_batches_equals_numpy_cov():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(5, 5))
    # a large common offset: the naive E[xx^T] - mu mu^T loses digits here, the merge must not
    batches = [rng.normal(size=(int(rng.integers(1, 40)), 5)) @ mixing + 1e3 for _ in range(1000)]
    stream = info.StreamingCovariance(5)
    for batch in batches:
        stream.update(torch.as_tensor(batch))
    reference = np.cov(np.concatenate(batches), rowvar=False)
    assert stream.count == sum(len(b) for b in batches)
    np.testing.assert_allclose(stream.covariance().numpy(), reference, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stream.mean.numpy(), np.concatenate(batches).mean(0), rtol=1e-12)


def test_one_batch_and_many_batches_are_the_same_code():
    x = torch.randn(128, 4, dtype=torch.float64)
    one = info.StreamingCovariance(4).update(x).covariance()
    torch.testing.assert_close(one, torch.cov(x.t()))


def test_mutual_information_equals_the_closed_form_on_hand_built_matrices():
    # W = I, g = 1, C_x diagonal: I = 1/2 sum log((c + s_in^2 + s_out^2) / (s_in^2 + s_out^2))
    c = torch.tensor([4.0, 1.0, 0.25, 0.01], dtype=torch.float64)
    s_in, s_out = 0.3, 0.2
    w, gain = torch.eye(4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
    closed = 0.5 * torch.log((c + s_in**2 + s_out**2) / (s_in**2 + s_out**2)).sum()
    noise = info.noise_covariance(w, gain, s_in, s_out)
    response = info.response_covariance(w, gain, torch.diag(c), s_in, s_out)
    torch.testing.assert_close(info.mutual_information(response, noise)[0], closed, rtol=1e-12, atol=0)
    shared = info.gain_scaled_information(info.wcxw(w, torch.diag(c)), w @ w.t(), gain, s_in, s_out)
    torch.testing.assert_close(shared[0], closed, rtol=1e-12, atol=0)
    assert math.isclose(closed.item() / info.NATS_PER_BIT, closed.item() / math.log(2))


def random_problem(n=12, d=10, batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    cx = a @ a.t() / d + 0.01 * torch.eye(d, dtype=torch.float64)
    gain = torch.rand(batch, n, generator=g, dtype=torch.float64) * 2
    return w, cx, gain


@pytest.mark.parametrize("n, d", [(12, 10), (10, 10), (6, 10)])
def test_kl_from_the_posterior_equals_mi_from_logdets(n, d):
    w, cx, gain = random_problem(n, d)
    noise = info.noise_covariance(w, gain, 0.4, 0.1)
    response = info.response_covariance(w, gain, cx, 0.4, 0.1)
    mi = info.mutual_information(response, noise)
    kl = info.posterior_kl(w, gain, cx, 0.4, 0.1)
    assert mi.min() > 0.1
    torch.testing.assert_close(kl, mi, rtol=1e-6, atol=0)
    shared = info.gain_scaled_information(info.wcxw(w, cx), w @ w.t(), gain, 0.4, 0.1)
    torch.testing.assert_close(shared, mi, rtol=1e-10, atol=0)


def test_posterior_covariance_is_the_gaussian_conditional():
    """Sigma_post against the textbook conditional C_x - C_x A^T (A C_x A^T + Sigma_n)^-1 A C_x."""
    w, cx, gain = random_problem()
    noise = info.noise_covariance(w, gain, 0.4, 0.1)
    post = info.posterior_covariance(w, gain, cx, noise)
    a = gain[:, :, None] * w
    textbook = cx - cx @ a.transpose(-1, -2) @ torch.linalg.solve(a @ cx @ a.transpose(-1, -2) + noise, a @ cx)
    torch.testing.assert_close(post, textbook, rtol=1e-8, atol=1e-10)


def test_logdet_gradient_equals_autograd_of_torch_logdet():
    a = torch.randn(3, 6, 6, dtype=torch.float64)
    a = (a @ a.transpose(-1, -2) + torch.eye(6)).requires_grad_(True)
    (ours,) = torch.autograd.grad(info.logdet_spd(a).sum(), a)
    (reference,) = torch.autograd.grad(torch.logdet(a).sum(), a)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_not_positive_definite_is_a_clear_error_or_a_logged_jitter(caplog):
    bad = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)
    with pytest.raises(info.NotPositiveDefiniteError, match="Sigma_test is not positive definite"):
        info.logdet_spd(bad, name="Sigma_test")
    singular = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    with caplog.at_level("WARNING"):
        value = info.logdet_spd(singular, jitter=1e-6, name="Sigma_test")
    assert torch.isfinite(value) and "jitter" in caplog.text


def test_streaming_covariance_rejects_a_wrong_batch():
    with pytest.raises(ValueError, match=r"batch must be \[B, 3\]"):
        info.StreamingCovariance(3).update(torch.zeros(4, 2))

"""e-prop against autograd BPTT (issue 2), run as in Bellec et al.'s own numerical check."""
import pytest
import torch

import lifcore
from lifcore.snn.grad import bptt_gradients, eprop_gradients, gradient_alignment


def make_case(recurrent, dtype, learn=False, T=80, B=4):
    net = lifcore.LIFNetwork(12, 16, alpha=0.9, recurrent=recurrent, learn_bias=learn, learn_threshold=learn,
                             w_in_scale=3.0, w_rec_scale=1.5, dtype=dtype)
    x = (torch.rand(T, B, 12) < 0.25).to(dtype)
    return net, x


def losses(dtype, T=80, B=4):
    return {
        "rate": lifcore.RateLoss(r0=0.05, rate_weight=2.0),
        "readout": lifcore.ReadoutLoss(torch.randn(3, 16, dtype=dtype), torch.randn(T, B, 3, dtype=dtype)),
        "rate_variance": lifcore.RateVarianceLoss(sigma_r=0.0, rate_weight=10.0),
        "rate_and_variance": lifcore.snn.SumLoss(lifcore.RateLoss(r0=0.05), lifcore.RateVarianceLoss(sigma_r=1e-4, rate_weight=10.0)),
    }


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("loss_name", ["rate", "readout", "rate_variance", "rate_and_variance"])
@pytest.mark.parametrize("learn", [False, True])
def test_eprop_equals_bptt_with_stop_z(dtype, tol, recurrent, loss_name, learn):
    net, x = make_case(recurrent, dtype, learn)
    loss = losses(dtype)[loss_name]
    g_bptt, value_bptt = bptt_gradients(net, x, loss, mode="stop_z")
    g_eprop, value_eprop = eprop_gradients(net, x, loss)
    assert set(g_eprop) == set(g_bptt)
    stats = gradient_alignment(g_bptt, g_eprop)
    g_full, _ = bptt_gradients(net, x, loss, mode="full")
    full = gradient_alignment(g_full, g_eprop)
    print(f"\n{loss_name} recurrent={recurrent} {dtype}: e-prop vs stop_z BPTT rel.err {stats['relative_error']:.2e}; "
          f"vs full BPTT cosine {full['cosine']:.4f}, rel.err {full['relative_error']:.3f}")
    assert torch.cat([g.flatten() for g in g_bptt.values()]).norm() > 0, "a zero gradient would make this test vacuous"
    assert stats["relative_error"] <= tol
    torch.testing.assert_close(value_eprop, value_bptt, rtol=tol, atol=0)


def test_full_bptt_differs_from_eprop_in_a_recurrent_network():
    """The check above could pass if stop_z did nothing: full BPTT must see the recurrent path."""
    net, x = make_case(True, torch.float64)
    loss = losses(torch.float64)["rate"]
    g_full, _ = bptt_gradients(net, x, loss, mode="full")
    g_eprop, _ = eprop_gradients(net, x, loss)
    assert gradient_alignment(g_full, g_eprop)["relative_error"] > 1e-3


def test_rate_variance_learning_signal_equals_autograd():
    T, B, N = 120, 3, 25
    z = (torch.rand(T, B, N, dtype=torch.float64) < 0.1).double().requires_grad_(True)
    loss = lifcore.RateVarianceLoss(sigma_r=1e-4, rate_weight=3.0)
    (autograd_signal,) = torch.autograd.grad(loss(z), z)
    streamed = loss.learning_signal_of(z.detach())
    # the closed form of the slide, written independently: 4 rate_weight/(B T N) (sigma - sigma_r)(n[t] - mu)
    n = z.detach().mean(-1)
    mu, sigma = n.mean(0), n.var(0, unbiased=False)
    closed = (4 * 3.0 / (B * T * N) * (sigma - 1e-4) * (n - mu))[..., None].expand(T, B, N)
    torch.testing.assert_close(streamed, autograd_signal, rtol=1e-10, atol=1e-18)
    torch.testing.assert_close(closed, autograd_signal, rtol=1e-10, atol=1e-18)


@pytest.mark.parametrize("loss_name", ["rate", "readout", "rate_and_variance"])
def test_learning_signals_equal_autograd(loss_name):
    z = (torch.rand(40, 2, 16, dtype=torch.float64) < 0.2).double().requires_grad_(True)
    loss = losses(torch.float64, T=40, B=2)[loss_name]
    (autograd_signal,) = torch.autograd.grad(loss(z), z)
    torch.testing.assert_close(loss.learning_signal_of(z.detach()), autograd_signal, rtol=1e-10, atol=1e-18)


def test_eprop_steps_an_optimiser_and_lowers_the_rate_loss():
    net, x = make_case(True, torch.float32, T=100, B=8)
    loss = lifcore.RateLoss(r0=0.02, rate_weight=1.0)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    first = None
    for _ in range(30):
        grads, value = eprop_gradients(net, x, loss)
        first = value.item() if first is None else first
        opt.zero_grad()
        lifcore.snn.grad.apply_gradients(net, grads)
        opt.step()
    assert value.item() < 0.5 * first


def test_unknown_bptt_mode_names_mode():
    net, x = make_case(False, torch.float32)
    with pytest.raises(ValueError, match="mode"):
        bptt_gradients(net, x, lifcore.RateLoss(0.1), mode="truncated")

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


# --- e-prop in one pass (issue 17) -------------------------------------------------------------

@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("loss_name", ["rate", "readout", "rate_variance", "rate_and_variance"])
@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_one_pass_eprop_equals_two_passes(recurrent, learn, loss_name, chunk):
    """The factorised one-pass sums (per sample, contracted at the end) against the two-pass
    reference that knows L[t] at every step; chunk 7 leaves a partial last chunk of T = 80."""
    net, x = make_case(recurrent, torch.float64, learn)
    loss = losses(torch.float64)[loss_name]
    two, value_two = eprop_gradients(net, x, loss, passes=2)
    one, value_one = eprop_gradients(net, x, loss, chunk=chunk)
    assert set(one) == set(two)
    assert gradient_alignment(two, one)["relative_error"] <= 1e-10
    torch.testing.assert_close(value_one, value_two, rtol=1e-12, atol=0)


def test_which_losses_run_in_one_pass():
    rate, variance = lifcore.RateLoss(0.05), lifcore.RateVarianceLoss(1e-3)
    readout = lifcore.ReadoutLoss(torch.randn(3, 16), torch.randn(80, 4, 3))
    assert rate.factorised and variance.factorised and lifcore.snn.SumLoss(rate, variance).factorised
    assert not readout.needs_statistics  # online: one pass without factors
    assert not lifcore.snn.SumLoss(rate, readout).factorised  # falls back to two passes, still exact:
    net, x = make_case(True, torch.float64)
    mixed = lifcore.snn.SumLoss(rate, lifcore.ReadoutLoss(torch.randn(3, 16, dtype=torch.float64), torch.randn(80, 4, 3, dtype=torch.float64)))
    g_bptt, _ = bptt_gradients(net, x, mixed, mode="stop_z")
    g_eprop, _ = eprop_gradients(net, x, mixed)
    assert gradient_alignment(g_bptt, g_eprop)["relative_error"] <= 1e-10


def test_one_pass_keeps_the_same_buffers_for_any_length():
    """Memory independent of T: the kept buffers are the same for T = 150 and T = 1500, and
    nothing else of size T is made (the peak memory itself: benchmarks/lif_step.py)."""
    from lifcore.snn.workspace import release_workspace, workspace_bytes

    net = lifcore.LIFNetwork(12, 16, alpha=0.9, w_in_scale=3.0)
    sizes = []
    for T in (150, 1500):
        release_workspace()
        eprop_gradients(net, (torch.rand(T, 4, 12) < 0.2).float(), lifcore.RateVarianceLoss(1e-3), chunk=50)
        sizes.append(workspace_bytes())
    assert sizes[0] == sizes[1] > 0


def test_one_pass_peak_memory_does_not_grow_with_T():
    """Measured in a fresh process: e-prop's peak at T = 1000 within 10% of T = 100 (BPTT's grows ~10x)."""
    from lifcore.snn.measure import gradient_call, time_and_peak_memory

    net = lifcore.LIFNetwork(100, 150, alpha=0.95, w_in_scale=3.0)
    loss = lifcore.RateLoss(0.05)
    peaks = [time_and_peak_memory(gradient_call, "eprop", net, (torch.rand(T, 64, 100) < 0.05).float(), loss)[1]
             for T in (100, 1000)]
    print(f"\ne-prop peak memory T=100: {peaks[0]:.1f} MiB, T=1000: {peaks[1]:.1f} MiB")
    assert peaks[0] > 5  # the per-sample sums alone are 64 x 150 x 250 x 4 bytes = 9.2 MiB
    assert peaks[1] <= 1.1 * peaks[0]


@pytest.mark.parametrize("kwargs, match", [({"passes": 3}, "passes=3 must be 1 or 2"),
                                           ({"chunk": 0}, "chunk=0 must be a positive integer")])
def test_eprop_options_are_checked(kwargs, match):
    net, x = make_case(True, torch.float32)
    with pytest.raises(ValueError, match=match):
        eprop_gradients(net, x, lifcore.RateLoss(0.05), **kwargs)

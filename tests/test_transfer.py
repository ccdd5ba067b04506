"""The f-I curve in closed form against simulated spike counts (issue 2)."""
import pytest
import torch

from lifcore.snn import lif, transfer


@pytest.mark.parametrize("alpha, tol_discrete, tol_textbook", [(0.99, 0.01, 0.03), (0.95, 0.025, 0.09)])
def test_closed_form_matches_simulated_spike_counts(alpha, tol_discrete, tol_textbook):
    # currents from rheobase to a rate of ~0.25 spikes/step, where the discrete model is a fair LIF
    current = torch.linspace(1.05, 3.0, 25, dtype=torch.float64) * (1 - alpha)
    simulated = lif.simulated_rate(current, alpha, v_th=1.0, steps=50000)
    corrected = transfer.lif_rate(current, alpha, 1.0, discrete=True)
    textbook = transfer.lif_rate(current, alpha, 1.0, discrete=False)
    assert simulated.min() > 0.001 and simulated.max() < 0.35
    rel = ((simulated - corrected) / corrected).abs().max().item()
    rel_textbook = ((simulated - textbook) / textbook).abs().max().item()
    print(f"\nalpha={alpha}: max relative error, discrete-corrected {rel:.4f}, textbook {rel_textbook:.4f}")
    assert rel < tol_discrete
    assert rel_textbook < tol_textbook
    assert rel < rel_textbook  # the correction is a real improvement


def test_below_rheobase_is_silent():
    alpha = 0.95
    current = torch.tensor([0.0, 0.5, 0.99]) * (1 - alpha)
    assert transfer.lif_rate(current, alpha).abs().max() == 0
    assert lif.simulated_rate(current, alpha, steps=3000).abs().max() == 0


def test_soft_rate_tends_to_the_hard_one():
    current = torch.linspace(1.1, 3.0, 20, dtype=torch.float64) * 0.05
    hard = transfer.lif_rate(current, 0.95)
    soft = transfer.soft_lif_rate(current, 0.95, sharpness=200.0)
    torch.testing.assert_close(soft, hard, rtol=2e-3, atol=1e-6)


def test_soft_rate_derivative_equals_autograd_and_finite_difference():
    current = torch.linspace(-0.1, 0.3, 50, dtype=torch.float64).requires_grad_(True)
    rate = transfer.soft_lif_rate(current, 0.95, v_th=1.3, sharpness=7.0)
    (auto,) = torch.autograd.grad(rate.sum(), current)
    closed = transfer.soft_lif_rate_derivative(current.detach(), 0.95, v_th=1.3, sharpness=7.0)
    h = 1e-6
    fd = (transfer.soft_lif_rate(current.detach() + h, 0.95, 1.3, 7.0)
          - transfer.soft_lif_rate(current.detach() - h, 0.95, 1.3, 7.0)) / (2 * h)
    # torch.softplus is linear past k x > 20 (threshold), where sigmoid(20) = 1 - 2e-9: hence 1e-8
    torch.testing.assert_close(closed, auto, rtol=1e-8, atol=1e-14)
    torch.testing.assert_close(closed, fd, rtol=1e-6, atol=1e-9)
    assert (closed > 0).all()


@pytest.mark.parametrize("kwargs, name", [(dict(alpha=0.0), "alpha"), (dict(alpha=2.0), "alpha"), (dict(v_th=0.0), "v_th")])
def test_bad_arguments(kwargs, name):
    args = dict(alpha=0.9, v_th=1.0) | kwargs
    with pytest.raises(ValueError, match=name):
        transfer.lif_rate(torch.ones(3), **args)

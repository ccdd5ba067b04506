"""The deck's constraint methods (issue 10): one step of each against the same rule written out by hand
on a small deck model (`conftest.deck_forward`, which knows nothing of lifcore)."""
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import deck_forward
from lifcore import constraints
from lifcore.coding import SoftplusEncoder
from lifcore.constraints import Evaluation
from lifcore.train import deck_config
from lifcore.train.record import Recorder

LN2 = math.log(2)


def small_deck(seed=0, n=6, d=12, batch=16):
    torch.manual_seed(seed)
    encoder = SoftplusEncoder(dim=d, n_neurons=n, dtype=torch.float64)
    with torch.no_grad():  # gains and thresholds spread, so that rates and their errors differ by neuron
        encoder.log_gain.copy_(torch.linspace(-0.5, 0.5, n))
        encoder.log_threshold.copy_(torch.linspace(-2.0, 0.3, n))
    mixing = torch.randn(d, d, dtype=torch.float64)
    cx = mixing @ mixing.t() / d + 0.1 * torch.eye(d, dtype=torch.float64)
    x = torch.randn(batch, d, dtype=torch.float64) @ torch.linalg.cholesky(cx).t()
    point = x + 0.4 * torch.randn(batch, d, dtype=torch.float64)  # the deck's gain at the noisy input
    return encoder, point, cx


def closure(encoder, point, cx):
    """The deck's loss in bits: beta KL with beta = -1/2, i.e. -I in bits, averaged over the batch."""
    def evaluate():
        out = encoder.evaluate(point, cx)
        return Evaluation(-out["MI"].mean() / LN2, out["rate"].mean(0))
    return evaluate


def leaves(encoder):
    return [p.detach().clone().requires_grad_(True) for p in (encoder.weights, encoder.log_gain, encoder.log_threshold)]


def clipped(grads, max_norm):
    """torch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1."""
    total = torch.sqrt(sum((g**2).sum() for g in grads))
    coef = min(1.0, max_norm / (total.item() + 1e-6))
    return [g * coef for g in grads], total.item()


def unit_rows(w):
    return w / w.norm(dim=1, keepdim=True)


def test_deck_lagrange_step_equals_the_rule_by_hand():
    encoder, point, cx = small_deck()
    lr, rho, r0, clip = 0.05, 1.0, 1.0, 0.5
    method = constraints.make("lagrange", [encoder.weights, encoder.log_gain, encoder.log_threshold], r0=r0, lr=lr,
                              rho=rho, multiplier_lr=None, multiplier_init="uniform", fr_scope="neuron", n_neurons=6,
                              clip_grad_norm=clip, optimizer="sgd", project=encoder.project_)
    w, lg, lt = leaves(encoder)
    lam = method.lagrange_multiplier.clone().requires_grad_(True)
    assert (lam > 0).all() and (lam < 1).all()  # the deck's U(0, 1)
    kl, rates, _, _ = deck_forward(w, lg, lt, point, cx)
    h = rates.mean(0) - r0
    lagrangian = -0.5 * kl.mean() + (lam * h).sum() + rho / 2 * (h**2).sum()
    g_w, g_lg, g_lt, g_lam = torch.autograd.grad(lagrangian, [w, lg, lt, lam])
    (g_w, g_lg, g_lt, g_lam), norm = clipped([g_w, g_lg, g_lt, -g_lam], clip)  # ascent on lambda, then the clip
    assert norm > clip, "the clip must be active for this test to see it"
    record = method.step(closure(encoder, point, cx))
    torch.testing.assert_close(encoder.weights.detach(), unit_rows(w - lr * g_w).detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(encoder.log_gain.detach(), (lg - lr * g_lg).detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(encoder.log_threshold.detach(), (lt - lr * g_lt).detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(method.lagrange_multiplier, (lam - lr * g_lam).detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(record["rate_error"], h.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weights_see_rate_loss, shared", [(True, False), (False, False), (True, True)],
                         ids=["the deck's code", "as the slide says", "information moves gain and threshold too"])
def test_deck_two_losses_step_equals_the_rule_by_hand(weights_see_rate_loss, shared):
    encoder, point, cx = small_deck(seed=1)
    lr, fr_lr, r0, clip = 0.05, 0.2, 1.0, 0.1
    nonlinearity = [encoder.log_gain, encoder.log_threshold]
    method = constraints.make("two_losses", [encoder.weights] + (nonlinearity if shared else []), nonlinearity, r0=r0,
                              lr=lr, fr_lr=fr_lr, fr_scope="neuron", clip_grad_norm=clip, optimizer="sgd",
                              project=encoder.project_, weights_see_rate_loss=weights_see_rate_loss, shared=shared)
    method.measure = True  # record the objective after each part of the step
    w, lg, lt = leaves(encoder)
    kl, rates, _, _ = deck_forward(w, lg, lt, point, cx)
    objective = -0.5 * kl.mean()
    rate_loss = ((rates.mean(0) - r0) ** 2).sum()
    info_w, info_lg, info_lt = torch.autograd.grad(objective, [w, lg, lt], retain_graph=True)
    rate_w, rate_lg, rate_lt = torch.autograd.grad(rate_loss, [w, lg, lt])
    # 1. the rate step: gain and threshold, at fr_lr, unclipped
    lg1, lt1 = lg - fr_lr * rate_lg, lt - fr_lr * rate_lt
    # 2. the information step on W with the gradient from before it (and the rate loss's, as the deck's code),
    #    clipped over every parameter's gradient at that moment (gain and threshold hold the objective's)
    g_w = info_w + rate_w if weights_see_rate_loss else info_w
    (g_w, g_lg, g_lt), norm = clipped([g_w, info_lg, info_lt], clip)
    assert norm > clip
    # the information step moves gain and threshold on from where the rate step left them, when shared
    lg2, lt2 = (lg1 - lr * g_lg, lt1 - lr * g_lt) if shared else (lg1, lt1)
    record = method.step(closure(encoder, point, cx))
    torch.testing.assert_close(encoder.log_gain.detach(), lg2.detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(encoder.log_threshold.detach(), lt2.detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(encoder.weights.detach(), unit_rows(w - lr * g_w).detach(), rtol=1e-6, atol=1e-9)
    # the objective around the rate step, on the same batch: after the rate step only gain and threshold moved
    kl_mid = deck_forward(w, lg1, lt1, point, cx)[0]
    assert record["objective_after_rate_step"].item() == pytest.approx(-0.5 * kl_mid.mean().item(), rel=1e-6)
    assert record["objective"].item() == pytest.approx(objective.item(), rel=1e-6)


def test_deck_gamma_step_equals_the_rule_by_hand():
    encoder, point, cx = small_deck(seed=2)
    lr, clip, ema = 0.05, 0.5, 0.25
    method = constraints.make("gamma", [encoder.weights, encoder.log_threshold], r0=1.0, lr=lr, fr_scope="neuron",
                              n_neurons=6, clip_grad_norm=clip, optimizer="sgd", project=encoder.project_,
                              set_gain=encoder.set_homeostatic_gain, ema=ema)
    torch.testing.assert_close(encoder.gain_factor, torch.ones(6, dtype=torch.float64))  # 1 / rbar, rbar = 1 at the start
    w, _, lt = leaves(encoder)
    log_one = torch.zeros(6, dtype=torch.float64)  # a = 1: the homeostatic gain replaces exp(log_gain)
    kl, rates, _, _ = deck_forward(w, log_one, lt, point, cx)
    g_w, g_lt = torch.autograd.grad(-0.5 * kl.mean(), [w, lt])
    (g_w, g_lt), _ = clipped([g_w, g_lt], clip)
    log_gain_before = encoder.log_gain.detach().clone()
    method.step(closure(encoder, point, cx))
    torch.testing.assert_close(encoder.weights.detach(), unit_rows(w - lr * g_w).detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(encoder.log_threshold.detach(), (lt - lr * g_lt).detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(encoder.log_gain.detach(), log_gain_before)  # unused, unmoved
    average = (1 - ema) * 1.0 + ema * rates.mean(0).detach()
    torch.testing.assert_close(encoder.gain_factor, 1 / average, rtol=1e-10, atol=0)


def test_homeostatic_gain_is_one_over_the_moving_average_of_the_rates():
    encoder, point, cx = small_deck(seed=3)
    ema = 0.2
    method = constraints.make("gamma", [encoder.weights, encoder.log_threshold], r0=1.0, lr=0.01, fr_scope="neuron",
                              n_neurons=6, optimizer="sgd", set_gain=encoder.set_homeostatic_gain, ema=ema)
    seen = []
    evaluate = closure(encoder, point, cx)

    def recording():
        evaluation = evaluate()
        if len(seen) == step:
            seen.append(evaluation.rate.detach().clone())
        return evaluation

    average = torch.ones(6, dtype=torch.float64)
    for step in range(8):
        method.step(recording)
        average = (1 - ema) * average + ema * seen[step]
        torch.testing.assert_close(encoder.gain_factor, 1 / average, rtol=1e-12, atol=0)
    assert (average - 1).abs().max() > 0.05  # the rates moved the gains


def test_recorded_rate_gradient_of_augmented_lagrange_includes_the_rho_term():
    """W_grad/rate is the gradient of lambda.h + rho/2 |h|^2 (the quadratic term was missing once)."""
    config = deck_config(steps=10, n_neurons=6, patch_size=2, eval_size=16, rho=3.0, matrices_every=1)
    encoder, point, cx = small_deck(seed=4, d=config.dim)
    method = constraints.make("lagrange", [encoder.weights, encoder.log_gain, encoder.log_threshold], r0=1.0, lr=0.01,
                              rho=3.0, fr_scope="neuron", n_neurons=6)
    history = {}
    recorder = Recorder(config, encoder, method, SimpleNamespace(train=point[:16].float(), test=point[16:].float()), cx, history)
    recorder.matrices(1)
    w, lg, lt = leaves(encoder)
    rates = deck_forward(w, lg, lt, recorder.eval_point, cx)[1]
    h = rates.mean(0) - 1.0
    term = (method.lagrange_multiplier * h).sum() + 3.0 / 2 * (h**2).sum()
    (expected,) = torch.autograd.grad(term, w, retain_graph=True)
    recorded = history["W_grad/rate"][0][1]
    torch.testing.assert_close(recorded, expected, rtol=1e-6, atol=1e-10)
    (linear_only,) = torch.autograd.grad((method.lagrange_multiplier * h).sum(), w)
    assert (recorded - linear_only).norm() > 0.1 * recorded.norm()


@pytest.mark.parametrize("method, options, message", [
    ("two_losses", dict(rate_params=None), "needs rate_params"),
    ("lagrange", dict(n_neurons=None), "n_neurons"),
    ("lagrange", dict(rho=-1.0), "rho"),
    ("lagrange", dict(multiplier_init="ones"), "multiplier_init"),
    ("gamma", dict(ema=0.0), "homeostatic_ema"),
    ("sgd", {}, "method"),
])
def test_bad_method_options_name_the_option(method, options, message):
    w = torch.zeros(3, 4, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    options = dict(dict(rate_params=[b], r0=1.0, lr=0.1, n_neurons=3, set_gain=lambda g: None) | options)
    rate_params = options.pop("rate_params")
    if method != "gamma":
        options.pop("set_gain")
    with pytest.raises(ValueError, match=message):
        constraints.make(method, [w], rate_params, **options)

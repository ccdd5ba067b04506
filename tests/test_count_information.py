"""The information of spike counts (lifcore.snn.information), its loss under e-prop and BPTT, and the
chapter's rate constraint (issue 27)."""
import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

import lifcore
from lifcore.snn.grad import bptt_gradients, eprop_gradients, gradient_alignment
from lifcore.snn.information import (InformationLoss, StreamingCountInformation, count_information, noisy_presentations)
from lifcore.snn.transfer import equalising_rates

ROOT = Path(__file__).resolve().parents[1]


def gaussian_population(P, R, n, generator):
    """Rates r_pk = A s_p + n_pk, s_p ~ N(0, C), n_pk ~ N(0, S): the information of the closed form."""
    A = torch.randn(n, 3, generator=generator, dtype=torch.float64) * 0.05
    C = torch.diag(torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64))
    L = torch.randn(n, n, generator=generator, dtype=torch.float64) * 0.01
    S = L @ L.t() + 1e-4 * torch.eye(n, dtype=torch.float64)
    return A, C, S


def sample(A, C, S, P, R, generator):
    s = torch.randn(P, 3, generator=generator, dtype=torch.float64) @ C.sqrt()
    noise = torch.randn(P * R, A.shape[0], generator=generator, dtype=torch.float64) @ torch.linalg.cholesky(S).t()
    return (s @ A.t()).repeat_interleave(R, 0) + noise


def test_count_information_equals_the_closed_form_of_a_gaussian_population():
    """For Gaussian rates the estimate converges to 1/2 logdet(I + (S + s^2 I)^-1 A C A^T); over independent
    draws its mean lies within 4 standard errors (plus the log-determinants' known small-sample bias)."""
    generator = torch.Generator().manual_seed(0)
    n, P, R, s_out = 5, 2000, 4, 0.01
    A, C, S = gaussian_population(P, R, n, generator)
    noise = S + s_out**2 * torch.eye(n, dtype=torch.float64)
    exact = 0.5 * torch.logdet(torch.eye(n, dtype=torch.float64) + torch.linalg.solve(noise, A @ C @ A.t())).item()
    estimates = torch.tensor([count_information(sample(A, C, S, P, R, generator), R, s_out).item() for _ in range(12)])
    standard_error = estimates.std() / math.sqrt(len(estimates))
    bias = n * (n + 1) / (2 * P * (R - 1))  # the order of logdet's bias at P (R - 1) degrees of freedom
    assert abs(estimates.mean().item() - exact) < 4 * standard_error + bias, (estimates.mean(), exact, standard_error)
    assert exact > 0.5  # the case carries information: the test can tell a wrong estimator


def test_streaming_estimate_over_batches_equals_one_batch_of_all():
    generator = torch.Generator().manual_seed(1)
    A, C, S = gaussian_population(64, 3, 6, generator)
    rates = sample(A, C, S, 64, 3, generator)
    streaming = StreamingCountInformation(6, 3, 0.01)
    for part in rates.split(16 * 3):  # whole patches per batch
        streaming.update(part)
    # the pooled within-patch scatter is the same; the response covariance too (Chan's merge)
    assert streaming.information() == pytest.approx(count_information(rates, 3, 0.01).item(), rel=1e-10)
    assert streaming.information_bits() == pytest.approx(streaming.information() / math.log(2), rel=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: count_information(torch.zeros(10, 3), 1, 0.01), "repeats"),
    (lambda: count_information(torch.zeros(10, 3), 3, 0.01), "P >= 2 patches"),
    (lambda: count_information(torch.zeros(12, 3), 3, 0.0), "output_noise"),
    (lambda: InformationLoss(4, r0=1.5), "r0"),
    (lambda: InformationLoss(4, r0=0.1, multiplier_lr=-1), "multiplier_lr"),
    (lambda: noisy_presentations(torch.zeros(3, 4), 4, 10, -1.0), "input_noise"),
    (lambda: lifcore.LIFNetwork(4, 3, input_norm=0), "input_norm"),
    (lambda: equalising_rates(torch.zeros(5, 2), torch.tensor([0.1, -0.1])), "mean_rate"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def small_case(recurrent=True):
    torch.manual_seed(3)
    net = lifcore.LIFNetwork(12, 10, alpha=0.9, w_in_scale=3.0, recurrent=recurrent, learn_bias=True, learn_threshold=True,
                             dtype=torch.float64)
    with torch.no_grad():
        net.bias.fill_(0.05)
    x = noisy_presentations(torch.randn(6, 12, dtype=torch.float64), 3, 30, 0.5, torch.Generator().manual_seed(4))
    loss = InformationLoss(3, r0=0.1, output_noise=0.02)
    loss.multiplier = torch.rand(10, dtype=torch.float64)
    return net, x, loss


@pytest.mark.parametrize("recurrent", [True, False])
def test_eprop_of_the_information_loss_equals_stop_z_bptt_and_its_two_pass_reference(recurrent):
    net, x, loss = small_case(recurrent)
    one, value_one = eprop_gradients(net, x, loss)
    two, value_two = eprop_gradients(net, x, loss, passes=2)
    stop, value_stop = bptt_gradients(net, x, loss, mode="stop_z")
    assert set(one) == set(stop)
    for name in one:
        assert torch.linalg.norm(one[name] - stop[name]) <= 1e-10 * torch.linalg.norm(stop[name]), name
        assert torch.linalg.norm(one[name] - two[name]) <= 1e-10 * torch.linalg.norm(two[name]), name
        assert torch.linalg.norm(stop[name]) > 0, name  # every parameter gets a gradient: the check can fail
    assert value_one.item() == pytest.approx(value_stop.item(), rel=1e-12) == value_two.item()
    full, _ = bptt_gradients(net, x, loss, mode="full")
    cosine = gradient_alignment(full, one)["cosine"]
    print(f"e-prop against full BPTT (recurrent={recurrent}): cosine {cosine:.3f}")
    assert 0 < cosine <= 1 + 1e-12


def test_the_loss_is_minus_the_information_plus_the_augmented_lagrangian_and_its_multipliers_ascend():
    net, x, loss = small_case()
    with torch.no_grad():
        z, _ = net(x)
    rates = (z.sum(0) / z.shape[0]).double()
    h = rates.mean(0) / loss.r0 - 1
    h_a, h_b = rates[:9].mean(0) / loss.r0 - 1, rates[9:].mean(0) / loss.r0 - 1  # 3 patches x 3 presentations each half
    multiplier = loss.multiplier.clone()
    expected = -count_information(rates, 3, 0.02) + (multiplier * h).sum() + 0.5 * loss.rho * (h_a * h_b).sum()
    assert loss(z).item() == pytest.approx(expected.item(), rel=1e-12)
    loss.after_step()
    assert torch.allclose(loss.multiplier, multiplier + loss.multiplier_lr * h)
    loss.after_step()  # no new evaluation: no second ascent
    assert torch.allclose(loss.multiplier, multiplier + loss.multiplier_lr * h)


def test_the_split_half_penalty_has_no_sampling_variance_term():
    """Over many batches of one population the mean of rho/2 h_A h_B is rho/2 (E h)^2, where the whole batch's
    rho/2 h^2 adds rho/2 Var(h): the variance of each rate across patches, over P."""
    generator = torch.Generator().manual_seed(8)
    loss = InformationLoss(2, r0=0.1, rho=2.0, multiplier_lr=0.0)
    split, whole, means = [], [], []
    for _ in range(4000):
        rates = 0.12 + 0.05 * torch.randn(8, 1, generator=generator, dtype=torch.float64).repeat_interleave(2, 0)
        rates = rates + 0.01 * torch.randn(16, 1, generator=generator, dtype=torch.float64)
        h = rates.mean(0) / 0.1 - 1
        split.append((loss._energy(rates) + count_information(rates, 2, loss.output_noise)).item())
        whole.append((h**2).item())
        means.append(h.item())
    bias = torch.tensor(means).mean().item() ** 2
    assert sum(split) / len(split) == pytest.approx(bias, rel=0.1)       # (E h)^2 = 0.04
    assert sum(whole) / len(whole) > 1.5 * bias                           # + Var(h): the term the split removes


def test_the_response_covariance_is_unbiased_for_few_patches():
    """With P = 6 patches the covariance of all P R rates over P R - 1 misses the signal by R (P - 1) / (P R - 1);
    the estimate (patch means' covariance + (1 - 1/R) noise) has the population's covariance as its mean."""
    from lifcore.snn.information import count_covariances
    generator = torch.Generator().manual_seed(9)
    n, P, R = 3, 6, 4
    A, C, S = gaussian_population(P, R, n, generator)
    truth = A @ C @ A.t() + S
    total = torch.zeros(n, n, dtype=torch.float64)
    draws = 4000
    for _ in range(draws):
        total += count_covariances(sample(A, C, S, P, R, generator), R)[0]
    assert torch.allclose(total / draws, truth, rtol=0.05, atol=0.02 * truth.diagonal().min().item())


def test_input_norm_holds_every_filter_at_its_norm_through_training():
    torch.manual_seed(0)
    net = lifcore.LIFNetwork(12, 8, input_norm=0.05, learn_bias=True)
    assert torch.allclose(net.w_in.norm(dim=1), torch.full((8,), 0.05))
    x = noisy_presentations(torch.randn(4, 12), 2, 20, 0.5)
    lifcore.snn.fit.fit(net, x, InformationLoss(2, r0=0.1), steps=3, lr=0.01, progress=False)
    assert torch.allclose(net.w_in.norm(dim=1), torch.full((8,), 0.05), rtol=1e-5)


def test_simulated_rate_takes_one_threshold_per_current():
    current = torch.tensor([0.15, 0.15, 0.3], dtype=torch.float64)
    thresholds = torch.tensor([1.0, 1.3, 2.0], dtype=torch.float64)
    together = lifcore.simulated_rate(current, 0.9, thresholds, steps=500)
    alone = torch.stack([lifcore.simulated_rate(current[k:k + 1], 0.9, float(thresholds[k]), steps=500)[0] for k in range(3)])
    assert torch.equal(together, alone)
    assert together[0] > together[1]  # a higher threshold fires less: the thresholds were used


def test_equalising_rates_are_the_distribution_function_and_the_exponential_quantiles():
    current = torch.linspace(-1, 1, 101, dtype=torch.float64)[torch.randperm(101)][:, None].repeat(1, 2)
    uniform = equalising_rates(current)
    assert torch.allclose(uniform[:, 0], (current[:, 0] + 1) / 2 * 100 / 101 + 0.5 / 101, atol=1e-12)
    exponential = equalising_rates(current, torch.tensor([0.1, 0.2]))
    assert exponential.mean(0) == pytest.approx([0.1, 0.2], rel=0.05)  # the exponential's mean, at 101 mid-ranks
    assert torch.equal(exponential.argsort(0), current.argsort(0))  # monotone in the current


def test_the_chapter_run_holds_every_neuron_within_ten_percent_of_its_target():
    """The chapter "A spiking network trained on its own information" at its book-profile size, through the
    module the chapter runs (notebooks/spiking_runs.py) with the chapter's own parameters: after its e-prop
    run every neuron's rate on fresh presentations of training patches is within 10 % of r0."""
    import json
    import sys
    sys.path.insert(0, str(ROOT / "notebooks"))
    import chapter_runs
    import spiking_runs

    cells = json.loads((ROOT / "notebooks/spiking_information.ipynb").read_text())["cells"]
    namespace = {}
    exec("".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"]), namespace)
    namespace.update(yaml.safe_load((ROOT / "book/profiles/book.yaml").read_text())["spiking_information"])
    runs = spiking_runs.InformationRuns(**{name: namespace[name] for name in spiking_runs.PARAMETERS},
                                        images=chapter_runs.images_here())
    net, _ = runs.train("eprop", namespace["steps"])
    held = runs.within(net)
    assert bool(held.all()), f"{int((~held).sum())} of {held.numel()} neurons off their target by 10 % or more"

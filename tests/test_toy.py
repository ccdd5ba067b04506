"""The toy Gaussian problem (issue 4): the deck's own loop is the oracle."""
import pytest
import torch

from lifcore import toy
from lifcore import constraints
from lifcore.constraints import Evaluation


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the deck's code, unchanged, then runs in float64
    yield
    torch.set_default_dtype(previous)


STARTS = [(2.0, 1.0), (0.0, 0.0), (-1.0, 4.0), (3.0, 2.5)]


@pytest.mark.parametrize("start", STARTS)
def test_alternating_follows_the_decks_loop(start, float64_default):
    oracle = toy.deck_loop(start, 1500)
    ours = toy.alternating(torch.tensor(start), 1500)
    assert ours.shape == (1501, 2)
    assert (ours - oracle).abs().max() < 1e-6
    print(f"\nstart {start}: max |ours - deck| over 1500 iterations (float64) {(ours - oracle).abs().max():.1e}")


def test_alternating_follows_the_decks_float32_loop():
    oracle = toy.deck_loop((2.0, 1.0), 1500)  # float32, as on the slide
    ours = toy.alternating(torch.tensor([2.0, 1.0]), 1500)
    assert (ours - oracle).abs().max() < 1e-5


def test_vectorised_starts_equal_single_starts():
    starts = torch.tensor(STARTS, dtype=torch.float64)
    batch = toy.alternating(starts, 300, every=100)
    assert batch.shape == (4, 4, 2)
    for k, start in enumerate(starts):
        torch.testing.assert_close(batch[:, k], toy.alternating(start, 300, every=100), rtol=0, atol=0)
    last = toy.alternating(starts, 300, last_only=True)
    assert last.shape == (2, 4, 2) and torch.equal(last[-1], batch[-1])


@pytest.mark.parametrize("method, options, toy_options", [
    ("alternating", dict(fr_lr=0.2), dict(fr_lr=0.2)),
    ("two_losses", dict(fr_lr=0.2), dict(fr_lr=0.2)),
    ("lagrange", dict(multiplier_lr=0.2, rho=1.0, multiplier_init="zero"), dict(multiplier_lr=0.2, rho=1.0)),
    ("penalty", dict(rate_weight=5.0), dict(rate_weight=5.0)),
])
def test_constraint_methods_give_the_same_trajectories(method, options, toy_options):
    """lifcore.constraints (autograd, the coding model's methods) against the toy's closed-form loops."""
    starts = torch.tensor(STARTS, dtype=torch.float64)
    x1 = starts[:, 0].clone().requires_grad_(True)
    x2 = starts[:, 1].clone().requires_grad_(True)
    info_params = [x1] if method == "two_losses" else [x1, x2]  # the deck's Two_losses: disjoint sets
    rate_params = [x2] if method in ("alternating", "two_losses") else None
    stepper = constraints.make(method, info_params, rate_params, r0=3.0, lr=0.01, fr_scope="neuron",
                               n_neurons=len(STARTS), optimizer="sgd", **options)
    points = [starts.clone()]
    for _ in range(400):
        stepper.step(lambda: Evaluation(-toy.bump(x1, x2).sum(), x2))
        points.append(torch.stack((x1, x2), -1).detach().clone())
    expected = toy.run("disjoint" if method == "two_losses" else method, starts, 400, 0.01, **toy_options)
    torch.testing.assert_close(torch.stack(points), expected, rtol=0, atol=1e-12)


def test_stationary_point_of_alternating_is_not_the_constrained_optimum():
    point = toy.alternating_stationary_point(0.01, 0.2)
    final = toy.alternating(torch.tensor([2.0, 1.0]), 30000, last_only=True)[-1]
    torch.testing.assert_close(final, torch.tensor([point.x1, point.x2], dtype=torch.float64), rtol=0, atol=1e-9)
    assert 5e-3 < point.offset < 2e-2  # (-0.0449, 2.9927) against (-0.05, 3)
    # the augmented Lagrangian lands on the constrained optimum itself
    final_lagrange = toy.lagrange(torch.tensor([2.0, 1.0]), 30000, multiplier_lr=0.2, rho=1.0, last_only=True)[-1]
    torch.testing.assert_close(final_lagrange, torch.tensor(toy.CONSTRAINED_OPTIMUM, dtype=torch.float64), rtol=0, atol=1e-9)


def test_disjoint_toy_converges_to_the_constrained_optimum():
    """With disjoint parameters (the deck's Two_losses) there is no offset: x2 = 3 is the second step's
    fixed point, and on that line the first step climbs to the best x1."""
    final = toy.disjoint(torch.tensor([2.0, 1.0]), 30000, last_only=True)[-1]
    torch.testing.assert_close(final, torch.tensor(toy.CONSTRAINED_OPTIMUM, dtype=torch.float64), rtol=0, atol=1e-9)


def test_offset_grows_with_the_ratio_of_learning_rates():
    offsets = [toy.alternating_stationary_point(lr, 0.2).offset for lr in (0.001, 0.01, 0.05)]
    assert offsets[0] < offsets[1] < offsets[2]
    assert offsets[1] / offsets[0] == pytest.approx(10, rel=0.05)  # ~ linear in lr for small lr


def test_plain_lagrangian_descent_ascent_does_not_settle_on_the_toy():
    """Along x2 the bump curves the wrong way at the optimum: plain descent-ascent circles."""
    late = toy.lagrange(torch.tensor([2.0, 1.0]), 40000, multiplier_lr=0.2, every=1000)[20:]
    assert (late[:, 1] - 3.0).abs().max() > 0.5


def test_hit_times_and_tolerance():
    traj, hit = toy.alternating(torch.tensor([[2.0, 1.0], [8.0, -6.0]]), 20000, last_only=True, tolerance=1e-3,
                               reference=(-0.0449, 2.9927))
    assert 1000 < hit[0] < 20000 and hit[1] == -1  # the far start never arrives: the bump is flat there


@pytest.mark.parametrize("call, name", [
    (lambda: toy.alternating(torch.zeros(3), 10), "x0"),
    (lambda: toy.alternating(torch.zeros(2), -1), "steps"),
    (lambda: toy.alternating(torch.zeros(2), 10, lr=-0.1), "lr"),
    (lambda: toy.run("adam", torch.zeros(2), 10), "method"),
    (lambda: toy.run("two_losses", torch.zeros(2), 10), "method"),
    (lambda: toy.alternating(torch.zeros(2), 10, every=0), "every"),
    (lambda: toy.alternating_stationary_point(0.01, 0.6), "fr_lr"),
])
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()

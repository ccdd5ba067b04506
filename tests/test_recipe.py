"""The recipe that trains the deck's model to centre-surround fields, and what it is made of (issue 23):
the closed-form start, a learning rate of the nonlinearity's own, a run that starts where another
ends, the DoG filter option in a run."""
import math

import pytest
import torch

from lifcore.coding import dog, fields, mosaics
from lifcore.train import RECIPE, TrainConfig, deck_config, evaluate, recipe_config, train
from lifcore.train.build import build_encoder, build_method, centre_surround_filters, whitening_dog

SIZE = dict(patch_size=8, n_neurons=24, batch_size=32, n_patches=4000, cov_batches=40, eval_size=64)


def covariance(p, seed=0):
    """A covariance with the spatial structure of natural patches: 1/f-like, falling with distance, colours correlated."""
    axis = torch.arange(p, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    pos = torch.stack((y.reshape(-1), x.reshape(-1)), 1)
    space = torch.exp(-torch.cdist(pos, pos) / 3.0)
    colour = torch.tensor([[1.0, 0.9, 0.7], [0.9, 1.0, 0.75], [0.7, 0.75, 1.0]], dtype=torch.float64)
    return torch.kron(space, colour) + 1e-3 * torch.eye(3 * p * p, dtype=torch.float64)


def test_the_closed_form_start_is_on_and_off_centre_surround_mosaics():
    p, n = 14, 40
    c = covariance(p)
    w = centre_surround_filters(c, n, p, "lattice")
    torch.testing.assert_close(w.norm(dim=1), torch.ones(n, dtype=torch.float64))
    fit = dog.fit(w, p)
    labels = fields.kinds(w, p, fit=fit)
    assert labels.count("centre-surround") == n
    assert (fit.polarity[:n // 2] == 1).all() and (fit.polarity[n // 2:] == -1).all()
    found = mosaics.mosaics(fit, labels)
    assert found["ON"]["regularity"] > 10 and found["OFF"]["regularity"] > 10  # lattices
    torch.testing.assert_close(found["ON"]["centres"], mosaics.hexagonal_lattice(n // 2, p), atol=0.02, rtol=0)
    scattered = centre_surround_filters(c, n, p, "scattered", seed=3)
    sfit = dog.fit(scattered, p)
    assert max(mosaics.regularity_index(sfit.centre[sfit.polarity == s]) for s in (1, -1)) < 3
    # every field is the whitening filter's DoG, moved: the fit explains it whole, and its surround is a surround
    shape = whitening_dog(c, n, p)
    assert fit.quality.min() > 0.99 and shape.quality[0] > 0.6 and shape.surround[0] > fields.DOG_SURROUND  # ringing aside
    with pytest.raises(ValueError, match="placement='grid' is unknown"):
        centre_surround_filters(c, n, p, "grid")


def test_hexagonal_lattices_fit_the_mask_and_interleave():
    on = mosaics.hexagonal_lattice(50, 18)
    off = mosaics.hexagonal_lattice(50, 18, (0.5, 0.5 / math.sqrt(3)))
    assert on.shape == off.shape == (50, 2)
    radius = 18 / 2 - 0.5
    assert float(((on - 8.5) ** 2).sum(1).max().sqrt()) <= radius + 1e-9
    nn = mosaics.nearest_neighbour_distances(on)
    assert float(nn.std() / nn.mean()) < 1e-6  # every nearest neighbour at the lattice's spacing
    assert float(torch.cdist(on, off).min()) > 0.4 * float(nn.mean())  # the second lattice sits between the first's points
    with pytest.raises(ValueError, match="count=0 must be a positive integer"):
        mosaics.hexagonal_lattice(0, 4)


def test_the_nonlinearity_learns_at_its_own_rate():
    config = deck_config(5, **SIZE, nonlinearity_lr=0.3, clip_grad_norm=0.0, multiplier_lr=1.0)
    encoder = build_encoder(config, "cpu")
    method = build_method(config, encoder)
    rates = {id(p): g["lr"] for g in method.optimizers["main"].param_groups for p in g["params"]}
    assert rates[id(encoder.weights)] == 0.01 and rates[id(encoder.log_gain)] == rates[id(encoder.log_threshold)] == 0.3
    method.set_learning_rates(0.001)  # a schedule scales both alike
    rates = {id(p): g["lr"] for g in method.optimizers["main"].param_groups for p in g["params"]}
    assert rates[id(encoder.weights)] == pytest.approx(0.001) and rates[id(encoder.log_gain)] == pytest.approx(0.03)
    # one step of SGD moves each parameter by its own rate times its gradient
    x = torch.randn(16, config.dim)
    before = {n: p.detach().clone() for n, p in encoder.named_parameters()}
    grads = {}

    def evaluate():
        from lifcore.constraints import Evaluation
        out = encoder.evaluate(x, torch.eye(config.dim))
        return Evaluation(-out["MI"].mean(), out["rate"].mean(0), out["rate"])

    ev = evaluate()
    loss = ev.objective + (method.multiplier * (ev.rate - 1)).sum() + 0.5 * ((ev.rate - 1) ** 2).sum()
    grads = dict(zip([n for n, _ in encoder.named_parameters()], torch.autograd.grad(loss, list(encoder.parameters()))))
    method.step(evaluate)
    torch.testing.assert_close(encoder.log_gain.detach(), before["log_gain"] - 0.03 * grads["log_gain"])
    torch.testing.assert_close(encoder.log_threshold.detach(), before["log_threshold"] - 0.03 * grads["log_threshold"])


def test_a_run_starts_where_its_start_ends_and_a_finished_one_does_not_need_it(tmp_path):
    first = recipe_config(6, **SIZE, images=())
    second = deck_config(4, **SIZE, images=(), start=first)
    run = train(second, cache_dir=tmp_path, progress=False)
    begun = train(first, cache_dir=tmp_path, progress=False)
    torch.testing.assert_close(run.series("kernels")[1][0], begun.model.weights.detach())
    assert second.key() != deck_config(4, **SIZE, images=(), start=recipe_config(7, **SIZE, images=())).key()
    (tmp_path / first.key() / "result.pt").unlink()  # a finished run loads without its start
    again = train(second, cache_dir=tmp_path, progress=False)
    assert not (tmp_path / first.key() / "result.pt").exists()
    torch.testing.assert_close(again.model.weights, run.model.weights)
    assert TrainConfig(**second.asdict()) == second  # the nested config survives asdict (the sweep's jobs, JSON)
    with pytest.raises(ValueError, match="start: a run starts from an encoder of its own shape; n_neurons=24 there, 12 here"):
        deck_config(4, **(SIZE | {"n_neurons": 12}), start=first)


def test_the_recipe_ends_with_centre_surround_fields_and_more_information_than_the_decks_schedule():
    recipe = train(recipe_config(300, **SIZE, images=()), cache_dir=None, progress=False, tensorboard=False)
    deck = train(deck_config(300, **SIZE, images=()), cache_dir=None, progress=False, tensorboard=False)
    labels = fields.kinds(recipe.model.weights, SIZE["patch_size"])
    assert labels.count("noise") == 0 and labels.count("centre-surround") >= 0.6 * len(labels)
    assert fields.kinds(deck.model.weights, SIZE["patch_size"]).count("centre-surround") == 0
    assert evaluate.held_out(recipe, 512)["I"] > 1.2 * evaluate.held_out(deck, 512)["I"]
    assert RECIPE["gain_at"] == "clean" and recipe.config.jitter_every == 0


def test_dog_filters_train_in_a_run_and_refuse_what_acts_on_pixels():
    config = recipe_config(5, **SIZE, images=(), filter_shape="dog", filter_init="random")
    run = train(config, cache_dir=None, progress=False, tensorboard=False)
    assert "W_grad" not in run.history and len(run.series("kernels")[1]) >= 1
    torch.testing.assert_close(run.model.weights.norm(dim=1), torch.ones(SIZE["n_neurons"]))
    with pytest.raises(ValueError, match="filter_shape='dog' draws every filter from its DoG parameters: it takes no jitter_every"):
        deck_config(100, **SIZE, filter_shape="dog")
    with pytest.raises(ValueError, match="it takes no filter_init"):
        recipe_config(100, **SIZE, filter_shape="dog")
    with pytest.raises(ValueError, match="needs encoder='softplus'"):
        TrainConfig(filter_shape="dog")


def test_one_spelling_one_key_and_options_that_cannot_act_are_refused():
    import numpy as np

    assert deck_config(5, **SIZE, fr_lr=1).key() == deck_config(5, **SIZE, fr_lr=1.0).key()
    assert deck_config(5, **SIZE, nonlinearity_lr=np.float32(0.5)).key() == deck_config(5, **SIZE, nonlinearity_lr=0.5).key()
    with pytest.raises(ValueError, match="nonlinearity_lr=0.1 has nothing to act on: with method='two_losses'"):
        deck_config(5, **SIZE, method="two_losses", nonlinearity_lr=0.1)
    with pytest.raises(ValueError, match="filter_init='lattice' draws an ON and an OFF population: it needs n_neurons >= 2"):
        recipe_config(5, **(SIZE | {"n_neurons": 1}))


def test_late_change_of_a_series_against_its_closed_form():
    """A series linear in its steps: the change over the last quarter is the slope times the stretch."""
    steps = list(range(0, 1001, 10))
    values = [3.0 + 0.002 * s for s in steps]
    late = evaluate.late_change(steps, values, share=0.25)
    assert late["slope"] == pytest.approx(0.002)
    assert late["change"] == pytest.approx(0.002 * 250)
    assert late["relative"] == pytest.approx(0.5 / 5.0)
    with pytest.raises(ValueError, match="share=0"):
        evaluate.late_change(steps, values, share=0)
    with pytest.raises(ValueError, match="same length"):
        evaluate.late_change(steps, values[:-1])

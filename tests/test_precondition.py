"""The filter step preconditioned by the input covariance (lifcore.constraints.precondition) against autograd
of the same objective through the whitened parametrisation W = V Q, and the bicubic resampling of images
(lifcore.coding.data.resample_image) against Keys' convolution computed directly."""
import math

import numpy as np
import pytest
import torch

from lifcore.coding import SoftplusEncoder
from lifcore.coding.data import natural_patches, resample_image
from lifcore.constraints import Evaluation, make
from lifcore.constraints.precondition import InputPreconditioner, input_metric, whitening_factor
from lifcore.train import TrainConfig, deck_config, train
from lifcore.train.build import build_encoder, build_method


def _problem(seed=0, patch=2, n=5, batch=16):
    g = torch.Generator().manual_seed(seed)
    dim = 3 * patch**2
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    spectrum = torch.logspace(1, -4, dim, dtype=torch.float64)  # natural patches' spread of variances
    q, _ = torch.linalg.qr(a)
    cov = q @ torch.diag(spectrum) @ q.t()
    torch.manual_seed(seed)
    enc = SoftplusEncoder(dim=dim, n_neurons=n, dtype=torch.float64)
    x = torch.randn(batch, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).t()
    return enc, cov, x


def _objective(enc, weights, cov, x):
    """-I (bits) plus the deck's augmented Lagrangian, with the filters given as a tensor."""
    u = x @ weights.t()
    gain = enc.gain_of_current(u)
    from lifcore.coding import info
    mi = info.gain_scaled_information(weights @ cov @ weights.t(), weights @ weights.t(), gain, enc.input_noise,
                                      enc.output_noise)
    h = enc.rate_of_current(u).mean(0) - 1.0
    return -mi.mean() / math.log(2) + 0.3 * h.sum() + 0.5 * (h**2).sum()


def test_input_metric_is_the_scaled_inverse():
    _, cov, _ = _problem()
    metric = input_metric(cov, 0.4)
    shifted = cov + 0.16 * torch.eye(cov.shape[0], dtype=torch.float64)
    smallest, largest = torch.linalg.eigvalsh(shifted)[[0, -1]]
    assert torch.allclose(metric @ shifted, largest * torch.eye(cov.shape[0], dtype=torch.float64), atol=1e-9 * largest)
    q = whitening_factor(metric)
    assert torch.allclose(q @ q, metric, atol=1e-9 * largest)
    # the step along the direction of largest variance is SGD's; every other direction is faster
    values = torch.linalg.eigvalsh(metric)
    assert values.min().item() == pytest.approx(1.0, rel=1e-9)
    assert values.max().item() == pytest.approx((largest / smallest).item(), rel=1e-9)


def test_preconditioned_gradient_is_sgd_on_whitened_filters():
    """(dL/dW) P equals (dL/dV) Q for L(V Q), by autograd through the parametrisation: a step of SGD on V
    moves W = V Q by -lr (dL/dV) Q."""
    enc, cov, x = _problem()
    metric = input_metric(cov, enc.input_noise)
    q = whitening_factor(metric)
    w = enc.weights.detach().clone()
    # the preconditioner on autograd's dL/dW (no tangent projection)
    enc.weights.grad = torch.autograd.grad(_objective(enc, enc.weights, cov, x), enc.weights)[0]
    InputPreconditioner(enc.weights, cov, enc.input_noise, tangent=False).apply_()
    # autograd through W = V Q
    v = (w @ torch.linalg.inv(q)).requires_grad_(True)
    grad_v = torch.autograd.grad(_objective(enc, v @ q, cov, x), v)[0]
    expected = grad_v @ q
    assert torch.allclose(enc.weights.grad, expected, rtol=1e-9, atol=1e-12 * expected.abs().max())
    # and it is not the plain gradient (the check can fail)
    plain = torch.autograd.grad(_objective(enc, enc.weights, cov, x), enc.weights)[0]
    assert (plain - expected).norm() > 0.1 * expected.norm()


def test_tangent_projection_and_the_methods_step():
    """With the deck's unit-norm filters the step is T((T g) P), T each filter's tangent projection: tangent, and
    descending to first order ((Tg) P (Tg) >= 0). The Lagrange method's SGD step moves W by exactly -lr times it,
    the clipping applied first, to the plain gradient (a clipping of the preconditioned one fails this)."""
    enc, cov, x = _problem(seed=1)
    pre = InputPreconditioner(enc.weights, cov, enc.input_noise, tangent=True)
    clip = 0.05
    method = make("lagrange", [enc.weights], r0=1.0, lr=0.05, optimizer="sgd", fr_scope="neuron", n_neurons=5,
                  rho=1.0, multiplier_lr=0.1, multiplier_init="zero", preconditioners=[pre], clip_grad_norm=clip)
    before = enc.weights.detach().clone()
    from lifcore.coding import info

    def information(w):
        u = x @ w.t()
        mi = info.gain_scaled_information(w @ cov @ w.t(), w @ w.t(), enc.gain_of_current(u), enc.input_noise,
                                          enc.output_noise)
        return mi, enc.rate_of_current(u).mean(0)

    def full():
        mi, rate = information(enc.weights)
        return Evaluation(-mi.mean() / math.log(2) + 0.3 * (rate - 1).sum(), rate)

    # the method's objective: -I + 0.3 sum h + 0 * h (multipliers at zero) + rho/2 h^2
    mi, rate = information(enc.weights)
    h = rate - 1.0
    grad = torch.autograd.grad(-mi.mean() / math.log(2) + 0.3 * h.sum() + 0.5 * (h**2).sum(), enc.weights)[0]
    assert grad.norm() > 2 * clip  # the clipping acts
    grad = grad * clip / (grad.norm() + 1e-6)  # torch.nn.utils.clip_grad_norm_ adds 1e-6 to the norm

    def tangent(g):
        return g - (g * before).sum(1, keepdim=True) / (before * before).sum(1, keepdim=True) * before

    metric = input_metric(cov, enc.input_noise)
    step = tangent(tangent(grad) @ metric)
    assert ((tangent(grad) * step).sum() > 0).item()  # a descent direction
    method.step(full)
    moved = enc.weights.detach() - before
    assert torch.allclose(moved, -0.05 * step, rtol=1e-9, atol=1e-14)
    assert (moved * before).sum(1).abs().max() < 1e-10 * moved.abs().max()  # the code's step is tangent


def test_config_refuses_what_cannot_act():
    with pytest.raises(ValueError, match="precondition='whiten' is unknown; allowed: 'none', 'input'"):
        TrainConfig(precondition="whiten")
    with pytest.raises(ValueError, match="optimizer='adam' rescales every coordinate"):
        TrainConfig(precondition="input")  # the project's default optimiser is Adam
    with pytest.raises(ValueError, match="precondition='input' acts on free pixels"):
        deck_config(10, precondition="input", filter_shape="dog")
    with pytest.raises(ValueError, match="input_noise=0"):
        input_metric(torch.eye(3, dtype=torch.float64), 0.0)
    with pytest.raises(ValueError, match="square"):
        input_metric(torch.ones(3, 2), 0.4)


def test_a_preconditioned_run_trains_and_repeats():
    config = deck_config(6, n_neurons=6, patch_size=4, n_patches=2000, cov_batches=8, batch_size=64, eval_size=64,
                         precondition="input", images=("astronaut", "coffee"))
    first = train(config, cache_dir=None, progress=False, tensorboard=False)
    second = train(config, cache_dir=None, progress=False, tensorboard=False)
    assert torch.equal(first.model.weights, second.model.weights)
    plain = train(config.replace(precondition="none"), cache_dir=None, progress=False, tensorboard=False)
    assert not torch.allclose(first.model.weights, plain.model.weights)
    assert torch.allclose(first.model.weights.norm(dim=1), torch.ones(6), atol=1e-5)
    method = build_method(config, build_encoder(config, "cpu"), first.input_covariance)
    assert len(method.preconditioners) == 1


# -- resampling ------------------------------------------------------------------------------------------------

def _keys(t, a=-0.75):
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def _direct_bicubic(image, out_h, out_w):
    """Keys' cubic convolution, one output pixel at a time, border pixels repeated."""
    h, w, c = image.shape
    out = np.zeros((out_h, out_w, c))
    for i in range(out_h):
        sy = (i + 0.5) * h / out_h - 0.5
        y0 = math.floor(sy)
        for j in range(out_w):
            sx = (j + 0.5) * w / out_w - 0.5
            x0 = math.floor(sx)
            for dy in range(-1, 3):
                for dx in range(-1, 3):
                    weight = _keys(sy - (y0 + dy)) * _keys(sx - (x0 + dx))
                    out[i, j] += weight * image[min(max(y0 + dy, 0), h - 1), min(max(x0 + dx, 0), w - 1)]
    return out


@pytest.mark.parametrize("scale", [2.5, 0.6])
def test_resample_is_keys_bicubic(scale):
    image = np.random.default_rng(3).random((8, 10, 3))
    out = resample_image(image, scale)
    assert out.shape == (round(8 * scale), round(10 * scale), 3)
    assert np.allclose(out, _direct_bicubic(image, *out.shape[:2]), atol=1e-12)


def test_resample_sizes_and_refusals():
    thumb = np.zeros((200, 256, 3))
    assert resample_image(thumb, 2.5).shape == (500, 640, 3)  # the Kyoto dataset's own size
    image = np.random.default_rng(0).random((5, 6, 3))
    assert resample_image(image, 1) is image
    for bad in (0, -1.0, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="image_scale"):
            resample_image(image, bad)
    with pytest.raises(ValueError, match="image_scale=0"):
        TrainConfig(image_scale=0)


def test_patches_are_cut_from_the_resampled_images(tmp_path):
    import skimage.io

    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        skimage.io.imsave(tmp_path / name, (rng.random((20, 24, 3)) * 255).astype(np.uint8), check_contrast=False)
    data = natural_patches(size=4, n_train=50, n_test=10, images=(str(tmp_path),), centering="none", scale=False,
                           image_scale=2.0, dtype=torch.float64)
    from lifcore.coding.data import load_image

    def windows(name):
        big = resample_image(load_image(str(tmp_path / name)), 2.0)
        assert big.shape == (40, 48, 3)
        return np.lib.stride_tricks.sliding_window_view(big, (4, 4, 3)).reshape(-1, 48)

    def found(patches, name):
        return [bool(np.abs(windows(name) - p.numpy()).max(1).min() < 1e-12) for p in patches]

    # the folder's last image is held out: training patches are windows of the resampled a.png, held-out of b.png
    assert all(found(data.train, "a.png")) and all(found(data.test, "b.png"))
    assert not any(found(data.test, "a.png"))


def test_image_noise_is_white_of_the_images_own_scale_and_repeats():
    from lifcore.coding.data import add_image_noise

    image = np.random.default_rng(0).random((40, 50, 3)) * 7
    a = add_image_noise(image, 0.3, np.random.default_rng([0, 1]))
    b = add_image_noise(image, 0.3, np.random.default_rng([0, 1]))
    assert np.array_equal(a, b)
    assert (a - image).std() == pytest.approx(0.3 * image.std(), rel=0.05)
    assert abs(np.corrcoef((a - image)[:, :-1].ravel(), (a - image)[:, 1:].ravel())[0, 1]) < 0.05  # white
    assert add_image_noise(image, 0.0, np.random.default_rng(0)) is image
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(ValueError, match="image_noise"):
            add_image_noise(image, bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="image_noise=-1"):
        TrainConfig(image_noise=-1)


def test_the_entropy_ceiling_is_that_of_white_patches():
    """Hadamard's bound on H_X for unit-variance pixels under the deck's window, against the Gaussian entropy of
    the window's own diagonal covariance computed directly, and above the H_X of natural patches."""
    from lifcore.coding.data import (circular_mask, deck_entropy_offset_bits, entropy_ceiling_bits,
                                     gaussian_entropy)

    p = 6
    window = np.repeat(circular_mask(p).reshape(-1), 3)
    white = torch.diag(torch.as_tensor(window**2))
    direct = gaussian_entropy(white).item() / math.log(2) + deck_entropy_offset_bits(p)
    assert entropy_ceiling_bits(p) == pytest.approx(direct, abs=1e-9)
    assert entropy_ceiling_bits(18) == pytest.approx(-1398.4, abs=0.1)
    assert entropy_ceiling_bits(18, mask="none") == pytest.approx(324 / 2 * math.log2(2 * math.pi * math.e))
    data = natural_patches(p, n_train=3000, n_test=100, images=("astronaut", "coffee"), centering="image",
                           mask="circular", dtype=torch.float64)
    x = data.train - data.train.mean(0)
    natural = gaussian_entropy(x.t() @ x / (len(x) - 1)).item() / math.log(2) + deck_entropy_offset_bits(p)
    assert natural < entropy_ceiling_bits(p) - 50


def test_numpy_numbers_are_taken_as_meant():
    image = np.random.default_rng(0).random((4, 6, 3))
    assert resample_image(image, np.int64(2)).shape == (8, 12, 3)
    assert resample_image(image, np.float32(1.0)) is image

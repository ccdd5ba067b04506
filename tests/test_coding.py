"""The efficient-coding model and its data (issue 3)."""
import numpy as np
import pytest
import torch

from lifcore import data, info, transfer
from lifcore.coding import EfficientCodingModel


@pytest.fixture(scope="module")
def patches():
    return data.natural_patches(size=4, n_train=3000, n_test=500, seed=1)


def test_patches_are_deterministic_and_preprocessed(patches):
    again = data.natural_patches(size=4, n_train=3000, n_test=500, seed=1)
    other = data.natural_patches(size=4, n_train=3000, n_test=500, seed=2)
    assert torch.equal(patches.train, again.train) and not torch.equal(patches.train, other.train)
    assert patches.train.shape == (3000, 48) and patches.test.shape == (500, 48)
    assert abs(patches.train.mean().item()) < 1e-6 and abs(patches.train.std().item() - 1) < 1e-3
    entropy = data.gaussian_entropy(patches.covariance())
    eig = torch.linalg.eigvalsh(patches.covariance())
    torch.testing.assert_close(entropy, 0.5 * (48 * np.log(2 * np.pi * np.e) + eig.log().sum()))


def test_patches_from_a_folder(tmp_path):
    import skimage.io
    rng = np.random.default_rng(0)
    for k in range(3):
        skimage.io.imsave(tmp_path / f"img{k}.png", (rng.random((40, 50, 3)) * 255).astype(np.uint8), check_contrast=False)
    ds = data.natural_patches(size=5, n_train=100, n_test=20, images=str(tmp_path))
    assert ds.train.shape == (100, 75)
    with pytest.raises(ValueError, match="centering"):
        data.natural_patches(size=5, n_train=10, n_test=5, images=str(tmp_path), centering="zca")


def test_gain_equals_a_finite_difference_of_f(patches):
    model = EfficientCodingModel(dim=48, n_neurons=20, dtype=torch.float64)
    with torch.no_grad():
        model.log_v_th.copy_(torch.linspace(-0.3, 0.3, 20))  # per-neuron thresholds
    x = patches.train[:16].double()
    u = model.current(x).detach()
    h = 1e-6
    fd = (transfer.soft_lif_rate(u + h, model.alpha, model.v_th.detach(), model.sharpness)
          - transfer.soft_lif_rate(u - h, model.alpha, model.v_th.detach(), model.sharpness)) / (2 * h)
    torch.testing.assert_close(model.gain(x).detach(), fd, rtol=1e-6, atol=1e-9)


def test_model_information_equals_kl_and_the_direct_matrices(patches):
    model = EfficientCodingModel(dim=48, n_neurons=30, dtype=torch.float64)
    x, cx = patches.train[:8].double(), patches.covariance()
    out = model.information(x, cx, with_matrices=True)
    gain = model.gain(x)
    direct = info.mutual_information(info.response_covariance(model.weights, gain, cx, 0.4, 0.02),
                                     info.noise_covariance(model.weights, gain, 0.4, 0.02))
    torch.testing.assert_close(out["MI"], direct, rtol=1e-10, atol=0)
    torch.testing.assert_close(model.kl(x, cx), out["MI"], rtol=1e-6, atol=0)
    assert out["MI_numerator"].shape == (30, 30) and out["WCxW"].shape == (30, 30)


def test_noisy_response_has_the_stated_output_noise(patches):
    model = EfficientCodingModel(dim=48, n_neurons=10, input_noise=1e-6, output_noise=0.05, dtype=torch.float64)
    x = patches.train[:1].double().expand(20000, 48)
    r = model(x, generator=torch.Generator().manual_seed(0))
    assert abs(r.std(0).mean().item() - 0.05) < 0.002
    torch.testing.assert_close(r.mean(0), model.rate(x[:1])[0].detach(), atol=0.003, rtol=0)


@pytest.mark.parametrize("kwargs, name", [(dict(n_neurons=0), "n_neurons"), (dict(input_noise=0.0), "input_noise"),
                                          (dict(alpha=1.0), "alpha"), (dict(alpha=0.0), "alpha"), (dict(device="tpu"), "device")])
def test_bad_model_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EfficientCodingModel(dim=12, **({"n_neurons": 5} | kwargs))


def test_tiles_put_each_filter_in_its_place_with_its_sign():
    from lifcore.tiles import tile_image
    w = torch.zeros(5, 2 * 2 * 3)
    w[3, 0] = 2.0    # filter 3: red channel of its top-left pixel, positive
    w[4, 11] = -1.0  # filter 4: blue channel of its bottom-right pixel, negative
    image = tile_image(w, patch_size=2, columns=3, gap=1)
    assert image.shape == (2 * 3 - 1, 3 * 3 - 1, 3)
    assert image[3, 0, 0] == 1.0 and image[3, 0, 1] == 0.5          # row 1, column 0: filter 3
    assert image[4, 4, 2] == 0.0 and image[3, 3, 2] == 0.5          # row 1, column 1: filter 4
    with pytest.raises(ValueError, match="weights must be"):
        tile_image(torch.zeros(3, 10), patch_size=2)


def test_average_covariances_equal_the_mean_of_per_sample_matrices(patches):
    model = EfficientCodingModel(dim=48, n_neurons=12, dtype=torch.float64)
    x, cx = patches.train[:40].double(), patches.covariance()
    averaged = model.average_covariances([x[:15], x[15:]], cx)
    gain = model.gain(x).detach()
    direct = info.response_covariance(model.weights.detach(), gain, cx, 0.4, 0.02).mean(0)
    torch.testing.assert_close(averaged["MI_numerator"], direct, rtol=1e-12, atol=1e-15)
    flat = model.average_covariances([x], cx, with_gain=False)
    w = model.weights.detach()
    expected = w @ cx @ w.t() + 0.16 * w @ w.t() + 0.0004 * torch.eye(12, dtype=torch.float64)
    torch.testing.assert_close(flat["MI_numerator"], expected, rtol=1e-12, atol=1e-15)

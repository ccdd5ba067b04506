"""Bad input to the public API is refused with a message that names it (issue 15), instead of a
silent NaN, a zero-spike raster or an error from deep inside torch."""
import math

import pytest
import torch

import lifcore
from lifcore import toy
from lifcore.coding import info
from lifcore.snn.grad import bptt_gradients, eprop_gradients


@pytest.fixture
def net():
    return lifcore.LIFNetwork(5, 7)


def test_lif_network_refuses_nan_input_instead_of_silent_zero_spikes(net):
    x = torch.zeros(4, 2, 5)
    x[1, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        net(x)


def test_lif_network_names_the_dtype_mismatch(net):
    with pytest.raises(ValueError, match=r"dtype torch.float64 but the network is torch.float32"):
        net(torch.zeros(3, 1, 5, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(0, 1, 5), (3, 0, 5)])
def test_lif_network_refuses_empty_time_or_batch(net, shape):
    with pytest.raises(ValueError, match="T, B >= 1"):
        net(torch.zeros(shape))


def test_gradients_refuse_an_empty_batch_and_nan_input(net):
    loss = lifcore.RateLoss(0.02)
    with pytest.raises(ValueError, match="T, B >= 1"):
        eprop_gradients(net, torch.zeros(3, 0, 5), loss)
    nan = torch.full((3, 1, 5), float("nan"))
    for gradients in (eprop_gradients, bptt_gradients):
        with pytest.raises(ValueError, match="NaN or Inf"):
            gradients(net, nan, loss)


def test_valid_input_still_runs(net):
    z, v = net((torch.rand(6, 2, 5) < 0.3).float())
    assert z.shape == v.shape == (6, 2, 7) and bool(torch.isfinite(v).all())


@pytest.mark.parametrize("start", [(float("nan"), 1.0), [[2.0, 1.0], [float("inf"), 0.0]]])
def test_toy_refuses_a_non_finite_start(start):
    for method in toy.METHODS:
        with pytest.raises(ValueError, match="x0 holds NaN or Inf"):
            toy.run(method, start, 10)


def test_mutual_information_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="response_cov is 3 x 3 but noise_cov is 4 x 4"):
        info.mutual_information(2 * torch.eye(3), torch.eye(4))


def test_mutual_information_refuses_a_non_symmetric_matrix():
    with pytest.raises(ValueError, match="response_cov is not symmetric"):
        info.mutual_information(torch.tensor([[2.0, 1.0], [0.0, 2.0]]), torch.eye(2))
    with pytest.raises(ValueError, match="noise_cov must be a square matrix"):
        info.mutual_information(torch.eye(2), torch.ones(2, 3))


def test_mutual_information_of_valid_matrices_matches_the_closed_form():
    # 1/2 log(det(2 I3) / det(I3)) = 3/2 log 2
    value = info.mutual_information(2 * torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    assert abs(float(value) - 1.5 * math.log(2)) < 1e-12


# bad data and run settings: refused before any work, naming the parameter or the file

def _image(folder, name, shape):
    import numpy as np
    import skimage.io

    rng = np.random.default_rng(len(name))
    skimage.io.imsave(folder / name, (rng.random(shape) * 255).astype("uint8"), check_contrast=False)
    return str(folder / name)


def test_patch_data_refuses_greyscale_tiny_and_missing_images(tmp_path):
    from lifcore.coding import data

    colour = _image(tmp_path, "colour.png", (40, 40, 3))
    with pytest.raises(ValueError, match="'camera' is greyscale"):
        data.natural_patches(4, 100, 10, images=["camera"])
    grey = _image(tmp_path, "grey.png", (40, 40))
    with pytest.raises(ValueError, match="grey.png' is greyscale"):
        data.natural_patches(4, 100, 10, images=[grey], held_out=[colour])
    tiny = _image(tmp_path, "tiny.png", (3, 3, 3))
    with pytest.raises(ValueError, match=r"size=4 \(patch_size\): patches of 4 x 4 pixels do not fit in '.*tiny.png' \(3 x 3\)"):
        data.natural_patches(4, 100, 10, images=[tiny], held_out=[colour])
    with pytest.raises(ValueError, match="images: '/no/such/folder' does not exist"):
        data.natural_patches(4, 100, 10, images=["/no/such/folder"])
    with pytest.raises(ValueError, match="images: folder '/no/such/folder' does not exist"):
        data.images_in_folder("/no/such/folder")
    with pytest.raises(ValueError, match="'astronot' is neither a file nor a folder, nor one of scikit-image's colour photographs"):
        data.natural_patches(4, 100, 10, images=["astronot"])


def test_patch_sets_that_cannot_fit_in_memory_are_refused_before_cutting(monkeypatch):
    from lifcore import memory
    from lifcore.coding import data

    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)  # 1 GiB free
    # 20,000 + 2,000 patches of 3 x 64^2 dimensions: 22,000 x 12,288 x 8 bytes x 3 = 6.0 GiB
    with pytest.raises(ValueError, match=r"cutting 22000 patches of dimension 12288 needs about 6.0 GiB, more than the 1.0 GiB"):
        data.natural_patches(64, 20_000, 2_000)


def test_a_config_whose_input_covariance_would_be_singular_is_refused():
    from lifcore.train import TrainConfig

    with pytest.raises(ValueError, match=r"cov_batches x batch_size = 640 patches cannot estimate the input covariance of "
                                         r"dimension D = 3 patch_size\^2 = 768"):
        TrainConfig(patch_size=16, cov_batches=20, batch_size=32)
    with pytest.raises(ValueError, match=r"n_patches = 200 patches cannot estimate .* D = 3 patch_size\^2 = 300"):
        TrainConfig(n_patches=200)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed="):
            TrainConfig(seed=seed)


def test_train_refuses_a_zero_checkpoint_interval_and_expands_the_home_folder(tmp_path, monkeypatch):
    from lifcore.train import TrainConfig, train

    config = TrainConfig(steps=2, n_neurons=8, patch_size=3, batch_size=16, n_patches=500, cov_batches=4, eval_size=16)
    with pytest.raises(ValueError, match="checkpoint_every=0 must be a positive integer"):
        train(config, cache_dir=None, checkpoint_every=0, progress=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    run = train(config, cache_dir="~/runs", progress=False)
    assert run.path == tmp_path / "home" / "runs" / config.key() and (run.path / "result.pt").exists()
    assert not (tmp_path / "~").exists()

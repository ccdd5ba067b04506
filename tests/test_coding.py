"""The encoders of the coding model and their data: the project's soft-LIF and the deck's softplus
(issues 3 and 10), each against a computation written out here."""
import math

import numpy as np
import pytest
import torch

from lifcore.coding import SoftLIFEncoder, SoftplusEncoder, data, info, kernels
from lifcore.snn import transfer
from conftest import deck_forward


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


def write_images(folder, shapes, seed=0):
    import skimage.io
    rng = np.random.default_rng(seed)
    images = []
    for k, shape in enumerate(shapes):
        image = (rng.random(shape) * 255).astype(np.uint8)
        skimage.io.imsave(folder / f"img{k}.png", image, check_contrast=False)
        images.append(image.astype(np.float64) / 255)
    return images


def test_patches_from_a_folder(tmp_path):
    write_images(tmp_path, [(40, 50, 3)] * 3)
    ds = data.natural_patches(size=5, n_train=100, n_test=20, images=str(tmp_path))
    assert ds.train.shape == (100, 75)
    with pytest.raises(ValueError, match="centering"):
        data.natural_patches(size=5, n_train=10, n_test=5, images=str(tmp_path), centering="zca")
    with pytest.raises(ValueError, match="mask"):
        data.natural_patches(size=5, n_train=10, n_test=5, images=str(tmp_path), mask="square")


def test_circular_mask_matches_a_hand_computation():
    # size 4: radius 1.5, pixel centres at -1.5, -0.5, 0.5, 1.5; mask = clip(1.5 - distance + 1, 1e-4, 1)
    corner, edge, inner = 1.5 - math.hypot(1.5, 1.5) + 1, 1.5 - math.hypot(1.5, 0.5) + 1, 1.0
    expected = np.array([[corner, edge, edge, corner], [edge, inner, inner, edge],
                         [edge, inner, inner, edge], [corner, edge, edge, corner]])
    np.testing.assert_allclose(data.circular_mask(4), expected, rtol=1e-12)
    assert data.circular_mask(18).min() == 1e-4 and data.circular_mask(18)[9, 9] == 1.0


def test_deck_normalisation_and_mask_match_a_hand_computation(tmp_path):
    """A 5x5 image cut into 5x5 patches has one position: the patch is the whole image,
    normalised over its pixels and colours, times the mask, laid out (y, x, colour)."""
    images = write_images(tmp_path, [(5, 5, 3), (5, 5, 3)], seed=3)
    ds = data.natural_patches(size=5, n_train=4, n_test=2, images=str(tmp_path), centering="image", mask="circular",
                              dtype=torch.float64)
    image = images[0]
    expected = ((image - image.mean()) / image.std() * data.circular_mask(5)[:, :, None]).reshape(-1)
    for row in ds.train:
        np.testing.assert_allclose(row.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert ds.scale == 1.0  # the deck scales nothing after the per-image normalisation


def test_gain_equals_a_finite_difference_of_f(patches):
    model = SoftLIFEncoder(dim=48, n_neurons=20, dtype=torch.float64)
    with torch.no_grad():
        model.log_v_th.copy_(torch.linspace(-0.3, 0.3, 20))  # per-neuron thresholds
    x = patches.train[:16].double()
    u = model.current(x).detach()
    h = 1e-6
    fd = (transfer.soft_lif_rate(u + h, model.alpha, model.v_th.detach(), model.sharpness)
          - transfer.soft_lif_rate(u - h, model.alpha, model.v_th.detach(), model.sharpness)) / (2 * h)
    torch.testing.assert_close(model.gain(x).detach(), fd, rtol=1e-6, atol=1e-9)


def test_model_information_equals_kl_and_the_direct_matrices(patches):
    model = SoftLIFEncoder(dim=48, n_neurons=30, dtype=torch.float64)
    x, cx = patches.train[:8].double(), patches.covariance()
    out = model.information(x, cx, with_matrices=True)
    gain = model.gain(x)
    direct = info.mutual_information(info.response_covariance(model.weights, gain, cx, 0.4, 0.02),
                                     info.noise_covariance(model.weights, gain, 0.4, 0.02))
    torch.testing.assert_close(out["MI"], direct, rtol=1e-10, atol=0)
    torch.testing.assert_close(model.kl(x, cx), out["MI"], rtol=1e-6, atol=0)
    assert out["MI_numerator"].shape == (30, 30) and out["WCxW"].shape == (30, 30)


def test_deck_model_information_equals_the_direct_formula_in_nats_and_bits(patches):
    torch.manual_seed(4)
    model = SoftplusEncoder(dim=48, n_neurons=20, dtype=torch.float64)
    with torch.no_grad():  # spread gains and thresholds so that some neurons sit far below threshold
        model.log_gain.copy_(torch.linspace(-1, 1, 20))
        model.log_threshold.copy_(torch.linspace(-2, 1.5, 20))
    x, cx = patches.train[:16].double(), patches.covariance()
    kl_bits, rates, c_z, c_zx = deck_forward(model.weights.detach(), model.log_gain.detach(), model.log_threshold.detach(),
                                           x, cx)
    out = model.evaluate(x, cx)
    nats_direct = 0.5 * (torch.logdet(c_z) - torch.logdet(c_zx))
    torch.testing.assert_close(out["MI"], nats_direct, rtol=1e-6, atol=0)
    # bits: the deck's KL is 2 I / ln 2 per patch
    torch.testing.assert_close(2 * out["MI"] / math.log(2), kl_bits, rtol=1e-6, atol=0)
    torch.testing.assert_close(out["rate"], rates, rtol=1e-12, atol=0)
    mats = model.information(x, cx, with_matrices=True)
    torch.testing.assert_close(mats["MI_numerator"], c_z.mean(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mats["MI_denominator"], c_zx.mean(0), rtol=1e-10, atol=1e-12)
    w = model.weights.detach()
    torch.testing.assert_close(mats["WCxW"], w @ (cx + 0.16 * torch.eye(48, dtype=torch.float64)) @ w.t())
    assert out["MI"].min() > 0


def test_deck_model_with_zero_noise_draws_gives_kl_of_two_i(patches):
    """The operating point of the deck (gain at x + n_x): with the noise draws at zero it is x, and
    the deck's KL (bits) is 2 I / ln 2; with the draws, the gain moves and so does the information."""
    torch.manual_seed(5)
    model = SoftplusEncoder(dim=48, n_neurons=12, dtype=torch.float64)
    x, cx = patches.train[:8].double(), patches.covariance()

    zero_point = x + model.input_noise * torch.zeros_like(x)
    kl_bits = deck_forward(model.weights.detach(), model.log_gain.detach(), model.log_threshold.detach(), zero_point, cx)[0]
    torch.testing.assert_close(kl_bits, 2 * model.evaluate(zero_point, cx)["MI"].detach() / math.log(2), rtol=1e-6, atol=0)
    noisy = model.operating_point(x, torch.Generator().manual_seed(9))
    expected = x + 0.4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(noisy, expected, rtol=0, atol=0)
    assert not torch.allclose(model.evaluate(noisy, cx)["MI"], model.evaluate(x, cx)["MI"])
    clean = SoftLIFEncoder(dim=48, n_neurons=4, dtype=torch.float64)
    assert clean.operating_point(x, torch.Generator()) is x


def test_deck_encoder_starts_with_unit_norm_filters_and_the_decks_initial_gain_and_threshold():
    torch.manual_seed(0)
    model = SoftplusEncoder(dim=300, n_neurons=2000)
    torch.testing.assert_close(model.weights.norm(dim=1), torch.ones(2000), rtol=1e-6, atol=0)
    assert abs(model.log_gain.mean().item()) < 0.002 and abs(model.log_gain.std().item() - 0.02) < 0.002
    assert abs(model.log_threshold.mean().item() + 1) < 0.002


def test_homeostatic_gain_replaces_exp_log_gain(patches):
    model = SoftplusEncoder(dim=48, n_neurons=6, dtype=torch.float64)
    x = patches.train[:5].double()
    gain = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    model.set_homeostatic_gain(gain)
    u = model.current(x)
    expected = gain * torch.nn.functional.softplus(u - model.threshold, beta=2.5)
    torch.testing.assert_close(model.rate(x), expected)
    model.set_homeostatic_gain(None)
    torch.testing.assert_close(model.gain_factor, model.log_gain.exp())


def test_renormalize_jitter_and_spatial_variance_match_hand_computations():
    torch.manual_seed(1)
    w = torch.randn(7, 3 * 5 * 5, dtype=torch.float64) * 3
    expected = w * w.abs() ** 0.25
    expected = expected / expected.norm(dim=1, keepdim=True)
    jittered = kernels.jitter_(w.clone(), 0.25)
    torch.testing.assert_close(jittered, expected)
    torch.testing.assert_close(jittered.norm(dim=1), torch.ones(7, dtype=torch.float64))
    # spatial variance, written with loops over pixels
    unit = (w / w.norm(dim=1, keepdim=True)).numpy()
    total = 0.0
    for j in range(7):
        m = unit[j].reshape(5, 5, 3).mean(-1)
        for energy in (np.array([sum(m[y, x] ** 2 for x in range(5)) for y in range(5)]),
                       np.array([sum(m[y, x] ** 2 for y in range(5)) for x in range(5)])):
            centre = sum(i * energy[i] for i in range(5))
            total += sum((i - centre) ** 2 * energy[i] for i in range(5))
    assert kernels.spatial_variance(w, 5).item() == pytest.approx(total / 7, rel=1e-12)
    # the deck's quirk: an achromatic point filter at pixel (2, 2) has colour-mean energy e = 1/3, so its
    # "centre" is 2 e = 2/3, not 2, and its penalty is 2 (2 - 2/3)^2 e, not zero
    point = torch.zeros(1, 75, dtype=torch.float64)
    point[0, (2 * 5 + 2) * 3:(2 * 5 + 2) * 3 + 3] = 1.0
    assert kernels.spatial_variance(point, 5).item() == pytest.approx(2 * (2 - 2 / 3) ** 2 / 3, rel=1e-12)


def test_noisy_response_has_the_stated_output_noise(patches):
    model = SoftLIFEncoder(dim=48, n_neurons=10, input_noise=1e-6, output_noise=0.05, dtype=torch.float64)
    x = patches.train[:1].double().expand(20000, 48)
    r = model(x, generator=torch.Generator().manual_seed(0))
    assert abs(r.std(0).mean().item() - 0.05) < 0.002
    torch.testing.assert_close(r.mean(0), model.rate(x[:1])[0].detach(), atol=0.003, rtol=0)


@pytest.mark.parametrize("cls, kwargs, name", [
    (SoftLIFEncoder, dict(n_neurons=0), "n_neurons"), (SoftLIFEncoder, dict(input_noise=0.0), "input_noise"),
    (SoftLIFEncoder, dict(alpha=1.0), "alpha"), (SoftLIFEncoder, dict(alpha=0.0), "alpha"),
    (SoftLIFEncoder, dict(device="tpu"), "device"), (SoftplusEncoder, dict(gain_at="somewhere"), "gain_at"),
    (SoftplusEncoder, dict(softplus_beta=0.0), "softplus_beta"), (SoftplusEncoder, dict(output_noise=-3.0), "output_noise"),
])
def test_bad_encoder_arguments(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(dim=12, **({"n_neurons": 5} | kwargs))


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
    model = SoftLIFEncoder(dim=48, n_neurons=12, dtype=torch.float64)
    x, cx = patches.train[:40].double(), patches.covariance()
    averaged = model.average_covariances([x[:15], x[15:]], cx)
    gain = model.gain(x).detach()
    direct = info.response_covariance(model.weights.detach(), gain, cx, 0.4, 0.02).mean(0)
    torch.testing.assert_close(averaged["MI_numerator"], direct, rtol=1e-12, atol=1e-15)
    flat = model.average_covariances([x], cx, with_gain=False)
    w = model.weights.detach()
    expected = w @ cx @ w.t() + 0.16 * w @ w.t() + 0.0004 * torch.eye(12, dtype=torch.float64)
    torch.testing.assert_close(flat["MI_numerator"], expected, rtol=1e-12, atol=1e-15)


def test_deck_entropy_offset_is_the_missing_colour_dimensions():
    # D/2 log2(2 pi e) with D = 18^2 instead of 3 * 18^2
    assert data.deck_entropy_offset_bits(18) == pytest.approx(-(3 * 324 - 324) / 2 * math.log2(2 * math.pi * math.e))


def synthetic_field(patch_size, centre, sigma, colour=(1.0, 1.0, 1.0), sign=1.0):
    y, x = torch.meshgrid(torch.arange(patch_size, dtype=torch.float64), torch.arange(patch_size, dtype=torch.float64),
                          indexing="ij")
    blob = torch.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * sigma**2))
    return (sign * blob[..., None] * torch.tensor(colour, dtype=torch.float64)).reshape(-1)


def test_field_descriptors_of_synthetic_filters():
    from lifcore.coding import fields
    w = torch.stack([synthetic_field(9, (2, 6), 0.8), synthetic_field(9, (6, 2), 0.8, sign=-1.0),
                     synthetic_field(9, (4, 4), 0.8, colour=(1.0, -1.0, 0.0)),
                     torch.randn(243, generator=torch.Generator().manual_seed(0), dtype=torch.float64)])
    d = fields.describe(w, 9)
    torch.testing.assert_close(d["centre"][0], torch.tensor([2.0, 6.0], dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(d["centre"][1], torch.tensor([6.0, 2.0], dtype=torch.float64), atol=1e-3, rtol=0)
    assert d["polarity"].tolist()[:2] == [1.0, -1.0]
    assert d["luminance_share"][0].item() == pytest.approx(1.0) and d["luminance_share"][2].item() == pytest.approx(0.0, abs=1e-12)
    assert d["spread"][0] < 1.5 < 3.0 < d["spread"][3]  # a blob is localized, white noise is not
    order = fields.neuron_order(w[:3], 9)
    assert order.tolist() == [0, 2, 1]  # ON achromatic, then the opponent one (its peak is ON), then OFF
    with pytest.raises(ValueError, match="unknown keys"):
        fields.neuron_order(w, 9, by=("size",))


def write_kyoto(folder, shapes, seed=0):
    """Small .mat files laid out as the Kyoto dataset's: cone responses OL, OM, OS."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    images = []
    for k, shape in enumerate(shapes):
        cones = {name: rng.random(shape) * (k + 1) for name in ("OL", "OM", "OS")}
        savemat(folder / f"scene{k}.mat", cones)
        images.append(np.stack([cones["OL"], cones["OM"], cones["OS"]], -1))
    return images


def test_kyoto_mat_files_are_read_as_l_m_s_channels_and_cut_as_the_deck_did(tmp_path):
    images = write_kyoto(tmp_path, [(6, 6), (6, 6), (7, 6)], seed=2)
    np.testing.assert_array_equal(data.load_image(str(tmp_path / "scene1.mat")), images[1])
    ds = data.natural_patches(size=6, n_train=5, n_test=3, images=str(tmp_path), held_out=[str(tmp_path / "scene2.mat")],
                              centering="image", mask="circular", dtype=torch.float64)
    # every 6x6 patch of a 6x6 scene is the scene: normalised over its pixels and cones, under the mask
    expected = {tuple(np.round(((im - im.mean()) / im.std() * data.circular_mask(6)[:, :, None]).reshape(-1), 10))
                for im in images[:2]}
    assert {tuple(np.round(row, 10)) for row in ds.train.numpy()} <= expected
    assert len({tuple(np.round(row, 10)) for row in ds.train.numpy()}) == 2  # both training scenes drawn


def test_kyoto_by_name_is_found_where_lifcore_kyoto_says_and_refused_when_absent(tmp_path, monkeypatch):
    write_kyoto(tmp_path, [(8, 9)] * 3)
    monkeypatch.setenv("LIFCORE_KYOTO", str(tmp_path))
    train, held_out = data.resolve_images(("kyoto",))
    assert [p.rsplit("/", 1)[1] for p in train] == ["scene0.mat", "scene1.mat"] and held_out[0].endswith("scene2.mat")
    assert data.natural_patches(size=4, n_train=10, n_test=4, images=("kyoto",)).train.shape == (10, 48)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LIFCORE_KYOTO", str(empty))
    with pytest.raises(ValueError, match="holds no image"):
        data.kyoto_folder()
    monkeypatch.delenv("LIFCORE_KYOTO")
    monkeypatch.setattr(data, "KYOTO_PLACES", (tmp_path / "nowhere",))
    assert data.kyoto_folder() is None
    with pytest.raises(ValueError, match="'kyoto' names the Kyoto scenes, and none was found: set LIFCORE_KYOTO"):
        data.natural_patches(size=4, n_train=10, n_test=4, images=("kyoto",))


def test_a_mat_file_without_cone_responses_is_refused_by_name(tmp_path):
    from scipy.io import savemat
    savemat(tmp_path / "a.mat", {"OL": np.ones((4, 4)), "OM": np.ones((4, 4))})
    with pytest.raises(ValueError, match=r"a.mat' has no OS: a Kyoto image holds the cone responses OL, OM, OS"):
        data.load_image(str(tmp_path / "a.mat"))
    (tmp_path / "b.mat").write_bytes(b"not matlab")
    with pytest.raises(ValueError, match="b.mat' is not a readable MATLAB file"):
        data.load_image(str(tmp_path / "b.mat"))

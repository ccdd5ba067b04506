"""Receptive-field measures and kinds (issue 14) on synthetic filters whose kind is known."""
import math

import pytest
import torch

from lifcore.coding import fields


def grid(p):
    c = (p - 1) / 2
    axis = torch.arange(p, dtype=torch.float64) - c
    return torch.meshgrid(axis, axis, indexing="ij")


def achromatic(field):
    """The same field in the three colours, in the data layout (y, x, colour)."""
    return field[..., None].expand(*field.shape, 3).reshape(-1)


def synthetic(p, seed=0):
    y, x = grid(p)
    r2, s = x**2 + y**2, p / 8
    theta, wavelength = 0.6 + seed, p / 3
    return {
        "blob": achromatic(torch.exp(-r2 / (2 * s**2))),
        "gabor": achromatic(torch.exp(-r2 / (2 * (p / 6) ** 2))
                            * torch.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / wavelength)),
        # a balanced difference of Gaussians (zero mean), and one with Marr's 1.6 ratio
        "dog": achromatic(torch.exp(-r2 / (2 * s**2)) / s**2 - torch.exp(-r2 / (8 * s**2)) / (4 * s**2)),
        "dog 1.6": achromatic(torch.exp(-r2 / (2 * s**2)) / s**2 - torch.exp(-r2 / (2 * (1.6 * s) ** 2)) / (1.6 * s) ** 2),
        "noise": torch.randn(3 * p * p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64),
        # one pixel with a faint rest: what the deck's jitter makes of filters at small sizes
        "pixel": achromatic(torch.where((y.abs() < 1) & (x.abs() < 1) & (y > 0) & (x > 0), 1.0, 0.02)
                            + 0.01 * torch.randn(p, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)),
    }


@pytest.mark.parametrize("p", [8, 10, 18])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_synthetic_filter_gets_its_kind(p, seed):
    filters = synthetic(p, seed)
    expected = {"blob": "blob", "gabor": "oriented", "dog": "centre-surround", "dog 1.6": "centre-surround",
                "noise": "noise", "pixel": "pixel"}
    got = dict(zip(filters, fields.kinds(torch.stack(list(filters.values())), p)))
    assert got == expected
    m = fields.measures(torch.stack(list(filters.values())), p)
    blob, gabor, dog, _, noise, pixel = range(6)
    assert m["peak_share"][pixel] > 0.5 > 0.35 > m["peak_share"][blob]
    assert m["localization"][blob] > 0.6 > 0.1 > m["localization"][noise]
    assert m["orientation"][gabor] > 0.8 and m["orientation"][blob] < 0.05 and m["orientation"][dog] < 0.05
    assert m["surround"][blob] == 0 and 0.3 < m["surround"][dog] < 0.7


def test_measures_do_not_depend_on_sign_scale_or_position():
    p = 12
    blob = synthetic(p)["gabor"].reshape(p, p, 3)
    moved = torch.roll(blob, shifts=(2, -1), dims=(0, 1))  # the envelope stays inside the patch
    a = fields.measures(torch.stack([blob.reshape(-1), -3.0 * moved.reshape(-1)]), p)
    for key in ("orientation", "surround", "colour_opponency"):
        torch.testing.assert_close(a[key][0], a[key][1], atol=0.05, rtol=0)
    assert abs(a["localization"][0] - a["localization"][1]) < 0.05


def test_colour_opponency_separates_luminance_from_red_green():
    p = 8
    y, x = grid(p)
    blob = torch.exp(-(x**2 + y**2) / 4)
    red_green = torch.stack([blob, -blob, torch.zeros_like(blob)], -1).reshape(-1)
    m = fields.measures(torch.stack([achromatic(blob), red_green]), p)
    assert m["colour_opponency"][0] < 1e-12 and m["colour_opponency"][1] == pytest.approx(1.0)
    assert fields.kinds(red_green[None], p) == ["blob"]  # a colour-opponent blob is still a blob


def test_uniform_energy_has_no_localization_and_bad_shapes_are_refused():
    p = 10
    assert fields.measures(torch.ones(1, 3 * p * p, dtype=torch.float64), p)["localization"][0] < 1e-9
    with pytest.raises(ValueError, match=r"weights must be \[N, 3 \* patch_size\^2 = 300\]"):
        fields.measures(torch.ones(2, 299), p)


def test_held_out_patches_come_from_images_the_training_never_sees():
    from lifcore.coding.data import HELD_OUT_IMAGES, TRAIN_IMAGES, natural_patches

    assert not set(TRAIN_IMAGES) & set(HELD_OUT_IMAGES)
    data = natural_patches(6, n_train=4000, n_test=1000, centering="image", mask="circular")
    train = {tuple(row) for row in data.train.numpy().round(6).tolist()}
    assert not any(tuple(row) in train for row in data.test.numpy().round(6).tolist())
    with pytest.raises(ValueError, match=r"shares \['coffee'\] with the training images"):
        natural_patches(6, n_train=100, n_test=100, images=["astronaut", "coffee"], held_out=["coffee"])


@pytest.mark.parametrize("p", [10, 18])
def test_a_field_as_broad_as_the_patch_but_smooth_is_not_noise(p):
    """The deck's page-1 kernels are smooth fields about as broad as the patch: spread over it (localization
    below 0.3), but with their power at long wavelengths. White noise, and white noise low-passed only a little,
    stay noise; a broad blob and a broad edge do not. So does a field of many small smooth lobes (what images
    resampled to a finer pixel leave of a random start): smooth at the pixel's scale, not at the patch's."""
    y, x = grid(p)
    g = torch.Generator().manual_seed(3)
    white = torch.randn(p, p, 3, generator=g, dtype=torch.float64)
    # a 3x3 box average: still rough at the scale of a few pixels
    rough = sum(torch.roll(white, (dy, dx), (0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)).reshape(-1)
    broad = achromatic(torch.exp(-(x**2 + y**2) / (2 * (p / 2.5) ** 2)))
    edge = achromatic(torch.tanh(x / (p / 4)) * torch.exp(-(x**2 + y**2) / (2 * (p / 2.5) ** 2)))
    lobes = achromatic(torch.cos(2 * math.pi * x / 4.5) * torch.cos(2 * math.pi * y / 4.5))  # wavelength 4.5 px
    filters = torch.stack([white.reshape(-1), rough, broad, edge, lobes])
    m = fields.measures(filters, p)
    assert (m["localization"][2:] < fields.LOCALIZED).all()  # as spread as noise by that measure alone
    assert m["smoothness"][0] == pytest.approx(13 / p**2, abs=0.06) and m["smoothness"][1] < fields.SMOOTH
    assert (m["smoothness"][2:4] > 0.9).all() and m["smoothness"][4] < 0.2
    labels = fields.kinds(filters, p)
    assert labels[:2] == ["noise", "noise"] and "noise" not in labels[2:4] and labels[4] == "noise"

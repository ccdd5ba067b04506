"""What a receptive field and a population are (issue 23): the difference-of-Gaussians fit, the
kinds it decides, the mosaics' regularity, and the deck's DoG filters as an encoder option,
each on synthetic cases whose answer is known."""
import math

import pytest
import torch

from lifcore.coding import SoftplusEncoder, dog, fields, info, mosaics

P = 14


def known_dogs():
    """Four DoGs of known shape: ON and OFF, achromatic and red-green, balanced and not, off-centre."""
    centre = torch.tensor([[6.5, 6.5], [4.2, 8.7], [8.0, 5.3], [6.9, 6.1]], dtype=torch.float64)
    width_c = torch.tensor([1.0, 1.6, 0.8, 2.0], dtype=torch.float64)
    width_s = torch.tensor([2.0, 3.0, 2.5, 3.2], dtype=torch.float64)
    colour = torch.tensor([[1, 1, 1], [-1, -1, -1], [1, -0.8, 0.1], [0.6, 0.7, 0.5]], dtype=torch.float64)
    strength = torch.tensor([1.0, 0.6, 0.4, 1.0], dtype=torch.float64)  # the surround's mass over the centre's
    amp_s = colour * (strength * width_c**2 / width_s**2)[:, None]
    return dog.dog_fields(centre, width_c, width_s, colour, amp_s, P), dict(
        centre=centre, centre_width=width_c, surround_width=width_s, surround=strength,
        polarity=torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64))


def test_fit_recovers_centre_widths_surround_and_polarity_of_known_dogs():
    w, truth = known_dogs()
    w = w * torch.tensor([[0.3], [2.0], [1.0], [0.05]], dtype=torch.float64)  # the fit does not care about scale
    fit = dog.fit(w, P)
    assert fit.quality.min() > 0.999
    torch.testing.assert_close(fit.centre, truth["centre"], atol=1e-3, rtol=0)
    torch.testing.assert_close(fit.centre_width, truth["centre_width"], atol=1e-2, rtol=0)
    torch.testing.assert_close(fit.surround_width, truth["surround_width"], atol=2e-2, rtol=0)
    torch.testing.assert_close(fit.surround, truth["surround"], atol=2e-2, rtol=0)
    torch.testing.assert_close(fit.polarity, truth["polarity"])
    assert fit.luminance_share[0] == pytest.approx(1.0) and fit.luminance_share[2] < 0.05
    torch.testing.assert_close(fit.fields() / w.norm(dim=1, keepdim=True), w / w.norm(dim=1, keepdim=True),
                               atol=1e-3, rtol=0)


def synthetic(p, seed=0):
    axis = torch.arange(p, dtype=torch.float64) - (p - 1) / 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    r2 = x**2 + y**2
    theta = 0.6 + seed

    def grey(f):
        return f[..., None].expand(*f.shape, 3).reshape(-1)

    gabor = torch.exp(-r2 / (2 * (p / 6) ** 2)) * torch.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / (p / 3))
    pixel = torch.zeros(p, p, dtype=torch.float64)
    pixel[p // 2, p // 2 - 1] = 1.0
    pixel = pixel + 0.01 * torch.randn(p, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return {"gabor": grey(gabor), "pixel": grey(pixel),
            "noise": torch.randn(3 * p * p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_dog_is_centre_surround_and_a_gabor_a_pixel_and_white_noise_are_not(seed):
    w, _ = known_dogs()
    others = synthetic(P, seed)
    labels = fields.kinds(torch.cat([w, torch.stack(list(others.values()))]), P)
    assert labels[:4] == ["centre-surround"] * 4
    assert dict(zip(others, labels[4:])) == {"gabor": "oriented", "pixel": "pixel", "noise": "noise"}
    fit = dog.fit(torch.stack(list(others.values())), P)
    assert fit.quality[0] < 0.6 and fit.quality[2] < 0.3  # no DoG explains a Gabor or white noise
    assert fit.centre_width[1] < fields.CENTRE_WIDTH  # a pixel is fitted, but by a centre narrower than a pixel


def test_a_blob_and_a_weak_surround_are_blobs_not_centre_surround():
    centre = torch.full((2, 2), 6.5, dtype=torch.float64)
    colour = torch.ones(2, 3, dtype=torch.float64)
    w = dog.dog_fields(centre, torch.tensor([1.5, 1.5]).double(), torch.tensor([3.0, 3.0]).double(), colour,
                       colour * torch.tensor([[0.0], [0.1 * 1.5**2 / 3.0**2]]).double(), P)
    assert fields.kinds(w, P) == ["blob", "blob"]
    assert dog.fit(w, P).surround[1] == pytest.approx(0.1, abs=0.02)


def hexagonal(spacing, rows, columns, jitter, seed):
    g = torch.Generator().manual_seed(seed)
    points = torch.tensor([[spacing * math.sqrt(3) / 2 * i, spacing * (j + 0.5 * (i % 2))]
                           for i in range(rows) for j in range(columns)], dtype=torch.float64)
    return points + jitter * spacing * torch.randn(points.shape, generator=g, dtype=torch.float64)


def test_regularity_index_of_a_jittered_lattice_and_of_random_points():
    lattice = [mosaics.regularity_index(hexagonal(3.0, 12, 12, 0.08, seed)) for seed in range(5)]
    assert min(lattice) > 3
    assert mosaics.regularity_index(hexagonal(3.0, 6, 6, 0.0, 0)) > 1e6  # a perfect lattice: all distances equal
    g = torch.Generator().manual_seed(0)
    random = [mosaics.regularity_index(torch.rand(400, 2, generator=g, dtype=torch.float64)) for _ in range(20)]
    mean = sum(random) / len(random)
    assert 1.75 < mean < 2.1  # a Poisson process: 1.91 (edges add a little)
    d = mosaics.nearest_neighbour_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]))
    torch.testing.assert_close(d, torch.tensor([5.0, 1.0, 1.0], dtype=torch.float64))
    assert math.isnan(mosaics.regularity_index(torch.zeros(2, 2)))


def test_mosaics_split_the_centre_surround_cells_by_polarity():
    p = 18
    on = hexagonal(3.4, 4, 4, 0.05, 1) + 3.0
    off = hexagonal(3.4, 4, 4, 0.05, 2) + 4.7
    centres = torch.cat([on, off])
    n = len(centres)
    sign = torch.cat([torch.ones(len(on)), -torch.ones(len(off))]).double()[:, None]
    colour = torch.ones(n, 3, dtype=torch.float64) * sign
    w = dog.dog_fields(centres, torch.full((n,), 1.0).double(), torch.full((n,), 2.0).double(), colour, colour / 4, p)
    fit = dog.fit(w, p)
    labels = fields.kinds(w, p, fit=fit)
    assert labels == ["centre-surround"] * n
    found = mosaics.mosaics(fit, labels)
    torch.testing.assert_close(found["ON"]["centres"], on, atol=1e-3, rtol=0)
    torch.testing.assert_close(found["OFF"]["centres"], off, atol=1e-3, rtol=0)
    assert found["ON"]["regularity"] > 3 and found["OFF"]["regularity"] > 3
    assert found["ON"]["regularity"] == pytest.approx(mosaics.regularity_index(on), rel=0.05)
    with pytest.raises(ValueError, match="labels has 3 entries for 32"):
        mosaics.mosaics(fit, labels[:3])


def deck_dog(centres, log_a, log_b, logit_c, d, p):
    """The deck's `DifferenceOfGaussianShape.shape_function` (dcb198e), written out per pixel."""
    out = torch.zeros(centres.shape[0], p, p, 3, dtype=torch.float64)
    for j in range(centres.shape[0]):
        unit = d[j] / d[j].norm()
        for k in range(3):
            b = math.exp(log_b[j, k])
            a = math.exp(log_a[j, k]) + b
            c = 1 / (1 + math.exp(-logit_c[j, k]))
            for y in range(p):
                for x in range(p):
                    rr = (y - centres[j, 0]) ** 2 + (x - centres[j, 1]) ** 2
                    out[j, y, x, k] = unit[k] * (math.exp(-a * rr) - c * math.exp(-b * rr))
    out = out.reshape(centres.shape[0], -1)
    return out / out.norm(dim=1, keepdim=True)


def test_dog_filters_are_the_decks_shape_and_its_information_the_direct_formula():
    p, n = 6, 5
    torch.manual_seed(2)
    model = SoftplusEncoder(dim=3 * p * p, n_neurons=n, filter_shape="dog", patch_size=p, dtype=torch.float64)
    with torch.no_grad():
        model.shape.log_a.copy_(torch.randn(n, 3) - 2)
        model.shape.log_b.copy_(torch.randn(n, 3) - 3)
        model.shape.logit_c.copy_(torch.randn(n, 3))
    s = model.shape
    expected = deck_dog(s.centres.detach(), s.log_a.detach(), s.log_b.detach(), s.logit_c.detach(), s.d.detach(), p)
    torch.testing.assert_close(model.weights.detach(), expected, rtol=1e-10, atol=1e-12)
    initial = SoftplusEncoder(dim=3 * p * p, n_neurons=n, filter_shape="dog", patch_size=p).shape.shape()
    torch.testing.assert_close(initial["centre_width"], torch.full((n, 3), (4 * math.exp(-3)) ** -0.5))
    assert bool(((initial["centre"] >= (p - 1) / 4) & (initial["centre"] <= 3 * (p - 1) / 4)).all())
    # the information of the channel these filters make, against the formula written with them
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3 * p * p, generator=g, dtype=torch.float64)
    a = torch.randn(3 * p * p, 3 * p * p, generator=g, dtype=torch.float64)
    cx = a @ a.t() / (3 * p * p) + 0.1 * torch.eye(3 * p * p, dtype=torch.float64)
    out = model.evaluate(x, cx)
    gain = model.gain(x)
    direct = info.mutual_information(info.response_covariance(expected, gain, cx, 0.4, 3.0),
                                     info.noise_covariance(expected, gain, 0.4, 3.0))
    torch.testing.assert_close(out["MI"], direct, rtol=1e-10, atol=0)
    out["MI"].sum().backward()  # the gradient reaches the DoG parameters, which are the filters' parameter group
    assert all(q.grad is not None for q in model.parameter_groups()["filters"])
    assert [q.shape for q in model.parameter_groups()["filters"]] == [(n, 2), (n, 3), (n, 3), (n, 3), (n, 3)]


def test_dog_filters_refuse_a_patch_size_that_does_not_match():
    with pytest.raises(ValueError, match="filter_shape='dog' needs patch_size with dim = 3 patch_size"):
        SoftplusEncoder(dim=48, n_neurons=3, filter_shape="dog", patch_size=5)
    with pytest.raises(ValueError, match="filter_shape='gabor' is unknown; allowed: 'pixels', 'dog'"):
        SoftplusEncoder(dim=48, n_neurons=3, filter_shape="gabor")

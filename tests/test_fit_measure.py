"""Training helper and the memory measurement (issue 6)."""
import numpy as np
import pytest
import torch

import lifcore
from lifcore.snn import fit, measure


def allocate(mib):
    block = torch.ones(int(mib * 2**20 / 4))
    assert block.sum() > 0


def test_memory_measurement_sees_an_allocation_of_known_size():
    _, small = measure.time_and_peak_memory(allocate, 10)
    _, large = measure.time_and_peak_memory(allocate, 200)
    print(f"\npeak growth: 10 MiB block {small:.0f} MiB, 200 MiB block {large:.0f} MiB")
    assert 150 < large - small < 260


def test_eprop_memory_stays_flat_while_bptt_grows():
    net = lifcore.LIFNetwork(40, 60, w_in_scale=3.0)
    loss = lifcore.RateLoss(0.05)
    peaks = {}
    for T in (200, 800):
        x = (torch.rand(T, 16, 40) < 0.1).float()
        for method in ("eprop", "bptt"):
            peaks[method, T] = measure.time_and_peak_memory(measure.gradient_call, method, net, x, loss)[1]
    print(f"\npeak MiB: {peaks}")
    # differences between horizons: one-off allocations (autograd engine, thread pools) cancel out
    bptt_growth = peaks["bptt", 800] - peaks["bptt", 200]
    eprop_growth = peaks["eprop", 800] - peaks["eprop", 200]
    # BPTT keeps v, z and dE/dv for every step (lifcore.snn.bptt): 3 x 600 x 16 x 60 float32 = 6.6 MiB more
    kept = 3 * (800 - 200) * 16 * 60 * 4 / 2**20
    assert bptt_growth > 0.8 * kept
    assert eprop_growth < bptt_growth / 4


@pytest.mark.parametrize("method", ["eprop", "bptt"])
def test_fit_brings_the_rate_towards_r0(method):
    torch.manual_seed(0)
    net = lifcore.LIFNetwork(20, 30, w_in_scale=4.0)
    x = (torch.rand(100, 8, 20) < 0.2).float()
    history = fit.fit(net, x, lifcore.RateLoss(0.02), method=method, steps=40, lr=0.05, progress=False)
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert abs(history["rate"][-1] - 0.02) < abs(history["rate"][0] - 0.02)


def test_fit_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        fit.fit(lifcore.LIFNetwork(2, 3), torch.zeros(5, 1, 2), lifcore.RateLoss(0.1), method="rtrl")

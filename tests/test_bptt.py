"""The hand-written BPTT (`lifcore.snn.bptt`, issue 17) against autograd through `lif_step`.

Autograd through the unrolled loop is the independent computation: it differentiates the
forward pass op by op, the fused path uses the backward derived in `bptt.py`'s docstring.
"""
import itertools

import pytest
import torch

import lifcore
from conftest import requires_cuda
from lifcore.snn.bptt import lif_sequence
from lifcore.snn.grad import bptt_gradients
from lifcore.snn.lif import lif_forward
from lifcore.snn.workspace import release_workspace, workspace_bytes

T, B, N_IN, N = 60, 4, 12, 16


def make_net(recurrent, learn, surrogate, dtype=torch.float64, device="cpu"):
    return lifcore.LIFNetwork(N_IN, N, alpha=0.9, recurrent=recurrent, learn_bias=learn, learn_threshold=learn,
                              surrogate=surrogate, w_in_scale=3.0, w_rec_scale=1.5, dtype=dtype, device=device)


def make_loss(name, dtype=torch.float64, device="cpu"):
    if name == "rate":
        return lifcore.RateLoss(r0=0.05, rate_weight=2.0)
    if name == "rate_variance":
        return lifcore.RateVarianceLoss(sigma_r=1e-3, rate_weight=10.0)
    return lifcore.ReadoutLoss(torch.randn(3, N, dtype=dtype, device=device), torch.randn(T, B, 3, dtype=dtype, device=device))


def relative_errors(reference: dict, estimate: dict) -> dict:
    return {k: ((estimate[k] - reference[k]).norm() / reference[k].norm().clamp_min(1e-300)).item() for k in reference}


CASES = list(itertools.product(["full", "detach_reset", "stop_z"], [True, False], [False, True],
                               ["bellec", "fast_sigmoid"], ["rate", "rate_variance", "readout"]))


@pytest.mark.parametrize("mode, recurrent, learn, surrogate, loss_name", CASES)
def test_fused_bptt_equals_autograd_through_the_loop(mode, recurrent, learn, surrogate, loss_name):
    net = make_net(recurrent, learn, surrogate)
    x = (torch.rand(T, B, N_IN) < 0.25).double()
    loss = make_loss(loss_name)
    reference, value_ref = bptt_gradients(net, x, loss, mode=mode, path="autograd")
    fused, value = bptt_gradients(net, x, loss, mode=mode, path="fused")
    assert set(fused) == set(reference) == ({"w_in", "w_rec"} & set(dict(net.named_parameters())) | ({"bias", "v_th"} if learn else set()))
    assert all(g.norm() > 0 for g in reference.values()), "a zero gradient would make this comparison vacuous"
    errors = relative_errors(reference, fused)
    assert max(errors.values()) <= 1e-10, errors
    torch.testing.assert_close(value, value_ref, rtol=1e-12, atol=0)


def test_the_modes_differ():
    """The check above would pass if every mode computed the same thing: they must not."""
    net = make_net(True, True, "bellec")
    x = (torch.rand(T, B, N_IN) < 0.25).double()
    grads = {mode: bptt_gradients(net, x, make_loss("rate"), mode=mode)[0] for mode in ("full", "detach_reset", "stop_z")}
    for a, b in itertools.combinations(grads, 2):
        assert max(relative_errors(grads[a], grads[b]).values()) > 1e-3, (a, b)


@pytest.mark.parametrize("mode", ["full", "detach_reset", "stop_z"])
def test_from_a_given_state_with_a_loss_on_v(mode):
    """Gradients reach the initial state (v0, z0) and a loss that reads the potential v too."""
    net = make_net(True, True, "fast_sigmoid")
    x = (torch.rand(T, B, N_IN) < 0.25).double()
    v0 = torch.rand(B, N, dtype=torch.float64, requires_grad=True)
    z0 = (torch.rand(B, N) < 0.3).double().requires_grad_(True)
    weights = torch.randn(T, B, N, dtype=torch.float64)

    def grads(path):
        z, v = net(x, lifcore.LIFState(v0, z0), detach_reset=mode == "detach_reset", stop_z=mode == "stop_z", path=path)
        value = ((z.mean(0) - 0.1) ** 2).sum() + 1e-3 * (v[::7] ** 2).sum() + (weights * z).sum()
        inputs = [*net.parameters(), v0, z0]
        return [g if g is not None else torch.zeros_like(p)
                for g, p in zip(torch.autograd.grad(value, inputs, allow_unused=True), inputs)], (z, v)

    reference, (z_ref, v_ref) = grads("autograd")
    fused, (z, v) = grads("fused")
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(v, v_ref, rtol=1e-12, atol=1e-12)
    for g_ref, g in zip(reference, fused):
        assert ((g - g_ref).norm() / g_ref.norm().clamp_min(1e-300)).item() <= 1e-10
    assert reference[-2].norm() > 0 and (mode == "stop_z" or reference[-1].norm() > 0)


def test_gradient_reaches_the_input():
    """A second layer differentiates through the first one's spikes: dE/dx = sum_j delta_j W_in,ji."""
    net = make_net(True, False, "bellec")
    x = (torch.rand(T, B, N_IN) < 0.25).double()
    grads = {}
    for path in ("autograd", "fused"):
        xi = x.clone().requires_grad_(True)
        make_loss("rate")(net(xi, path=path)[0]).backward()
        grads[path] = xi.grad
    assert grads["autograd"].norm() > 0
    torch.testing.assert_close(grads["fused"], grads["autograd"], rtol=1e-10, atol=1e-14)


def test_float32_fused_matches_autograd():
    net = make_net(True, True, "bellec", dtype=torch.float32)
    x = (torch.rand(T, B, N_IN) < 0.25).float()
    reference, _ = bptt_gradients(net, x, make_loss("rate", torch.float32), path="autograd")
    fused, _ = bptt_gradients(net, x, make_loss("rate", torch.float32), path="fused")
    assert max(relative_errors(reference, fused).values()) <= 1e-5


def test_functional_form_without_recurrence_or_bias():
    """`lif_sequence` on its own: no W_rec, no bias, a float threshold vector; z as `lif_forward` gives it."""
    torch.manual_seed(1)
    x = (torch.rand(T, B, N_IN) < 0.3).double()
    w_in = (torch.randn(N, N_IN, dtype=torch.float64) * 0.8).requires_grad_(True)
    v_th = torch.full((N,), 1.0, dtype=torch.float64, requires_grad=True)
    surrogate = lifcore.snn.surrogate.get_surrogate("bellec")
    z, v = lif_sequence(x, w_in, None, None, v_th, 0.9, surrogate)
    params = lifcore.LIFParameters(0.9, v_th, None, surrogate)
    z_ref, v_ref, _ = lif_forward(x @ w_in.t(), params)
    assert torch.equal(z, z_ref)
    g = torch.autograd.grad(z.sum(), [w_in, v_th])
    g_ref = torch.autograd.grad(z_ref.sum(), [w_in, v_th])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_outputs_are_not_overwritten_by_the_next_call():
    """Only what never leaves a call lives in the kept buffers: a second call (another size
    too) leaves the first call's z and v, and its gradients, as they were."""
    net, other = make_net(True, True, "bellec"), lifcore.LIFNetwork(5, 7, dtype=torch.float64)
    x = (torch.rand(T, B, N_IN) < 0.25).double()
    z1, v1 = net(x)
    z_copy, v_copy = z1.clone(), v1.clone()
    net(x[:20])
    other(torch.rand(30, 2, 5, dtype=torch.float64))
    assert torch.equal(z1, z_copy) and torch.equal(v1, v_copy)
    make_loss("rate")(z1).backward()
    grad = net.w_in.grad.clone()
    net.zero_grad()
    make_loss("rate")(net(x)[0]).backward()
    torch.testing.assert_close(net.w_in.grad, grad, rtol=0, atol=0)
    assert workspace_bytes() > 0
    release_workspace()
    assert workspace_bytes() == 0


def test_same_seed_same_results():
    def run():
        torch.manual_seed(3)
        net = make_net(True, True, "fast_sigmoid", dtype=torch.float32)
        x = (torch.rand(T, B, N_IN) < 0.25).float()
        return bptt_gradients(net, x, make_loss("rate", torch.float32))[0]

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_unknown_path_names_the_allowed_ones():
    net = make_net(True, False, "bellec")
    with pytest.raises(ValueError, match="path='compiled' is unknown; allowed: 'fused', 'autograd'"):
        net(torch.zeros(3, 2, N_IN, dtype=torch.float64), path="compiled")


def test_double_backward_is_refused_with_the_path_that_allows_it():
    net = make_net(True, False, "bellec")
    x = (torch.rand(T, B, N_IN) < 0.25).double()
    (g,) = torch.autograd.grad(make_loss("rate")(net(x)[0]), net.w_in, create_graph=True)  # first order: as ever
    torch.testing.assert_close(g.detach(), torch.autograd.grad(make_loss("rate")(net(x)[0]), net.w_in)[0])
    with pytest.raises(RuntimeError, match=r"double backward\): use LIFNetwork.forward\(x, path='autograd'\)"):
        g.sum().backward()
    (g,) = torch.autograd.grad(make_loss("rate")(net(x, path="autograd")[0]), net.w_in, create_graph=True)
    assert g.requires_grad  # the reference path differentiates its gradient


@requires_cuda
@pytest.mark.parametrize("mode", ["full", "stop_z"])
def test_cuda_fused_equals_autograd(mode):
    net = make_net(True, True, "bellec", device="cuda")
    x = (torch.rand(T, B, N_IN, device="cuda") < 0.25).double()
    loss = make_loss("rate")
    reference, _ = bptt_gradients(net, x, loss, mode=mode, path="autograd")
    fused, _ = bptt_gradients(net, x, loss, mode=mode, path="fused")
    assert max(relative_errors(reference, fused).values()) <= 1e-10

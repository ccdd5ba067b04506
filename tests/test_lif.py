"""The LIF network's contract (issue 2): equations, diagonal, validation, devices."""
import pytest
import torch

import lifcore
from conftest import requires_cuda


def reference_loop(net, x):
    """The equations of DESIGN section 2 written out with explicit sums, one neuron at a time."""
    T, B, _ = x.shape
    w_in, w_rec = net.w_in.detach().double(), net.w_rec.detach().double()
    v_th = net.v_th.detach().double()
    v = torch.zeros(B, net.n_neurons, dtype=torch.float64)
    z = torch.zeros_like(v)
    zs, vs = [], []
    for t in range(T):
        new_v = torch.empty_like(v)
        for j in range(net.n_neurons):
            rec = sum(w_rec[j, i] * z[:, i] for i in range(net.n_neurons) if i != j)
            new_v[:, j] = net.alpha * v[:, j] + rec + x[t].double() @ w_in[j] - v_th[j] * z[:, j]
        v = new_v
        z = (v > v_th).double()
        zs.append(z)
        vs.append(v)
    return torch.stack(zs), torch.stack(vs)


def test_forward_matches_the_equations_written_out():
    net = lifcore.LIFNetwork(6, 5, alpha=0.8, w_in_scale=3.0, w_rec_scale=2.0, dtype=torch.float64)
    with torch.no_grad():
        net.w_rec.fill_(0.7)  # the diagonal of the parameter is nonzero: the forward must ignore it
    x = (torch.rand(30, 3, 6) < 0.3).double()
    z, v = net(x)
    z_ref, v_ref = reference_loop(net, x)
    assert z.sum() > 0, "the test needs spikes"
    torch.testing.assert_close(v, v_ref, rtol=0, atol=1e-12)
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(v[0], x[0] @ net.w_in.detach().t())  # v[0] = W_in x[0] from a zero state


def test_diagonal_of_w_rec_stays_zero_under_training():
    net = lifcore.LIFNetwork(10, 20, alpha=0.9, w_in_scale=4.0)
    opt = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.01)
    x = (torch.rand(50, 4, 10) < 0.3).float()
    loss = lifcore.RateLoss(0.2)
    for _ in range(5):
        opt.zero_grad()
        z, _ = net(x)
        loss(z).backward()
        opt.step()
    assert net.w_rec.grad.diagonal().abs().max() == 0
    assert net.w_rec.diagonal().abs().max() == 0
    assert net.w_rec.abs().sum() > 0


def test_bias_and_learnable_threshold_get_gradients():
    net = lifcore.LIFNetwork(10, 8, learn_bias=True, learn_threshold=True, w_in_scale=4.0)
    z, _ = net((torch.rand(40, 2, 10) < 0.3).float())
    lifcore.RateLoss(0.3)(z).backward()
    assert net.bias.grad.abs().sum() > 0 and net.v_th.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha=0.0), "alpha"), (dict(alpha=1.5), "alpha"), (dict(alpha=-0.1), "alpha"),
    (dict(v_th=0.0), "v_th"), (dict(v_th=-1.0), "v_th"),
    (dict(surrogate="tanh"), "surrogate"), (dict(device="tpu"), "device"), (dict(device="gpu:0"), "device"),
])
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        lifcore.LIFNetwork(4, 3, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device"):
        lifcore.LIFNetwork(4, 3, device="cuda")


@pytest.mark.parametrize("x", [torch.zeros(10, 4), torch.zeros(10, 2, 5), torch.zeros(1, 10, 2, 4)])
def test_bad_input_shape_names_x(x):
    net = lifcore.LIFNetwork(4, 3)
    with pytest.raises(ValueError, match=r"x must be a \[T, B, n_in=4\]"):
        net(x)


def test_same_seed_same_result():
    def run():
        torch.manual_seed(3)
        net = lifcore.LIFNetwork(5, 7, w_in_scale=3)
        return net((torch.rand(20, 2, 5) < 0.5).float())[1]
    assert torch.equal(run(), run())


def test_auto_device_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lifcore.resolve_device("auto").type == expected


@requires_cuda
def test_cuda_forward_matches_cpu():
    net = lifcore.LIFNetwork(20, 30, w_in_scale=3.0, dtype=torch.float64)
    x = (torch.rand(50, 4, 20) < 0.3).double()
    z_cpu, v_cpu = net(x)
    net_gpu = net.to("cuda")
    z_gpu, v_gpu = net_gpu(x.cuda())
    torch.testing.assert_close(v_gpu.cpu(), v_cpu)

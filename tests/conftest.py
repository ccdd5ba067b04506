import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def deck_forward(weights, log_gain, log_threshold, x, cx, s_in=0.4, s_out=3.0, beta=2.5):
    """The deck's model written out per sample, independently of lifcore: y = W^T x (W as [D, J]),
    G = a sigmoid(beta (y - b)), C_z = G W^T (C_x + s_in^2 I) W G + s_out^2 I,
    C_zx = G W^T s_in^2 W G + s_out^2 I, log-determinants in bits from Cholesky factors,
    KL = logdet C_z - logdet C_zx (bits), rates a softplus(y - b; beta). Returns KL, rates, C_z, C_zx."""
    w = weights.t()  # [D, J], the deck's orientation
    a, b = log_gain.exp(), log_threshold.exp()
    y = x @ w
    g = a * torch.sigmoid(beta * (y - b))
    eye = torch.eye(w.shape[1], dtype=w.dtype)
    kernel_z = w.t() @ (cx + s_in**2 * torch.eye(w.shape[0], dtype=w.dtype)) @ w
    kernel_zx = s_in**2 * w.t() @ w
    c_z = g[:, :, None] * kernel_z * g[:, None, :] + s_out**2 * eye
    c_zx = g[:, :, None] * kernel_zx * g[:, None, :] + s_out**2 * eye

    def logdet2(m):
        return 2 * torch.linalg.cholesky(m).diagonal(dim1=-2, dim2=-1).log2().sum(-1)

    kl_bits = logdet2(c_z) - logdet2(c_zx)
    rates = a * torch.nn.functional.softplus(y - b, beta=beta)
    return kl_bits, rates, c_z, c_zx

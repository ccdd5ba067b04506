"""Part II (seed 000): the efficient-coding model.

`data` (natural colour patches, the deck's pipeline as options), `info` (streaming
covariance, log-determinants, MI, posterior KL), `encoder` (the interface; information
and covariance matrices written once), `soft_lif` (the project's encoder: the LIF f-I
curve), `softplus` (the deck's encoder), `kernels` (unit norm, jitter, centring penalty),
`fields` (receptive fields described by numbers; an order of the neurons).
"""
from . import data, encoder, fields, info, kernels, lapack, soft_lif, softplus
from .encoder import Encoder
from .soft_lif import SoftLIFEncoder
from .softplus import SoftplusEncoder

ENCODERS = {"soft_lif": SoftLIFEncoder, "softplus": SoftplusEncoder}

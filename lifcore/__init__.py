"""lifcore: LIF networks, gradient estimators, firing-rate constraints and information metrics.

The package behind the lifcore book; it knows nothing of notebooks.

Part I (seed 001): `lif` (network), `surrogate`, `transfer` (f-I curve), `losses`, `grad` (BPTT, e-prop).
Part II (seed 000): `data` (colour patches), `info` (covariances, MI, KL), `coding` (the encoder),
`constraints` (rate-constraint methods), `runs` (cached training), `experiments` (the runs the
chapters share), `toy` (the two-parameter toy problem), `tiles` (receptive fields).
"""
from . import coding, constraints, data, experiments, grad, info, lif, losses, runs, surrogate, tiles, toy, transfer
from .coding import EfficientCodingModel
from .constraints import ConstrainedOptimizer
from .device import resolve_device
from .grad import bptt_gradients, eprop_gradients, gradient_alignment
from .lif import LIFNetwork, LIFParameters, LIFState, lif_forward, lif_step
from .losses import RateLoss, RateVarianceLoss, ReadoutLoss
from .runs import DivergenceError, TrainConfig, train
from .transfer import lif_rate, simulated_rate, soft_lif_rate, soft_lif_rate_derivative

__all__ = [
    "LIFNetwork", "LIFParameters", "LIFState", "lif_forward", "lif_step",
    "bptt_gradients", "eprop_gradients", "gradient_alignment",
    "RateLoss", "RateVarianceLoss", "ReadoutLoss",
    "lif_rate", "soft_lif_rate", "soft_lif_rate_derivative", "simulated_rate",
    "EfficientCodingModel", "ConstrainedOptimizer", "TrainConfig", "train", "DivergenceError",
    "resolve_device", "coding", "constraints", "data", "experiments", "grad", "info", "lif", "losses", "runs", "surrogate",
    "tiles", "toy", "transfer",
]
__version__ = "0.1.0"

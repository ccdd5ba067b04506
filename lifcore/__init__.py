"""lifcore: LIF networks, gradient estimators, firing-rate constraints and information metrics.

The package behind the lifcore book; it knows nothing of notebooks.
"""
from . import grad, lif, losses, surrogate, transfer
from .device import resolve_device
from .grad import bptt_gradients, eprop_gradients, gradient_alignment
from .lif import LIFNetwork, LIFParameters, LIFState, lif_forward, lif_step
from .losses import RateLoss, RateVarianceLoss, ReadoutLoss
from .transfer import lif_rate, simulated_rate, soft_lif_rate, soft_lif_rate_derivative

__all__ = [
    "LIFNetwork", "LIFParameters", "LIFState", "lif_forward", "lif_step",
    "bptt_gradients", "eprop_gradients", "gradient_alignment",
    "RateLoss", "RateVarianceLoss", "ReadoutLoss",
    "lif_rate", "soft_lif_rate", "soft_lif_rate_derivative", "simulated_rate",
    "resolve_device", "grad", "lif", "losses", "surrogate", "transfer",
]
__version__ = "0.1.0"

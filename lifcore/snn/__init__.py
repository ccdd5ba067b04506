"""Part I (seed 001): spiking LIF networks and their gradients.

`surrogate` (pseudo-derivatives), `lif` (the network: functional step + `nn.Module`),
`transfer` (the f-I curve), `losses` (rate, rate-variance and readout losses with their
exact learning signals), `bptt` (BPTT with its backward written out), `eprop` (e-prop in one
pass), `grad` (both behind one call), `fit` (a training loop), `measure` (time and peak
memory), `branching` (branching-parameter estimators), `information` (what spike counts carry about
the input, and the loss that trains a network on it).
"""
from . import branching, bptt, eprop, fit, grad, information, lif, losses, measure, surrogate, transfer
from .bptt import lif_sequence
from .grad import bptt_gradients, eprop_gradients, gradient_alignment, gradients
from .lif import LIFNetwork, LIFParameters, LIFState, lif_forward, lif_step, simulated_rate
from .information import InformationLoss, StreamingCountInformation, count_information, noisy_presentations
from .losses import RateLoss, RateVarianceLoss, ReadoutLoss, SumLoss
from .transfer import lif_rate, soft_lif_rate, soft_lif_rate_derivative

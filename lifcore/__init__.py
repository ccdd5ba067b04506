"""lifcore: LIF networks, gradient estimators, firing-rate constraints and information metrics.

The package behind the lifcore book; it knows nothing of notebooks.

Layout
------
``snn/``          Part I (seed 001): surrogate, lif, bptt (its hand-written backward), eprop (one pass),
                  workspace (buffers kept between calls), transfer, losses, information (of spike counts),
                  grad, fit, measure, branching
``coding/``       Part II (seed 000): data, info, lapack (the CPU kernel of info), encoder (the
                  interface), soft_lif, softplus, kernels
``constraints/``  rate-constraint methods behind one driver: lagrange, two_losses, gamma (homeostatic),
                  alternating, penalty
``train/``        config, build, schedule, loop, record, events (TensorBoard), store (the run cache
                  and its lock), sweep (many runs as submitit jobs)
``toy``           the two-parameter toy problem; ``tiles`` receptive fields as colour tiles;
``plots``         figures several chapters draw alike (ridge plots of histograms);
``timing``        a coding step's profile, FLOP floor and the log-determinant comparison

Glossary: one name per concept
------------------------------
``n_neurons``      neurons of a LIF network or of an encoder (Bellec's ``n_rec``; the deck's J)
``rate_weight``    weight of a rate loss: seed 001's alpha (rate) and beta (rate variance), the
                   weight of ``sum h^2`` in the constraint methods (1 in the deck's Two_losses)
``r0``             target rate (spikes per step for LIF neurons; 1 in the deck's rate units)
``h``              rate error ``r_j - r0`` (``fr_scope="neuron"``) or ``mean r - r0`` (``"population"``); relative,
                   ``r_j / r0 - 1``, in `lifcore.snn.information.InformationLoss`
``lr``             learning rate of the information (objective) step
``fr_lr``          learning rate of a separate rate step (the deck's ``FR_learning_rate``)
``multiplier_lr``  the project's own dual step of the Lagrange multipliers (the deck: none, the
                   multipliers share the optimiser and ``lr``)
``rho``            augmented-Lagrangian weight (the deck's rho = 1)
``lagrange_multiplier``  the deck's ``Lambda``
``method``         a constraint method (``lagrange``, ``two_losses``, ``gamma``, ``alternating``,
                   ``penalty``) or, in ``snn``, a gradient estimator (``eprop``, ``bptt``)
``mode``           what BPTT detaches: ``full``, ``detach_reset``, ``stop_z``
``path``           how BPTT differentiates a LIF sequence: ``fused`` (by hand) or ``autograd`` (the reference)
``gamma``          the deck's homeostatic-gain method; in ``snn.surrogate`` Bellec's dampening
                   factor of the pseudo-derivative, the only other use of the word
``I``, ``MI``      the mutual information I(X;R), nats unless a name says bits
``terms/KL``, ``terms/MI``, ``terms/H_X``  the deck's logged quantities: ``2 I`` in bits,
                   ``H_X + I`` in bits, the patch entropy in bits (``lifcore.train.record``)
``repeats``        presentations of each patch in a batch of `lifcore.snn.information` (sample b = p R + k)
``input_norm``     the norm every row of a LIF network's ``w_in`` is held at (its filters keep their size)
``beta``           the deck's weight of its "KL" in the loss (-1/2: the loss is ``-I`` in bits)
``precondition``   how the filters' step sees the input: ``"none"`` (the deck's SGD) or ``"input"`` (SGD on
                   whitened inputs, ``dL/dW m (C_x + s_in^2 I)^-1``; `lifcore.constraints.precondition`)
``image_scale``    the factor every image is resampled by before patches are cut (2.5: the Kyoto
                   thumbnails at the dataset's own 640 x 500)
"""
from . import coding, constraints, plots, snn, tiles, timing, toy, train
from .coding import SoftLIFEncoder, SoftplusEncoder
from .device import resolve_device
from .snn import (LIFNetwork, LIFParameters, LIFState, RateLoss, RateVarianceLoss, ReadoutLoss, bptt_gradients,
                  eprop_gradients, gradient_alignment, lif_forward, lif_rate, lif_sequence, lif_step, simulated_rate,
                  soft_lif_rate, soft_lif_rate_derivative)
from .train import DivergenceError, TrainConfig, deck_config

__all__ = [
    "LIFNetwork", "LIFParameters", "LIFState", "lif_forward", "lif_sequence", "lif_step",
    "bptt_gradients", "eprop_gradients", "gradient_alignment",
    "RateLoss", "RateVarianceLoss", "ReadoutLoss",
    "lif_rate", "soft_lif_rate", "soft_lif_rate_derivative", "simulated_rate",
    "SoftLIFEncoder", "SoftplusEncoder", "TrainConfig", "deck_config", "DivergenceError",
    "resolve_device", "coding", "constraints", "plots", "snn", "tiles", "toy", "train",
]
__version__ = "0.2.0"

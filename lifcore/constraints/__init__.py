"""Firing-rate constraint methods (seed 000; DESIGN section 4; DECK-CODE.md): one class each,
behind one driver (`base.ConstraintMethod`).

The deck's, under the deck's names: `lagrange` (augmented, per neuron, the multipliers in
the same optimiser), `two_losses` (a rate step on gain and threshold, then the information
step on the filters), `gamma` (a homeostatic gain). The project's own: `alternating` (the
toy's two optimisers, shared or disjoint parameters), `penalty`; the population scope
(``fr_scope="population"``) and the separate dual step (``multiplier_lr``) are options.
"""
from .alternating import Alternating
from .base import FR_SCOPES, OPTIMIZERS, ConstraintMethod, Evaluation, check_choice, rate_error
from .homeostatic import HomeostaticGain
from .lagrange import Lagrange
from .penalty import Penalty
from .two_losses import TwoLosses

METHODS = {cls.name: cls for cls in (Lagrange, TwoLosses, HomeostaticGain, Alternating, Penalty)}


def make(method: str, info_params, rate_params=None, **options) -> ConstraintMethod:
    """The constraint method named `method` (see `METHODS`) over these parameters."""
    check_choice("method", method, METHODS)
    return METHODS[method](info_params, rate_params, **options)

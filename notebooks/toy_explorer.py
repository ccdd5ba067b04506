"""The toy explorer of the chapter "The toy Gaussian problem": sliders for the start, the learning rates, the
number of iterations and the method of `lifcore.toy`, drawn over the bump's levels.

Book-side, not part of `lifcore`. The iteration runs in the page's own JavaScript (`toy_explorer.js`, the
same float64 operations in the same order as `lifcore.toy.run`), so the explorer works in the published
book with no kernel (anywidget stores the script in the notebook's widget state; the page's
@jupyter-widgets/html-manager runs it) and in a live Jupyter alike. In a kernel, the result traits
(`end_x1`, `end_x2`, `distance`) are computed by `lifcore.toy.run` whenever a control changes.

    from toy_explorer import ToyExplorer
    ToyExplorer(x1=2.0, x2=1.0, method="alternating")
"""
from __future__ import annotations

import math
from pathlib import Path

import anywidget
import traitlets

from lifcore import toy

LIMITS = {"x1": (-4.0, 6.0), "x2": (-4.0, 6.0), "lr": (0.0005, 0.1), "fr_lr": (0.005, 0.495),
          "multiplier_lr": (0.005, 1.0), "iterations": (0, 20_000)}  # the sliders' ranges, sent to the page (`limits`)


class ToyExplorer(anywidget.AnyWidget):
    """The deck's two-optimiser toy and the book's methods on it, explorable in a browser."""

    _esm = Path(__file__).with_name("toy_explorer.js").read_text()
    limits = traitlets.Dict(LIMITS, read_only=True).tag(sync=True)
    method = traitlets.Unicode("alternating").tag(sync=True)
    x1 = traitlets.Float(2.0).tag(sync=True)
    x2 = traitlets.Float(1.0).tag(sync=True)
    lr = traitlets.Float(0.01).tag(sync=True)
    fr_lr = traitlets.Float(0.2).tag(sync=True)
    multiplier_lr = traitlets.Float(0.2).tag(sync=True)
    rho = traitlets.Float(0.0).tag(sync=True)
    rate_weight = traitlets.Float(1.0).tag(sync=True)
    iterations = traitlets.Int(3000).tag(sync=True)
    # computed here by lifcore.toy.run (the page computes its own in JavaScript)
    end_x1 = traitlets.Float(math.nan, read_only=True)
    end_x2 = traitlets.Float(math.nan, read_only=True)
    distance = traitlets.Float(math.nan, read_only=True)

    @traitlets.validate("method")
    def _method(self, proposal):
        if proposal["value"] not in toy.METHODS:
            raise traitlets.TraitError(f"method={proposal['value']!r} is unknown; allowed: {', '.join(toy.METHODS)}")
        return proposal["value"]

    @traitlets.validate("x1", "x2", "lr", "fr_lr", "multiplier_lr", "iterations")
    def _in_range(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        low, high = LIMITS[name]
        if not (low <= value <= high):
            raise traitlets.TraitError(f"{name}={value!r} is outside the explorer's range [{low}, {high}]")
        return value

    @traitlets.observe("method", "x1", "x2", "lr", "fr_lr", "multiplier_lr", "rho", "rate_weight", "iterations")
    def _recompute(self, change=None):
        end = toy.run(self.method, [self.x1, self.x2], self.iterations, self.lr, self.fr_lr, multiplier_lr=self.multiplier_lr,
                      rho=self.rho, rate_weight=self.rate_weight, last_only=True)[-1]
        optimum = toy.CONSTRAINED_OPTIMUM
        self.set_trait("end_x1", float(end[0]))
        self.set_trait("end_x2", float(end[1]))
        self.set_trait("distance", math.hypot(float(end[0]) - optimum[0], float(end[1]) - optimum[1]))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._recompute()

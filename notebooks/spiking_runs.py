"""The runs of the chapter "A spiking network trained on its own information" (book-side, not part of `lifcore`).

Written once for the chapter and for the test that holds the chapter's rate constraint to its word
(tests/test_count_information.py reads the chapter's parameters cell and the book profile, and trains
through this module, so that it tests the chapter's run, not a copy of it).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

import lifcore
from lifcore.coding import data
from lifcore.snn.fit import fit
from lifcore.snn.information import InformationLoss, StreamingCountInformation, noisy_presentations

# the chapter's parameters this module takes (its other parameters are the figures' own)
PARAMETERS = ("patch_size", "n_neurons", "T", "alpha", "w_rec_scale", "input_norm", "input_noise", "output_noise", "r0",
              "patches", "repeats", "lr", "multiplier_lr", "rho", "eval_batches")


@dataclass
class InformationRuns:
    """The patches, the initial network and the held-out batches of the chapter, and its training runs."""

    patch_size: int
    n_neurons: int
    T: int
    alpha: float
    w_rec_scale: float
    input_norm: float
    input_noise: float
    output_noise: float
    r0: float
    patches: int
    repeats: int
    lr: float
    multiplier_lr: float
    rho: float
    eval_batches: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    images: tuple = ()

    def __post_init__(self):
        self.patch_set = data.natural_patches(size=self.patch_size, n_train=20000,
                                              n_test=max(2000, 2 * self.eval_batches * self.patches), seed=0, images=self.images)
        self.dim = self.patch_set.dim
        torch.manual_seed(0)
        self.initial = lifcore.LIFNetwork(self.dim, self.n_neurons, alpha=self.alpha, w_in_scale=self.input_norm,
                                          w_rec_scale=self.w_rec_scale, input_norm=self.input_norm, learn_bias=True,
                                          learn_threshold=True, device=self.device)
        with torch.no_grad():
            self.initial.bias.fill_(1 - self.alpha)  # every neuron at rheobase v_th (1 - alpha) for a blank patch
        evaluation = torch.Generator().manual_seed(2)
        P = self.patches
        # patches of an image the training never sees; and training patches presented afresh, where the
        # rate constraint is measured
        self.held_out = [self.presentations(self.patch_set.test, slice(k * P, (k + 1) * P), self.T, evaluation)
                         for k in range(self.eval_batches)]
        self.train_check = [self.presentations(self.patch_set.train, self.check_patches(k), self.T, evaluation)
                            for k in range(self.eval_batches)]

    def check_patches(self, k: int) -> slice:
        """The k-th batch of the training patches the constraint is checked on (from the end of the set)."""
        return slice(-(k + 1) * self.patches, -k * self.patches or None)

    def presentations(self, source: torch.Tensor, index, steps: int, generator: torch.Generator) -> torch.Tensor:
        return noisy_presentations(source[index].to(self.device), self.repeats, steps, self.input_noise, generator)

    def loss(self) -> InformationLoss:
        return InformationLoss(self.repeats, self.r0, self.output_noise, rho=self.rho, multiplier_lr=self.multiplier_lr)

    def measure(self, net, batches) -> tuple[float, torch.Tensor]:
        """The information (nats) of the counts over every batch, and each neuron's mean rate."""
        estimate, rates = StreamingCountInformation(self.n_neurons, self.repeats, self.output_noise), []
        with torch.no_grad():
            for x in batches:
                r = net(x)[0].mean(0)
                estimate.update(r)
                rates.append(r)
        return estimate.information(), torch.cat(rates).mean(0).cpu()

    def within(self, net) -> torch.Tensor:
        """Per neuron, whether its rate on the check's training patches lies within 10 % of r0."""
        return (self.measure(net, self.train_check)[1] / self.r0 - 1).abs() < 0.1

    def train(self, method: str, steps: int, record_every: int | None = None, filters: bool = True,
              progress: bool = False):
        """A copy of the initial network trained by `method` for `steps` (Adam, cosine to 1 %), with the held-out
        information and the share of neurons within 10 % of r0 every `record_every` steps; `filters=False` keeps
        W_in and W_rec at their start, so that only the transfer functions (biases, thresholds) learn: the control."""
        net, loss = copy.deepcopy(self.initial), self.loss()
        if not filters:
            net.w_in.requires_grad_(False)
            net.w_rec.requires_grad_(False)
        draws = torch.Generator().manual_seed(1)  # the same patches and noise for every run

        def inputs(step):
            index = torch.randint(self.patch_set.train.shape[0], (self.patches,), generator=draws)
            return self.presentations(self.patch_set.train, index, self.T, draws)

        history = {"step": [0], "information": [self.measure(net, self.held_out)[0]], "held": [float("nan")]}

        def on_step(step):
            if record_every and ((step + 1) % record_every == 0 or step + 1 == steps):
                history["step"].append(step + 1)
                history["information"].append(self.measure(net, self.held_out)[0])
                history["held"].append(float(self.within(net).float().mean()))

        fit(net, inputs, loss, method=method, steps=steps, lr=self.lr, progress=progress, on_step=on_step,
            lr_final_factor=0.01)
        return net, history

"""What a run records, under the deck's tags and in the deck's units (DECK-CODE.md "Training and logging").

A history entry ``(s, value)`` is measured after s steps (s = 0: the initial model) on a
fixed evaluation batch (the first `eval_size` training patches, at the encoder's
operating point with one fixed draw of the input noise), so curves compare across steps
and methods. Every `log_every` steps:

* ``info/I``: the mutual information I(X;R), nats per patch (the project's own quantity);
* ``terms/KL``: the deck's "KL" = logdet MI_numerator - logdet MI_denominator in bits = ``2 I / ln 2``;
* ``terms/MI``: the deck's "MI" = ``H_X - beta KL`` with beta = -1/2, i.e. ``H_X + I`` in bits:
  not a mutual information (``lifcore.coding.data.deck_entropy_offset_bits`` gives the
  constant by which the deck's own H_X differs);
* ``terms/H_X``: ``1/2 log2 det(2 pi e C_x)``, bits; ``terms/loss``: the deck's ``beta KL = -I`` (bits);
* ``terms/h``: mean over neurons of ``h_j = r_j - r0``; ``rate/mean``, ``rate/error`` (mean |h|),
  ``lagrange_multiplier`` (mean), ``lr`` (the objective step's);
* ``info/KL_posterior``: E KL(p(x|r) || p(x)) through the D x D posterior, nats (every `kl_every`);
* ``info/I_held_out``: I(X;R) on the first `eval_size` held-out patches (images the training
  never sees, `lifcore.coding.data.natural_patches`), nats;
* ``time/train_seconds``: wall-clock seconds spent in training steps so far, the recorder's
  own measurements left out (a measurement of this machine, not a result: it differs between
  two runs of the same config; a resumed run goes on from its checkpoint's count).

Every `histogram_every` steps: ``histogram/r`` (the deck's: each patch's mean rate across
neurons, one value per patch of the batch), ``histogram/r_neuron`` (each neuron's mean rate
over the batch), ``histogram/lambda`` (multipliers), ``histogram/gain`` and ``histogram/bias``
(the deck's a and b; for the soft-LIF encoder ``histogram/bias`` is b and
``histogram/threshold`` is v_th).

Every `matrices_every` steps and at the last: ``kernels`` (W), ``W_grad/info`` (gradient of
the objective), ``W_grad/rate`` (of the constraint's term, zero where the method's step does
not apply it to W), ``W_grad`` (their sum, the deck's tag before its clipping; the three only
for free-pixel filters, as the deck logged them), ``WCxW``
(``W (C_x + s_in^2 I) W^T``, as the deck's code computed it), and ``MI_numerator`` and
``MI_denominator``: batch means on each training step's own batch, averaged over the last
`matrices_window` steps, as the deck's were over the last 1,000.

For the last `record_around_steps` steps, on every step's own batch: ``info/I_before_step`` and,
as the method reports them, ``info/I_after_info_step``, ``info/I_after_rate_step``,
``info/I_after_both_steps`` (nats; minus the objective, so the centring penalty counts
where it is active).
"""
from __future__ import annotations

import math
import time

import torch

from ..coding.data import gaussian_entropy
from ..coding.info import NATS_PER_BIT
from ..constraints import rate_error

HISTORY_FORMAT = 3  # bump when the set or the meaning of the recorded tags changes: cached runs retrain
DECK_BETA = -0.5
AROUND_STEP_TAGS = {"objective_after_info_step": "info/I_after_info_step",
                    "objective_after_rate_step": "info/I_after_rate_step",
                    "objective_after_both_steps": "info/I_after_both_steps"}


class NonFiniteRecord(ValueError):
    """A measured value is NaN or Inf: the run diverged between two checks of its parameters."""


class Recorder:
    def __init__(self, config, encoder, method, data, input_covariance, history: dict, writer=None):
        self.config, self.encoder, self.method, self.writer = config, encoder, method, writer
        self.history = history
        weights = encoder.weights
        self.cov = input_covariance.to(weights)
        self.cov64 = input_covariance.double().to(weights.device)
        eval_x = data.train[:config.eval_size].to(weights)
        noise = torch.Generator().manual_seed(config.seed + 2)
        self.eval_point = encoder.operating_point(eval_x, noise)
        held_out = data.test[:config.eval_size].to(weights)
        self.held_out_point = encoder.operating_point(held_out, torch.Generator().manual_seed(config.seed + 3))
        self.train_seconds, self._clock = 0.0, time.perf_counter()
        self.entropy_bits = gaussian_entropy(input_covariance.double()).item() / NATS_PER_BIT
        self.sums, self.count = None, 0

    # -- bookkeeping ----------------------------------------------------------------------
    def log(self, tag: str, step: int, value) -> None:
        finite = bool(torch.isfinite(value).all()) if torch.is_tensor(value) else math.isfinite(value)
        if not finite:  # a history never holds NaN or Inf: a page would print it, a writer would choke on it
            raise NonFiniteRecord(f"{tag} is NaN or Inf at step {step}")
        self.history.setdefault(tag, []).append((step, value))
        if self.writer is None:
            return
        if hasattr(self.writer, "add"):  # lifcore.train.events.EventLog: every record, scalars, histograms, images
            self.writer.add(tag, step, value)
        elif not torch.is_tensor(value) or value.dim() == 0:  # any writer with TensorBoard's add_scalar
            self.writer.add_scalar(tag, float(value), step)

    def _every(self, every: int, done: int) -> bool:
        return bool(every) and done % every == 0

    def due(self, done: int) -> bool:
        c = self.config
        return done == c.steps or any(self._every(e, done) for e in (c.log_every, c.histogram_every, c.matrices_every,
                                                                       c.kl_every))

    def _next_matrices(self, done: int) -> int:
        every = self.config.matrices_every
        return min(math.ceil(done / every) * every, self.config.steps) if every else self.config.steps

    # -- after every step -----------------------------------------------------------------
    def after_step(self, done: int, record: dict, first_pass: dict | None) -> None:
        """Accumulate the step's own MI_numerator/denominator when a matrices record is near,
        and the objective around the step's parts."""
        now = time.perf_counter()
        self.train_seconds += now - self._clock
        self._clock = now
        if first_pass is not None and self._next_matrices(done) - done < self.config.matrices_window:
            mats = self.encoder.mean_covariances(first_pass["gain"], first_pass["signal"], first_pass["wwt"])
            pair = (mats["MI_numerator"], mats["MI_denominator"])
            self.sums = pair if self.sums is None else tuple(a + b for a, b in zip(self.sums, pair))
            self.count += 1
        if done > self.config.steps - self.config.record_around_steps:
            to_nats = 1.0 / self.config.units_per_nat
            self.log("info/I_before_step", done, -record["objective"].item() * to_nats)
            for key, tag in AROUND_STEP_TAGS.items():
                if key in record:
                    self.log(tag, done, -record[key].item() * to_nats)

    # -- the state after `done` steps, on the evaluation batch ----------------------------
    def measure(self, done: int) -> None:
        c = self.config
        with torch.no_grad():
            out = self.encoder.evaluate(self.eval_point, self.cov)
            rates = out["rate"]
            info_nats = out["MI"].double().mean().item()
            error = rate_error(rates.mean(0), self.method.r0, self.method.fr_scope, rates)
        if self._every(c.log_every, done) or done in (0, c.steps):
            info_bits = info_nats / NATS_PER_BIT
            self.log("info/I", done, info_nats)
            self.log("terms/KL", done, 2 * info_bits)
            self.log("terms/loss", done, DECK_BETA * 2 * info_bits)
            self.log("terms/MI", done, self.entropy_bits - DECK_BETA * 2 * info_bits)
            self.log("terms/H_X", done, self.entropy_bits)
            self.log("terms/h", done, (rates.mean(0) - self.method.r0).mean().item())
            self.log("rate/mean", done, rates.mean().item())
            self.log("rate/error", done, error.abs().mean().item())
            multiplier = self.method.lagrange_multiplier
            if multiplier is not None:
                self.log("lagrange_multiplier", done, multiplier.mean().item())
            self.log("lr", done, self.method.info_optimizer.param_groups[0]["lr"])
            with torch.no_grad():
                self.log("info/I_held_out", done, self.encoder.evaluate(self.held_out_point, self.cov)["MI"].double().mean().item())
            self.log("time/train_seconds", done, self.train_seconds)
        if self._every(c.kl_every, done) or (c.kl_every and done == c.steps):
            with torch.no_grad():
                self.log("info/KL_posterior", done, self.encoder.kl(self.eval_point, self.cov64).mean().item())
        if self._every(c.histogram_every, done) or done in (0, c.steps):
            self.histograms(done, rates)
        if self._every(c.matrices_every, done) or done == c.steps:
            self.matrices(done)
        self._clock = time.perf_counter()  # the recorder's own time is not training time

    def histograms(self, done: int, rates: torch.Tensor) -> None:
        self.log("histogram/r", done, rates.mean(1).detach().cpu())
        self.log("histogram/r_neuron", done, rates.mean(0).detach().cpu())
        multiplier = self.method.lagrange_multiplier
        if multiplier is not None and multiplier.dim() > 0:
            self.log("histogram/lambda", done, multiplier.detach().cpu().clone())
        for name, value in self.encoder.nonlinearity_values().items():
            self.log(f"histogram/{name}", done, value.detach().cpu().clone())

    def matrices(self, done: int) -> None:
        encoder, weights = self.encoder, self.encoder.weights
        out = encoder.evaluate(self.eval_point, self.cov)
        self.log("kernels", done, weights.detach().cpu().clone())
        if encoder.filter_shape == "pixels":  # the deck logs W_grad only for free pixels, as here
            objective = -out["MI"].mean() * self.config.units_per_nat
            (grad_info,) = torch.autograd.grad(objective, weights, retain_graph=True)
            error = rate_error(out["rate"].mean(0), self.method.r0, self.method.fr_scope, out["rate"])
            term = self.method.constraint_term(error)
            grad_rate = torch.zeros_like(grad_info)
            if term is not None and self.method.rate_moves(weights):
                (grad,) = torch.autograd.grad(term, weights, allow_unused=True)
                grad_rate = grad if grad is not None else grad_rate
            self.log("W_grad/info", done, grad_info.detach().cpu())
            self.log("W_grad/rate", done, grad_rate.detach().cpu())
            self.log("W_grad", done, (grad_info + grad_rate).detach().cpu())
        current = encoder.mean_covariances(out["gain"], out["signal"], out["wwt"])
        self.log("WCxW", done, current["WCxW"].cpu())
        if self.sums is not None:  # the training batches' own, averaged over the window
            numerator, denominator = (s / self.count for s in self.sums)
        else:  # step 0: nothing averaged yet, the evaluation batch
            numerator, denominator = current["MI_numerator"], current["MI_denominator"]
        self.log("MI_numerator", done, numerator.cpu())
        self.log("MI_denominator", done, denominator.cpu())
        self.sums, self.count = None, 0

    def state_dict(self) -> dict:
        return {"sums": list(self.sums) if self.sums is not None else None, "count": self.count,
                "train_seconds": self.train_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.sums = tuple(state["sums"]) if state["sums"] is not None else None
        self.count = state["count"]
        self.train_seconds, self._clock = state["train_seconds"], time.perf_counter()

"""A run's history as TensorBoard event files, under the deck's tags (seed 000's panels).

`train` writes them beside the run's cache entry, ``<cache_dir>/<key>/events/``, so that
``tensorboard --logdir runs`` shows every run (its folder is the run's key; `config.json`
beside it says what the run is). The recorder (`lifcore.train.record`) hands every value it
keeps to `EventLog.add` at the step it keeps it, so the event files and the history hold the
same values at the same steps, at the deck's intervals scaled to the run's length:

* numbers (``terms/KL``, ``terms/MI``, ``terms/H_X``, ``terms/loss``, ``info/I``, ``rate/*``,
  ``lr``, ...): scalars;
* ``histogram/*`` (``histogram/r``, ``histogram/r_neuron``, ``histogram/lambda``,
  ``histogram/gain``, ...): histograms;
* ``kernels``, ``W_grad``, ``W_grad/info``, ``W_grad/rate``: images of the filters as colour
  tiles (`lifcore.tiles`, each tile scaled on its own, as the deck drew them);
* ``MI_numerator``, ``MI_denominator``, ``WCxW``: images of the N x N matrices, scaled to
  [0, 1] by their largest absolute entry (grey is zero).

A resumed run opens its writer with ``purge_step`` = the checkpoint's step + 1 (0 on a fresh
start): TensorBoard's readers then drop what an interrupted process had written after the
checkpoint, and no step appears twice.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..tiles import tile_image

FILTER_IMAGES = ("kernels", "W_grad", "W_grad/info", "W_grad/rate")


class EventLog:
    """TensorBoard's `SummaryWriter` fed with history records (`add(tag, step, value)`)."""

    def __init__(self, folder: str | Path, patch_size: int, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.patch_size = patch_size
        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def add(self, tag: str, step: int, value) -> None:
        if not torch.is_tensor(value) or value.dim() == 0:
            self.writer.add_scalar(tag, float(value), step)
        elif tag.startswith("histogram/"):
            values = value.detach().double().cpu().flatten()
            values = values[torch.isfinite(values)]  # NaN and Inf cannot be binned (a diverging run's last record)
            if values.numel():
                self.add_histogram(tag, step, values.numpy())
        elif tag in FILTER_IMAGES:  # NaN drawn as zero (a diverging run's last record): a cast of NaN warns on stderr
            self.writer.add_image(tag, tile_image(torch.nan_to_num(value.detach(), 0.0, 0.0, 0.0), self.patch_size), step,
                                  dataformats="HWC")
        else:
            matrix = torch.nan_to_num(value.detach().double().cpu(), 0.0, 0.0, 0.0)
            scale = matrix.abs().max().clamp_min(1e-300)
            self.writer.add_image(tag, (0.5 + 0.5 * matrix / scale).clamp(0, 1), step, dataformats="HW")

    def add_histogram(self, tag: str, step: int, values) -> None:
        """A histogram of finite `values`, binned here: TensorBoard's own binning raises "The histogram is
        empty" for finite values it cannot bin (all alike and huge, or spanning +-1e38, as a diverging run
        gives), which would hide the run's `DivergenceError` behind an error of the writer."""
        import numpy as np

        low, high = float(values.min()), float(values.max())
        if not high > low:  # all alike: one bin around them
            width = max(abs(low) * 1e-6, 1e-12)
            low, high = low - width, high + width
        edges = np.linspace(low, high, 31) if np.isfinite(high - low) else np.array([low, 0.0, high])
        counts, edges = np.histogram(values, bins=edges)
        with np.errstate(over="ignore"):
            self.writer.add_histogram_raw(tag, low, high, values.size, float(values.sum()), float(np.dot(values, values)),
                                          edges[1:].tolist(), counts.tolist(), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

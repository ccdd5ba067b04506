"""The branching parameter m of a population activity A[t] (seed 001, slide "Constraining the
global firing rate distribution": "branching -> 1 as sigma -> 0").

For a driven branching process ``E[A[t+1] | A[t]] = m A[t] + h``, two estimators:

* ``regression_branching``: the slope of A[t+1] on A[t] (biased towards 0 when only a
  fraction of the units is observed, Wilting & Priesemann 2018);
* ``multistep_branching``: the multistep-regression (MR) estimator: the slopes r_k of
  A[t+k] on A[t], k = 1..k_max, follow ``r_k = b m^k``, and m comes from the fit; it is
  unbiased under subsampling. ``multistep_branching(..., use_mrestimator=True)`` asks the
  `mrestimator` package (its reference implementation) for the fit; the tests check that
  both agree on a simulated branching process of known m.
"""
from __future__ import annotations

import numpy as np


def _as_trials(activity) -> np.ndarray:
    a = np.asarray(activity, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] < 3:
        raise ValueError(f"activity must be [T] or [trials, T] with T >= 3; got shape {a.shape}")
    return a


def slope(a: np.ndarray, k: int) -> float:
    """Pooled least-squares slope of A[t+k] on A[t] over all trials (each trial centred)."""
    x = a[:, :-k] - a[:, :-k].mean(1, keepdims=True)
    y = a[:, k:] - a[:, k:].mean(1, keepdims=True)
    var = (x * x).sum()
    return float((x * y).sum() / var) if var > 0 else float("nan")


def regression_branching(activity) -> float:
    """m as the slope of A[t+1] on A[t]."""
    return slope(_as_trials(activity), 1)


def multistep_branching(activity, k_max: int = 20, use_mrestimator: bool = False) -> float:
    """m from the multistep regression ``r_k = b m^k``, k = 1..k_max."""
    a = _as_trials(activity)
    k_max = min(k_max, a.shape[1] // 3)
    if k_max < 2:
        raise ValueError(f"k_max={k_max} too small for a series of length {a.shape[1]} (need T >= 6)")
    if use_mrestimator:
        import logging
        import mrestimator as mre

        import contextlib
        import io

        logging.getLogger("mrestimator").setLevel(logging.ERROR)
        # mrestimator draws tqdm bars on stderr whatever `disable_progressbar` says: a published
        # page must not carry them, so its stderr goes nowhere for these two calls
        with contextlib.redirect_stderr(io.StringIO()):
            coefficients = mre.coefficients(a, steps=(1, k_max), dt=1, dtunit="step", method="ts", desc="")
            return float(mre.fit(coefficients, fitfunc="exponential", desc="").mre)
    ks = np.arange(1, k_max + 1)
    r = np.array([slope(a, k) for k in ks])
    keep = r > 0
    if keep.sum() < 2:
        return float("nan")
    # log r_k = log b + k log m: least squares over the positive coefficients
    log_m, _ = np.polyfit(ks[keep], np.log(r[keep]), 1)
    return float(np.exp(log_m))


def simulate_branching_process(m: float, drive: float, steps: int, seed: int = 0, start: float | None = None) -> np.ndarray:
    """A Poisson branching process ``A[t+1] ~ Poisson(m A[t] + drive)`` (for checks)."""
    rng = np.random.default_rng(seed)
    a = np.empty(steps)
    a[0] = drive / (1 - m) if start is None else start
    for t in range(1, steps):
        a[t] = rng.poisson(m * a[t - 1] + drive)
    return a

"""The training runs the Part II chapters share (seed 000, "This week" 1-3).

Book-side, not part of `lifcore`: the chapters' run names and quick settings. Every
chapter builds the same base config from its `part2` parameter (a dict of `TrainConfig`
fields; missing fields take the quick settings below) and asks for the runs it needs; the
run cache of `lifcore.train` trains each of them once per book.

These runs are the project's own model (the soft-LIF encoder) and methods:

* ``lagrange``: the population-mean Lagrange constraint with its own dual step;
* ``alternating xF``: the toy's two-optimiser scheme on shared parameters, with the rate
  learning rate ``fr_lr = F * lr``, F in `FR_LR_FACTORS` (the deck's 1x, 0.1x, 0.01x, and 10x, 100x);
* the same with ``fr_scope="neuron"`` (one constraint per neuron), to test whether the
  population-mean constraint is what leaves each neuron's rate free.
"""
from __future__ import annotations

from pathlib import Path

from lifcore.train import DivergenceError, Run, TrainConfig, deck_config, train

# Seconds on a laptop CPU: what the notebooks' parameter cells (and the tests) run.
QUICK = dict(patch_size=4, n_neurons=48, steps=200, batch_size=32, lr=3e-3, n_patches=5000, log_every=20,
             histogram_every=50, matrices_every=50, eval_size=128, cov_batches=20)
FR_LR_FACTORS = (0.01, 0.1, 1.0, 10.0, 100.0)


def base_config(**part2) -> TrainConfig:
    """The shared config: `QUICK`, overridden by `part2`; every step records the information
    after the information step and after the rate step (for the KL-around-each-step chapter),
    and the posterior KL is measured with every log (for the KL-versus-MI chapter)."""
    merged = QUICK | part2
    return TrainConfig(**({"record_around_steps": merged["steps"], "kl_every": merged["log_every"]} | merged))


def run_name(config: TrainConfig, base: TrainConfig) -> str:
    name = config.method if config.method != "alternating" else f"alternating x{(config.fr_lr or config.lr) / base.lr:g}"
    return name + (" (per neuron)" if config.fr_scope == "neuron" else "")


def configs(base: TrainConfig, factors=FR_LR_FACTORS, scopes=("population",), lagrange: bool = True) -> dict:
    """The named configs of the sweep."""
    out = {}
    for scope in scopes:
        scoped = base.replace(fr_scope=scope)
        if lagrange:
            out[run_name(scoped.replace(method="lagrange"), base)] = scoped.replace(method="lagrange")
        for factor in factors:
            config = scoped.replace(method="alternating", fr_lr=base.lr * factor)
            out[run_name(config, base)] = config
    return out


def train_all(named_configs: dict, cache_dir: str | Path = "runs", progress: bool = True) -> dict[str, Run | DivergenceError]:
    """Train (or load) each run; a run that diverges is returned as its `DivergenceError`,
    so that a chapter can say so instead of stopping."""
    runs = {}
    for name, config in named_configs.items():
        try:
            runs[name] = train(config, cache_dir=cache_dir, progress=progress)
        except DivergenceError as err:
            runs[name] = err
    return runs


# ---------------------------------------------------------------------------------------------
# The deck's model and methods (lifcore.train.deck_config): what the Part II chapters reproduce.
# A chapter's `deck` parameter is a dict of TrainConfig fields over DECK_QUICK; the book profile
# gives every chapter the same dict, so that each run trains once per book.
DECK_QUICK = dict(steps=200, patch_size=4, n_neurons=16, batch_size=32, n_patches=4000, cov_batches=20, eval_size=64)
DECK_FR_FACTORS = (0.01, 0.1, 1.0, 10.0, 100.0)  # FR_learning_rate / lr; the deck's histogram labels 1, 10, 100
AROUND_SHARE = 0.1  # the objective around each part of a step is recorded over the last tenth of a run


def deck_base(**deck) -> TrainConfig:
    """The deck's config (`deck_config`) at the length and size of `deck` (over `DECK_QUICK`)."""
    merged = DECK_QUICK | deck
    steps = merged.pop("steps")
    return deck_config(steps, **merged)


def deck_catalogue(base: TrainConfig) -> dict[str, TrainConfig]:
    """Every deck run a chapter may ask for, by name:

    * ``lagrange``, ``gamma``: the deck's methods as its code ran them;
    * ``two_losses xF``: Two_losses with FR_learning_rate = F * lr (the objective around each
      part of a step recorded over the last tenth of the run);
    * ``two_losses x1 per patch``: the rate loss on each patch's population rate instead of each
      neuron's mean (the experiment of the rate-learning-rate chapter);
    * ``two_losses x1 as the slide says``: the filters see the information term alone;
    * ``two_losses x1, information moves gain and threshold``: the information step moves them too;
    * ``two_losses x1 without jitter``, ``... without centring``, ``... without either``: the
      schedule's window taken apart.
    """
    around = max(1, round(AROUND_SHARE * base.steps))
    two = {f"two_losses x{f:g}": base.replace(method="two_losses", fr_lr=base.lr * f, record_around_steps=around)
           for f in DECK_FR_FACTORS}
    x1 = two["two_losses x1"]
    return {"lagrange": base.replace(method="lagrange"), "gamma": base.replace(method="gamma"), **two,
            "two_losses x1 per patch": x1.replace(fr_scope="patch"),
            "two_losses x1 as the slide says": x1.replace(weights_see_rate_loss=False),
            "two_losses x1, information moves gain and threshold": x1.replace(info_moves="all"),
            "two_losses x1 without jitter": x1.replace(jitter_every=0),
            "two_losses x1 without centring": x1.replace(centering_weight=0.0),
            "two_losses x1 without either": x1.replace(jitter_every=0, centering_weight=0.0)}


def deck_runs(deck: dict, names, cache_dir: str | Path = "runs", progress: bool = True) -> dict:
    """Train (or load) the named deck runs (see `deck_catalogue`); a diverged run comes back as
    its `DivergenceError`."""
    catalogue = deck_catalogue(deck_base(**deck))
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ValueError(f"unknown deck run(s) {unknown}; known: {', '.join(catalogue)}")
    return train_all({n: catalogue[n] for n in names}, cache_dir, progress)

"""The training runs the Part II chapters share (seed 000): the deck's model and methods.

Book-side, not part of `lifcore`: the chapters' run names and quick settings. Every chapter
builds the same base config from its `deck` parameter (a dict of `TrainConfig` fields over
`DECK_QUICK`) and asks for the runs it needs by name (`deck_catalogue`); the run cache of
`lifcore.train` trains each of them once per book.
"""
from __future__ import annotations

from pathlib import Path

from lifcore import resolve_device
from lifcore.train import DivergenceError, Run, TrainConfig, coerce_fields, deck_config, train


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


def needed(runs: dict, *names) -> None:
    """Stop a chapter that cannot go on without the named runs, saying which diverged and why
    (instead of an AttributeError on a `DivergenceError` further down)."""
    for name in names:
        if isinstance(runs.get(name), Exception):
            raise RuntimeError(f"the run {name!r} diverged, and this chapter cannot go on without it: {runs[name]}")


DECK_QUICK = dict(steps=200, patch_size=4, n_neurons=16, batch_size=32, n_patches=4000, cov_batches=20, eval_size=64)
DECK_FR_FACTORS = (0.01, 0.1, 1.0, 10.0, 100.0)  # FR_learning_rate / lr; the deck's histogram labels 1, 10, 100
AROUND_SHARE = 0.1  # the objective around each part of a step is recorded over the last tenth of a run


def deck_base(**deck) -> TrainConfig:
    """The deck's config (`deck_config`) at the length and size of `deck` (over `DECK_QUICK`). A device
    "auto" is resolved here, so that a run is cached under the device it runs on."""
    merged = coerce_fields(DECK_QUICK | deck)  # YAML's "1e-3" and lists, as meant
    if merged.get("device") == "auto":  # a named device stays as named (a sweep may prepare GPU runs on a CPU node)
        merged["device"] = str(resolve_device("auto"))
    steps = merged.pop("steps")
    return deck_config(steps, **merged)


def describe(base: TrainConfig) -> str:
    """One line that states the model and the schedule a chapter ran with (its parameters, in words)."""
    return (f"The deck's model: {base.n_neurons} softplus neurons, {base.patch_size}x{base.patch_size} RGB patches "
            f"(D = {base.dim}), batches of {base.batch_size}, {base.steps} steps of SGD (lr {base.lr}), target rate {base.r0}")


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


def converging_runs(base: TrainConfig) -> dict[str, TrainConfig]:
    """The schedules and levers of the chapter "The colour model converges", over the deck's run `base`."""
    levers = {
        "deck: SGD 0.01, plateau": {},
        "exponential decay": dict(lr_schedule="exponential"),
        "cosine decay": dict(lr_schedule="cosine"),
        "Adam 0.001": dict(optimizer="adam", lr=1e-3, lr_schedule="constant"),
        "no renormalisation": dict(renormalize=False),
        "PCA start": dict(filter_init="pca"),
        "Adam 0.001, PCA start": dict(optimizer="adam", lr=1e-3, lr_schedule="constant", filter_init="pca"),
        "batch x2": dict(batch_size=2 * base.batch_size),
        "no jitter": dict(jitter_every=0),
    }
    return {name: base.replace(**change) for name, change in levers.items()}


def book_runs(deck: dict) -> dict[str, TrainConfig]:
    """Every run the Part II chapters ask for, at the size of `deck` (what `book/sweep.py` trains ahead)."""
    base = deck_base(**deck)
    return {**deck_catalogue(base), **{f"converging: {n}": c for n, c in converging_runs(base).items()}}


def deck_runs(deck: dict, names, cache_dir: str | Path = "runs", progress: bool = True) -> dict:
    """Train (or load) the named deck runs (see `deck_catalogue`); a diverged run comes back as
    its `DivergenceError`."""
    catalogue = deck_catalogue(deck_base(**deck))
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ValueError(f"unknown deck run(s) {unknown}; known: {', '.join(catalogue)}")
    return train_all({n: catalogue[n] for n in names}, cache_dir, progress)

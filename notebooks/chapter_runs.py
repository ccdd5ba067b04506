"""The training runs the Part II chapters share (seed 000): the deck's model and methods.

Book-side, not part of `lifcore`: the chapters' run names and quick settings. Every chapter
builds the same base config from its `deck` parameter (a dict of `TrainConfig` fields over
`DECK_QUICK`) and asks for the runs it needs by name (`deck_catalogue`); the run cache of
`lifcore.train` trains each of them once per book.

Every deck run starts from the converged base model (`base_model`: the deck's model trained by
`lifcore.train.recipe_config` to centre-surround ON and OFF mosaics, the chapter "The colour
model converges"), so that the deck's methods are compared on fields the deck's lab would
recognise, not on a random start. ``deck["base"]`` holds the base's own fields (its ``steps``, over
`BASE_QUICK`); ``deck["base"] = None`` runs the deck's methods from the deck's own random start.
The images are the deck's Kyoto scenes wherever this machine has them
(`lifcore.coding.data.kyoto_folder`), else scikit-image's photographs (`images_here`).
"""
from __future__ import annotations

from pathlib import Path

from lifcore import resolve_device
from lifcore.coding import data
from lifcore.train import DivergenceError, Run, TrainConfig, coerce_fields, deck_config, recipe_config, train


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
BASE_QUICK = dict(steps=200)  # the base model's own fields, over the deck run's size (`base_model`)
DECK_FR_FACTORS = (0.01, 0.1, 1.0, 10.0, 100.0)  # FR_learning_rate / lr; the deck's histogram labels 1, 10, 100
AROUND_SHARE = 0.1  # the objective around each part of a step is recorded over the last tenth of a run
# what a deck run and its base share: the model's size, the data, the device (the rest is each one's schedule)
SHARED_FIELDS = ("patch_size", "n_neurons", "batch_size", "n_patches", "cov_batches", "eval_size", "images", "device",
                 "seed", "dtype", "input_noise", "output_noise", "centering", "mask")


def images_here() -> tuple:
    """``("kyoto",)`` where this machine has the deck's Kyoto scenes, else ``()`` (scikit-image's photographs)."""
    return (data.KYOTO,) if data.kyoto_folder() is not None else ()


def base_model(sizes: dict, base: dict | None) -> TrainConfig | None:
    """The converged base model: `recipe_config` at the deck run's sizes with the fields `base` (None: no base)."""
    if base is None:
        return None
    fields = coerce_fields(BASE_QUICK | dict(base))
    steps = fields.pop("steps")
    return recipe_config(steps, **({k: v for k, v in sizes.items() if k in SHARED_FIELDS} | fields))


def deck_base(**deck) -> TrainConfig:
    """The deck's config (`deck_config`) at the length and size of `deck` (over `DECK_QUICK`), starting from
    `base_model` (``deck["base"]``, over `BASE_QUICK`). A device "auto" is resolved here, so that a run is
    cached under the device it runs on."""
    deck = dict(deck)
    base = deck.pop("base", {})
    merged = coerce_fields(DECK_QUICK | {"images": images_here()} | deck)  # YAML's "1e-3" and lists, as meant
    if merged.get("device") == "auto":  # a named device stays as named (a sweep may prepare GPU runs on a CPU node)
        merged["device"] = str(resolve_device("auto"))
    steps = merged.pop("steps")
    return deck_config(steps, **merged, start=base_model(merged, base))


def images_in_words(config: TrainConfig) -> str:
    """Which images a run trains on, for a page."""
    train_names, held_out = data.resolve_images(config.images)
    if config.images == (data.KYOTO,):
        kind = "the .mat cone responses" if train_names[0].endswith(".mat") else "the dataset's 256 x 200 RGB thumbnails"
        return (f"the Kyoto natural scenes the deck trained on (Doi et al. 2003; {kind}, {len(train_names)} for training, "
                f"{len(held_out)} held out)")
    if not config.images:
        return (f"scikit-image's photographs {', '.join(train_names)} ({', '.join(held_out)} held out), standing in for "
                "the deck's Kyoto scenes, which this machine does not have")
    return f"{len(train_names)} images of {config.images} ({len(held_out)} held out)"


def describe(base: TrainConfig) -> str:
    """One line that states the model and the schedule a chapter ran with (its parameters, in words)."""
    start = (f", starting from the converged base model ({base.start.steps} steps of the recipe of the chapter "
             f"'The colour model converges')" if base.start is not None else ", from the deck's random start")
    return (f"The deck's model: {base.n_neurons} softplus neurons, {base.patch_size}x{base.patch_size} colour patches "
            f"(D = {base.dim}) of {images_in_words(base)}; batches of {base.batch_size}, {base.steps} steps of SGD "
            f"(lr {base.lr}){start}; target rate {base.r0}")


def deck_catalogue(base: TrainConfig) -> dict[str, TrainConfig]:
    """Every deck run a chapter may ask for, by name:

    * ``lagrange``, ``gamma``: the deck's methods as its code ran them;
    * ``two_losses xF``: Two_losses with FR_learning_rate = F * lr (the objective around each
      part of a step recorded over the last tenth of the run);
    * ``two_losses x1 per patch``: the rate loss on each patch's population rate instead of each
      neuron's mean (the experiment of the rate-learning-rate chapter);
    * ``two_losses xF as the slide says`` (F = 1 and the sweep's two ends): the filters see the information
      term alone, so that the rate step alone holds the rates;
    * ``two_losses x1, information moves gain and threshold``: the information step moves them too;
    * ``two_losses x1 without jitter``, ``... without centring``, ``... without either``: the
      schedule's window taken apart;
    * ``lagrange, constant lr``, ``two_losses x1, constant lr``: the two methods at one learning rate to the
      end (the deck's plateau schedule lowers each run's rate on its own curve, so that their final rates differ);
    * ``gamma, settling average``: Gamma with a moving average whose time constant is a twentieth of the run
      (the deck's 1,000 steps are twice the book profile's run);
    * ``two_losses x1, the deck's recovery``: one jitter at the window's start, then the deck's `RECOVERY` steps
      under the centring penalty before the run ends (where the deck's next jitter would come), so that the
      filters have the deck's time to recover from it.
    """
    around = max(1, round(AROUND_SHARE * base.steps))
    two = {f"two_losses x{f:g}": base.replace(method="two_losses", fr_lr=base.lr * f, record_around_steps=around)
           for f in DECK_FR_FACTORS}
    x1 = two["two_losses x1"]
    ends = (DECK_FR_FACTORS[0], DECK_FR_FACTORS[-1])
    deaf = {f"two_losses x{f:g} as the slide says": two[f"two_losses x{f:g}"].replace(weights_see_rate_loss=False) for f in ends}
    return {"lagrange": base.replace(method="lagrange"), "gamma": base.replace(method="gamma"), **two,
            "two_losses x1 per patch": x1.replace(fr_scope="patch"),
            "two_losses x1 as the slide says": x1.replace(weights_see_rate_loss=False), **deaf,
            "two_losses x1, information moves gain and threshold": x1.replace(info_moves="all"),
            "two_losses x1 without jitter": x1.replace(jitter_every=0),
            "two_losses x1 without centring": x1.replace(centering_weight=0.0),
            "two_losses x1 without either": x1.replace(jitter_every=0, centering_weight=0.0),
            "lagrange, constant lr": base.replace(method="lagrange", lr_schedule="constant"),
            "two_losses x1, constant lr": x1.replace(lr_schedule="constant"),
            "gamma, settling average": base.replace(method="gamma", homeostatic_ema=min(1.0, 20 / base.steps)),
            "two_losses x1, the deck's recovery": recovery_run(x1)}


RECOVERY = 5_000  # the deck's iterations between two jitters (train.py, dcb198e)


def recovery_run(config: TrainConfig) -> TrainConfig:
    """`config` cut to one jitter at its window's start and the deck's `RECOVERY` steps after it, the centring
    penalty on through them (as in the deck's window), recorded as often as a run of that length is."""
    start = config.jitter_start
    steps = start + RECOVERY
    every = max(1, steps // 20)
    return config.replace(steps=steps, jitter_stop=start, jitter_every=RECOVERY, centering_start=start, centering_stop=steps,
                          log_every=max(1, min(10, steps // 50)), histogram_every=every, matrices_every=every,
                          matrices_window=every, record_around_steps=0)


PRECONDITIONED = "recipe, random start, preconditioned step"


def converging_runs(base: TrainConfig) -> dict[str, TrainConfig]:
    """The schedules and levers of the chapter "The colour model converges", each from its own start and
    as long as the base model (`base.start`): the deck's schedule, the recipe, and the recipe less one of
    its parts or with another filter parametrisation."""
    recipe = base.start if base.start is not None else base_model(base.asdict(), {"steps": base.steps})
    sizes = {k: getattr(recipe, k) for k in SHARED_FIELDS}
    deck = deck_config(recipe.steps, **sizes)
    compressed_interval = max(1, round(5_000 * recipe.steps / 1_000_000))  # the deck's 5,000 of 10^6, scaled
    return {
        "deck: SGD 0.01, plateau": deck,
        "deck, jitter compressed": deck.replace(jitter_every=compressed_interval),
        "recipe": recipe,
        "recipe, random start": recipe.replace(filter_init="random"),
        # issue 32: SGD on whitened inputs (lifcore.constraints.precondition) from the deck's own random start; lr 0.001
        # (at the recipe's 0.01 the amplified gradient noise of the low-variance directions rotates every filter away)
        PRECONDITIONED: recipe.replace(filter_init="random", precondition="input", lr=0.001),
        "recipe, gain at the noisy patch": recipe.replace(gain_at="noisy"),
        "recipe, scattered centres": recipe.replace(filter_init="scattered"),
        "recipe, fields 2.5 times wider at the start": recipe.replace(filter_init_width=2.5),
        "recipe, DoG filters": recipe.replace(filter_shape="dog", filter_init="random", lr=0.1),
    }


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


ROOT = Path(__file__).resolve().parent.parent
# where the decks' own figures are looked for: $LIFCORE_SHARED, then shared/ inside or beside the project
SHARED_PLACES = (ROOT / "shared", ROOT.parent / "shared")


def deck_figure(name: str) -> Path | None:
    """The deck's own figure `name` (a file of ``shared/seeds/deck000-figures/``) where this machine has it, or None."""
    import os

    places = ([Path(os.environ["LIFCORE_SHARED"])] if os.environ.get("LIFCORE_SHARED") else []) + list(SHARED_PLACES)
    for place in places:
        path = place / "seeds" / "deck000-figures" / name
        if path.is_file():
            return path
    return None


def figure_tiles(path, patch_size: int, gap_level: float = 0.97) -> "torch.Tensor":
    """The filters of a figure drawn as a grid of grey tiles (the deck's `kernels` image, page 1), read back as
    achromatic filters ``[N, 3 * patch_size^2]`` for `lifcore.coding.dog.fit`.

    Tiles are the runs of rows and columns between white gaps (more than 80 % of a line above `gap_level`),
    at least half the typical tile; each is averaged down to ``patch_size x patch_size`` pixels, and its zero
    is its corners' median (outside the circular mask the deck's filters are zero, drawn mid-grey). A figure
    holds the picture's grey levels, not the weights: the fit reads shapes and widths from it, not amplitudes."""
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    grey = plt.imread(str(path))[..., :3].mean(-1)

    def runs(white_share):
        inside = white_share <= 0.8
        edges = np.flatnonzero(np.diff(np.concatenate(([0], inside.astype(int), [0]))))
        spans = list(zip(edges[::2], edges[1::2]))
        typical = np.median([b - a for a, b in spans]) if spans else 0
        return [(a, b) for a, b in spans if b - a >= typical / 2]

    white = grey > gap_level
    tiles = []
    for top, bottom in runs(white.mean(1)):
        for left, right in runs(white.mean(0)):
            tile = torch.as_tensor(grey[top:bottom, left:right], dtype=torch.float64)[None, None]
            small = torch.nn.functional.interpolate(tile, size=(patch_size, patch_size), mode="area")[0, 0]
            corners = torch.stack([small[0, 0], small[0, -1], small[-1, 0], small[-1, -1]])
            tiles.append((small - corners.median())[..., None].expand(patch_size, patch_size, 3).reshape(-1))
    if not tiles:
        raise ValueError(f"no tiles found in {path}")
    return torch.stack(tiles)


def deck_figures(*names: str, height: float = 3.2, stacked: bool = False):
    """The deck's own figures `names` (files of ``shared/seeds/deck000-figures/``) drawn in one row (``stacked``:
    one above the other, for wide strips such as lines of code), each titled with its page, to stand beside the
    chapter's figure of the same slide. Returns the matplotlib figure, or None (after printing which are missing)
    where this machine has none of them."""
    import matplotlib.pyplot as plt

    found = [(n, deck_figure(n)) for n in names]
    missing = [n for n, p in found if p is None]
    if missing:
        print(f"the deck's figure(s) {', '.join(missing)} are not on this machine (set LIFCORE_SHARED to the folder "
              "that holds seeds/deck000-figures/)")
    found = [(n, p) for n, p in found if p is not None]
    if not found:
        return None
    images = [plt.imread(str(p)) for _, p in found]
    widths = [im.shape[1] / im.shape[0] for im in images]
    if stacked:
        heights = [8.5 / w for w in widths]
        fig, axes = plt.subplots(len(images), 1, figsize=(8.5, sum(heights) + 0.35 * len(images)),
                                 gridspec_kw={"height_ratios": heights}, squeeze=False)
        axes = axes.T
    else:
        fig, axes = plt.subplots(1, len(images), figsize=(min(8.5, height * sum(widths)), height),
                                 gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (name, _), image in zip(axes[0], found, images):
        ax.imshow(image)
        ax.set_axis_off()
        page, _, what = name.removesuffix(".png").partition("-")
        ax.set_title(f"the deck, page {int(page[1:])}: {what.replace('-', ' ')}", fontsize=8)
    fig.tight_layout()
    return fig

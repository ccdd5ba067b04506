"""Everything that determines a training run of the coding model, checked field by field.

`TrainConfig()` is the project's own model (the soft-LIF encoder, the population-mean
Lagrange constraint with its own dual step, Adam); `deck_config(steps)` is the deck's
`train.py` (dcb198e) defaults, with the milestones of its schedule (plateau decay, the
jitter and centring window) at the same fractions of the run's length as in the deck's
one-million-step runs and the deck's 5,000 steps between two jitters; `recipe_config(steps)`
is the deck's model and objective trained to centre-surround fields in a few thousand steps
(issue 23: a start in closed form, the gain at the clean patch, a cosine decay). A run can
start from where another ends (`start`). A bad field raises ValueError naming it and what is
allowed.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import torch

from ..arguments import integer
from ..coding import ENCODERS
from ..coding.data import CENTERING, MASKS
from ..coding.encoder import FILTER_SHAPES, GAIN_AT
from ..coding.info import NATS_PER_BIT
from ..constraints import FR_SCOPES, METHODS, OPTIMIZERS
from ..constraints.lagrange import MULTIPLIER_INITS
from ..constraints.precondition import PRECONDITIONS
from ..device import check_device_name

LR_SCHEDULES = ("constant", "exponential", "cosine", "plateau")
FILTER_INITS = ("random", "pca", "lattice", "scattered")
UNITS = ("nats", "bits")
FR_PARAMS = ("all", "nonlinearity")
INFO_MOVES = ("filters", "all")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DECK_REFERENCE_STEPS = 1_000_000  # the length of the deck's runs as its figures show them


@dataclass(frozen=True)
class TrainConfig:
    """A run of the coding model under a rate constraint. The comments give units and meaning;
    `lifcore` (package docstring) has the glossary of names."""

    # the encoder (lifcore.coding)
    encoder: str = "soft_lif"        # "soft_lif" (the project's) or "softplus" (the deck's)
    n_neurons: int = 300
    input_noise: float = 0.4         # s_in, patch units
    output_noise: float = 0.02       # s_out, rate units (spikes per step for soft_lif)
    gain_at: str = "clean"           # where G and the constrained rate are evaluated: "clean" or "noisy" (the deck)
    renormalize: bool = False        # filters back to unit norm after every step (the deck)
    filter_init: str = "random"      # "random" (each encoder's own), "pca" (C_x's top principal components),
    #                                  "lattice" (closed form: ON and OFF centre-surround mosaics, lifcore.train.build)
    #                                  or "scattered" (the same fields at random centres)
    filter_init_width: float = 1.0   # lattice, scattered: the closed-form fields' centre and surround widths times this
    filter_shape: str = "pixels"     # softplus: "pixels" (free) or "dog" (the deck's difference-of-Gaussians parameters)
    alpha: float = 0.9               # soft_lif: membrane decay per step
    v_th: float = 1.0                # soft_lif: initial threshold
    sharpness: float = 10.0          # soft_lif: of the soft f-I curve
    weight_scale: float = 0.002      # soft_lif: initial filter scale (small: random filters would stay visible as noise)
    initial_rate: float = 0.02       # soft_lif: the initial bias fires every neuron at this rate
    learn_threshold: bool = False    # soft_lif: thresholds learn too (else only biases, with the filters)
    softplus_beta: float = 2.5       # softplus: a softplus(u - b; beta)
    # the constraint (lifcore.constraints)
    method: str = "lagrange"
    fr_scope: str = "population"     # "neuron": one constraint per neuron (the deck); "population": the mean
    r0: float = 0.02                 # target rate (spikes per step for soft_lif; 1 in the deck)
    rate_weight: float = 1.0         # weight of sum h^2 (two_losses, alternating, penalty)
    fr_lr: float | None = None       # the rate step's learning rate (the deck's FR_learning_rate); None: lr
    multiplier_lr: float | None = 300.0  # lagrange: own dual step; None: the multipliers in the same optimiser (the deck)
    multiplier_init: str = "zero"    # lagrange: "uniform" U(0, 1) (the deck) or "zero"
    rho: float = 0.0                 # lagrange: augmented-Lagrangian weight (the deck: 1)
    weights_see_rate_loss: bool = True  # two_losses: W's step includes sum h^2's gradient, as the deck's code did
    info_moves: str = "filters"      # two_losses: the information step moves the "filters" (the deck) or "all"
    fr_params: str = "all"           # alternating: the rate step moves "all" parameters (the toy) or the "nonlinearity"
    homeostatic_ema: float = 0.001   # gamma: weight of the newest rate in the moving average
    # optimisation
    steps: int = 200
    batch_size: int = 32
    lr: float = 5e-4
    nonlinearity_lr: float | None = None  # the objective step's rate for the nonlinearity's parameters; None: lr
    optimizer: str = "adam"
    lr_schedule: str = "constant"    # constant, exponential, cosine (to lr * lr_final_factor), plateau (the deck)
    lr_final_factor: float = 0.01
    plateau_start: int = 0           # plateau: stepped after this iteration (deck: 10,000)
    plateau_patience: int = 500
    plateau_cooldown: int = 10
    plateau_factor: float = 0.5
    plateau_threshold: float = 1e-4  # relative
    clip_grad_norm: float = 0.0      # 0: none (the deck: 20, over all parameters)
    precondition: str = "none"       # "input": the filters' step is SGD on whitened inputs, dL/dW (C_x + s_in^2 I)^-1
    #                                  scaled by its largest eigenvalue (lifcore.constraints.precondition); "none": the deck's
    jitter_start: int = 0            # W <- W |W|^power at iterations start, start + every, ..., stop (0: never)
    jitter_stop: int = 0
    jitter_every: int = 0
    jitter_power: float = 0.25
    centering_weight: float = 0.0    # weight of the filters' spatial variance for start <= iteration < stop
    centering_start: int = 0
    centering_stop: int = 0
    units: str = "nats"              # of the information in the objective (the deck: bits)
    seed: int = 0
    # data (lifcore.coding.data)
    patch_size: int = 10
    n_patches: int = 20_000          # training patches cut once (held-out: a tenth, from other images)
    centering: str = "dataset"       # "image": the deck's per-image normalisation
    mask: str = "none"               # "circular": the deck's soft window
    images: tuple = ()               # scikit-image names or files; () = the default photographs
    image_scale: float = 1.0         # every image resampled by this factor (bicubic) before patches are cut: 2.5 takes
    #                                  the Kyoto thumbnails (256 x 200) to the dataset's own 640 x 500, a pixel to its pixel
    image_noise: float = 0.0         # white noise added to every image after resampling, in units of its standard deviation
    cov_batches: int = 100           # batches of `batch_size` for the streaming estimate of C_x
    eval_size: int = 256             # the fixed training patches on which the history is measured
    # what is recorded (lifcore.train.record)
    log_every: int = 10
    histogram_every: int = 50
    matrices_every: int = 0          # 0: only at the last step
    matrices_window: int = 1000      # MI_numerator/denominator: mean over at most this many last steps
    kl_every: int = 0                # the posterior KL (D x D matrices, costly); 0: never
    record_around_steps: int = 0     # the objective around each step's parts, for this many last steps (0: none)
    device: str = "cpu"
    dtype: str = "float32"
    # where the run begins: None (the encoder's initialisation, `filter_init`) or another run's config, whose
    # trained encoder (filters, gain, threshold) this run starts from; its method's state starts afresh
    start: "TrainConfig | None" = None

    def __post_init__(self):
        if isinstance(self.images, list):  # YAML has lists, not tuples
            object.__setattr__(self, "images", tuple(self.images))
        if isinstance(self.start, dict):  # from asdict, JSON or YAML
            object.__setattr__(self, "start", TrainConfig(**coerce_fields(self.start)))
        choices = {"encoder": tuple(ENCODERS), "method": tuple(METHODS), "fr_scope": FR_SCOPES,
                   "optimizer": tuple(OPTIMIZERS), "lr_schedule": LR_SCHEDULES, "centering": CENTERING, "mask": MASKS,
                   "dtype": tuple(DTYPES), "gain_at": GAIN_AT, "units": UNITS, "multiplier_init": MULTIPLIER_INITS,
                   "fr_params": FR_PARAMS, "info_moves": INFO_MOVES, "filter_init": FILTER_INITS,
                   "filter_shape": FILTER_SHAPES, "precondition": PRECONDITIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is unknown; allowed: {', '.join(map(repr, allowed))}")
        positive_ints = ("steps", "batch_size", "n_neurons", "patch_size", "n_patches", "cov_batches", "log_every",
                         "histogram_every", "eval_size", "matrices_window")
        counts = ("matrices_every", "kl_every", "record_around_steps", "plateau_start", "plateau_patience",
                  "plateau_cooldown", "jitter_start",
                  "jitter_stop", "jitter_every", "centering_start", "centering_stop", "seed")
        for name in positive_ints + counts:  # any integral number (numpy's too), kept as an int
            object.__setattr__(self, name, integer(name, getattr(self, name), 1 if name in positive_ints else 0))
        positive = ("lr", "rate_weight", "input_noise", "output_noise", "sharpness", "v_th", "weight_scale",
                    "initial_rate", "softplus_beta", "r0", "filter_init_width", "image_scale")
        non_negative = ("rho", "clip_grad_norm", "centering_weight", "jitter_power", "plateau_threshold", "image_noise")
        for name in positive + non_negative:
            value = getattr(self, name)
            if (not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value)
                    or value < 0 or (value == 0 and name in positive)):
                raise ValueError(f"{name}={value!r} must be a finite number {'> 0' if name in positive else '>= 0'}")
            object.__setattr__(self, name, float(value) if isinstance(getattr(TrainConfig, name, None), float) else value)
        for name in ("fr_lr", "multiplier_lr", "nonlinearity_lr"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                          and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a finite number > 0 (or None)")
            if value is not None:  # one spelling, one key: 1 and 1.0 (and numpy's 1.0) are the same run
                object.__setattr__(self, name, float(value))
        largest = torch.finfo(DTYPES[self.dtype]).max if self.dtype in DTYPES else float("inf")
        for name in ("lr", "fr_lr", "multiplier_lr", "nonlinearity_lr"):  # a step of SGD multiplies by it in dtype
            value = getattr(self, name)
            if value is not None and value > largest:
                raise ValueError(f"{name}={value!r} is larger than {self.dtype}'s largest number ({largest:.1e}): "
                                 "no optimiser step can be computed with it")
        for name, low, high in (("alpha", 0, 1), ("lr_final_factor", 0, 1 + 1e-12), ("plateau_factor", 0, 1),
                                ("homeostatic_ema", 0, 1 + 1e-12)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low < value < high):
                raise ValueError(f"{name}={value!r} must be in ({low}, {min(high, 1):g}{']' if high > 1 else ')'}")
        if self.encoder == "soft_lif" and not self.r0 < 1:
            raise ValueError(f"r0={self.r0!r} must be a rate in (0, 1) spikes per step for encoder='soft_lif'")
        if self.method == "gamma" and self.encoder != "softplus":
            raise ValueError("method='gamma' sets a multiplicative gain: it needs encoder='softplus'")
        if self.jitter_every and self.jitter_stop < self.jitter_start:
            raise ValueError(f"jitter_stop={self.jitter_stop} must be >= jitter_start={self.jitter_start}")
        rate_step_only = ((self.method == "two_losses" and self.info_moves == "filters")
                          or (self.method == "alternating" and self.fr_params == "nonlinearity"))
        if self.nonlinearity_lr is not None and rate_step_only:
            raise ValueError(f"nonlinearity_lr={self.nonlinearity_lr!r} has nothing to act on: with method={self.method!r} "
                             "the objective step does not move gain and threshold, the rate step does, at fr_lr")
        if self.filter_init in ("lattice", "scattered") and self.n_neurons < 2:
            raise ValueError(f"filter_init={self.filter_init!r} draws an ON and an OFF population: it needs n_neurons >= 2; "
                             f"got n_neurons={self.n_neurons}")
        if self.precondition != "none" and self.optimizer != "sgd":
            raise ValueError(f"precondition={self.precondition!r} is a step of SGD on whitened inputs; optimizer="
                             f"{self.optimizer!r} rescales every coordinate after it (use optimizer='sgd')")
        if self.precondition != "none" and self.filter_shape != "pixels":
            raise ValueError(f"precondition={self.precondition!r} acts on free pixels; filter_shape={self.filter_shape!r} "
                             "has none (its filters are drawn from DoG parameters)")
        if self.filter_shape == "dog":
            if self.encoder != "softplus":
                raise ValueError("filter_shape='dog' is the deck's parametrisation of its softplus encoder: it needs "
                                 "encoder='softplus'")
            clash = {"jitter_every": self.jitter_every, "filter_init": self.filter_init != "random"}
            if any(clash.values()):
                raise ValueError("filter_shape='dog' draws every filter from its DoG parameters: it takes no "
                                 + " and no ".join(k for k, v in clash.items() if v)
                                 + " (jitter and the filter starts act on free pixels)")
        if self.start is not None:
            if not isinstance(self.start, TrainConfig):
                raise ValueError(f"start={self.start!r} must be a TrainConfig (the run to start from) or None")
            differ = [f"{name}={getattr(self.start, name)!r} there, {getattr(self, name)!r} here"
                      for name in ("encoder", "n_neurons", "patch_size", "filter_shape")
                      if getattr(self.start, name) != getattr(self, name)]
            if differ:
                raise ValueError("start: a run starts from an encoder of its own shape; " + "; ".join(differ))
            if self.filter_init != "random":
                raise ValueError(f"filter_init={self.filter_init!r} and start: a run that starts from another run's end "
                                 "takes its filters from there")
        if not isinstance(self.images, tuple):
            raise ValueError(f"images={self.images!r} must be a tuple of image names or paths (or a folder in a 1-tuple)")
        # C_x is estimated from cov_batches x batch_size patches drawn from n_patches: fewer than D + 1 of
        # either leaves it singular (H_X = -inf, a failed Cholesky at step 0)
        for what, count in (("cov_batches x batch_size", self.cov_batches * self.batch_size), ("n_patches", self.n_patches)):
            if count <= self.dim:
                raise ValueError(f"{what} = {count} patches cannot estimate the input covariance of dimension "
                                 f"D = 3 patch_size^2 = {self.dim}: it needs more than D patches; raise "
                                 f"{'cov_batches' if 'cov' in what else 'n_patches'} or lower patch_size")
        check_device_name(self.device)  # the name only: presence is checked where the run trains

    @property
    def dim(self) -> int:
        return 3 * self.patch_size**2

    @property
    def units_per_nat(self) -> float:
        """The objective's information unit per nat: 1 (nats) or 1 / ln 2 (bits)."""
        return 1.0 if self.units == "nats" else 1.0 / NATS_PER_BIT

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """The run's name in the cache: a hash of every field and of the code the loop runs
        (`lifcore.train.store.run_key`)."""
        from .store import run_key

        return run_key(self)


def coerce_fields(fields: dict) -> dict:
    """TrainConfig fields as YAML gives them, taken as meant: PyYAML reads ``1e-3`` as a string and
    has lists, not tuples. A string that reads as a number becomes that number in a numeric
    field (an integral one in an integer field); a list becomes a tuple in `images`. Anything
    else is left for `TrainConfig` to check."""
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out = {}
    for name, value in fields.items():
        kind = types.get(name, "")
        if isinstance(value, str) and ("float" in kind or kind == "int"):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                value = int(number) if kind == "int" and number.is_integer() else number
        elif isinstance(value, float) and kind == "int" and value.is_integer():
            value = int(value)
        elif isinstance(value, list) and kind == "tuple":
            value = tuple(value)
        out[name] = value  # a `start` dict becomes its TrainConfig (its fields coerced) in __post_init__
    return out


def deck_config(steps: int = DECK_REFERENCE_STEPS, **overrides) -> TrainConfig:
    """The deck's run (`train.py` at dcb198e, DECK-CODE.md), `steps` long.

    Model: softplus encoder, 300 neurons, s_in 0.4, s_out 3, gain at the noisy input, unit-norm
    filters. Data: 18 x 18 patches of per-image normalised photographs under the circular
    mask, C_x from 100,000 patches. Method: Lagrange per neuron, augmented (rho = 1), the
    multipliers in the same SGD optimiser (lr 0.01) from U(0, 1), gradient norm clipped at 20;
    Two_losses (``method="two_losses"``) with FR_learning_rate 0.01; target rate 1 per neuron;
    information in bits. Schedule: plateau decay (factor 0.5, patience 500, cooldown 10,
    threshold 1e-4) after iteration 10,000; jitter (power 0.25) every 5,000 iterations and
    centring (weight 0.02) from 300,000 to 500,000. The milestones scale with
    ``steps / 1,000,000`` (the deck's runs as its figures show them; its `train.py` default
    is 3,000,000); the steps between two jitters do not (each jitter leaves the filters the
    deck's 5,000 steps to recover: a run of 20,000 steps jitters once, at step 6,000, where
    scaling the interval too would jitter 40 times, every 100 steps, compounding
    ``W |W|^0.25`` into single pixels), nor do the plateau's patience and cooldown: they count
    noisy losses, not a fraction of training. (The deck's loss is negative, and PyTorch's relative threshold
    ``loss < best (1 - 1e-4)`` then accepts a loss slightly *worse* than the best as an
    improvement: on a noisy loss about every other step resets the count, and 500 bad
    steps in a row practically never happen.) Logging as the deck at its length (scalars every 10 iterations, images and
    histograms every 1,000, MI_numerator and MI_denominator averaged over the 1,000 before each);
    a shorter run keeps at least 50 scalar and 20 image records where it can (a scalar record
    measures two batches: at every second step it would cost a third of the run).
    """
    steps = integer("steps", steps)
    scale = steps / DECK_REFERENCE_STEPS

    def at(iteration: int, low: int = 1) -> int:
        return max(low, round(iteration * scale))

    deck = dict(
        encoder="softplus", n_neurons=300, input_noise=0.4, output_noise=3.0, gain_at="noisy", renormalize=True,
        softplus_beta=2.5, method="lagrange", fr_scope="neuron", r0=1.0, rate_weight=1.0, fr_lr=0.01,
        multiplier_lr=None, multiplier_init="uniform", rho=1.0, weights_see_rate_loss=True, homeostatic_ema=0.001,
        steps=steps, batch_size=128, lr=0.01, optimizer="sgd", lr_schedule="plateau", plateau_start=at(10_000, 0),
        plateau_patience=500, plateau_cooldown=10, plateau_factor=0.5, plateau_threshold=1e-4,
        clip_grad_norm=20.0, jitter_start=at(300_000), jitter_stop=at(500_000), jitter_every=5_000,
        jitter_power=0.25, centering_weight=0.02, centering_start=at(300_000), centering_stop=at(500_000),
        units="bits", patch_size=18, centering="image", mask="circular", n_patches=100_000, cov_batches=782,
        eval_size=128, log_every=max(1, min(10, steps // 50)), histogram_every=max(1, min(1_000, steps // 20)),
        matrices_every=max(1, min(1_000, steps // 20)), matrices_window=max(1, min(1_000, steps // 20)), kl_every=0)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(f.name for f in dataclasses.fields(TrainConfig))}")
    return TrainConfig(**(deck | overrides))


RECIPE = dict(filter_init="lattice", gain_at="clean", optimizer="sgd", lr=0.01, nonlinearity_lr=0.1,
              lr_schedule="cosine", lr_final_factor=0.01, multiplier_lr=0.1, jitter_every=0, centering_weight=0.0)


def recipe_config(steps: int = 2_000, **overrides) -> TrainConfig:
    """The deck's model and objective (`deck_config`: softplus encoder, unit-norm filters, every neuron's
    rate held at 1 by the augmented Lagrangian, the information in bits, SGD at lr 0.01, batches of
    128, the gradient clipped at 20) trained to centre-surround fields in a few thousand steps (issue 23;
    the chapter "The colour model converges" measures each part), by four changes (`RECIPE`):

    * ``filter_init="lattice"``: the filters start in closed form, as ON and OFF centre-surround mosaics
      (`lifcore.train.build.centre_surround_filters`) instead of random pixels, whose remains in the directions
      where patches have little variance decay too slowly to vanish in fewer than millions of steps;
    * ``gain_at="clean"``: G (and the held rate) at the patch itself, not at one draw of the input
      noise per patch: the noise draw enters the filters' gradient as white noise, which SGD leaves in
      them as speckle (the deck's objective, judged on held-out patches at its own noisy gain, ends
      higher trained this way);
    * the nonlinearity's gain and threshold at ten times the filters' learning rate (``nonlinearity_lr``
      0.1), and the multipliers by their own dual step (``multiplier_lr`` 0.1, from the deck's U(0, 1)):
      the rates settle in hundreds of steps instead of tens of thousands;
    * a cosine decay of every learning rate to 1 % of it at the last step, no jitter, no centring.
    """
    return deck_config(steps, **(RECIPE | overrides))  # which names every unknown field

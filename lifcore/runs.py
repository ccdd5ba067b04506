"""Training runs of the efficient-coding model: validated config, disk cache, checkpoints.

``train(config)`` trains `EfficientCodingModel` under a rate constraint and returns a
`Run` (model, history, the patch covariance). A run is cached under
``<cache_dir>/<key>/`` where the key is a hash of the whole config, so that every
notebook that asks for the same config gets the same run, trained once:

* ``checkpoint.pt`` every `checkpoint_every` steps (atomic write: a killed run leaves
  the previous checkpoint, never half a file), from which an interrupted run resumes
  with bit-identical results (model, optimisers, multiplier, batch RNG, history);
* ``result.pt`` at the end; a finished run is loaded, not retrained;
* a NaN or Inf in the objective or the parameters stops the run with `DivergenceError`;
  the last good checkpoint stays.

The history records, under the slides' tag names: ``terms/MI``, ``terms/KL``,
``terms/H_X`` (nats), ``rate/mean``, ``rate/error``, ``lagrange_multiplier``, ``lr``
every `log_every` steps; ``histogram/r`` (per-neuron rates) every `histogram_every`;
``W_grad/info``, ``W_grad/rate``, ``MI_numerator``, ``MI_denominator``, ``WCxW``
every `matrices_every` (and at the last step). A history entry ``(s, value)`` is
measured after s steps (s = 0: the initial model), on a fixed evaluation batch. With
``record_after_rate_step``, ``terms/MI_before_step``, ``terms/MI_after_info_step`` and
``terms/MI_after_rate_step`` are recorded at every step, on that step's own batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .coding import EfficientCodingModel
from .constraints import FR_SCOPES, METHODS, OPTIMIZERS, ConstrainedOptimizer, rate_error
from .data import CENTERING, PatchDataset, gaussian_entropy, natural_patches
from .device import resolve_device
from .info import NotPositiveDefiniteError, StreamingCovariance

LR_SCHEDULES = ("constant", "exponential", "cosine")
_TRAINING_MODULES = ("coding", "constraints", "data", "device", "info", "lif", "runs", "surrogate", "transfer")
_TRAINING_CODE_DIGEST = hashlib.sha256(b"".join(
    (Path(__file__).parent / f"{name}.py").read_bytes() for name in _TRAINING_MODULES)).digest()
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DivergenceError(RuntimeError):
    """A run produced NaN or Inf; the message says where, and which checkpoint was kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Every field is checked; a bad one raises ValueError naming it."""

    # constraint
    method: str = "lagrange"
    fr_scope: str = "population"
    r0: float = 0.02                 # target rate, spikes per step
    gamma: float = 1.0               # weight of (rbar - r0)^2 (two_losses, bias_threshold, penalty)
    fr_lr: float | None = None       # learning rate of the rate optimiser (two_losses, bias_threshold)
    lagrange_lr: float = 300.0       # dual step of the multiplier (lagrange)
    lagrange_rho: float = 0.0        # augmented-Lagrangian weight (lagrange; 0 = plain Lagrangian)
    # optimisation
    steps: int = 200
    batch_size: int = 32
    lr: float = 5e-4
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    lr_final_factor: float = 0.01    # exponential and cosine decay end at lr * lr_final_factor
    seed: int = 0
    # model
    n_neurons: int = 300
    alpha: float = 0.9
    v_th: float = 1.0
    input_noise: float = 0.4
    output_noise: float = 0.02
    sharpness: float = 10.0
    weight_scale: float = 0.002      # small: the initial random filters would stay visible as noise
    initial_rate: float = 0.02
    # data
    patch_size: int = 10
    n_patches: int = 20_000
    centering: str = "dataset"
    images: tuple = ()               # scikit-image names or files; () = the default photographs
    cov_batches: int = 100           # batches of `batch_size` for the streaming estimate of C_x
    eval_size: int = 256             # the fixed training patches on which the history is measured
    # logging
    log_every: int = 10
    histogram_every: int = 50
    matrices_every: int = 0          # 0: only at the last step
    record_after_rate_step: bool = False
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self):
        choices = {"method": METHODS, "fr_scope": FR_SCOPES, "optimizer": tuple(OPTIMIZERS),
                   "lr_schedule": LR_SCHEDULES, "centering": CENTERING, "dtype": tuple(DTYPES)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is unknown; allowed: {', '.join(map(repr, allowed))}")
        positive_ints = ("steps", "batch_size", "n_neurons", "patch_size", "n_patches", "cov_batches", "log_every",
                         "histogram_every", "eval_size")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if not isinstance(self.matrices_every, int) or self.matrices_every < 0:
            raise ValueError(f"matrices_every={self.matrices_every!r} must be an integer >= 0")
        positive = ("lr", "gamma", "lagrange_lr", "input_noise", "output_noise", "sharpness", "v_th", "weight_scale",
                    "initial_rate")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a finite number > 0")
        if not (isinstance(self.lagrange_rho, (int, float)) and self.lagrange_rho >= 0):
            raise ValueError(f"lagrange_rho={self.lagrange_rho!r} must be a number >= 0")
        if self.fr_lr is not None and not (isinstance(self.fr_lr, (int, float)) and self.fr_lr > 0):
            raise ValueError(f"fr_lr={self.fr_lr!r} must be > 0 (or None: the same as lr)")
        if not (0 < self.r0 < 1):
            raise ValueError(f"r0={self.r0!r} must be a rate in (0, 1) spikes per step")
        if not (0 < self.alpha < 1):
            raise ValueError(f"alpha={self.alpha!r} must be in (0, 1)")
        if not (0 < self.lr_final_factor <= 1):
            raise ValueError(f"lr_final_factor={self.lr_final_factor!r} must be in (0, 1]")
        if not isinstance(self.images, tuple):
            raise ValueError(f"images={self.images!r} must be a tuple of image names or paths (or a folder in a 1-tuple)")
        resolve_device(self.device)  # raises ValueError naming device

    @property
    def dim(self) -> int:
        return 3 * self.patch_size**2

    def key(self) -> str:
        """A hash of every field and of the code that trains: the run's name in the cache.

        The source of the modules a run depends on is part of the key, so that a change of
        the training code never loads a result computed by the old one.
        """
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        digest.update(_TRAINING_CODE_DIGEST)
        return digest.hexdigest()[:16]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class Run:
    config: TrainConfig
    model: EfficientCodingModel
    history: dict
    input_covariance: torch.Tensor
    data: PatchDataset = field(repr=False)
    path: Path | None = None

    def series(self, tag: str) -> tuple[list[int], list]:
        """Steps and values of one history tag."""
        entries = self.history.get(tag, [])
        return [s for s, _ in entries], [v for _, v in entries]


def learning_rate(config: TrainConfig, step: int, base: float) -> float:
    """Scheduled learning rate at `step` (0-based): constant, exponential or cosine decay to ``base * lr_final_factor``."""
    progress = step / max(config.steps - 1, 1)
    if config.lr_schedule == "exponential":
        return base * config.lr_final_factor**progress
    if config.lr_schedule == "cosine":
        return base * (config.lr_final_factor + (1 - config.lr_final_factor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return base


def dataset_for(config: TrainConfig) -> PatchDataset:
    images = config.images
    if len(images) == 1 and Path(images[0]).is_dir():
        images = images[0]
    return natural_patches(config.patch_size, n_train=config.n_patches, n_test=max(config.n_patches // 10, 1000),
                           seed=config.seed, images=list(images) if isinstance(images, tuple) and images else (images or None),
                           centering=config.centering)


def estimate_input_covariance(data: PatchDataset, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """C_x from `cov_batches` batches, with the streaming estimator (float64)."""
    stream = StreamingCovariance(data.dim)
    for _ in range(config.cov_batches):
        stream.update(data.batch(config.batch_size, generator))
    return stream.covariance()


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _finite(*tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def build_model(config: TrainConfig, device) -> EfficientCodingModel:
    return EfficientCodingModel(config.dim, config.n_neurons, alpha=config.alpha, v_th=config.v_th,
                                input_noise=config.input_noise, output_noise=config.output_noise,
                                sharpness=config.sharpness, weight_scale=config.weight_scale,
                                initial_rate=config.initial_rate, device=device, dtype=DTYPES[config.dtype])


def build_optimizer(config: TrainConfig, model: EfficientCodingModel) -> ConstrainedOptimizer:
    if config.method == "bias_threshold":
        info_params, rate_params = [model.weights], [model.bias, model.log_v_th]
    else:  # thresholds stay fixed; weights and biases learn
        info_params, rate_params = [model.weights, model.bias], None
    return ConstrainedOptimizer(config.method, info_params, rate_params, r0=config.r0, lr=config.lr,
                                fr_lr=config.fr_lr, gamma=config.gamma, lagrange_lr=config.lagrange_lr,
                                fr_scope=config.fr_scope, optimizer=config.optimizer, n_units=config.n_neurons,
                                rho=config.lagrange_rho)


def train(config: TrainConfig, cache_dir: str | Path | None = "runs", checkpoint_every: int = 100,
          progress: bool = True, writer=None, callback: Callable | None = None) -> Run:
    """Train (or load, or resume) the run of `config`. See the module docstring.

    `writer`: anything with TensorBoard's ``add_scalar(tag, value, step)`` (optional).
    `callback(step, model)`: called after every step (used by the tests to inject a fault).
    ``cache_dir=None`` trains in memory without writing anything.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = dataset_for(config)
    generator = torch.Generator().manual_seed(config.seed)
    input_covariance = estimate_input_covariance(data, config, generator)
    entropy = gaussian_entropy(input_covariance).item()
    model = build_model(config, device)
    constrained = build_optimizer(config, model)
    cov = input_covariance.to(device, DTYPES[config.dtype])
    history: dict[str, list] = {}
    start = 0

    run_dir = Path(cache_dir) / config.key() if cache_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1, sort_keys=True))
        if (run_dir / "result.pt").exists():
            state = torch.load(run_dir / "result.pt", map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            return Run(config, model, state["history"], input_covariance, data, run_dir)
        if (run_dir / "checkpoint.pt").exists():
            state = torch.load(run_dir / "checkpoint.pt", map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            constrained.load_state_dict(state["constraint"])
            generator.set_state(state["generator"])
            history, start = state["history"], state["step"]

    def save_checkpoint(step):
        if run_dir is not None:
            atomic_save({"model": model.state_dict(), "constraint": constrained.state_dict(), "generator": generator.get_state(),
                         "history": history, "step": step}, run_dir / "checkpoint.pt")

    def log(tag, done, value):
        history.setdefault(tag, []).append((done, value))
        if writer is not None and (not torch.is_tensor(value) or value.dim() == 0):
            writer.add_scalar(tag, float(value), done)

    # Scalars and histograms are measured on one fixed evaluation batch, so that curves are
    # comparable across steps and across methods; the step's own batch drives the updates.
    eval_x = data.train[:config.eval_size].to(device, DTYPES[config.dtype])

    def log_state(done):
        with torch.no_grad():
            log("terms/MI", done, model.information(eval_x, cov)["MI"].mean().item())
            log("terms/KL", done, model.kl(eval_x, cov).mean().item())
            log("terms/H_X", done, entropy)
            rates = model.rate(eval_x).mean(0)
            log("rate/mean", done, rates.mean().item())
            log("rate/error", done, (rate_error(rates, config.r0, config.fr_scope)).abs().mean().item())
            log("lagrange_multiplier", done, constrained.lagrange_multiplier.mean().item())
            log("lr", done, learning_rate(config, min(done, config.steps - 1), config.lr))
            if done % config.histogram_every == 0 or done == config.steps:
                log("histogram/r", done, rates.cpu())
        if (config.matrices_every and done % config.matrices_every == 0) or done == config.steps:
            record_matrices(model, constrained, eval_x, cov, done, log)

    if start == 0:
        log_state(0)
    where = (f"the last good checkpoint ({run_dir / 'checkpoint.pt'}) is kept" if run_dir
             else "nothing was saved (cache_dir=None)")
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc=f"{config.method} {config.key()[:6]}")
    for step in bar:
        x = data.batch(config.batch_size, generator).to(device, DTYPES[config.dtype])

        def closure():
            return -model.information(x, cov)["MI"].mean(), model.rate(x).mean(0)

        constrained.set_learning_rates(learning_rate(config, step, config.lr),
                                       learning_rate(config, step, constrained.fr_lr))
        try:
            record = constrained.step(closure, measure_after_rate_step=config.record_after_rate_step)
        except NotPositiveDefiniteError as err:  # a NaN or Inf inside the step shows up as a failed Cholesky
            bar.close()
            raise DivergenceError(f"run {config.key()} diverged at step {step}: {err}; {where}. "
                                  "Lower lr (or fr_lr) or check the config.") from err
        if callback is not None:
            callback(step, model)
        if not _finite(record["objective"], *model.parameters()):
            bar.close()
            raise DivergenceError(f"run {config.key()} diverged at step {step}: objective {record['objective'].item()} "
                                  f"or a parameter is NaN/Inf; {where}. Lower lr (or fr_lr) or check the config.")
        done = step + 1
        if "objective_after_info_step" in record:  # every step, on the step's own batch (cheap: already computed)
            log("terms/MI_before_step", done, -record["objective"].item())
            for key in ("objective_after_info_step", "objective_after_rate_step"):
                if key in record:
                    log(f"terms/MI_{key.removeprefix('objective_')}", done, -record[key].item())
        if any(every and done % every == 0 for every in (config.log_every, config.histogram_every,
                                                           config.matrices_every)) or done == config.steps:
            log_state(done)
            bar.set_postfix(MI=f"{history['terms/MI'][-1][1]:.2f}", rate=f"{history['rate/mean'][-1][1]:.4f}")
        if run_dir is not None and (done % checkpoint_every == 0 or done == config.steps):
            save_checkpoint(done)
    bar.close()
    if run_dir is not None:
        atomic_save({"model": model.state_dict(), "history": history}, run_dir / "result.pt")
    return Run(config, model, history, input_covariance, data, run_dir)


def record_matrices(model, constrained, x, cov, step, log) -> None:
    """The gradient of W from the information term and from the rate term, and the three covariance matrices."""
    out = model.information(x, cov, with_matrices=True)
    (grad_info,) = torch.autograd.grad(-out["MI"].mean(), model.weights)
    error = rate_error(model.rate(x).mean(0), constrained.r0, constrained.fr_scope)
    if constrained.method == "lagrange":
        rate_term = (constrained.lagrange_multiplier * error).sum()
    else:
        rate_term = constrained.rate_loss(error)
    (grad_rate,) = torch.autograd.grad(rate_term, model.weights, allow_unused=True)
    log("W_grad/info", step, grad_info.detach().cpu())
    log("W_grad/rate", step, (grad_rate if grad_rate is not None else torch.zeros_like(grad_info)).detach().cpu())
    for name in ("MI_numerator", "MI_denominator", "WCxW"):
        log(name, step, out[name].cpu())

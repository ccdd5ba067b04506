"""Training the coding model under a rate constraint: a loop that calls small hooks.

``train(config)`` returns a `Run` (the encoder, its history, C_x, the patches). Each step:
the schedule's hooks (jitter, learning rates), one batch and one draw of the input noise,
the constraint method's step on a closure that evaluates the objective and the rates on
them (`lifcore.constraints`), the divergence check, the plateau schedule, the recorder
(`lifcore.train.record`), a checkpoint (`lifcore.train.store`). Same seed, same device,
same run:

* a finished run is loaded, not retrained; an interrupted one resumes from its last
  checkpoint bit-identically (model, method, schedule, both random generators, history);
* a NaN or Inf in the objective or the parameters (or a covariance that stops being
  positive definite) stops the run with `DivergenceError`, naming the step and the
  checkpoint that stays;
* a run is trained by one process at a time (`RunStore.claim`): a second one asking for it
  waits and loads the first one's result;
* a run with a `start` begins from that run's trained encoder (trained first, or loaded, into the
  same cache), only when it trains from step 0: a finished run, or one resumed from its own
  checkpoint, needs nothing from its start;
* the history also goes to TensorBoard event files beside the cache entry (`lifcore.train.events`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..coding.data import PatchDataset
from ..coding.encoder import Encoder
from ..coding.info import NotPositiveDefiniteError
from ..coding.kernels import jitter_, spatial_variance
from ..constraints import ConstraintMethod, Evaluation
from ..device import resolve_device
from .build import build_encoder, build_method, dataset_for, estimate_input_covariance
from .config import TrainConfig
from .record import NonFiniteRecord, Recorder
from .schedule import Schedule
from .store import RunStore


class DivergenceError(RuntimeError):
    """A run produced NaN or Inf; the message says where, and which checkpoint was kept."""


@dataclass
class Run:
    config: TrainConfig
    model: Encoder
    history: dict
    input_covariance: torch.Tensor
    data: PatchDataset = field(repr=False)
    path: Path | None = None

    def series(self, tag: str) -> tuple[list[int], list]:
        """Steps and values of one history tag; a tag the history does not hold (a misspelling, or what this
        run's method or settings do not record) is a KeyError that lists the tags it holds."""
        if tag not in self.history:
            close = [t for t in self.history if t.lower() == tag.lower()]
            raise KeyError(f"{tag!r} is not in this run's history" + (f" (did you mean {close[0]!r}?)" if close else "")
                           + f"; its tags: {', '.join(sorted(self.history))}")
        entries = self.history[tag]
        return [s for s, _ in entries], [v for _, v in entries]


def _finite(*tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def train(config: TrainConfig, cache_dir: str | Path | None = "runs", checkpoint_every: int = 100,
          progress: bool = True, writer=None, callback: Callable | None = None, tensorboard: bool = True,
          wait: bool = True) -> Run:
    """Train (or load, or resume) the run of `config`. See the module docstring.

    `tensorboard`: write TensorBoard event files beside the cache entry (`lifcore.train.events`).
    `writer`: instead, anything with TensorBoard's ``add_scalar(tag, value, step)`` (or `EventLog`'s ``add``).
    `wait`: when another process trains the same run, wait for it and load its result (True), or
    raise `RunLockedError` naming it (False).
    `callback(step, model)`: called after every step (the tests inject faults with it).
    ``cache_dir=None`` trains in memory without writing anything.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every={checkpoint_every!r} must be a positive integer")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    data, input_covariance, after_covariance = _inputs(config)
    batches = torch.Generator()
    batches.set_state(after_covariance)  # where estimating C_x left it: the training batches follow
    encoder = build_encoder(config, device, input_covariance)
    method = build_method(config, encoder, input_covariance)
    schedule = Schedule(config, method.info_optimizer)
    parts = _Parts(config, RunStore(cache_dir, config), data, batches, input_covariance, encoder, method, schedule, device)

    finished = _usable(parts, "result.pt", parts.store.result(device))
    if finished is None:
        parts.store.check_writable()  # before any step: a run that cannot be saved stops now, naming the folder
        with parts.store.claim(wait, say=tqdm.write if progress else None):
            # another process may have trained it while this one waited
            finished = _usable(parts, "result.pt", parts.store.result(device))
            if finished is None:
                def begin() -> None:  # from step 0: where `start` ends
                    if config.start is not None:
                        first = train(config.start, cache_dir, checkpoint_every, progress, tensorboard=tensorboard, wait=wait)
                        encoder.load_state_dict(first.model.state_dict())

                return _steps(parts, checkpoint_every, progress, writer, callback, tensorboard, begin)
    encoder.load_state_dict(finished["model"])
    method.load_state_dict(finished["method"])
    return Run(config, encoder, finished["history"], input_covariance, data, parts.store.path)


_INPUTS: dict = {}  # the last patch sets and C_x this process cut: the runs of one chapter share them


def _inputs(config: TrainConfig) -> tuple[PatchDataset, torch.Tensor, torch.Tensor]:
    """The patches, C_x and the batch generator's state after estimating it, for `config`: cut once per
    process for every config that reads the same images the same way (a chapter loads many runs of one
    data set; cutting 50,000 patches of 18 x 18 and estimating C_x takes seconds each time). The patch
    tensors are shared between those runs and must not be written to."""
    from .store import image_digests

    fields = ("patch_size", "n_patches", "seed", "centering", "mask", "cov_batches", "batch_size", "image_scale",
              "image_noise")
    key = repr(([getattr(config, f) for f in fields], image_digests(config.images)))
    if key not in _INPUTS:
        data = dataset_for(config)
        batches = torch.Generator().manual_seed(config.seed)
        covariance = estimate_input_covariance(data, config, batches)
        while len(_INPUTS) >= 2:  # ~200 MB each at the book's size
            _INPUTS.pop(next(iter(_INPUTS)))
        _INPUTS[key] = (data, covariance, batches.get_state())
    return _INPUTS[key]


def _usable(parts: "_Parts", name: str, state: dict | None) -> dict | None:
    """`state` when it fits this run's objects (a dry run of every load on copies), else None, the file
    moved aside by the store with a warning: a file that loads but was written for another shape (a
    hand-edited or foreign cache) would otherwise fail every later run with a KeyError or a size mismatch."""
    if state is None:
        return None
    try:
        copy.deepcopy(parts.encoder).load_state_dict(state["model"])
        copy.deepcopy(parts.method).load_state_dict(state["method"])
        if name == "checkpoint.pt":
            copy.deepcopy(parts.schedule).load_state_dict(state["schedule"])
            for key in ("sums", "count", "train_seconds"):
                state["recorder"][key]
            for key in ("batches", "noise"):
                torch.Generator().set_state(state[key])
            int(state["step"])
    except torch.OutOfMemoryError:
        raise  # the device's memory, not the file
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError, AttributeError) as err:
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        parts.store.set_aside(name, f"does not fit this run ({type(err).__name__}: {detail})")
        return None
    return state


@dataclass
class _Parts:
    """What a run is made of, built from its config: loaded as a whole, or trained step by step."""
    config: TrainConfig
    store: RunStore
    data: PatchDataset
    batches: torch.Generator
    input_covariance: torch.Tensor
    encoder: Encoder
    method: ConstraintMethod
    schedule: Schedule
    device: torch.device


def _steps(parts: _Parts, checkpoint_every, progress, writer, callback, tensorboard, begin: Callable[[], None]) -> Run:
    """The training steps of a claimed run, from its last checkpoint (or from step 0, after `begin`) to the end."""
    config, store = parts.config, parts.store
    noise = torch.Generator().manual_seed(config.seed + 1)
    history: dict[str, list] = {}
    state = _usable(parts, "checkpoint.pt", store.checkpoint(parts.device))
    start = state["step"] if state is not None else 0
    if state is None:
        begin()
    events = store.event_log(config.patch_size, start) if tensorboard and writer is None else None
    recorder = Recorder(config, parts.encoder, parts.method, parts.data, parts.input_covariance, history,
                        writer if writer is not None else events)
    if state is not None:
        parts.encoder.load_state_dict(state["model"])
        parts.method.load_state_dict(state["method"])
        parts.schedule.load_state_dict(state["schedule"])
        recorder.load_state_dict(state["recorder"])
        parts.batches.set_state(state["batches"])
        noise.set_state(state["noise"])
        history.update(state["history"])
    try:
        return _loop(parts, noise, recorder, history, start, checkpoint_every, progress, callback)
    finally:
        if events is not None:
            events.close()


def _loop(parts: _Parts, noise, recorder, history, start, checkpoint_every, progress, callback) -> Run:
    """Steps `start` to the end: the schedule's hooks, the method's step, the checks, the recorder, checkpoints."""
    config, store, data, batches, encoder, method, schedule = (parts.config, parts.store, parts.data, parts.batches,
                                                               parts.encoder, parts.method, parts.schedule)
    input_covariance, device, dtype = parts.input_covariance, parts.device, config.torch_dtype

    def snapshot(done: int) -> dict:
        return {"model": encoder.state_dict(), "method": method.state_dict(), "schedule": schedule.state_dict(),
                "recorder": recorder.state_dict(), "batches": batches.get_state(), "noise": noise.get_state(),
                "history": history, "step": done}

    def diverged(step: int, what: str) -> DivergenceError:
        return DivergenceError(f"run {config.key()} diverged at step {step}: {what}; {store.describe_checkpoint()}. "
                               "Lower lr (or fr_lr) or check the config.")

    cov = input_covariance.to(device, dtype)
    if start == 0:
        try:
            recorder.measure(0)
        except (NotPositiveDefiniteError, NonFiniteRecord) as err:  # the initial model already fails: the config
            raise diverged(0, str(err).split(";")[0]) from err
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc=f"{config.method} {config.key()[:6]}")
    for step in bar:
        iteration = step + 1  # the deck counts from 1
        if schedule.jitter_now(iteration):
            jitter_(encoder.weights, config.jitter_power)
        schedule.set_learning_rates(method, step)
        method.measure = step >= config.steps - config.record_around_steps
        point = encoder.operating_point(data.batch(config.batch_size, batches).to(device, dtype), noise)
        centering = schedule.centering_now(iteration)
        first_pass: dict = {}

        def evaluate() -> Evaluation:
            out = encoder.evaluate(point, cov)
            objective = -out["MI"].mean() * config.units_per_nat
            if centering:
                objective = objective + config.centering_weight * spatial_variance(encoder.weights, config.patch_size)
            if not first_pass:
                first_pass.update(gain=out["gain"].detach(), signal=out["signal"].detach(), wwt=out["wwt"].detach())
            return Evaluation(objective, out["rate"].mean(0), out["rate"])

        done = step + 1
        try:
            record = method.step(evaluate)
            if callback is not None:
                callback(step, encoder)
            if not _finite(record["objective"], *encoder.parameters()):
                raise diverged(step, f"objective {record['objective'].item()} or a parameter is NaN/Inf")
            schedule.after_step(iteration, record["loss"].item())
            recorder.after_step(done, record, first_pass)
            if recorder.due(done):
                recorder.measure(done)
        except (NotPositiveDefiniteError, NonFiniteRecord) as err:  # a NaN or Inf shows up as a failed Cholesky
            bar.close()
            raise diverged(step, str(err).split(";")[0]) from err
        except DivergenceError:
            bar.close()
            raise
        if progress and "info/I" in history:
            bar.set_postfix(I=f"{history['info/I'][-1][1]:.2f}", rate=f"{history['rate/mean'][-1][1]:.4f}")
        if done % checkpoint_every == 0 or done == config.steps:
            store.save_checkpoint(snapshot(done))
    bar.close()
    store.save_result({"model": encoder.state_dict(), "method": method.state_dict(), "history": history})
    return Run(config, encoder, history, input_covariance, data, store.path)
"""Training runs: the constraint methods on the coding models, the deck's config, the cache, resume
and the divergence guard (issues 3 and 10)."""
import dataclasses
import math

import pytest
import torch

from lifcore.train import DivergenceError, TrainConfig, deck_config, train
from lifcore.train.store import code_digest

# quick settings: a 48-neuron model of 4x4 patches, 400 steps, learning rates decayed (cosine) so that the
# final rate is not a snapshot of the optimiser's jitter
QUICK = dict(steps=400, n_neurons=48, patch_size=4, batch_size=64, lr=3e-3, n_patches=5000, log_every=50, r0=0.02,
             lr_schedule="cosine", lr_final_factor=0.01)


def train_rate(run):
    with torch.no_grad():
        return run.model.rate(run.data.train[:4000]).mean().item()


@pytest.mark.parametrize("method, settings", [
    ("lagrange", dict(multiplier_lr=300.0)),
    # alternating settles above r0 by an offset ~ lr / (rate_weight fr_lr) (see the next test): SGD, as in the
    # deck's toy, with a strong rate step (rate_weight fr_lr = 10; 30 diverges) and a slow information step
    ("alternating", dict(optimizer="sgd", lr=3e-4, fr_lr=0.1, rate_weight=100.0)),
    ("penalty", dict(rate_weight=1e6)),
])
def test_each_method_brings_the_mean_rate_to_r0(method, settings):
    run = train(TrainConfig(method=method, **(QUICK | settings)), cache_dir=None, progress=False)
    rate = train_rate(run)
    _, mi = run.series("info/I")
    print(f"\n{method}: mean rate {rate:.4f} (r0 = 0.02), MI {mi[0]:.2f} -> {mi[-1]:.2f} nats")
    assert abs(rate - 0.02) / 0.02 < 0.05


def test_alternating_stationary_point_sits_above_r0_by_an_offset_that_grows_with_lr():
    """The alternating scheme is not the constrained optimum: at its fixed point the rate step
    cancels the information step, which needs a rate error ~ lr / (rate_weight fr_lr) (cf. the toy model)."""
    settings = dict(QUICK, optimizer="sgd", fr_lr=0.1, rate_weight=100.0)
    slow = train_rate(train(TrainConfig(method="alternating", **(settings | dict(lr=3e-4))), cache_dir=None, progress=False))
    fast = train_rate(train(TrainConfig(method="alternating", **(settings | dict(lr=1e-3))), cache_dir=None, progress=False))
    print(f"\nalternating offset: lr 3e-4 -> {slow / 0.02 - 1:+.1%}, lr 1e-3 -> {fast / 0.02 - 1:+.1%}")
    assert 0 < slow - 0.02 < fast - 0.02
    assert fast / 0.02 - 1 > 2 * (slow / 0.02 - 1)


def test_bias_and_threshold_alone_do_not_hold_the_rate_of_the_soft_lif_model():
    """The bias-and-threshold reading of the deck's method on the project's model (alternating, the rate
    step moving only biases and thresholds): the weights, pushed by the information term alone, drive
    the rates up faster than biases and thresholds pull them down. The thresholds rise, yet the mean
    rate ends far above r0."""
    run = train(TrainConfig(method="alternating", fr_params="nonlinearity", learn_threshold=True,
                            **(QUICK | dict(fr_lr=3e-3))),
                cache_dir=None, progress=False)
    rate = train_rate(run)
    print(f"\nalternating on bias and threshold: mean rate {rate:.4f} (r0 = 0.02), mean threshold {run.model.v_th.mean().item():.2f}")
    assert rate > 3 * 0.02
    assert run.model.v_th.mean().item() > 1.5


def test_mi_rises_and_kl_equals_mi_in_the_history():
    # starting at the target rate, so that the first steps are not spent lowering it
    run = train(TrainConfig(method="lagrange", initial_rate=0.02, kl_every=50, **QUICK), cache_dir=None, progress=False)
    steps, mi = run.series("info/I")
    kl_steps, kl = run.series("info/KL_posterior")
    assert mi[-1] > mi[0] and kl_steps == steps and len(kl) == 9
    for a, b in zip(mi, kl):
        assert abs(a - b) <= 1e-4 * abs(a)  # float32 MI against the float64 posterior path
    # the deck's tags, in bits: KL = 2 I, MI = H_X + I
    _, deck_kl = run.series("terms/KL")
    _, deck_mi = run.series("terms/MI")
    _, hx = run.series("terms/H_X")
    for i, k, m, h in zip(mi, deck_kl, deck_mi, hx):
        assert k == pytest.approx(2 * i / math.log(2), rel=1e-12)
        assert m == pytest.approx(h + i / math.log(2), rel=1e-12)
    entropy_nats = 0.5 * torch.linalg.slogdet(2 * math.pi * math.e * run.input_covariance)[1].item()
    assert hx[0] == pytest.approx(entropy_nats / math.log(2), rel=1e-9)


SMALL = dict(steps=12, n_neurons=16, patch_size=3, batch_size=16, n_patches=2000, cov_batches=10, log_every=2,
             histogram_every=4, matrices_every=6)
# the deck's run at 30 steps: plateau after step 0 (patience 2, to see it act), jitter at 9, 12, 15, centring
# for 9 <= it < 15
DECK_SMALL = dict(n_neurons=16, patch_size=4, batch_size=16, n_patches=2000, cov_batches=10, eval_size=32,
                  log_every=2, histogram_every=5, matrices_every=5, matrices_window=3, jitter_every=3,
                  plateau_patience=2, plateau_cooldown=0)


@pytest.mark.parametrize("make", [lambda: TrainConfig(method="lagrange", multiplier_lr=10.0, **SMALL),
                                  lambda: deck_config(30, method="two_losses", **DECK_SMALL)],
                         ids=["soft_lif lagrange", "deck two_losses with plateau, jitter and centring"])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, make):
    config = make()
    reference = train(config, cache_dir=tmp_path / "a", checkpoint_every=4, progress=False)
    if config.lr_schedule == "plateau":  # the schedule's state must survive the interruption: it has to act
        assert len(set(reference.series("lr")[1])) > 1

    def interrupt(step, model):
        if step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, cache_dir=tmp_path / "b", checkpoint_every=4, progress=False, callback=interrupt)
    state = torch.load(tmp_path / "b" / config.key() / "checkpoint.pt", weights_only=True)
    assert state["step"] == 8 and not (tmp_path / "b" / config.key() / "result.pt").exists()
    resumed = train(config, cache_dir=tmp_path / "b", checkpoint_every=4, progress=False)
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert set(reference.history) == set(resumed.history)
    for tag, entries in reference.history.items():
        again = resumed.history[tag]
        assert [s for s, _ in entries] == [s for s, _ in again], tag
        if tag.startswith("time/"):
            continue  # wall-clock seconds: a measurement of the machine, not of the run
        for (_, a), (_, b) in zip(entries, again):
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), tag


def test_a_finished_run_is_loaded_not_retrained(tmp_path):
    config = TrainConfig(method="alternating", **SMALL)
    first = train(config, cache_dir=tmp_path, progress=False)
    calls = []
    second = train(config, cache_dir=tmp_path, progress=False, callback=lambda s, m: calls.append(s))
    assert calls == [] and torch.equal(first.model.weights, second.model.weights)
    assert set(first.history) >= {"info/I", "terms/MI", "terms/KL", "terms/H_X", "histogram/r", "histogram/r_neuron",
                                  "W_grad/info", "W_grad/rate", "W_grad", "kernels", "MI_numerator", "MI_denominator",
                                  "WCxW", "rate/error"}


def test_an_injected_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    config = TrainConfig(method="penalty", rate_weight=100.0, **SMALL)

    def poison(step, model):
        if step == 6:
            with torch.no_grad():
                model.weights[0, 0] = float("nan")

    with pytest.raises(DivergenceError, match="diverged at step 6.*last good checkpoint"):
        train(config, cache_dir=tmp_path, checkpoint_every=4, progress=False, callback=poison)
    state = torch.load(tmp_path / config.key() / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / config.key() / "result.pt").exists()


def test_the_cache_key_covers_every_field():
    swaps = {"lagrange": "penalty", "population": "neuron", "sgd": "adam", "constant": "cosine",
             "dataset": "patch", "cpu": "auto", "float32": "float64", "soft_lif": "softplus", "clean": "noisy",
             "nats": "bits", "zero": "uniform", "all": "nonlinearity", "none": "circular", "filters": "all",
             "random": "pca"}

    def changed(value):
        if value is None:
            return 0.1
        if isinstance(value, bool):
            return not value
        if isinstance(value, (int, float)):
            return (value * 0.5 or 0.5) if isinstance(value, float) else value + 1
        if isinstance(value, tuple):
            return ("astronaut",)
        return swaps[value]

    # the encoder that has every option (filter_shape "dog" too), with the optimiser every option takes (precondition)
    base = TrainConfig(encoder="softplus", optimizer="sgd")
    special = {"encoder": "soft_lif", "filter_shape": "dog", "start": TrainConfig(encoder="softplus", steps=3),
               "method": "penalty", "precondition": "input"}
    keys = {base.replace(**{f.name: special[f.name] if f.name in special else changed(getattr(base, f.name))}).key()
            for f in dataclasses.fields(TrainConfig)}
    assert len(keys | {base.key()}) == len(dataclasses.fields(TrainConfig)) + 1


@pytest.mark.parametrize("field, value", [
    ("method", "bias_threshold"), ("method", "gamma"), ("fr_scope", "layer"), ("optimizer", "lbfgs"),
    ("lr_schedule", "step"), ("steps", 0), ("batch_size", 1.5), ("lr", -1.0), ("lr", float("nan")), ("r0", 0.0),
    ("r0", 2.0), ("alpha", 1.0), ("input_noise", 0.0), ("fr_lr", -0.1), ("device", "tpu"), ("dtype", "float16"),
    ("centering", "zca"), ("lr_final_factor", 0.0), ("matrices_every", -1), ("images", "astronaut"),
    ("encoder", "relu"), ("gain_at", "both"), ("units", "bans"), ("mask", "square"), ("multiplier_lr", 0.0),
    ("rho", -1.0), ("plateau_factor", 1.0), ("homeostatic_ema", 0.0), ("clip_grad_norm", -1.0), ("fr_params", "bias"),
    ("jitter_stop", -1), ("softplus_beta", 0.0),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field if field != "method" or value != "gamma" else "softplus"):
        TrainConfig(**{field: value})


def test_alternating_records_the_objective_around_each_rate_step():
    run = train(TrainConfig(method="alternating", record_around_steps=SMALL["steps"], **SMALL), cache_dir=None, progress=False)
    steps, before = run.series("info/I_before_step")
    steps_info, after_info = run.series("info/I_after_info_step")
    steps_rate, after_rate = run.series("info/I_after_rate_step")
    assert steps == steps_info == steps_rate == list(range(1, SMALL["steps"] + 1))
    assert all(a != b for a, b in zip(after_info, after_rate))


@pytest.mark.parametrize("method", ["lagrange", "two_losses", "gamma"])
def test_the_quick_deck_config_trains_each_deck_method(method):
    config = deck_config(40, method=method, record_around_steps=15 if method == "two_losses" else 0, **DECK_SMALL)
    run = train(config, cache_dir=None, progress=False)
    norms = run.model.weights.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=1e-5, atol=0)  # unit norm after every step
    steps, kernels = run.series("kernels")
    assert steps == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    for w in kernels:
        torch.testing.assert_close(w.norm(dim=1), torch.ones(16), rtol=1e-5, atol=0)
    _, per_patch = run.series("histogram/r")
    _, per_neuron = run.series("histogram/r_neuron")
    assert per_patch[-1].shape == (32,) and per_neuron[-1].shape == (16,)
    # histogram/r is each patch's mean over neurons: both histograms share one grand mean
    assert per_patch[-1].mean().item() == pytest.approx(per_neuron[-1].mean().item(), rel=1e-5)
    _, info = run.series("info/I")
    assert all(math.isfinite(v) for v in info) and info[-1] > info[0]
    if method == "lagrange":
        assert run.series("histogram/lambda")[1][-1].shape == (16,)
    if method == "two_losses":
        steps, _ = run.series("info/I_after_rate_step")
        assert steps == list(range(26, 41)) == run.series("info/I_after_both_steps")[0]  # the last 15 steps
    if method == "gamma":
        _, gains = run.series("histogram/gain")
        assert not torch.equal(gains[-1], torch.ones(16))


def test_deck_config_scales_the_decks_schedule():
    full = deck_config()
    assert (full.steps, full.batch_size, full.lr, full.fr_lr, full.r0, full.rho, full.clip_grad_norm) == \
        (1_000_000, 128, 0.01, 0.01, 1.0, 1.0, 20.0)
    assert (full.jitter_start, full.jitter_stop, full.jitter_every, full.plateau_start, full.plateau_patience) == \
        (300_000, 500_000, 5_000, 10_000, 500)
    assert (full.patch_size, full.input_noise, full.output_noise, full.units, full.fr_scope) == (18, 0.4, 3.0, "bits", "neuron")
    book = deck_config(2000)
    # the window scales, the deck's 5,000 steps between jitters do not: what a jitter leaves to recover
    assert (book.jitter_start, book.jitter_stop, book.jitter_every, book.centering_start, book.centering_stop) == \
        (600, 1000, 5000, 600, 1000)
    from lifcore.train.schedule import Schedule

    def jitters(config):
        schedule = Schedule(config, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
        return [i for i in range(1, config.steps + 1) if schedule.jitter_now(i)]

    assert jitters(book) == [600] and jitters(deck_config(20_000)) == [6000]
    assert len(jitters(deck_config(1_000_000))) == 41 and jitters(deck_config(1_000_000))[:2] == [300_000, 305_000]
    assert (book.plateau_start, book.plateau_patience, book.log_every, book.matrices_every) == (20, 500, 10, 100)
    assert (full.log_every, full.histogram_every, full.matrices_every, full.matrices_window) == (10, 1000, 1000, 1000)
    with pytest.raises(ValueError, match="unknown TrainConfig field.*lagrange_lr"):
        deck_config(100, lagrange_lr=1.0)


def test_the_cache_key_follows_the_training_code_not_the_recording_code():
    from lifcore.train import store
    modules = set()
    stack = ["lifcore.train.loop"]
    while stack:
        name = stack.pop()
        if name in modules or name in store.NOT_NUMBERS:
            continue
        modules.add(name)
        stack.extend(store._imports(name, store._module_file(name)))
    assert {"lifcore.coding.softplus", "lifcore.constraints.two_losses", "lifcore.train.schedule",
            "lifcore.snn.transfer", "lifcore.coding.data"} <= modules
    assert not modules & {"lifcore.train.record", "lifcore.train.store", "lifcore.tiles", "lifcore.snn.fit"}
    assert len(code_digest()) == 32


def test_pca_init_starts_from_the_top_principal_components_and_is_refused_past_dim():
    config = deck_config(1, filter_init="pca", **DECK_SMALL)
    run = train(config, cache_dir=None, progress=False)  # the first "kernels" entry is the initial W
    _, kernels = run.series("kernels")
    w0 = kernels[0].double()
    values, vectors = torch.linalg.eigh(run.input_covariance)
    top = vectors.flip(-1)[:, :config.n_neurons]
    # each initial filter is (up to its sign) one principal component, in order of variance
    torch.testing.assert_close((w0 @ top).abs().diagonal(), torch.ones(config.n_neurons, dtype=torch.float64),
                               rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="n_neurons <= dim; got n_neurons=49, dim=48"):
        train(dataclasses.replace(config, n_neurons=49), cache_dir=None, progress=False)
    with pytest.raises(ValueError, match="filter_init='ica' is unknown; allowed: 'random', 'pca'"):
        TrainConfig(filter_init="ica")


def test_held_out_information_and_training_seconds_are_recorded():
    run = train(deck_config(20, **DECK_SMALL), cache_dir=None, progress=False)
    steps, held_out = run.series("info/I_held_out")
    assert steps == run.series("info/I")[0] and all(math.isfinite(v) for v in held_out)
    assert held_out != run.series("info/I")[1]  # other patches, other values
    _, seconds = run.series("time/train_seconds")
    assert seconds[0] == 0.0 and all(b >= a for a, b in zip(seconds, seconds[1:])) and seconds[-1] > 0


# the run cache refuses what it cannot trust (issue 15)

def _finished(tmp_path):
    config = TrainConfig(method="alternating", **SMALL)
    run = train(config, cache_dir=tmp_path, progress=False)
    return config, run, tmp_path / config.key()


class _Planted:
    def __reduce__(self):  # unpickling would run this
        import os
        return (os.system, ("touch planted-pickle-ran",))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "planted pickle", "NaN weight"])
@pytest.mark.parametrize("name", ["result.pt", "checkpoint.pt"])
def test_an_unusable_cache_file_is_moved_aside_with_a_message_and_the_run_trained_again(tmp_path, monkeypatch, name, damage):
    from lifcore.train.store import CacheWarning

    monkeypatch.chdir(tmp_path)
    config, reference, folder = _finished(tmp_path / "runs")
    (folder / ("result.pt" if name == "checkpoint.pt" else "checkpoint.pt")).unlink()  # only the damaged file is left
    file = folder / name
    good = file.read_bytes()
    if damage == "empty":
        file.write_bytes(b"")
    elif damage == "truncated":
        file.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        file.write_bytes(b"\x80\x04not a torch file" * 50)
    elif damage == "planted pickle":
        torch.save({"model": _Planted()}, file)
    else:
        state = torch.load(file, weights_only=True)
        state["model"]["weights"][0, 0] = float("nan")
        torch.save(state, file)
    calls = []
    with pytest.warns(CacheWarning, match=rf"{name}.*(cannot be read|refuses|NaN or Inf).*moved to {name}\.bad-"):
        again = train(config, cache_dir=tmp_path / "runs", progress=False, callback=lambda s, m: calls.append(s))
    assert not (tmp_path / "planted-pickle-ran").exists()
    assert calls[0] == 0 and len(calls) == config.steps  # trained again from step 0, not loaded
    assert len(list(folder.glob(f"{name}.bad-*"))) == 1
    assert torch.equal(again.model.weights, reference.model.weights)  # same seed, same run


def test_a_finished_run_loads_from_a_cache_that_cannot_be_written(tmp_path, monkeypatch):
    import tempfile
    from pathlib import Path

    config, reference, folder = _finished(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # root ignores file modes: refuse every way the cache could write instead
    for target, name in ((tempfile, "mkstemp"), (Path, "mkdir"), (Path, "write_text"), (Path, "rename"), (torch, "save")):
        monkeypatch.setattr(target, name, refuse)
    loaded = train(config, cache_dir=tmp_path, progress=False)
    assert torch.equal(loaded.model.weights, reference.model.weights)
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_a_cache_that_cannot_be_written_stops_the_run_before_its_first_step(tmp_path, monkeypatch):
    import tempfile
    from lifcore.train.store import CacheWriteError

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    calls = []
    config = TrainConfig(method="alternating", **SMALL)
    with pytest.raises(CacheWriteError, match=rf"{tmp_path / config.key()} is not writable \(Permission denied\)"):
        train(config, cache_dir=tmp_path, progress=False, callback=lambda s, m: calls.append(s))
    assert calls == []


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    """Two writers of one file (two processes on one config) each write to a temporary of their own: the
    last rename wins and the file is always whole (the old shared name made one writer's rename fail)."""
    from concurrent.futures import ThreadPoolExecutor
    from lifcore.train.store import atomic_save

    target = tmp_path / "checkpoint.pt"
    payloads = [{"step": k, "w": torch.full((200, 200), float(k))} for k in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: [atomic_save(payloads[k], target) for _ in range(25)], range(4)))
    state = torch.load(target, weights_only=True)
    assert torch.equal(state["w"], torch.full((200, 200), float(state["step"])))
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind


def test_a_divergence_first_seen_on_a_logging_step_is_a_divergence_error(tmp_path):
    """Finite but huge gains after a step: the parameters pass the finiteness check, and the recorder's
    matrices at the logging step (step 10) are the first to fail. That is a DivergenceError naming the
    step, with the last checkpoint kept, not a NotPositiveDefiniteError advising a jitter."""
    import sys
    from pathlib import Path

    config = deck_config(30, **DECK_SMALL)
    assert config.log_every == 1 or 10 % config.log_every == 0

    def blow_up(step, model):
        if step == 9:
            with torch.no_grad():
                model.weights.mul_(1e25)  # finite parameters, but the recorder's W C_x W^T overflows float32

    with pytest.raises(DivergenceError, match="diverged at step 9.*last good checkpoint"):
        train(config, cache_dir=tmp_path, checkpoint_every=4, progress=False, callback=blow_up)
    assert torch.load(tmp_path / config.key() / "checkpoint.pt", weights_only=True)["step"] == 8
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
    import chapter_runs

    # a chapter's runs: a diverged one comes back as its error, and a chapter that needs it says which and why
    runs = chapter_runs.train_all({"fine": config, "lr 1e3": deck_config(30, lr=1e3, **DECK_SMALL)}, None, False)
    assert not isinstance(runs["fine"], Exception) and isinstance(runs["lr 1e3"], DivergenceError)
    chapter_runs.needed(runs, "fine")
    with pytest.raises(RuntimeError, match="'lr 1e3' diverged.*cannot go on without it.*diverged at step"):
        chapter_runs.needed(runs, "fine", "lr 1e3")

"""No silent wrong result, and every failure a user can cause names its cause (issue 24): the encoders'
inputs, a run that diverges whatever writer is on, cache files that load but do not fit, a status query
that writes nothing, sizes that cannot fit in memory, and the messages that used to hide their cause."""
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lifcore
from lifcore import memory
from lifcore.coding import SoftLIFEncoder, SoftplusEncoder, data, info
from lifcore.train import DivergenceError, deck_config, train
from lifcore.train.store import CacheWarning, RunStore

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(Path(sys.executable))
SMALL = dict(n_neurons=8, patch_size=3, batch_size=16, n_patches=400, cov_batches=10, eval_size=16)


@pytest.mark.parametrize("cls", [SoftplusEncoder, SoftLIFEncoder])
def test_the_information_of_one_patch_without_its_batch_axis_is_refused_not_computed_per_neuron(cls):
    model = cls(dim=12, n_neurons=5)
    with pytest.raises(ValueError, match=r"x must be a batch of patches \[B, D = 12\]; got \(12,\) \(one patch: x\[None\]\)"):
        model.information(torch.randn(12), torch.eye(12))
    assert model.information(torch.randn(12)[None], torch.eye(12))["MI"].shape == (1,)
    with pytest.raises(ValueError, match=r"x is an empty batch"):
        model.information(torch.randn(0, 12), torch.eye(12))
    with pytest.raises(ValueError, match=r"got \(4, 11\)"):
        model.information(torch.randn(4, 11), torch.eye(12))


@pytest.mark.parametrize("covariance, message", [
    (-torch.eye(12), "input_covariance is not positive definite"),
    (torch.zeros(12, 12), "input_covariance is not positive definite"),
    (torch.eye(12) + torch.triu(torch.ones(12, 12), 1), "input_covariance is not symmetric"),
    (torch.full((12, 12), float("nan")), "input_covariance holds NaN or Inf"),
    (torch.eye(11), r"input_covariance must be C_x \[D, D\] = \[12, 12\]"),
])
def test_an_input_covariance_that_is_no_covariance_is_refused(covariance, message):
    model = SoftplusEncoder(dim=12, n_neurons=5)
    with pytest.raises(ValueError, match=message):
        model.information(torch.randn(3, 12), covariance)
    with pytest.raises(ValueError, match=message):
        model.kl(torch.randn(3, 12), covariance)


@pytest.mark.parametrize("matrix, message", [
    (torch.zeros(0, 3, 3), r"response_cov is empty"),
    (torch.eye(3, dtype=torch.int64), r"response_cov has dtype torch.int64: the log-determinants need float32 or float64"),
    (torch.eye(3, dtype=torch.float16), r"has dtype torch.float16"),
])
def test_mutual_information_refuses_empty_and_integer_or_half_matrices(matrix, message):
    with pytest.raises(ValueError, match=message):
        info.mutual_information(matrix, matrix)


def test_a_run_that_diverges_with_tensorboard_on_raises_divergence_error_and_says_no_checkpoint_exists(tmp_path):
    config = deck_config(20, **SMALL, lr=1000.0)
    with pytest.raises(DivergenceError, match=r"diverged at step \d+: .*no checkpoint had been saved yet") as caught:
        train(config, cache_dir=tmp_path, progress=False, tensorboard=True)
    assert (tmp_path / config.key() / "config.json").exists()  # the folder says which run it was
    assert "last good checkpoint" not in str(caught.value)
    from lifcore.train.events import EventLog  # what TensorBoard's own binning refused ("The histogram is empty")
    log = EventLog(tmp_path / "events", 3)
    for values in ([1e20, 1e20], [1e38, -1e38], [0.5]):
        log.add("histogram/r", 1, torch.tensor(values, dtype=torch.float64))
    log.close()


def test_a_learning_rate_no_step_can_be_computed_with_is_refused_by_name():
    with pytest.raises(ValueError, match=r"lr=1e\+300 is larger than float32's largest number \(3.4e\+38\)"):
        deck_config(20, **SMALL, lr=1e300)
    with pytest.raises(ValueError, match=r"nonlinearity_lr=1e\+300 is larger"):
        deck_config(20, **SMALL, nonlinearity_lr=1e300)


def small_run(tmp_path, steps=6):
    config = deck_config(steps, **SMALL)
    return config, train(config, cache_dir=tmp_path, checkpoint_every=4, progress=False)


@pytest.mark.parametrize("damage, why", [
    (lambda s: {k: v for k, v in s.items() if k != "history"}, "lacks history"),
    (lambda s: s | {"model": {k: v[:1] for k, v in s["model"].items()}}, "does not fit this run"),
    (lambda s: s | {"model": {"elsewhere": torch.zeros(3)}}, "does not fit this run"),
    (lambda s: [1, 2, 3], "holds a list, not a run's state"),
])
def test_a_result_that_loads_but_does_not_fit_is_moved_aside_and_the_run_trained_again(tmp_path, damage, why):
    config, first = small_run(tmp_path)
    path = tmp_path / config.key() / "result.pt"
    torch.save(damage(torch.load(path, weights_only=True)), path)
    with pytest.warns(CacheWarning, match=why):
        again = train(config, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.model.weights, first.model.weights)  # trained again, to the same numbers
    assert list(path.parent.glob("result.pt.bad-*"))


def test_a_checkpoint_of_another_shape_is_moved_aside_and_the_run_starts_again(tmp_path):
    config = deck_config(8, **SMALL)
    with pytest.raises(DivergenceError):  # stop after the step-4 checkpoint
        train(config, cache_dir=tmp_path, checkpoint_every=4, progress=False,
              callback=lambda s, m: m.weights.data.fill_(float("nan")) if s == 5 else None)
    path = tmp_path / config.key() / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["method"]["optimizers"]["main"]["param_groups"] = []
    torch.save(state, path)
    with pytest.warns(CacheWarning, match="checkpoint.pt does not fit this run"):
        resumed = train(config, cache_dir=tmp_path, progress=False)
    reference = train(config, cache_dir=None, progress=False)
    assert torch.equal(resumed.model.weights, reference.model.weights)


def test_a_misspelt_history_tag_is_named_with_the_tags_the_run_holds(tmp_path):
    _, run = small_run(tmp_path)
    with pytest.raises(KeyError, match=r"'terms/kl' is not in this run's history \(did you mean 'terms/KL'\?\); its tags: "):
        run.series("terms/kl")


def test_numpy_integers_are_sizes_like_ints():
    config = deck_config(np.int64(3), **(SMALL | {"n_neurons": np.int64(8)}))
    assert config.n_neurons == 8 and type(config.n_neurons) is int
    assert lifcore.LIFNetwork(np.int32(3), np.int64(4)).n_neurons == 4
    assert SoftplusEncoder(dim=np.int64(12), n_neurons=np.int16(3)).n_neurons == 3


def test_sizes_that_cannot_fit_are_refused_with_the_estimate_before_any_work(monkeypatch):
    with pytest.raises(memory.MemoryEstimateError, match=r"a network of 1000000 neurons with 10 inputs needs about 22351\.9 GiB"):  # 3 x 1e6 x (10 + 2e6) x 4 B
        lifcore.LIFNetwork(10, 1_000_000)
    with pytest.raises(memory.MemoryEstimateError, match=r"an encoder of 1000000 neurons on 300 inputs needs about .* lower n_neurons"):
        SoftplusEncoder(dim=300, n_neurons=1_000_000)
    with pytest.raises(memory.MemoryEstimateError, match=r"simulating 41 neurons for 1000000200 steps .* lower steps \(fi_steps\)"):
        lifcore.simulated_rate(torch.linspace(0, 1, 41), 0.95, steps=1_000_000_000)
    monkeypatch.setattr(memory, "available_memory", lambda: 2**20)  # 1 MiB: a sequence's four [T, B, n] tensors do not fit
    net = lifcore.LIFNetwork(4, 8)
    with pytest.raises(memory.MemoryEstimateError, match=r"a sequence of T = 1000 steps x B = 64 samples x 8 neurons"):
        net(torch.zeros(1000, 64, 4))


def test_messages_that_used_to_hide_their_cause(tmp_path):
    net = lifcore.LIFNetwork(5, 7)
    with pytest.raises(ValueError, match=r"x has dtype torch.int64 but the network is torch.float32: convert the input "
                                         r"\(x.to\(torch.float32\)\)$"):
        net(torch.zeros(3, 2, 5, dtype=torch.int64))  # no advice to build the network in int64
    with pytest.raises(ValueError, match=r"loss=.* must be one of lifcore's spike losses .* bptt_gradients differentiates any"):
        lifcore.eprop_gradients(net, torch.zeros(3, 2, 5), lambda z: z.mean())
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken.png' cannot be read as an image: the file is damaged"):
        data.load_image(str(tmp_path / "broken.png"))


def run(args, **kwargs):
    return subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=300, **({"cwd": ROOT} | kwargs))


def test_the_builder_names_a_yaml_error_and_an_empty_only():
    bad = ROOT / "book" / "profiles" / "_broken_for_a_test.yaml"
    bad.write_text("common:\n  device: auto\n bad: [1\n")
    try:
        result = run(["book/build.py", "--profile", str(bad)])
    finally:
        bad.unlink()
    assert result.returncode != 0 and "is not valid YAML" in result.stderr and "line 3" in result.stderr
    result = run(["book/build.py", "--only"])
    assert result.returncode == 2 and "--only names no notebook" in result.stderr


def test_sweep_refuses_a_device_its_jobs_cannot_use():
    result = run(["book/sweep.py", "--device", "tpu"])
    assert result.returncode == 2 and "--device: device='tpu' is not a device" in result.stderr
    if not torch.cuda.is_available():
        result = run(["book/sweep.py", "--device", "cuda"])
        assert result.returncode == 2 and "needs --executor slurm" in result.stderr


def test_a_status_query_writes_nothing_and_answers_from_a_read_only_cache(tmp_path):
    config, _ = small_run(tmp_path / "runs")
    running = deck_config(50, **SMALL, seed=3)
    store = RunStore(tmp_path / "runs", running)
    store.check_writable()
    holder = subprocess.Popen([PYTHON, "-c", (
        "import sys, time, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
        "time.sleep(60)"), str(store.path / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (store.path / "lock.holder").write_text("a test's process\n")
        before = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "runs").rglob("*"))
        os.chmod(tmp_path / "runs", 0o555)  # read-only (root writes anyway: the listing below is the check)
        for folder in (tmp_path / "runs").iterdir():
            os.chmod(folder, 0o555)
        assert store.training_holder() == "a test's process"
        assert RunStore(tmp_path / "runs", config).training_holder() is None
        after = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "runs").rglob("*"))
        assert after == before  # nothing written, no lock.holder created or removed
    finally:
        holder.kill()
        holder.wait()
        for folder in [tmp_path / "runs", *(tmp_path / "runs").iterdir()]:
            os.chmod(folder, 0o755)
    assert store.training_holder() is None  # the holder died: its lock went with it


def test_papermill_started_elsewhere_says_where_to_run_and_a_chapter_names_an_impossible_size(tmp_path):
    out = tmp_path / "out.ipynb"
    result = run(["-m", "papermill", str(ROOT / "notebooks" / "01_lif_dynamics.ipynb"), str(out)], cwd=tmp_path,
                 env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0 and "run it there, e.g. papermill notebooks/<chapter>.ipynb out.ipynb --cwd notebooks" in result.stderr
    result = run(["-m", "papermill", "notebooks/01_lif_dynamics.ipynb", str(out), "--cwd", "notebooks", "-p", "n_neurons",
                  "1000000", "-p", "device", "cpu"], env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0 and "MemoryEstimateError: a network of 1000000 neurons" in result.stderr
    result = run(["-m", "papermill", "notebooks/01_lif_dynamics.ipynb", str(out), "--cwd", "notebooks", "-p", "open", "1"])
    assert result.returncode != 0 and "ParameterError: unknown parameter open" in result.stderr


def test_the_toy_refuses_a_trajectory_that_cannot_fit():
    from lifcore import toy

    with pytest.raises(memory.MemoryEstimateError, match=r"10000000 starts kept at 10001 steps needs about 1491.5 GiB"):
        toy.run("alternating", torch.zeros(10**7, 2), 10_000)  # (10001 + 8) x 1e7 x 2 x 8 bytes
    kept = toy.run("alternating", torch.zeros(10**5, 2), 10, last_only=True)  # two points kept per start: it fits
    assert kept.shape == (2, 10**5, 2)

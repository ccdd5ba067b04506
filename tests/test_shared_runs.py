"""Runs the lab can watch and share (issue 16): TensorBoard event files that hold the history, a run
cache that two processes share (one trains, the other waits and loads; a killed holder's lock is taken
over and the run resumes), and sweeps of runs as submitit jobs."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lifcore.train import RunLockedError, deck_config, train
from lifcore.train.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(n_neurons=16, patch_size=4, batch_size=16, n_patches=2000, cov_batches=10, eval_size=32)


def small(steps=30, **changes):
    return deck_config(steps, **(SMALL | changes))


def events_of(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_event_files_hold_every_tag_of_the_history_at_its_steps(tmp_path):
    config = small(40, method="two_losses")
    run = train(config, cache_dir=tmp_path, progress=False)
    events = events_of(run.path / "events")
    tags = events.Tags()
    scalars = {t for t, entries in run.history.items() if not torch.is_tensor(entries[0][1]) or entries[0][1].dim() == 0}
    assert {"terms/KL", "terms/MI", "terms/H_X", "terms/loss", "info/I", "rate/mean", "lr"} <= scalars
    assert scalars == set(tags["scalars"])
    for tag in scalars:
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        kept = [(s, float(v)) for s, v in run.history[tag]]
        assert [s for s, _ in logged] == [s for s, _ in kept], tag
        for (_, a), (_, b) in zip(logged, kept):  # event files store float32
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-30) or (math.isnan(a) and math.isnan(b)), tag
    histograms = {t for t in run.history if t.startswith("histogram/")}
    assert {"histogram/r", "histogram/r_neuron", "histogram/gain", "histogram/bias"} <= histograms
    assert histograms == set(tags["histograms"])
    for tag in histograms:
        entries = events.Histograms(tag)
        assert [e.step for e in entries] == [s for s, _ in run.history[tag]], tag
        last = run.history[tag][-1][1].double()
        assert entries[-1].histogram_value.num == last.numel()
        assert math.isclose(entries[-1].histogram_value.sum, float(last.sum()), rel_tol=1e-9, abs_tol=1e-9), tag
    images = {"kernels", "W_grad", "W_grad/info", "W_grad/rate", "MI_numerator", "MI_denominator", "WCxW"}
    assert images == set(tags["images"])
    for tag in images:
        assert [e.step for e in events.Images(tag)] == [s for s, _ in run.history[tag]], tag


def test_a_resumed_run_continues_its_event_files_without_a_duplicated_step(tmp_path):
    config = small(30)
    reference = train(config, cache_dir=tmp_path / "a", progress=False)

    def interrupt(step, model):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # steps 9..13 were logged after the step-8 checkpoint
        train(config, cache_dir=tmp_path / "b", checkpoint_every=8, progress=False, callback=interrupt)
    resumed = train(config, cache_dir=tmp_path / "b", checkpoint_every=8, progress=False)
    assert len(list((resumed.path / "events").glob("events.out.tfevents.*"))) == 2  # one file per process
    events, again = events_of(resumed.path / "events"), events_of(reference.path / "events")
    for tag in ("terms/KL", "info/I", "lr"):
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(set(steps)) == [e.step for e in again.Scalars(tag)], tag
        assert [e.value for e in events.Scalars(tag)] == [e.value for e in again.Scalars(tag)], tag  # bit-identical resume


def test_a_checkpoint_from_other_code_is_moved_aside_not_loaded(tmp_path):
    from lifcore.train.store import CacheWarning

    config = small(12)
    train(config, cache_dir=tmp_path, progress=False)
    file = tmp_path / config.key() / "result.pt"
    state = torch.load(file, weights_only=True)
    torch.save(state | {"code": "0" * 64}, file)
    with pytest.warns(CacheWarning, match="written by another version of the training code"):
        train(config, cache_dir=tmp_path, progress=False)
    assert len(list(file.parent.glob("result.pt.bad-*"))) == 1


WORKER = textwrap.dedent("""
    import hashlib, json, sys, time
    import torch
    from lifcore.train import deck_config, train
    steps, pause, cache = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    config = deck_config(steps, **json.loads(sys.argv[4]))
    trained = []
    def step(s, model):
        trained.append(s)
        print(f"step {s}", flush=True)
        time.sleep(pause)
    run = train(config, cache_dir=cache, checkpoint_every=4, progress=False, callback=step)
    digest = hashlib.sha256(run.model.weights.detach().numpy().tobytes()).hexdigest()
    print(json.dumps({"trained": trained, "weights": digest}), flush=True)
""")


def worker(tmp_path, steps, pause, **changes):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.Popen([sys.executable, str(script), str(steps), str(pause), str(tmp_path / "runs"),
                             json.dumps(SMALL | changes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "LIFCORE_WORKERS": "1"})


def test_two_processes_on_one_config_train_it_once_and_return_the_same_weights(tmp_path):
    first, second = worker(tmp_path, 20, 0.05), worker(tmp_path, 20, 0.05)
    results = []
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    trained = sorted(len(r["trained"]) for r in results)
    assert trained == [0, 20]  # one trained every step, the other none: it waited and loaded the result
    assert results[0]["weights"] == results[1]["weights"]


def test_a_killed_holder_leaves_a_lock_the_next_process_takes_over_and_the_run_resumes(tmp_path):
    config = small(24)
    holder = worker(tmp_path, 24, 0.3)
    try:
        for line in holder.stdout:  # wait until it has passed its step-8 checkpoint
            if line.startswith("step ") and int(line.split()[1]) >= 10:
                break
        store = RunStore(tmp_path / "runs", config)
        assert f"pid {holder.pid}" in store.holder()
        with pytest.raises(RunLockedError, match=rf"being trained by .*pid {holder.pid}"):
            train(config, cache_dir=tmp_path / "runs", progress=False, wait=False)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert (store.path / "lock").exists()  # the file stays; the lock died with its holder
    steps, start = [], time.monotonic()
    resumed = train(config, cache_dir=tmp_path / "runs", checkpoint_every=4, progress=False,
                    callback=lambda s, m: steps.append(s))
    assert time.monotonic() - start < 60
    assert steps[0] in (8, 12) and steps[-1] == 23  # from the last checkpoint, not from step 0
    reference = train(config, cache_dir=tmp_path / "reference", progress=False)
    assert torch.equal(resumed.model.weights, reference.model.weights)


def test_a_sweep_trains_what_the_cache_lacks_and_a_second_sweep_trains_nothing(tmp_path):
    from lifcore.train.sweep import sweep

    configs = {"lagrange": small(12), "two_losses": small(12, method="two_losses")}
    said = []
    reports = sweep(configs, tmp_path / "runs", executor="local", parallel=2, logs_dir=tmp_path / "sweeps",
                    poll_seconds=0.5, say=said.append)
    assert {n: r.state for n, r in reports.items()} == {"lagrange": "done", "two_losses": "done"}, reports
    for config in configs.values():
        assert (tmp_path / "runs" / config.key() / "result.pt").exists()
    assert sum("job" in line for line in said) == 2
    said.clear()
    again = sweep(configs, tmp_path / "runs", executor="local", parallel=2, logs_dir=tmp_path / "sweeps", say=said.append)
    assert all(r.state == "done" for r in again.values()) and not any("job" in line for line in said)
    assert "2 of 2 runs already finished" in said[0]
    calls = []  # and a notebook asking for them loads them
    train(configs["lagrange"], cache_dir=tmp_path / "runs", progress=False, callback=lambda s, m: calls.append(s))
    assert calls == []


def test_a_failed_sweep_job_is_reported_with_its_log(tmp_path):
    from lifcore.train.sweep import sweep, summary

    reports = sweep({"diverges": small(12, lr=1e3)}, tmp_path / "runs", executor="local", logs_dir=tmp_path / "sweeps",
                    poll_seconds=0.5, say=lambda line: None)
    report = reports["diverges"]
    assert report.state == "failed" and "diverged at step" in report.error
    assert Path(report.log).exists() and "DivergenceError" in Path(report.log).read_text()
    assert "failed   diverges" in summary(reports) and report.log in summary(reports)


def test_the_book_sweep_names_every_run_of_the_part_two_chapters():
    sys.path.insert(0, str(ROOT / "book"))
    sys.path.insert(0, str(ROOT / "notebooks"))
    import chapter_runs
    import sweep as book_sweep

    profile = book_sweep.build.load_profile("book")
    configs = book_sweep.profile_runs(profile, "cpu")
    deck = profile["kl_vs_mi"]["deck"] | {"device": "cpu"}
    wanted = {c.key() for c in chapter_runs.deck_catalogue(chapter_runs.deck_base(**deck)).values()}
    wanted |= {c.key() for c in chapter_runs.converging_runs(chapter_runs.deck_base(**deck)).values()}
    assert {c.key() for c in configs.values()} == wanted and len(wanted) >= 20
    cuda = book_sweep.profile_runs(profile, "cuda")  # prepared on a machine without a GPU: named, not resolved
    assert all(c.device == "cuda" for c in cuda.values())


def test_a_sweep_trains_a_start_before_the_runs_that_start_from_it(tmp_path):
    from lifcore.train import deck_config, recipe_config
    from lifcore.train.sweep import sweep

    size = dict(n_neurons=8, patch_size=3, batch_size=16, n_patches=500, cov_batches=10, eval_size=16, images=())
    base = recipe_config(8, **size)
    configs = {name: deck_config(6, method=name, **size, start=base) for name in ("lagrange", "two_losses")}
    said = []
    reports = sweep(configs, tmp_path / "runs", executor="local", parallel=2, logs_dir=tmp_path / "sweeps",
                    poll_seconds=0.3, say=said.append)
    assert {n: r.state for n, r in reports.items()} == {"lagrange": "done", "two_losses": "done"}, reports
    jobs = [line for line in said if ": job " in line]
    assert len(jobs) == 3 and jobs[0].startswith("[sweep] start of lagrange")  # one job for the shared start, first
    started = {json.loads((tmp_path / "runs" / c.key() / "config.json").read_text())["start"]["steps"] for c in configs.values()}
    assert started == {8} and (tmp_path / "runs" / base.key() / "result.pt").exists()
    # each dependent's first kernels are the start's last: it began from the finished start, not from a copy
    first = train(base, cache_dir=tmp_path / "runs", progress=False)
    for config in configs.values():
        run = train(config, cache_dir=tmp_path / "runs", progress=False)
        assert torch.equal(run.series("kernels")[1][0], first.model.weights.detach())

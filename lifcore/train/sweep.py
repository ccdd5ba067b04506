"""Many runs into the run cache as submitit jobs: parallel processes on this machine, or SLURM.

    from lifcore.train.sweep import sweep
    report = sweep({"lagrange": config_a, "two_losses": config_b}, cache_dir="runs")          # this machine
    report = sweep(configs, cache_dir="runs", executor="slurm",
                   slurm=dict(slurm_partition="gpu", timeout_min=4320, gpus_per_node=1, mem_gb=32))

A run already finished in the cache is not submitted; each other run is one job that calls
`train` into the cache, so that a notebook (or `make book`) afterwards loads it. A run that
starts from another (`TrainConfig.start`) is submitted once that one is finished (its start is
trained as a job of its own, first, also when only the runs that start from it are asked for),
so that no job waits on a lock while another trains its start. The cache's
lock makes a job that meets the same run in training elsewhere wait for it instead of
training it twice. A job that times out or is preempted is requeued by submitit
(`TrainJob.checkpoint`) and resumes from the run's last checkpoint. The report says, per run,
"done", "failed" (with the job's log), or "running"/"queued" (``wait=False``).

submitit keeps its job files (pickles of the call, which the job runs, and the logs) in
`logs_dir`, not in the run cache: the cache itself holds no pickle that could run code.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit

from .config import TrainConfig
from .loop import train
from .store import RunStore

EXECUTORS = ("local", "slurm")
# Each local job runs single-threaded (torch and the information kernel's workers), so that
# `parallel` jobs use `parallel` cores: measured on 2 cores, two 1-thread runs at once take
# about as long as one (book/build.py, ONE_THREAD); two 2-thread runs fight and take 4x.
LOCAL_JOB_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LIFCORE_WORKERS": "1"}


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a job: `train` its config into the cache. Requeued on timeout or preemption
    (submitit calls `checkpoint`, which resubmits the same call), it resumes from the cache."""

    def __call__(self, fields: dict, cache_dir: str, checkpoint_every: int) -> str:
        config = TrainConfig(**fields)
        train(config, cache_dir=cache_dir, checkpoint_every=checkpoint_every, progress=False)
        return config.key()


@dataclass
class RunReport:
    name: str
    key: str
    state: str               # "done", "failed", "running", "queued"
    log: str | None = None   # the job's stderr (failed, running, queued)
    error: str | None = None


def finished(config: TrainConfig, cache_dir: str | Path) -> bool:
    return (Path(cache_dir).expanduser() / config.key() / "result.pt").exists()


def sweep(configs: dict[str, TrainConfig], cache_dir: str | Path = "runs", executor: str = "local",
          parallel: int | None = None, slurm: dict | None = None, logs_dir: str | Path = "sweeps",
          checkpoint_every: int = 100, wait: bool = True, poll_seconds: float = 2.0,
          say: Callable[[str], None] = print) -> dict[str, RunReport]:
    """Train every run of `configs` (name -> TrainConfig) that the cache lacks, as submitit jobs.

    `executor` "local": at most `parallel` jobs at once (default: the usable cores), each on one
    thread; "slurm": every job submitted at once, with `slurm` as submitit's parameters
    (``slurm_partition``, ``timeout_min``, ``gpus_per_node``, ``mem_gb``, ``cpus_per_task``, ...).
    Returns a `RunReport` per name; with ``wait=False`` it returns once every job is submitted.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is unknown; allowed: {', '.join(map(repr, EXECUTORS))}")
    if not isinstance(configs, dict) or not all(isinstance(c, TrainConfig) for c in configs.values()):
        raise ValueError("configs must be a dict of name -> TrainConfig")
    parallel = parallel if parallel is not None else len(os.sched_getaffinity(0))
    if not isinstance(parallel, int) or parallel < 1:
        raise ValueError(f"parallel={parallel!r} must be a positive integer")
    cache_dir = Path(cache_dir).expanduser().resolve()
    reports = {name: RunReport(name, config.key(), "done") for name, config in configs.items()
               if finished(config, cache_dir)}
    todo, keys = {}, set()

    def add(name, config):
        if config.start is not None and not finished(config.start, cache_dir):
            add(f"start of {name}", config.start)  # its start first (named after it, unless asked for by name)
        if not finished(config, cache_dir) and config.key() not in keys:  # two names for one config: one job
            todo[name] = config
            keys.add(config.key())

    for name, config in configs.items():
        if name not in reports:
            add(name, config)
    say(f"[sweep] {len(reports)} of {len(configs)} runs already finished in {cache_dir}; {len(todo)} to train "
        f"({executor} executor)")
    if not todo:
        return _same_keys(reports, configs)
    RunStore(cache_dir, next(iter(todo.values()))).check_writable()

    folder = Path(logs_dir).expanduser().resolve() / time.strftime("%Y%m%d-%H%M%S")
    runner = submitit.AutoExecutor(folder=folder / "%j", cluster=executor)
    if executor == "slurm":
        runner.update_parameters(**(slurm or {}))
    else:
        runner.update_parameters(timeout_min=(slurm or {}).get("timeout_min", 7 * 24 * 60))
    # the longest runs first (by steps; a run waits for its start whatever its place): the local executor's
    # cores then finish together instead of one long run trailing the rest
    queue, jobs = sorted(todo.items(), key=lambda item: -item[1].steps), {}

    job_of_key = {}

    def next_ready():
        """The first queued run whose start is finished (or that has none), or, on SLURM, submitted (the run
        then waits for it there: ``--dependency=afterok``); None when all wait."""
        for k, (name, config) in enumerate(queue):
            if config.start is None or finished(config.start, cache_dir):
                return (*queue.pop(k), None)
            if executor == "slurm" and config.start.key() in job_of_key:
                return (*queue.pop(k), job_of_key[config.start.key()])
        return None

    def submit(name, config, after=None):
        previous = {k: os.environ.get(k) for k in LOCAL_JOB_ENV}
        if executor == "local":
            os.environ.update(LOCAL_JOB_ENV)  # the job process inherits this environment
        else:
            extra = dict((slurm or {}).get("slurm_additional_parameters") or {})
            if after is not None:  # and cancelled by SLURM if its start fails, instead of pending for ever
                extra["dependency"] = f"afterok:{after.job_id}"
                extra["kill-on-invalid-dep"] = "yes"
            runner.update_parameters(slurm_additional_parameters=extra)
        try:
            jobs[name] = runner.submit(TrainJob(), config.asdict(), str(cache_dir), checkpoint_every)
            job_of_key[config.key()] = jobs[name]
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        say(f"[sweep] {name}: job {jobs[name].job_id}, log {jobs[name].paths.stderr}")

    def fill() -> None:
        while queue and (executor == "slurm" or sum(not j.done() for j in jobs.values()) < parallel):
            ready = next_ready()
            if ready is None:
                if all(j.done() for j in jobs.values()):  # nothing running can finish a start: it failed
                    for name, config in queue:
                        reports[name] = RunReport(name, config.key(), "failed", error="its start run failed")
                    queue.clear()
                return
            submit(*ready)

    fill()
    while wait and (queue or not all(j.done() for j in jobs.values())):
        time.sleep(poll_seconds)
        fill()
    for name, job in jobs.items():
        config = todo[name]
        if not job.done():
            reports[name] = RunReport(name, config.key(), "running" if job.state == "RUNNING" else "queued",
                                      str(job.paths.stderr))
        elif job.exception() is not None or not finished(config, cache_dir):
            reports[name] = RunReport(name, config.key(), "failed", str(job.paths.stderr), _last_error(job.paths.stderr))
        else:
            reports[name] = RunReport(name, config.key(), "done")
    for name, config in queue:  # wait=False with more runs than `parallel` local slots, or starts not yet done
        reports[name] = RunReport(name, config.key(), "queued")
    return _same_keys(reports, configs)


def _last_error(log: Path) -> str:
    """The exception a job died of, from the last "SomethingError: ..." line of its log."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log}"
    errors = [line.strip() for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b.*:", line.strip())]
    return errors[-1][:300] if errors else "the job ended without a result (see its log)"


def _same_keys(reports: dict, configs: dict) -> dict[str, RunReport]:
    """A report for every name, in the order given (a duplicate config reports as its twin)."""
    by_key = {r.key: r for r in reports.values()}
    return {name: reports.get(name) or RunReport(name, c.key(), by_key[c.key()].state, by_key[c.key()].log)
            for name, c in configs.items()}


def summary(reports: dict[str, RunReport]) -> str:
    """One line per run that is not done, then the counts."""
    lines = [f"  {r.state:8} {name} ({r.key})" + (f": {r.error}" if r.error else "") + (f"\n           log: {r.log}" if r.log else "")
             for name, r in reports.items() if r.state != "done"]
    counts = {s: sum(r.state == s for r in reports.values()) for s in ("done", "failed", "running", "queued")}
    return "\n".join(lines + ["[sweep] " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)])

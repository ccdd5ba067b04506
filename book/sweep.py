"""Train every run a profile's Part II chapters need, ahead of `make book`, as submitit jobs.

    python book/sweep.py --profile book                       # this machine, one job per core
    python book/sweep.py --profile full --device cuda --executor slurm \\
        --partition gpu --time 4320 --gpus 1 --mem 32 --cpus 4
    python book/sweep.py --profile full --device cuda --status  # what is done, running, missing
    make book PROFILE=full                                      # then trains nothing: loads every run

The runs are those of `notebooks/chapter_runs.book_runs` for each `deck` dict the profile gives a
chapter, cached in `--runs` (the chapters' `runs_dir`, ../runs from notebooks/: `runs/`).
`--device` must be the device the book will run on: the chapters resolve "auto" where they run,
and a run is cached under its device (a login node without a GPU would otherwise resolve cpu).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "notebooks"))
sys.path.insert(0, str(ROOT / "book"))
import build  # noqa: E402
import chapter_runs  # noqa: E402
from lifcore.device import check_device_name, resolve_device  # noqa: E402
from lifcore.train import sweep as sweeps  # noqa: E402


def profile_runs(profile: dict, device: str) -> dict:
    """name -> TrainConfig for every distinct `deck` dict of the profile (its chapters' runs)."""
    configs = {}
    decks = [section["deck"] for section in profile.values() if isinstance(section, dict) and "deck" in section]
    for deck in {repr(sorted(d.items())): d for d in decks}.values():  # the YAML anchor gives every chapter the same dict
        tag = "" if len(decks) == 1 or all(d == decks[0] for d in decks) else f" [{deck}]"
        for name, config in chapter_runs.book_runs(chapter_runs.coerce_fields(deck) | {"device": device}).items():
            configs[name + tag] = config
    return configs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book", help="a file of book/profiles/ or a .yaml path (default: book)")
    parser.add_argument("--device", default=None, help="the device the book will run on (default: the profile's, "
                                                       "resolved here); give cuda when sending GPU runs from a login node")
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="the run cache (default: runs/)")
    parser.add_argument("--executor", choices=sweeps.EXECUTORS, default="local")
    parser.add_argument("--parallel", type=int, default=None, help="local: jobs at once (default: the usable cores)")
    parser.add_argument("--partition", help="slurm: partition")
    parser.add_argument("--time", type=int, default=24 * 60, help="slurm: minutes per job before requeue (default 1440)")
    parser.add_argument("--gpus", type=int, default=0, help="slurm: GPUs per job")
    parser.add_argument("--mem", type=int, default=16, help="slurm: GB of memory per job")
    parser.add_argument("--cpus", type=int, default=2, help="slurm: CPUs per job")
    parser.add_argument("--logs", default=str(ROOT / "sweeps"), help="submitit's job files and logs (default: sweeps/)")
    parser.add_argument("--no-wait", action="store_true", help="return once every job is submitted (slurm)")
    parser.add_argument("--status", action="store_true", help="only say which runs are finished and which are not")
    args = parser.parse_args(argv)

    profile = build.load_profile(args.profile)
    device = args.device or (profile.get("common") or {}).get("device", "auto")
    try:
        check_device_name(device)
        if args.executor == "local" and not args.status and device != "auto":
            resolve_device(device)  # local jobs run here: a device this machine lacks would fail every job
    except ValueError as err:
        parser.error(f"--device: {err}" + (" (the local executor runs its jobs on this machine; a GPU sweep from a "
                                           "machine without one needs --executor slurm)" if "does not have" in str(err) else ""))
    configs = profile_runs(profile, device)
    if not configs:
        print(f"[sweep] profile {args.profile!r} gives no chapter a `deck`: nothing to train")
        return 0
    if args.status:
        done = {n for n, c in configs.items() if sweeps.finished(c, args.runs)}
        for name, config in configs.items():
            state = "done" if name in done else _live_state(config, args.runs)
            print(f"  {state:12} {name} ({config.key()})")
        print(f"[sweep] {len(done)} of {len(configs)} runs finished in {args.runs}")
        return 0 if len(done) == len(configs) else 1
    slurm = dict(timeout_min=args.time, mem_gb=args.mem, cpus_per_task=args.cpus, gpus_per_node=args.gpus)
    if args.partition:
        slurm["slurm_partition"] = args.partition
    reports = sweeps.sweep(configs, args.runs, args.executor, parallel=args.parallel, slurm=slurm, logs_dir=args.logs,
                           wait=not args.no_wait)
    print(sweeps.summary(reports))
    return 1 if any(r.state == "failed" for r in reports.values()) else 0


def _live_state(config, runs: str) -> str:
    """"training" while a process holds the run's lock (with who), else "interrupted" (a checkpoint, no
    result) or "not trained". Writes nothing and takes no lock: a status query never changes a shared
    cache, and a read-only one answers too."""
    from lifcore.train.store import RunStore

    store = RunStore(runs, config)
    holder = store.training_holder()
    if holder is not None:
        return f"training ({holder})"
    return "interrupted" if (store.path / "checkpoint.pt").exists() else "not trained"


if __name__ == "__main__":
    sys.exit(main())

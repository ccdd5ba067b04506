"""Build the book: execute every notebook of `_toc.yml` with papermill and a parameter
profile, then let Jupyter Book 1 publish the executed copies.

    python book/build.py                      # the `book` profile (what `make book` runs)
    python book/build.py --profile full       # the slides' own scale (for a GPU)
    python book/build.py --only 01_lif_dynamics --force
    python book/build.py --profile my.yaml    # a profile file of one's own

Before anything runs, every parameter a profile gives a notebook is checked against the names of
that notebook's parameters cell (a misspelt one is an error listing the known ones); each
notebook then checks the values itself (notebooks/chapter_parameters.py). A build that is
interrupted (Ctrl-C, SIGTERM, a timeout) stops papermill and its kernel with it; if the builder
is killed outright, papermill dies with it (PR_SET_PDEATHSIG) and the kernel follows its parent.

Executed notebooks land in ``_build/src/`` beside copies of the book's pages and
configuration; the HTML in ``_build/html/``. A notebook is executed again only when
its source, its parameters or lifcore changed (a stamp file beside the executed copy),
so an interrupted build resumes where it stopped. Nothing under ``notebooks/`` is
ever written.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import ctypes
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check  # noqa: E402  (book/check.py)
import claims_page  # noqa: E402  (book/claims_page.py)
import vendor  # noqa: E402  (book/vendor.py)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
SRC = BUILD / "src"
PROFILES = ROOT / "book" / "profiles"
VENDOR_CACHE = BUILD / "vendor-cache"
# One BLAS/OpenMP thread per kernel, unless the user sets otherwise. Measured on a 2-core machine (training
# 300 steps of the deck's book-size run): alone, 1 thread 10.4 s against 2 threads 9.0 s; two such processes
# at once, 1 thread each 10-11 s against 2 threads each 42 s: OpenMP threads that wait on a busy core spin.
ONE_THREAD = {name: os.environ.get(name, "1") for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}



def toc_files(toc: dict) -> list[str]:
    """Every `file:` entry of a Jupyter Book 1 table of contents, in reading order."""
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def load_profile(name: str) -> dict:
    """A profile of book/profiles/ by name, or a YAML file by path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILES / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES.glob("*.yaml"))
        raise SystemExit(f"--profile {name!r} does not exist; allowed: {', '.join(known)}, or a path to a .yaml file")
    try:
        profile = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:  # the parser's own account names the line and column
        raise SystemExit(f"--profile {name!r}: {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(profile, dict) or not all(isinstance(v, dict) or v is None for v in profile.values()):
        raise SystemExit(f"--profile {name!r}: a profile maps notebook names (and `common`) to dicts of parameters")
    return profile


@functools.lru_cache(maxsize=None)
def declared_parameters(notebook: Path) -> list[str]:
    """The names the notebook's `parameters` cell assigns, in order (read once per build)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return []
    return [target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)]


def profile_problems(profile: dict, name: str, notebooks: list[Path]) -> list[str]:
    """Every section that names no notebook and every parameter a notebook does not declare."""
    stems = {nb.stem: nb for nb in notebooks}
    found = [f"profile {name!r}: section {key!r} names no notebook of _toc.yml; known: common, {', '.join(stems)} "
             "(a section named _... only holds YAML anchors)"
             for key in profile if key != "common" and not key.startswith("_") and key not in stems]
    declared_by = {stem: declared_parameters(notebook) for stem, notebook in stems.items()}
    anywhere = set().union(*declared_by.values()) if declared_by else set()
    stray = sorted(set(profile.get("common") or {}) - anywhere)
    if stray:
        found.append(f"profile {name!r}, common: {', '.join(stray)} is a parameter of no notebook")
    for stem, declared in declared_by.items():
        unknown = sorted(set(profile.get(stem) or {}) - set(declared))
        if unknown:
            found.append(f"profile {name!r}, {stem}: unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"{stem}'s parameters are: {', '.join(declared)}")
    return found


def notebook_parameters(profile: dict, stem: str, declared: list[str] | None = None) -> dict:
    """`common` (the names the notebook declares, when given) under the notebook's own section."""
    common = {k: v for k, v in (profile.get("common") or {}).items() if declared is None or k in declared}
    return {**common, **(profile.get(stem) or {})}


def stamp_of(notebook: Path, parameters: dict) -> str:
    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    for source in sorted((ROOT / "lifcore").rglob("*.py")) + sorted(notebook.parent.glob("*.py")):
        digest.update(source.read_bytes())  # the package and the notebooks' own helpers (chapter_runs.py)
    return digest.hexdigest()


RUNNING: set = set()  # the papermill processes now running (`execute` may run in several threads at once)
RUNNING_LOCK = threading.Lock()
STOPPING = threading.Event()  # set by `stop_all`: no papermill starts after it
# chapters that measure time: executed with nothing else running, after the others
ALONE = {"where_the_time_goes"}


def execute(notebook: Path, target: Path, parameters: dict, timeout: int) -> float:
    """papermill into a temporary file, renamed into place only on success; killed after `timeout` s.
    Safe to call from several threads: each process is in `RUNNING` while it runs (`stop_all`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.ipynb")
    params_file = target.with_suffix(".parameters.yaml")
    params_file.write_text(yaml.safe_dump(parameters))
    command = [sys.executable, "-m", "papermill", str(notebook), str(partial), "-f", str(params_file),
               "--cwd", str(notebook.parent), "--execution-timeout", str(timeout), "--kernel", "python3",
               "--log-output", "--no-progress-bar"]
    start = time.perf_counter()
    # its own session (a Ctrl-C reaches the builder, which stops the whole tree: `stop`), and it dies with
    # the builder even when the builder is killed outright
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent,
                               env={**os.environ, **ONE_THREAD, "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    with RUNNING_LOCK:
        RUNNING.add(process)
        stopping = STOPPING.is_set()
    try:
        if stopping:  # the build was interrupted while this one started: it goes at once
            raise RuntimeError(f"{notebook.name}: the build was interrupted")
        returncode = process.wait(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{notebook.name} did not finish in {timeout + 60} s and was stopped")
    finally:
        stop(process)  # papermill and its kernel (in a session of its own): nothing outlives this call
        with RUNNING_LOCK:
            RUNNING.discard(process)
    if returncode != 0:
        raise RuntimeError(f"{notebook.name} failed (papermill exit {returncode}): {notebook_error(partial)}\n"
                           f"    the executed copy with the error is {partial}")
    hide_parameter_cells(partial)
    found = check.problems(partial)
    if found:
        raise RuntimeError(f"{notebook.name} would publish what a page must not carry (book/check.py); the executed copy "
                           f"is {partial}:\n    " + "\n    ".join(found))
    partial.replace(target)
    return time.perf_counter() - start


def notebook_error(path: Path) -> str:
    """The error a failed notebook stopped on ("ParameterError: unknown parameter ..."), from its executed copy."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 (papermill may have failed before writing anything)
        return "papermill wrote no notebook (see its output above)"
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return "no cell error recorded (see papermill's output above)"


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the builder dies (Linux PR_SET_PDEATHSIG), however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: `stop` still runs on Ctrl-C, SIGTERM and timeouts


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; empty elsewhere): the kernel papermill started runs in a
    session of its own, so a signal to papermill's process group does not reach it."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def stop(process: subprocess.Popen, grace: float = 3.0) -> None:
    """Stop `process` and everything it started: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is not None and not descendants(process.pid):
        return
    pids = [process.pid] + descendants(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap papermill
            if not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in pids):
                return
            time.sleep(0.05)


def stop_all() -> None:
    """Stop every papermill `execute` is running, in whatever thread (an interrupted build)."""
    with RUNNING_LOCK:
        STOPPING.set()
        running = list(RUNNING)
    for process in running:
        stop(process)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except (OSError, IndexError):
        return False


def hide_parameter_cells(path: Path) -> None:
    """Tag the defaults cell and papermill's injected cell `remove-cell`: a page states the values
    it ran with in its own words (its first printed line), not as two conflicting code cells."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    nbformat.write(nb, path)


def stage_config(staging: Path) -> None:
    """Copy _config.yml, _toc.yml and the book's own style sheet (`book/_static`: CSS only; Jupyter Book 1
    adds every file there to every page) into the staging folder, adding the vendored paths."""
    shutil.copy2(ROOT / "_toc.yml", staging / "_toc.yml")
    shutil.copytree(ROOT / "book" / "_static", staging / "_static", dirs_exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("sphinx", {}).setdefault("config", {}).update(vendor.vendor(staging, VENDOR_CACHE))
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book", help="a file of book/profiles/ (default: book)")
    parser.add_argument("--only", nargs="*", default=None, help="execute only these notebooks (stems)")
    parser.add_argument("--force", action="store_true", help="execute even when the stamp is unchanged")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per notebook (default 3600)")
    parser.add_argument("--no-html", action="store_true", help="execute the notebooks, skip the HTML")
    parser.add_argument("--build-dir", default=None, help="where executed copies and HTML go (default: _build)")
    parser.add_argument("--jobs", type=int, default=min(2, len(os.sched_getaffinity(0))),
                        help="chapters executed at once, each on one thread (default: 2, or 1 on one core); "
                             f"{', '.join(sorted(ALONE))} always alone")
    args = parser.parse_args(argv)
    if args.build_dir is not None:
        global BUILD, SRC, VENDOR_CACHE
        BUILD = Path(args.build_dir).resolve()
        SRC, VENDOR_CACHE = BUILD / "src", BUILD / "vendor-cache"
    # SIGTERM (a job scheduler, `kill`) stops the build the way Ctrl-C does: through `stop`
    signal.signal(signal.SIGTERM, _interrupt)

    profile = load_profile(args.profile)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    notebooks = [(ROOT / entry).with_suffix(".ipynb") for entry in toc_files(toc)
                 if (ROOT / entry).with_suffix(".ipynb").exists()]
    stems = [nb.stem for nb in notebooks]
    if args.only is not None and not args.only:
        print(f"[book] --only names no notebook: give one or more of {', '.join(stems)} (or leave --only out)", file=sys.stderr)
        return 2
    unknown = [stem for stem in args.only or [] if stem not in stems]
    if unknown:
        print(f"[book] --only {' '.join(unknown)}: no such notebook in _toc.yml; known: {', '.join(stems)}", file=sys.stderr)
        return 2
    problems = profile_problems(profile, args.profile, notebooks)
    if problems:
        print("[book] nothing executed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    SRC.mkdir(parents=True, exist_ok=True)
    stage_config(SRC)

    failures, timings, pending = [], {}, []
    for entry in toc_files(toc):
        source = ROOT / entry
        notebook = source.with_suffix(".ipynb")
        if notebook.exists():
            target = SRC / Path(entry).with_suffix(".ipynb")
            parameters = notebook_parameters(profile, notebook.stem, declared_parameters(notebook))
            stamp = stamp_of(notebook, parameters) + args.profile
            stamp_file = target.with_suffix(".stamp")
            wanted = args.only is None or notebook.stem in args.only
            if target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp and not args.force:
                print(f"[book] {entry}: up to date")
                continue
            if not wanted:
                print(f"[book] {entry}: skipped (--only)")
                continue
            pending.append((entry, notebook, target, parameters, stamp, stamp_file))
        elif entry == claims_page.CLAIMS_PAGE:
            continue  # generated below, from the executed chapters
        else:
            page = source.with_suffix(".md")
            if not page.exists():
                failures.append(f"{entry} is in _toc.yml but neither {entry}.ipynb nor {entry}.md exists")
                continue
            (SRC / page.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(page, SRC / page.relative_to(ROOT))

    def run(item):
        entry, notebook, target, parameters, stamp, stamp_file = item
        print(f"[book] {entry}: executing with profile {args.profile!r} {parameters}", flush=True)
        seconds = execute(notebook, target, parameters, args.timeout)
        stamp_file.write_text(stamp)
        return seconds

    def finish(item, future):
        entry = item[0]
        try:
            timings[entry] = future.result()
            print(f"[book] {entry}: {timings[entry]:.0f} s", flush=True)
        except RuntimeError as err:
            failures.append(str(err))
            print(f"[book] {err}", file=sys.stderr, flush=True)

    # the chapters in `args.jobs` threads (each papermill single-threaded), then those that time themselves alone
    together = [item for item in pending if item[1].stem not in ALONE]
    alone = [item for item in pending if item[1].stem in ALONE]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        try:
            futures = {pool.submit(run, item): item for item in together}
            remaining = set(futures)
            while remaining:  # a short wait, so that Ctrl-C and SIGTERM reach this thread at once
                done, remaining = concurrent.futures.wait(remaining, timeout=0.5)
                for future in sorted(done, key=lambda f: together.index(futures[f])):
                    finish(futures[future], future)
            for item in alone:
                future = pool.submit(run, item)
                while not future.done():
                    concurrent.futures.wait([future], timeout=0.5)
                finish(item, future)
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            stop_all()
            raise
    timings = {entry: timings[entry] for entry, *_ in pending if entry in timings}  # in the book's order

    if claims_page.CLAIMS_PAGE in toc_files(toc):
        count = claims_page.write_claims_page(toc_files(toc), SRC, SRC / f"{claims_page.CLAIMS_PAGE}.md")
        print(f"[book] {claims_page.CLAIMS_PAGE}: {count} claims from the executed chapters")
    if timings:
        print("[book] execution times: " + ", ".join(f"{Path(k).stem} {v:.0f} s" for k, v in timings.items()))
    if failures:
        print("[book] not built, these notebooks failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    if args.no_html:
        return 0
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jupyter_book), "build", str(SRC), "--path-output", str(BUILD / "book"),
                             "--builder", "html"])
    if result.returncode != 0:
        return result.returncode
    html = BUILD / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(BUILD / "book" / "_build" / "html", html)
    print(f"[book] open {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: `execute` has stopped papermill and its kernel
        print("\n[book] interrupted: the notebooks executed so far are kept, and a re-run resumes after them",
              file=sys.stderr)
        sys.exit(130)

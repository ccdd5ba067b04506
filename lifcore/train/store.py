"""The run cache: one folder per run, ``<cache_dir>/<key>/``.

* The key hashes what determines the run's numbers, and only that: every field of the config
  but `images` and `start`; the images it reads, in their order, as file names (or scikit-image's
  names) with a digest of each file's contents (`image_digests`), so that a changed image trains a
  new run, a relative path stands for the files it resolves to and the same files elsewhere (a
  shared cache, a cluster node's copy) for the same run; the key of its `start` run; and the
  code of the modules `lifcore.train.loop` imports, followed through their own imports inside
  `lifcore` (read from the source, not from what happens to be imported), minus this module
  and `lifcore.train.record`, whose edits change no trained number. The code is hashed without
  its docstrings, comments and blank lines: an edit of a docstring or a comment retrains nothing; a change of the model, the methods, the data or the loop never
  loads a result the old code computed. What the history holds is versioned by
  `record.HISTORY_FORMAT`, also in the key.
* ``checkpoint.pt`` (every `checkpoint_every` steps) and ``result.pt`` (at the end) are
  written to a temporary file of a unique name and renamed into place, so a killed run
  leaves the previous file, never half a file, and two writers never share a temporary.
* Files are read with ``torch.load(..., weights_only=True)``: a cache folder may be shared
  (a cluster file system, a downloaded cache), and a pickle planted in it is refused, not run.
* A file that cannot be read (empty, truncated, garbage, a planted pickle), that holds a
  NaN or Inf parameter, or whose ``code`` stamp (the digest above) is not this code's is never
  loaded (the key already differs when the code does; the stamp catches a copied file): it is
  moved aside to ``<name>.bad-<time>-<pid>`` with a `CacheWarning` that names it and says why,
  and the run trains (or resumes) without it.
* Loading a finished run writes nothing (a read-only cache serves it); before training, the
  folder is checked to be writable, so that a write failure is an error naming the path
  before the first step, not after the last.
* Two processes never train one run: training holds ``<key>/lock``, an operating-system
  lock (``flock`` through `filelock`), and ``<key>/lock.holder`` says who holds it (host, pid,
  since when). A second process waits, then loads the first one's result. The stale-lock
  rule is the operating system's: the lock belongs to an open file, so it is released the
  moment its holder dies, however it dies (SIGKILL, a preempted job, a crashed node whose
  NFS lease expires); the next process takes it and resumes from the last checkpoint. The
  ``lock`` file itself stays; its presence means nothing.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import pickle
import socket
import tempfile
import time
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path

import torch

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # lifcore/
NOT_NUMBERS = {"lifcore.train.store", "lifcore.train.record"}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = PACKAGE_ROOT.joinpath(*parts)
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    return None


def _imports(name: str, path: Path) -> set[str]:
    """The `lifcore` modules that module `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lifcore")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("lifcore"):
                continue
            for alias in node.names:  # `from pkg import submodule` names a module; otherwise pkg itself
                found.add(f"{module}.{alias.name}" if _module_file(f"{module}.{alias.name}") else module)
    return found


def _code_without_docstrings(path: Path) -> bytes:
    """A module's source without its docstrings (module, class and function), comments and blank lines.

    The docstrings' places come from the syntax tree, the comments' from the tokenizer: both are positions
    in the text, which every Python version reports alike (a dump of the tree itself differs between
    versions), and the text that is left is hashed as it stands."""
    import io
    import tokenize

    source = path.read_text()
    lines = source.splitlines()
    cut: list[tuple[int, int, int, int]] = []  # (row, col) to (end row, end col), 1-based rows
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                cut.append((first.lineno, first.col_offset, first.end_lineno, first.end_col_offset))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            cut.append((*token.start, *token.end))
    for row, col, end_row, end_col in sorted(cut, reverse=True):  # from the end: earlier positions stay valid
        head, tail = lines[row - 1][:col], lines[end_row - 1][end_col:]
        lines[row - 1:end_row] = [head + tail]
    return "\n".join(line.rstrip() for line in lines if line.strip()).encode()


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """sha256 over the code (without docstrings) of every module the training loop's numbers depend on."""
    seen, stack = set(), ["lifcore.train.loop"]
    while stack:
        name = stack.pop()
        if name in seen or name in NOT_NUMBERS:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen.add(name)
        stack.extend(_imports(name, path))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + _code_without_docstrings(_module_file(name)))
    return digest.digest()


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file's contents (cached while its size and modification time stay)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_digests(images, paths: bool = False) -> dict[str, list]:
    """The images a run reads (`lifcore.coding.data.resolve_images`), in the order it reads them:
    ``{"train": [...], "held_out": [...]}``, each entry ``[file name, sha256 of its contents]`` for a file
    (the resolved path with `paths`, for people: the key holds names and contents only, so that the same
    files elsewhere, another checkout or a cluster node's copy, are the same run), ``[name]`` for one of
    scikit-image's photographs (they come with the pinned package)."""
    from ..coding.data import resolve_images

    def entry(name: str) -> list:
        path = Path(name)
        if path.is_file():
            stat = path.stat()
            return [name if paths else path.name, _file_digest(name, stat.st_size, stat.st_mtime_ns)]
        return [name]

    train, held_out = resolve_images(images)
    return {"train": [entry(n) for n in train], "held_out": [entry(n) for n in held_out]}


def run_key(config) -> str:
    from .record import HISTORY_FORMAT

    fields = config.asdict()
    fields.pop("images")
    fields["start"] = config.start.key() if config.start is not None else None
    fields["image_digests"] = image_digests(config.images)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    digest.update(code_digest())
    digest.update(f"history format {HISTORY_FORMAT}".encode())
    return digest.hexdigest()[:16]


class CacheWarning(UserWarning):
    """A cache file was unreadable or held non-finite numbers, and was moved aside."""


class CacheWriteError(OSError):
    """The run cache cannot be written; the message names the path."""


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a uniquely named temporary beside `path`, then rename over it."""
    try:
        handle, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise CacheWriteError(f"cannot write {path} ({err.strerror or err})") from err
    os.close(handle)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise CacheWriteError(f"cannot write {path} ({err.strerror or err})") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_problem(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    planted = next((line for line in lines if "GLOBAL" in line), None)
    if planted is not None:
        return (f"holds Python objects that a safe load (weights_only=True) refuses ({planted}): lifcore never "
                "writes such a file, and code planted in a pickle is not run")
    # torch's weights-only errors open with a paragraph of advice; the line that names the fault follows it
    detail = next((line for line in lines if "unsupported" in line.lower()),
                  next((line for line in lines if "error" in line.lower()), lines[0] if lines else type(err).__name__))
    return f"cannot be read: it is not a complete file written by torch.save ({type(err).__name__}: {detail[:160]})"


# what each file must hold: lifcore writes nothing else under these names
REQUIRED = {"result.pt": ("model", "method", "history"),
            "checkpoint.pt": ("model", "method", "schedule", "recorder", "batches", "noise", "history", "step")}


def _state_problem(state, required: tuple) -> str | None:
    """Why a loaded state cannot be a run's (a phrase that follows its path), or None."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a run's state (a dict with {', '.join(required)})"
    missing = [key for key in required if key not in state]
    if missing:
        return f"lacks {', '.join(missing)} (a run's state holds {', '.join(required)})"
    bad = _non_finite(state)
    if bad is not None:
        return f"holds NaN or Inf values in {bad}"
    if state.get("code", code_digest().hex()) != code_digest().hex():
        return "was written by another version of the training code (its `code` stamp differs)"
    return None


def _non_finite(state) -> str | None:
    """The first parameter or optimiser tensor that holds NaN or Inf, by name, or None."""
    for part in ("model", "method"):
        stack = [(part, state.get(part))]
        while stack:
            name, value = stack.pop()
            if torch.is_tensor(value):
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    return name
            elif isinstance(value, dict):
                stack.extend((f"{name}.{k}", v) for k, v in value.items())
            elif isinstance(value, (list, tuple)):
                stack.extend((f"{name}[{k}]", v) for k, v in enumerate(value))
    return None


LOCK_POLL_SECONDS = 1.0


class RunLockedError(RuntimeError):
    """The run is being trained by another process (``wait=False``); the message names it."""


class RunStore:
    """The cache folder of one config; ``cache_dir=None`` keeps nothing on disk."""

    def __init__(self, cache_dir: str | Path | None, config):
        self.config = config
        self.path = Path(cache_dir).expanduser() / config.key() if cache_dir is not None else None

    def _load(self, name: str, device) -> dict | None:
        """The state in `name`, or None when absent or unusable (then moved aside, with a warning)."""
        if self.path is None or not (self.path / name).exists():
            return None
        file = self.path / name
        try:
            state = torch.load(file, map_location=device, weights_only=True)
        except torch.OutOfMemoryError:
            raise  # a file that does not fit on the device is not a damaged file
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
            problem = _read_problem(err)
        else:
            problem = _state_problem(state, REQUIRED[name])
            if problem is None:
                return state
        self.set_aside(name, problem)
        return None

    def set_aside(self, name: str, problem: str) -> None:
        """Move the unusable file `name` to ``<name>.bad-<time>-<pid>``, with a `CacheWarning` saying why
        (`problem`, a phrase that follows the file's path); `CacheWriteError` when it cannot be moved."""
        file = self.path / name
        aside = file.with_name(f"{name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            file.rename(aside)
        except OSError as err:
            raise CacheWriteError(f"run cache: {file} {problem}, and it cannot be moved aside ({err.strerror or err}); "
                                  "delete it, or pass another cache_dir") from err
        what = ("the run is trained again (from its last checkpoint, where one is kept)" if name == "result.pt"
                else "the run starts again from step 0")
        warnings.warn(f"run cache: {file} {problem}; moved to {aside.name} beside it, and {what}", CacheWarning,
                      stacklevel=4)

    def result(self, device) -> dict | None:
        """The finished run's ``{"model", "history", ...}``, or None."""
        return self._load("result.pt", device)

    def checkpoint(self, device) -> dict | None:
        return self._load("checkpoint.pt", device)

    def _prepare(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        config_file = self.path / "config.json"
        if not config_file.exists():
            described = self.config.asdict() | {"image_digests": image_digests(self.config.images, paths=True)}
            config_file.write_text(json.dumps(described, indent=1, sort_keys=True))

    def check_writable(self) -> None:
        """Raise `CacheWriteError` naming the folder now if the run could not be saved later."""
        if self.path is None:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix=".write-check.", dir=self.path)
            os.close(handle)
            os.unlink(probe)
        except OSError as err:
            raise CacheWriteError(f"the run cache {self.path} is not writable ({err.strerror or err}): pass another "
                                  "cache_dir (or cache_dir=None to keep nothing)") from err

    def holder(self) -> str:
        """Who trains the run now, as its holder wrote it ("unknown" when it has not said yet)."""
        try:
            return (self.path / "lock.holder").read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    @contextlib.contextmanager
    def claim(self, wait: bool = True, say=None):
        """Hold the run's lock while training it. Held by another process: wait for it (saying so
        once through `say`, when given), or raise `RunLockedError` with ``wait=False``."""
        if self.path is None:
            yield
            return
        import filelock

        lock = filelock.FileLock(str(self.path / "lock"))
        told = False
        while True:
            try:
                lock.acquire(timeout=LOCK_POLL_SECONDS if wait else 0)  # wait=False: one try, no poll
                break
            except filelock.Timeout:
                if not wait:
                    raise RunLockedError(f"run {self.path.name} is being trained by {self.holder()} "
                                         f"(lock {self.path / 'lock'}); wait for it, or pass wait=True") from None
                if say is not None and not told:
                    say(f"run {self.path.name} is being trained by {self.holder()}: waiting for it")
                    told = True
        try:
            self._prepare()  # the folder says which run it is from the first moment it holds anything
            (self.path / "lock.holder").write_text(
                f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            yield
        finally:
            (self.path / "lock.holder").unlink(missing_ok=True)
            lock.release()

    def event_log(self, patch_size: int, start: int):
        """TensorBoard event files of the run (`lifcore.train.events`), continued from step `start`."""
        if self.path is None:
            return None
        from .events import EventLog

        # readers drop earlier files' events from purge_step on: what this process will log again
        # (step 0's measurement on a fresh start; everything after the checkpoint's step on a resume)
        return EventLog(self.path / "events", patch_size, purge_step=start + 1 if start else 0)

    def save_checkpoint(self, state: dict) -> None:
        if self.path is not None:
            self._prepare()
            atomic_save(state | {"code": code_digest().hex()}, self.path / "checkpoint.pt")

    def save_result(self, state: dict) -> None:
        if self.path is not None:
            self._prepare()
            atomic_save(state | {"code": code_digest().hex()}, self.path / "result.pt")

    def describe_checkpoint(self) -> str:
        """What a run that stops now leaves behind, for its error message."""
        if self.path is None:
            return "nothing was saved (cache_dir=None)"
        checkpoint = self.path / "checkpoint.pt"
        if not checkpoint.exists():
            return f"no checkpoint had been saved yet (the run's folder {self.path} holds its config.json)"
        try:
            step = torch.load(checkpoint, map_location="cpu", weights_only=True)["step"]
        except Exception:  # noqa: BLE001 (only for the message)
            return f"the last checkpoint ({checkpoint}) is kept"
        return f"the last good checkpoint ({checkpoint}, after step {step}) is kept"

    def training_holder(self) -> str | None:
        """Who holds the run's lock now, or None when nobody does. Writes nothing: it probes the
        operating-system lock with a shared lock on a read-only handle, released at once, so a read-only
        cache answers too (a trainer's one-try ``claim(wait=False)`` in that instant sees it held)."""
        import errno
        import fcntl

        lock = self.path / "lock"
        try:
            handle = open(lock, "rb")
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as err:  # EAGAIN; EACCES on some file systems, as filelock counts it
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                return self.holder()
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

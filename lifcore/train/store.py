"""The run cache: one folder per run, ``<cache_dir>/<key>/``.

* The key hashes every field of the config and the source of the code whose numbers the
  run is made of: the modules `lifcore.train.loop` imports, followed through their own
  imports inside `lifcore` (read from the source, not from what happens to be imported),
  minus this module and `lifcore.train.record`, whose edits change no trained number. So
  a change of the model, the methods, the data or the loop never loads a result the old
  code computed, and an edit of logging or storage retrains nothing. What the history
  holds is versioned by `record.HISTORY_FORMAT`, also in the key.
* ``checkpoint.pt`` (every `checkpoint_every` steps) and ``result.pt`` (at the end) are
  written to a temporary file of a unique name and renamed into place, so a killed run
  leaves the previous file, never half a file, and two writers never share a temporary.
* Files are read with ``torch.load(..., weights_only=True)``: a cache folder may be shared
  (a cluster file system, a downloaded cache), and a pickle planted in it is refused, not run.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
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


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """sha256 over the source of every module the training loop's numbers depend on."""
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
        digest.update(name.encode() + b"\0" + _module_file(name).read_bytes())
    return digest.digest()


def run_key(config) -> str:
    from .record import HISTORY_FORMAT

    digest = hashlib.sha256(json.dumps(config.asdict(), sort_keys=True).encode())
    digest.update(code_digest())
    digest.update(f"history format {HISTORY_FORMAT}".encode())
    return digest.hexdigest()[:16]


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a uniquely named temporary beside `path`, then rename over it."""
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunStore:
    """The cache folder of one config; ``cache_dir=None`` keeps nothing on disk."""

    def __init__(self, cache_dir: str | Path | None, config):
        self.config = config
        self.path = Path(cache_dir).expanduser() / config.key() if cache_dir is not None else None

    def _load(self, name: str, device) -> dict | None:
        if self.path is None or not (self.path / name).exists():
            return None
        return torch.load(self.path / name, map_location=device, weights_only=True)

    def result(self, device) -> dict | None:
        """The finished run's ``{"model", "history", ...}``, or None."""
        return self._load("result.pt", device)

    def checkpoint(self, device) -> dict | None:
        return self._load("checkpoint.pt", device)

    def _prepare(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        config_file = self.path / "config.json"
        if not config_file.exists():
            config_file.write_text(json.dumps(self.config.asdict(), indent=1, sort_keys=True))

    def save_checkpoint(self, state: dict) -> None:
        if self.path is not None:
            self._prepare()
            atomic_save(state, self.path / "checkpoint.pt")

    def save_result(self, state: dict) -> None:
        if self.path is not None:
            self._prepare()
            atomic_save(state, self.path / "result.pt")

    def describe_checkpoint(self) -> str:
        if self.path is None:
            return "nothing was saved (cache_dir=None)"
        return f"the last good checkpoint ({self.path / 'checkpoint.pt'}) is kept"

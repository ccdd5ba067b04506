"""Every chapter's papermill parameters, checked before any work (book-side, not part of `lifcore`).

A chapter's second cell (tagged ``remove-cell``: a page states its values in words) calls ::

    import chapter_parameters as _p
    _p.check(globals(), n_neurons=_p.integer(1), lr=_p.number(0, open_low=True), device=_p.device())

right after its ``parameters`` cell and the cell papermill injects. `check` stops the notebook

* on a name nobody declared: papermill only warns about a parameter the notebook does not
  have (``-p n_recc 500`` would run with the default and exit 0), and the kernel then simply
  holds one more variable: every name in the namespace that is neither a declared parameter
  nor IPython's own is such a typo;
* on a value outside what the chapter can compute with (``fi_steps 0``, a negative rate, an
  empty list), naming the parameter and what is allowed.

Values that YAML (``-y``, a profile) writes differently from Python are taken as meant:
``1e-3`` (a string to PyYAML) is a number, a list is accepted where a tuple is.
"""
from __future__ import annotations

import math

IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class ParameterError(ValueError):
    """A notebook parameter that is unknown or out of range; the message names it."""


def _ipython_own(namespace: dict, name: str) -> bool:
    """Whether `name` in `namespace` is IPython's own object (its `In`, `open`, ...), not a value a user gave:
    IPython keeps what it put there in ``user_ns_hidden``; outside IPython, a number or a string (what
    papermill injects: ``-p open 1``) is never IPython's."""
    if name not in IPYTHON_NAMES:
        return False
    shell = namespace.get("get_ipython")
    hidden = getattr(shell(), "user_ns_hidden", None) if callable(shell) else None
    if hidden is not None and name in hidden:
        return namespace[name] is hidden[name]
    return not isinstance(namespace[name], (bool, int, float, str))


def check(namespace: dict, **rules) -> None:
    """Check (and normalise in place) the parameters in `namespace` against `rules` (name -> rule)."""
    given = {name for name in namespace if not name.startswith("_") and not _ipython_own(namespace, name)}
    unknown = sorted(given - set(rules))
    if unknown:
        raise ParameterError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                             f"this notebook's parameters are: {', '.join(rules)}")
    missing = [name for name in rules if name not in namespace]
    if missing:  # a rule without its parameter: the notebook itself is wrong
        raise ParameterError(f"declared but not defined in the parameters cell: {', '.join(missing)}")
    for name, rule in rules.items():
        namespace[name] = rule(name, namespace[name])


def require(condition: bool, message: str) -> None:
    """A relation between parameters (``require(n_patches > 3 * patch_size**2, "...")``)."""
    if not condition:
        raise ParameterError(message)


def _as_number(value):
    """A YAML string that reads as a number ("1e-3") is that number; anything else is left as it is."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".en") else int(value)
        except ValueError:
            return value
    return value


def _bounds(low, high, open_low, open_high) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if open_high else '<='} {high:g}")
    return " and ".join(parts)


def _within(value, low, high, open_low, open_high) -> bool:
    return ((low is None or (value > low if open_low else value >= low))
            and (high is None or (value < high if open_high else value <= high)))


def integer(low: int | None = None, high: int | None = None):
    """An integer in [low, high] (a YAML "1e4" or 1e4 written as a whole number counts)."""
    def rule(name, value):
        value = _as_number(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not _within(value, low, high, False, False):
            raise ParameterError(f"parameter {name}={value!r}: must be an integer {_bounds(low, high, False, False)}".rstrip())
        return value
    return rule


def number(low: float | None = None, high: float | None = None, open_low: bool = False, open_high: bool = False):
    """A finite real number in the interval (each end open or closed)."""
    def rule(name, value):
        value = _as_number(value)
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or not _within(value, low, high, open_low, open_high)):
            raise ParameterError(f"parameter {name}={value!r}: must be a finite number "
                                 f"{_bounds(low, high, open_low, open_high)}".rstrip())
        return float(value)
    return rule


def flag():
    def rule(name, value):
        if not isinstance(value, bool):
            raise ParameterError(f"parameter {name}={value!r}: must be True or False")
        return value
    return rule


def text():
    def rule(name, value):
        if not isinstance(value, str) or not value:
            raise ParameterError(f"parameter {name}={value!r}: must be a non-empty string")
        return value
    return rule


def choice(*allowed):
    def rule(name, value):
        if value not in allowed:
            raise ParameterError(f"parameter {name}={value!r}: allowed values are {', '.join(map(repr, allowed))}")
        return value
    return rule


def list_of(item, min_len: int = 1, distinct: bool = False):
    """A list (or tuple) of at least `min_len` values, each checked by the rule `item`."""
    def rule(name, value):
        if not isinstance(value, (list, tuple)) or len(value) < min_len:
            raise ParameterError(f"parameter {name}={value!r}: must be a list of at least {min_len} value"
                                 f"{'s' if min_len > 1 else ''}")
        checked = [item(f"{name}[{k}]", v) for k, v in enumerate(value)]
        if distinct and len(set(checked)) < len(checked):
            raise ParameterError(f"parameter {name}={value!r}: the values must differ")
        return checked
    return rule


def device():
    """"auto", "cpu", "cuda" or "cuda:K", as `lifcore.resolve_device` takes it."""
    def rule(name, value):
        import lifcore

        try:
            lifcore.resolve_device(value)
        except (ValueError, RuntimeError, TypeError) as err:
            raise ParameterError(f"parameter {name}={value!r}: {err}") from None
        return value
    return rule


def deck_fields():
    """The `deck` dict of a Part II chapter: `TrainConfig` fields over `chapter_runs.DECK_QUICK`,
    checked by building the config (an unknown field lists the known ones). YAML's spellings are
    taken as meant (`lifcore.train.coerce_fields`); the device is the notebook's own `device`
    parameter, not a field of `deck`."""
    def rule(name, value):
        import chapter_runs
        from lifcore.train import coerce_fields

        if not isinstance(value, dict):
            raise ParameterError(f"parameter {name}={value!r}: must be a dict of TrainConfig fields")
        if "device" in value:
            raise ParameterError(f"parameter {name} sets device={value['device']!r}: set the notebook's own "
                                 f"`device` parameter instead (-p device {value['device']})")
        try:
            value = coerce_fields(value)
            chapter_runs.deck_base(**value)
        except ValueError as err:
            raise ParameterError(f"parameter {name}: {err}") from None
        return value
    return rule


def part_two(**more) -> dict:
    """The rules of every Part II chapter's shared parameters (`deck`, `runs_dir`, `progress`, `device`),
    with the chapter's own `more`: ``_p.check(globals(), **_p.part_two(tiles=_p.integer(1)))``."""
    return dict(deck=deck_fields(), runs_dir=text(), progress=flag(), device=device(), **more)


def part_one(**more) -> dict:
    """The rules of the LIF parameters every Part I chapter shares (the network: `n_in`, `n_neurons`, `T`,
    `alpha`, `input_rate`, `w_in_scale`; `device`), with the chapter's own `more`:
    ``_p.check(globals(), **_p.part_one(batch=_p.integer(1)))``."""
    return dict(n_in=integer(1), n_neurons=integer(2), T=integer(2), alpha=number(0, 1, open_low=True),
                input_rate=number(0, 1), w_in_scale=number(0), device=device(), **more)

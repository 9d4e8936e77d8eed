"""The exceptions users see, each printed on one line by the command line, and the checks of configuration values.

`ConfigError` is a bad value (exit code 2); `StorageError` a run's files could not be written (exit code 1).
Config dataclasses check their fields in `__post_init__` with `require_settings(prefix, self, rules)`, so a bad value
is refused before anything is built or written: `method.batch_size=0 is not allowed: it must be an integer >= 1`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Rule = tuple[Callable[[Any], bool], str]  # a test of a value, and what it allows (completes "it must be ...")


class ConfigError(ValueError):
    """A configuration or input value the suite cannot use."""


class StorageError(Exception):
    """A run's files could not be written or read (read-only folder, full disk); the message says what is safe."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds."""
    if not condition:
        raise ConfigError(message)


def show(value: Any) -> str:
    """A value as a message names it: strings quoted, everything else as written on the command line."""
    return repr(value) if isinstance(value, str) else str(value)


def require_settings(prefix: str, config: Any, rules: dict[str, Rule]) -> None:
    """Check each named field of `config` against its rule; `prefix` is `method` or `protocol` ('' for top-level keys)."""
    for name, (ok, allowed) in rules.items():
        value = getattr(config, name)
        try:
            good = bool(ok(value))
        except TypeError:  # a value of the wrong type (from Python, where no schema checked it)
            good = False
        require(good, f"{prefix + '.' if prefix else ''}{name}={show(value)} is not allowed: it must be {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int) -> Rule:
    """An integer >= low."""
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite number in the interval from low to high (open ends where asked)."""

    def ok(v: Any) -> bool:
        return _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    if high == math.inf:
        return ok, f"a finite number {'>' if low_open else '>='} {low:g}"
    return ok, f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def one_of(options: Sequence[str]) -> Rule:
    return (lambda v: v in options), f"one of {', '.join(options)}"


def layer_sizes() -> Rule:
    """A non-empty list of positive layer widths."""
    return (lambda v: isinstance(v, list | tuple) and len(v) > 0 and all(_is_int(h) and h > 0 for h in v)), (
        "a non-empty list of integers > 0, e.g. [256,256]"
    )


def layer_indices(layers: int) -> Rule:
    """Hidden-layer indices of a network with `layers` hidden layers."""
    return (lambda v: isinstance(v, list | tuple) and all(_is_int(i) and 0 <= i < layers for i in v)), (
        f"a list of hidden-layer indices in 0..{layers - 1}"
    )


def boolean() -> Rule:
    return (lambda v: isinstance(v, bool)), "true or false"

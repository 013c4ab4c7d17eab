"""One error type for bad input, and the checks that raise it before any compute is spent."""
from __future__ import annotations

from typing import Any, Iterable


class ConfigError(ValueError):
    """A configuration value is unknown or out of range; the message names the value and the valid choices."""


def require_choice(field: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ConfigError naming both."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{field}={value!r} is not valid; choose one of: {', '.join(map(repr, choices))}")
    return value


def require_range(field: str, value: Any, *, low: float | None = None, high: float | None = None,
                  low_inclusive: bool = True, high_inclusive: bool = True) -> Any:
    """Return ``value`` if it lies in the interval, else raise ConfigError naming the interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field}={value!r} is not a number")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ConfigError(f"{field}={value!r} is out of range; valid values lie in {left}{lo}, {hi}{right}")
    return value


def require_pair(field: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True) -> Any:
    """Return ``value`` if it is a (low, high) pair inside the interval with low <= high, else raise."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ConfigError(f"{field}={value!r} must be a pair (low, high)")
    for v in value:
        require_range(field, v, low=low, high=high, low_inclusive=low_inclusive)
    if value[0] > value[1]:
        raise ConfigError(f"{field}={value!r}: low must not exceed high")
    return value

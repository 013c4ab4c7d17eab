"""One error type for bad input, and the checks that raise it before any compute is spent."""
from __future__ import annotations

import difflib
import math
from typing import Any, Iterable


class ConfigError(ValueError):
    """A configuration value is unknown or out of range; the message names the value and the valid choices."""


def _swapped(typed: str, choice: str) -> bool:
    """Whether `choice` is `typed` with two neighbouring letters exchanged ("rnu" for "run")."""
    if len(typed) != len(choice):
        return False
    differ = [i for i, (a, b) in enumerate(zip(typed, choice)) if a != b]
    return (len(differ) == 2 and differ[1] == differ[0] + 1
            and (typed[differ[0]], typed[differ[1]]) == (choice[differ[1]], choice[differ[0]]))


def closest(value: Any, choices: Iterable[Any]) -> Any | None:
    """The choice a mistyped string `value` most likely meant (the same letters in another case, else the same
    letters with two neighbours exchanged, else a close spelling, else the one choice it begins), or None where none
    is close or several are equally so."""
    if not isinstance(value, str):
        return None
    by_lower = {c.lower(): c for c in choices if isinstance(c, str)}
    typed = value.lower()
    if typed in by_lower:
        return by_lower[typed]
    swapped = [c for c in by_lower if _swapped(typed, c)]
    if len(swapped) == 1:                    # in a short word, difflib's ratio is too low for it ("rnu": 0.67)
        return by_lower[swapped[0]]
    scores = {c: difflib.SequenceMatcher(None, typed, c).ratio() for c in by_lower}
    best = max(scores.values(), default=0.0)
    alike = [c for c, score in scores.items() if score == best]
    if best >= 0.75:                         # fig6 is as close to fig5 as to fig7: no guess among equals
        return by_lower[alike[0]] if len(alike) == 1 else None
    begun = [c for c in by_lower if len(typed) >= 3 and c.startswith(typed)]
    return by_lower[begun[0]] if len(begun) == 1 else None


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """"; did you mean 'x'?" for closest(value, choices), "" where there is none: the end of an error message."""
    match = closest(value, choices)
    return "" if match is None else f"; did you mean {match!r}?"


def require_choice(field: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ConfigError naming both (and the choice it most
    likely meant)."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{field}={value!r} is not valid; choose one of: {', '.join(map(repr, choices))}"
                          f"{did_you_mean(value, choices)}")
    return value


def require_range(field: str, value: Any, *, low: float | None = None, high: float | None = None,
                  low_inclusive: bool = True, high_inclusive: bool = True) -> Any:
    """Return ``value`` if it lies in the interval, else raise ConfigError naming the interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field}={value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):      # nan passes every comparison below
        raise ConfigError(f"{field}={value!r} is not a finite number")
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

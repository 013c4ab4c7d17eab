"""Config overrides on the command line: `key=value` words to a dict, and a dict back to such words."""
from __future__ import annotations

import shlex
from typing import Any, Mapping, Sequence

from simclr_core.validation import ConfigError


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """["loss.temperature=0.2", "max_steps=none"] -> {"loss.temperature": "0.2", "max_steps": None}.

    Values stay text (the config coerces them to each field's type); "none"/"null" mean None.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. loss.temperature=0.2")
        overrides[key.strip()] = None if value.strip().lower() in ("none", "null") else value
    return overrides


def override_args(overrides: Mapping[str, Any]) -> str:
    """`overrides` as the command line's key=value words (" k=v ..."; "" if none), each quoted for a shell."""
    def text(value: Any) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return ",".join(map(text, value))
        return repr(value) if isinstance(value, float) else str(value)

    return "".join(f" {shlex.quote(f'{key}={text(value)}')}" for key, value in overrides.items())

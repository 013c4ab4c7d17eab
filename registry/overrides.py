"""Config overrides on the command line: `key=value` words to a dict, and a dict back to such words."""
from __future__ import annotations

import os
import shlex
from typing import Any, Mapping, Sequence

from simclr_core.validation import ConfigError

# Settings that name a folder. A relative one means the folder below the working directory of the command that was
# typed, so it is made absolute there: a run's record (config.json, final.json's data_source) and the commands
# printed for it then name that folder from any directory, and a resumed run reads the same images.
FOLDER_KEYS = ("data.data_dir", "eval.transfer_data_dir")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """["loss.temperature=0.2", "max_steps=none"] -> {"loss.temperature": "0.2", "max_steps": None}.

    Values stay text (the config coerces them to each field's type); "none"/"null" mean None; a FOLDER_KEYS value
    becomes an absolute path (a leading ~ the home folder).
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. loss.temperature=0.2")
        key = key.strip()
        if value.strip().lower() in ("none", "null"):
            value = None
        elif key in FOLDER_KEYS and value:
            value = os.path.abspath(os.path.expanduser(value))
        overrides[key] = value
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

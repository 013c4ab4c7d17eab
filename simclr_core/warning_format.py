"""Warnings as one line each on the terminal: what happened, not the source line that noticed it.

Python's default format appends the line of code that called `warnings.warn` (e.g. `bad.add(...)`), which
reads like a fragment of a traceback. The entry points (the registry CLI, its worker processes, SLURM tasks,
the demo) print warnings as `warning: <message>` instead; a warning class other than UserWarning is named.
"""
from __future__ import annotations

import warnings


def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             line: str | None = None) -> str:
    text = " ".join(str(message).split())
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"warning{kind}: {text}\n"


def print_warnings_on_one_line() -> None:
    warnings.formatwarning = one_line

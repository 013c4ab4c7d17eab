"""Verbs of `python -m registry` that other packages provide, found through package entry points.

A package adds a verb by naming a `Command` in its pyproject.toml, e.g. the report (reports/cli.py):

    [project.entry-points."simclr_harness.commands"]
    report = "reports.cli:COMMAND"

The registry never imports the package that provides a verb (that package sits above it): it learns of the verb
from the installed package's metadata (importlib.metadata), which `pip install -e .` writes, and imports the
named object only then. A verb cannot replace one of the registry's own.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable

GROUP = "simclr_harness.commands"
INSTALL_HINT = "install the package: pip install -e . (in the repository root)"


@dataclass(frozen=True)
class Command:
    """One verb: its one-line help (the verb list), its description (`--help`), a function that adds its
    arguments to the verb's parser, and one that runs it (parsed arguments -> exit code)."""
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace], int]
    description: str | None = None

    def add_to(self, verbs: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, help=self.help, description=self.description,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_arguments(parser)
        parser.set_defaults(func=self.main)
        return parser


def plugin_commands() -> dict[str, Command | str]:
    """Verb name -> its Command, for every entry point of GROUP, by name; a verb whose object cannot be loaded
    maps to one line saying why (so that the registry's own verbs still work)."""
    found: dict[str, Command | str] = {}
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if entry.name in found:
            continue
        try:
            command = entry.load()
        except Exception as exc:   # a broken plugin must not take the registry's own verbs down with it
            found[entry.name] = (f"{entry.value} could not be loaded ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        found[entry.name] = command if isinstance(command, Command) else \
            f"{entry.value} is {type(command).__name__}, not a registry.commands.Command"
    return found


def add_unavailable(verbs: argparse._SubParsersAction, name: str, why: str) -> argparse.ArgumentParser:
    """A verb that is known but cannot run here: it takes any arguments and says `why` in one line."""
    parser = verbs.add_parser(name, help=f"(unavailable: {why})", description=f"{name}: unavailable: {why}")
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
    parser.set_defaults(func=None, unavailable=f"`{name}` is unavailable: {why}")
    return parser

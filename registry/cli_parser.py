"""The command lines' argument parser: argparse's, whose errors are one line (argparse prints its whole usage block
first: 17 lines for `run`), and whose "invalid choice" errors (a verb, --scale, a choice option) end with the choice
most likely meant."""
from __future__ import annotations

import argparse
import re

from simclr_core.validation import did_you_mean


# argparse's errors that name no valid choice: a word missing, or one that nothing takes.
REQUIRED = "the following arguments are required: "
WORDS_MISSING_OR_LEFT_OVER = ("the following arguments are required", "unrecognized arguments", "expected one argument",
                              "expected at least one argument")


class SuggestingParser(argparse.ArgumentParser):
    """An ArgumentParser (its subcommands' parsers too) whose errors are one line, exit code 2, and that appends
    "; did you mean 'x'?" to an invalid choice."""

    def error(self, message: str):
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found and "did you mean" not in message:      # choices quoted, or not (newer Pythons)
            choices = re.findall(r"'([^']*)'", found[2]) or found[2].split(", ")
            message += did_you_mean(found[1], choices)
        elif any(words in message for words in WORDS_MISSING_OR_LEFT_OVER) and "key=value, e.g." not in message:
            if message.startswith(REQUIRED):
                message = self._missing(message.removeprefix(REQUIRED).split(", "))
            message += f"; {self.prog} --help lists what it takes"
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _missing(self, names: list[str]) -> str:
        """argparse lists an optional positional (`key=value ...`) among the required ones when none is given:
        name only those really missing, by what they are ("the sweep name (SWEEP)")."""
        positionals = {action.metavar or action.dest: action for action in self._actions if not action.option_strings}
        optional = {name for name in names if name in positionals
                    and positionals[name].nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)}
        if not optional:
            return REQUIRED + ", ".join(names)
        return "missing " + " and ".join(_what(name, positionals.get(name)) for name in names if name not in optional)


def _what(name: str, action: argparse.Action | None) -> str:
    """"the sweep name (SWEEP)" from a help of "sweep name: temperature (...)"; the bare name without a help."""
    what = re.split(r"[:(]", action.help)[0].strip() if action is not None and action.help else ""
    return f"the {what} ({name})" if what else name


def stray_words(words: list[str]) -> str:
    """The error for words on a command line that no option takes: an override needs its `=`."""
    bare = [word for word in words if not word.startswith("-") and "=" not in word]
    return f"unrecognized arguments: {' '.join(words)}" + (
        f" (a config override is key=value, e.g. {bare[0]}=VALUE)" if bare else "")


__all__ = ["SuggestingParser", "stray_words"]

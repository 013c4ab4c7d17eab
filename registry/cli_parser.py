"""The command lines' argument parser: argparse's, whose "invalid choice" errors (a verb, --scale, a choice option)
end with the choice most likely meant."""
from __future__ import annotations

import argparse
import re

from simclr_core.validation import did_you_mean


class SuggestingParser(argparse.ArgumentParser):
    """An ArgumentParser (its subcommands' parsers too) that appends "; did you mean 'x'?" to an invalid choice."""

    def error(self, message: str):
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found and "did you mean" not in message:      # choices quoted, or not (newer Pythons)
            choices = re.findall(r"'([^']*)'", found[2]) or found[2].split(", ")
            message += did_you_mean(found[1], choices)
        super().error(message)


__all__ = ["SuggestingParser"]

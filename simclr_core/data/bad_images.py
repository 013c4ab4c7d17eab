"""Unreadable images, one policy on both data paths.

An image that cannot be decoded (a corrupt or truncated file, a file of an image folder gone since it was listed, a
row with neither bytes nor a path) is named in a warning (its file and row, and why), kept out of what the run
trains and evaluates on, and counted in final.json (`unreadable_images`, `unreadable_eval_images`). Once
MIN_BAD_FOR_VERDICT images are unreadable and they are more than MAX_BAD_FRACTION of the images seen, the run stops
with one error naming the first ones. The streamed path (stream.py) leaves it out of an evaluation pass, label and
all, replaces it in a training batch by another image of that batch (under that image's own label), and judges the
images read so far; the resident path (decode.py) leaves it out of the decoded split, label and all, and judges the
whole split before the first step.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from simclr_core.validation import ConfigError

MAX_BAD_FRACTION = 0.01
# ... judged once this many are bad (one bad image among the first ten read is no verdict on the dataset).
MIN_BAD_FOR_VERDICT = 10
# The unreadable images an error names; the resident path warns of this many one by one, then counts the rest.
FIRST_NAMED = 5


def reason(exc: BaseException) -> str:
    """Why an image could not be decoded, in one short line."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]


def too_many(bad: int, seen: int) -> bool:
    """Whether `bad` unreadable images among `seen` stop the run."""
    return bad >= MIN_BAD_FOR_VERDICT and bad > MAX_BAD_FRACTION * seen


def too_many_error(bad: int | str, seen: str, first: list[str]) -> ConfigError:
    """The error that stops a run: `seen` says of what ("the 20 images read so far")."""
    return ConfigError(f"{bad} of {seen} could not be decoded (more than {MAX_BAD_FRACTION:.0%}); the first: "
                       f"{'; '.join(first)}. Re-encode or remove them from the dataset")


def none_readable_error(count: int, example: str) -> ConfigError:
    """The error for images of which none could be decoded; `example`: "where (why)" of one."""
    return ConfigError(f"none of the {count} images could be decoded, e.g. {example}; re-encode them as JPEG or PNG, "
                       "or remove them from the dataset")


def skipped_warning(where: str, why: str, instead: str) -> str:
    """The warning for one unreadable image; `instead` says what the run does without it."""
    return f"skipping an unreadable image: {where} ({why}); {instead}"


@dataclass
class BadImages:
    """Images that could not be decoded: how many, of how many seen, and the first few (where, why); and how
    many had a side shorter than the view (their crops are upscaled, as torchvision's would be)."""
    seen: int = 0
    bad: int = 0
    first: list[str] = field(default_factory=list)
    small: int = 0

    def add_small(self, where: str, height: int, width: int, side: int) -> None:
        if not self.small:
            warnings.warn(f"{where} is {height} x {width} px, smaller than the {side} px views: its crops are "
                          "upscaled; final.json counts such images (images_smaller_than_view)", stacklevel=2)
        self.small += 1

    def add(self, where: str, why: str, instead: str) -> None:
        """Count an unreadable image and warn of it; `instead` says what the run does without it."""
        self.bad += 1
        if len(self.first) < FIRST_NAMED:
            self.first.append(f"{where} ({why})")
        warnings.warn(skipped_warning(where, why, instead), stacklevel=2)

    def check(self) -> None:
        if too_many(self.bad, self.seen):
            raise too_many_error(self.bad, f"the {self.seen} images read so far", self.first)

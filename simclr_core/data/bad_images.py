"""Unreadable images, one policy on both data paths.

An image that cannot be decoded (a corrupt or truncated file, a file of an image folder gone since it was listed, a
row with neither bytes nor a path) is named in a warning (its file and row, and why), kept out of what the run
trains and evaluates on, and counted in final.json (`unreadable_images`, `unreadable_eval_images`), each image once
however often it is read. Once MIN_BAD_FOR_VERDICT images are unreadable and they are more than MAX_BAD_FRACTION of
the distinct images seen, the run stops with one error naming the first ones. The streamed path (stream.py) leaves
it out of an evaluation pass, label and all, replaces it in a training batch by another image of that batch (under
that image's own label), and judges the distinct images read so far; the resident path (decode.py) leaves it out of
the decoded split, label and all, and judges the whole split before the first step.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

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
    """What one reader of a split (a training stream, an evaluation stream) met there, by row of the split: the
    images it could not decode (`rows`: row -> "where (why)", each image once however often it was read, in the
    order found), the distinct images it read (`seen`, which the verdict judges them against), the images with a
    side shorter than the view (`small_rows`, each once: their crops are upscaled, as torchvision's would be), and
    its reads, an image counting at each (`reads`, `failed_reads`). Which rows were read (or small) is kept as
    one byte per row of the split (a million rows: a megabyte); only the unreadable ones are named."""
    reads: int = 0
    failed_reads: int = 0
    seen: int = 0
    small: int = 0
    rows: dict[int, str] = field(default_factory=dict)
    # The final.json key that counts the images smaller than the view, which the warning of the first one names.
    small_counted_as: str = "images_smaller_than_view"
    _read: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)
    _small: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)

    @property
    def bad(self) -> int:
        """The distinct images found unreadable."""
        return len(self.rows)

    @property
    def first(self) -> list[str]:
        """"where (why)" of the first FIRST_NAMED images found unreadable."""
        return list(self.rows.values())[:FIRST_NAMED]

    def unreadable_rows(self) -> np.ndarray:
        return np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))

    def small_rows(self) -> np.ndarray:
        return np.flatnonzero(self._small)

    def read(self, rows) -> None:
        """Count a read of each of `rows` (the rows a batch asked for)."""
        rows = np.asarray(rows, dtype=np.int64)
        self.reads += len(rows)
        if not len(rows):
            return
        self._read = _grown(self._read, int(rows.max()))
        self.seen += int(np.count_nonzero(~self._read[np.unique(rows)]))
        self._read[rows] = True

    def add_small(self, row: int, where: str, height: int, width: int, side: int) -> None:
        if not self.small:
            warnings.warn(f"{where} is {height} x {width} px, smaller than the {side} px views: its crops are "
                          f"upscaled; final.json counts such images ({self.small_counted_as})", stacklevel=2)
        self._small = _grown(self._small, row)
        self.small += int(not self._small[row])
        self._small[row] = True

    def add(self, row: int, where: str, why: str, instead: str) -> None:
        """Count a failed read of image `row`, warning of it the first time; `instead` says what the run does
        without it."""
        self.failed_reads += 1
        if row not in self.rows:
            self.rows[row] = f"{where} ({why})"
            warnings.warn(skipped_warning(where, why, instead), stacklevel=2)

    def check(self) -> None:
        if too_many(self.bad, self.seen):
            raise too_many_error(self.bad, f"the {self.seen} images read so far", self.first)

    def batch_record(self, rows, failed_reads: int) -> "BatchRecord":
        """What one batch that read `rows` (counted here already) met, `failed_reads` of its reads failed: which of
        its rows this record knows as unreadable or small."""
        rows = np.asarray(rows, dtype=np.int64)
        small = rows[rows < len(self._small)]
        known = np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))     # the few unreadable rows named
        unreadable = {int(r): self.rows[int(r)] for r in np.intersect1d(rows, known)} if len(known) else {}
        return BatchRecord(rows, failed_reads, unreadable, small[self._small[small]])

    def add_batch(self, record: "BatchRecord") -> None:
        """Count what `record`'s batch met (its warnings were given where it was read)."""
        self.read(record.rows)
        self.failed_reads += record.failed_reads
        self.rows.update((row, where) for row, where in record.unreadable.items() if row not in self.rows)
        if len(record.small):
            self._small = _grown(self._small, int(record.small.max()))
            self.small += int(np.count_nonzero(~self._small[np.unique(record.small)]))
            self._small[record.small] = True

    def merge(self, other: "BadImages") -> None:
        """Fold in what another reader of the same split met (another process, an earlier session): reads add up,
        each image is counted once."""
        self.reads += other.reads
        self.failed_reads += other.failed_reads
        self.rows.update((row, where) for row, where in other.rows.items() if row not in self.rows)
        self._read = _grown(self._read, len(other._read) - 1)
        self._read[:len(other._read)] |= other._read
        self.seen = int(np.count_nonzero(self._read))
        self._small = _grown(self._small, len(other._small) - 1)
        self._small[:len(other._small)] |= other._small
        self.small = int(np.count_nonzero(self._small))

    def finds(self) -> dict:
        """The images found unreadable ({"row": "where (why)"}) and smaller than the view (rows), as JSON values."""
        return {"unreadable": {str(row): where for row, where in self.rows.items()},
                "small": self.small_rows().tolist()}

    def add_finds(self, finds: dict) -> None:
        """Count the images that `finds` (finds()) names, found by another reader (an interrupted evaluation's),
        each once."""
        self.rows.update((int(row), str(where)) for row, where in finds["unreadable"].items()
                         if int(row) not in self.rows)
        small = np.asarray(finds["small"], dtype=np.int64)
        if len(small):
            self._small = _grown(self._small, int(small.max()))
            self.small += int(np.count_nonzero(~self._small[np.unique(small)]))
            self._small[small] = True

    def copy(self) -> "BadImages":
        out = BadImages()
        out.merge(self)
        return out

    def state(self) -> dict:
        """Plain values (a checkpoint's, a collective's): the counts, the unreadable rows named, and which rows
        were read or small, one bit per row."""
        return {"reads": self.reads, "failed_reads": self.failed_reads, "rows": dict(self.rows),
                "read": (len(self._read), np.packbits(self._read).tobytes()),
                "small": (len(self._small), np.packbits(self._small).tobytes())}

    @classmethod
    def from_state(cls, state: dict) -> "BadImages":
        def flags(length_and_bits) -> np.ndarray:
            length, bits = length_and_bits
            return np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=length).astype(bool)

        out = cls(reads=int(state["reads"]), failed_reads=int(state["failed_reads"]),
                  rows={int(row): str(where) for row, where in state["rows"].items()})
        out._read, out._small = flags(state["read"]), flags(state["small"])
        out.seen, out.small = int(np.count_nonzero(out._read)), int(np.count_nonzero(out._small))
        return out


@dataclass(frozen=True)
class BatchRecord:
    """What one training batch met: the rows it read, how many of its reads failed, which of its rows could not be
    decoded (row -> "where (why)") and which are smaller than the view."""
    rows: np.ndarray
    failed_reads: int
    unreadable: dict[int, str]
    small: np.ndarray


def _grown(flags: np.ndarray, row: int) -> np.ndarray:
    """`flags`, extended with False (at least doubled) so that it holds `row`."""
    if row < len(flags):
        return flags
    out = np.zeros(max(row + 1, 2 * len(flags)), dtype=bool)
    out[:len(flags)] = flags
    return out

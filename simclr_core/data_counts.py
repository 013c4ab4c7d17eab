"""What final.json counts of a run's images (Feed.stats), over every process and every session of the run.

The streamed path counts as it reads (data/bad_images.py): the training batches' reads and the images found
unreadable or smaller than the view, in each process, and the evaluation passes' finds on the main process. A
checkpoint keeps these counts as of its step (`counts_to_keep`: merged over the processes, the batches read ahead of
the step left to the session that trains them), and a resumed run continues from them (`restore_counts`), so that
final.json counts the whole run and the 1% verdict judges all the images it read. The resident path keeps nothing:
its decoding finds a split's unreadable images whole, in every session. A final evaluation cut off keeps its finds
beside the protocols it finished (evaluation-partial.json: `keep_evaluation_finds`).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from accelerate import Accelerator
from accelerate.utils import gather_object

from simclr_core.data.feed import Feed
from simclr_core.partial_evaluation import PartialEvaluation

# The final.json fields a checkpoint written before checkpoints kept the counts leaves to the session that resumes it.
COUNTED_FIELDS = ("images_read", "unreadable_reads", "unreadable_images", "images_smaller_than_view",
                  "unreadable_eval_images")


def run_stats(accelerator: Accelerator, feed: Feed) -> dict[str, Any]:
    """feed.stats() over every process of a streamed run: each read its own images, so the reads are summed and the
    unreadable (or small) images are those any process found, each once (a resident run's processes all hold the
    same split)."""
    return feed.stats(gather=_gather_of(accelerator, feed))


def counts_to_keep(accelerator: Accelerator, feed: Feed, step: int) -> dict[str, Any] | None:
    """What a checkpoint at `step` keeps: the streamed path's counts (Feed.counts, over every process, of the batches
    before `step`) as plain values; None on the resident path. Every process calls it (a collective)."""
    counts = feed.counts(_gather_of(accelerator, feed), through_step=step)
    return None if counts is None else {name: bad.state() for name, bad in counts.items()}


def restore_counts(accelerator: Accelerator, feed: Feed, checkpoint: dict[str, Any], path: Path) -> int | None:
    """Continue the streamed path's counts from `checkpoint` (read from `path`), saying in one line which images met
    before are not warned of again. Where it kept none (written before checkpoints kept them), one line says so, and
    the step from which final.json's counts start is returned (else None)."""
    if feed.loader != "stream":
        return None
    step, counts = checkpoint["step"], checkpoint.get("data_counts")
    if counts is None:
        if accelerator.is_main_process:
            warnings.warn(f"{path} (step {step}) was written before checkpoints kept the data counts: final.json's "
                          f"{', '.join(COUNTED_FIELDS[:-1])} and {COUNTED_FIELDS[-1]} count from step {step} on only "
                          "(data_counts_from_step)", stacklevel=3)
        return step
    feed.restore_counts(counts, accelerator.is_main_process)
    if accelerator.is_main_process and (met := _met_before(feed.counts())):
        warnings.warn(f"resuming at step {step}: {met}, met before, are counted in final.json and not warned of "
                      "again", stacklevel=3)
    return None


def keep_evaluation_finds(feed: Feed, partial: PartialEvaluation) -> None:
    """Count the images that the protocols an interrupted evaluation finished (and `partial` kept) found unreadable or
    small: the protocols the rerun runs may not read those splits again. A file of these protocols written before it
    kept them: one line says that final.json's counts may leave out what they met."""
    finished = [*partial.kept, *(f"part of {name}" for name in partial.parts if name not in partial.kept)]
    if feed.loader != "stream" or not finished:
        return
    if partial.data_finds is not None:
        feed.add_evaluation_finds(partial.data_finds)
    else:
        warnings.warn(f"{partial.path} was written before it kept the unreadable images its protocols met: "
                      "final.json's unreadable_images, images_smaller_than_view and unreadable_eval_images may leave "
                      f"out those that {', '.join(finished)} met", stacklevel=3)


def _gather_of(accelerator: Accelerator, feed: Feed) -> Callable[[Any], list] | None:
    """The collective that hands every process each one's item, where several processes stream (else None)."""
    if feed.loader != "stream" or accelerator.num_processes == 1:
        return None
    return lambda item: gather_object([item])


def _met_before(counts: dict[str, Any]) -> str:
    """What the restored `counts` hold that a warning would have named: "2 unreadable training image(s) (the first:
    row 5 of ...)" and the like, joined ("" if nothing)."""
    batches, train_eval, test_eval = counts["train_batches"], counts["train_eval"], counts["test_eval"]
    unreadable = {**train_eval.rows, **batches.rows}
    small = len(np.union1d(batches.small_rows(), train_eval.small_rows()))
    parts = [f"{len(unreadable)} unreadable training image(s) (the first: {next(iter(unreadable.values()))})"
             if unreadable else "",
             f"{test_eval.bad} unreadable test image(s) (the first: {test_eval.first[0]})" if test_eval.bad else "",
             f"{small} training image(s) smaller than the view" if small else ""]
    return "; ".join(part for part in parts if part)


__all__ = ["COUNTED_FIELDS", "counts_to_keep", "keep_evaluation_finds", "restore_counts", "run_stats"]

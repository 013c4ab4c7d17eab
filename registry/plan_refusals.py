"""What `run` would refuse in a plan's data, as `run --dry-run`'s last lines: the training function's preflight
(registry/launch.py preflight_problems, the check `run` makes before it starts or submits anything), asked once per
distinct data and evaluation settings and batch size, one line per distinct problem. Never raises: a dry run
prints its plan whatever the data."""
from __future__ import annotations

from collections import Counter
from typing import Collection, Sequence

from registry.declare import Run
from registry.launch import TrainFn, is_local_to_this_machine, preflight_key, preflight_problems


def refusal_lines(runs: Sequence[Run], train_fn: TrainFn, *, on_slurm: bool,
                  already_shown: Collection[str] = ()) -> list[str]:
    """One line per distinct problem the preflight finds for `runs` (those still to train), naming the first run it
    is for and the first line of the error `run` would give. `on_slurm`: missing data is what this machine lacks,
    while each job looks on its node. `already_shown`: ids of runs whose batch larger than their training split
    the plan printed already."""
    from simclr_core.data.locate import downloads_left_to_the_run

    problems: dict[tuple[str, str], list] = {}     # (before, after the runs it is for) -> [first run, run count]
    runs_per_key = Counter(preflight_key(run) for run in runs)
    try:
        with downloads_left_to_the_run():        # a plan stays quick: a Hub split is probed, not downloaded
            for run, exc in preflight_problems(runs, train_fn):
                if _is_batch_too_large(exc) and run.run_id in already_shown:
                    continue
                found = problems.setdefault(_describe(exc, on_slurm), [run, 0])
                found[1] += runs_per_key[preflight_key(run)]
    except Exception as exc:         # a training function's own failure: the plan still stands, and says so
        problems.setdefault(("  `run` would stop at the data check of ", f": {type(exc).__name__}: {_first_line(exc)}"),
                            [runs[0], len(runs)])
    return [f"{before}{_runs(first, count)}{after}" for (before, after), (first, count) in problems.items()]


def _describe(exc: BaseException, on_slurm: bool) -> tuple[str, str]:
    """The line for one preflight problem: what goes before and after the runs it is for."""
    if on_slurm and is_local_to_this_machine(exc):
        missing = "not found" if isinstance(exc, FileNotFoundError) else "not usable"
        return (f"  data: {missing} on this machine for ", f": {_first_line(exc)}; each SLURM job looks on its node, "
                "which may differ from this machine, so `run --slurm` submits them")
    label = "  data: " if is_local_to_this_machine(exc) else "  "
    return f"{label}`run` would refuse ", f": {_first_line(exc)}"


def _is_batch_too_large(exc: BaseException) -> bool:
    from simclr_core.data.feed import BatchExceedsSplitError

    return isinstance(exc, BatchExceedsSplitError)


def _first_line(exc: BaseException) -> str:
    return next(iter(str(exc).splitlines()), "")


def _runs(first: Run, count: int) -> str:
    return first.run_id if count == 1 else f"{first.run_id} and {count - 1} more run(s)"

"""Hugging Face's progress bars while a check reads a dataset (train.check_inputs, before any run starts).

Reading parquet files or an image folder for the first time makes `datasets` build its Arrow copy in its cache and
draw a bar for it ("Generating train split: 5000 examples"). During a check that only clutters the launcher's
terminal (`run --slurm` prints one line per submitted run); where the check takes long, as a large dataset's first
copy does, one line says what it is doing instead.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

# A check still running after this many seconds says what it is doing.
NOTICE_AFTER_S = 10.0


@contextmanager
def progress_bars_hidden(doing: str) -> Iterator[None]:
    """`datasets`' progress bars off inside the block (as they were after it); past NOTICE_AFTER_S, one line on
    stderr: "<doing>: ...". """
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    notice = threading.Timer(NOTICE_AFTER_S, _say_still_at_it, (doing,))
    notice.daemon = True
    notice.start()
    try:
        yield
    finally:
        notice.cancel()
        if was_enabled:
            datasets.enable_progress_bars()


def _say_still_at_it(doing: str) -> None:
    import datasets

    print(f"{doing}: still at it after {NOTICE_AFTER_S:.0f} s (a dataset read for the first time is first copied into "
          f"Hugging Face's datasets cache, {datasets.config.HF_DATASETS_CACHE}; a large one takes minutes)",
          file=sys.stderr, flush=True)

"""simclr_core/data/hf_progress.py: Hugging Face's bars hidden during a check, one line instead when it is long."""
from __future__ import annotations

import time

import datasets

from simclr_core.data import hf_progress


def test_bars_are_hidden_inside_only_and_a_long_check_says_what_it_does(monkeypatch, capsys):
    with hf_progress.progress_bars_hidden("checking the data of 'x'"):
        assert not datasets.is_progress_bar_enabled()
    assert datasets.is_progress_bar_enabled() and capsys.readouterr().err == ""     # quick: not a word
    monkeypatch.setattr(hf_progress, "NOTICE_AFTER_S", 0.05)
    with hf_progress.progress_bars_hidden("checking the data of 'x'"):
        time.sleep(1.0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("checking the data of 'x': still at it after 0 s (a dataset read "
                                                   "for the first time is first copied into Hugging Face's"), err
    datasets.disable_progress_bars()
    with hf_progress.progress_bars_hidden("checking"):
        pass
    assert not datasets.is_progress_bar_enabled()        # left as it was
    datasets.enable_progress_bars()

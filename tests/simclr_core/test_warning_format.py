"""Warnings print as one line naming what happened (simclr_core/warning_format.py)."""
from __future__ import annotations

from simclr_core.warning_format import one_line


def test_a_user_warning_is_its_message_on_one_line():
    text = one_line(UserWarning("skipping /a/b.jpg\n  (OSError: bad)"), UserWarning, "/x/stream.py", 210,
                    "bad.add(where, why)")
    assert text == "warning: skipping /a/b.jpg (OSError: bad)\n"


def test_another_warning_class_is_named():
    text = one_line("old API", DeprecationWarning, "/x/y.py", 3)
    assert text == "warning (DeprecationWarning): old API\n"

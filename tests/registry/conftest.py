from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:   # so spawned workers and helper scripts can import fake_train
    sys.path.insert(0, str(HERE))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"

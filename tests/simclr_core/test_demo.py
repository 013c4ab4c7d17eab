"""`python -m simclr_core.demo` refuses bad input before it spends compute: one error line, exit code 2."""
from __future__ import annotations

import pytest

from simclr_core import demo


def no_compute(*args, **kwargs):
    raise AssertionError("compute was spent on bad input")


@pytest.mark.parametrize("where", ["file", "below_file"])
def test_a_run_dir_that_is_or_lies_under_a_file_is_refused_before_any_compute(tmp_path, monkeypatch, capsys, where):
    monkeypatch.setattr(demo, "random_init_knn", no_compute)
    monkeypatch.setattr(demo, "train", no_compute)
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    run_dir = afile if where == "file" else afile / "demo"
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: --run-dir {run_dir} "), err
    assert ("is a file" if where == "file" else f"lies under {afile}, which is a file") in err
    assert afile.read_text() == "x"


def test_nan_epochs_are_refused_before_any_compute(monkeypatch, capsys):
    monkeypatch.setattr(demo, "random_init_knn", no_compute)
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--epochs", "nan"])
    assert exit_info.value.code == 2 and "epochs=nan must be a finite number" in capsys.readouterr().err

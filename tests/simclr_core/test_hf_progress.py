"""simclr_core/data/hf_progress.py: Hugging Face's bars hidden during a check, one line instead when it is long."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from simclr_core.data import hf_progress

REPO = Path(__file__).resolve().parents[2]


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


# The registry's check before `run --slurm` submits (registry.launch.preflight_runs -> train.check_inputs), in a process
# of its own whose Hugging Face cache is new (HF_DATASETS_CACHE set before `datasets` is imported), with SLURM faked.
_SUBMIT_CHECK = """
import sys
from registry import slurm
from registry.__main__ import main
from simclr_core.validation import ConfigError

def stop_before_sbatch(self, *args, **kwargs):
    raise ConfigError("checked; not submitted")
slurm.require_slurm = lambda: None
slurm.partition_nodes = lambda partition: ("debug", 2)
slurm.SlurmExecutor._submit = stop_before_sbatch
sys.exit(main(sys.argv[1:]))
"""


def _hub_layout_parquet(root: Path) -> Path:
    """A parquet dataset laid out as the Hub's (plain_text/<split>-00000-of-00001.parquet; images a struct of
    bytes and path, as `datasets` writes them)."""
    rng = np.random.default_rng(0)

    def split(rows: int) -> pa.Table:
        images = []
        for _ in range(rows):
            encoded = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(encoded, "PNG")
            images.append({"bytes": encoded.getvalue(), "path": None})
        return pa.table({"img": images, "label": [i % 10 for i in range(rows)]})

    (root / "plain_text").mkdir(parents=True)
    pq.write_table(split(600), root / "plain_text" / "train-00000-of-00001.parquet")
    pq.write_table(split(200), root / "plain_text" / "test-00000-of-00001.parquet")
    return root


def test_the_check_before_a_slurm_submission_draws_no_generating_split_bar(tmp_path):
    data = _hub_layout_parquet(tmp_path / "data")
    hf_cache = tmp_path / "hf"
    env = {**os.environ, "HF_DATASETS_CACHE": str(hf_cache), "SIMCLR_CACHE_DIR": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(REPO)}
    env.pop("SIMCLR_SLURM_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", _SUBMIT_CHECK, "run", "temperature_norm", "--scale", "smoke", "--only", "normalize+0.5",
         "--slurm", "--slurm-time-min", "5", "--results-dir", str(tmp_path / "results"),
         "data.dataset=parquet", "data.loader=resident", f"data.data_dir={data}"],
        capture_output=True, text=True, env=env, timeout=600)
    assert hf_cache.is_dir() and any(hf_cache.iterdir()), "the check built no Arrow copy: the test shows nothing"
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "error: checked; not submitted" in done.stderr, output
    assert "Generating" not in output and "examples/s" not in output, output

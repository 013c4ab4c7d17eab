"""`run --dry-run` ends saying what `run` would refuse in the plan's data (registry/plan_refusals.py): the check
`run` makes before it starts anything, asked without raising, one line per distinct problem.

Before: with CIFAR-10 or a Table 8 transfer set missing, the dry run printed the plan and its hours and said nothing
about the data, while `run` itself stopped at once with "cifar10: no 'train' split found ...". The Hub is the
closed discard port here (refused at once) and the HF cache an empty folder, so nothing is downloaded.
"""
from __future__ import annotations

import datasets
import pytest

import fake_train
from registry import get_experiment, launch
from registry.__main__ import main
from simclr_core import train as train_module


@pytest.fixture
def no_data(tmp_path, monkeypatch, empty_hf_cache):
    """$SIMCLR_DATA_DIR an empty folder, no Hub and an empty HF cache; results in tmp_path/results."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SIMCLR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "results"


def refusal(capsys, *args: str) -> str:
    """The first line of what `run` (without --dry-run) says before it refuses, less its 'error: RUN: '."""
    assert main(["run", *args]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("error: "), first
    return first.partition(": ")[2].partition(": ")[2]


def dry_run(capsys, *args: str) -> list[str]:
    assert main(["run", *args, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return out.splitlines()


def test_missing_training_data_ends_the_plan_with_the_line_run_would_refuse_it_with(no_data, capsys):
    runs = get_experiment("temperature_norm").runs("cpu")
    error = refusal(capsys, "temperature_norm", "--scale", "cpu")
    assert error.startswith("cifar10: no 'train' split found (data.data_dir not set; $SIMCLR_DATA_DIR/cifar10: ")
    out = dry_run(capsys, "temperature_norm", "--scale", "cpu")
    assert out[-1] == f"  data: `run` would refuse {runs[0].run_id} and 5 more run(s): {error}", out[-1]
    assert sum("would refuse" in line for line in out) == 1, out
    assert not any(no_data.glob("*/*")), "something was recorded"


def test_missing_transfer_data_ends_the_plan_with_the_line_run_would_refuse_it_with(no_data, capsys):
    args = ("table8_transfer", "--scale", "smoke", "--only", "food101*")
    error = refusal(capsys, *args)
    assert error.startswith("eval.transfer_dataset='food101' is not available, so the transfer evaluation cannot "
                            "run: food101: no 'train' split found"), error
    out = dry_run(capsys, *args)
    (run,) = [run for run in get_experiment("table8_transfer").runs("smoke") if run.label.startswith("food101")]
    assert out[-1] == f"  data: `run` would refuse {run.run_id}: {error}", out[-1]
    assert sum("would refuse" in line for line in out) == 1, out


def test_under_slurm_data_missing_here_is_what_this_machine_lacks_not_a_refusal(no_data, capsys):
    out = dry_run(capsys, "temperature_norm", "--scale", "cpu", "--slurm")
    assert out[-1].startswith("  data: not found on this machine for temperature_norm/"), out[-1]
    assert "and 5 more run(s): cifar10: no 'train' split found" in out[-1], out[-1]
    assert out[-1].endswith("; each SLURM job looks on its node, which may differ from this machine, so "
                            "`run --slurm` submits them"), out[-1]
    assert not any("would refuse" in line for line in out), out


def test_present_data_is_checked_once_per_setting_and_says_nothing_and_done_runs_are_not_checked(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checked_train")   # its preflight: `missing` absent
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(fake_train, "PREFLIGHT_CALLS", [])
    args = ["temperature_norm", "--scale", "smoke", "data.dataset=cifar10"]
    missing = dry_run(capsys, *args, f"data.data_dir={tmp_path / 'missing'}")
    assert missing[-1].startswith("  `run` would refuse temperature_norm/") and missing[-1].endswith(
        f"and 5 more run(s): no data in {tmp_path / 'missing'}"), missing[-1]
    fake_train.PREFLIGHT_CALLS.clear()
    args.append(f"data.data_dir={tmp_path / 'here'}")
    plain = dry_run(capsys, *args)
    assert len(fake_train.PREFLIGHT_CALLS) == 1, "the six runs share their data, evaluation and batch"
    assert not any(line.startswith(("  data:", "  `run`")) for line in plain), plain
    assert main(["run", *args]) == 0 and "summary: 6 done" in capsys.readouterr().out
    fake_train.PREFLIGHT_CALLS.clear()
    dry_run(capsys, *args)
    assert fake_train.PREFLIGHT_CALLS == [], "runs already done were checked"


def test_a_problem_the_plan_shows_already_is_not_said_twice_and_one_it_does_not_is_said(monkeypatch, tmp_path,
                                                                                         capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    calls = []
    monkeypatch.setattr(train_module.train, "preflight", 
                        lambda cfg: calls.append(cfg) or train_module.check_inputs(cfg))
    out = dry_run(capsys, "temperature_norm", "--scale", "smoke", "batch_size=1000")
    assert calls and sum("batch_size=1000 exceeds the 512 training images" in line for line in out) == 1, out
    assert not any("would refuse" in line for line in out), out
    out = dry_run(capsys, "temperature_norm", "--scale", "smoke", "data.train_limit=100000")
    assert out[-1].startswith("  `run` would refuse temperature_norm/") and out[-1].endswith(
        "and 5 more run(s): data.train_limit=100000 does not fit the 5000 examples of split 'train' of "
        f"{train_module.__file__.rsplit('/', 1)[0]}/assets/cifar10_subset/train.parquet (parquet); valid values lie "
        "in [2, 5000]: override it with data.train_limit=N"), out[-1]


def test_present_training_data_of_the_real_check_says_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    calls = []
    monkeypatch.setattr(train_module.train, "preflight", 
                        lambda cfg: calls.append(cfg) or train_module.check_inputs(cfg))
    out = dry_run(capsys, "temperature_norm", "--scale", "smoke")       # the embedded CIFAR-10 subset
    assert len(calls) == 1 and not any(line.startswith(("  data:", "  `run`")) for line in out), out


def test_a_transfer_set_the_hub_would_provide_is_not_downloaded_by_the_plan(no_data, monkeypatch, capsys):
    """`run` opens a Hub transfer set before it starts (downloading it into the HF cache); a plan only probes."""
    from simclr_core.data import locate

    probes = []
    monkeypatch.setattr(locate, "hub_unreachable", lambda timeout=0: probes.append(timeout))  # None: it connects
    downloads, load_dataset = [], datasets.load_dataset

    def load(path, *args, **kwargs):         # a Hub id: owner/name; local files load as before
        if "/" in path:
            downloads.append(path)
            raise ConnectionError(f"{path} would be downloaded")
        return load_dataset(path, *args, **kwargs)
    monkeypatch.setattr(datasets, "load_dataset", load)
    out = dry_run(capsys, "table8_transfer", "--scale", "smoke", "--only", "food101*")
    assert probes, "the plan did not look for the transfer set"
    assert downloads == [] and not any(line.startswith(("  data:", "  `run`")) for line in out), (downloads, out[-1])

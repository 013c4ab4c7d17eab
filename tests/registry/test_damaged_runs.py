"""Damaged run files and bad places: each is reported naming the file and the fix, never counted as done,
never crashes `status`/`show`/`report`, and `run --only ID --redo` trains the run again keeping the old files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_train import counting_train, write_fake_checkpoint
from registry import get_experiment, load_results
from registry import __main__ as cli_module
from registry import launch
from registry.__main__ import main
from registry.launch import execute_run
from registry.store import RunStore

EXPERIMENT = "loss_variant"


@pytest.fixture
def finished(tmp_path) -> tuple[Path, list]:
    """Two finished smoke runs of loss_variant (fake training) in tmp_path/results."""
    results = tmp_path / "results"
    runs = get_experiment(EXPERIMENT).runs("smoke")[:2]
    for run in runs:
        assert execute_run(run, results, counting_train).state == "done"
    return results, runs


def call(monkeypatch, capsys, results: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


DAMAGE = {
    "final.json": ("final.json", "{\"knn_top1\": 3", "final.json is not valid JSON"),
    "final.json list": ("final.json", "[1, 2]", "final.json holds a JSON list"),
    "config.json": ("config.json", "\x00\x01garbage", "config.json is not valid JSON"),
    "config.json list": ("config.json", "[\"a\"]", "config.json holds a JSON list"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_json_file_makes_the_run_corrupt_everywhere(finished, monkeypatch, capsys, case):
    results, runs = finished
    name, text, reason = DAMAGE[case]
    damaged, intact = runs
    (results / damaged.run_id / name).write_text(text)
    store = RunStore(results)
    assert store.state(damaged.run_id) == "corrupt" and reason in store.problem(damaged.run_id)
    assert store.state(intact.run_id) == "done"

    code, out, _ = call(monkeypatch, capsys, results, "status")
    assert code == 0
    assert f"corrupt: {damaged.run_id}: {reason}" in out
    assert f"--scale smoke --only {damaged.run_id} --redo" in out        # the scale is found even without config
    assert not any(line.split()[:2] == [EXPERIMENT, "?"] for line in out.splitlines())

    code, out, _ = call(monkeypatch, capsys, results, "show", EXPERIMENT)
    assert code == 0 and reason in out and "1 done, 1 corrupt" in out

    frame = load_results(results)                                      # the report's input names what it left out
    assert set(frame.run_id) == {intact.run_id}
    assert reason in frame.attrs["left_out"][damaged.run_id]

    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:counting_train")
    code, out, err = call(monkeypatch, capsys, results, "run", EXPERIMENT, "--scale", "smoke", "--only", "*")
    assert code == 1                                                   # not "done already", not silently retrained
    assert f"corrupt: {damaged.run_id}: {reason}" in err and "--redo" in err
    assert (results / damaged.run_id / name).read_text() == text       # nothing touched

    code, out, err = call(monkeypatch, capsys, results, "run", EXPERIMENT, "--scale", "smoke",
                          "--only", damaged.run_id, "--redo")
    assert code == 0, err
    assert store.state(damaged.run_id) == "done" and store.state(intact.run_id) == "done"
    kept, = (results / damaged.run_id).glob("discarded-*")
    assert (kept / name).read_text() == text and f"kept in {kept}" in out


def test_a_truncated_checkpoint_is_corrupt_and_redo_starts_over(finished, monkeypatch, capsys):
    results, runs = finished
    run_dir = results / runs[0].run_id
    (run_dir / "final.json").unlink()
    write_fake_checkpoint(run_dir / "checkpoint.pt", b"x" * 4096)
    store = RunStore(results)
    assert store.state(runs[0].run_id) == "pending"                    # a whole checkpoint: resumable
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert store.state(runs[0].run_id) == "corrupt"
    assert "checkpoint.pt is truncated or damaged" in store.problem(runs[0].run_id)

    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:counting_train")
    code, _, err = call(monkeypatch, capsys, results, "run", EXPERIMENT, "--scale", "smoke", "--only", "*")
    assert code == 1 and "checkpoint.pt is truncated" in err
    code, _, err = call(monkeypatch, capsys, results, "run", EXPERIMENT, "--scale", "smoke",
                        "--only", runs[0].run_id, "--redo")
    assert code == 0, err
    final = json.loads((run_dir / "final.json").read_text())
    assert final["resumed"] is False                                   # trained from scratch, not from the damage
    assert len(list(run_dir.glob("discarded-*/checkpoint.pt"))) == 1


def test_redo_needs_only_and_refuses_a_run_another_process_owns(finished, monkeypatch, capsys):
    results, runs = finished
    code, _, err = call(monkeypatch, capsys, results, "run", EXPERIMENT, "--scale", "smoke", "--redo")
    assert code == 2 and "--only" in err
    from registry.claim import try_claim
    claim = try_claim(results / runs[0].run_id)
    assert claim is not None
    with claim:
        code, _, err = call(monkeypatch, capsys, results, "run", EXPERIMENT, "--scale", "smoke",
                            "--only", runs[0].run_id, "--redo")
    assert code == 2 and "is being trained by" in err
    assert not list((results / runs[0].run_id).glob("discarded-*"))


def test_a_results_folder_that_is_a_file_or_cannot_be_made_is_named(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "results.txt"
    afile.write_text("not a folder")
    for verb in (("status",), ("show", EXPERIMENT), ("run", EXPERIMENT, "--scale", "smoke")):
        code, _, err = call(monkeypatch, capsys, afile, *verb)
        assert code == 2 and f"{afile} is a file" in err and "--results-dir" in err
    below = afile / "sub"
    for verb in (("run", EXPERIMENT, "--scale", "smoke"), ("run", EXPERIMENT, "--scale", "smoke", "--dry-run"),
                 ("show", EXPERIMENT), ("status",)):
        code, _, err = call(monkeypatch, capsys, below, *verb)
        assert code == 2 and f"the results folder {below} lies under {afile}, which is a file" in err, err
    assert afile.read_text() == "not a folder"


def test_a_results_folder_in_the_home_of_an_unknown_user_is_named(tmp_path, monkeypatch, capsys):
    for verb in (("status",), ("show", EXPERIMENT), ("run", EXPERIMENT, "--scale", "smoke", "--dry-run")):
        code, _, err = call(monkeypatch, capsys, tmp_path, *verb, "--results-dir", "~no_such_user_here/results")
        assert code == 2 and err.startswith("error: the results folder ~no_such_user_here/results (--results-dir) "
                                            "names the home folder of a user"), err


@pytest.mark.parametrize("scale", [["smoke"], {"name": "smoke"}, 7])
def test_a_config_json_whose_scale_is_not_a_name_is_read_as_an_unknown_scale(finished, monkeypatch, capsys, scale):
    results, runs = finished
    path = results / runs[0].run_id / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "scale": scale}))
    code, out, err = call(monkeypatch, capsys, results, "status")
    assert code == 0 and "unexpected" not in err, err
    assert f"{EXPERIMENT:<20} smoke" in out                   # the declared run of that id tells its scale
    code, out, err = call(monkeypatch, capsys, results, "show", EXPERIMENT)
    assert code == 0 and "unexpected" not in err and "scale smoke:" in out, err


def test_run_without_a_name_lists_the_experiments(tmp_path, monkeypatch, capsys):
    code, _, err = call(monkeypatch, capsys, tmp_path, "run")
    assert code == 2 and "run needs an experiment name" in err and "augment_pairs" in err
    assert "key=value" not in err.split(";")[1]                        # overrides are not said to be required


def test_show_defaults_to_the_scale_of_the_stored_runs(finished, monkeypatch, capsys):
    results, _ = finished
    code, out, _ = call(monkeypatch, capsys, results, "show", EXPERIMENT)
    assert code == 0 and "scale smoke:" in out and "3 pending, 2 done (of 5)" in out
    code, out, _ = call(monkeypatch, capsys, results, "show", EXPERIMENT, "--scale", "cpu")
    assert code == 0 and "scale cpu:" in out and "5 pending (of 5)" in out
    code, out, _ = call(monkeypatch, capsys, results / "empty", "show", EXPERIMENT)
    assert code == 0 and "scale cpu:" in out                          # nothing stored: the default scale


def test_an_unexpected_error_prints_one_line_and_keeps_the_traceback_in_a_file(tmp_path, monkeypatch, capsys):
    def broken(args):
        raise KeyError("deep inside")

    monkeypatch.setattr(cli_module, "cmd_status", broken)
    code, _, err = call(monkeypatch, capsys, tmp_path, "status")
    assert code == 1 and "KeyError" in err and "deep inside" in err
    path = Path(err.split("the traceback is in ")[1].split()[0])
    assert "Traceback (most recent call last)" in path.read_text() and "broken" in path.read_text()
    path.unlink()


def test_the_report_names_the_runs_it_left_out(finished, tmp_path, capsys):
    from reports.cli import run as report

    results, runs = finished
    (results / runs[0].run_id / "final.json").write_text("{")
    code = report(["--results-dir", str(results), "--out", str(tmp_path / "report"), "tab4"])
    err = capsys.readouterr().err
    assert code == 0 and f"left out: {runs[0].run_id}: final.json is not valid JSON" in err
    page = (tmp_path / "report" / "report.md").read_text()
    assert "Left out: 1 finished run(s) whose files are damaged" in page and runs[0].run_id in page
    assert runs[0].run_id in (tmp_path / "report" / "index.html").read_text()


def test_a_missing_dataset_fails_fast_saying_where_it_looked_and_how_to_provide_it(tmp_path):
    import os
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("SIMCLR_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(repo),
               SIMCLR_RESULTS_DIR=str(tmp_path / "results"), SIMCLR_CACHE_DIR=str(tmp_path / "cache"))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "registry", "run", "temperature_norm", "--scale", "cpu",
                           "--only", "normalize+0.1"], capture_output=True, text=True, env=env, cwd=repo, timeout=300)
    assert time.monotonic() - started < 120 and done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "No run was started." in done.stderr and not any((tmp_path / "results").iterdir())
    assert "no 'train' split found (data.data_dir not set; $SIMCLR_DATA_DIR not set" in done.stderr
    assert "data.data_dir=DIR" in done.stderr and "SIMCLR_DATA_DIR=ROOT" in done.stderr

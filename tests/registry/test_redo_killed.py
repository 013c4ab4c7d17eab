"""`run --only ID --redo` killed while it moves the run's files aside: the next `run` (the same command, or a plain
one) finishes the move into the same folder and trains the run from scratch; no file is lost, no run mixes its old
files with the redo's, none evaluates another run's pretraining."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fake_train import checkpointing_train
from registry import get_experiment, launch, load_results
from registry.__main__ import main
from registry.launch import execute_run
from registry.pretraining import REDO_FIELD
from registry import store as store_module
from registry.store import RunStore

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "table8_transfer"           # an evaluation-only axis: its runs share one pretraining
OLD_FILES = ("config.json", "status.json", "checkpoint.pt", "final.json")


class Killed(BaseException):
    """Stands in for SIGKILL: no handler of the command catches it, as none runs on a kill."""


@pytest.fixture
def redone(tmp_path, monkeypatch):
    """(results, donor, run): `run` evaluated the pretraining of `donor` (both finished, fake training); the old
    content of each of run's files."""
    results = tmp_path / "results"
    donor, run = get_experiment(EXPERIMENT).runs("smoke")[:2]
    assert execute_run(donor, results, checkpointing_train).detail == "trained"
    assert execute_run(run, results, checkpointing_train).detail == f"evaluated the pretraining of {donor.run_id}"
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checkpointing_train")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    old = {name: (results / run.run_id / name).read_bytes() for name in OLD_FILES}
    return results, donor, run, old


def checkpoint_payload(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("archive/data.pkl")


def assert_redone_and_nothing_lost(results: Path, donor, run, old: dict[str, bytes]) -> None:
    store, run_dir = RunStore(results), results / run.run_id
    assert store.state(run.run_id) == "done" and store.state(donor.run_id) == "done"
    final = store.final(run.run_id)
    assert final["resumed"] is False and "pretraining_from" not in final        # its own pretraining, from scratch
    assert checkpoint_payload(run_dir / "checkpoint.pt") == run_dir.name.encode()
    assert store.status(run.run_id).get(REDO_FIELD)
    kept = list(run_dir.glob("discarded-*"))
    assert len(kept) == 1, kept                                                  # one folder, finished
    for name, content in old.items():
        assert (kept[0] / name).read_bytes() == content, name


def kill_the_move_aside(monkeypatch, run_dir: Path, after: int | None) -> None:
    """The move-aside of run_dir's files is killed once `after` files have moved (None: once the last has)."""
    real, done = shutil.move, []

    def move(source, target, *args, **kwargs):
        if after == 0:
            raise Killed("killed before the first move")
        moved = real(source, target, *args, **kwargs)
        done.append(source)
        if len(done) == after or after is None and not any((run_dir / name).exists() for name in OLD_FILES[2:]):
            raise Killed(f"killed after moving {done}")
        return moved

    monkeypatch.setattr(shutil, "move", move)


@pytest.mark.parametrize("rerun", ["the same command", "a plain run"])
@pytest.mark.parametrize("after", [0, 1, 2, None], ids=["before-any-move", "after-1", "after-2", "after-the-last"])
def test_a_redo_killed_while_moving_files_aside_is_finished_by_the_next_run(redone, monkeypatch, capsys, after,
                                                                           rerun):
    # Before: a plain `run` after such a kill called the run corrupt (config.json moved, final.json not), or (all
    # moved, not yet marked redone) evaluated the donor's pretraining again; the same command split the old files
    # over two discarded-* folders.
    results, donor, run, old = redone
    command = ["run", EXPERIMENT, "--scale", "smoke", "--only", run.run_id]
    kill_the_move_aside(monkeypatch, results / run.run_id, after)
    with pytest.raises(Killed):
        main(command + ["--redo"])
    monkeypatch.undo()
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checkpointing_train")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    store = RunStore(results)
    if store.state(run.run_id) == "done":           # never done with some of its files moved aside
        assert all((results / run.run_id / name).read_bytes() == content for name, content in old.items())
    if run.run_id in set(load_results(results).run_id):
        assert store.state(run.run_id) == "done"
    capsys.readouterr()
    assert main(["show", EXPERIMENT, "--scale", "smoke"]) == 0
    assert "`run --redo` was stopped moving its files aside" in capsys.readouterr().out
    assert main(command + (["--redo"] if rerun == "the same command" else [])) == 0, capsys.readouterr()
    assert "pretraining of" not in capsys.readouterr().out
    assert_redone_and_nothing_lost(results, donor, run, old)


def test_a_redo_killed_by_sigkill_is_finished_by_a_plain_run(redone, capsys):
    results, donor, run, old = redone
    script = ("import os, shutil, signal, sys\n"
              "from registry import launch\n"
              "launch.DEFAULT_TRAIN_FN = 'fake_train:checkpointing_train'\n"
              "real = shutil.move\n"
              "def move(*args):\n"
              "    real(*args)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "shutil.move = move\n"
              "from registry.__main__ import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    path = os.pathsep.join([str(REPO), str(REPO / "tests" / "registry")])
    killed = subprocess.run([sys.executable, "-c", script, "run", EXPERIMENT, "--scale", "smoke", "--only",
                             run.run_id, "--redo"], cwd=REPO, env={**os.environ, "PYTHONPATH": path},
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (results / run.run_id / "claim.lock").exists()          # a dead owner's claim: the next run breaks it
    assert main(["run", EXPERIMENT, "--scale", "smoke", "--only", run.run_id]) == 0, capsys.readouterr()
    assert_redone_and_nothing_lost(results, donor, run, old)


def test_every_run_of_a_killed_redo_is_marked_before_any_file_moves(redone, monkeypatch, capsys):
    results, donor, run, _ = redone
    both = ["run", EXPERIMENT, "--scale", "smoke", "--only", donor.run_id, "--only", run.run_id]
    kill_the_move_aside(monkeypatch, results / donor.run_id, after=0)
    with pytest.raises(Killed):
        main(both + ["--redo"])
    monkeypatch.undo()
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checkpointing_train")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    assert main(both) == 0
    out = capsys.readouterr().out
    assert out.count("done      ") == 2 and "pretraining of" not in out and "done already" not in out
    for redone_run in (donor, run):
        assert RunStore(results).final(redone_run.run_id)["resumed"] is False


@pytest.mark.parametrize("rerun", ["the same command", "a plain run"])
@pytest.mark.parametrize("killed_after", ["the folder is created", "the earlier status.json is copied into it"])
def test_a_redo_killed_as_it_makes_its_discarded_folder_leaves_no_stray_folder(redone, monkeypatch, capsys, rerun,
                                                                               killed_after):
    # Before: the folder was created, and the earlier status.json copied into it, before status.json named it; a kill
    # in between left the run untouched beside a discarded-* folder that nothing finished or removed (the next
    # --redo made a second one).
    results, donor, run, old = redone
    run_dir = results / run.run_id
    real_mkdir, real_write = Path.mkdir, store_module.atomic_write_bytes

    def mkdir(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if killed_after == "the folder is created" and self.name.startswith("discarded-"):
            raise Killed(f"killed after creating {self}")

    def write(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        if Path(path).parent.name.startswith("discarded-"):
            raise Killed(f"killed after writing {path}")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(store_module, "atomic_write_bytes", write)
    command = ["run", EXPERIMENT, "--scale", "smoke", "--only", run.run_id]
    with pytest.raises(Killed):
        main(command + ["--redo"])
    monkeypatch.undo()
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checkpointing_train")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    named = RunStore(results).discarding(run.run_id)
    assert all(folder.name == named for folder in run_dir.glob("discarded-*")), "a folder no mark names"
    assert main(command + (["--redo"] if rerun == "the same command" else [])) == 0, capsys.readouterr()
    assert_redone_and_nothing_lost(results, donor, run, old)

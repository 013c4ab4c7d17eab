"""The command line: `python -m registry ...` in real subprocesses for the main verbs, and `main(argv)` in
this process for the error paths (each subprocess pays torch's import once more)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fake_train import counting_train, failing_train
from registry import get_experiment, list_experiments
from registry.__main__ import main, select
from registry.launch import execute_run, redo_command
from registry.overrides import override_args, parse_overrides
from registry.store import RunStore

REPO = Path(__file__).resolve().parents[2]
VERBS = ("list", "show", "validate", "run", "status", "report", "sweep")


def cli(*args: str, results: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SIMCLR_RESULTS_DIR", None)
    if results is not None:
        env["SIMCLR_RESULTS_DIR"] = str(results)
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def run_main(monkeypatch, capsys, results: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0 and "usage: python -m registry " + verb in capsys.readouterr().out


def test_list_with_and_without_pattern():
    everything = cli("list").stdout
    assert all(name in everything for name in list_experiments())
    only = cli("list", "aug*").stdout.splitlines()
    assert len(only) == 1 and only[0].startswith("augment_pairs") and "49 runs" in only[0]


def test_validate_passes_and_runs_nothing(tmp_path):
    done = cli("validate", results=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "all valid" in done.stdout and "augment_pairs" in done.stdout
    assert not any(tmp_path.iterdir())


def test_dry_run_prints_the_plan_with_gpu_hours_and_writes_nothing(tmp_path):
    done = cli("run", "loss_variant", "--scale", "paper", "--dry-run", results=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sum(line.startswith("  loss_variant/") for line in done.stdout.splitlines()) == 5   # the plan's rows
    assert "GPU-hours" in done.stdout and "measured on one NVIDIA H200" in done.stdout
    assert not any(tmp_path.iterdir())


def test_a_plan_whose_cifar_stem_meets_large_views_says_what_it_costs_before_it_starts(tmp_path, monkeypatch,
                                                                                        capsys):
    """Experiments declared on CIFAR-10 set the CIFAR stem; given larger images on the command line they keep it."""
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "run", "temperature_norm", "--scale", "smoke",
                              "--dry-run", "data.image_size=96")
    assert code == 0, err
    assert out.splitlines()[1] == (
        "note: encoder.stem='cifar' (no downsampling) on 96 px views runs every stage at full resolution: 13-16x the "
        "compute and about 9x the activation memory of encoder.stem='imagenet', which encoder.stem=auto picks above "
        "64 px. "
        "Experiments declared on CIFAR-10 set the CIFAR stem; on larger images add encoder.stem=auto unless you "
        "mean it")
    for words in (("data.image_size=64",), ("data.image_size=96", "encoder.stem=auto")):
        code, out, err = run_main(monkeypatch, capsys, tmp_path, "run", "temperature_norm", "--scale", "smoke",
                                  "--dry-run", *words)
        assert code == 0 and "note:" not in out, err


def test_a_plan_on_a_resident_folder_of_small_images_assumes_their_size_not_224_px(tmp_path, monkeypatch, capsys):
    """A resident folder is decoded at its first image's size: a folder of CIFAR's 32 px images (a common way to
    keep them) was planned at 224 px, with a false CIFAR-stem note, 49x the time and 13x the memory."""
    import numpy as np
    from PIL import Image

    from registry.run_memory import estimate_run_memory

    for split in ("train", "test"):
        for label in range(2):
            folder = tmp_path / "folder" / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(20):
                Image.fromarray(np.full((32, 32, 3), 10 * i + label, np.uint8)).save(folder / f"{i}.png")
    words = ("data.dataset=imagefolder", f"data.data_dir={tmp_path / 'folder'}", "data.loader=resident",
             "data.train_limit=40", "data.test_limit=40")
    code, out, err = run_main(monkeypatch, capsys, tmp_path / "results", "run", "temperature_norm", "--scale",
                              "smoke", "--dry-run", *words)
    assert code == 0, err
    assert "note:" not in out and "est." in out
    experiment = get_experiment("temperature_norm")
    (folder_run, *_), (cifar_run, *_) = (experiment.runs("smoke", dict(w.split("=", 1) for w in words)),
                                          experiment.runs("smoke", {"data.image_size": 32}))
    assert estimate_run_memory(folder_run.config, "cpu").activations == \
        estimate_run_memory(cifar_run.config, "cpu").activations


def _png_folder(root, shade: int, classes: int = 2) -> str:
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(20):
                Image.fromarray(np.full((32, 32, 3), shade + 10 * i + label, np.uint8)).save(folder / f"{i}.png")
    return str(root)


def test_a_finished_run_of_another_image_folder_is_never_taken_for_this_ones(tmp_path, monkeypatch, capsys):
    """Run ids leave data.data_dir out, so an ablation run on a second folder of one's own was skipped as "done
    already", its table showing the first folder's numbers."""
    import shutil

    first, second = _png_folder(tmp_path / "first", 0), _png_folder(tmp_path / "second", 3, classes=3)
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))

    def run(folder: str, *more: str):
        return run_main(monkeypatch, capsys, tmp_path / "results", "run", "temperature_norm", "--scale", "smoke",
                        "--only", "normalize+0.1-*", "data.dataset=imagefolder", f"data.data_dir={folder}",
                        "data.loader=resident", "data.train_limit=none", "data.test_limit=none", *more)

    code, out, err = run(first)
    assert code == 0 and "summary: 1 done" in out, err
    (run_id,) = [line.split()[2] for line in out.splitlines() if line.startswith("[1/1]")]
    trained = RunStore(tmp_path / "results").final(run_id)
    assert len(trained["data_identity"]) == 16 and f"{first}" in trained["data_source"]
    code, out, err = run(second)
    assert code == 2 and err.splitlines()[-1] + "\n" == (
        f"error: {run_id} is done, but on other images (imagefolder {first} split 'train') than data.data_dir="
        f"{second} holds: run ids leave the data folder out (a path of one machine), so the runs of two imagefolder "
        "folders share them. Keep each dataset's runs in a results folder of its own (--results-dir DIR), or train "
        "them again on these images with --redo. No run was started.\n")
    shutil.copytree(first, tmp_path / "moved")                     # the same images elsewhere: the same runs
    code, out, err = run(str(tmp_path / "moved"))
    assert code == 0 and "summary: 1 skipped" in out, err
    code, out, err = run(second, "--redo")
    assert code == 0 and "summary: 1 done" in out, err
    assert RunStore(tmp_path / "results").final(run_id)["data_identity"] != trained["data_identity"]
    # a grid sweep's trials are the same runs: the first folder's sweep is refused before any trial
    code, out, err = run_main(monkeypatch, capsys, tmp_path / "results", "sweep", "temperature", "--scale", "smoke",
                              "--normalize", "true", "data.dataset=imagefolder", f"data.data_dir={first}",
                              "data.loader=resident", "data.train_limit=none", "data.test_limit=none")
    said = err.splitlines()[-1]       # after the progress bars of Hugging Face's first look at the folder, if any
    assert code == 2 and said.startswith(f"error: {run_id} is done, but on other images (imagefolder {second} split")
    assert said.endswith("(--results-dir DIR). No run was started.")


def test_a_tpe_sweep_never_takes_another_image_folders_trials_for_this_ones(tmp_path, monkeypatch, capsys):
    """TPE values are declared nowhere, so only the study (continued) or the run store (a new study asking the
    same seeded values) knows them: a sweep of a second folder reported the first folder's best as its own."""
    first, second = _png_folder(tmp_path / "first", 0), _png_folder(tmp_path / "second", 3, classes=3)
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))

    def sweep(folder: str, *more: str):
        return run_main(monkeypatch, capsys, tmp_path / "results", "sweep", "temperature", "--scale", "smoke",
                        "--normalize", "true", "--sampler", "tpe", "--trials", "1", *more,
                        "data.dataset=imagefolder", f"data.data_dir={folder}", "data.loader=resident",
                        "data.train_limit=none", "data.test_limit=none")

    code, out, err = sweep(first)
    assert code == 0 and "-> knn_top1=" in out and "(trained: " in out, err
    run_id = out.split("(trained: ")[1].split(")")[0]
    code, out, err = sweep(second)                         # the same study, continued on other images
    said = err.splitlines()[-1]
    assert code == 2 and said.startswith(f"error: {run_id} is done, but on other images (imagefolder {first} split")
    assert "trial" not in out
    code, out, err = sweep(second, "--storage", "journal")  # a new study: its first value is the first study's
    said = err.splitlines()[-1]
    assert code == 2 and said.startswith(f"error: {run_id} is done, but on other images (imagefolder {first} split")
    code, out, err = sweep(first, "--storage", "journal", "--retry-failed")   # that trial, on its own images
    assert code == 0 and f"(reused stored result: {run_id})" in out, err


def test_a_relative_data_folder_is_recorded_and_reported_as_the_folder_it_named(tmp_path, monkeypatch, capsys):
    """`data.data_dir=photos` was recorded as "photos": a resume, a --slurm job or the command a report prints for
    the run, given from another directory, read another folder (or none), and final.json did not say which."""
    import json

    _png_folder(tmp_path / "work" / "photos", 0)
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path / "work")
    assert parse_overrides(["data.data_dir=photos", "eval.transfer_data_dir=~/t", "data.dataset=photos"]) == {
        "data.data_dir": str(tmp_path / "work" / "photos"), "eval.transfer_data_dir": str(Path.home() / "t"),
        "data.dataset": "photos"}
    code, out, err = run_main(monkeypatch, capsys, tmp_path / "results", "run", "temperature_norm", "--scale",
                              "smoke", "--only", "normalize+0.1-*", "data.dataset=imagefolder", "data.data_dir=photos",
                              "data.loader=resident", "data.train_limit=none", "data.test_limit=none")
    assert code == 0 and "summary: 1 done" in out, err
    (run_dir,) = (tmp_path / "results" / "temperature_norm").iterdir()
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["config"]["data"]["data_dir"] == str(tmp_path / "work" / "photos"), recorded
    assert f"imagefolder {tmp_path / 'work' / 'photos'} split 'train'" == json.loads(
        (run_dir / "final.json").read_text())["data_source"]
    monkeypatch.chdir(tmp_path)                                         # the same runs, named from elsewhere
    code, out, err = run_main(monkeypatch, capsys, tmp_path / "results", "run", "temperature_norm", "--scale",
                              "smoke", "--only", "normalize+0.1-*", "data.dataset=imagefolder",
                              "data.data_dir=work/photos", "data.loader=resident", "data.train_limit=none",
                              "data.test_limit=none")
    assert code == 0 and "summary: 1 skipped" in out, err


def test_only_filters_and_overrides_may_follow_options(tmp_path, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "run", "augment_pairs", "--scale", "smoke",
                              "--dry-run", "--only", "crop*", "eval.knn_k=5")
    assert code == 0, err
    assert out.count("augment_pairs/crop+") == 7


def test_missing_data_stops_the_run_command_before_a_run_is_recorded_and_spares_done_runs(tmp_path, monkeypatch,
                                                                                           capsys):
    from registry import launch

    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checked_train")
    missing = ("run", "loss_variant", "--scale", "cpu", "data.data_dir=/data/missing")
    code, out, err = run_main(monkeypatch, capsys, tmp_path, *missing)
    assert code == 2 and "error: loss_variant/" in err and "no data in /data/missing" in err
    assert "No run was started." in err and not any(tmp_path.iterdir())
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "run", "loss_variant", "--scale", "cpu")
    assert code == 0 and "summary: 5 done" in out, err
    # data.data_dir is left out of run ids: these are the same runs, all done, so their data is not needed
    code, out, err = run_main(monkeypatch, capsys, tmp_path, *missing)
    assert code == 0 and "summary: 5 skipped" in out, err


def test_only_matches_a_label_a_whole_id_or_the_run_folder_name():
    runs = get_experiment("loss_variant").runs("smoke")
    wanted = runs[2]
    folder = wanted.run_id.rpartition("/")[2]                   # what `ls results/loss_variant` shows
    assert folder != wanted.run_id
    for pattern in (wanted.label, wanted.run_id, folder, wanted.hash, f"*{wanted.hash}"):
        assert select(runs, [pattern]) == [wanted], pattern


@pytest.mark.parametrize("args, message", [
    (("run", "augment_pair", "--dry-run"), "known experiments: augment_pairs, "),
    (("run", "augment_pair", "--dry-run"), "is unset); did you mean 'augment_pairs'?"),
    (("show", "my_own"), "(an experiment of your own is found through $SIMCLR_EXPERIMENTS_DIR, which is unset)"),
    (("run", "loss_variant", "loss.temprature=0.2"), "unknown config key 'loss.temprature'"),
    (("run", "loss_variant", "loss.temperature=hot"), "must be a number"),
    (("run", "loss_variant", "loss.temperature=nan", "--dry-run"), "loss.temperature='nan' must be a finite number"),
    (("run", "loss_variant", "epochs=inf", "--dry-run"), "epochs='inf' must be a finite number"),
    (("run", "loss_variant", "augment.crop_scale=0.2,nan", "--dry-run"), "augment.crop_scale=['0.2', 'nan']: every "
                                                                          "element must be a finite number"),
    (("run", "loss_variant", "--only", "zzz*"), "matches no run"),
    (("show", "nope"), "unknown experiment 'nope'"),
])
def test_bad_input_fails_before_anything_is_dispatched(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.delenv("SIMCLR_EXPERIMENTS_DIR", raising=False)
    code, _, err = run_main(monkeypatch, capsys, tmp_path, *args)
    assert code == 2 and message in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("verb, meant", [("rn", "'run'"), ("rnu", "'run'"), ("reprot", "'report'"), ("xyz", None)])
def test_a_mistyped_verb_names_the_verb_it_most_likely_meant(verb, meant, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb])
    err = capsys.readouterr().err.rstrip()
    assert exit_info.value.code == 2 and f"invalid choice: '{verb}' (choose from " in err
    assert err.endswith(f"; did you mean {meant}?") if meant else "did you mean" not in err


@pytest.mark.parametrize("verb", ["run", "status", "report"])
def test_a_mistyped_scale_names_the_scale_it_most_likely_meant(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--scale", "cpux"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith(
        "argument --scale: invalid choice: 'cpux' (choose from 'smoke', 'cpu', 'gpu', 'paper'); did you mean 'cpu'?")


@pytest.mark.parametrize("argv, line", [
    (["run", "temperature_norm", "--seeds", "0", "x"],
     "python -m registry run: error: argument --seeds: 'x' is not a seed; seeds are integers >= 0, e.g. --seeds 0 1 2"),
    (["status", "--scale", "smok"], "python -m registry status: error: argument --scale: invalid choice: "
     "'smok' (choose from 'smoke', 'cpu', 'gpu', 'paper'); did you mean 'smoke'?"),
    (["run", "temperature_norm", "--scale", "smoke", "loss.temperature"], "python -m registry: error: unrecognized "
     "arguments: loss.temperature (a config override is key=value, e.g. loss.temperature=VALUE)"),
    (["run", "temperature_norm", "--scale"], "python -m registry run: error: argument --scale: expected one argument; "
     "python -m registry run --help lists what it takes"),
    ([], "python -m registry: error: the following arguments are required: VERB; python -m registry --help lists "
     "what it takes"),
    # the overrides are optional: only the name is missing (argparse would say "name, key=value" are required)
    (["sweep"], "python -m registry sweep: error: missing the sweep name (SWEEP); python -m registry sweep --help "
     "lists what it takes"),
    (["show", "--scale", "smoke"], "python -m registry show: error: missing the experiment name (EXPERIMENT); "
     "python -m registry show --help lists what it takes"),
])
def test_a_command_line_mistake_is_one_line_not_the_usage_block(argv, line, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and capsys.readouterr().err == line + "\n"


def test_show_and_status_report_a_failed_run_with_its_traceback(tmp_path):
    runs = get_experiment("loss_variant").runs("smoke")
    assert execute_run(runs[0], tmp_path, counting_train).state == "done"
    failed = runs[1]
    assert execute_run(failed, tmp_path, failing_train).state == "failed"

    done = cli("show", "loss_variant", "--scale", "smoke", results=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if failed.run_id in line)
    assert "failed" in lines[row]
    assert "Traceback (most recent call last)" in lines[row + 1]
    assert any("RuntimeError: boom" in line for line in lines[row + 1:])
    assert "3 pending, 1 done, 1 failed (of 5)" in done.stdout

    status = cli("status", results=tmp_path).stdout.splitlines()
    header, row = status[0].split(), status[1].split()
    assert row[:2] == ["loss_variant", "smoke"]
    assert dict(zip(header[2:], map(int, row[2:]))) == {"pending": 0, "running": 0, "done": 1, "failed": 1,
                                                         "cancelled": 0, "corrupt": 0}
    assert status[2] == "failed: 1 of loss_variant at scale smoke; each one's traceback: python -m registry show " \
                        "loss_variant --scale smoke"
    assert cli("status", "loss_variant", "--scale", "smoke", results=tmp_path).stdout.splitlines() == status
    assert cli("status", "--scale", "cpu", results=tmp_path).stdout.strip() == f"no runs at scale cpu in {tmp_path}"
    assert cli("status", "temperature_norm", results=tmp_path).stdout.strip() == \
        f"no runs of temperature_norm in {tmp_path}"
    unknown = cli("status", "loss_varient", results=tmp_path)
    assert unknown.returncode == 2 and "experiment='loss_varient' is not valid" in unknown.stderr
    assert "'loss_variant'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_runs_made_with_overrides_are_shown_where_the_failure_message_points(tmp_path, monkeypatch, capsys):
    from registry import launch

    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:failing_train")
    code, out, err = run_main(monkeypatch, capsys, tmp_path, "run", "loss_variant", "--scale", "smoke", "--only",
                              "nt_xent*", "loss.temperature=0.25", "--seeds", "3")
    assert code == 1 and "summary: 1 failed" in out
    pointed = err.split("(")[-1].split(" prints the traceback")[0]
    assert pointed == "python -m registry show loss_variant --scale smoke loss.temperature=0.25 --seeds 3", err
    # The command it names lists the run, failed, with its traceback ...
    code, out, _ = run_main(monkeypatch, capsys, tmp_path, *pointed.split()[3:])
    failed = next(line for line in out.splitlines() if "nt_xent" in line)
    assert code == 0 and "failed" in failed and "RuntimeError: boom" in out and "also stored" not in out
    # ... and show without them lists it after the plan, with how it differs from the plan's run.
    code, out, _ = run_main(monkeypatch, capsys, tmp_path, "show", "loss_variant", "--scale", "smoke")
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  also stored at scale smoke"))
    assert "5 pending (of 5)" in lines[at - 1] and "failed" in lines[at + 1]
    assert "loss.temperature=0.25 (plan: 0.5)" in lines[at + 1] and "seed=3 (plan: 0)" in lines[at + 1]
    assert "RuntimeError: boom" in lines[at + 2] or "Traceback" in lines[at + 2]


def test_show_says_how_a_sweep_trial_at_an_undeclared_point_differs_from_the_plan(tmp_path, monkeypatch, capsys):
    # a TPE trial of temperature_norm at temperature 0.2, made with max_steps=5: no planned run has its point, but
    # the plan at that point (today's declaration) is what it differs from
    from registry.sweep_space import plan_studies

    plan = plan_studies("temperature", scale="smoke", sampler="tpe", splits=(True,), overrides={"max_steps": 5})[0]
    (trial,) = plan.runs_at(0.2)
    assert execute_run(trial, tmp_path, counting_train).state == "done"
    code, out, _ = run_main(monkeypatch, capsys, tmp_path, "show", "temperature_norm", "--scale", "smoke")
    (line,) = [line for line in out.splitlines() if trial.run_id in line]
    assert code == 0 and line.split()[1] == "done" and line.endswith("max_steps=5 (plan: 2)")


def test_a_tilde_in_a_results_folder_is_the_home_folder(tmp_path, monkeypatch, capsys):
    # bash leaves ~ as is in --results-dir=~/res, and a quoted setting (a .env file, a unit file) does too.
    from registry import launch

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIMCLR_RESULTS_DIR", raising=False)
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:counting_train")
    assert main(["run", "loss_variant", "--scale", "smoke", "--only", "nt_xent*", "--results-dir=~/res"]) == 0
    assert (home / "res" / "loss_variant").is_dir() and not (tmp_path / "~").exists()
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", "~/res")
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "loss_variant" in capsys.readouterr().out
    assert main(["sweep", "temperature", "--scale", "smoke", "--normalize", "true", "--trials", "1",
                 "--storage", "journal:~/study.journal"]) == 0
    assert (home / "study.journal").is_file() and not (tmp_path / "~").exists()
    assert main(["report", "--out=~/report", "loss_variant"]) == 0
    assert (home / "report" / "index.html").is_file() and not (tmp_path / "~").exists()


@pytest.mark.parametrize("word, message", [
    ("-1", "'-1' is not a seed; seeds are integers >= 0"),
    ("loss.temperature=0.2", "'loss.temperature=0.2' is not a seed: --seeds takes the words after it, so put "
                             "key=value overrides before it (... loss.temperature=0.2 --seeds 0 1 2)"),
])
def test_seeds_that_are_not_seeds_are_refused_saying_why(tmp_path, capsys, word, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "loss_variant", "--scale", "smoke", "--results-dir", str(tmp_path), "--seeds", "0", word])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_commands_printed_about_a_run_name_its_overrides():
    run = get_experiment("loss_variant").runs("smoke", {"loss.temperature": "0.25", "augment.crop_scale": "0.2,1",
                                                        "max_steps": None})[0]
    command = redo_command(run)
    assert command.endswith(" --redo loss.temperature=0.25 augment.crop_scale=0.2,1 max_steps=none")
    words = shlex.split(command)
    again = get_experiment("loss_variant").runs("smoke", parse_overrides(words[words.index("--redo") + 1:]))
    assert again[0].run_id == run.run_id
    assert override_args({"augment.ops": ("crop", "color"), "x": True, "y": 0.1}) == \
        " augment.ops=crop,color x=true y=0.1"
    assert override_args({"name": "a b"}) == " 'name=a b'"


@pytest.mark.slow
def test_real_smoke_run_in_two_processes_then_skips_when_run_again(tmp_path):
    from registry import load_results

    args = ("run", "augment_pairs", "--scale", "smoke", "--only", "crop*", "--max-parallel", "2")
    first = cli(*args, results=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "summary: 7 done" in first.stdout
    again = cli(*args, results=tmp_path)
    assert again.returncode == 0 and "summary: 7 skipped" in again.stdout
    frame = load_results(tmp_path)
    knn = frame[frame.metric == "knn_top1"]
    assert len(knn) == 7 and knn["axis.first"].eq("crop").all() and knn.value.between(0, 100).all()
    assert set(knn["scale"]) == {"smoke"} and (knn["max_steps"] == 2).all()



# The registry CLI in one process, and a pool's worker process (the worker resolves its training function by name).
_WARNING_SCRIPTS = {
    "cli": "from registry import launch; launch.DEFAULT_TRAIN_FN = 'fake_train:warning_train'\n"
           "from registry.__main__ import main\n"
           "sys.exit(main(['run', 'temperature_norm', '--scale', 'smoke', '--only', 'normalize+0.1*']))",
    "pool worker": "from registry.declare import Run; from registry.launch import LocalExecutor\n"
                   "from simclr_core.config import RunConfig\n"
                   "runs = [Run('toy/s1-000000000001', 'toy', 'smoke', {'seed': 1}, RunConfig(seed=1))]\n"
                   "LocalExecutor(max_parallel=2, train_fn='fake_train:warning_train').dispatch(runs, sys.argv[2])",
}


@pytest.mark.parametrize("where", sorted(_WARNING_SCRIPTS))
def test_a_warning_during_a_run_prints_as_one_line_without_the_code_that_raised_it(tmp_path, where):
    script = "import sys; sys.path.insert(0, sys.argv[1])\n" + _WARNING_SCRIPTS[where]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_RESULTS_DIR": str(tmp_path)}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-c", script, str(REPO / "tests" / "registry"), str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmp_path.rglob("executions.log")), "the warning training function did not run"
    warned = [line for line in done.stderr.splitlines() if "unreadable image" in line]
    assert len(warned) == 1, done.stderr
    assert warned[0].startswith("warning: skipping an unreadable image: /data/")
    assert warned[0].endswith(".jpg (OSError: Truncated File Read)")
    assert "warnings.warn(" not in done.stderr and "fake_train.py" not in done.stderr


def test_ctrl_c_while_the_declarations_load_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "slow_to_load.py").write_text("raise KeyboardInterrupt  # as Ctrl-C while a user's file imports\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_EXPERIMENTS_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "registry", "list"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "interrupted before anything started"


def test_the_plan_says_run_refuses_a_batch_larger_than_the_folder_it_trains_on(monkeypatch, capsys, tmp_path):
    # Before: the paper scale's batch of 4096 on a folder of 40 images was planned as "100 epochs, 1 step, 8,192
    # views, 3 s", with nothing saying that `run` refuses every such run.
    folder = _png_folder(tmp_path / "folder", shade=0)
    code, out, err = run_main(monkeypatch, capsys, tmp_path / "results", "run", "temperature_norm", "--scale", "paper",
                              "--dry-run", "data.dataset=imagefolder", f"data.data_dir={folder}")
    assert code == 0, err
    assert ("  6 of the 6 runs: batch_size=4096 exceeds the 40 training images of 'imagefolder', so no step can be "
            "made and `run` refuses them (choose batch_size <= 40)") in out, out
    code, out, err = run_main(monkeypatch, capsys, tmp_path / "results", "run", "temperature_norm", "--scale", "paper",
                              "--dry-run", "data.dataset=imagefolder", f"data.data_dir={folder}", "batch_size=40")
    assert code == 0 and "exceeds" not in out, out

"""A user's own ablations outside the package ($SIMCLR_EXPERIMENTS_DIR): listed, run, reported like the package's,
and bad declarations refused with one line naming the file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

OWN = '''"""Does a smaller temperature help at batch 32? Question: kNN top-1 at temperature 0.2 against 0.5."""
from registry import Experiment, grid

EXPERIMENT = Experiment(
    name="my_temperature", title="My temperature check",
    base={"optim.lr_scaling": "sqrt"},
    axes=grid(loss__temperature=(0.2, 0.5)),
    metric="knn_top1",
)
'''


OWN_SWEEP = '''from registry import Sweep

SWEEPS = (
    Sweep(name="my_temperature_search", experiment="my_temperature", axis="loss.temperature",
          ranges={None: (0.05, 2.0)}, summary="my temperatures, and TPE around them"),
)
'''


OWN_SCALE = '''from experiments.base import cifar10_base
from registry import Scale

SCALES = (
    Scale(name="tiny", summary="smoke with 64 training images", base=cifar10_base,
          defaults={"data.dataset": "cifar10_subset", "encoder.name": "resnet18"}, batch_size_factor=1 / 64,
          width_factor=0.25, fixed={"max_steps": 1, "data.train_limit": 64, "data.test_limit": 100,
                                   "eval.protocols": ("knn",), "eval.knn_k": 5, "precision": "no"}),
)
'''


def registry(*args: str, folders: list[Path], results: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_RESULTS_DIR": str(results),
           "SIMCLR_EXPERIMENTS_DIR": os.pathsep.join(map(str, folders))}
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


# `python -m registry` as `pip install -e .` (which `make` does) runs it: the packages are found by a finder of their
# own, after the search of sys.path, whose first entry `python -m` makes the current directory.
EDITABLE_INSTALL = f"""
import importlib.machinery, runpy, sys

class Editable:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if path is None and name in ("simclr_core", "registry", "experiments", "reports"):
            return importlib.machinery.PathFinder.find_spec(name, [{str(REPO)!r}])

sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder) + 1, Editable)
runpy.run_module("registry", run_name="__main__", alter_sys=True)
"""


def registry_installed(*args: str, cwd: Path, folders: list[Path] = ()) -> subprocess.CompletedProcess:
    """`python -m registry ARGS` typed in `cwd`, the harness installed with `pip install -e .`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SIMCLR_EXPERIMENTS_DIR")}
    if folders:
        env["SIMCLR_EXPERIMENTS_DIR"] = os.pathsep.join(map(str, folders))
    return subprocess.run([sys.executable, "-c", EDITABLE_INSTALL, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def own_folder(tmp_path: Path, **files: str) -> Path:
    """tmp_path/ablations holding `<name>.py` with each text of `files`."""
    own = tmp_path / "ablations"
    own.mkdir()
    for name, text in files.items():
        (own / f"{name}.py").write_text(text)
    return own


def test_a_folder_of_ones_own_is_listed_beside_the_package(tmp_path):
    own = tmp_path / "my project" / "ablations"
    own.mkdir(parents=True)
    (own / "my_temperature.py").write_text(OWN.replace('base={"optim.lr_scaling": "sqrt"}', "base=BASE")
                                           .replace("import Experiment, grid", "import Experiment, grid\n"
                                                    "from _shared import BASE   # a helper beside it"))
    (own / "_shared.py").write_text('BASE = {"optim.lr_scaling": "sqrt"}\n')
    (own / "_helpers.py").write_text("raise RuntimeError('a helper is not a declaration')\n")
    listed = registry("list", folders=[own], results=tmp_path / "results", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("my_temperature ") and "My temperature check" in line
               for line in listed.stdout.splitlines())
    assert any(line.startswith("temperature_norm ") for line in listed.stdout.splitlines())
    shown = registry("show", "my_temperature", "--scale", "smoke", folders=[own], results=tmp_path / "results",
                     cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "my_temperature/0.2-" in shown.stdout and "my_temperature/0.5-" in shown.stdout
    assert "deviations from the paper: none declared" in shown.stdout     # not an empty heading


def test_show_lists_deviations_declared_as_a_list_with_those_of_the_settings(tmp_path):
    """The declaration accepts deviations as a list; `show` added the settings' deviations (a tuple) to it and
    stopped with a TypeError."""
    from registry.deviations import LINEAR_ON_FEATURES

    own = own_folder(tmp_path, my_temperature=OWN.replace('metric="knn_top1",',
                                                          'metric="knn_top1", deviations=["fewer epochs"],'))
    shown = registry("show", "my_temperature", "--scale", "cpu", folders=[own], results=tmp_path / "results",
                     cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"deviations from the paper:\n    - fewer epochs\n    - {LINEAR_ON_FEATURES}\n" in shown.stdout


@pytest.mark.parametrize("layout", ["empty", "a package of ones own"])
def test_a_folder_named_experiments_where_the_command_is_typed_hides_none_of_the_packages(tmp_path, layout):
    (tmp_path / "experiments").mkdir()
    if layout != "empty":
        (tmp_path / "experiments" / "__init__.py").write_text("")
        (tmp_path / "experiments" / "base.py").write_text("BASE = {}\n")
    listed = registry_installed("list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("temperature_norm ") for line in listed.stdout.splitlines()), listed.stdout
    shown = registry_installed("show", "temperature_norm", "--scale", "smoke", "--results-dir", "results",
                               cwd=tmp_path)
    assert shown.returncode == 0 and "temperature_norm/" in shown.stdout, shown.stderr
    scales = registry_installed("scales", cwd=tmp_path)
    assert scales.returncode == 0 and "temperature_norm: " in scales.stdout, scales.stderr


def test_ones_own_folder_named_experiments_is_declared_once(tmp_path):
    own = tmp_path / "experiments"          # typed in its parent: first on sys.path
    own.mkdir()
    (own / "my_temperature.py").write_text(OWN)
    (own / "my_scales.py").write_text(OWN_SCALE)           # imports the package's experiments.base
    listed = registry_installed("list", cwd=tmp_path, folders=[own])
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"my_temperature", "temperature_norm"} <= names, listed.stdout
    scales = registry_installed("scales", cwd=tmp_path, folders=[own])
    assert scales.returncode == 0 and "\ntiny\n" in scales.stdout, scales.stderr


def test_scales_without_any_experiment_still_describes_them(monkeypatch, capsys):
    from registry import plan
    from registry.__main__ import main

    monkeypatch.setattr(plan, "list_experiments", lambda: [])
    assert main(["scales"]) == 0
    out = capsys.readouterr().out
    assert "\nsmoke\n" in out and "hours     no experiment is declared" in out


@pytest.mark.slow
def test_ones_own_ablation_runs_and_is_reported(tmp_path):
    own = own_folder(tmp_path, my_temperature=OWN)
    results = tmp_path / "results"
    ran = registry("run", "my_temperature", "--scale", "smoke", folders=[own], results=results, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "summary: 2 done" in ran.stdout
    finals = sorted(results.glob("my_temperature/*/final.json"))
    assert len(finals) == 2 and all("knn_top1" in json.loads(f.read_text()) for f in finals)
    reported = registry("report", "my_temperature", "--scale", "smoke", folders=[own], results=results, cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert reported.stdout.splitlines()[1].startswith("my_temperature  smoke  2 of 2 runs done"), reported.stdout
    assert (results / "report" / "my_temperature_smoke.png").is_file()


def test_ones_own_sweep_searches_ones_own_experiment(tmp_path):
    own = own_folder(tmp_path, my_temperature=OWN, my_sweeps=OWN_SWEEP)     # a file may declare sweeps only
    results = tmp_path / "results"
    valid = registry("validate", folders=[own], results=results, cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert "ok   sweep my_temperature_search" in valid.stdout and "ok   sweep temperature " in valid.stdout
    helped = registry("sweep", "--help", folders=[own], results=results, cwd=tmp_path)
    assert "my_temperature_search (my temperatures, and TPE around them)" in " ".join(helped.stdout.split())
    swept = registry("sweep", "my_temperature_search", "--scale", "smoke", folders=[own], results=results,
                     cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert "sampler grid, scale smoke, objective knn_top1; target 2 trials" in swept.stdout
    assert len(list(results.glob("my_temperature/*/final.json"))) == 2
    summary = json.loads(next((results / "optuna").glob("my_temperature-*.json")).read_text())
    assert summary["counts"]["COMPLETE"] == 2 and summary["metric"] == "knn_top1"


def test_ones_own_scale_runs_ones_own_and_the_packages_experiments(tmp_path):
    own = own_folder(tmp_path, my_temperature=OWN, my_scales=OWN_SCALE)     # a file may declare scales only
    results = tmp_path / "results"
    scales = registry("scales", folders=[own], results=results, cwd=tmp_path)
    assert scales.returncode == 0, scales.stderr
    assert "\ntiny\n" in scales.stdout and "64 training / 100 test images" in scales.stdout
    for experiment in ("my_temperature", "loss_variant"):
        ran = registry("run", experiment, "--scale", "tiny", "--only", "*0.2*", "--only", "nt_xent*",
                       folders=[own], results=results, cwd=tmp_path)
        assert ran.returncode == 0 and "summary: 1 done" in ran.stdout, ran.stderr[-3000:]
    status = registry("status", "--scale", "tiny", folders=[own], results=results, cwd=tmp_path)
    assert status.returncode == 0 and status.stdout.count(" tiny ") == 2, status.stdout + status.stderr
    valid = registry("validate", folders=[own], results=results, cwd=tmp_path)
    assert valid.returncode == 0 and "5 scales: all valid" in valid.stdout, valid.stdout + valid.stderr


OWN_PUBLISHED = '''"""Table 5's l2-normalised temperatures at sqrt lr scaling, beside the paper's."""
from registry import Experiment, Published, grid

EXPERIMENT = Experiment(
    name="my_table5", title="My Table 5 check", base={"optim.lr_scaling": "sqrt"},
    axes=grid(loss__normalize=(True,), loss__temperature=(0.1, 0.5, 1.0)),
    metric="linear_top1", deviations=("CIFAR-10, sqrt lr scaling",),
    published=Published("my_table.csv", columns={"l2_norm": "loss.normalize", "temperature": "loss.temperature"}),
)
'''
MY_TABLE = "l2_norm,temperature,metric,value,value_type,source\n" + "".join(
    f"yes,{t},linear_top1,{v},exact,Table 5\n" for t, v in ((0.1, 64.4), (0.5, 60.7), (1, 58.0)))


def test_ones_own_published_table_lies_beside_the_declaration_and_a_missing_one_is_one_line(tmp_path,
                                                                                           monkeypatch):
    own = own_folder(tmp_path, my_table5=OWN_PUBLISHED)
    results = tmp_path / "results"
    missing = registry("validate", folders=[own], results=results, cwd=tmp_path)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert (f"error: my_table5: published table 'my_table.csv' not found (looked in {own}, " in missing.stderr
            and "Traceback" not in missing.stderr and "unexpected" not in missing.stderr), missing.stderr
    assert "FAIL my_table5" in missing.stdout and "temperature_norm" in missing.stdout
    (own / "my_table.csv").write_text(MY_TABLE)
    elsewhere = tmp_path / "elsewhere"      # a folder of $SIMCLR_PUBLISHED_DIR adds to the package's
    elsewhere.mkdir()
    monkeypatch.setenv("SIMCLR_PUBLISHED_DIR", str(elsewhere))
    valid = registry("validate", folders=[own], results=results, cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "3/3 cells in my_table.csv" in valid.stdout and "cells in table5_temperature_l2norm.csv" in valid.stdout


def test_a_failure_in_ones_own_report_function_is_not_called_a_bug_of_ours(tmp_path):
    own = own_folder(tmp_path, my_temperature=OWN + (
        "\nfrom reports.artefacts import artefact\n\n\n"
        "@artefact('my_temperature', 'my_temperature')\n"
        "def build(ours, published):\n"
        "    raise KeyError('a column I misspelt')\n"))
    line = (own / "my_temperature.py").read_text().splitlines().index("    raise KeyError('a column I misspelt')") + 1
    reported = registry("report", "my_temperature", folders=[own], results=tmp_path / "results", cwd=tmp_path)
    assert reported.returncode == 1, reported.stdout + reported.stderr
    assert "error: KeyError: 'a column I misspelt'" in reported.stderr
    assert f"raised in your own code at {own / 'my_temperature.py'}:{line}; the traceback is in " in reported.stderr
    assert "bug report" not in reported.stderr and "Traceback" not in reported.stderr


@pytest.mark.parametrize("case", ["missing folder", "syntax error", "error at run time", "no EXPERIMENT",
                                  "EXPERIMENT not an Experiment",
                                  "declared twice", "an artefact of another", "bad axis",
                                  "sweep declared twice", "sweep of no experiment", "scale declared twice",
                                  "helpers share a name"])
def test_a_bad_declaration_is_one_line_naming_the_file(tmp_path, case):
    own = own_folder(tmp_path)
    file = own / "mine.py"
    folders = [own]
    if case == "missing folder":
        folders = [own, tmp_path / "typo"]
        setting = os.pathsep.join(map(str, folders))
        expected = f"$SIMCLR_EXPERIMENTS_DIR={setting!r}: {tmp_path / 'typo'} is not a folder"
    elif case == "syntax error":
        file.write_text("EXPERIMENT = Experiment(name='x'\n")
        expected = f"{file}: SyntaxError: "
    elif case == "error at run time":     # which of its lines raised it, as a syntax error's message says
        file.write_text('"""Question: nothing."""\nTEMPERATURES = (0.1, 0.5)\nPICKED = TEMPERATURES[2]\n')
        expected = f"{file}: IndexError: tuple index out of range (line 3: PICKED = TEMPERATURES[2])"
    elif case == "no EXPERIMENT":
        file.write_text('"""Question: nothing."""\n')
        expected = f"{file} defines no EXPERIMENT = Experiment(...) or SWEEPS = (...) or SCALES = (...)"
    elif case == "EXPERIMENT not an Experiment":
        file.write_text('"""Question: nothing."""\nEXPERIMENT = {"name": "mine"}\n')
        expected = f"{file}: EXPERIMENT is {{'name': 'mine'}}, not an Experiment(...)"
    elif case == "sweep declared twice":
        file.write_text(OWN_SWEEP.replace('"my_temperature_search"', '"temperature"'))
        expected = f"sweep 'temperature' is declared twice: in experiments.sweeps.SWEEPS and in {file} (SWEEPS)"
    elif case == "helpers share a name":
        other = tmp_path / "other project"
        other.mkdir()
        folders = [own, other]
        for folder in folders:
            (folder / "_shared.py").write_text("BASE = {}\n")
        expected = (f"{own / '_shared.py'} and {other / '_shared.py'} share the name '_shared'; the declarations of "
                    "both folders would import the first: rename one")
    elif case == "scale declared twice":
        file.write_text(OWN_SCALE.replace('name="tiny"', 'name="smoke"'))
        expected = f"scale 'smoke' is declared twice: in experiments.scales.SCALES and in {file} (SCALES)"
    elif case == "sweep of no experiment":
        file.write_text(OWN_SWEEP)
        expected = "sweep my_temperature_search: unknown experiment 'my_temperature'"
    elif case == "an artefact of another":       # named as Table 5's artefact: no report would show its runs
        file.write_text(OWN.replace('"my_temperature"', '"tab5"'))
        expected = (f"{file}: experiment 'tab5' reports as artefact 'tab5', as experiment 'temperature_norm' (in "
                    "experiments.temperature_norm) does: no report would show its runs; rename it, or give it "
                    "artefact='tab5_own'")
    elif case == "declared twice":
        file.write_text(OWN.replace('"my_temperature"', '"temperature_norm"'))
        expected = f"experiment 'temperature_norm' is declared twice: in experiments.temperature_norm and in {file}"
    else:
        file.write_text(OWN.replace("loss__temperature", "loss__temprature"))
        expected = f"{file}: "
    verb = "validate" if case.startswith("sweep") else "list"
    listed = registry(verb, folders=folders, results=tmp_path / "results", cwd=tmp_path)
    assert listed.returncode in ((1, 2) if verb == "validate" else (2,)), listed.stdout + listed.stderr
    assert expected in listed.stderr, listed.stderr
    assert "Traceback" not in listed.stderr and len(listed.stderr.strip().splitlines()) <= 2, listed.stderr

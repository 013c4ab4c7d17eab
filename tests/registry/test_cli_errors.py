"""Bad input to `python -m registry sweep` in real subprocesses: one `error:` line naming the bad URL or file and
what to do, exit code 2, no traceback, nothing trained, and a damaged study file left exactly as it was."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.sweep_space import plan_studies

REPO = Path(__file__).resolve().parents[2]


def sweep(results: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SIMCLR_RESULTS_DIR", None)
    return subprocess.run([sys.executable, "-m", "registry", "sweep", "temperature", "--scale", "smoke",
                           "--results-dir", str(results), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def assert_refused(done: subprocess.CompletedProcess, *names: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: "), done.stderr
    for name in names:
        assert name in done.stderr, done.stderr


def no_driver(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is not None, reason=f"{module} is installed")


def postgresql_driver() -> str:
    """SQLAlchemy's default driver for postgresql:// URLs: psycopg from SQLAlchemy 2.1 on, psycopg2 before."""
    from sqlalchemy.engine import make_url

    return make_url("postgresql://").get_dialect().driver


PG = postgresql_driver()
PG_PACKAGE = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary"}[PG]


@pytest.mark.parametrize("storage, names", [
    ("foo://x", ["'foo://'", "sqlite:///", "journal", "postgresql://", f"pip install {PG_PACKAGE}"]),
    pytest.param("postgresql://u@localhost/db", ["postgresql://u@localhost/db", f"'{PG}'", f"pip install {PG_PACKAGE}"],
                 marks=no_driver(PG)),
    pytest.param("mysql+pymysql://u:secret@localhost/db", ["mysql+pymysql://u:***@localhost/db", "pip install PyMySQL"],
                 marks=no_driver("pymysql")),
])
def test_a_bad_storage_url_names_it_and_the_valid_forms(tmp_path, storage, names):
    results = tmp_path / "results"
    done = sweep(results, "--storage", storage)
    assert_refused(done, *names)
    assert "secret" not in done.stderr
    assert not results.exists()


def study_file(results: Path, normalize: bool, suffix: str) -> Path:
    plan = plan_studies("temperature", scale="smoke", splits=(normalize,))[0]
    return results / "optuna" / f"{plan.study_name}{suffix}"


@pytest.mark.parametrize("suffix, args, garbage, kind", [
    (".db", (), b"\x00\x13garbage, not SQLite" * 40, "database"),
    (".journal", ("--storage", "journal"), b"\x00\xffgarbage\nmore garbage", "journal"),
])
def test_a_corrupt_study_file_is_named_and_left_untouched(tmp_path, suffix, args, garbage, kind):
    # The second study's file (normalize false): refused before the first study's trials run.
    results = tmp_path / "results"
    damaged = study_file(results, False, suffix)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(garbage)
    done = sweep(results, *args)
    assert_refused(done, str(damaged), f"is not a valid Optuna study {kind}", "Move it aside", "--storage")
    assert damaged.read_bytes() == garbage
    assert sorted(p.name for p in results.rglob("*")) == ["optuna", damaged.name]     # no run, no other study


@pytest.mark.parametrize("form", ["journal://{}/study.journal", "sqlite:///{}/study.db"])
def test_a_study_file_below_a_file_is_refused_naming_both(tmp_path, form):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n")
    results = tmp_path / "results"
    done = sweep(results, "--storage", form.format(notes))
    assert_refused(done, f"{notes}/study.", f"would lie below {notes}, which is a file")
    assert notes.read_text() == "keep me\n" and not results.exists()


SECOND_CTRL_C = """
import atexit, os, signal, sys, time
from registry import __main__ as cli

def interrupted(args):
    raise KeyboardInterrupt

def second_ctrl_c_while_exiting():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)

if sys.argv[1] == "sweep":
    cli.sweep_verb.run_sweep = lambda *args, **kwargs: interrupted(None)
else:
    cli.cmd_status = interrupted
atexit.register(second_ctrl_c_while_exiting)
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("verb", [["status"], ["sweep", "temperature", "--scale", "smoke", "--trials", "1"]])
def test_a_second_ctrl_c_while_an_interrupted_command_exits_prints_no_traceback(tmp_path, verb):
    # Pressed again while the interpreter shut down, Ctrl-C printed "Exception ignored in ... Traceback ...
    # KeyboardInterrupt" under the "interrupted: ..." line (from tqdm's or torch's finalisers).
    done = subprocess.run([sys.executable, "-c", SECOND_CTRL_C, *verb], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 130, done.stderr
    said = done.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("interrupted: "), said

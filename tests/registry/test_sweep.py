"""The Optuna sweep: trials are registry runs (stable ids, reuse), the grid is Table 5's, studies resume after a
kill, journal storage, the asynchronous (SLURM-style) path, bad input refused before anything runs, and one
real smoke trial through the command line."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fake_train import write_fake_checkpoint, write_fake_final
from registry import get_experiment, load_results
from registry.__main__ import main
from registry.launch import Executor, LocalExecutor, Outcome, execute_run
from registry.scales import SCALES
from registry.store import RunStore
from registry.sweep import _print_table, run_sweep
from registry.sweep_space import SAMPLERS, SWEEPS, Sweep, plan_studies, round_significant
from registry.sweep_study import STALE_AFTER_S, open_storage, orphan_reason, storage_url
from registry.sweep_summary import load_sweeps
from simclr_core.validation import ConfigError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TABLE5 = {True: [0.05, 0.1, 0.5, 1.0], False: [10.0, 100.0]}
optuna.logging.set_verbosity(optuna.logging.WARNING)


def temperature_train(cfg, run_dir) -> dict:
    """The train() contract with a known optimum: metrics peak at temperature 0.2 (log-distance).

    Logs each execution, leaves a checkpoint (so a re-run counts as a resume), sleeps $SWEEP_FAKE_SLEEP."""
    run_dir = Path(run_dir)
    resumed = (run_dir / "checkpoint.pt").exists()
    with open(run_dir / "executions.log", "a") as f:
        f.write(f"{os.getpid()} resumed={resumed}\n")
    write_fake_checkpoint(run_dir / "checkpoint.pt", b"step 1")
    time.sleep(float(os.environ.get("SWEEP_FAKE_SLEEP", "0")))
    if cfg.loss.temperature == float(os.environ.get("SWEEP_FAKE_FAIL_AT", "nan")):
        raise RuntimeError(f"boom at temperature {cfg.loss.temperature}")
    score = 50.0 - 10.0 * abs(math.log10(cfg.loss.temperature / 0.2))
    metrics = {"knn_top1": score, "linear_top1": score + 10.0}
    write_fake_final(run_dir, metrics)
    return metrics


def executions(results: Path) -> dict[str, list[str]]:
    """run label -> lines of its executions.log."""
    return {p.parent.name.rpartition("-")[0]: p.read_text().splitlines()
            for p in results.glob("temperature_norm/*/executions.log")}


def load_study(results: Path, summary: dict) -> optuna.Study:
    return optuna.load_study(study_name=summary["study"], storage=open_storage(summary["storage"]))


def complete_values(study: optuna.Study) -> list[float]:
    return sorted(t.params["loss.temperature"] for t in study.trials if t.state == TrialState.COMPLETE)


# ---- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"name": "temprature"}, "unknown sweep 'temprature'; known sweeps: temperature"),
    ({"name": "temprature"}, "; did you mean 'temperature'?"),
    ({"trials": 0}, "--trials=0 is out of range"),
    ({"sampler": "random"}, "--sampler='random' is not valid; choose one of: 'grid', 'tpe'"),
    ({"normalize": "maybe"}, "--normalize='maybe' is not valid; choose one of: 'true', 'false', 'both'"),
    ({"storage": "mongo"}, "--storage='mongo' is not valid; choose one of: 'sqlite'"),
    ({"storage": "foo://x"}, "--storage foo://x: unknown storage scheme 'foo://'; valid forms: 'sqlite'"),
    ({"storage": "runs/t.db"}, "(for the file runs/t.db: sqlite:///"),
    ({"scale": "huge"}, "--scale='huge' is not valid; choose one of: 'smoke', 'cpu', 'gpu', 'paper'"),
    ({"trials": 5, "normalize": "true"}, "--trials 5 exceeds the 4 grid values"),
    ({"overrides": {"loss.temperature": 0.3}}, "would fix what sweep 'temperature' searches"),
    ({"overrides": {"loss.temprature": 0.3}}, "unknown config key 'loss.temprature'"),
    ({"max_parallel": 0}, "--max-parallel=0 is out of range"),
])
def test_bad_input_fails_before_anything_runs(results, kwargs, message):
    def must_not_train(cfg, run_dir):
        raise AssertionError("trained despite bad input")

    kwargs = {"name": "temperature", "scale": "smoke", **kwargs}
    with pytest.raises(ConfigError) as error:
        run_sweep(results_dir=str(results), train_fn=must_not_train, report=lambda line: None, **kwargs)
    assert message in str(error.value)
    assert not results.exists()


def test_sqlite_files_that_are_not_study_databases_are_refused_untouched(results, tmp_path):
    import sqlite3

    other = tmp_path / "notes.db"
    with closing(sqlite3.connect(other)) as db, db:
        db.execute("CREATE TABLE notes (text)")
    broken = tmp_path / "broken.db"                # an SQLite header, then damaged pages
    run_sweep("temperature", scale="smoke", normalize="true", trials=1, storage=f"sqlite:///{broken}",
              results_dir=str(results), train_fn=temperature_train, report=lambda line: None)
    data = broken.read_bytes()
    broken.write_bytes(data[:100] + bytes(len(data) - 100))
    for path, detail in ((other, "an SQLite database of other tables: notes"), (broken, "malformed")):
        before = path.read_bytes()
        with pytest.raises(ConfigError, match="not a valid Optuna study database") as error:
            run_sweep("temperature", scale="smoke", normalize="true", storage=f"sqlite:///{path}",
                      results_dir=str(results), train_fn=temperature_train, report=lambda line: None)
        assert str(path) in str(error.value) and detail in str(error.value)
        assert path.read_bytes() == before


def test_cli_reports_bad_input_with_exit_code_2(results, capsys):
    code = main(["sweep", "lr", "--results-dir", str(results)])
    assert code == 2 and "unknown sweep 'lr'; known sweeps: temperature" in capsys.readouterr().err
    # An override after the options is the sweep's, as it is run's: here a bad value, refused as such.
    code = main(["sweep", "temperature", "--scale", "smoke", "--results-dir", str(results), "eval.knn_k=many"])
    err = capsys.readouterr().err
    assert code == 2 and "eval.knn_k='many' must be an integer" in err and "unrecognized" not in err, err
    assert not results.exists()


# ---- the registry of sweeps -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SWEEPS))
@pytest.mark.parametrize("scale", list(SCALES))
def test_every_sweep_plans_at_every_scale(name, scale):
    for sampler in ("grid", "tpe"):
        plans = plan_studies(name, scale=scale, sampler=sampler)
        assert len({p.study_name for p in plans}) == len(plans) == len(SWEEPS[name].ranges)
        for plan in plans:
            assert all(plan.low <= v <= plan.high for v in plan.grid), "grid values must lie in the TPE range"
            assert plan.metric == ("knn_top1" if scale == "smoke" else plan.experiment.metric)
            assert plan.study_name.startswith(f"{plan.experiment.name}-") and len(plan.study_hash()) == 8


@pytest.mark.parametrize("changes, message", [
    ({"ranges": {None: (0.0, 1.0)}},
     "the range for None is (0.0, 1.0); a log-uniform range is (low, high) with 0 < low"),
    ({"ranges": {None: (2.0, 1.0)}}, "the range for None is (2.0, 1.0)"),
    ({"ranges": {None: (0.1, float("inf"))}}, "the range for None is (0.1, inf)"),
    ({"ranges": {None: (0.1,)}}, "the range for None is (0.1,)"),
    ({"ranges": {}}, "ranges is empty"),
    ({"ranges": {True: (0.1, 1.0)}}, "ranges are keyed by [True], values of a split axis, but split_axis is not set"),
    ({"split_axis": "loss.normalize"}, "split_axis='loss.normalize' needs ranges keyed by its values"),
    ({"significant_digits": 0}, "significant_digits=0 must be a whole number >= 1"),
])
def test_a_sweep_declaration_is_checked_when_it_is_made(changes, message):
    # A user's own sweep (a file of $SIMCLR_EXPERIMENTS_DIR) must fail when declared, naming itself, not with
    # Optuna's ValueError in the middle of a study.
    fields = dict(name="mine", experiment="temperature_norm", axis="loss.temperature", ranges={None: (0.1, 1.0)},
                  summary="a test")
    with pytest.raises(ConfigError) as refused:
        Sweep(**{**fields, **changes})
    assert str(refused.value).startswith("sweep 'mine': ") and message in str(refused.value)


def test_a_sweep_must_say_what_becomes_of_each_axis_of_its_experiment(monkeypatch):
    partial = Sweep(name="mine", experiment="temperature_norm", axis="loss.temperature", ranges={None: (0.1, 1.0)},
                    summary="loss.normalize left out")
    monkeypatch.setitem(SWEEPS._load(), "mine", partial)
    with pytest.raises(ConfigError, match=r"sweep 'mine': experiment 'temperature_norm' also varies "
                                          r"\['loss.normalize'\]; .* hold it \(fixed=\{'loss.normalize': ...\}\)"):
        plan_studies("mine", scale="smoke", sampler="tpe")
    monkeypatch.setitem(SWEEPS._load(), "mine", Sweep(**{**partial.__dict__, "fixed": {"loss.normalize": True}}))
    (plan,) = plan_studies("mine", scale="smoke", sampler="tpe")
    assert plan.runs_at(0.3)[0].config.loss.normalize is True


def test_a_grid_over_an_axis_beside_a_held_one_asks_each_declared_value_once(monkeypatch, results):
    # beyond_dcl varies loss.kind x temperature (0.1, 0.2, 0.5): holding the kind, its points repeat each
    # temperature once per kind; the grid is the three temperatures of the held kind, each asked once.
    monkeypatch.setitem(SWEEPS._load(), "mine", Sweep(
        name="mine", experiment="beyond_dcl", axis="loss.temperature", ranges={None: (0.05, 1.0)},
        summary="a test", fixed={"loss.kind": "dcl"}))
    (plan,) = plan_studies("mine", scale="smoke")
    assert plan.grid == (0.1, 0.2, 0.5)
    declared = {r.run_id for r in get_experiment("beyond_dcl").runs("smoke") if r.config.loss.kind == "dcl"}
    assert {plan.runs_at(v)[0].run_id for v in plan.grid} == declared
    with pytest.raises(ConfigError, match=r"--trials 4 exceeds the 3 grid values of - \[0.1, 0.2, 0.5\]"):
        run_sweep("mine", scale="smoke", trials=4, results_dir=str(results), train_fn=temperature_train,
                  report=lambda line: None)
    summary, = run_sweep("mine", scale="smoke", results_dir=str(results), train_fn=temperature_train,
                         report=lambda line: None)
    study = load_study(results, summary)
    assert complete_values(study) == [0.1, 0.2, 0.5] and len(study.trials) == 3
    assert summary["counts"]["COMPLETE"] == 3


@pytest.mark.parametrize("changes, message", [
    ({"axis": "batch_size"}, "sweep 'mine': axis='batch_size' is not an axis of experiment 'temperature_norm', whose "
                             "axes are loss.normalize, loss.temperature (a sweep searches an axis of its experiment: "
                             "add 'batch_size' to the experiment's axes to search it)"),
    ({"axis": "loss.temprature"}, "axis='loss.temprature' is not an axis of experiment 'temperature_norm', whose "
                                  "axes are loss.normalize, loss.temperature"),
    ({"fixed": {"loss.normalise": True}}, "fixed='loss.normalise' is not an axis"),
    ({"split_axis": "loss.normalise", "ranges": {True: (0.1, 1.0)}}, "split_axis='loss.normalise' is not an axis"),
])
def test_a_sweep_of_a_key_its_experiment_does_not_vary_is_refused_naming_its_axes(monkeypatch, changes, message):
    fields = dict(name="mine", experiment="temperature_norm", axis="loss.temperature", ranges={None: (0.1, 1.0)},
                  summary="a test", fixed={"loss.normalize": True})
    monkeypatch.setitem(SWEEPS._load(), "mine", Sweep(**{**fields, **changes}))
    for sampler in SAMPLERS:
        with pytest.raises(ConfigError) as refused:
            plan_studies("mine", scale="smoke", sampler=sampler)
        assert message in str(refused.value) and "\n" not in str(refused.value)
    if changes.get("axis") == "loss.temprature":
        assert str(refused.value).endswith("; did you mean 'loss.temperature'?")


def test_study_names_are_stable_and_separate_what_differs():
    def name(**kw):
        return plan_studies("temperature", splits=(True,), **kw)[0].study_name

    assert name(scale="smoke") == name(scale="smoke")
    names = {name(scale="smoke"), name(scale="cpu"), name(scale="smoke", sampler="tpe"),
             name(scale="smoke", overrides={"eval.knn_k": 5}),
             plan_studies("temperature", scale="smoke", splits=(False,))[0].study_name}
    assert len(names) == 5


def test_grid_trials_are_the_declared_table5_runs_and_nearby_tpe_values_share_a_run():
    declared = {r.run_id for r in get_experiment("temperature_norm").runs("smoke")}
    plans = plan_studies("temperature", scale="smoke")
    assert {p.split: list(p.grid) for p in plans} == TABLE5
    assert {p.runs_at(v)[0].run_id for p in plans for v in p.grid} == declared
    plan = plans[0]
    assert round_significant(0.0731234, 3) == 0.0731 and round_significant(100.0, 3) == 100.0
    assert plan.runs_at(0.07312)[0].run_id == plan.runs_at(0.073149)[0].run_id != plan.runs_at(0.0732)[0].run_id


# ---- grid, reuse, continuation --------------------------------------------------------------------------------
def test_grid_sweep_covers_table5_exactly_once_and_a_rerun_asks_nothing(results):
    summaries = run_sweep("temperature", scale="smoke", results_dir=str(results), train_fn=temperature_train,
                          report=lambda line: None)
    assert [s["split"] for s in summaries] == [True, False]
    for summary in summaries:
        study = load_study(results, summary)
        assert complete_values(study) == TABLE5[summary["split"]]
        assert len(study.trials) == len(TABLE5[summary["split"]])
        assert summary["metric"] == "knn_top1" and summary["counts"]["COMPLETE"] == len(study.trials)
        best = max(TABLE5[summary["split"]], key=lambda t: -abs(math.log10(t / 0.2)))
        assert summary["best"]["loss.temperature"] == best
        assert summary["best"]["value"] == pytest.approx(50.0 - 10.0 * abs(math.log10(best / 0.2)))
        on_disk = json.loads((results / "optuna" / f"{summary['study']}.json").read_text())
        assert on_disk["best"] == summary["best"] and len(on_disk["trials"]) == len(study.trials)
    assert {k: len(v) for k, v in executions(results).items()} == {
        "normalize+0.05": 1, "normalize+0.1": 1, "normalize+0.5": 1, "normalize+1": 1,
        "no-normalize+10": 1, "no-normalize+100": 1}

    # What the reports read: ordinary temperature_norm runs, plus the study's view of them.
    frame = load_results(results)
    knn = frame[frame.metric == "knn_top1"]
    assert set(knn.experiment) == {"temperature_norm"} and len(knn) == 6
    assert sorted(zip(knn["axis.loss.normalize"], knn["axis.loss.temperature"])) == sorted(
        (n, t) for n, ts in TABLE5.items() for t in ts)
    sweeps = load_sweeps(results)
    assert len(sweeps) == 6 and sweeps["is_best"].sum() == 2 and set(sweeps.run_id) == set(knn.run_id)

    again = run_sweep("temperature", scale="smoke", results_dir=str(results), train_fn=temperature_train,
                      report=lambda line: None)
    assert [s["study"] for s in again] == [s["study"] for s in summaries]
    assert all(len(load_study(results, s).trials) == s["counts"]["COMPLETE"] for s in again)
    assert all(len(v) == 1 for v in executions(results).values())


def test_known_configs_reuse_stored_results_without_training(results):
    runs = [r for r in get_experiment("temperature_norm").runs("smoke") if r.config.loss.normalize]
    LocalExecutor(train_fn=temperature_train).dispatch(runs, results)     # what `registry run` would leave
    lines: list[str] = []
    summary, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                         train_fn=temperature_train, report=lines.append)
    assert all(len(v) == 1 for v in executions(results).values()) and len(executions(results)) == 4
    study = load_study(results, summary)
    assert complete_values(study) == TABLE5[True]
    assert all(t.user_attrs["reused"] is True for t in study.trials)
    store = RunStore(results)
    for t in study.trials:
        assert t.value == store.final(t.user_attrs["run_ids"][0])["knn_top1"]
    assert sum("reused stored result" in line for line in lines) == 4


def test_interrupted_sweep_resumes_without_retraining_finished_trials(results, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(HERE)!r}]
        from test_sweep import temperature_train
        from registry.sweep import run_sweep
        run_sweep("temperature", scale="smoke", normalize="true", results_dir={str(results)!r},
                  train_fn=temperature_train)
    """))
    env = {**os.environ, "SWEEP_FAKE_SLEEP": "1.5"}
    process = subprocess.Popen([sys.executable, str(driver)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(executions(results)) < 2:          # the second trial is training: the first was told
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert len(list(results.glob("temperature_norm/*/final.json"))) == 1    # one trial finished, one cut short

    lines: list[str] = []
    summary, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                         train_fn=temperature_train, report=lines.append)
    study = load_study(results, summary)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert complete_values(study) == TABLE5[True]                       # every grid value exactly once
    assert len(failed) == 1 and any("was left running" in line for line in lines)
    retry, = [t for t in complete if t.user_attrs.get("retry_of") == failed[0].number]
    assert retry.params == failed[0].params and "is gone" in retry.user_attrs["retry_reason"]
    runs = executions(results)
    interrupted = retry.user_attrs["run_ids"][0].partition("/")[2].rpartition("-")[0]
    assert len(runs[interrupted]) == 2 and runs[interrupted][1].endswith("resumed=True")
    assert all(len(lines_) == 1 for label, lines_ in runs.items() if label != interrupted), runs
    assert summary["counts"] == {"COMPLETE": 4, "FAIL": 1, "RUNNING": 0, "WAITING": 0}


def test_failed_trials_count_and_are_asked_again_only_with_retry_failed(results, monkeypatch):
    monkeypatch.setenv("SWEEP_FAKE_FAIL_AT", "0.05")
    lines: list[str] = []
    first, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       train_fn=temperature_train, report=lines.append)
    assert first["failed_now"] == 1 and first["counts"] == {"COMPLETE": 3, "FAIL": 1, "RUNNING": 0, "WAITING": 0}
    failed, = [t for t in first["trials"] if t["state"] == "FAIL"]
    assert failed["loss.temperature"] == 0.05 and "RuntimeError: boom at temperature 0.05" in failed["error"]
    assert any("FAILED" in line and "boom" in line for line in lines)
    monkeypatch.delenv("SWEEP_FAKE_FAIL_AT")
    again, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       train_fn=temperature_train, report=lambda line: None)
    assert again["counts"]["FAIL"] == 1 and again["counts"]["COMPLETE"] == 3          # counted: not re-asked
    fixed, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       train_fn=temperature_train, retry_failed=True, report=lambda line: None)
    assert fixed["failed_now"] == 0 and complete_values(load_study(results, fixed)) == TABLE5[True]
    assert {k: len(v) for k, v in executions(results).items()}["normalize+0.05"] == 2


def test_trials_on_runs_with_damaged_files_fail_and_name_the_redo_command(results, tmp_path):
    run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
              train_fn=temperature_train, report=lambda line: None)
    store = RunStore(results)
    done, unfinished = (next(results.glob(f"temperature_norm/normalize+{t}-*")) for t in ("0.1", "0.5"))
    (done / "checkpoint.pt").write_bytes(b"truncated")               # its final.json would be reused
    (unfinished / "checkpoint.pt").write_bytes(b"truncated")         # the executor refuses to resume it
    (unfinished / "final.json").unlink()
    summaries: list = []
    # A new study over the same runs; it must end (a corrupt run is neither done nor running anywhere).
    driver = threading.Thread(target=lambda: summaries.extend(run_sweep(
        "temperature", scale="smoke", normalize="true", storage=f"sqlite:///{tmp_path / 'again.db'}",
        results_dir=str(results), train_fn=temperature_train, poll_s=0.1, report=lambda line: None)), daemon=True)
    driver.start()
    driver.join(120)
    assert not driver.is_alive(), "the sweep kept waiting for runs with damaged files"
    summary, = summaries
    assert summary["failed_now"] == 2 and summary["counts"]["COMPLETE"] == 2
    errors = {t["loss.temperature"]: t["error"] for t in summary["trials"] if t["state"] == "FAIL"}
    assert set(errors) == {0.1, 0.5}
    for temperature, run_dir in ((0.1, done), (0.5, unfinished)):
        assert "checkpoint.pt is truncated or damaged" in errors[temperature]
        assert f"--only temperature_norm/{run_dir.name} --redo" in errors[temperature]
        assert store.state(f"temperature_norm/{run_dir.name}") == "corrupt"


def test_a_damaged_tpe_trial_run_names_how_to_train_it_again_and_that_works(results, tmp_path):
    # A TPE value is no declared run, so `run --only ID --redo` cannot select it: the hint is the sweep's own.
    def sweep(**kwargs):
        return run_sweep("temperature", scale="smoke", normalize="true", sampler="tpe", trials=1,
                         results_dir=str(results), storage=f"sqlite:///{tmp_path / 'tpe.db'}",
                         train_fn=temperature_train, poll_s=0.1, report=lambda line: None, **kwargs)

    first, = sweep()
    (run_id,) = first["trials"][0]["run_ids"]
    declared = {r.run_id for r in get_experiment("temperature_norm").runs("smoke")}
    assert run_id not in declared
    run_dir = RunStore(results).run_dir(run_id)
    (run_dir / "checkpoint.pt").write_bytes(b"truncated")
    (run_dir / "final.json").unlink()
    damaged, = run_sweep("temperature", scale="smoke", normalize="true", sampler="tpe", trials=1,
                         results_dir=str(results), storage=f"sqlite:///{tmp_path / 'again.db'}",
                         train_fn=temperature_train, poll_s=0.1, report=lambda line: None, sampler_seed=0)
    error, = [t["error"] for t in damaged["trials"] if t["state"] == "FAIL"]
    assert f"move {run_dir} aside" in error and "--retry-failed" in error and "--redo" not in error, error
    run_dir.rename(run_dir.with_name(run_dir.name + ".damaged"))
    fixed, = run_sweep("temperature", scale="smoke", normalize="true", sampler="tpe", trials=1,
                       results_dir=str(results), storage=f"sqlite:///{tmp_path / 'again.db'}",
                       train_fn=temperature_train, poll_s=0.1, report=lambda line: None, retry_failed=True)
    assert fixed["failed_now"] == 0 and fixed["counts"]["COMPLETE"] == 1
    assert RunStore(results).state(run_id) == "done"


def test_a_study_storage_on_a_disk_that_fills_up_says_so_and_the_sweep_continues_once_freed(
        results, small_disk, monkeypatch, capsys):
    from registry import launch

    disk = small_disk("1m")
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:disk_filling_train")
    monkeypatch.setenv("FAKE_FILL_DISK", str(disk))
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    sweep = ["sweep", "temperature", "--scale", "smoke", "--normalize", "true", "--storage",
             f"sqlite:///{disk}/study.db"]
    assert main(sweep) == 1                    # SQLite cannot commit the first trial's result
    err = capsys.readouterr().err
    assert f"the study storage (sqlite:///{disk}/study.db) could not record a result (database or disk is full)" \
           in err, err
    assert "the disk refused a write: free space there" in err and "unexpected failure" not in err
    (disk / "filler").unlink()
    monkeypatch.delenv("FAKE_FILL_DISK")
    assert main(sweep) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "trial 0 was left running (its driver, an earlier sweep in this process, has ended): failed it and " \
           "re-asked" in out, out
    row = next(line for line in out.splitlines() if line.startswith("temperature_norm-"))
    assert row.split()[3:6] == ["4", "0", "1"], out      # 4 done, none failed for good, the stranded trial retried


def test_stale_running_trials_are_recognised():
    running = optuna.trial.create_trial(state=TrialState.RUNNING, params={"x": 1.0},
                                        distributions={"x": optuna.distributions.FloatDistribution(0, 2)})
    now = time.time()
    running.user_attrs = {"driver": {"host": "another-node", "pid": 1}, "heartbeat": now - 10}
    assert orphan_reason(running, now) is None                 # another host, recent heartbeat: maybe alive
    running.user_attrs = {"driver": {"host": "another-node", "pid": 1}, "heartbeat": now - STALE_AFTER_S - 1}
    assert "no heartbeat" in orphan_reason(running, now)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    running.user_attrs = {"driver": {"host": socket.gethostname(), "pid": int(dead.stdout)}, "heartbeat": now}
    assert "is gone" in orphan_reason(running, now)


def _study_with(state: TrialState, user_attrs: dict) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        state=state, params={"loss.temperature": 0.6994332504138304}, user_attrs=user_attrs,
        distributions={"loss.temperature": optuna.distributions.FloatDistribution(0.01, 10.0, log=True)},
        **({"value": None} if state != TrialState.COMPLETE else {"value": 1.0})))
    return study


def test_a_trial_asked_again_is_named_by_the_value_its_run_trains_not_the_raw_suggestion():
    from registry.sweep_study import recover_orphans, reask_cancelled, retry_failed

    point = {"loss.normalize": True, "loss.temperature": 0.699}
    lines: list[str] = []
    assert reask_cancelled(_study_with(TrialState.FAIL, {"cancelled": True, "point": point}), lines.append) == 1
    assert retry_failed(_study_with(TrialState.FAIL, {"point": point}), lines.append) == 1
    stale = {"point": point, "heartbeat": time.time() - STALE_AFTER_S - 1}
    assert recover_orphans(_study_with(TrialState.RUNNING, stale), set(), lines.append) == 1
    assert len(lines) == 3
    for line in lines:
        assert "re-asked loss.temperature=0.699" in line and "0.69943" not in line, line
    # a trial that failed before its point was recorded names the suggestion as it is
    lines.clear()
    retry_failed(_study_with(TrialState.FAIL, {}), lines.append)
    assert "re-asked loss.temperature=0.6994332504138304" in lines[0], lines


# ---- storages and executors -----------------------------------------------------------------------------------
def test_journal_storage_tpe_search_continues_where_it_stopped(results, tmp_path):
    journal = tmp_path / "shared" / "sweeps.journal"
    assert storage_url(f"journal://{journal}", "x", results) == f"journal://{journal}"
    first, = run_sweep("temperature", scale="smoke", sampler="tpe", trials=3, normalize="false",
                       storage=f"journal://{journal}", results_dir=str(results), train_fn=temperature_train,
                       report=lambda line: None)
    assert journal.is_file() and first["counts"]["COMPLETE"] == 3
    second, = run_sweep("temperature", scale="smoke", sampler="tpe", trials=5, normalize="false",
                        storage=f"journal://{journal}", results_dir=str(results), train_fn=temperature_train,
                        report=lambda line: None)
    assert second["study"] == first["study"]
    study = optuna.load_study(study_name=first["study"], storage=open_storage(f"journal://{journal}"))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    for t in study.trials:
        point = t.user_attrs["point"]
        assert point["loss.normalize"] is False and 1.0 <= point["loss.temperature"] <= 1000.0
        assert point["loss.temperature"] == round_significant(t.params["loss.temperature"], 3)
    assert second["best"]["value"] == max(t.value for t in study.trials)
    assert sum(len(v) for v in executions(results).values()) == len({t.user_attrs["run_ids"][0] for t in study.trials})


class SubmittingExecutor(Executor):
    """Like a SLURM executor: dispatch returns `submitted` at once; the runs finish later, elsewhere."""

    name = "fake-slurm"

    def __init__(self, delay_s: float = 0.3):
        self.delay_s, self.batches, self.threads = delay_s, [], []

    def dispatch(self, runs, results_dir):
        self.batches.append([r.run_id for r in runs])
        for run in runs:
            def job(run=run):
                time.sleep(self.delay_s)
                execute_run(run, results_dir, temperature_train)
            thread = threading.Thread(target=job)
            thread.start()
            self.threads.append(thread)
        return [Outcome(r.run_id, "submitted", "job 1") for r in runs]


def test_submitted_runs_are_polled_and_k_trials_stay_in_flight(results, monkeypatch):
    monkeypatch.setattr("registry.sweep_study.HEARTBEAT_S", 0.05)
    executor = SubmittingExecutor()
    summary, = run_sweep("temperature", scale="smoke", sampler="tpe", trials=5, normalize="true",
                         results_dir=str(results), executor=executor, max_parallel=2, poll_s=0.05,
                         report=lambda line: None)
    for thread in executor.threads:
        thread.join()
    assert summary["counts"]["COMPLETE"] == 5, summary["trials"]
    assert len(executor.batches[0]) == 2 and max(map(len, executor.batches)) == 2   # ask k, submit k
    assert sum(map(len, executor.batches)) == len({r for b in executor.batches for r in b})
    study = load_study(results, summary)
    # The driver kept its trials alive while their runs ran elsewhere (what tells it from a dead driver).
    assert all(t.user_attrs["heartbeat"] - t.datetime_start.timestamp() > 0.1 for t in study.trials)


class CancellingExecutor(SubmittingExecutor):
    """Submits like SubmittingExecutor, but the job of the run at `cancel_at` is scancel'd while queued: the store
    records it cancelled, as registry/slurm_state.py does from sacct."""

    def __init__(self, cancel_at: float | None):
        super().__init__(delay_s=0.05)
        self.cancel_at = cancel_at

    def dispatch(self, runs, results_dir):
        cancelled = [r for r in runs if r.config.loss.temperature == self.cancel_at]
        for run in cancelled:
            RunStore(results_dir).write_status(run.run_id, "cancelled", error="SLURM job 1 ended CANCELLED")
        outcomes = super().dispatch([r for r in runs if r not in cancelled], results_dir)
        return [Outcome(r.run_id, "submitted", "job 1") for r in cancelled] + outcomes


def test_a_trial_whose_job_was_cancelled_is_asked_again_by_the_next_sweep(results):
    lines: list[str] = []
    first, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       executor=CancellingExecutor(cancel_at=0.05), poll_s=0.05, report=lines.append)
    assert first["counts"] == {"COMPLETE": 3, "FAIL": 1, "RUNNING": 0, "WAITING": 0}     # this driver let it be
    assert any("FAILED: cancelled" in line and "the next run of this sweep asks it again" in line for line in lines)
    again, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       executor=CancellingExecutor(cancel_at=None), poll_s=0.05, report=lines.append)
    assert complete_values(load_study(results, again)) == TABLE5[True]
    assert any(line.startswith("trial ") and "was cancelled" in line for line in lines)
    third, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       executor=CancellingExecutor(cancel_at=None), poll_s=0.05, report=lines.append)
    assert third["counts"] == again["counts"]                  # asked once again, not at every start


def test_the_closing_table_counts_a_failed_trial_asked_again_as_retried_not_failed(results, capsys):
    # Before: a trial whose job was cancelled (or whose driver was killed), asked again and finished, stayed in
    # the table's "fail" column: every grid value done, yet "1 fail".
    from registry.sweep import _print_table

    first, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       executor=CancellingExecutor(cancel_at=0.05), poll_s=0.05, report=lambda line: None)
    assert (first["failed"], first["retried"]) == (1, 0)                # not asked again yet: failed, for now
    again, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                       executor=CancellingExecutor(cancel_at=None), poll_s=0.05, report=lambda line: None)
    assert again["counts"]["FAIL"] == 1 and (again["failed"], again["retried"]) == (0, 1)
    capsys.readouterr()
    _print_table([again], str(results))
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[3:6] == ["done", "failed", "retried"] and row.split()[3:6] == ["4", "0", "1"]


def test_local_trials_in_parallel_processes(results):
    summary, = run_sweep("temperature", scale="smoke", sampler="tpe", trials=2, normalize="true",
                         results_dir=str(results), max_parallel=2, train_fn="test_sweep:temperature_train",
                         report=lambda line: None)
    assert summary["counts"]["COMPLETE"] == 2
    pids = {line.split()[0] for lines in executions(results).values() for line in lines}
    assert len(pids) == 2 and str(os.getpid()) not in pids


# ---- one real trial ------------------------------------------------------------------------------------------
def test_cli_runs_one_real_smoke_trial(results, capsys):
    code = main(["sweep", "temperature", "--scale", "smoke", "--normalize", "false", "--trials", "1",
                 "--results-dir", str(results)])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(next((results / "optuna").glob("*.json")).read_text())
    best = summary["best"]
    final = RunStore(results).final(best["run_id"])
    assert final["steps"] == 2 and best["value"] == final["knn_top1"] and best["loss.temperature"] in TABLE5[False]
    assert summary["study"] in out and "trained" in out
    # the closing hint shows the sweep's runs at its scale (show's default scale is another one)
    assert f"python -m registry show temperature_norm --scale smoke --results-dir {results} " in out


def test_the_closing_hint_shows_the_trials_runs_with_the_sweeps_overrides(results, capsys):
    # the trials' runs were made with max_steps=20: `show` without it plans other runs and lists every trial apart
    summary, = run_sweep("temperature", scale="smoke", normalize="true", results_dir=str(results),
                         overrides={"max_steps": "20"}, train_fn=temperature_train, report=lambda line: None)
    _print_table([summary], str(results))
    assert f"runs: python -m registry show temperature_norm --scale smoke --results-dir {results} max_steps=20 lists " \
           "every trial's run" in capsys.readouterr().out


# ---- a real SLURM cluster (scripts/slurm/start-cluster.sh; source /tmp/slurm-local/env.sh) ---------------------
def _no_cluster() -> str | None:
    if not os.environ.get("SLURM_CONF"):
        return "SLURM_CONF is unset: no test cluster"
    try:
        probe = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    return None if probe.returncode == 0 else f"sinfo failed: {probe.stderr.strip()}"


@pytest.mark.slurm
@pytest.mark.slow
def test_real_slurm_sweep_keeps_two_jobs_in_flight_on_journal_storage(results, capsys):
    problem = _no_cluster()
    if problem:
        pytest.skip(problem)
    args = ["sweep", "temperature", "--slurm", "--slurm-time-min", "20", "--scale", "smoke", "--normalize", "false",
            "--max-parallel", "2", "--poll-seconds", "1", "--results-dir", str(results)]
    assert main(args) == 0, capsys.readouterr()
    summary = json.loads(next((results / "optuna").glob("*.json")).read_text())
    assert summary["storage"].startswith("journal://") and summary["counts"]["COMPLETE"] == 2
    jobs = {p.parent.name: json.loads(p.read_text())["job_id"] for p in results.glob("temperature_norm/*/slurm.json")}
    assert len(jobs) == 2 and len({job.partition("_")[0] for job in jobs.values()}) == 1   # one array of k=2
    assert main(args) == 0                                   # complete: nothing asked, nothing submitted
    assert {p.parent.name: json.loads(p.read_text())["job_id"]
            for p in results.glob("temperature_norm/*/slurm.json")} == jobs


def test_a_trial_that_evaluated_another_runs_pretraining_says_so(results, monkeypatch):
    from fake_train import checkpointing_train
    from registry import Experiment, grid
    from registry import discover

    own = Experiment(name="own_eval_axis", title="kNN temperature, an evaluation-only axis", metric="knn_top1",
                     base={"optim.lr_scaling": "linear"}, axes=grid(eval__knn_temperature=(0.07, 0.5)))
    monkeypatch.setitem(discover._registry(), own.name, own)
    monkeypatch.setitem(SWEEPS._load(), "own", Sweep(name="own", experiment=own.name, axis="eval.knn_temperature",
                                                     ranges={None: (0.05, 1.0)}, summary="kNN temperature"))
    lines: list[str] = []
    run_sweep("own", scale="smoke", results_dir=str(results), train_fn=checkpointing_train, report=lines.append)
    told = [line for line in lines if " -> knn_top1=" in line]
    assert len(told) == 2, lines
    trained = told[0].rpartition("(trained: ")[2].rstrip(")")          # the grid's order is the sampler's
    other, = {run.run_id for run in own.runs("smoke")} - {trained}
    assert told[1].endswith(f"(evaluated the pretraining of {trained}: {other})"), told

"""A scale planned for a GPU (gpu, paper), run locally on a machine without one: refused in one line naming the
estimated CPU-hours, before anything is recorded, unless --allow-cpu (registry/scale_hardware.py).

Before: `run temperature_norm --scale gpu` on a CPU-only machine printed only its header and trained 12 runs of
~13 hours each on the CPU. Whether a GPU is here is faked (scale_hardware.gpu_here), so these hold on any machine;
training is fake_train's (launch.DEFAULT_TRAIN_FN), SLURM's submission is faked as in test_slurm_bad_input.py.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from registry import get_experiment, launch, scale_hardware, slurm
from registry.__main__ import main
from registry.estimate import format_device_hours, total
from registry.overrides import parse_overrides
from registry.store import RunStore

TINY = ["batch_size=16", "encoder.width=0.25", "data.dataset=cifar10_subset", "data.train_limit=64",
        "data.test_limit=32", "max_steps=1", "eval.protocols=knn"]


@pytest.fixture
def no_gpu(monkeypatch, tmp_path) -> Path:
    """A machine without a GPU, whose training is fake_train's; returns the results folder."""
    monkeypatch.setattr(scale_hardware, "gpu_here", lambda: False)
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:counting_train")
    results = tmp_path / "results"
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    return results


def cpu_hours(experiment: str, scale: str, hardware: str = "cpu") -> str:
    return format_device_hours(total((run.config for run in get_experiment(experiment).runs(scale)), hardware).hours,
                               hardware)


@pytest.mark.parametrize("scale", ["gpu", "paper"])
def test_a_gpu_scale_without_a_gpu_is_refused_in_one_line_before_anything_is_recorded(scale, no_gpu, capsys):
    code = main(["run", "temperature_norm", "--scale", scale])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out
    assert err.count("\n") == 1 and err.startswith("error: "), err
    runs = len(get_experiment("temperature_norm").runs(scale))
    assert (f"scale '{scale}' is planned for a GPU and this machine has none (torch sees no CUDA device" in err
            and f"the {runs} run(s) still to do would train on this CPU, about "
                f"{cpu_hours('temperature_norm', scale)} by estimate (rate measured on the 2-core" in err
            and f"against {cpu_hours('temperature_norm', scale, 'gpu')} planned" in err), err
    assert ("choose a scale planned for a CPU (--scale smoke or --scale cpu), --slurm to train on a cluster's GPUs, "
            "or --allow-cpu to train on this CPU anyway (nothing was recorded)") in err, err
    assert not no_gpu.exists(), "something was recorded"


def test_allow_cpu_trains_them_after_one_line_with_the_estimate(no_gpu, capsys):
    args = ["run", "temperature_norm", "--scale", "gpu", "--only", "normalize+0.5", *TINY, "--seeds", "0"]
    assert main([*args, "--allow-cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("--allow-cpu: scale gpu is planned for a GPU and this machine has none (torch sees "
                             "no CUDA device"), out
    assert "training the 1 run(s) still to do on this CPU, about" in out[1] and "by estimate" in out[1], out
    (run,) = [run for run in get_experiment("temperature_norm").runs("gpu", parse_overrides(TINY), seeds=[0])
              if run.label == "normalize+0.5"]
    store = RunStore(no_gpu)
    assert store.is_done(run.run_id) and (store.run_dir(run.run_id) / "executions.log").exists()
    # The flag is not part of the run id: the same command without it finds the run done, and nothing is refused.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "done already" in out and "--allow-cpu" not in out, out


def test_a_grid_whose_runs_are_all_done_is_not_refused(no_gpu, capsys):
    args = ["run", "temperature_norm", "--scale", "gpu", "--only", "normalize+0.5*", *TINY]     # both seeds
    assert main([*args, "--allow-cpu"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "summary: 2 skipped" in capsys.readouterr().out
    assert main([*args, "--only", "normalize+1*"]) == 2           # one more point: its runs are still to do
    assert "the 2 run(s) still to do would train on this CPU" in capsys.readouterr().err


def test_dry_run_ends_saying_run_would_refuse_it_here(no_gpu, capsys):
    assert main(["run", "temperature_norm", "--scale", "gpu", "--dry-run"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("  `run` would refuse this here: scale gpu is planned for a GPU and this machine has "
                           "none"), last
    assert f"so the 12 run(s) still to do would train on this CPU, about {cpu_hours('temperature_norm', 'gpu')} by " \
           "estimate" in last and "--allow-cpu to train on this CPU anyway" in last, last
    assert main(["run", "temperature_norm", "--scale", "gpu", "--dry-run", "--allow-cpu"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("  with --allow-cpu, `run` trains the 12 run(s) still to do on this CPU: about "), last
    assert not no_gpu.exists()


def test_a_machine_with_a_gpu_or_a_cpu_scale_is_not_refused(no_gpu, monkeypatch, capsys):
    assert main(["run", "temperature_norm", "--scale", "smoke", "--only", "normalize+0.5"]) == 0
    assert "--allow-cpu" not in capsys.readouterr().out
    monkeypatch.setattr(scale_hardware, "gpu_here", lambda: True)
    assert main(["run", "temperature_norm", "--scale", "gpu", "--dry-run"]) == 0
    assert "would refuse" not in capsys.readouterr().out
    assert main(["run", "temperature_norm", "--scale", "gpu", "--only", "normalize+0.5", *TINY, "--seeds", "0"]) == 0
    assert "summary: 1 done" in capsys.readouterr().out


@pytest.fixture
def fake_slurm(monkeypatch, tmp_path):
    """SLURM's commands 'present' (test_slurm_bad_input.py); submission records the runs it was given."""
    monkeypatch.setattr(slurm, "require_slurm", lambda: None)
    monkeypatch.setattr(slurm, "partition_nodes", lambda partition: ("debug", 2))
    monkeypatch.delenv("SIMCLR_SLURM_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    submitted = []

    def submit(self, runs, store, training, live):
        submitted.extend(run.run_id for run in runs)
        self.jobs.update({run.run_id: SimpleNamespace(job_id="4242") for run in runs})
        return {run.run_id: self.jobs[run.run_id] for run in runs}
    monkeypatch.setattr(slurm.SlurmExecutor, "_submit", submit)
    return submitted


def test_slurm_is_not_refused_and_takes_no_allow_cpu(no_gpu, fake_slurm, capsys):
    args = ["run", "temperature_norm", "--scale", "gpu", "--slurm", "--slurm-time-min", "30", "--seeds", "0"]
    assert main(args) == 0, capsys.readouterr().err
    assert len(fake_slurm) == 6 and "would train on this CPU" not in capsys.readouterr().err
    assert main([*args, "--allow-cpu"]) == 2
    assert "--allow-cpu applies to local runs; under --slurm the runs train on the cluster's nodes" in \
           capsys.readouterr().err


def test_a_sweep_at_a_gpu_scale_is_refused_unless_allowed(no_gpu, capsys):
    sweep = ["sweep", "temperature", "--scale", "gpu", "--normalize", "true"]
    assert main(sweep) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scale 'gpu' is planned for a GPU and this machine has none" in err, err
    assert "the grid's 8 run(s) still to do would train on this CPU, about" in err and "--allow-cpu" in err, err
    assert main([*sweep, "--sampler", "tpe", "--trials", "3"]) == 2
    assert "up to 3 TPE trial(s) still to ask would train on this CPU" in capsys.readouterr().err
    assert not no_gpu.exists(), "a study or run was recorded"
    assert main([*sweep, "--allow-cpu", "--trials", "1", *TINY]) == 0
    out = capsys.readouterr().out
    assert "--allow-cpu: scale gpu is planned for a GPU" in out and "the grid's 8 run(s) still to do" in out, out


def test_allow_cpu_says_it_trains_only_once_the_data_check_passed(no_gpu, monkeypatch, tmp_path, capsys):
    # Before: "--allow-cpu: ... training the 1 run(s) still to do on this CPU" came first, then the data error and
    # "No run was started".
    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checked_train")
    tiny = [word for word in TINY if not word.startswith("data.dataset=")]
    args = ["run", "temperature_norm", "--scale", "gpu", "--only", "normalize+0.5", *tiny, "--seeds", "0",
            "--allow-cpu", f"data.data_dir={tmp_path / 'missing'}"]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert "no data in" in err and "No run was started" in err, err
    assert "--allow-cpu" not in out and "training the" not in out, out
    sweep = ["sweep", "temperature", "--scale", "gpu", "--normalize", "true", "--allow-cpu", "--trials", "1", *tiny,
             f"data.data_dir={tmp_path / 'missing'}"]
    assert main(sweep) == 2
    out, err = capsys.readouterr()
    assert "no data in" in err and "--allow-cpu" not in out and "training the" not in out, (out, err)


# ---- a continued TPE study: the trials its summary file counts finished are not asked again ------------------
def _tpe_plan():
    from registry.sweep_space import plan_studies

    (plan,) = plan_studies("temperature", scale="gpu", sampler="tpe", splits=(True,))
    return plan


def _continued_study(plan, trials: list[tuple[str, dict]]):
    """A TPE study holding `trials` (state, user_attrs), its summary file written as a sweep's driver writes it."""
    import optuna
    from optuna.trial import TrialState

    from registry.sweep_summary import study_summary, write_summary

    axis = plan.sweep.axis
    distribution = optuna.distributions.FloatDistribution(plan.low, plan.high, log=True)
    study = optuna.create_study(direction="maximize")
    for number, (state, user_attrs) in enumerate(trials):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState[state], params={axis: 0.1 * (number + 1)}, distributions={axis: distribution},
            user_attrs={"point": {axis: 0.1 * (number + 1)}, **user_attrs},
            value=50.0 + number if state == "COMPLETE" else None))
    return study, lambda results, target: write_summary(results, study_summary(plan, study, "sqlite:///x.db", target))


def _trials_the_driver_asks(study, target: int, retry_failed: bool) -> int:
    """What `sweep` would ask of `study` to reach `target`: the driver's own re-asks, then its own count."""
    from registry.sweep_study import reask_cancelled, retry_failed as retry_failed_trials, trial_counts

    reask_cancelled(study, lambda line: None)
    if retry_failed:
        retry_failed_trials(study, lambda line: None)
    counts = trial_counts(study)
    return max(0, target - counts["counted"] - counts["running"])


# 3 COMPLETE (trial 3 the retry of trial 2), 2 failed for good (1, 4), 1 failed and retried (2).
FINISHED = [("COMPLETE", {}), ("FAIL", {}), ("FAIL", {}), ("COMPLETE", {"retry_of": 2}), ("FAIL", {}),
            ("COMPLETE", {})]


@pytest.mark.parametrize(("target", "retry_failed", "left"),
                         [(8, False, 3), (8, True, 5), (5, False, 0), (5, True, 2), (3, True, 0), (2, False, 0)])
def test_a_continued_tpe_study_is_estimated_for_the_trials_it_still_asks(no_gpu, target, retry_failed, left):
    """sweep_on_cpu counted only a fresh TPE study; a continued one's summary file (COMPLETE and failed trials) must
    take its finished trials off the target: failed ones too, unless --retry-failed asks them again."""
    from registry.sweep import sweep_on_cpu

    plan = _tpe_plan()
    one_trial = sweep_on_cpu([plan], [1], no_gpu, retry_failed)        # a fresh study: the mean of both ends
    study, write = _continued_study(plan, FINISHED)
    write(no_gpu, target)
    assert _trials_the_driver_asks(study, target, retry_failed) == left
    on_cpu = sweep_on_cpu([plan], [target], no_gpu, retry_failed)
    if left == 0:
        assert on_cpu is None                                          # nothing to ask, nothing to refuse
        return
    assert on_cpu.what == f"up to {left} TPE trial(s) still to ask"
    assert on_cpu.cpu.hours == pytest.approx(left * one_trial.cpu.hours)
    assert on_cpu.gpu.hours == pytest.approx(left * one_trial.gpu.hours)
    assert f"up to {left} TPE trial(s) still to ask would train on this CPU" in on_cpu.refusal()


@pytest.mark.parametrize("retry_failed", [False, True])
def test_a_cancelled_trial_is_counted_as_still_to_ask(no_gpu, retry_failed):
    """A trial whose run was cancelled (stopped by a signal) is failed, and the next sweep asks it again; the summary's
    count of trials failed for good must leave it out, or a study at its target less it trained on this CPU unasked."""
    from registry.sweep import sweep_on_cpu

    plan = _tpe_plan()
    study, write = _continued_study(plan, [("COMPLETE", {}), ("FAIL", {}), ("FAIL", {"cancelled": True})])
    write(no_gpu, 3)
    left = 2 if retry_failed else 1
    assert _trials_the_driver_asks(study, 3, retry_failed) == left
    on_cpu = sweep_on_cpu([plan], [3], no_gpu, retry_failed)
    assert on_cpu is not None and on_cpu.what == f"up to {left} TPE trial(s) still to ask"


def test_a_sweep_on_a_machine_with_a_gpu_is_not_refused(no_gpu, monkeypatch):
    """sweep.py held its own reference to gpu_here, so faking the one question (scale_hardware.gpu_here) did not reach
    it: the sweep tests' machine was whatever torch saw."""
    from registry.sweep import sweep_on_cpu

    plan = _tpe_plan()
    assert sweep_on_cpu([plan], [3], no_gpu, False) is not None
    monkeypatch.setattr(scale_hardware, "gpu_here", lambda: True)
    assert sweep_on_cpu([plan], [3], no_gpu, False) is None

"""A whole machine for a grid: runs spread over fake GPUs (k per GPU), and the memory check of --runs-per-gpu.

The GPUs are faked where torch is asked for them (registry.placement.cuda_devices); the pool, its processes
and CUDA_VISIBLE_DEVICES are real. The memory estimates run on torch's meta device, on this CPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_train import CRASH_SEED, counting_train
from registry import placement
from registry.__main__ import main
from registry.declare import Run
from registry.run_memory import GIB, estimate_run_memory
from registry.launch import LocalExecutor
from registry.placement import plan_placement
from registry.store import RunStore
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

H200 = ("NVIDIA H200", 141 * 10**9)


def fake_gpus(monkeypatch, count: int, device=H200, visible: str | None = None) -> None:
    monkeypatch.setattr(placement, "cuda_devices", lambda: [device] * count)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


def make_runs(*seeds: int, **overrides) -> list[Run]:
    cfg = RunConfig().with_overrides(overrides)
    return [Run(f"toy/s{seed}-{seed:012d}", "toy", "smoke", {"seed": seed}, cfg.with_overrides({"seed": seed}))
            for seed in seeds]


def device_recording_train(cfg, run_dir: Path) -> dict:
    """counting_train, recording the CUDA_VISIBLE_DEVICES it ran under and when, in run_dir/device.json."""
    started = time.time()
    try:
        return counting_train(cfg, run_dir)
    finally:
        (Path(run_dir) / "device.json").write_text(json.dumps(
            {"device": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(), "start": started,
             "end": time.time()}))


def records(results: Path, runs: list[Run]) -> list[dict]:
    store = RunStore(results)
    return [json.loads((store.run_dir(run.run_id) / "device.json").read_text()) for run in runs]


def most_at_once(spans: list[dict]) -> int:
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


# ---- spreading runs over GPUs -------------------------------------------------------------------------------
@pytest.mark.parametrize("visible, expected", [(None, {"0", "1"}), ("3,5", {"3", "5"})])
def test_two_gpus_two_runs_each(results, monkeypatch, visible, expected):
    fake_gpus(monkeypatch, 2, visible=visible)
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "1.5")
    runs = make_runs(1, 2, 3, CRASH_SEED, 4, 5)
    executor = LocalExecutor(runs_per_gpu=2, train_fn=device_recording_train)
    assert executor.placement.workers == 4
    outcomes = executor.dispatch(runs, results)
    assert [o.state for o in outcomes] == ["done", "done", "done", "failed", "done", "done"]
    assert "died (exit code 3)" in outcomes[3].detail        # a crash frees its slot like any other end
    store = RunStore(results)
    assert all(len((store.run_dir(r.run_id) / "executions.log").read_text().splitlines()) == 1 for r in runs)
    finished = [r for r in runs if r.config.seed != CRASH_SEED]
    spans = records(results, finished)
    assert {s["device"] for s in spans} == expected          # each saw exactly one device, the parent's own
    assert len({s["pid"] for s in spans}) == len(finished) and os.getpid() not in {s["pid"] for s in spans}
    for device in expected:
        assert most_at_once([s for s in spans if s["device"] == device]) <= 2
    assert most_at_once(spans) <= 4


def test_max_parallel_caps_the_total_and_spreads_over_the_gpus(monkeypatch):
    fake_gpus(monkeypatch, 2, visible="3,5")
    assert plan_placement(runs_per_gpu=2).slots == ("3", "5", "3", "5")
    assert plan_placement(max_parallel=3, runs_per_gpu=2).slots == ("3", "5", "3")
    assert plan_placement().slots == ("3", "5")              # default: one run per GPU, on every GPU
    capped = plan_placement(max_parallel=1)
    assert capped.in_process and "this process, on GPU 3: NVIDIA H200" in capped.describe()
    assert "at most 2 per GPU, on 2 GPUs (2 x NVIDIA H200, 131.3 GiB: CUDA_VISIBLE_DEVICES 3, 5)" in \
        plan_placement(runs_per_gpu=2).describe()


def test_one_gpu_one_run_at_a_time_stays_in_this_process(results, monkeypatch):
    fake_gpus(monkeypatch, 1, visible="7")
    runs = make_runs(1, 2)
    executor = LocalExecutor(train_fn=device_recording_train)
    assert executor.placement.in_process
    assert [o.state for o in executor.dispatch(runs, results)] == ["done", "done"]
    assert {(s["pid"], s["device"]) for s in records(results, runs)} == {(os.getpid(), "7")}


def test_without_a_gpu_nothing_changes(monkeypatch):
    fake_gpus(monkeypatch, 0)
    assert plan_placement().slots == (None,) and plan_placement().describe() == "this process"
    assert plan_placement(max_parallel=3).slots == (None,) * 3
    assert plan_placement(max_parallel=3).describe() == "3 local processes"


# ---- bad input ----------------------------------------------------------------------------------------------
def test_runs_per_gpu_without_a_gpu_says_what_to_use_instead(monkeypatch):
    fake_gpus(monkeypatch, 0)
    with pytest.raises(ConfigError, match=r"--runs-per-gpu 2 applies to GPUs.*--max-parallel K"):
        plan_placement(runs_per_gpu=2)


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_runs_per_gpu_must_be_a_positive_integer(monkeypatch, value):
    fake_gpus(monkeypatch, 2)
    with pytest.raises(ConfigError, match=rf"--runs-per-gpu={value!r} must be a positive integer"):
        plan_placement(runs_per_gpu=value)


def test_the_command_refuses_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    fake_gpus(monkeypatch, 0)
    assert main(["run", "loss_variant", "--scale", "smoke", "--runs-per-gpu", "2"]) == 2
    assert "applies to GPUs" in capsys.readouterr().err
    fake_gpus(monkeypatch, 2)
    assert main(["run", "loss_variant", "--scale", "smoke", "--runs-per-gpu", "0"]) == 2
    assert "--runs-per-gpu=0 must be a positive integer" in capsys.readouterr().err
    assert main(["run", "loss_variant", "--scale", "smoke", "--runs-per-gpu", "2", "--slurm"]) == 2
    assert "applies to local runs" in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_dry_run_names_the_placement(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    fake_gpus(monkeypatch, 2)
    assert main(["run", "loss_variant", "--scale", "smoke", "--dry-run", "--runs-per-gpu", "2"]) == 0
    out = capsys.readouterr().out
    assert "via up to 4 local processes, each pinned to one GPU, at most 2 per GPU, on 2 GPUs" in out.splitlines()[0]


# ---- memory -------------------------------------------------------------------------------------------------
def resnet18_cifar(**overrides) -> RunConfig:
    return RunConfig().with_overrides({"data.dataset": "cifar10", "batch_size": 512, **overrides})


def test_the_estimate_grows_with_batch_and_width():
    base = estimate_run_memory(resnet18_cifar())
    assert estimate_run_memory(resnet18_cifar(batch_size=1024)).activations > 1.9 * base.activations
    wider = estimate_run_memory(resnet18_cifar(**{"encoder.width": 2.0}))
    assert wider.activations > 1.9 * base.activations and wider.model_state > 3.5 * base.model_state
    assert estimate_run_memory(resnet18_cifar(precision="no")).activations > 1.9 * base.activations


def test_resnet18_cifar_batch_512_lands_in_a_plausible_range():
    # Saved activations of 2 x 512 views in bf16: about 10 tensors of 1024 x 64 x 32 x 32 x 2 bytes (128 MiB)
    # in the first stage, half as much per later stage: 2-3 GiB; with weights, data and a CUDA context, 3-6 GiB.
    estimate = estimate_run_memory(resnet18_cifar())
    assert 2 * GIB < estimate.activations < 3 * GIB
    assert 3 * GIB < estimate.total < 6 * GIB


def test_too_many_runs_for_a_16_gib_gpu_are_refused_naming_what_fits(monkeypatch):
    fake_gpus(monkeypatch, 1, device=("Tesla V100-SXM2-16GB", 16 * 1024**3))
    runs = make_runs(1, 2, **{"data.dataset": "cifar10", "batch_size": 512})
    per_run = estimate_run_memory(runs[0].config).total
    fit = int(0.9 * 16 * GIB // per_run)
    assert fit >= 1
    plan_placement(runs_per_gpu=fit).check_memory(runs)
    with pytest.raises(ConfigError) as error:
        plan_placement(runs_per_gpu=64).check_memory(runs)
    message = str(error.value)
    assert "--runs-per-gpu 64" in message and "Tesla V100-SXM2-16GB, 16.0 GiB" in message
    assert f"needs about {per_run / GIB:.1f} GiB" in message and f"at most {fit} fit: --runs-per-gpu {fit}" in message
    with pytest.raises(ConfigError, match="at most"):       # the executor checks before it starts anything
        LocalExecutor(runs_per_gpu=64, train_fn=counting_train).dispatch(runs, "/nonexistent/never-written")


def test_the_runs_per_gpu_benchmark_refuses_without_a_gpu():
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}      # hides any GPU, so this holds on every machine
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / "bench_runs_per_gpu.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "refused: torch sees no GPU" in done.stderr and not done.stdout


@pytest.mark.parametrize("gpus", [0, 2])
def test_a_count_beyond_any_machine_is_refused_not_allocated(monkeypatch, gpus):
    fake_gpus(monkeypatch, gpus)
    with pytest.raises(ConfigError, match=r"--max-parallel=10000000000000000000000 is more runs at once than one "
                                          r"machine holds: at most 4,096"):
        plan_placement(max_parallel=10**22)

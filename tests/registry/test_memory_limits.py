"""Runs that do not fit in memory: refused before they start on a CPU (an out-of-memory kill ends a process
without a word), explained when memory ran out anyway, and shown for what they are afterwards."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_train import KILLED_SEED, OUT_OF_MEMORY_SEED, counting_train
from registry import get_experiment
from registry.__main__ import main
from registry.declare import Run
from registry.host_memory import GIB, HostMemory, available_memory, check_host_memory, host_fit
from registry.launch import LocalExecutor, execute_run
from registry.run_memory import estimate_run_memory
from registry.store import RunStore
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

REPO = Path(__file__).resolve().parents[2]


# ---- what the machine has ---------------------------------------------------------------------------------
MEMINFO = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n" \
          "SwapTotal:       2000000 kB\nSwapFree:        1000000 kB\n"


def test_without_a_cgroup_limit_memory_and_free_swap_are_available(fake_cgroups):
    proc, root = fake_cgroups("0::/user.slice\n", {"": {"cgroup.procs": ""}, "user.slice": {"memory.max": "max\n"}},
                              MEMINFO)
    found = available_memory(proc, root)
    assert found.available == 9_000_000 * 1024 and found.ceiling == 17_000_000 * 1024
    assert "by /proc/meminfo" in found.describe()


def test_the_tightest_cgroup_above_the_process_bounds_it_v2(fake_cgroups):
    # The job's own cgroup sets no limit; its parent (the SLURM job) allows 4 GiB, 3 GiB in use of which
    # 1 GiB is inactive file cache that the kernel reclaims before it kills anything.
    proc, root = fake_cgroups("0::/job_7/step_0\n", {
        "": {"cgroup.procs": ""},
        "job_7": {"memory.max": str(4 * 2**30), "memory.current": str(3 * 2**30),
                  "memory.stat": f"anon 1\ninactive_file {2**30}\n"},
        "job_7/step_0": {"memory.max": "max\n", "memory.current": str(2**30)},
    }, MEMINFO)
    found = available_memory(proc, root)
    assert found.available == 2 * 2**30 and found.ceiling == 4 * 2**30
    assert "job_7 allows 4.0 GiB, 2.0 GiB of it in use" in found.source


def test_a_v1_memory_controller_limit_counts_and_unlimited_is_ignored(fake_cgroups):
    proc, root = fake_cgroups("5:cpu:/x\n4:memory:/docker/abc\n", {
        "memory": {"cgroup.procs": "", "memory.limit_in_bytes": "9223372036854771712"},
        "memory/docker": {"memory.limit_in_bytes": "9223372036854771712"},
        "memory/docker/abc": {"memory.limit_in_bytes": str(3 * 2**30), "memory.usage_in_bytes": str(2**30),
                              "memory.stat": "total_inactive_file 0\n"},
    }, MEMINFO)
    assert available_memory(proc, root).available == 2 * 2**30


def test_a_container_that_sees_its_own_cgroup_as_the_root(fake_cgroups):
    # /proc/self/cgroup names the host's path, which does not exist inside the container: its root is it.
    proc, root = fake_cgroups("0::/kubepods/pod1/abc\n",
                              {"": {"cgroup.procs": "", "memory.max": str(2**30), "memory.current": "0"}}, MEMINFO)
    assert available_memory(proc, root).available == 2**30


def test_no_meminfo_means_no_verdict(fake_cgroups, monkeypatch):
    proc, root = fake_cgroups("", {})
    (proc / "meminfo").unlink()
    assert available_memory(proc, root) is None
    monkeypatch.setattr("registry.host_memory.available_memory", lambda: None)
    assert host_fit(runs_at(4096)) is None
    check_host_memory(runs_at(4096))          # nothing to judge by: not refused


# ---- the check ---------------------------------------------------------------------------------------------
def runs_at(batch: int) -> list[Run]:
    return get_experiment("loss_variant").runs("cpu", {"batch_size": str(batch)})


def test_a_run_larger_than_the_memory_is_refused_naming_its_batch():
    run = runs_at(4096)[0]
    need = estimate_run_memory(run.config, device="cpu").total
    with pytest.raises(ConfigError) as refused:
        check_host_memory([run], parallel=2, available=HostMemory(need - 1, need, "test"))
    text = str(refused.value)
    assert f"{run.run_id} needs about" in text and "lower its batch_size (now 4096" in text
    assert "No run was started" in text
    check_host_memory([run], parallel=2, available=HostMemory(need, need, "test"))      # exactly fits
    assert "planned for GPUs" not in text
    paper = get_experiment("loss_variant").runs("paper")[0]
    with pytest.raises(ConfigError, match=r"scale paper is planned for GPUs: a machine with one, or --slurm"):
        check_host_memory([paper], available=HostMemory(64 * 2**30, 64 * 2**30, "test"))


def test_parallel_runs_are_refused_with_the_count_that_fits():
    runs = runs_at(1024)
    one = max(estimate_run_memory(r.config, device="cpu").total for r in runs)
    with pytest.raises(ConfigError, match=r"3 runs at once \(--max-parallel 3\).*--max-parallel 2"):
        check_host_memory(runs, parallel=3, available=HostMemory(int(2.5 * one), 4 * one, "test"))
    fit = host_fit(runs, parallel=3, available=HostMemory(int(3.5 * one), 4 * one, "test"))
    assert fit.problem() is None and "fits" in fit.summary()


def test_the_estimate_on_a_cpu_follows_its_precision():
    run = runs_at(512)[0]
    full = estimate_run_memory(run.config.with_overrides({"precision": "no"}), device="cpu")
    half = estimate_run_memory(run.config.with_overrides({"precision": "bf16"}), device="cpu")
    assert full.activations > 1.9 * half.activations
    assert "for the process" in full.describe() and "CUDA" not in full.describe()


def test_the_command_refuses_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr("registry.host_memory.available_memory",
                        lambda: HostMemory(int(0.5 * GIB), int(0.5 * GIB), "a test's word"))
    code = main(["run", "loss_variant", "--scale", "smoke", "--only", "nt_xent*"])
    err = capsys.readouterr().err
    assert code == 2 and "not enough memory to train on this CPU" in err and "0.5 GiB available (a test's word" in err
    assert not list(tmp_path.rglob("status.json"))
    assert main(["run", "loss_variant", "--scale", "smoke", "--only", "nt_xent*", "--dry-run"]) == 0
    assert "does not fit: `run` refuses it" in capsys.readouterr().out


def test_other_training_functions_are_not_judged_by_train_s_estimate(results, monkeypatch):
    monkeypatch.setattr("registry.host_memory.available_memory", lambda: HostMemory(1, 1, "nothing"))
    LocalExecutor(train_fn=counting_train).check(runs_at(4096))                # no refusal: not train()
    with pytest.raises(ConfigError, match="not enough memory"):
        LocalExecutor().check(runs_at(4096))


def cli(*args: str, results: Path, preexec_fn=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_RESULTS_DIR": str(results)}
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300, preexec_fn=preexec_fn)


def test_in_a_real_memory_cgroup_the_run_is_refused_not_killed(tmp_path, memory_cgroup):
    # As in a container or a SLURM job with --mem: 1.5 GiB, and a batch whose step needs about 2.4 GiB.
    done = cli("run", "loss_variant", "--scale", "smoke", "--only", "nt_xent*", "batch_size=512",
               results=tmp_path, preexec_fn=memory_cgroup(3 * 2**29))
    assert done.returncode == 2, done.stderr
    assert "not enough memory to train on this CPU" in done.stderr and "memory cgroup" in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.rglob("status.json"))


# ---- when memory ran out anyway -----------------------------------------------------------------------------
def toy(seed: int, batch: int = 256) -> Run:
    return Run(f"toy/s{seed}-{seed:012d}", "toy", "smoke", {"seed": seed}, RunConfig(seed=seed, batch_size=batch))


def test_a_failed_allocation_says_what_to_lower(results):
    # The CPU allocator really refuses (an allocation of a petabyte), as it does under a ulimit: torch's own
    # ("can't allocate memory"), or simclr_core's block cache where an earlier run in this process loaded it.
    outcome = execute_run(toy(OUT_OF_MEMORY_SEED, batch=512), results, counting_train)
    assert outcome.state == "failed", outcome
    assert "can't allocate memory" in outcome.detail or "OutOfMemoryError: simclr cpu_cache" in outcome.detail
    assert "ran out of memory at batch_size=512: lower it" in outcome.detail


def test_a_pool_process_killed_by_sigkill_names_the_out_of_memory_killer(results):
    outcomes = LocalExecutor(max_parallel=2, train_fn=counting_train).dispatch([toy(1), toy(KILLED_SEED)], results)
    assert outcomes[1].state == "failed" and "died (signal 9: killed, most often by the kernel's out-of-memory " \
                                             "killer" in outcomes[1].detail


def test_a_command_killed_mid_run_is_explained_by_show(tmp_path):
    # The out-of-memory killer ends the whole command (in-process run): nothing is recorded; `show` says so.
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_RESULTS_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "registry", "run", "loss_variant", "--scale", "smoke",
                                "--only", "nt_xent*", "max_steps=100000"], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            statuses = list(tmp_path.rglob("status.json"))
            if statuses and json.loads(statuses[0].read_text()).get("state") == "running":
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run never started")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    shown = cli("show", "loss_variant", "--scale", "smoke", "max_steps=100000", results=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "cancelled" in line and "nt_xent" in line)
    assert "ended without recording why: it was killed (by the kernel's out-of-memory killer" in lines[at + 1]
    assert RunStore(tmp_path).state(statuses[0].parent.relative_to(tmp_path).as_posix()) == "cancelled"
    status = cli("status", results=tmp_path).stdout.splitlines()
    assert "cancelled: 1 of loss_variant at scale smoke (interrupted, or killed without a word); how each " \
           "stopped: python -m registry show loss_variant --scale smoke; `run` resumes them" in status


def test_a_tensor_too_large_for_64_bit_sizes_is_one_error_naming_the_settings():
    from registry.run_memory import estimate_run_memory
    from simclr_core.config import RunConfig

    cfg = RunConfig().with_overrides({"head.out_dim": 2**62})
    with pytest.raises(ConfigError, match=r"head.out_dim=4611686018427387904 make a tensor larger than any machine "
                                          r"holds \(torch: .*overflow"):
        estimate_run_memory(cfg, device="cpu")

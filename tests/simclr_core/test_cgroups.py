"""The CPUs a process may keep busy (affinity mask and CPU quota), read from fake cgroup trees of both versions
and from a real quota, and train() on a CPU holding to them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simclr_core.cgroups import cgroup_folders, cpu_quota, usable_cpus

REPO = Path(__file__).resolve().parents[2]


def test_a_v2_quota_of_one_and_a_half_cpus_allows_two_threads_at_most(fake_cgroups):
    proc, root = fake_cgroups("0::/docker/abc\n", {
        "": {"cgroup.procs": ""}, "docker": {"cpu.max": "max 100000"}, "docker/abc": {"cpu.max": "150000 100000"}})
    assert cgroup_folders("cpu", proc, root) == [root / "docker/abc", root / "docker", root]
    assert cpu_quota(proc, root) == 1.5
    assert usable_cpus(proc, root) == min(2, len(os.sched_getaffinity(0)))


def test_the_tightest_quota_above_the_process_counts_v1(fake_cgroups):
    # v1 mounts cpu and cpuacct together on many systems: /proc/self/cgroup says "cpu,cpuacct".
    proc, root = fake_cgroups("7:memory:/x\n3:cpu,cpuacct:/slurm/job_5/step_0\n", {
        "cpu,cpuacct": {"cgroup.procs": "", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"},
        "cpu,cpuacct/slurm/job_5": {"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"},
        "cpu,cpuacct/slurm/job_5/step_0": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"},
    })
    assert cpu_quota(proc, root) == 0.5
    assert usable_cpus(proc, root) == 1


def test_no_quota_leaves_the_affinity_mask(fake_cgroups, tmp_path):
    proc, root = fake_cgroups("0::/\n", {"": {"cgroup.procs": "", "cpu.max": "max 100000"}})
    assert cpu_quota(proc, root) is None
    assert usable_cpus(proc, root) == len(os.sched_getaffinity(0))
    assert cgroup_folders("cpu", tmp_path / "nowhere", root) == []


def test_in_a_real_one_cpu_quota_torch_and_train_use_one_thread(tmp_path, cpu_quota_cgroup):
    enter = cpu_quota_cgroup(1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_RESULTS_DIR": str(tmp_path)}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    probe = subprocess.run([sys.executable, "-c", "from simclr_core.cgroups import cpu_quota, fit_torch_threads; "
                                                  "print(cpu_quota(), fit_torch_threads())"],
                           capture_output=True, text=True, env=env, preexec_fn=enter, timeout=120)
    assert probe.returncode == 0 and probe.stdout.split() == ["1.0", "1"], probe.stderr
    done = subprocess.run([sys.executable, "-m", "registry", "run", "loss_variant", "--scale", "smoke", "--only",
                           "nt_xent*"], capture_output=True, text=True, env=env, cwd=REPO, preexec_fn=enter,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    final, = tmp_path.rglob("final.json")
    assert json.loads(final.read_text())["device"] == "cpu (1 threads)"


def test_without_a_quota_torch_keeps_its_own_thread_count():
    probe = subprocess.run([sys.executable, "-c", "import torch; from simclr_core.cgroups import cpu_quota, "
                                                  "fit_torch_threads; print(cpu_quota(), torch.get_num_threads(), "
                                                  "fit_torch_threads())"],
                           capture_output=True, text=True, timeout=120,
                           env={**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")},
                                "PYTHONPATH": str(REPO)})
    assert probe.returncode == 0, probe.stderr
    quota, before, after = probe.stdout.split()
    if quota != "None":
        pytest.skip(f"this machine runs tests under a CPU quota ({quota} CPUs)")
    assert before == after

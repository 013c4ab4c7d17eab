"""Multi-node SLURM (issue 21): the rendezvous of registry/slurm_job.py across two real nodes, and a 2-node x
2-task registry job that is requeued (resumes from its checkpoint) or cancelled (recorded as cancelled).

The `slurm` tests need the two-node cluster of scripts/slurm/start-two-node-cluster.sh (two slurmd, each in
its own network namespace with its own address). It uses SLURM_CONF when that cluster has two nodes up, else
$SLURM_2NODE_DIR/etc/slurm.conf (default /tmp/slurm-2node); otherwise it skips and says why. The other tests
check the rendezvous's clear errors without a cluster.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from registry import RunStore, slurm_job
from registry.claim import CLAIM_NAME
from registry.slurm_job import check_rendezvous
from registry.slurm_settings import SlurmSettings
from simclr_core.losses import nt_xent

# The one-node tests' helpers and quick settings (batch 16: 4 images per rank of the 2 x 2 job).
from test_slurm import QUICK, executor, metric_steps, preempt_and_check_resumed, smoke_runs, wait_for  # noqa: E402,E501

REPO = Path(__file__).resolve().parents[2]
STEP = Path(__file__).with_name("two_node_step.py")
NODES, TASKS_PER_NODE = 2, 2
WORLD = NODES * TASKS_PER_NODE


def _up_nodes(conf: str) -> tuple[list[str], str]:
    """(names of the nodes that can run jobs, problem) for the cluster of `conf`."""
    try:
        probe = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, timeout=30,
                               env={**os.environ, "SLURM_CONF": conf})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"sinfo failed: {exc}"
    if probe.returncode != 0:
        return [], f"sinfo failed: {(probe.stderr or probe.stdout).strip()[-300:]}"
    states = dict(line.split()[:2] for line in probe.stdout.splitlines() if line.strip())
    return sorted(n for n, s in states.items() if s.rstrip("*~#") in ("idle", "mixed", "allocated")), ""


@pytest.fixture(scope="module")
def two_node_conf() -> str:
    """SLURM_CONF of a cluster with at least two usable nodes, or skip with the reason."""
    default = str(Path(os.environ.get("SLURM_2NODE_DIR", "/tmp/slurm-2node")) / "etc" / "slurm.conf")
    reasons = []
    for conf in dict.fromkeys(c for c in (os.environ.get("SLURM_CONF"), default) if c):
        if not Path(conf).is_file():
            reasons.append(f"{conf}: no such file")
            continue
        nodes, problem = _up_nodes(conf)
        if len(nodes) >= NODES:
            return conf
        reasons.append(f"{conf}: {problem or f'{len(nodes)} usable node(s) {nodes}'}")
    pytest.skip("no two-node SLURM cluster (scripts/slurm/start-two-node-cluster.sh): " + "; ".join(reasons))


def _harness():
    import importlib.util
    spec = importlib.util.spec_from_file_location("dist_harness", REPO / "tests" / "simclr_core" / "dist_harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slurm
def test_two_nodes_by_two_tasks_step_equals_one_process_on_the_union(two_node_conf, tmp_path):
    """sbatch -N2 --ntasks-per-node=2: four gloo processes on two nodes join through slurm_job's rendezvous
    (MASTER_ADDR = first node of the job), and one DDP step with global BatchNorm and NT-Xent gives the loss and
    parameter gradients of one process on the union of the four ranks' views."""
    harness = _harness()
    inputs = harness.make_inputs(world=WORLD)
    torch.save(inputs, tmp_path / "inputs.pt")
    env = {**os.environ, "SLURM_CONF": two_node_conf, "OMP_NUM_THREADS": "1", "SUBMITIT_EXECUTOR": "slurm",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    env.pop("MASTER_PORT", None)
    env.pop("MASTER_ADDR", None)
    submit = subprocess.run(
        ["sbatch", "--parsable", f"-N{NODES}", f"--ntasks-per-node={TASKS_PER_NODE}", "--cpus-per-task=1",
         "-t", "5", "-J", "two_node_step", "-o", str(tmp_path / "job-%j.out"),
         "--wrap", "srun " + shlex.join([sys.executable, str(STEP), str(tmp_path / "inputs.pt"), str(tmp_path)])],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert submit.returncode == 0, submit.stderr
    job = submit.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 240
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True,
                               text=True, env=env).stdout.strip()
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            break
        time.sleep(1)
    log = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert state == "COMPLETED", f"job {job} {state or 'never ended'}:\n{log[-3000:]}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, env=env).stdout.split()
    assert [(o["rank"], o["world"], o["local_rank"]) for o in ranks] == [(r, WORLD, r % TASKS_PER_NODE)
                                                                         for r in range(WORLD)]
    hosts = [o["host"] for o in ranks]
    assert hosts[0] == hosts[1] != hosts[2] == hosts[3], hosts        # 2 tasks per node, block distribution
    assert {o["master_addr"] for o in ranks} == {ranks[0]["master_addr"]} and ranks[0]["master_addr"] in nodes

    net = harness.small_net()
    z = net(torch.cat(list(inputs["images"])))
    loss = nt_xent(*z.chunk(2), temperature=harness.TEMPERATURE)
    loss.backward()
    torch.testing.assert_close(sum(o["loss"] for o in ranks) / WORLD, loss.detach(), rtol=1e-10, atol=1e-12)
    for o in ranks:
        for name, p in net.named_parameters():
            torch.testing.assert_close(o["grads"][name], p.grad, rtol=1e-9, atol=1e-12)


@pytest.fixture
def two_node_slurm(two_node_conf, monkeypatch) -> str:
    """This process's SLURM commands (submitit's sbatch, squeue, sacct) talk to the two-node cluster."""
    monkeypatch.setenv("SLURM_CONF", two_node_conf)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    return two_node_conf


def _two_by_two(**kwargs) -> SlurmSettings:
    return SlurmSettings(nodes=NODES, tasks_per_node=TASKS_PER_NODE, cpus_per_task=1, **kwargs)


def _first_step_reference():
    import importlib.util
    path = REPO / "tests" / "simclr_core" / "first_step_reference.py"
    spec = importlib.util.spec_from_file_location("first_step_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_first_step_loss


@pytest.mark.slurm
def test_the_registrys_two_node_run_logs_the_first_step_loss_of_one_process(two_node_conf, tmp_path):
    """`python -m registry run NAME --slurm --slurm-nodes 2 --slurm-tasks-per-node 2`, as a user types it: train() in
    four processes on two nodes logs, at step 1, the loss one process computes on the union of the four ranks'
    views with BatchNorm over all of them; per-rank BatchNorm would log another loss."""
    overrides = {**QUICK, "max_steps": 2, "precision": "no", "encoder.global_bn": True}
    [run] = smoke_runs(overrides)
    (tmp_path / "slurm.toml").write_text("")                  # no user settings: only the flags below
    env = {**os.environ, "SLURM_CONF": two_node_conf, "SIMCLR_RESULTS_DIR": str(tmp_path / "results"),
           "SIMCLR_SLURM_CONFIG": str(tmp_path / "slurm.toml"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    env.pop("MASTER_ADDR", None)
    env.pop("MASTER_PORT", None)
    done = subprocess.run(
        [sys.executable, "-m", "registry", "run", "head_type", "--scale", "smoke", "--only", run.label,
         *(f"{key}={value}" for key, value in overrides.items()),
         "--slurm", "--slurm-nodes", str(NODES), "--slurm-tasks-per-node", str(TASKS_PER_NODE),
         "--slurm-cpus-per-task", "1", "--slurm-time-min", "30", "--slurm-wait"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=400)
    assert done.returncode == 0 and "summary: 1 done" in done.stdout, done.stdout + done.stderr
    store = RunStore(tmp_path / "results")
    assert store.final(run.run_id)["processes"] == WORLD and store.status(run.run_id)["processes"] == WORLD

    rows = [json.loads(line) for line in (store.run_dir(run.run_id) / "metrics.jsonl").read_text().splitlines()]
    step, logged = next((r["step"], r["loss"]) for r in rows if "loss" in r)
    assert step == 1
    reference = _first_step_reference()
    assert logged == pytest.approx(reference(run.config, world=WORLD, global_bn=True), rel=1e-4)
    assert abs(logged - reference(run.config, world=WORLD, global_bn=False)) > 1e-4


@pytest.mark.slurm
def test_a_requeued_two_node_job_resumes_from_its_checkpoint(two_node_slurm, tmp_path):
    status = preempt_and_check_resumed(executor(_two_by_two(time_min=60), wait=False), tmp_path, steps=40,
                                       timeout=240)
    assert status["processes"] == WORLD and status["final"]["processes"] == WORLD


@pytest.mark.slurm
def test_a_cancelled_two_node_job_is_recorded_cancelled(two_node_slurm, tmp_path):
    runs = smoke_runs({**QUICK, "max_steps": 100_000})
    store = RunStore(tmp_path)
    slurm = executor(_two_by_two(time_min=60), wait=True)
    result: dict = {}
    waiting = threading.Thread(target=lambda: result.update(outcomes=slurm.dispatch(runs, tmp_path)), daemon=True)
    waiting.start()
    run_id = runs[0].run_id
    wait_for(lambda: metric_steps(store.run_dir(run_id)), 240, "the two-node run to train")
    subprocess.run(["scancel", slurm.jobs[run_id].job_id], check=True)
    waiting.join(timeout=180)
    assert not waiting.is_alive(), "dispatch(wait=True) did not return after scancel"
    assert [o.state for o in result["outcomes"]] == ["cancelled"], result["outcomes"]
    assert store.status(run_id)["error"] == "RunCancelled"        # rank 0 got SIGTERM while training
    assert not (store.run_dir(run_id) / CLAIM_NAME).exists()


# ---- the rendezvous's clear errors (no cluster needed) -------------------------------------------------
def _resolver(table: dict[str, list[str]]):
    def getaddrinfo(host, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in table[host]]
    return getaddrinfo


def test_a_first_node_that_does_not_resolve_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(slurm_job.socket, "getaddrinfo", _resolver({}))
    with pytest.raises(RuntimeError, match=r"first node 'gone1' \(MASTER_ADDR, from SLURM_JOB_NODELIST\) does not "
                                           r"resolve here"):
        check_rendezvous("gone1", 2, 1, "gloo")


def test_a_first_node_that_resolves_to_loopback_on_another_node_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(slurm_job.socket, "getaddrinfo", _resolver({"n1": ["127.0.1.1"], "n2": ["10.0.0.2"]}))
    monkeypatch.setattr(slurm_job.socket, "gethostname", lambda: "n2")
    with pytest.raises(RuntimeError, match="resolves to a loopback address here"):
        check_rendezvous("n1", 2, 1, "gloo")
    check_rendezvous("n1", 1, 0, "gloo")                    # one node: loopback is right


def test_gloo_on_a_host_named_for_loopback_needs_gloo_socket_ifname(monkeypatch):
    monkeypatch.setattr(slurm_job.socket, "getaddrinfo", _resolver({"n1": ["127.0.1.1"], "n2": ["10.0.0.2"]}))
    monkeypatch.setattr(slurm_job.socket, "gethostname", lambda: "n1")
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    with pytest.raises(RuntimeError, match="GLOO_SOCKET_IFNAME"):
        check_rendezvous("n1", 2, 0, "gloo")
    check_rendezvous("n1", 2, 0, "nccl")                    # NCCL chooses its interface itself
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "eth0")
    check_rendezvous("n1", 2, 0, "gloo")


def test_resolvable_nodes_pass(monkeypatch):
    monkeypatch.setattr(slurm_job.socket, "getaddrinfo", _resolver({"n1": ["10.0.0.1"], "n2": ["10.0.0.2"]}))
    monkeypatch.setattr(slurm_job.socket, "gethostname", lambda: "n2")
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    check_rendezvous("n1", 2, 1, "gloo")

"""Bad SLURM input refused before submission (issue 21), without a cluster: --slurm-nodes larger than the
partition (SLURM's sinfo answer faked), and a batch that the job's nodes x tasks per node cannot split."""
from __future__ import annotations

import subprocess

import pytest

from registry import get_experiment, slurm
from registry.__main__ import main
from registry.slurm_settings import SlurmSettings
from simclr_core.validation import ConfigError


@pytest.fixture
def fake_slurm(monkeypatch, tmp_path):
    """SLURM's commands 'present' and a partition 'debug' (default) of 2 nodes and 'big' of 8; nothing submits."""
    monkeypatch.setattr(slurm, "require_slurm", lambda: None)
    monkeypatch.setattr(slurm, "partition_nodes",
                        lambda partition: {None: ("debug", 2), "debug": ("debug", 2), "big": ("big", 8)}.get(partition))

    def no_submit(*args, **kwargs):
        raise AssertionError("submitted despite bad input")
    monkeypatch.setattr(slurm.SlurmExecutor, "_submit", no_submit)
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("SIMCLR_SLURM_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "results"


def _run(*flags: str) -> list[str]:
    return ["run", "head_type", "--scale", "smoke", "--only", "linear+32", "--slurm", "--slurm-time-min", "5", *flags]


def test_more_nodes_than_the_partition_is_refused_with_the_valid_range(fake_slurm, capsys):
    assert main(_run("--slurm-nodes", "3")) == 2
    err = capsys.readouterr().err
    assert "--slurm-nodes 3" in err and "partition 'debug'" in err and "choose 1..2 node(s)" in err, err
    assert "default partition" in err
    assert main(_run("--slurm-nodes", "9", "--slurm-partition", "big")) == 2
    err = capsys.readouterr().err
    assert "--slurm-nodes 9" in err and "partition 'big'" in err and "choose 1..8 node(s)" in err, err
    assert not list(fake_slurm.rglob("status.json"))


def test_nodes_are_not_checked_where_slurm_cannot_say(monkeypatch):
    monkeypatch.setattr(slurm, "require_slurm", lambda: None)
    monkeypatch.setattr(slurm, "partition_nodes", lambda partition: None)
    assert slurm.SlurmExecutor(SlurmSettings(nodes=64, time_min=5)).settings.nodes == 64


def test_a_batch_the_world_cannot_split_is_refused_before_anything_is_recorded(fake_slurm, capsys):
    code = main(_run("--slurm-nodes", "2", "--slurm-tasks-per-node", "3", "batch_size=16"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "batch_size 16 is not divisible by the world size 6 (2 node(s) x 3 process(es) per node" in err, err
    assert "--slurm-tasks-per-node 1 | 2 | 4 | 8" in err and "a multiple of 6" in err, err
    assert not list(fake_slurm.rglob("status.json"))


def test_a_sweep_refuses_a_batch_the_world_cannot_split_before_a_study_opens(fake_slurm, capsys):
    code = main(["sweep", "temperature", "batch_size=16", "--slurm", "--slurm-time-min", "5", "--scale", "smoke",
                 "--normalize", "false", "--slurm-nodes", "2", "--slurm-tasks-per-node", "3"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "batch_size 16 is not divisible by the world size 6" in err and "--slurm-tasks-per-node 1 | 2 | 4 | 8" in err
    assert not fake_slurm.exists() or not any(fake_slurm.rglob("*")), "a study or run was recorded"


def test_dispatch_itself_refuses_a_batch_the_world_cannot_split(fake_slurm, tmp_path):
    runs = get_experiment("head_type").runs("smoke", {"batch_size": 9})[:2]
    executor = slurm.SlurmExecutor(SlurmSettings(nodes=2, tasks_per_node=2, time_min=5))
    with pytest.raises(ConfigError, match=r"batch_size 9 is not divisible by the world size 4 .*"
                                          r"with 2 node\(s\), no tasks per node fits, or a batch_size that is a "
                                          r"multiple of 4"):
        executor.dispatch(runs, tmp_path / "store")
    assert not (tmp_path / "store").exists()
    executor.check(get_experiment("head_type").runs("smoke", {"batch_size": 8})[:1])     # 8 = 2 x 2 x 2: fine


def test_partition_nodes_reads_sinfo(monkeypatch):
    answer = "debug* 2\ngpu 3\ngpu 5\n"
    monkeypatch.setattr(slurm.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a[0], 0, stdout=answer, stderr=""))
    assert slurm.partition_nodes(None) == ("debug", 2)
    assert slurm.partition_nodes("gpu") == ("gpu", 8)          # lines of one partition in several states add up
    assert slurm.partition_nodes("nope") is None                # sbatch says "invalid partition" itself
    monkeypatch.setattr(slurm.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a[0], 1, stdout="", stderr="down"))
    assert slurm.partition_nodes(None) is None


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_results_folder_without_symlinks_is_refused_before_any_job(fake_slurm, exfat_disk, monkeypatch, capsys,
                                                                      command):
    # submitit links each job's files with symbolic links, which exFAT cannot make: the jobs would be submitted
    # and fail without a word (their pickles never reach the job folder).
    results = exfat_disk / "results"
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    argv = _run() if command == "run" else ["sweep", "temperature", "--scale", "smoke", "--slurm",
                                            "--slurm-time-min", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--slurm keeps its job files in {results / '.submitit'}" in err and "No job was submitted." in err, err
    assert "symbolic links" in err and "--results-dir" in err
    assert not list(results.rglob("status.json")) and not list(results.rglob("*.journal"))


def test_a_cpu_job_asking_for_less_memory_than_its_run_needs_is_refused(fake_slurm, capsys):
    # No GPUs: the run trains in the node's memory, which SLURM caps at --slurm-mem-gb (and kills past it).
    code = main(_run("--slurm-mem-gb", "1", "batch_size=512"))
    err = capsys.readouterr().err
    assert code == 2 and "needs about" in err and "more than the job's mem_gb=1" in err, err
    assert "raise --slurm-mem-gb to at least" in err and "No job was submitted" in err
    assert not list(fake_slurm.rglob("status.json"))
    # Two processes per node each hold half the batch, and a process of its own each.
    run = get_experiment("head_type").runs("smoke", {"batch_size": "512"})[0]
    one = SlurmSettings(mem_gb=64.0, time_min=5)
    slurm.check_cpu_job_memory([run], one)
    with pytest.raises(ConfigError, match=r"2 process\(es\) per node, each with 256 of its batch_size 512"):
        slurm.check_cpu_job_memory([run], SlurmSettings(mem_gb=2.0, tasks_per_node=2, time_min=5))


def test_jobs_with_gpus_or_without_a_memory_setting_are_not_judged_on_host_memory():
    run = get_experiment("head_type").runs("smoke", {"batch_size": "512"})[0]
    slurm.check_cpu_job_memory([run], SlurmSettings(mem_gb=0.1, gpus_per_node=1, time_min=5))
    slurm.check_cpu_job_memory([run], SlurmSettings(time_min=5))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flag", ["--slurm-tasks-per-node", "--slurm-gpus-per-node"])
def test_a_huge_process_count_is_refused_at_once(fake_slurm, capsys, flag):
    # The tasks per node that would fit were sought up to twice the count asked: 2 * 10**12 divisions.
    assert main(_run(flag, str(10 ** 12))) == 2
    err = capsys.readouterr().err
    assert f"world size {10 ** 12} " in err and "--slurm-tasks-per-node 1 | 2 | 4 | 8 | 16 | 32," in err, err
    assert not list(fake_slurm.rglob("status.json"))


@pytest.mark.parametrize("flags, message", [
    (("--slurm-mem-gb", "inf"), "SLURM setting mem_gb=inf (from flags) must be a positive number"),
    (("--slurm-mem-gb", "nan"), "SLURM setting mem_gb=nan (from flags) must be a positive number"),
    (("--slurm-partition", ""), "SLURM setting partition='' (from flags) must name one"),
    (("--slurm-account", " "), "SLURM setting account=' ' (from flags) must name one"),
    (("--slurm-qos", ""), "SLURM setting qos='' (from flags) must name one"),
    (("--slurm-constraint", ""), "SLURM setting constraint='' (from flags) must name one"),
])
def test_settings_sbatch_would_refuse_are_refused_before_submission(fake_slurm, capsys, flags, message):
    # GPU jobs: no host-memory check stands between a mem_gb of nan and submitit.
    assert main(_run("--slurm-gpus-per-node", "1", *flags)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not list(fake_slurm.rglob("status.json"))


@pytest.mark.parametrize("content, message", [
    (b"time_min = 5\nmem_gb = inf\n", "mem_gb=inf (from {path}) must be a positive number"),
    (b"\xff\xfe\x00time_min = 5\n", "SLURM config {path} is not valid TOML"),
])
def test_a_config_file_sbatch_would_refuse_is_named(fake_slurm, tmp_path, capsys, content, message):
    path = tmp_path / "slurm.toml"
    path.write_bytes(content)
    assert main(_run("--slurm-gpus-per-node", "1", "--slurm-config", str(path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(path=path) in err and "Traceback" not in err, err


def test_a_config_path_that_is_a_folder_is_not_called_missing(fake_slurm, tmp_path, capsys):
    assert main(_run("--slurm-config", str(tmp_path))) == 2
    assert f"SLURM config {tmp_path} is not a file (named by --slurm-config)" in capsys.readouterr().err


def test_the_warnings_lead_time_has_a_flag_checked_against_its_range_and_the_time_limit(fake_slurm, capsys,
                                                                                         monkeypatch):
    """signal_delay_s (SIGUSR2 before the time limit) could only be set in the SLURM config file."""
    def report_settings(self, runs):
        raise ConfigError(f"would submit with signal_delay_s={self.settings.signal_delay_s}")
    monkeypatch.setattr(slurm.SlurmExecutor, "check", report_settings)
    assert main(_run("--slurm-signal-delay-s", "30")) == 2
    assert "would submit with signal_delay_s=30" in capsys.readouterr().err
    for bad in ("-1", "65536"):
        assert main(_run("--slurm-signal-delay-s", bad)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"signal_delay_s={bad} (from flags) must be an integer from 0 to 65535" in err
    # A 5-minute limit leaves 300 - 60 (SLURM may signal that much early) - 60 (the least training) = 180 s at most.
    assert main(_run("--slurm-signal-delay-s", "181")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "time_min=5 (from flags) leaves no time to train" in err, err
    assert "choose --slurm-time-min 6 or more, or --slurm-signal-delay-s 180 or less" in err, err
    assert main(_run("--slurm-signal-delay-s", "180")) == 2
    assert "would submit with signal_delay_s=180" in capsys.readouterr().err
    assert not list(fake_slurm.rglob("status.json"))


def test_submitting_shows_no_hugging_face_progress_bars(fake_slurm, capfd, monkeypatch, tmp_path):
    """Checking the inputs before submission builds Hugging Face's Arrow copy of a parquet dataset the first time,
    and its "Generating train split: 5000 examples" bars cluttered the submission's terminal."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))     # a first look
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))

    def stop_before_sbatch(self, *args, **kwargs):
        raise ConfigError("checked; not submitted")
    monkeypatch.setattr(slurm.SlurmExecutor, "_submit", stop_before_sbatch)
    assert main(["run", "temperature_norm", "--scale", "smoke", "--slurm", "--slurm-time-min", "5"]) == 2
    out, err = capfd.readouterr()
    assert any((tmp_path / "hf").iterdir()), "the check built no Arrow copy: the test shows nothing"
    assert err == "error: checked; not submitted\n", err
    assert "Generating" not in out
    assert datasets.is_progress_bar_enabled()         # hidden for the check only

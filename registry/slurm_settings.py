"""What a SLURM job asks for: from a user config file, overridden by command-line flags. No cluster facts here.

The file is TOML, found at --slurm-config, else $SIMCLR_SLURM_CONFIG, else
$XDG_CONFIG_HOME/simclr_harness/slurm.toml (~/.config/...); a missing default file means "no settings":

    partition = "gpu"             # sbatch --partition
    account = "my-project"        # sbatch --account
    qos = "normal"                # sbatch --qos
    constraint = "a100"           # sbatch --constraint
    nodes = 1                     # nodes per run
    gpus_per_node = 8             # sbatch --gpus-per-node
    tasks_per_node = 8            # training processes per node (default: gpus_per_node, else 1)
    cpus_per_task = 10
    mem_gb = 480                  # per node
    time_min = 1440               # time limit of one attempt; past it the job is requeued from its checkpoint
    max_requeues = 3              # requeues after time limits (preemptions do not count unless near the limit)
    array_parallelism = 16        # at most this many runs of one array at once
    signal_delay_s = 120          # SIGUSR2 this long before the time limit, to checkpoint and requeue (0: none)
    setup = ["module load cuda/12.4"]        # shell lines run before the job starts
    srun_args = ["--cpu-bind=none"]          # extra srun arguments
    [sbatch]                                 # any other sbatch option: --key=value (true: --key)
    exclusive = true

Every run of a grid is one element of a job array; a run with N nodes x K tasks trains N*K processes (one per
GPU: NCCL; or K per node on CPUs: gloo) whose negatives and BatchNorm statistics are global.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from simclr_core.validation import ConfigError, closest

CONFIG_ENV = "SIMCLR_SLURM_CONFIG"
# SLURM may send the --signal warning up to this many seconds before it was asked for (sbatch(1), --signal).
SIGNAL_EARLY_S = 60
# The least an attempt must be sure to train before that warning stops it and requeues the job.
MIN_TRAINING_S = 60
# Settings with an upper bound, and where it comes from.
_HIGHEST = {"signal_delay_s": (65535, "sbatch --signal's range")}


@dataclass(frozen=True)
class SlurmSettings:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time_min: int | None = None
    max_requeues: int = 3
    array_parallelism: int | None = None
    signal_delay_s: int = 120
    setup: tuple[str, ...] = ()
    srun_args: tuple[str, ...] = ()
    sbatch: Mapping[str, Any] = field(default_factory=dict)
    # Where the settings came from, for messages ("flags", a file path).
    source: str = "defaults"

    def __post_init__(self) -> None:
        for name in ("nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "time_min", "max_requeues",
                     "array_parallelism", "signal_delay_s"):
            value = getattr(self, name)
            lowest = 0 if name in ("gpus_per_node", "max_requeues", "signal_delay_s") else 1
            highest, why = _HIGHEST.get(name, (math.inf, ""))
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not lowest <= value <= highest):
                valid = f"from {lowest} to {highest} ({why})" if name in _HIGHEST else f">= {lowest}"
                raise ConfigError(f"SLURM setting {name}={value!r} (from {self.source}) must be an integer {valid}")
        if self.mem_gb is not None and (isinstance(self.mem_gb, bool) or not isinstance(self.mem_gb, (int, float))
                                        or not 0 < self.mem_gb < math.inf):     # nan fails both comparisons
            raise ConfigError(f"SLURM setting mem_gb={self.mem_gb!r} (from {self.source}) must be a positive number")
        for name in ("partition", "account", "qos", "constraint"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"SLURM setting {name}={value!r} (from {self.source}) must name one (sbatch "
                                  f"--{name}=NAME); leave it out for SLURM's default")
        for name in ("setup", "srun_args"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"SLURM setting {name}={value!r} (from {self.source}) must be a list of strings")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.sbatch, Mapping):
            raise ConfigError(f"SLURM setting sbatch={self.sbatch!r} (from {self.source}) must be a table of "
                              "sbatch options, e.g. [sbatch] exclusive = true")

    @property
    def processes_per_node(self) -> int:
        """Training processes per node: tasks_per_node if given, else one per GPU, else one."""
        return self.tasks_per_node or self.gpus_per_node or 1

    def require_time_limit(self) -> None:
        if self.time_min is None:
            raise ConfigError("--slurm needs a time limit per attempt: --slurm-time-min MINUTES, or time_min in "
                              f"{default_config_path()} (or the file named by ${CONFIG_ENV}); a run that reaches it "
                              f"is requeued from its checkpoint up to max_requeues={self.max_requeues} times")
        longest = self.time_min * 60 - SIGNAL_EARLY_S - MIN_TRAINING_S
        if self.signal_delay_s and self.signal_delay_s > longest:
            shortest = math.ceil((self.signal_delay_s + SIGNAL_EARLY_S + MIN_TRAINING_S) / 60)
            smaller = (f"--slurm-signal-delay-s {longest} or less" if longest > 0 else
                       "--slurm-signal-delay-s 0 (no warning: a run that reaches the limit stops there, TIMEOUT)")
            raise ConfigError(
                f"time_min={self.time_min} (from {self.source}) leaves no time to train: SLURM sends SIGUSR2 "
                f"signal_delay_s={self.signal_delay_s} s before the time limit (and up to {SIGNAL_EARLY_S} s earlier), "
                "so every attempt would be stopped and requeued as soon as it starts, until max_requeues is spent "
                f"and the run fails; choose --slurm-time-min {shortest} or more, or {smaller}")

    def submitit_parameters(self) -> dict[str, Any]:
        """Keyword arguments for submitit.AutoExecutor.update_parameters (max_requeues goes to its constructor)."""
        self.require_time_limit()
        params: dict[str, Any] = {
            "nodes": self.nodes, "tasks_per_node": self.processes_per_node, "timeout_min": self.time_min,
            "slurm_signal_delay_s": self.signal_delay_s,
        }
        optional = {"slurm_partition": self.partition, "slurm_account": self.account, "slurm_qos": self.qos,
                    "slurm_constraint": self.constraint, "cpus_per_task": self.cpus_per_task,
                    "mem_gb": self.mem_gb, "slurm_array_parallelism": self.array_parallelism,
                    "gpus_per_node": self.gpus_per_node or None}
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.setup:
            params["slurm_setup"] = list(self.setup)
        if self.srun_args:
            params["slurm_srun_args"] = list(self.srun_args)
        if self.sbatch:
            params["slurm_additional_parameters"] = dict(self.sbatch)
        return params

    def summary(self) -> str:
        parts = [f"{self.nodes} node(s) x {self.processes_per_node} process(es)"]
        if self.gpus_per_node:
            parts.append(f"{self.gpus_per_node} GPU(s)/node")
        for name in ("partition", "account", "qos", "cpus_per_task", "mem_gb", "time_min"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)}")
        return ", ".join(parts)


KEYS = tuple(f.name for f in fields(SlurmSettings) if f.name != "source")


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "simclr_harness" / "slurm.toml"


def config_path(explicit: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """(path, required): --slurm-config, else $SIMCLR_SLURM_CONFIG (both must exist), else the default (optional)."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return (Path(chosen).expanduser(), True) if chosen else (default_config_path(), False)


def _parse_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"reading {path} needs Python >= 3.11 or the 'tomli' package") from None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"SLURM config {path} is not valid TOML: {exc}") from None


def _meant(unknown: list[str]) -> str:
    """"; did you mean 'x', 'y'?" for the settings the `unknown` names most likely meant ("" for none)."""
    meant = [m for m in (closest(key, KEYS) for key in unknown) if m is not None]
    return f"; did you mean {', '.join(map(repr, meant))}?" if meant else ""


def settings_from_mapping(values: Mapping[str, Any], source: str) -> SlurmSettings:
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ConfigError(f"SLURM config {source}: unknown setting(s) {', '.join(map(repr, unknown))}; valid: "
                          f"{', '.join(KEYS)} (other sbatch options go in an [sbatch] table){_meant(unknown)}")
    return SlurmSettings(**values, source=source)


def load_settings(explicit: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None) -> SlurmSettings:
    """The config file's settings (if any), then every override that is not None (flags win)."""
    path, required = config_path(explicit)
    if path.is_file():
        settings = settings_from_mapping(_parse_toml(path), str(path))
    elif required:
        raise ConfigError(f"SLURM config {path} {'is not a file' if path.exists() else 'does not exist'} (named by "
                          f"{'--slurm-config' if explicit else '$' + CONFIG_ENV})")
    else:
        settings = SlurmSettings()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown SLURM setting(s) {unknown}; valid: {', '.join(KEYS)}{_meant(unknown)}")
    if not given:
        return settings
    source = f"{settings.source} + flags" if settings.source != "defaults" else "flags"
    return replace(settings, **given, source=source)


# ---- command line ------------------------------------------------------------------------------------
_FLAGS: tuple[tuple[str, type, str, str], ...] = (
    ("partition", str, "NAME", "partition (sbatch --partition)"),
    ("account", str, "NAME", "account to charge (sbatch --account)"),
    ("qos", str, "NAME", "quality of service (sbatch --qos)"),
    ("constraint", str, "FEATURES", "node features (sbatch --constraint)"),
    ("nodes", int, "N", "nodes per run (default 1)"),
    ("gpus_per_node", int, "G", "GPUs per node; one training process per GPU (NCCL)"),
    ("tasks_per_node", int, "K", "training processes per node (default: GPUs per node, else 1; on CPUs: gloo)"),
    ("cpus_per_task", int, "C", "CPUs per training process"),
    ("mem_gb", float, "GB", "memory per node"),
    ("time_min", int, "MINUTES", "time limit of one attempt; a run that reaches it is requeued from its checkpoint"),
    ("max_requeues", int, "R", "requeues after time limits before giving up (default 3)"),
    ("array_parallelism", int, "P", "at most P runs of the array at once"),
    ("signal_delay_s", int, "SECONDS", "SIGUSR2 this long before the time limit, to checkpoint and requeue "
                                       f"(default 120; 0: none; at most {_HIGHEST['signal_delay_s'][0]})"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `run` verb's SLURM flags (they override the config file)."""
    group = parser.add_argument_group(
        "SLURM (with --slurm)",
        f"Flags override the config file: --slurm-config, else ${CONFIG_ENV}, else {default_config_path()}.")
    group.add_argument("--slurm-config", metavar="PATH", help="TOML file of SLURM settings (see registry/slurm_settings.py)")
    for name, kind, metavar, text in _FLAGS:
        group.add_argument("--slurm-" + name.replace("_", "-"), dest="slurm_" + name, type=kind, metavar=metavar,
                           help=text)
    group.add_argument("--slurm-wait", action="store_true",
                       help="wait for the jobs and report each run's outcome (default: submit and return)")


def settings_from_args(args: argparse.Namespace) -> SlurmSettings:
    return load_settings(args.slurm_config, {name: getattr(args, "slurm_" + name) for name, *_ in _FLAGS})


def stray_slurm_flags(args: argparse.Namespace) -> list[str]:
    """SLURM flags given without --slurm (they would be ignored silently)."""
    names = ["config", *(name for name, *_ in _FLAGS), "wait"]
    return ["--slurm-" + n.replace("_", "-") for n in names if getattr(args, "slurm_" + n, None) not in (None, False)]

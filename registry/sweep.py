"""python -m registry sweep: an Optuna search over one axis of a declared experiment, run as registry runs.

    python -m registry sweep temperature                      Table 5's grid at cpu scale, both l2 settings
    python -m registry sweep temperature --sampler tpe --trials 20 --normalize true --scale smoke
    python -m registry sweep temperature --slurm --storage journal --max-parallel 8
    python -m registry sweep temperature --scale cpu eval.knn_k=50     (key=value: config overrides, final units)

Sweeps (declared in experiments/sweeps.py): `temperature` searches loss.temperature of the experiment
`temperature_norm` (Table 5), one study per --normalize value. `--sampler grid` (default) asks exactly the
temperatures Table 5 declares (0.05, 0.1, 0.5, 1 with l2 normalisation; 10, 100 without); `--sampler tpe`
goes beyond the paper, log-uniformly in [0.01, 10] normalised and [1, 1000] unnormalised (default 20 trials;
suggestions rounded to 3 significant digits).

Every trial is a registry run of temperature_norm: its temperature becomes an axis point, then a RunConfig
and a run id. A trial at a known configuration reuses the stored result without training (grid trials are
the very runs `python -m registry run temperature_norm` makes). The objective, maximised, is the
experiment's metric (linear_top1) where the scale evaluates it (cpu, gpu, paper), else knn_top1 (smoke).

Studies are named `<experiment>-<hash8>`, the hash covering the resolved base config, scale, split value,
sampler, search space and metric. Storage (--storage): `sqlite` (default locally):
<results>/optuna/<study>.db; `journal` (default with --slurm): <results>/optuna/<study>.journal, Optuna's
journal file with NFS-safe locks, for many drivers on shared disk; `journal:///path` for another journal
file; or any SQLAlchemy URL (sqlite:///..., postgresql://...). --trials N is the size the study should
reach: running the same command again continues it (trials a killed driver left running are failed and
re-asked with the same temperature, whose run resumes from its checkpoint) and asks nothing once it is
complete. A trial whose run failed stays failed; --retry-failed asks it again. After every trial
<results>/optuna/<study>.json records its trials and best temperature.

Locally trials run one after another (--max-parallel K: K at a time, in K processes; with GPUs each process sees
one GPU, at most one trial per GPU); at a scale planned for a GPU on a machine without one they are refused, naming
their estimated CPU-hours, unless --allow-cpu (registry/scale_hardware.py). With --slurm, K
trials (default 4) are in flight as SLURM jobs; the driver tells each as its run finishes in the store.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from registry import scale_hardware
from registry.launch import (Executor, LocalExecutor, Outcome, TrainFn, exit_at_once_on_another_interrupt,
                             make_executor, require_same_images, show_command)
from registry.scale_hardware import ALLOW_FLAG, CpuInstead, added, allow_help, hours_on, scaled, still_to_do
from registry.scales import DEFAULT_SCALE, SCALES
from registry.slurm_settings import add_arguments as add_slurm_arguments, settings_from_args, stray_slurm_flags
from registry.store import RunStore, default_results_dir
from registry.sweep_space import SAMPLERS, SWEEPS, StudyPlan, get_sweep, plan_studies
from registry.sweep_study import (STORAGE_KINDS, StudyDriver, asked_runs, check_storage, open_study_at,
                                  storage_disk_error, storage_url)
from registry.sweep_study import reask_cancelled, retry_failed as retry_failed_trials
from registry.sweep_summary import study_summary, summary_path, write_summary
from simclr_core.validation import ConfigError, require_choice, require_range

DEFAULT_TPE_TRIALS = 20
DEFAULT_SLURM_PARALLEL = 4
NORMALIZE_CHOICES = {"true": (True,), "false": (False,), "both": (True, False)}


def _splits(sweep_name: str, normalize: str | None) -> tuple[Any, ...] | None:
    sweep = get_sweep(sweep_name)
    if normalize is None:
        return None
    require_choice("--normalize", normalize, NORMALIZE_CHOICES)
    if sweep.split_axis != "loss.normalize":
        raise ConfigError(f"--normalize does not apply to sweep {sweep.name!r}; it applies to: "
                          + ", ".join(s.name for s in SWEEPS.values() if s.split_axis == "loss.normalize"))
    return NORMALIZE_CHOICES[normalize]


def _target(plan: StudyPlan, trials: int | None) -> int:
    if plan.sampler == "tpe":
        return DEFAULT_TPE_TRIALS if trials is None else trials
    if trials is not None and trials > len(plan.grid):
        raise ConfigError(f"--trials {trials} exceeds the {len(plan.grid)} grid values of {plan.split_label} "
                          f"{list(plan.grid)}; the grid sampler asks each once (use --sampler tpe to go beyond)")
    return len(plan.grid) if trials is None else trials


class _TellOnOutcome:
    """LocalExecutor's on_outcome hook: tell a trial as soon as its run ends, not after the whole batch."""

    def __init__(self) -> None:
        self.driver: StudyDriver | None = None

    def __call__(self, outcome: Outcome) -> None:
        if self.driver is not None:
            self.driver.settle()


def run_sweep(name: str, *, trials: int | None = None, sampler: str = "grid", storage: str | None = None,
              scale: str = DEFAULT_SCALE, normalize: str | None = None, results_dir: str | None = None,
              slurm: bool = False, slurm_settings: Any = None, max_parallel: int | None = None,
              overrides: dict[str, Any] | None = None, train_fn: TrainFn | str | None = None,
              executor: Executor | None = None, sampler_seed: int = 0, retry_failed: bool = False,
              poll_s: float | None = None, report: Callable[[str], None] = print,
              allow_cpu: bool = False) -> list[dict[str, Any]]:
    """Run (or continue) the sweep's studies; returns their summaries (also written as JSON).

    Every check that can fail (names, numbers, storage, SLURM wiring, config validity) runs before a study
    is opened or a run is recorded. `executor` replaces the one chosen from `slurm`/`max_parallel`;
    `slurm_settings` (registry.slurm_settings.SlurmSettings, None: the user's config file) go to SLURM jobs.
    Local trials at a scale planned for a GPU on a machine without one are refused unless `allow_cpu`
    (registry/scale_hardware.py).
    """
    # ---- validate everything ---------------------------------------------------------------------------
    get_sweep(name)
    if trials is not None:
        require_range("--trials", trials, low=1)
        if not isinstance(trials, int):
            raise ConfigError(f"--trials={trials!r} must be a whole number")
    require_choice("--sampler", sampler, SAMPLERS)
    if storage not in (None, *STORAGE_KINDS):
        storage_url(storage, "probe", ".")                      # raises on a malformed spec
    parallel = max_parallel if max_parallel is not None else (DEFAULT_SLURM_PARALLEL if slurm else 1)
    require_range("--max-parallel", parallel, low=1)
    plans = plan_studies(name, scale=scale, sampler=sampler, splits=_splits(name, normalize), overrides=overrides)
    targets = [_target(plan, trials) for plan in plans]
    results = default_results_dir(results_dir)
    urls = [storage_url(storage or ("journal" if slurm else "sqlite"), plan.study_name, results) for plan in plans]
    for url in dict.fromkeys(urls):     # every study's storage, before the first study's trials run
        check_storage(url)
    if slurm and allow_cpu:
        raise ConfigError(f"{ALLOW_FLAG} applies to local trials; under --slurm they train on the cluster's nodes "
                          "(their GPUs: --slurm-gpus-per-node)")
    local = not slurm and (executor is None or isinstance(executor, LocalExecutor))
    on_cpu = sweep_on_cpu(plans, targets, results, retry_failed) if local else None
    if on_cpu is not None and not allow_cpu:
        raise ConfigError(on_cpu.refusal())
    relay = _TellOnOutcome()
    if executor is None:
        # SLURM: submit and return (wait=False); the driver polls the store and tells trials as runs end.
        executor = (make_executor("slurm", settings=slurm_settings, train_fn=train_fn, wait=False) if slurm
                    else LocalExecutor(max_parallel=parallel, train_fn=train_fn, on_outcome=relay))
    # E.g. a batch the SLURM job's processes cannot split: every declared trial (grid), or both ends of the range.
    declared = [run for plan in plans for value in (plan.grid or (plan.low, plan.high)) for run in plan.runs_at(value)]
    executor.check(declared)
    executor.check_results(RunStore(results).ensure_writable().root)
    require_same_images(declared, RunStore(results), again="")   # a finished trial of another folder is not ours
    if on_cpu is not None:
        report(on_cpu.allowed())
    poll_s = poll_s if poll_s is not None else (30.0 if slurm else 5.0)
    studies = [open_study_at(plan, url, sampler_seed) for plan, url in zip(plans, urls)]
    # A continued TPE study's trials ran at values no grid declares: their runs too must hold these images.
    require_same_images([run for plan, study in zip(plans, studies) for run in asked_runs(plan, study)],
                        RunStore(results), again="")

    # ---- one study per split value ----------------------------------------------------------------------
    summaries = []
    for plan, target, url, study in zip(plans, targets, urls, studies):
        def save(plan: StudyPlan = plan, study=study, url: str = url, target: int = target) -> dict[str, Any]:
            summary = study_summary(plan, study, url, target)
            write_summary(results, summary)
            return summary

        report(f"study {plan.study_name}: {plan.sweep.name} over {plan.sweep.axis}, {plan.split_label}, "
               f"sampler {plan.sampler}, scale {plan.scale.name}, objective {plan.metric}; target {target} trials; "
               f"storage {url}")
        driver = StudyDriver(plan, study, executor, results, report=report, poll_s=poll_s, on_tell=save)
        reask_cancelled(study, report)
        if retry_failed:
            retry_failed_trials(study, report)
        relay.driver = driver
        driver.drive(target, parallel)
        summaries.append({**save(), "failed_now": driver.failed_now})
    return summaries


def sweep_on_cpu(plans: Sequence[StudyPlan], targets: Sequence[int], results: Any,
                 retry_failed: bool) -> CpuInstead | None:
    """What the studies' trials still to ask would cost on this CPU, where their scale is planned for a GPU and this
    machine has none (registry/scale_hardware.py); None otherwise, or when nothing is left to ask. A grid study's
    trials are the grid's runs not yet done; a TPE study's, its target less the trials its summary file
    (sweep_summary.py: written after every tell) counts as finished, each costing the mean of its range's two ends."""
    scale = plans[0].scale
    if scale.hardware != "gpu" or scale_hardware.gpu_here():       # the module's: the one question tests fake
        return None
    store = RunStore(results)
    grid_runs, partial_grid, trials = [], False, 0
    tpe = {"cpu": hours_on([], store, "cpu"), "gpu": hours_on([], store, "gpu")}
    for plan, target in zip(plans, targets):
        if plan.sampler == "grid":
            grid_runs += [run for value in plan.grid for run in plan.runs_at(value)]
            partial_grid |= target < len(plan.grid)
            continue
        left = target - _finished_trials(results, plan.study_name, retry_failed)
        if left <= 0:
            continue
        trials += left
        for hardware in tpe:
            low, high = (hours_on(plan.runs_at(value), store, hardware) for value in (plan.low, plan.high))
            tpe[hardware] = added(tpe[hardware], scaled(added(low, high), left / 2))
    grid_todo = still_to_do(grid_runs, store)
    if not grid_todo and not trials:
        return None
    what = " and ".join(part for part in (
        f"{'up to ' if partial_grid else ''}the grid's {len(grid_todo)} run(s) still to do" if grid_todo else "",
        f"up to {trials} TPE trial(s) still to ask" if trials else "") if part)
    return CpuInstead(scale, what, added(tpe["cpu"], hours_on(grid_todo, store, "cpu")),
                      added(tpe["gpu"], hours_on(grid_todo, store, "gpu")))


def _finished_trials(results: Any, study_name: str, retry_failed: bool) -> int:
    """Trials the study's summary file counts toward its target: complete ones, and failed ones no trial asks
    again (unless --retry-failed asks them; a cancelled one the next sweep asks in any case); 0 without a readable
    summary."""
    try:
        counts = json.loads(summary_path(results, study_name).read_text())
        # A summary written before `cancelled` was recorded counts none.
        failed = int(counts["failed"]) - int(counts.get("cancelled", 0))
        return int(counts["counts"]["COMPLETE"]) + (0 if retry_failed else failed)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _print_table(summaries: Sequence[dict[str, Any]], results_dir: str | None) -> None:
    print(f"{'study':<28} {'split':<22} {'sampler':<7} {'done':>5} {'failed':>6} {'retried':>7}  best")
    for s in summaries:
        best = s["best"]
        text = (f"{s['axis']}={best[s['axis']]:g} {s['metric']}={best['value']:.2f}  ({best['run_id']})"
                if best else "-")
        split = f"{s['split_axis']}={s['split']}" if s["split_axis"] else "-"
        print(f"{s['study']:<28} {split:<22} {s['sampler']:<7} {s['counts']['COMPLETE']:>5} {s['failed']:>6} "
              f"{s['retried']:>7}  {text}")
    if any(s["retried"] for s in summaries):
        print("retried: failed trials asked again (a killed driver's, a cancelled job's, --retry-failed); each "
              "retry is a trial of its own, counted done or failed")
    for s in summaries:
        print(f"summary: {summary_path(default_results_dir(results_dir), s['study'])}")
    if summaries:
        first = summaries[0]
        print(f"runs: {show_command(first['experiment'], first['scale'], results_dir, first.get('overrides'))} lists "
              "every trial's run (after the declared ones)")


# ---- command line ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="SWEEP",
                        help="sweep name: " + ", ".join(f"{s.name} ({s.summary})" for s in SWEEPS.values()))
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides applied last, in final units (they change the study's name)")
    parser.add_argument("--trials", type=int, default=None, metavar="N",
                        help=f"trials each study should hold (grid: default and maximum = the grid's size; "
                             f"tpe: default {DEFAULT_TPE_TRIALS}); a re-run continues up to N")
    parser.add_argument("--sampler", default="grid", metavar="{" + ",".join(SAMPLERS) + "}",
                        help="grid: exactly the experiment's declared (paper) values; tpe: beyond them (default grid)")
    parser.add_argument("--normalize", default=None, metavar="{true,false,both}",
                        help="temperature sweep: studies with l2 normalisation, without, or both (default both)")
    parser.add_argument("--storage", default=None, metavar="SPEC",
                        help="sqlite (default), journal (default with --slurm), journal:///path, or an RDB URL")
    parser.add_argument("--scale", default=DEFAULT_SCALE, metavar="{" + ",".join(SCALES) + "}",
                        help=f"compute scale (default {DEFAULT_SCALE})")
    parser.add_argument("--slurm", action="store_true",
                        help="run trials as SLURM jobs (registry/slurm.py); --slurm-wait is implied")
    parser.add_argument("--max-parallel", type=int, default=None, metavar="K",
                        help=f"trials in flight: local processes (default 1; with GPUs one per GPU at most) or SLURM jobs "
                             f"(default {DEFAULT_SLURM_PARALLEL})")
    parser.add_argument(ALLOW_FLAG, action="store_true", help=allow_help())
    parser.add_argument("--retry-failed", action="store_true",
                        help="ask the study's failed trials once more (their runs are retried)")
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    parser.add_argument("--poll-seconds", type=float, default=None,
                        help="how often to look for finished runs submitted elsewhere (default 30 with --slurm)")
    parser.add_argument("--results-dir", default=None,
                        help="results folder (default: $SIMCLR_RESULTS_DIR, else ./results)")
    add_slurm_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from registry.overrides import parse_overrides
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stray = [flag for flag in stray_slurm_flags(args) if flag != "--slurm-wait"]
    if stray and not args.slurm:
        raise ConfigError(f"{', '.join(stray)} only apply with --slurm")
    try:
        summaries = run_sweep(
            args.name, trials=args.trials, sampler=args.sampler, storage=args.storage, scale=args.scale,
            normalize=args.normalize, results_dir=args.results_dir, slurm=args.slurm,
            slurm_settings=settings_from_args(args) if args.slurm else None,
            max_parallel=args.max_parallel, overrides=parse_overrides(args.overrides),
            sampler_seed=args.sampler_seed, retry_failed=args.retry_failed, poll_s=args.poll_seconds,
            report=lambda line: print(line, flush=True), allow_cpu=args.allow_cpu)
    except Exception as exc:       # the study storage's disk refusing a write: main's disk message
        refused = storage_disk_error(exc)
        if refused is None or isinstance(exc, OSError):
            raise
        where = args.storage or f"sqlite, in {default_results_dir(args.results_dir) / 'optuna'}"
        raise OSError(refused[0], f"the study storage ({where}) could not record a result ({refused[1]}); the "
                                  "trial in flight is failed and asked again when the sweep continues") from exc
    except KeyboardInterrupt:
        exit_at_once_on_another_interrupt()
        print("interrupted: run the same command again to continue the study (trials left running are failed "
              "and re-asked; their runs resume from checkpoints, finished runs are reused)", file=sys.stderr)
        return 130
    _print_table(summaries, args.results_dir)
    return 1 if any(s["failed_now"] for s in summaries) else 0

"""python -m registry: list, inspect, validate and run the paper's ablations.

    python -m registry list [PATTERN]                 declared experiments (shell-style pattern)
    python -m registry show NAME [--scale S]          its runs, their ids and states; tracebacks of failures
    python -m registry validate                       every declaration resolves at every scale and has
                                                      published rows; nothing runs
    python -m registry scales                         the scales: purpose, what they train, hours per ablation
    python -m registry run NAME [--scale S] [--seeds N ...] [--dry-run] [--only GLOB] [--max-parallel K]
                                                      [--runs-per-gpu K] [--slurm | --allow-cpu] [key=value ...]
    python -m registry status                         runs per experiment and state in the results folder
    python -m registry report [...]                   (reports/cli.py)
    python -m registry sweep [...]                    (registry/sweep.py)

Results go to --results-dir, else $SIMCLR_RESULTS_DIR, else ./results. Running again skips finished runs
and resumes interrupted ones from their checkpoint.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import signal
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

from registry import sweep as sweep_verb
from registry.claim import describe_claim, read_claim, try_claim
from registry.cli_parser import SuggestingParser, stray_words
from registry.commands import GROUP, INSTALL_HINT, Command, add_unavailable, plugin_commands
from registry.declare import Experiment, Run, cases
from registry.deviations import setting_deviations
from registry.discover import experiment_folders, get_experiment, list_experiments
from registry.host_memory import host_fit
from registry.launch import (NOT_STARTED, Outcome, exit_at_once_on_another_interrupt, make_executor,
                             raise_on_sigterm, redo_command, require_same_images, resolve_train_fn,
                             show_command)
from registry.overrides import parse_overrides
from registry.placement import plan_placement
from registry.plan import cmd_scales, plan_notes, print_plan
from registry.plan_refusals import refusal_lines
from registry.published import published_cells, unmatched_points
from registry.pretraining import REDO_FIELD
from registry.provenance import code_version
from registry.run_id import canonical_json
from registry.slurm_state import reconcile
from registry.scale_hardware import ALLOW_FLAG, allow_help, cpu_instead_of_gpu, still_to_do
from registry.scales import DEFAULT_SCALE, SCALES, Scale, get_scale
from registry.slurm_settings import add_arguments as add_slurm_arguments, settings_from_args, stray_slurm_flags
from registry.store import STATES, RunStore, flatten_config, now_iso
from registry.sweep_space import SWEEPS, plan_studies
from simclr_core.atomic_files import disk_trouble
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError, require_choice
from simclr_core.warning_format import print_warnings_on_one_line

AGAIN = "run the same command again; finished runs are kept and unfinished ones resume"


# ---- helpers -----------------------------------------------------------------------------------------
def select(runs: list[Run], patterns: Sequence[str] | None) -> list[Run]:
    """Runs whose axis label, id (with or without the experiment's folder) or hash matches any of the shell-style
    patterns (all runs if none)."""
    if not patterns:
        return runs
    chosen = [r for r in runs if any(fnmatch.fnmatchcase(text, p) for p in patterns
                                     for text in (r.label, r.run_id, r.run_id.rpartition("/")[2], r.hash))]
    if not chosen:
        labels = ", ".join(r.label for r in runs[:12]) + (", ..." if len(runs) > 12 else "")
        raise ConfigError(f"--only {' '.join(patterns)!r} matches no run; run labels look like: {labels} "
                          f"(ids: {runs[0].run_id}, ...)")
    return chosen


def _metric_text(store: RunStore, run: Run, experiment: Experiment) -> str:
    final = store.final(run.run_id) or {}
    keys = [experiment.metric] + sorted(k for k in final if k.endswith("_top1") and k != experiment.metric)
    return "  ".join(f"{k}={final[k]:.2f}" for k in keys if isinstance(final.get(k), (int, float)))


def _indent(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip().splitlines())


# ---- verbs -----------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    names = list_experiments(args.pattern)
    if not names:
        print(f"no experiment matches {args.pattern!r}; known: {', '.join(list_experiments())}")
        return 1
    width = max(map(len, names))
    for name in names:
        e = get_experiment(name)
        print(f"{name:<{width}}  {e.artefact:<20} {len(e.axes) * len(e.seeds_at(DEFAULT_SCALE)):>3} runs  "
              f"{e.metric:<12} {e.title}")
    return 0


def known_scale(stored: dict[str, Any]) -> str | None:
    """The scale a run's config.json (`stored`) names, if it is a scale declared here (a damaged file may hold
    anything there, a list say), else None."""
    scale = stored.get("scale")
    return scale if isinstance(scale, str) and scale in SCALES else None


def stored_scales(store: RunStore, experiment: str) -> list[str]:
    """The scales of the runs of `experiment` in the store, most recently written first."""
    latest: dict[str, float] = {}
    for run_id in store.run_ids():
        if run_id.partition("/")[0] != experiment:
            continue
        stored = store.config(run_id) or {}
        path = store.run_dir(run_id) / "config.json"
        if known_scale(stored) and path.exists():
            latest[stored["scale"]] = max(latest.get(stored["scale"], 0.0), path.stat().st_mtime)
    return sorted(latest, key=latest.get, reverse=True)


def cmd_show(args: argparse.Namespace) -> int:
    experiment = get_experiment(args.name)
    store = RunStore(args.results_dir)
    if args.scale is None:   # the scale of the runs in the store (the latest written), else the default
        found = stored_scales(store, experiment.name)
        args.scale = found[0] if found else DEFAULT_SCALE
        if len(found) > 1:
            print(f"(the results also hold scale(s) {', '.join(found[1:])} of {experiment.name}: --scale picks one)")
    scale = get_scale(args.scale)
    runs = experiment.runs(scale, parse_overrides(args.overrides), seeds=args.seeds)
    print(f"{experiment.name}: {experiment.title}")
    further = f" (also {', '.join(experiment.metrics)})" if experiment.metrics else ""
    published = experiment.published.file if experiment.published else "none (an experiment of our own)"
    print(f"  artefact {experiment.artefact}, metric {experiment.metric}{further}, published {published}")
    if experiment.evaluation_only_axes():
        print(f"  evaluation-only axes (their points share one pretraining): "
              f"{', '.join(experiment.evaluation_only_axes())}")
    print(f"  scale {scale.name}: {scale.summary}")
    print(f"  results {store.root}")
    deviations = (*experiment.deviations, *setting_deviations(run.config for run in runs))
    print("  deviations from the paper:" + ("" if deviations else " none declared"))
    for line in deviations:
        print(f"    - {line}")
    others = stored_elsewhere(store, experiment.name, scale.name, {run.run_id for run in runs})
    width = max(len(run_id) for run_id in [r.run_id for r in runs] + list(others))
    # SLURM job of each submitted run (and the fate of jobs that ended without recording it).
    slurm_notes = reconcile(store, [r.run_id for r in runs] + list(others))
    states = Counter(_show_run(store, run, experiment, width, slurm_notes) for run in runs)
    print("  " + ", ".join(f"{states[s]} {s}" for s in STATES if states[s]) + f" (of {len(runs)})")
    if others:
        print(f"  also stored at scale {scale.name}, outside this plan ({len(others)}: made with other overrides "
              "or seeds, by a sweep's trials, or by an earlier declaration):")
        # Compared with the planned run of the same axis point, of the same seed where there is one.
        by_point = {canonical_json(dict(run.point)): run for run in reversed(runs)}
        by_seed = {(canonical_json(dict(run.point)), run.config.seed): run for run in runs}
        others_states = Counter()
        for run_id, stored in others.items():
            run = stored_run(run_id, stored)
            point = canonical_json(dict(run.point))
            seed = (stored.get("config") or {}).get("seed")
            planned = by_seed.get((point, seed)) or by_point.get(point) or \
                planned_at(experiment, scale, run.point, seed, parse_overrides(args.overrides))
            others_states[_show_run(store, run, experiment, width, slurm_notes,
                                    differs=config_differences(stored, planned))] += 1
        print("  " + ", ".join(f"{others_states[s]} {s}" for s in STATES if others_states[s])
              + f" (of {len(others)})")
    return 0


def stored_elsewhere(store: RunStore, experiment: str, scale: str, planned: set[str]) -> dict[str, dict]:
    """{id: its config.json} of the stored runs of `experiment` at `scale` that are not in `planned`, sorted."""
    found = {}
    for run_id in store.run_ids():
        if run_id.partition("/")[0] == experiment and run_id not in planned:
            stored = store.config(run_id) or {}
            if stored.get("scale") == scale:
                found[run_id] = stored
    return found


def stored_run(run_id: str, stored: dict[str, Any]) -> Run:
    """A stored run as its config.json (`stored`) recorded it (its config left as the default: only the ids
    are used)."""
    point, overrides = stored.get("point"), stored.get("overrides")
    return Run(run_id, run_id.partition("/")[0], stored.get("scale", "?"), point if isinstance(point, dict) else {},
               RunConfig(), overrides if isinstance(overrides, dict) else {})


def planned_at(experiment: Experiment, scale: Scale, point: dict[str, Any], seed: Any,
               overrides: dict[str, Any]) -> Run | None:
    """The run the plan would hold at an axis point the experiment does not declare (a sweep's trial), to tell how
    a stored run there differs from today's declaration; None where the point no longer resolves."""
    try:
        return replace(experiment, axes=cases(point)).runs(
            scale, overrides, seeds=[seed] if isinstance(seed, int) and not isinstance(seed, bool) else None)[0]
    except ConfigError:
        return None


def config_differences(stored: dict[str, Any], planned: Run | None, most: int = 4) -> str:
    """How a stored run's config (its config.json: `stored`) differs from the planned run of its axis point and
    seed ("batch_size=4096 (plan: 256), ..."); "" without such a run."""
    config = stored.get("config")
    if planned is None or not isinstance(config, dict):
        return ""
    mine, plan = flatten_config(config), flatten_config(planned.config.to_dict())
    keys = sorted(key for key in mine.keys() | plan.keys() if mine.get(key, "-") != plan.get(key, "-"))
    shown = [f"{key}={mine.get(key, '-')} (plan: {plan.get(key, '-')})" for key in keys[:most]]
    return ", ".join(shown) + (f", and {len(keys) - most} more" if len(keys) > most else "")


def _show_run(store: RunStore, run: Run, experiment: Experiment, width: int, slurm_notes: dict[str, str],
              differs: str = "") -> str:
    """Print one run's line (and its traceback or damage); return its state."""
    state = store.state(run.run_id)
    extra = _metric_text(store, run, experiment) if state == "done" else ""
    if store.discarding(run.run_id):
        extra = "`run --redo` was stopped moving its files aside: the next `run` finishes that and trains it anew"
    elif state == "pending" and store.has_checkpoint(run.run_id):
        extra = "checkpoint present: resumes"
    extra = "  ".join(x for x in (extra, slurm_notes.get(run.run_id, ""), differs) if x)
    print(f"  {run.run_id:<{width}}  {state:<9}  {extra}".rstrip())
    if state == "corrupt":
        print(_indent(f"{store.problem(run.run_id)}\nto train it again: {redo_command(run)}"))
    if state == "failed":
        error = store.error_text(run.run_id) or (store.status(run.run_id) or {}).get("error") or "(no traceback)"
        print(_indent(error))
    if state == "cancelled":
        print(_indent(store.why_cancelled(run.run_id)))
    return state


def cmd_validate(args: argparse.Namespace) -> int:
    problems: list[str] = []
    names = list_experiments()
    for name in names:
        experiment = get_experiment(name)
        counts = []
        for scale in SCALES:
            try:
                counts.append(f"{scale}={len(experiment.runs(scale))}")
            except ConfigError as exc:
                problems.append(f"{name} at scale {scale}: {exc}")
        try:
            unmatched = unmatched_points(experiment)
            table_problem = ""
        except ConfigError as exc:      # the table is not found, or lacks a column
            unmatched, table_problem = [f"{name}: {exc}"], "its published table cannot be read"
        problems.extend(unmatched)
        ok = "ok  " if not unmatched and len(counts) == len(SCALES) else "FAIL"
        if experiment.published is None:
            where = "no published numbers (an experiment of our own)"
        elif table_problem:
            where = table_problem
        else:
            cells = [rows for _, _, rows in published_cells(experiment)]
            where = (f"{sum(len(r) == 1 for r in cells)}/{len(cells)} cells in {experiment.published.file}"
                     if not unmatched else f"{len(unmatched)} cell(s) match several rows of {experiment.published.file}")
        print(f"{ok} {name:<22} runs {' '.join(counts):<28} {where}")
    for name in SWEEPS:       # every study of the sweep at every scale: its runs at both ends of the range
        try:
            studies = sum(len(plan_studies(name, scale=scale, sampler="tpe")) for scale in SCALES)
            print(f"ok   sweep {name:<16} {SWEEPS[name].experiment}: {studies} studies over {len(SCALES)} scales")
        except ConfigError as exc:
            problems.append(str(exc) if str(exc).startswith(f"sweep {name!r}") else f"sweep {name}: {exc}")
            print(f"FAIL sweep {name:<16} {SWEEPS[name].experiment}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(names)} experiments, {len(SWEEPS)} sweeps, {len(SCALES)} scales: "
          + ("all valid" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.name is None:
        raise ConfigError("run needs an experiment name: python -m registry run NAME [key=value ...]; "
                          f"declared: {', '.join(list_experiments())}")
    experiment = get_experiment(args.name)
    runs = select(experiment.runs(args.scale, parse_overrides(args.overrides), seeds=args.seeds), args.only)
    store = RunStore(args.results_dir)
    if args.redo and not args.only:
        raise ConfigError("--redo trains runs again from scratch: name them with --only GLOB (a label, id or "
                          f"hash; `python -m registry show {experiment.name} --scale {args.scale}` lists them)")
    if args.gpu_images_per_s is not None and not args.dry_run:
        raise ConfigError("--gpu-images-per-s only applies with --dry-run (it sets the planner's GPU rate)")
    if not args.slurm and stray_slurm_flags(args):
        raise ConfigError(f"{', '.join(stray_slurm_flags(args))} only apply with --slurm")
    if args.slurm and args.runs_per_gpu is not None:
        raise ConfigError("--runs-per-gpu applies to local runs; under --slurm every run has its own GPUs "
                          "(--slurm-gpus-per-node)")
    if args.slurm and args.allow_cpu:
        raise ConfigError(f"{ALLOW_FLAG} applies to local runs; under --slurm the runs train on the cluster's nodes "
                          "(their GPUs: --slurm-gpus-per-node)")
    # Local runs: on which GPUs, how many at once; a bad count, or more runs per GPU than fit, stops here.
    placement = None if args.slurm else plan_placement(args.max_parallel, args.runs_per_gpu)
    if placement is not None:
        placement.check_memory(runs)
    # A GPU scale's runs on a machine without a GPU would train on its CPU: refused unless asked for (--allow-cpu).
    on_cpu = None if args.slurm else cpu_instead_of_gpu(get_scale(args.scale), runs, store, redo=args.redo)
    if on_cpu is not None and not args.dry_run and not args.allow_cpu:
        raise ConfigError(on_cpu.refusal())
    if args.dry_run:
        executor = None
    elif args.slurm:   # refuses plainly, before anything is recorded, where there is no SLURM or no time limit
        executor = make_executor("slurm", settings=settings_from_args(args), wait=args.slurm_wait,
                                 on_outcome=lambda o: print(f"{o.state:<9} {o.run_id}  {o.detail}", flush=True))
    else:
        finished = Counter()

        def progress(outcome: Outcome) -> None:
            finished["n"] += 1
            first_line = outcome.detail.splitlines()[0] if outcome.detail else ""   # the summary shows it whole
            print(f"[{finished['n']}/{len(runs)}] {outcome.state:<9} {outcome.run_id}  {first_line}", flush=True)

        executor = make_executor("local", placement=placement, on_outcome=progress)
    if not args.redo:
        require_same_images(runs, store)   # a finished run of another image folder is not this one's
    target = "SLURM" if args.slurm else placement.describe()
    print(f"{experiment.name} at scale {args.scale}: {len(runs)} run(s) -> {store.root} via {target}")
    for note in plan_notes(runs):
        print(note)
    if executor is None:
        shown = print_plan(runs, args.scale, store, placement.workers if placement else 1, args.gpu_images_per_s)
        fit = host_fit(runs, placement.workers) if placement is not None and not placement.gpus else None
        if fit is not None:
            print("  " + fit.summary())
        if on_cpu is not None:
            print(on_cpu.dry_run_line(allowed=args.allow_cpu))
        # What `run` checks before it starts anything (missing data, a batch the data cannot fill), said, not raised.
        for line in refusal_lines(still_to_do(runs, store, args.redo), resolve_train_fn(None),
                                  on_slurm=args.slurm, already_shown=shown):
            print(line)
        return 0
    store.ensure_writable()
    executor.check_results(store.root)
    # E.g. missing data, or a batch the job's processes cannot split: for the runs to train, before any is recorded.
    executor.check(still_to_do(runs, store, args.redo))
    if on_cpu is not None:
        print(on_cpu.allowed(), flush=True)
    code = code_version()
    if args.redo:
        _discard(store, runs, code)
    for run in runs:
        if not store.is_done(run.run_id) and not store.problem(run.run_id):
            store.mark_pending(run, code)
    outcomes = executor.dispatch(runs, store.root)
    counts = Counter(o.state for o in outcomes)
    print("summary: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for outcome in outcomes:
        if outcome.state == "failed":
            shown = show_command(experiment.name, args.scale, args.results_dir, parse_overrides(args.overrides),
                                 args.seeds)
            print(f"failed: {outcome.run_id}:\n{_indent(outcome.detail, '    ')}\n  ({shown} prints the traceback)",
                  file=sys.stderr)
        elif outcome.state == "corrupt":
            print(f"corrupt: {outcome.run_id}: {outcome.detail}", file=sys.stderr)
    refused = next((outcome for outcome in outcomes if outcome.disk_refused), None)
    if refused is not None:
        what, todo = disk_trouble(refused.refused_errno)
        unstarted = sum(outcome.detail.startswith(NOT_STARTED) for outcome in outcomes)
        print(f"{what}, so {unstarted} run(s) were not started: {todo} and {AGAIN}", file=sys.stderr)
    return 1 if counts["failed"] or counts["corrupt"] else 0


def _discard(store: RunStore, runs: list[Run], code: dict) -> None:
    """--redo: claim every run first (all or none), mark them all as redone (they take no other run's pretraining)
    and not done, then move their files aside, so that they train from scratch. A kill at any point leaves each run
    either untouched or marked: the next `run`, this command or a plain one, finishes moving a marked one's files
    (RunStore.finish_discard) before it trains."""
    claims = []
    try:
        for run in runs:
            claim = try_claim(store.run_dir(run.run_id))
            if claim is None:
                raise ConfigError(f"--redo: {run.run_id} is being trained by "
                                  f"{describe_claim(read_claim(store.run_dir(run.run_id)))}; stop it first "
                                  "(no run was redone)")
            claims.append(claim)
        redone = now_iso()
        for run in runs:
            store.begin_discard(run.run_id, **{REDO_FIELD: redone})
        for run in runs:
            moved = store.finish_discard(run.run_id)
            if moved is not None:
                print(f"redo {run.run_id}: its earlier files are kept in {moved}")
            store.write_config(run, code)
    finally:
        for claim in claims:
            claim.release()


def cmd_status(args: argparse.Namespace) -> int:
    store = RunStore(args.results_dir)
    run_ids = list(store.run_ids())
    stored_names = {run_id.partition("/")[0] for run_id in run_ids}
    for name in args.names:
        require_choice("experiment", name, sorted(set(list_experiments()) | stored_names))
    if args.names:
        run_ids = [run_id for run_id in run_ids if run_id.partition("/")[0] in args.names]
    # A SLURM job that ended without its run recording it (cancelled while queued, killed, out of memory) is
    # recorded now, as `show` does: else such a run would read pending or running here for ever.
    reconcile(store, run_ids)
    table: dict[tuple[str, str], Counter] = {}
    corrupt = []
    for run_id in run_ids:
        stored = store.config(run_id) or {}
        state = store.state(run_id)
        scale = known_scale(stored) or _declared_scale(run_id)
        if args.scale and scale not in args.scale:
            continue
        table.setdefault((run_id.partition("/")[0], scale or "?"), Counter())[state] += 1
        if state == "corrupt":
            corrupt.append((run_id, scale or "SCALE", stored))
    if not table:
        chosen = " of " + ", ".join(args.names) if args.names else ""
        print(f"no runs{chosen}{' at scale ' + ', '.join(args.scale) if args.scale else ''} in {store.root}")
        return 0
    print(f"{'experiment':<20} {'scale':<6} " + " ".join(f"{s:>9}" for s in STATES))
    for (name, scale), counts in sorted(table.items()):
        print(f"{name:<20} {scale:<6} " + " ".join(f"{counts[s]:>9}" for s in STATES))
    for run_id, scale, stored in corrupt:
        run = replace(stored_run(run_id, stored), scale=scale)
        print(f"corrupt: {run_id}: {store.problem(run_id)}\n  to train it again: {redo_command(run)}")
    for (name, scale), counts in sorted(table.items()):
        if counts["failed"]:
            print(f"failed: {counts['failed']} of {name} at scale {scale}; each one's traceback: python -m registry "
                  f"show {name} --scale {scale}")
        if counts["cancelled"]:
            print(f"cancelled: {counts['cancelled']} of {name} at scale {scale} (interrupted, or killed without a "
                  f"word); how each stopped: python -m registry show {name} --scale {scale}; `run` resumes them")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of images per second")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0 and "=" in text:     # --seeds takes every word after it, an override too
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: --seeds takes the words after it, so put "
                                         f"key=value overrides before it (... {text} --seeds 0 1 2)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed; seeds are integers >= 0, e.g. --seeds 0 1 2")
    return value


def _declared_scale(run_id: str) -> str | None:
    """The scale at which the declared experiment has a run of this id (for runs whose config.json is lost)."""
    name = run_id.partition("/")[0]
    if name not in list_experiments():
        return None
    for scale in SCALES:
        try:
            if any(run.run_id == run_id for run in get_experiment(name).runs(scale)):
                return scale
        except ConfigError:
            continue
    return None


# Verbs that other packages provide through the entry points of registry.commands.GROUP, and which package:
# named here only so that `python -m registry report` says how to get it where the package is not installed.
PLUGIN_VERBS = {"report": "the reports package"}


def _plugin_verbs(verbs, builtin: set[str]) -> None:
    """The verbs installed packages provide (registry/commands.py); each expected one that is missing says why."""
    commands = plugin_commands()
    for name in sorted({*commands, *PLUGIN_VERBS} - builtin):
        command = commands.get(name)
        if isinstance(command, Command):
            command.add_to(verbs, name)
        elif command is not None:
            add_unavailable(verbs, name, f"{command}; {INSTALL_HINT}")
        else:
            add_unavailable(verbs, name, f"it is a verb of {PLUGIN_VERBS[name]} (entry point group {GROUP!r}), "
                                         f"which is not installed; {INSTALL_HINT}")


# ---- parser ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(prog="python -m registry", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    results = argparse.ArgumentParser(add_help=False)
    results.add_argument("--results-dir", default=None,
                         help="results folder (default: $SIMCLR_RESULTS_DIR, else ./results)")
    scale = argparse.ArgumentParser(add_help=False)
    scale.add_argument("--scale", default=DEFAULT_SCALE, choices=list(SCALES),
                       help=f"compute scale (default {DEFAULT_SCALE}): "
                            + "; ".join(f"{s.name}: {s.summary}" for s in SCALES.values()))
    stored_scale = argparse.ArgumentParser(add_help=False)
    stored_scale.add_argument("--scale", default=None, choices=list(SCALES),
                              help="compute scale (default: that of the experiment's latest runs in the results "
                                   f"folder, else {DEFAULT_SCALE})")
    seeds = argparse.ArgumentParser(add_help=False)
    seeds.add_argument("--seeds", nargs="+", type=_seed, default=None, metavar="N",
                       help="the seeds of each axis point (default: the experiment's, else the scale's: "
                            + ", ".join(f"{s.name} {s.seeds}" for s in SCALES.values()) + ")")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("list", help="list declared experiments", description="List declared experiments.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'aug*'")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("show", parents=[results, stored_scale, seeds], help="an experiment's runs and their states",
                         description="Resolve an experiment at a scale and print its runs, ids and states; "
                                     "failed runs show their traceback, then the experiment's other stored runs "
                                     "at that scale. Nothing runs.")
    p.add_argument("name", metavar="EXPERIMENT", help="experiment name (see `list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="the config overrides the runs were made with (as given to `run`)")
    p.set_defaults(func=cmd_show)

    p = verbs.add_parser("validate", help="check every declaration at every scale; runs nothing",
                         description="Resolve every experiment at every scale (validated configs, distinct ids) "
                                     "and check that every axis point has exactly one published row.")
    p.set_defaults(func=cmd_validate)

    p = verbs.add_parser("scales", help="the scales: purpose, what they train, hours per ablation",
                         description="Print every scale: what it is for, what it trains, its default seeds, its "
                                     "hardware, and the estimated hours of a typical ablation and of all of them.")
    p.set_defaults(func=cmd_scales)

    p = verbs.add_parser("run", parents=[results, scale, seeds], help="run an experiment (skips done runs, resumes others)",
                         description="Resolve, then run every run that is not done. Runs with a checkpoint "
                                     "resume; a failed run records its traceback and the others continue.")
    p.add_argument("name", nargs="?", help="experiment name (see `list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides applied last, in final units (e.g. eval.knn_k=50)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, steps, estimated hours) and stop")
    p.add_argument("--gpu-images-per-s", type=_positive_float, default=None, metavar="R",
                   help="with --dry-run at a GPU scale: images/s your GPU trains ResNet-50 1x at 224 px (bf16, "
                        "batch 256); default: the rate measured on an H200 (registry/estimate.py)")
    p.add_argument("--only", action="append", metavar="GLOB",
                   help="only runs whose label, id or hash matches (repeatable), e.g. --only 'crop*'")
    p.add_argument("--redo", action="store_true",
                   help="train the runs chosen with --only again from scratch, even finished or corrupt ones; "
                        "their earlier files move to <run folder>/discarded-<time>/")
    p.add_argument("--max-parallel", type=int, default=None, metavar="K",
                   help="run at most K runs at once, each in its own process (default without a GPU: 1, sequential "
                        "in this process; with GPUs: all GPUs x --runs-per-gpu)")
    p.add_argument("--runs-per-gpu", type=int, default=None, metavar="K",
                   help="with GPUs: run K runs on each GPU at once (default 1), each in its own process that sees "
                        "only its GPU; refused when K runs' estimated memory exceeds the GPU's")
    p.add_argument("--slurm", action="store_true",
                   help="submit to SLURM (one job array, one job per run) instead of running locally")
    p.add_argument(ALLOW_FLAG, action="store_true", help=allow_help())
    add_slurm_arguments(p)
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser("status", parents=[results], help="runs per experiment and state",
                         description="Count the stored runs per experiment, scale and state (`show NAME` lists "
                                     "one experiment's runs).")
    p.add_argument("names", nargs="*", metavar="EXPERIMENT", help="only these experiments (default: all)")
    p.add_argument("--scale", action="append", choices=list(SCALES), default=None,
                   help="only these scales (repeatable; default: all)")
    p.set_defaults(func=cmd_status)

    _plugin_verbs(verbs, builtin={*verbs.choices, "sweep"})
    Command(help="Optuna search over a config axis (e.g. temperature)", description=sweep_verb.__doc__,
            add_arguments=sweep_verb.add_arguments, main=sweep_verb.main).add_to(verbs, "sweep")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()       # lists declared content (scales, sweeps), which may be the user's own
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:         # Ctrl-C while the declarations load: nothing has started
        print("interrupted before anything started", file=sys.stderr)
        return 130
    # key=value overrides may come before or after options (argparse alone takes them only in one block).
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "unavailable", None):   # a verb another package provides, not installed here
        print(f"error: {args.unavailable}", file=sys.stderr)
        return 2
    stray = [x for x in extra if x.startswith("-") or "=" not in x or getattr(args, "overrides", None) is None]
    if stray:
        parser.error(stray_words(stray))
    if extra:
        args.overrides = [*args.overrides, *extra]
    raise_on_sigterm()
    print_warnings_on_one_line()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)    # `... | head` ends quietly
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        exit_at_once_on_another_interrupt()
        print("interrupted: unfinished runs are marked cancelled; running again resumes them from their "
              "checkpoints", file=sys.stderr)
        return 130
    except OSError as exc:
        trouble = disk_trouble(exc.errno)
        if trouble is None:
            return report_unexpected(exc)
        print(f"error: {exc}\n  {trouble[0]}: {trouble[1]} and {AGAIN}", file=sys.stderr)
        return 1
    except Exception as exc:   # a bug or an unforeseen fault: one line here, the traceback in a file
        return report_unexpected(exc)


def report_unexpected(exc: BaseException) -> int:
    """Print one line naming the error and a file holding its traceback (never the traceback itself)."""
    text = traceback.format_exc()
    try:
        fd, path = tempfile.mkstemp(prefix="simclr-harness-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        where = f"the traceback is in {path}"
    except OSError:
        where = "the traceback could not be saved"
    own = _raised_in_own_code(exc)
    whose = (f"raised in your own code at {own}; {where}" if own else
             f"an unexpected failure; {where} (please include it in a bug report)")
    print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n  {whose}",
          file=sys.stderr)
    return 1


def _raised_in_own_code(exc: BaseException) -> str | None:
    """"file:line" of the innermost frame of `exc` in a file of $SIMCLR_EXPERIMENTS_DIR (a user's report
    function, say), else None."""
    try:
        folders = [str(folder) + os.sep for folder in experiment_folders()]
    except ConfigError:
        return None
    innermost = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if any(frame.f_code.co_filename.startswith(folder) for folder in folders):
            innermost = f"{frame.f_code.co_filename}:{line}"
    return innermost


if __name__ == "__main__":
    sys.exit(main())

"""Quality per CPU-hour: run a declared experiment through the registry, then print time and quality per run.

    .venv/bin/python benchmarks/bench_quality.py NAME [--scale S] [--only GLOB ...] [--seeds N ...]
        [--results-dir DIR] [--budget-min M] [--table-only] [--allow-cpu] [key=value ...]

NAME is a declared experiment (`python -m registry list`); the quality recipes are experiments/beyond_*.py
(beyond_cpu_recipe, beyond_multicrop, beyond_dcl). The runs go through `python -m registry run` with the same
arguments, so they get its run ids, store, claims and resumption (an interrupted run resumes from its
checkpoint when the command is given again); --table-only reads the store without running anything. The table
then gives, for each selected run, its state, epochs, images/s, pretraining and evaluation time, the wall
clock of its last attempt against --budget-min, and every metric the experiment declares (read from the
store's final.json); runs that evaluated kNN during training (eval.knn_every_epochs=E) also get their kNN
curve. Nothing here holds a config: what a run trains is its declaration at the scale plus the overrides.

Issue 5's moonshot: >= 70% kNN top-1 (k = 200, cosine, t = 0.1, on the encoder's features h) on the 10,000
CIFAR-10 test images within 60 minutes of wall clock on the 2-core reference machine, the clock covering data
loading, pretraining and the final kNN evaluation. A scale's runs are short proxies (cpu: 3 epochs of 10,000
images); the hour's runs are the cpu scale with the recipe's compute as overrides, which reproduce the recipes
of benchmarks/RESULTS.md exactly (each experiment's docstring has its command). The multi-crop recipe of
RESULTS.md's runs 9 and 10 (an hour of an otherwise idle machine; needs SIMCLR_DATA_DIR):

    .venv/bin/python benchmarks/bench_quality.py beyond_multicrop --scale cpu --only 2 \\
        epochs=27 optim.warmup_epochs=2 data.train_limit=none data.test_limit=none \\
        eval.protocols=knn eval.linear_epochs=100

The epoch count is fixed up front, because the warm-up + cosine schedule needs the total number of steps:
choose it from a measured images/s (`bench_train.py`) so that the run fits the budget; the table says whether
it did. `eval.knn_every_epochs=E` costs about 25 s per evaluation at width x0.25, inside the clock.

Results go to --results-dir, default runs/quality, apart from the ablations' ./results: a report averages the
runs of an axis point in its folder, and an hour's run of a point is not its 3-epoch proxy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import registry.__main__ as registry_cli  # noqa: E402  (registry first: it requests huge pages before torch loads)
from registry import SCALES, RunStore, get_experiment  # noqa: E402
from registry.declare import Run  # noqa: E402
from registry.store import METRICS_NAME  # noqa: E402
from simclr_core.validation import ConfigError  # noqa: E402

DEFAULT_RESULTS_DIR = "runs/quality"
MISSING = "-"


# ---- reading the store ------------------------------------------------------------------------------
def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def quality_row(store: RunStore, run: Run, metrics: Sequence[str]) -> dict[str, Any]:
    """What the table shows of one run, from its status.json and final.json (None where the store has nothing).

    `clock_s` is what the budget is judged on: the wall clock of the run's attempt when that attempt trained it
    from the start, else (resumed from a checkpoint, or evaluating another run's pretraining) the pretraining of
    all sessions plus the final evaluation, without their data loading; `clock_is_wall` says which.
    """
    final = store.final(run.run_id) or {}
    status = store.status(run.run_id) or {}
    pretrain, evaluation = _number(final.get("pretrain_seconds")), _number(final.get("eval_seconds"))
    wall = _seconds_between(status.get("started"), status.get("finished")) if final else None
    donor = final.get("pretraining_from")
    clock_is_wall = wall is not None and not status.get("resumed") and not donor
    clock = wall if clock_is_wall else (pretrain + evaluation if pretrain is not None and evaluation is not None
                                        else None)
    return {
        "run": run.label, "seed": run.config.seed, "state": store.state(run.run_id),
        "epochs": _number(final.get("epochs_done")), "images_per_s": _number(final.get("images_per_s")),
        "pretrain_s": pretrain, "eval_s": evaluation, "wall_s": wall, "clock_s": clock,
        "clock_is_wall": clock_is_wall, "pretraining_from": donor,
        "metrics": {m: _number(final.get(m)) for m in metrics},
    }


def knn_curve(store: RunStore, run: Run) -> list[tuple[float, float]]:
    """(epoch, kNN top-1) of the evaluations during training (eval.knn_every_epochs), then the final one."""
    path = store.run_dir(run.run_id) / METRICS_NAME
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    curve = [(float(r["epoch"]), float(r["knn_top1"])) for r in rows if "knn_top1" in r]
    final = store.final(run.run_id) or {}
    if curve and _number(final.get("knn_top1")) is not None and _number(final.get("epochs_done")) is not None:
        curve.append((float(final["epochs_done"]), float(final["knn_top1"])))
    return curve


# ---- formatting --------------------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str) -> str:
    return MISSING if value is None else format(value, spec)


def format_table(rows: Sequence[dict[str, Any]], metrics: Sequence[str], budget_min: float) -> str:
    """A markdown table, one line per run: time (minutes, seconds for evaluation) and quality (percent)."""
    header = ["run", "seed", "state", "epochs", "images/s", "pretraining min", "evaluation s", "wall min",
              f"budget {budget_min:g} min", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnote = False
    for row in rows:
        if row["clock_s"] is None:
            verdict = MISSING
        else:
            verdict = "within" if row["clock_s"] <= 60 * budget_min else "OVER"
            if not row["clock_is_wall"]:
                verdict, footnote = verdict + "*", True
        wall = row["wall_s"] / 60 if row["wall_s"] is not None else None
        pretrain = row["pretrain_s"] / 60 if row["pretrain_s"] is not None else None
        cells = [row["run"], str(row["seed"]), row["state"], _fmt(row["epochs"], ".1f"),
                 _fmt(row["images_per_s"], ".0f"), _fmt(pretrain, ".2f"), _fmt(row["eval_s"], ".1f"),
                 _fmt(wall, ".2f"), verdict, *(_fmt(row["metrics"][m], ".2f") for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    if footnote:
        lines.append("\n* resumed, or evaluated another run's pretraining: judged on the pretraining of all its "
                     "sessions plus the final evaluation (data loading not counted)")
    donors = [(row["run"], row["seed"], row["pretraining_from"]) for row in rows if row["pretraining_from"]]
    lines.extend(f"{run} (seed {seed}) evaluated the pretraining of {donor}" for run, seed, donor in donors)
    return "\n".join(lines)


def format_curve(label: str, curve: Sequence[tuple[float, float]]) -> str:
    lines = [f"{label}:", "| epoch | kNN top-1 |", "|---|---|"]
    lines += [f"| {epoch:.1f}{' (final)' if i == len(curve) - 1 else ''} | {knn:.2f}% |"
              for i, (epoch, knn) in enumerate(curve)]
    return "\n".join(lines)


# ---- command line --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a declared experiment, e.g. beyond_multicrop (python -m registry list)")
    parser.add_argument("--scale", default="cpu", choices=list(SCALES))
    parser.add_argument("--only", action="append", metavar="GLOB",
                        help="only runs whose axis label, id or hash matches (repeatable), e.g. --only 2")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, metavar="N")
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--budget-min", type=float, default=60.0, help="wall-clock budget per run (minutes)")
    parser.add_argument("--table-only", action="store_true", help="print the table of the stored runs; run nothing")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="passed to `registry run`: a scale planned for a GPU trains on this CPU where there is "
                             "none")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides applied last, in final units, as `registry run` takes them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after options (argparse alone takes them only in one block).
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *extra]
    try:   # resolve before anything runs: a bad name, scale value, override or --only stops here
        experiment = get_experiment(args.name)
        runs = registry_cli.select(experiment.runs(args.scale, registry_cli.parse_overrides(args.overrides),
                                                   seeds=args.seeds), args.only)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = RunStore(args.results_dir)
    code = 0
    if not args.table_only:
        import torch

        from benchmarks.machine import describe, load_average

        print("\n".join(describe(torch.device("cuda" if torch.cuda.is_available() else "cpu"))))
        print(f"load average before: {load_average()}")
        argv_run = ["run", experiment.name, "--scale", args.scale, "--results-dir", str(store.root),
                    *(["--seeds", *map(str, args.seeds)] if args.seeds else []),
                    *(x for pattern in args.only or () for x in ("--only", pattern)),
                    *(["--allow-cpu"] if args.allow_cpu else []), *args.overrides]
        start = time.perf_counter()
        code = registry_cli.main(argv_run)
        print(f"load average after: {load_average()}; {(time.perf_counter() - start) / 60:.1f} min in all")
    print(f"\n{experiment.name} at scale {args.scale} ({store.root}):\n")
    print(format_table([quality_row(store, run, experiment.all_metrics) for run in runs],
                       experiment.all_metrics, args.budget_min))
    for run in runs:
        curve = knn_curve(store, run)
        if len(curve) > 1:
            print("\n" + format_curve(f"{run.label} (seed {run.config.seed})", curve))
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild the paper's tables and figures from whatever results exist, each beside the published one.

    python -m registry report                      every artefact, at every scale that has results
    python -m registry report fig5 tab4 --scale cpu
    python -m reports --results-dir runs/ --out /tmp/report

Writes <out>/index.html (self-contained: figures embedded), <out>/report.md, and per artefact and scale
<key>_<scale>.md / .png / .csv, plus summary.csv and conclusions.csv. The default <out> is report/ inside the
results folder (./results/report). Reads finished runs only (final.json); never trains, never imports torch,
and takes seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from registry.commands import Command
from registry.discover import EXPERIMENTS_DIR_ENV, list_experiments
from registry.scales import SCALES
from registry.store import default_results_dir, load_results
from simclr_core.validation import ConfigError

REPORT_FOLDER = "report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Light on purpose: every `python -m registry` command builds this parser; the plotting stack loads in main.
    parser.add_argument("artefacts", nargs="*", metavar="ARTEFACT",
                        help="artefacts to build, e.g. fig5 tab4 (default: all). The paper's ablations fig5, tab1, "
                             "fig7, fig8, tab4, tab5 (with the temperature curve tab5_sweep), fig9; its tables tab3, "
                             "tab6, tab7, tab8 and Appendix B.9's b9_batch_epochs, b9_temperature_batch; each "
                             "experiment of our own by its name. An experiment's name selects the artefacts built "
                             "from it (temperature_norm: tab5, tab5_sweep; python -m registry list shows each "
                             "one's artefact). An unknown name is refused with the list")
    parser.add_argument("--results-dir", default=None,
                        help="results folder (default: $SIMCLR_RESULTS_DIR, else ./results)")
    parser.add_argument("--out", default=None,
                        help=f"output folder (default: <results folder>/{REPORT_FOLDER})")
    parser.add_argument("--scale", action="append", choices=list(SCALES), default=None,
                        help="only these scales (repeatable; default: every scale with results, "
                             "or the paper's side alone where there are none)")


def main(args: argparse.Namespace) -> int:
    from reports.build import build_sections
    from reports.render import conclusions_count, write_report
    from reports.variants import versions_note

    started = time.perf_counter()
    results_dir = default_results_dir(args.results_dir)
    out = Path(args.out).expanduser() if args.out else results_dir / REPORT_FOLDER
    check_out_dir(out)
    results = load_results(results_dir)
    sections = build_sections(results, keys=args.artefacts or None, scales=args.scale)
    left_out = results.attrs.get("left_out", {})
    for run_id, why in sorted(left_out.items()):
        print(f"left out: {run_id}: {why} (python -m registry status gives the command that trains it again)",
              file=sys.stderr)
    try:
        written = write_report(sections, out, results_dir, left_out, versions_note(results))
    except OSError as exc:             # a disk that fills up, a folder changed meanwhile
        raise ConfigError(f"could not write the report in the report folder {out}: {exc.strerror or exc}"
                          + (f" ({exc.filename})" if exc.filename else "")) from None
    for s in sections:
        for run_id, why in sorted(s.left_out.items()):
            print(f"left out of {s.key} at scale {s.scale}: {run_id}: {why}", file=sys.stderr)
    undeclared = undeclared_runs(results)
    if undeclared:
        print(f"left out: {sum(undeclared.values())} finished run(s) of experiments not declared here "
              f"({', '.join(sorted(undeclared))}); set ${EXPERIMENTS_DIR_ENV} to the folder of their declarations "
              f"to report them", file=sys.stderr)
    width = max(len(s.key) for s in sections)
    for s in sections:
        a = s.artefact.agreement
        ranks = f"Spearman {a.spearman:+.2f}, Kendall {a.kendall:+.2f} over {a.cells} cells ({a.seeds})" \
            if a.measured else a.why_not if s.own else f"ranks {a.why_not}"
        dropped = f"; {len(s.left_out)} run(s) of another config left out" if s.left_out else ""
        print(f"{s.key:<{width}}  {s.scale or 'none':<6} {s.progress}{dropped}; {ranks}; "
              f"conclusions: {conclusions_count(s.conclusions)}")
    print(f"{len(results['run_id'].unique()) if len(results) else 0} finished runs in {results_dir}; "
          f"report in {written.out_dir} ({written.html.name}, {written.markdown.name}, "
          f"{len(written.files)} files) in {time.perf_counter() - started:.1f}s")
    return 0


def undeclared_runs(results) -> dict[str, int]:
    """Experiment name -> finished runs in `results` of experiments that no declaration here names (a user's own,
    their declarations' folder not set, or one renamed since)."""
    if not len(results):
        return {}
    runs = results.drop_duplicates("run_id")
    counts = runs[~runs["experiment"].isin(list_experiments())]["experiment"].value_counts()
    return {str(name): int(n) for name, n in counts.items()}


def check_out_dir(out: Path) -> None:
    """Refuse an output folder that is a file or cannot be written, before anything is read or drawn."""
    existing = out
    while not existing.exists() and existing != existing.parent:   # the folder, or what would hold it
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == out else f"lies under {existing}, which is a file"
        raise ConfigError(f"the report folder {out} {what}; name a folder for the report with --out PATH "
                          "(created if missing; the file is left as it is)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"the report folder {out} cannot be written ({existing}: no permission, or a read-only "
                          "disk); name a folder you can write to with --out PATH")


# `python -m registry report`: pyproject.toml names this as the entry point `report` of the registry's verbs
# ([project.entry-points."simclr_harness.commands"]), so that the registry runs it without importing reports.
COMMAND = Command(help="rebuild the paper's tables and figures beside ours", description=__doc__,
                  add_arguments=add_arguments, main=main)


def run(argv: list[str] | None = None) -> int:
    """`python -m reports`: the same verb, standalone."""
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        add_arguments(parser)         # lists the scales, which may be the user's own
        return main(parser.parse_args(argv))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

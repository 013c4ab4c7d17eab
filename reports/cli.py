"""Rebuild the paper's tables and figures from whatever results exist, each beside the published one.

    python -m registry report                      every artefact, at every scale that has results
    python -m registry report fig5 tab4 --scale cpu
    python -m registry report tab5 --scale cpu data.dataset=imagefolder data.data_dir=~/photos   (the runs made
        with these key=value overrides, as `run` took them; written to <results>/report+<overrides>)
    python -m reports --results-dir runs/ --out /tmp/report

Writes <out>/index.html (self-contained: figures embedded), <out>/report.md, and per artefact and scale
<key>_<scale>.md / .png / .csv, plus summary.csv and conclusions.csv. The default <out> is report/ inside the
results folder (./results/report). The folder holds one build: a build removes the files the previous one wrote
that it does not write again (reports/folder.py), and leaves any other file there as it is. Reads finished runs only
(final.json); never trains, never imports torch, and takes seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from registry.cli_parser import SuggestingParser, stray_words
from registry.commands import Command
from registry.discover import EXPERIMENTS_DIR_ENV, list_experiments
from registry.overrides import override_args, parse_overrides
from registry.scales import SCALES
from registry.store import default_results_dir, load_results
from simclr_core.atomic_files import nearest_existing
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

REPORT_FOLDER = "report"
MAX_FOLDER_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9.+=,_-]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Light on purpose: every `python -m registry` command builds this parser; the plotting stack loads in main.
    parser.add_argument("artefacts", nargs="*", metavar="ARTEFACT",
                        help="artefacts to build, e.g. fig5 tab4 (default: all). The paper's ablations fig5, tab1, "
                             "fig7, fig8, tab4, tab5 (with the temperature curve tab5_sweep), fig9; its tables tab3, "
                             "tab6, tab7 (tabB2: with the broader augmentations), tab8 (tabB5: the same with ResNet-50 "
                             "1x) and Appendix B.9's b9_batch_epochs, "
                             "b9_temperature_batch; its supervised baselines tab1_supervised (Table 1's supervised "
                             "rows; tab1_supervised_vs_simclr sets them beside SimCLR's), fig7_supervised (Figure 7's "
                             "crosses), tabB3 and tab8_baselines (Table 8's supervised and random-init rows beside "
                             "SimCLR's; tabB5_baselines likewise); each "
                             "experiment of our own by its name. An experiment's name selects the artefacts built "
                             "from it (temperature_norm: tab5, tab5_sweep; python -m registry list shows each "
                             "one's artefact). An unknown name is refused with the list. key=value words are the "
                             "config overrides the runs were made with, as `run` took them: each section then shows "
                             "the runs made with them instead of the declared config's")
    parser.add_argument("--results-dir", default=None,
                        help="results folder (default: $SIMCLR_RESULTS_DIR, else ./results)")
    parser.add_argument("--out", default=None,
                        help=f"output folder (default: <results folder>/{REPORT_FOLDER})")
    parser.add_argument("--scale", action="append", choices=list(SCALES), default=None,
                        help="only these scales (repeatable; default: every scale with results, "
                             "or the paper's side alone where there are none)")
    parser.set_defaults(overrides=[])   # key=value words after options land here (registry/__main__.py)


def main(args: argparse.Namespace) -> int:
    from reports.build import all_artefacts, artefact_keys, build_sections
    from reports.render import write_report
    from reports.variants import versions_note

    started = time.perf_counter()
    names = [word for word in args.artefacts if "=" not in word]
    overrides = parse_overrides([*(word for word in args.artefacts if "=" in word), *args.overrides])
    RunConfig().with_overrides(overrides)       # an unknown key or a bad value: one error naming the valid ones
    results_dir = default_results_dir(args.results_dir)
    out = Path(args.out).expanduser() if args.out else results_dir / report_folder(overrides)
    check_out_dir(out)
    specs = all_artefacts()
    asked = artefact_keys(names, specs) if names else list(specs)   # a mistyped name stops here, before any reading
    results = load_results(results_dir)
    runs = len(results["run_id"].unique()) if len(results) else 0
    print(f"building the report of {runs} finished run(s) in {results_dir}, one line per section as it is built",
          flush=True)
    width = max(map(len, asked))    # the keys of the sections asked for

    def built(section) -> None:       # with overrides, the lines wait for the check that some run was made with them
        if not overrides:
            print(section_line(section, width), flush=True)

    sections = build_sections(results, keys=names or None, scales=args.scale, overrides=overrides, on_built=built)
    if overrides and len(results) and not any(s.shown for s in sections):
        raise ConfigError(f"no finished run of {', '.join(sorted({s.key for s in sections}))} was made with"
                          f"{override_args(overrides)}; {made_with(results, {s.experiment for s in sections})}. "
                          "Give the overrides the runs were made with, as `run` took them")
    if overrides:
        print("\n".join(section_line(section, width) for section in sections), flush=True)
    left_out = results.attrs.get("left_out", {})
    for run_id, why in sorted(left_out.items()):
        print(f"left out: {run_id}: {why} (python -m registry status gives the command that trains it again)",
              file=sys.stderr)
    not_numbers = results.attrs.get("not_numbers", {})
    for run_id, entries in sorted(not_numbers.items()):
        print(f"left out of every cell: {run_id}: {entries} (final.json entries that are not numbers)",
              file=sys.stderr)
    try:
        written = write_report(sections, out, results_dir, left_out,
                               versions_note(results) + not_numbers_note(not_numbers))
    except OSError as exc:             # a disk that fills up, a folder changed meanwhile
        raise ConfigError(f"could not write the report in the report folder {out}: {exc.strerror or exc}"
                          + (f" ({exc.filename})" if exc.filename else "")) from None
    if written.removed:
        print(f"removed {len(written.removed)} file(s) of the previous report in {written.out_dir} that this one "
              f"does not rebuild: {_names(written.removed)}", file=sys.stderr)
    if written.unlisted:
        print(f"{written.out_dir} also holds {len(written.unlisted)} file(s) this report did not write, left as "
              f"they were (an earlier report's, built before reports listed their files?): "
              f"{_names(written.unlisted)}; delete them, or give --out an empty folder", file=sys.stderr)
    for s in sections:
        for run_id, why in sorted(s.left_out.items()):
            print(f"left out of {s.key} at scale {s.scale}: {run_id}: {why}", file=sys.stderr)
        for count, theirs, command in reports_of_left_out(s, results, args.results_dir):
            print(f"{count} run(s) left out of {s.key} at scale {s.scale} were made with "
                  f"{'other overrides' if theirs else 'no overrides'}; their report: {command}", file=sys.stderr)
    undeclared = undeclared_runs(results)
    if undeclared:
        print(f"left out: {sum(undeclared.values())} finished run(s) of experiments not declared here "
              f"({', '.join(sorted(undeclared))}); set ${EXPERIMENTS_DIR_ENV} to the folder of their declarations "
              f"to report them", file=sys.stderr)
    print(f"{runs} finished runs in {results_dir}; "
          f"report in {written.out_dir} ({written.html.name}, {written.markdown.name}, "
          f"{len(written.files)} files) in {time.perf_counter() - started:.1f}s")
    return 0


def section_line(s, width: int) -> str:
    """One section's line on the terminal: its scale, runs, rank agreement and conclusions."""
    from reports.render import conclusions_count

    a = s.artefact.agreement
    within = f", ranked within each {a.within}" if a.within else ""
    ranks = f"Spearman {a.spearman:+.2f}, Kendall {a.kendall:+.2f} over {a.cells} cells{within} ({a.seeds})" \
        if a.measured else a.why_not if s.own else f"ranks {a.why_not}"
    dropped = f"; {len(s.left_out)} run(s) of another config left out" if s.left_out else ""
    return (f"{s.key:<{width}}  {s.scale or 'none':<6} {s.progress}{dropped}; {ranks}; "
            f"conclusions: {conclusions_count(s.conclusions)}")


def not_numbers_note(not_numbers: Mapping[str, str]) -> list[str]:
    """A line naming the final.json entries that are not numbers (NaN, infinite), which no cell counts or averages."""
    if not not_numbers:
        return []
    listed = "; ".join(f"{run_id}: {entries}" for run_id, entries in sorted(not_numbers.items()))
    return [f"Left out of every cell: {len(not_numbers)} finished run(s) with final.json entries that are not numbers "
            f"(their other metrics are shown): {listed}."]


def report_folder(overrides: Mapping[str, Any]) -> str:
    """The default report folder's name: "report", or for a report of the runs made with `overrides` one of its
    own ("report+data.dataset=imagefolder+..."), so that it never replaces the declared config's report."""
    if not overrides:
        return REPORT_FOLDER
    name = "+".join(_UNSAFE.sub("_", word) for word in shlex.split(override_args(overrides)))
    if len(name) > MAX_FOLDER_CHARS:      # a folder name has at most 255 bytes; the hash keeps long ones apart
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:MAX_FOLDER_CHARS - 10]}~{digest}"
    return f"{REPORT_FOLDER}+{name}"


def reports_of_left_out(section, results, results_dir: str | None) -> list[tuple[int, dict[str, Any], str]]:
    """(runs, overrides, command) per set of overrides that runs left out of `section` were made with (as
    config.json records them), other than the section's own: the report command that shows those runs."""
    if section.scale is None or not section.left_out or "overrides_json" not in results:
        return []
    made_with = dict(zip(results["run_id"], results["overrides_json"]))
    counts: dict[str, int] = {}
    for run_id in section.left_out:
        text = made_with.get(run_id)
        if isinstance(text, str) and json.loads(text) != section.overrides:
            counts[text] = counts.get(text, 0) + 1
    where = f" --results-dir {shlex.quote(results_dir)}" if results_dir else ""
    command = f"python -m registry report {section.key} --scale {section.scale}{where}"
    return [(n, overrides, command + override_args(overrides))
            for n, overrides in ((n, json.loads(text)) for text, n in sorted(counts.items()))]


def made_with(results, experiments: set[str]) -> str:
    """What the finished runs of `experiments` were made with: "their finished runs were made with no overrides (4
    runs); with data.dataset=imagefolder (6 runs)", or that there are none."""
    runs = results.drop_duplicates("run_id")
    runs = runs[runs["experiment"].isin(experiments)]
    if runs.empty:
        return "this results folder has no finished run of theirs"
    counts = runs["overrides_json"].fillna("unrecorded").value_counts() if "overrides_json" in runs else {}
    said = []
    for text, n in sorted(dict(counts).items()):
        what = "overrides not recorded (made before they were)" if text == "unrecorded" else \
            ("with" + override_args(json.loads(text))) if json.loads(text) else "with no overrides"
        said.append(f"{what} ({n} run{'s' if n != 1 else ''})")
    return "their finished runs were made " + "; ".join(said)


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
    existing = nearest_existing(out)       # the folder, or what would hold it
    if not existing.is_dir():
        what = "is a file" if existing == out else f"lies under {existing}, which is a file"
        raise ConfigError(f"the report folder {out} {what}; name a folder for the report with --out PATH "
                          "(created if missing; the file is left as it is)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"the report folder {out} cannot be written ({existing}: no permission, or a read-only "
                          "disk); name a folder you can write to with --out PATH")


def _names(names, shown: int = 8) -> str:
    """"a, b, c"; past `shown` names, the first ones and "and 12 more"."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


# `python -m registry report`: pyproject.toml names this as the entry point `report` of the registry's verbs
# ([project.entry-points."simclr_harness.commands"]), so that the registry runs it without importing reports.
COMMAND = Command(help="rebuild the paper's tables and figures beside ours", description=__doc__,
                  add_arguments=add_arguments, main=main)


def run(argv: list[str] | None = None) -> int:
    """`python -m reports`: the same verb, standalone."""
    parser = SuggestingParser(prog="python -m reports", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        add_arguments(parser)         # lists the scales, which may be the user's own
        args, extra = parser.parse_known_args(argv)     # key=value words may follow options, as in `registry`
        stray = [word for word in extra if word.startswith("-") or "=" not in word]
        if stray:
            parser.error(stray_words(stray))
        args.overrides = [*args.overrides, *extra]
        return main(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


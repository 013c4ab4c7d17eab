"""Sections -> files: one self-contained HTML page (figures embedded as base64 PNG), and per artefact a
Markdown page, a PNG and a CSV of the numbers; plus report.md, summary.csv and conclusions.csv.

This is the only place numbers are rounded (one decimal for accuracies, two for correlations); the CSVs keep
every digit. Every section says what ran (from the runs' configs), which runs it left out and why, and what
the paper's numbers are to our runs (the paper's setting, an ImageNet trend, or CIFAR-10 references); when
the runs are not the paper's setting it says that values are not comparable and that the ranking and the
conclusions are what is being tested.
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

from reports import style
from reports.style import axis_value
from reports.build import Section
from reports.claims import Conclusion, noise_of
from reports.compare import Agreement
from reports.folder import ReportFolder
from reports.references import CIFAR10_SETTING, CIFAR10_TREND, OWN_SETTING
from reports.what_ran import DATASET_NAMES

# The files every build writes besides its sections' own.
LISTING_FILES = ["summary.csv", "conclusions.csv", "index.html", "report.md"]
READ_AS_TEXT = {"printed": "printed", "read_from_plot": "read off a plot", "missing": "not in the paper"}


@dataclass(frozen=True)
class Written:
    out_dir: Path
    html: Path
    markdown: Path
    files: tuple[Path, ...]
    removed: tuple[str, ...] = ()       # the previous build's files this one did not write again (reports/folder.py)
    unlisted: tuple[str, ...] = ()      # files an earlier report that listed none may have left there; kept


# ---- numbers -> text ---------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 1, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_ours(mean: float, std: float, runs: int) -> str:
    if runs == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.1f} ± {std:.1f}" if runs > 1 and not math.isnan(std) else f"{mean:.1f}"


def fmt_paper(value: float, read_as: str, uncertainty: float) -> str:
    """A published number: printed ones to one decimal; a plot reading with its stated bound ("62.6 ± 0.2 (plot)"),
    or, where none is stated (a reader's "~85"), as the rough number it is ("~85 (plot)")."""
    if read_as == "read_from_plot":
        if math.isnan(uncertainty):
            return "—" if math.isnan(value) else f"~{value:g} (plot)"
        return f"{fmt(value)} ± {uncertainty:g} (plot)"
    return fmt(value)


def ours_label(section: Section) -> str:
    label = section.scale or "no runs"
    return label + (f", {section.ours_metric}" if section.ours_metric != section.metric else "")


def display_table(section: Section) -> pd.DataFrame:
    """The delta table as text: axes, paper, ours (mean ± std over seeds), delta, runs."""
    table = section.artefact.compare
    if table.empty:
        return pd.DataFrame(columns=[f"paper ({section.reference})", "ours", "Δ ours − paper", "runs"])
    leading = [c for c in table.columns if c == "experiment"]
    axes = [c for c in table.columns if c.startswith("axis.")]
    out = pd.DataFrame({c: table[c].map(axis_value) for c in leading})
    for c in axes:
        out[c.removeprefix("axis.")] = table[c].map(axis_value)
    if "metric" in table and table["metric"].nunique() > 1:      # a table of several metrics (Table 3, 6, 7, 8)
        out["metric"] = table["metric"]
    out[f"paper ({section.reference})"] = [fmt_paper(v, r, u) for v, r, u in zip(table["published"], table["read_as"], table["uncertainty"])]
    out[f"ours ({ours_label(section)})"] = [fmt_ours(m, s, int(n)) for m, s, n in
                                                   zip(table["ours_mean"], table["ours_std"], table["ours_runs"])]
    out["Δ ours − paper"] = table["delta"].map(lambda d: fmt(d, signed=True))
    out["runs"] = table["ours_runs"].astype(int)
    return out


def display_extra(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(fmt)
        else:
            out[c] = out[c].map(axis_value)
    out.columns = [axis_value(c) for c in out.columns]
    return out


def reference_of(section: Section, conclusion: Conclusion) -> str:
    return conclusion.reference or f"{section.published_file}: {section.reference}"


def conclusions_table(section: Section) -> pd.DataFrame:
    return pd.DataFrame([{"paper's conclusion": c.claim, "checked against": reference_of(section, c),
                          "in the paper": c.paper.text, "in ours": c.ours.text, "ours: the numbers": c.ours.evidence,
                          "paper: the numbers": c.paper.evidence} for c in section.conclusions])


def noise_text(section: Section) -> str:
    return (f"Seed noise: {noise_of(section.artefact.compare).describe()}. A claim holds or fails only where "
            f"every margin clears the noise; an exact tie is within noise (the rule: reports/noise.py).")


def interval_text(agreement: Agreement, name: str) -> str:
    interval = (agreement.intervals or {}).get(name)
    if interval is None:
        return ""
    if interval.undefined == interval.resamples:
        return " [no interval: every resample ties]"
    return f" [{interval.level:.0%} interval {interval.low:.2f} to {interval.high:.2f}]"


def agreement_text(section: Section) -> str:
    a = section.artefact.agreement
    if not a.measured:
        return f"Rank agreement: {a.why_not}."
    over = (f"within each {a.within} over {a.cells} cells with both numbers (only cells of the same {a.within} "
            f"compared)" if a.within else f"over {a.cells} cells with both numbers")
    text = (f"Rank agreement {over}: Spearman ρ = {a.spearman:.2f}"
            f"{interval_text(a, 'spearman')}, Kendall τ-b = {a.kendall:.2f}{interval_text(a, 'kendall')}")
    if a.intervals is None:
        return f"{text} ({a.seeds})."
    first = next(iter(a.intervals.values()))
    undefined = max(i.undefined for i in a.intervals.values())
    dropped = (f"; {undefined} resample(s) with every cell tied have no correlation and are left out"
               if undefined else "")
    return f"{text} (bootstrap over seeds: {first.resamples} resamples, {a.seeds}{dropped})."


def what_ran_text(section: Section) -> str:
    return f"What ran: {section.what_ran.text}."


def scale_banner(section: Section) -> str:
    if section.own:
        runs = f"Scale: {section.scale}." if section.scale else "No finished runs at any scale yet."
        stand_in = (f" This scale does not evaluate {section.metric}: {section.ours_metric} stands in for it, in the "
                    f"ranking and under its heading." if section.ours_metric != section.metric else "")
        return (f"{runs} An experiment of our own: no published numbers to set beside ours; the cells are ranked "
                f"against their seed noise.{stand_in}")
    if section.scale is None:
        return "No finished runs at any scale yet: the paper's side only."
    stand_in = (f" This scale does not evaluate {section.metric}: our column shows {section.ours_metric} "
                f"in its place." if section.ours_metric != section.metric else "")
    runs = "" if section.what_ran.runs else " No finished runs of this scale's config yet."
    published_on = "CIFAR-10" if section.reference in (CIFAR10_SETTING, CIFAR10_TREND) else "ImageNet"
    if section.comparable:
        return (f"Scale: {section.scale}, the paper's setting ({published_on}, the declared config): values may be "
                f"compared directly, within the published numbers' uncertainty.{runs}{stand_in}")
    if section.reference in OWN_SETTING:
        why = f"{published_on}, but not the paper's declared setting"
    elif section.what_ran.runs:
        why = ("runs on " + ", ".join(DATASET_NAMES.get(d, d) for d in section.what_ran.datasets)
               + f": the paper's {published_on} numbers are a trend to them")
    else:
        why = f"this scale does not train on {published_on}: the paper's numbers are a trend to its runs"
    return (f"Scale: {section.scale}. NOT the paper's setting ({why}): values are not comparable; the ranking of "
            f"the cells and the conclusions are what is tested.{runs}{stand_in}")


def left_out_lines(section: Section) -> list[str]:
    return [f"{run_id}: {why}" for run_id, why in sorted(section.left_out.items())]


def left_out_intro(section: Section) -> str:
    return (f"Left out: {len(section.left_out)} finished run(s) at this scale whose config differs from the one shown "
            f"in more than the seed (never averaged with it):")


def published_text(section: Section) -> str:
    counts = ", ".join(f"{n} {READ_AS_TEXT.get(k, k)}" for k, n in sorted(section.read_as_counts.items()))
    bound = "" if math.isnan(section.plot_bound) else f" (plot readings within ±{section.plot_bound:g})"
    return f"{section.published_file}: {counts}{bound}."


# ---- Markdown --------------------------------------------------------------------------------------------------
def markdown_section(section: Section, image: str, level: int = 2) -> str:
    h = "#" * level
    lines = [f"{h} {section.title}", "",
             f"`{section.key}` · experiment `{section.experiment}` · scale **{section.scale or 'none'}**", "",
             f"> {scale_banner(section)}", "", f"**{what_ran_text(section)}**", "",
             f"**Runs:** {section.progress}", ""]
    lines += [f"**Config shown:** {n}" for n in section.variant_notes] + ([""] if section.variant_notes else [])
    if section.left_out:
        lines += [left_out_intro(section), ""] + [f"- {line}" for line in left_out_lines(section)] + [""]
    lines += [f"![{section.key} at scale {section.scale}]({image})", ""]
    if not section.own:
        lines += [f"{h}# Paper vs ours (scale: {ours_label(section)})", "",
                  display_table(section).to_markdown(index=False, disable_numparse=True), "", agreement_text(section), ""]
    for title, frame in section.artefact.tables.items():
        lines += [f"{h}# {title[:1].upper() + title[1:]} (scale: {section.scale or 'no runs'})", "",
                  display_extra(frame).to_markdown(index=False, disable_numparse=True), ""]
    if section.conclusions:
        lines += [f"{h}# The paper's conclusions, checked", "", conclusions_table(section).to_markdown(index=False), "",
                  noise_text(section), ""]
    if section.reference_notes:
        lines += [f"{h}# CIFAR-10 reference", ""] + [f"- {n}" for n in section.reference_notes] + [""]
    lines += [f"{h}# Notes", ""] + [f"- {n}" for n in section.artefact.notes[section.expected is None:]] + [""] \
        if section.artefact.notes[section.expected is None:] else []
    if section.deviations:
        lines += [f"{h}# Deviations from the paper", ""] + [f"- {d}" for d in section.deviations] + [""]
    if not section.own:
        lines += [f"{h}# Published numbers", "", f"- {published_text(section)}"]
        lines += [f"- source: {s}" for s in section.sources] + [""]
    return "\n".join(lines)


# ---- HTML --------------------------------------------------------------------------------------------------------
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.banner { padding: 0.5em 0.8em; border-left: 5px solid #c0392b; background: #fdf0ee; }
.banner.ok { border-color: #27ae60; background: #eefaf1; }
.holds { color: #1e8449; font-weight: bold; } .fails { color: #c0392b; font-weight: bold; }
.noise { color: #9a6700; font-weight: bold; }
section { border-top: 2px solid #ddd; margin-top: 2em; padding-top: 0.5em; }
img.figure { max-width: 100%; border: 1px solid #eee; }
"""


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, na_rep="—")


def _verdict_cells(frame: pd.DataFrame) -> str:
    text = _table_html(frame)
    for word, css in (("holds", "holds"), ("fails", "fails"), ("within noise", "noise")):
        text = re.sub(f"<td>({word}(?: \\([^<]*\\))?)</td>", f'<td class="{css}">\\1</td>', text)
    return text


def html_section(section: Section, png: bytes) -> str:
    e = html.escape
    banner_class = "banner ok" if section.comparable else "banner"
    parts = [f'<section id="{e(section.slug)}">', f"<h2>{e(section.title)}</h2>",
             f"<p><code>{e(section.key)}</code> · experiment <code>{e(section.experiment)}</code> · "
             f"scale <b>{e(section.scale or 'none')}</b></p>",
             f'<p class="{banner_class}">{e(scale_banner(section))}</p>',
             f"<p><b>{e(what_ran_text(section))}</b></p>",
             f"<p><b>Runs:</b> {e(section.progress)}</p>"]
    parts += [f"<p><b>Config shown:</b> {e(n)}</p>" for n in section.variant_notes]
    if section.left_out:
        parts += [f"<p>{e(left_out_intro(section))}</p><ul>"] + [f"<li>{e(line)}</li>" for line in
                                                                left_out_lines(section)] + ["</ul>"]
    parts += [f'<img class="figure" alt="{e(section.key)} at scale {e(str(section.scale))}" '
              f'src="data:image/png;base64,{base64.b64encode(png).decode()}">']
    if not section.own:
        parts += [f"<h3>Paper vs ours (scale: {e(ours_label(section))})</h3>", _table_html(display_table(section)),
                  f"<p>{e(agreement_text(section))}</p>"]
    for title, frame in section.artefact.tables.items():
        parts += [f"<h3>{e(title[:1].upper() + title[1:])} (scale: {e(section.scale or 'no runs')})</h3>",
                  _table_html(display_extra(frame))]
    if section.conclusions:
        parts += ["<h3>The paper's conclusions, checked</h3>", _verdict_cells(conclusions_table(section)),
                  f"<p>{e(noise_text(section))}</p>"]
    if section.reference_notes:
        parts += ["<h3>CIFAR-10 reference</h3><ul>"] + [f"<li>{e(n)}</li>" for n in section.reference_notes] \
            + ["</ul>"]
    notes = section.artefact.notes[section.expected is None:]     # the sweep's first note is its progress line
    if notes:
        parts += ["<h3>Notes</h3><ul>"] + [f"<li>{e(n)}</li>" for n in notes] + ["</ul>"]
    if section.deviations:
        parts += ["<h3>Deviations from the paper</h3><ul>"] + [f"<li>{e(d)}</li>" for d in section.deviations]
        parts += ["</ul>"]
    if not section.own:
        parts += ["<h3>Published numbers</h3><ul>", f"<li>{e(published_text(section))}</li>"]
        parts += [f"<li>source: {e(s)}</li>" for s in section.sources] + ["</ul>"]
    parts += ["</section>"]
    return "\n".join(parts)


# ---- the summary -------------------------------------------------------------------------------------------------
def summary_table(sections: Sequence[Section]) -> pd.DataFrame:
    rows = []
    for s in sections:
        a = s.artefact.agreement
        rows.append({"artefact": s.key, "experiment": s.experiment, "scale": s.scale or "none",
                     "comparable in value": "yes" if s.comparable else "no", "paper's numbers are": s.reference,
                     "ours metric": s.ours_metric, "runs done": s.progress, "runs left out": len(s.left_out),
                     "what ran": s.what_ran.text, "cells compared": a.cells, "ranked within": a.within or "all",
                     **_with_bounds(a, "spearman", a.spearman), **_with_bounds(a, "kendall", a.kendall),
                     "ranks": "" if a.measured else a.why_not,
                     "conclusions": conclusions_count(s.conclusions)})
    return pd.DataFrame(rows)


def _with_bounds(agreement: Agreement, name: str, value: float) -> dict[str, float]:
    interval = (agreement.intervals or {}).get(name)
    return {name: value, f"{name} low": interval.low if interval else math.nan,
            f"{name} high": interval.high if interval else math.nan}


def _correlation_text(value: float, low: float, high: float, why_not: str) -> str:
    if math.isnan(value):
        return why_not
    return fmt(value, 2) + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")


def conclusions_count(conclusions: Sequence[Conclusion]) -> str:
    """"2 of 3 hold, 1 within noise" (our side), naming every outcome that occurs."""
    outcomes = [c.ours.outcome for c in conclusions]
    if not outcomes:
        return "none to check"
    held = f"{outcomes.count('holds')} of {len(outcomes)} hold"
    others = [f"{outcomes.count(o)} {o}" for o in ("fails", "within noise", "undecided") if o in outcomes]
    return ", ".join([held] + others)


def _summary_display(sections: Sequence[Section]) -> pd.DataFrame:
    """The summary as text: correlations with their interval, undefined ones saying why; what ran is in each
    section and in summary.csv."""
    table = summary_table(sections)
    if table.empty:
        return table
    for c in ("spearman", "kendall"):
        table[c] = [_correlation_text(*values) for values in
                    zip(table[c], table[f"{c} low"], table[f"{c} high"], table["ranks"])]
    return table.drop(columns=["what ran", "spearman low", "spearman high", "kendall low", "kendall high", "ranks"])


def write_report(sections: Sequence[Section], out_dir: str | Path, results_dir: str | Path,
                 left_out: dict[str, str] | None = None, folder_notes: Sequence[str] = ()) -> Written:
    """Write every file under `out_dir` (created) and return where they are. `left_out`: finished runs the
    results table could not use ({run_id: why}, from load_results), listed at the top of the report;
    `folder_notes`: lines about the results folder as a whole (e.g. the config versions it mixes)."""
    out = Path(out_dir)
    folder = ReportFolder(out, [name for section in sections for name in section_files(section)] + LISTING_FILES)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"SimCLR (Chen et al. 2020, arXiv:2002.05709): our results beside the paper's. Built {stamp} from "
              f"{results_dir}. Each section says what ran, from the runs' own configs; only runs of the paper's "
              f"declared ImageNet setting are comparable in value.")
    html_parts, md_parts = [], []
    all_conclusions = []
    for section in sections:
        image_name, md_name, csv_name = section_files(section)
        png = style.png_bytes(section.artefact.figure)
        folder.write_bytes(image_name, png)
        folder.write_text(md_name, markdown_section(section, image_name, level=1) + "\n")
        folder.write_csv(csv_name, section.artefact.compare.assign(
            artefact=section.key, experiment_declared=section.experiment, scale=section.scale or "",
            ours_metric=section.ours_metric, comparable_in_value=section.comparable,
            deviations=" | ".join(section.deviations)))
        html_parts.append(html_section(section, png))
        md_parts.append(markdown_section(section, image_name))
        all_conclusions += [{"artefact": section.key, "scale": section.scale or "", "claim": c.claim,
                             "checked_against": reference_of(section, c),
                             "in_paper": c.paper.outcome, "in_ours": c.ours.outcome, "ours_note": c.ours.note,
                             "ours_evidence": c.ours.evidence, "paper_evidence": c.paper.evidence}
                            for c in section.conclusions]
    folder.write_csv("summary.csv", summary_table(sections))
    folder.write_csv("conclusions.csv", pd.DataFrame(all_conclusions))
    index_rows = _summary_display(sections)
    if len(index_rows):
        index_rows = index_rows.map(lambda v: html.escape(str(v)))
        index_rows["artefact"] = [f'<a href="#{html.escape(s.slug)}">{html.escape(s.key)}</a>' for s in sections]
    omitted = [f"{run_id}: {why}" for run_id, why in sorted((left_out or {}).items())]
    omitted_intro = (f"Left out: {len(omitted)} finished run(s) whose files are damaged (`python -m registry "
                     "status` gives the command that trains each again):") if omitted else ""
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>SimCLR reproduction report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>SimCLR reproduction report</h1>", f"<p>{html.escape(header)}</p>",
        *(f"<p><b>{html.escape(line)}</b></p>" for line in folder_notes),
        *([f"<p>{html.escape(omitted_intro)}</p><ul>"
           + "".join(f"<li>{html.escape(line)}</li>" for line in omitted) + "</ul>"] if omitted else []),
        "<h2>Summary</h2>", index_rows.to_html(index=False, escape=False, border=0, na_rep="—"),
        *html_parts, "</body></html>"])
    page_path = folder.write_text("index.html", page)
    report_md = folder.write_text("report.md", "\n".join(["# SimCLR reproduction report", "", header, "",
                                    *(f"**{line}**\n" for line in folder_notes),
                                    *([omitted_intro, "", *(f"- {line}" for line in omitted), ""] if omitted else []),
                                    "## Summary", "",
                                    _summary_display(sections).to_markdown(index=False), "", *md_parts]) + "\n")
    removed, unlisted = folder.finish()
    return Written(out, page_path, report_md, tuple(out / name for name in folder.written), removed, unlisted)


def section_files(section: Section) -> tuple[str, str, str]:
    """A section's figure, page and numbers: <key>_<scale>.png / .md / .csv."""
    return f"{section.slug}.png", f"{section.slug}.md", f"{section.slug}.csv"

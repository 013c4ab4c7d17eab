"""Sections -> files: one self-contained HTML page (figures embedded as base64 PNG), and per artefact a
Markdown page, a PNG and a CSV of the numbers; plus report.md, summary.csv and conclusions.csv.

This is the only place numbers are rounded (one decimal for accuracies, two for correlations); the CSVs keep
every digit. Every table names its scale and, when that is not the paper's, says that values are not
comparable with the paper's and that the ranking and the conclusions are what is being tested.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

from reports import style
from reports.build import Section
from reports.compare import Verdict

READ_AS_TEXT = {"printed": "printed", "read_from_plot": "read off a plot", "missing": "not in the paper"}


@dataclass(frozen=True)
class Written:
    out_dir: Path
    html: Path
    markdown: Path
    files: tuple[Path, ...]


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
    if read_as == "read_from_plot":
        bound = "" if math.isnan(uncertainty) else f" ± {uncertainty:g}"
        return f"{fmt(value)}{bound} (plot)"
    return fmt(value)


def verdict_text(verdict: Verdict) -> str:
    return {True: "yes", False: "no", None: "not enough results"}[verdict.holds]


def axis_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def ours_label(section: Section) -> str:
    label = section.scale or "no runs"
    return label + (f", {section.ours_metric}" if section.ours_metric != section.metric else "")


def display_table(section: Section) -> pd.DataFrame:
    """The delta table as text: axes, paper, ours (mean ± std over seeds), delta, runs."""
    table = section.artefact.compare
    if table.empty:
        return pd.DataFrame(columns=["paper", "ours", "Δ ours − paper", "runs"])
    leading = [c for c in table.columns if c == "experiment"]
    axes = [c for c in table.columns if c.startswith("axis.")]
    out = pd.DataFrame({c: table[c].map(axis_value) for c in leading})
    for c in axes:
        out[c.removeprefix("axis.")] = table[c].map(axis_value)
    out["paper"] = [fmt_paper(v, r, u) for v, r, u in zip(table["published"], table["read_as"], table["uncertainty"])]
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


def conclusions_table(section: Section) -> pd.DataFrame:
    return pd.DataFrame([{"paper's conclusion": c.claim, "holds in the paper": verdict_text(c.paper),
                          "holds in ours": verdict_text(c.ours), "ours: the numbers": c.ours.evidence,
                          "paper: the numbers": c.paper.evidence} for c in section.artefact.conclusions])


def agreement_text(section: Section) -> str:
    a = section.artefact.agreement
    if not a.measured:
        return (f"Rank agreement: not measured ({a.cells} cell(s) with both numbers; "
                f"at least 3 are needed).")
    return (f"Rank agreement over {a.cells} cells with both numbers: Spearman ρ = {a.spearman:.2f}, "
            f"Kendall τ-b = {a.kendall:.2f}.")


def scale_banner(section: Section) -> str:
    if section.scale is None:
        return "No finished runs at any scale yet: the paper's side only."
    stand_in = (f" This scale does not evaluate {section.metric}: our column shows {section.ours_metric} "
                f"in its place." if section.ours_metric != section.metric else "")
    if section.comparable:
        return (f"Scale: {section.scale} ({section.scale_summary}). This is the paper's setting: values may be "
                f"compared directly, within the published numbers' uncertainty.{stand_in}")
    return (f"Scale: {section.scale} ({section.scale_summary}). NOT the paper's setting: our values are not "
            f"comparable with the paper's ImageNet/ResNet-50 numbers; the ranking of the cells and the "
            f"conclusions are what is tested.{stand_in}")


def published_text(section: Section) -> str:
    counts = ", ".join(f"{n} {READ_AS_TEXT.get(k, k)}" for k, n in sorted(section.read_as_counts.items()))
    bound = "" if math.isnan(section.plot_bound) else f" (plot readings within ±{section.plot_bound:g})"
    return f"{section.published_file}: {counts}{bound}."


# ---- Markdown --------------------------------------------------------------------------------------------------
def markdown_section(section: Section, image: str, level: int = 2) -> str:
    h = "#" * level
    lines = [f"{h} {section.title}", "",
             f"`{section.key}` · experiment `{section.experiment}` · scale **{section.scale or 'none'}**", "",
             f"> {scale_banner(section)}", "", f"**Runs:** {section.progress}", "",
             f"![{section.key} at scale {section.scale}]({image})", "",
             f"{h}# Paper vs ours (scale: {ours_label(section)})", "",
             display_table(section).to_markdown(index=False), "", agreement_text(section), ""]
    for title, frame in section.artefact.tables.items():
        lines += [f"{h}# {title.capitalize()} (scale: {section.scale or 'no runs'})", "",
                  display_extra(frame).to_markdown(index=False), ""]
    if section.artefact.conclusions:
        lines += [f"{h}# The paper's conclusions, checked", "", conclusions_table(section).to_markdown(index=False), ""]
    lines += [f"{h}# Notes", ""] + [f"- {n}" for n in section.artefact.notes[section.expected is None:]] \
        if section.artefact.notes[section.expected is None:] else []
    lines += [f"{h}# Deviations from the paper", ""] + [f"- {d}" for d in section.deviations] + [""]
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
.yes { color: #1e8449; font-weight: bold; } .no { color: #c0392b; font-weight: bold; }
section { border-top: 2px solid #ddd; margin-top: 2em; padding-top: 0.5em; }
img.figure { max-width: 100%; border: 1px solid #eee; }
"""


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, na_rep="—")


def _verdict_cells(frame: pd.DataFrame) -> str:
    text = _table_html(frame)
    for word in ("yes", "no"):
        text = text.replace(f"<td>{word}</td>", f'<td class="{word}">{word}</td>')
    return text


def html_section(section: Section, png: bytes) -> str:
    e = html.escape
    banner_class = "banner ok" if section.comparable else "banner"
    parts = [f'<section id="{e(section.slug)}">', f"<h2>{e(section.title)}</h2>",
             f"<p><code>{e(section.key)}</code> · experiment <code>{e(section.experiment)}</code> · "
             f"scale <b>{e(section.scale or 'none')}</b></p>",
             f'<p class="{banner_class}">{e(scale_banner(section))}</p>',
             f"<p><b>Runs:</b> {e(section.progress)}</p>",
             f'<img class="figure" alt="{e(section.key)} at scale {e(str(section.scale))}" '
             f'src="data:image/png;base64,{base64.b64encode(png).decode()}">',
             f"<h3>Paper vs ours (scale: {e(ours_label(section))})</h3>", _table_html(display_table(section)),
             f"<p>{e(agreement_text(section))}</p>"]
    for title, frame in section.artefact.tables.items():
        parts += [f"<h3>{e(title.capitalize())} (scale: {e(section.scale or 'no runs')})</h3>",
                  _table_html(display_extra(frame))]
    if section.artefact.conclusions:
        parts += ["<h3>The paper's conclusions, checked</h3>", _verdict_cells(conclusions_table(section))]
    notes = section.artefact.notes[section.expected is None:]     # the sweep's first note is its progress line
    if notes:
        parts += ["<h3>Notes</h3><ul>"] + [f"<li>{e(n)}</li>" for n in notes] + ["</ul>"]
    parts += ["<h3>Deviations from the paper</h3><ul>"] + [f"<li>{e(d)}</li>" for d in section.deviations]
    parts += ["</ul>", "<h3>Published numbers</h3><ul>", f"<li>{e(published_text(section))}</li>"]
    parts += [f"<li>source: {e(s)}</li>" for s in section.sources] + ["</ul>", "</section>"]
    return "\n".join(parts)


# ---- the summary -------------------------------------------------------------------------------------------------
def summary_table(sections: Sequence[Section]) -> pd.DataFrame:
    rows = []
    for s in sections:
        verdicts = [c.ours.holds for c in s.artefact.conclusions]
        rows.append({"artefact": s.key, "experiment": s.experiment, "scale": s.scale or "none",
                     "comparable in value": "yes" if s.comparable else "no", "ours metric": s.ours_metric,
                     "runs done": s.progress, "cells compared": s.artefact.agreement.cells,
                     "spearman": s.artefact.agreement.spearman, "kendall": s.artefact.agreement.kendall,
                     "conclusions holding": f"{verdicts.count(True)} of {len(verdicts)}"
                                            + (f" ({verdicts.count(None)} undecided)" if None in verdicts else "")})
    return pd.DataFrame(rows)


def _summary_display(sections: Sequence[Section]) -> pd.DataFrame:
    table = summary_table(sections)
    if table.empty:
        return table
    for c in ("spearman", "kendall"):
        table[c] = table[c].map(lambda v: fmt(v, 2))
    return table


def write_report(sections: Sequence[Section], out_dir: str | Path, results_dir: str | Path,
                 left_out: dict[str, str] | None = None) -> Written:
    """Write every file under `out_dir` (created) and return where they are. `left_out`: finished runs the
    results table could not use ({run_id: why}, from load_results), listed at the top of the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"SimCLR (Chen et al. 2020, arXiv:2002.05709): our results beside the paper's. Built {stamp} from "
              f"{results_dir}. Each section names its scale; only scale 'paper' is comparable in value.")
    written: list[Path] = []
    html_parts, md_parts = [], []
    all_conclusions = []
    for section in sections:
        png = style.png_bytes(section.artefact.figure)
        image = out / f"{section.slug}.png"
        image.write_bytes(png)
        md = out / f"{section.slug}.md"
        md.write_text(markdown_section(section, image.name, level=1) + "\n")
        csv = out / f"{section.slug}.csv"
        section.artefact.compare.assign(
            artefact=section.key, experiment_declared=section.experiment, scale=section.scale or "",
            ours_metric=section.ours_metric, comparable_in_value=section.comparable,
            deviations=" | ".join(section.deviations)
        ).to_csv(csv, index=False)
        written += [image, md, csv]
        html_parts.append(html_section(section, png))
        md_parts.append(markdown_section(section, image.name))
        all_conclusions += [{"artefact": section.key, "scale": section.scale or "", "claim": c.claim,
                             "holds_in_paper": c.paper.holds, "holds_in_ours": c.ours.holds,
                             "ours_evidence": c.ours.evidence, "paper_evidence": c.paper.evidence}
                            for c in section.artefact.conclusions]
    summary = out / "summary.csv"
    summary_table(sections).to_csv(summary, index=False)
    conclusions = out / "conclusions.csv"
    pd.DataFrame(all_conclusions).to_csv(conclusions, index=False)
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
        *([f"<p>{html.escape(omitted_intro)}</p><ul>"
           + "".join(f"<li>{html.escape(line)}</li>" for line in omitted) + "</ul>"] if omitted else []),
        "<h2>Summary</h2>", index_rows.to_html(index=False, escape=False, border=0, na_rep="—"),
        *html_parts, "</body></html>"])
    page_path = out / "index.html"
    page_path.write_text(page)
    report_md = out / "report.md"
    report_md.write_text("\n".join(["# SimCLR reproduction report", "", header, "",
                                    *([omitted_intro, "", *(f"- {line}" for line in omitted), ""] if omitted else []),
                                    "## Summary", "",
                                    _summary_display(sections).to_markdown(index=False), "", *md_parts]) + "\n")
    written += [summary, conclusions, page_path, report_md]
    return Written(out, page_path, report_md, tuple(written))

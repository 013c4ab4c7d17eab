"""Table 8 whole (reports/tables/tab8_baselines.py) on synthetic results of both experiments, SimCLR's
(table8_transfer) and the baselines' (table8_transfer_supervised), with known numbers: the delta table, the layout
with every method, the noise-aware count of datasets where SimCLR is ahead, and the comparisons with random
initialisation."""
from __future__ import annotations

import math

import pandas as pd
import pytest

import reports.tables  # noqa: F401  (registers the artefacts)
from fake_results import write_results
from registry import get_experiment
from registry.store import load_results
from reports.artefacts import ARTEFACTS
from reports.build import build_sections
from reports.published import published_cells

BASELINES = get_experiment("table8_transfer_supervised")
AXIS = "axis.eval.transfer_dataset"
KINDS = ("top1", "mean_per_class_acc")
SEED_STEP = 0.4


def runs(experiment: str, values: dict[str, dict[str, float]], seeds=(0, 1)) -> list[dict]:
    """One row per (dataset, seed, metric): `values` maps a dataset to {metric prefix: value}, each prefix's two
    kinds of number alike; seed s adds SEED_STEP * s."""
    rows = []
    for dataset, by_prefix in values.items():
        for seed in seeds:
            for prefix, value in by_prefix.items():
                for kind in KINDS:
                    rows.append({"run_id": f"{experiment}/{dataset}-s{seed}", "experiment": experiment,
                                 "scale": "cpu", "seed": seed, AXIS: dataset, "metric": f"transfer_{prefix}_{kind}",
                                 "value": value + SEED_STEP * seed})
    return rows


def results(simclr: dict[str, float], supervised: dict[str, float], scratch: dict[str, float],
            linear: float = 50.0) -> pd.DataFrame:
    """Fine-tuned numbers per dataset for each method (linear evaluation `linear` for both pretrained ones)."""
    return pd.DataFrame(
        runs("table8_transfer", {d: {"linear": linear, "finetune": v} for d, v in simclr.items()})
        + runs(BASELINES.name, {d: {"linear": linear, "finetune": v, "scratch": scratch[d]}
                                for d, v in supervised.items()}))


def build(ours: pd.DataFrame):
    return ARTEFACTS["tab8_baselines"].build(ours, published_cells(BASELINES))


def verdicts(art) -> list[tuple[str, str]]:
    return [(c.paper.outcome, c.ours.outcome) for c in art.conclusions]


def test_the_delta_table_holds_every_row_of_the_paper_in_the_kind_it_prints_ranked_within_each_row():
    art = build(results({"cifar10": 90.0}, {"cifar10": 80.0, "oxford_pets": 70.0},
                        {"cifar10": 60.0, "oxford_pets": 55.0}))
    table = art.compare
    assert len(table) == 55           # 11 datasets x the paper's 5 rows
    assert list(dict.fromkeys(table["axis.row"])) == ["SimCLR, linear", "Supervised, linear", "SimCLR, fine-tuned",
                                                      "Supervised, fine-tuned", "Random init, fine-tuned"]
    assert table[table["axis.row"] == "SimCLR, fine-tuned"]["ours_mean"].notna().sum() == 1      # CIFAR-10 only
    pets = table[table[AXIS] == "oxford_pets"].set_index("axis.row")
    assert pets.loc["Random init, fine-tuned", "metric"] == "transfer_scratch_mean_per_class_acc"
    assert pets.loc["Random init, fine-tuned", "published"] == 82.7
    assert pets.loc["Random init, fine-tuned", "ours_mean"] == pytest.approx(55.0 + SEED_STEP / 2)
    assert pets.loc["Supervised, fine-tuned", "published"] == 93.2
    cifar = table[table[AXIS] == "cifar10"].set_index("axis.row")
    assert cifar.loc["Supervised, linear", "metric"] == "transfer_linear_top1"
    assert cifar.loc["Supervised, linear", "ours_mean"] == pytest.approx(50.0 + SEED_STEP / 2)
    assert art.agreement.within == "row"
    simclr = table[(table[AXIS] == "cifar10") & (table["axis.row"] == "SimCLR, fine-tuned")].iloc[0]
    assert (simclr["metric"], simclr["published"]) == ("transfer_finetune_top1", 98.6)
    assert simclr["ours_mean"] == pytest.approx(90.0 + SEED_STEP / 2)


def test_the_layout_shows_every_method_the_papers_row_then_ours():
    art = build(results({"cifar10": 90.0}, {"cifar10": 80.0}, {"cifar10": 60.0}))
    layout = next(iter(art.tables.values())).set_index(["protocol", "method"])
    assert list(layout.index) == [(p, f"{m} ({side})") for p, m in
                                  (("linear", "SimCLR"), ("linear", "Supervised"), ("fine-tuned", "SimCLR"),
                                   ("fine-tuned", "Supervised"), ("fine-tuned", "Random init"))
                                  for side in ("paper", "ours")]
    assert layout.loc[("fine-tuned", "Random init (paper)"), "CIFAR10 (top-1)"] == 96.0
    assert layout.loc[("fine-tuned", "Random init (ours)"), "CIFAR10 (top-1)"] == pytest.approx(60.2)
    assert layout.loc[("fine-tuned", "SimCLR (ours)"), "CIFAR10 (top-1)"] == pytest.approx(90.2)
    assert math.isnan(layout.loc[("fine-tuned", "Supervised (ours)"), "Food (top-1)"])
    assert "VOC2007 (11-pt mAP)" not in layout.columns           # not declared


def test_simclr_ahead_of_supervised_counts_a_dataset_within_the_seed_noise_as_level():
    # Two seeds 0.4 apart in every cell: pooled std 0.28; CIFAR-10 +10 is ahead, Pets +0.1 is level, so 1 - 0 holds.
    art = build(results({"cifar10": 90.0, "oxford_pets": 70.1}, {"cifar10": 80.0, "oxford_pets": 70.0},
                        {"cifar10": 60.0, "oxford_pets": 55.0}))
    ahead = art.conclusions[0]
    assert (ahead.paper.outcome, ahead.ours.outcome) == ("holds", "holds")
    assert ahead.ours.evidence.startswith("fine-tuned SimCLR ahead of supervised on 1, behind on 0, level within "
                                          "noise on 1 of 2 datasets")
    # Supervised ahead by 10 on both: fails.
    behind = build(results({"cifar10": 70.0, "oxford_pets": 60.0}, {"cifar10": 80.0, "oxford_pets": 70.0},
                           {"cifar10": 60.0, "oxford_pets": 55.0}))
    assert behind.conclusions[0].ours.outcome == "fails"
    assert "behind on 2" in behind.conclusions[0].ours.evidence


def test_pretrained_networks_against_random_initialisation_on_average_over_the_datasets():
    art = build(results({"cifar10": 90.0, "oxford_pets": 70.0}, {"cifar10": 80.0, "oxford_pets": 70.0},
                        {"cifar10": 60.0, "oxford_pets": 75.0}))
    # SimCLR: (30 - 5) / 2 = +12.5 holds; supervised: (20 - 5) / 2 = +7.5 holds.
    assert verdicts(art)[1:] == [("holds", "holds"), ("holds", "holds")]
    assert art.conclusions[1].ours.evidence.startswith("ahead of random init on 1 of 2 dataset(s); mean 80.2 vs "
                                                       "67.7; margin mean SimCLR - random init +12.50")
    worse = build(results({"cifar10": 61.0, "oxford_pets": 70.0}, {"cifar10": 50.0, "oxford_pets": 70.0},
                          {"cifar10": 60.0, "oxford_pets": 75.0}))
    assert verdicts(worse)[1:] == [("holds", "fails"), ("holds", "fails")]


def test_without_runs_the_papers_side_is_judged_and_every_dataset_is_named():
    art = build(pd.DataFrame())
    assert [c.paper.outcome for c in art.conclusions] == ["holds"] * 3
    assert [c.ours.outcome for c in art.conclusions] == ["undecided"] * 3
    assert art.conclusions[0].paper.evidence == ("fine-tuned SimCLR ahead of supervised on 6, behind on 5, level on "
                                                 "0 of 11 datasets")
    (note,) = art.notes
    assert note.count("SimCLR, Supervised, Random init") == 11 and "python -m registry show table8_transfer" in note


def test_the_report_reads_both_experiments_and_counts_each_ones_runs(tmp_path):
    names = ["table8_transfer", BASELINES.name]
    write_results(tmp_path, "cpu", lambda name, point, seed: 80.0 if name == BASELINES.name else 70.0, names=names)
    sections = {s.key: s for s in build_sections(load_results(tmp_path), ["tab8_baselines", "tab8"])}
    whole = sections["tab8_baselines"]
    assert (whole.done, whole.expected) == (22, 22) and (sections["tab8"].done, sections["tab8"].expected) == (11, 11)
    assert whole.title.startswith("Table 8 whole")
    assert whole.artefact.compare["ours_mean"].notna().all()
    # fake_results: the baselines' transfer_finetune_top1 is 10 above SimCLR's on every dataset.
    assert whole.artefact.conclusions[0].ours.outcome == "fails"
    assert whole.artefact.notes == []


def test_table_b5_whole_reads_its_own_experiments_and_the_papers_1x_rows():
    b5 = get_experiment("table_b5_transfer_supervised")
    ours = results({"cifar10": 90.0}, {"cifar10": 80.0}, {"cifar10": 60.0}).replace(
        {"experiment": {"table8_transfer": "table_b5_transfer", BASELINES.name: b5.name}})
    art = ARTEFACTS["tabB5_baselines"].build(ours, published_cells(b5))
    table = art.compare.set_index([AXIS, "axis.row"])
    assert table.loc[("cifar10", "Random init, fine-tuned"), "published"] == 95.9       # Table B.5's
    assert table.loc[("cifar10", "SimCLR, fine-tuned"), "published"] == 97.7
    assert table.loc[("cifar10", "Supervised, linear"), "ours_mean"] == pytest.approx(50.2)
    # Only the comparisons with random initialisation: Section 4.3's count of datasets is stated for Table 8.
    assert [c.claim.split(",")[0] for c in art.conclusions] == ["fine-tuned from SimCLR's weights"] + \
        ["fine-tuned from the supervised network's weights"]
    assert verdicts(art) == [("holds", "holds"), ("holds", "holds")]
    # Table 8's experiments' runs are not this table's.
    assert ARTEFACTS["tabB5_baselines"].build(results({"cifar10": 90.0}, {"cifar10": 80.0}, {"cifar10": 60.0}),
                                              published_cells(b5)).compare["ours_mean"].isna().all()

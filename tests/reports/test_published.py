"""Published numbers as data: each declared point's cell, with how it was read and its uncertainty."""
from __future__ import annotations

import math

import pytest

from registry import get_experiment, list_experiments
from registry.published import load_table
from reports.artefacts import ARTEFACTS
from reports.build import all_artefacts
from reports.published import parse_value, published_cells, published_for, read_as, rounding_half_unit


@pytest.mark.parametrize("value_type, expected", [
    ("exact", ("printed", math.nan)),
    ("exact_printed_in_figure", ("printed", math.nan)),
    ("exact (stated in text)", ("printed", math.nan)),
    ("approx_digitized (+/-0.4)", ("read_from_plot", 0.4)),
    ("approx_digitized (+/-0.2)", ("read_from_plot", 0.2)),
    ("approx (secondary: a user reading of the figure)", ("read_from_plot", math.nan)),
    ("MISSING (figure not available to us)", ("missing", math.nan)),
])
def test_value_type_becomes_read_as_and_uncertainty(value_type, expected):
    kind, bound = read_as(value_type)
    assert kind == expected[0]
    assert (math.isnan(bound) and math.isnan(expected[1])) or bound == expected[1]


def test_an_unknown_value_type_is_refused_naming_the_known_kinds():
    with pytest.raises(ValueError, match="'exact...' .*'MISSING"):
        read_as("guessed")


def test_values_and_their_rounding():
    assert parse_value("56.3") == 56.3 and parse_value(">10") == 10 and parse_value("+3") == 3
    assert math.isnan(parse_value("n/a"))
    assert rounding_half_unit("56.3") == pytest.approx(0.05)
    assert rounding_half_unit("100") == 0.5
    assert rounding_half_unit("0.125") == pytest.approx(0.0005)


def test_figure5_cells_and_printed_row_averages():
    table = published_for(get_experiment("augment_pairs"), ARTEFACTS["fig5"].published_extra)
    cells = table[table["declared"]]
    assert len(cells) == 49 and set(cells["read_as"]) == {"printed"}
    crop_color = cells[(cells["axis.first"] == "crop") & (cells["axis.second"] == "color")]
    assert crop_color["value"].tolist() == [56.3]
    assert crop_color["uncertainty"].iloc[0] == pytest.approx(0.05)
    assert "gaoge230" in crop_color["source"].iloc[0]
    averages = table[~table["declared"]].set_index("axis.first")["value"]
    assert averages.to_dict() == {"crop": 39.2, "cutout": 29.4, "color": 25.7, "sobel": 18.8, "noise": 15.5,
                                  "blur": 14.5, "rotate": 13.8}
    assert (table[~table["declared"]]["axis.second"] == "average").all()


def test_figure8_bars_are_plot_readings_with_their_bound():
    table = published_for(get_experiment("head_type"))
    assert set(table["read_as"]) == {"read_from_plot"}
    assert set(table["uncertainty"]) == {0.4}
    none = table[table["axis.head.kind"] == "none"]
    assert none["value"].tolist() == [50.0]


@pytest.mark.parametrize("name", list_experiments())
def test_every_declared_experiment_has_a_report_function_and_its_published_cells(name):
    experiment = get_experiment(name)
    specs = all_artefacts()
    assert experiment.artefact in specs, f"no report function for artefact {experiment.artefact!r}"
    assert specs[experiment.artefact].experiment == name
    table = published_cells(experiment)
    if experiment.published is None:          # one of our own: reports/own.py's table, no paper cells
        assert table.empty and experiment.artefact not in ARTEFACTS
        return
    assert len(table) == len(experiment.axes) * len(experiment.published_metrics)
    assert set(table["cell_metric"]) == set(experiment.published_metrics)
    found = table[table["read_as"] != "missing"]
    assert len(found), f"{name}: no cell has a published number"
    assert found["value"].notna().all() and set(found["read_as"]) <= {"printed", "read_from_plot"}
    # the values are the CSV's own cells, not a copy: every one occurs in the file
    csv_values = {parse_value(r["value"]) for r in load_table(experiment.published.file)}
    assert set(found["value"]) <= csv_values


def test_every_registered_artefact_names_a_declared_experiment():
    for key, spec in ARTEFACTS.items():
        artefact = get_experiment(spec.experiment).artefact
        assert key == artefact or key.startswith(artefact + "_")


def test_the_report_verb_help_names_every_artefact():
    import argparse

    from reports.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help().replace("\n", " ")
    for key in ARTEFACTS:
        assert key in text


def test_a_published_folder_of_ones_own_adds_to_the_packages(tmp_path, monkeypatch):
    from registry.published import PUBLISHED_DIR_ENV, table_path
    from simclr_core.validation import ConfigError

    (tmp_path / "mine.csv").write_text("value,value_type\n1,exact\n")
    monkeypatch.setenv(PUBLISHED_DIR_ENV, str(tmp_path))
    assert table_path("mine.csv") == tmp_path / "mine.csv"
    assert len(load_table(get_experiment("temperature_norm").published.file))      # the package's still found
    monkeypatch.setenv(PUBLISHED_DIR_ENV, str(tmp_path / "typo"))
    with pytest.raises(ConfigError, match="typo is not a folder"):
        table_path("mine.csv")

"""An experiment of one's own (no published numbers): our cells per metric as mean ± std, a ranking judged
against seed noise, and a report section with no paper column."""
from __future__ import annotations

import pytest

from registry import Experiment, get_experiment, grid
from registry.discover import _registry
from reports.build import OWN, all_artefacts, build_sections
from reports.compare import with_metric
from reports.own import NO_PAPER, cells, own_builder, ranking
from reports.render import display_extra, html_section, markdown_section
from simclr_core.validation import ConfigError

from fake_results import long_form, write_run
from registry.store import RunStore, load_results

TOY = Experiment(name="own_toy", title="Own: loss x temperature", metric="linear_top1",
                 metrics=("knn_top1",), base={"optim.lr_scaling": "linear"},
                 axes=grid(loss__temperature=(0.1, 0.2, 0.5)))


def _ours(values):
    frame = long_form("own_toy", [({"loss.temperature": t}, v) for t, v in zip((0.1, 0.2, 0.5), values)])
    return frame.assign(**{"loss.temperature": frame["axis.loss.temperature"]}) if len(frame) else frame


@pytest.fixture
def declared(monkeypatch):
    monkeypatch.setitem(_registry(), "own_toy", TOY)
    return TOY


def test_cells_hold_every_point_and_metric_with_mean_and_std():
    table = cells(TOY, _ours([(60.0, 62.0), (61.0, 61.0), (50.0, 52.0)]))
    assert list(table["metric"]) == ["linear_top1"] * 3 + ["knn_top1"] * 3
    top = table.iloc[0]
    assert top["ours_mean"] == 61.0 and top["ours_std"] == pytest.approx(2 ** 0.5) and top["ours_runs"] == 2
    assert table["published"].isna().all()


def test_the_ranking_tells_noise_from_a_real_gap():
    # pooled std 1.15 over 3 cells of 2 seeds; 2 SE of a difference of two 2-seed means = 2.31
    lines = ranking(TOY, cells(TOY, _ours([(60.0, 62.0), (61.0, 61.0), (50.0, 52.0)])))
    assert lines[0].startswith("Ranking by linear_top1: best 0.1 61.00 over 3 cell(s)")
    assert lines[-2] == "Within noise of the best: 0.2 61.00 (+0.00)."
    assert lines[-1] == "Below it beyond noise: 0.5 51.00 (+10.00)."


def test_one_seed_ranks_by_the_means_and_says_so():
    lines = ranking(TOY, cells(TOY, _ours([(60.0,), (61.0,), (50.0,)])))
    assert "1 seed: noise not measured" in lines[0] and "by the means alone" in lines[1]
    assert lines[-1] == "Below the best, by mean: 0.1 60.00 (+1.00); 0.5 50.00 (+11.00)."
    # noise not measured: no cell is said to be within it, or beyond it
    assert not any("beyond noise" in line or "Within noise" in line for line in lines)


def _smoke(values):
    """`_ours` as a scale without linear evaluation has it: kNN rows only."""
    frame = _ours(values)
    return frame[frame["metric"] == "linear_top1"].assign(metric="knn_top1")


def test_a_stand_in_is_named_where_it_shows_and_keeps_its_own_column():
    ours, shown = with_metric(_smoke([(60.0, 62.0), (61.0, 61.0), (50.0, 52.0)]), TOY.metric)
    assert shown == "knn_top1"
    table = cells(TOY, ours)
    linear, knn = table[table["metric"] == "linear_top1"], table[table["metric"] == "knn_top1"]
    assert list(linear["ours_mean"]) == list(knn["ours_mean"]) == [61.0, 61.0, 51.0]     # not a blank column
    assert set(linear["stand_in"]) == {"knn_top1"} and set(knn["stand_in"]) == {""}
    wide = own_builder(TOY)(ours, None).tables["ours: mean ± std over seeds, per metric"]
    assert list(wide.columns) == ["loss.temperature", "linear_top1 (knn_top1 standing in)", "knn_top1"]
    assert ranking(TOY, table)[0].startswith("Ranking by linear_top1 (knn_top1 standing in: this scale does not "
                                             "evaluate linear_top1): best 0.1 61.00")


def test_the_section_at_a_scale_without_linear_evaluation_says_what_stands_in(declared, tmp_path):
    store = RunStore(tmp_path)
    for t, value in zip((0.1, 0.2, 0.5), (60.0, 61.0, 50.0)):
        write_run(store, "own_toy", "smoke", {"loss.temperature": t}, 0, value)     # kNN only: value - 5
    (section,) = build_sections(load_results(tmp_path), keys=["own_toy"])
    assert (section.metric, section.ours_metric) == ("linear_top1", "knn_top1")
    text = markdown_section(section, "x.png")
    assert "This scale does not evaluate linear_top1: knn_top1 stands in for it" in text
    row = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| 0.2 ")]
    assert row == [["0.2", "56.00 (1 run)", "56.00 (1 run)"]]        # linear_top1 (kNN standing in), knn_top1


def test_no_runs_yet():
    empty = _ours([(60.0,), (61.0,), (50.0,)]).iloc[0:0]
    assert ranking(TOY, cells(TOY, empty)) == ["Ranking by linear_top1: no finished runs yet."]


def test_the_section_has_our_table_and_no_paper_column(declared, tmp_path):
    artefact = own_builder(TOY)(_ours([(60.0, 62.0), (61.0, 61.0), (50.0, 52.0)]), None)
    assert artefact.agreement.why_not == NO_PAPER and artefact.conclusions == []
    (wide,) = artefact.tables.values()
    assert list(wide.columns) == ["loss.temperature", "linear_top1", "knn_top1"]
    assert wide.iloc[0]["linear_top1"] == "61.00 ± 1.41 (2 runs)"

    store = RunStore(tmp_path)
    for t, values in zip((0.1, 0.2, 0.5), ((60.0, 62.0), (61.0, 61.0), (50.0, 52.0))):
        for seed, value in enumerate(values):
            write_run(store, "own_toy", "cpu", {"loss.temperature": t}, seed, value)
    (section,) = build_sections(load_results(tmp_path), keys=["own_toy"])
    assert section.own and section.reference == OWN and (section.done, section.expected) == (6, 6)
    text = markdown_section(section, "x.png")
    assert "Paper vs ours" not in text and "Published numbers" not in text and "paper (" not in text
    assert "An experiment of our own" in text and "61.00 ± 1.41 (2 runs)" in text
    assert "Within noise of the best: 0.2" in text
    page = html_section(section, b"png")
    assert "Published numbers" not in page and "Paper vs ours" not in page and "61.00 ± 1.41 (2 runs)" in page


def test_runs_at_points_the_experiment_does_not_declare_are_named_not_described_as_its_cells(declared, tmp_path):
    # a sweep's trial at temperature 0.3: no cell of the table, so neither counted under "what ran" nor dropped unsaid
    store = RunStore(tmp_path)
    for t, value in zip((0.1, 0.2, 0.5), (60.0, 61.0, 50.0)):
        write_run(store, "own_toy", "cpu", {"loss.temperature": t}, 0, value)
    trial = write_run(store, "own_toy", "cpu", {"loss.temperature": 0.3}, 0, 70.0)
    (section,) = build_sections(load_results(tmp_path), keys=["own_toy"])
    assert section.what_ran.runs == 3 and (section.done, section.expected) == (3, 3) and section.left_out == {}
    assert section.artefact.notes[0].startswith("Ranking by linear_top1: best 0.2 61.00 over 3 cell(s)")
    assert section.artefact.notes[-1] == (
        "Not in the table nor the ranking: 1 finished run(s) at axis points the experiment does not declare (0.3: a "
        f"sweep's trials; the sweep's summary in <results>/optuna/ ranks them): {trial}.")
    # the same made with max_steps=5, where no run has the declared config: its 3 cells' runs are shown instead
    for t in (0.1, 0.2, 0.5, 0.3):
        write_run(RunStore(tmp_path / "short"), "own_toy", "cpu", {"loss.temperature": t}, 0, 60.0,
                  overrides={"max_steps": 5})
    (short,) = build_sections(load_results(tmp_path / "short"), keys=["own_toy"])
    assert short.what_ran.runs == 3 and short.progress == (
        "0 of 3 runs done at scale cpu (incomplete); shown instead: 3 run(s) of another config (max_steps=5 override)")


def test_ones_own_experiment_named_as_a_report_functions_artefact_is_refused(monkeypatch):
    # tab5_sweep is built from temperature_norm's runs: an experiment reporting as it would be in no report
    monkeypatch.setitem(_registry(), "tab5_sweep", Experiment(**{**TOY.__dict__, "name": "tab5_sweep", "artefact": ""}))
    with pytest.raises(ConfigError, match="^experiment 'tab5_sweep' reports as artefact 'tab5_sweep', which the report "
                                          "builds from experiment 'temperature_norm': no report would show its runs; "
                                          "rename it, or give it artefact='tab5_sweep_own'$"):
        all_artefacts()


SQRT = Experiment(name="own_sqrt", title="Own: temperature x batch at sqrt scaling", metric="linear_top1",
                  base={"optim.lr_scaling": "sqrt"}, axes=grid(loss__temperature=(0.1, 0.5), batch_size=(256, 512)))


def test_ones_own_temperature_ablation_of_another_config_is_no_part_of_table5s_curve_section(monkeypatch, tmp_path):
    # Its runs are off the curve (another lr scaling and batch): the curve's section neither describes them under
    # "what ran" nor lists them as left out (with a command that would not bring them in); its notes name it.
    monkeypatch.setitem(_registry(), "own_sqrt", SQRT)
    store = RunStore(tmp_path)
    for point in get_experiment("temperature_norm").points():
        write_run(store, "temperature_norm", "cpu", point, 0, 50.0)
    for point in SQRT.points():
        write_run(store, "own_sqrt", "cpu", point, 0, 60.0, final={"pretrain_seconds": 3600.0})
    tried = write_run(store, "own_sqrt", "cpu", SQRT.points()[0], 0, 61.0, overrides={"max_steps": 3})
    results = load_results(tmp_path)
    (curve,) = build_sections(results, keys=["tab5_sweep"])
    assert curve.what_ran.runs == 6 and "batch 256;" in curve.what_ran.text and curve.left_out == {}
    assert any(note.startswith("not on the curve: own_sqrt (in batch_size, optim.lr_scaling)")
               for note in curve.artefact.notes)
    (own,) = build_sections(results, keys=["own_sqrt"])
    assert own.what_ran.runs == 4 and list(own.left_out) == [tried]


def test_a_report_function_in_ones_own_file_replaces_the_default_view(tmp_path, monkeypatch):
    # Its @artefact runs when the file loads, which the first look at the declarations does: the report must look
    # at the registered functions after that, whatever loaded first.
    from registry import discover
    from reports import artefacts
    from reports.build import all_artefacts

    (tmp_path / "mine.py").write_text(
        '"""Question: a figure of my own?"""\n'
        "from registry import Experiment, grid\n"
        "from reports.artefacts import artefact\n"
        "EXPERIMENT = Experiment(name='mine_fig', title='mine', base={'optim.lr_scaling': 'sqrt'},\n"
        "                        axes=grid(loss__temperature=(0.2, 0.5)), metric='knn_top1')\n"
        "@artefact('mine_fig', 'mine_fig')\n"
        "def build(published, ours):\n"
        "    return 'my figure'\n")
    monkeypatch.setenv(discover.EXPERIMENTS_DIR_ENV, str(tmp_path))
    for cached in (discover._registry, discover._declarations, discover._user_modules):
        cached.cache_clear()
    try:
        spec = all_artefacts()["mine_fig"]
        assert spec.experiment == "mine_fig" and spec.build(None, None) == "my figure"
    finally:
        artefacts.ARTEFACTS.pop("mine_fig", None)
        monkeypatch.delenv(discover.EXPERIMENTS_DIR_ENV)
        for cached in (discover._registry, discover._declarations, discover._user_modules):
            cached.cache_clear()


MY_TABLE5 = '''"""Table 5's l2-normalised temperatures at sqrt lr scaling, beside the paper's."""
from registry import Experiment, Published, grid

EXPERIMENT = Experiment(
    name="my_table5", title="My Table 5 check", base={"optim.lr_scaling": "sqrt"},
    axes=grid(loss__normalize=(True,), loss__temperature=(0.1, 0.5, 1.0)),
    metric="linear_top1", metrics=("knn_top1",), deviations=("CIFAR-10, sqrt lr scaling",),
    published=Published("{file}", columns={"l2_norm": "loss.normalize", "temperature": "loss.temperature"}),
)
'''
TABLE = "l2_norm,temperature,metric,value,value_type,source\n" + "".join(
    f"yes,{t},linear_top1,{v},exact,Table 5\n" for t, v in ((0.1, 64.4), (0.5, 60.7), (1, 58.0)))


@pytest.fixture
def own_folder(tmp_path, monkeypatch):
    """A folder of one's own declarations ($SIMCLR_EXPERIMENTS_DIR), read afresh, and forgotten after the test."""
    from registry import discover

    folder = tmp_path / "mine"
    folder.mkdir()
    caches = (discover._registry, discover._declarations, discover._user_modules)
    monkeypatch.setenv(discover.EXPERIMENTS_DIR_ENV, str(folder))
    for cached in caches:
        cached.cache_clear()
    yield folder
    monkeypatch.delenv(discover.EXPERIMENTS_DIR_ENV)
    for cached in caches:
        cached.cache_clear()


def test_ones_own_experiment_with_published_numbers_is_reported_beside_them(own_folder, tmp_path):
    from reports.build import all_artefacts

    (own_folder / "my_table5.py").write_text(MY_TABLE5.replace("{file}", "my_table.csv"))
    (own_folder / "my_table.csv").write_text(TABLE)     # beside the declaration, named relative to it
    spec = all_artefacts()["my_table5"]
    assert spec.experiment == "my_table5"
    store = RunStore(tmp_path / "results")
    for t, value in zip((0.1, 0.5, 1.0), (55.0, 53.0, 50.0)):
        write_run(store, "my_table5", "cpu", {"loss.normalize": True, "loss.temperature": t}, 0, value)
    (section,) = build_sections(load_results(tmp_path / "results"), keys=["my_table5"])
    assert not section.own and section.published_file == "my_table.csv" and (section.done, section.expected) == (3, 3)
    table = section.artefact.compare
    assert list(table["published"]) == [64.4, 60.7, 58.0] and list(table["ours_mean"]) == [55.0, 53.0, 50.0]
    assert section.artefact.agreement.kendall == pytest.approx(1.0) and section.artefact.conclusions == []
    text = markdown_section(section, "x.png")
    assert "Paper vs ours" in text and "my_table.csv: 3 printed" in text
    assert "Ranking by linear_top1: best yes, 0.1 55.00" in text     # ours ranked too, knn_top1 shown beside
    (wide,) = section.artefact.tables.values()
    assert list(wide.columns) == ["loss.normalize", "loss.temperature", "linear_top1", "knn_top1"]


def test_ones_own_published_table_by_absolute_path_or_missing(own_folder, tmp_path):
    from registry import get_experiment
    from registry.published import published_cells
    from simclr_core.validation import ConfigError

    elsewhere = tmp_path / "tables" / "t5.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text(TABLE)
    (own_folder / "my_table5.py").write_text(MY_TABLE5.replace("{file}", str(elsewhere)))
    assert [len(rows) for _, _, rows in published_cells(get_experiment("my_table5"))] == [1, 1, 1]
    elsewhere.unlink()
    with pytest.raises(ConfigError, match=f"published table '{elsewhere}' not found"):
        published_cells(get_experiment("my_table5"))


def test_axis_values_that_one_decimal_would_merge_get_distinct_labels(monkeypatch, tmp_path):
    close = Experiment(name="own_close", title="Own: close temperatures", metric="linear_top1",
                       base={"optim.lr_scaling": "linear"}, axes=grid(loss__temperature=(0.1, 0.1004, 0.5)))
    monkeypatch.setitem(_registry(), "own_close", close)
    store = RunStore(tmp_path)
    for t, value in zip((0.1, 0.1004, 0.5), (60.0, 61.0, 50.0)):
        write_run(store, "own_close", "cpu", {"loss.temperature": t}, 0, value)
    (section,) = build_sections(load_results(tmp_path), keys=["own_close"])
    text = markdown_section(section, "x.png")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| 0.")]
    assert rows == [["0.1000", "60.00 (1 run)"], ["0.1004", "61.00 (1 run)"], ["0.5000", "50.00 (1 run)"]]


def test_ordinary_axis_labels_keep_one_decimal(declared):
    wide = own_builder(TOY)(_ours([(60.0,), (61.0,), (50.0,)]), None).tables["ours: mean ± std over seeds, per metric"]
    assert list(display_extra(wide)["loss.temperature"]) == ["0.1", "0.2", "0.5"]

"""Runs whose configs differ in more than the seed are never averaged: the report shows one config per experiment
and scale, names every run it leaves out and why, and says what ran from the runs' own configs."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fake_results import write_run
from registry import get_experiment
from registry.deviations import LINEAR_ON_FEATURES
from registry.run_id import make_run_id
from registry.scales import SCALES
from registry.store import RunStore, load_results
from reports.build import build_sections
from reports.render import markdown_section, write_report
from reports.variants import declared_config, run_variants, select
from simclr_core.config import CONFIG_VERSION, RunConfig

XENT = {"loss.kind": "nt_xent", "loss.semi_hard": False}
POINTS = get_experiment("loss_variant").points()


def _grid(root: Path, seeds=(0, 1), overrides=None, final=None, value=lambda p, s: 40.0 + s) -> list[str]:
    store = RunStore(root)
    return [write_run(store, "loss_variant", "cpu", p, s, value(p, s), overrides=overrides, final=final)
            for p in POINTS for s in seeds]


def _tab4(root: Path):
    (section,) = build_sections(load_results(root), keys=["tab4"], scales=["cpu"])
    return section


def _xent_row(section) -> dict:
    table = section.artefact.compare
    return table[table["axis.loss.kind"] == "nt_xent"].iloc[0].to_dict()


def test_runs_of_another_config_version_or_max_steps_are_left_out_named_and_not_averaged(tmp_path):
    _grid(tmp_path)                                                    # nt_xent: 40 (seed 0), 41 (seed 1)
    store = RunStore(tmp_path)
    old = write_run(store, "loss_variant", "cpu", XENT, 0, 90.0, overrides={"config_version": CONFIG_VERSION + 1})
    short = write_run(store, "loss_variant", "cpu", XENT, 0, 10.0, overrides={"max_steps": 2})
    section = _tab4(tmp_path)
    row = _xent_row(section)
    assert (row["ours_mean"], row["ours_runs"], row["ours_values"]) == (40.5, 2, (40.0, 41.0))
    assert set(section.left_out) == {old, short}
    assert section.left_out[old].startswith(
        f"another config_version ({CONFIG_VERSION + 1}; declared {CONFIG_VERSION}) (the report shows the declared")
    assert section.left_out[short].startswith("max_steps=2 override")
    assert section.shown["loss_variant"].declared and section.variant_notes == []
    assert (section.done, section.expected) == (10, 10)
    md = markdown_section(section, "tab4.png")
    assert "Left out: 2 finished run(s)" in md and f"- {short}: max_steps=2 override" in md
    written = write_report([section], tmp_path / "report", tmp_path)
    page, report = written.html.read_text(), written.markdown.read_text()
    for run_id in (old, short):
        assert run_id in page and run_id in report


def test_the_cli_names_a_results_folder_that_mixes_config_versions(tmp_path, capsys):
    from reports.cli import run

    _grid(tmp_path, seeds=(0,))
    write_run(RunStore(tmp_path), "loss_variant", "cpu", XENT, 0, 90.0, overrides={"config_version": CONFIG_VERSION + 1})
    assert run(["tab4", "--results-dir", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert (f"This results folder mixes config versions: {CONFIG_VERSION} (5 runs), {CONFIG_VERSION + 1} (1 runs)"
            in report)
    printed = capsys.readouterr()
    assert "1 run(s) of another config left out" in printed.out
    assert "left out of tab4 at scale cpu: loss_variant/nt_xent+no-semi_hard-" in printed.err
    assert f"another config_version ({CONFIG_VERSION + 1}; declared {CONFIG_VERSION})" in printed.err


def test_the_declared_config_is_shown_when_any_run_has_it(tmp_path):
    _grid(tmp_path, seeds=(0,))
    others = _grid(tmp_path, seeds=(1, 2, 3), overrides={"epochs": 8.0})        # more runs, but not declared
    section = _tab4(tmp_path)
    assert section.shown["loss_variant"].declared and set(section.left_out) == set(others)
    assert all(why.startswith("other overrides: epochs=8.0") for why in section.left_out.values())
    assert _xent_row(section)["ours_runs"] == 1


def test_without_declared_runs_the_most_common_variant_is_shown_and_what_ran_says_what_it_was(tmp_path):
    shown = _grid(tmp_path, overrides={"data.train_limit": None})
    rare = write_run(RunStore(tmp_path), "loss_variant", "cpu", XENT, 5, 1.0, overrides={"epochs": 8.0})
    section = _tab4(tmp_path)
    assert section.shown["loss_variant"].describe() == "other overrides: data.train_limit=None"
    assert section.variant_notes == ["loss_variant: no run has today's declared config; shown: the most common "
                                     "variant, other overrides: data.train_limit=None"]
    assert set(section.left_out) == {rare} and len(set(shown)) == 10
    assert "(the report shows other overrides: data.train_limit=None)" in section.left_out[rare]
    # the runs shown are not counted as declared runs done, here or on the terminal (section.progress)
    assert (section.done, section.expected) == (0, 5)
    assert section.progress == ("0 of 5 runs done at scale cpu (incomplete); shown instead: 10 run(s) of another "
                                "config (other overrides: data.train_limit=None)")
    # the cpu scale's summary says 10,000 images; these runs read the whole 50,000-image split
    text = section.what_ran.text
    assert text.startswith("CIFAR-10, 50,000 training images; resnet18 width x0.25, cifar stem; 3 epochs; batch 256; "
                           "seeds 0, 1;") and "10,000" not in text
    assert "**Config shown:** loss_variant: no run has today's declared config" in markdown_section(section, "x.png")
    assert not section.comparable


def test_a_report_asked_with_overrides_shows_the_runs_made_with_them_and_leaves_the_declared_out(tmp_path):
    declared = _grid(tmp_path, seeds=(0,))
    asked = _grid(tmp_path, seeds=(0, 1), overrides={"epochs": 8.0}, value=lambda p, s: 60.0 + s)
    (section,) = build_sections(load_results(tmp_path), keys=["tab4"], scales=["cpu"], overrides={"epochs": "8"})
    row = _xent_row(section)
    assert (row["ours_mean"], row["ours_runs"]) == (60.5, 2)
    assert set(section.left_out) == set(declared) and (section.done, section.expected) == (10, 10)
    assert all(why == "the declared config (the report shows the runs made with epochs=8)"
               for why in section.left_out.values())
    assert section.variant_notes == ["loss_variant: the runs made with epochs=8, as the report was asked (without "
                                     "them it shows the declared config)"]
    assert not section.comparable and "8 epochs" in section.what_ran.text
    assert section.deviations[0] == "the runs shown were made with epochs=8; the deviations below are those " \
        "declared for the experiment's setting, then those these runs' own settings make" \
        and section.deviations[1:] == get_experiment("loss_variant").deviations + (LINEAR_ON_FEATURES,)
    # the same folder without overrides: the declared runs, the others left out
    plain = _tab4(tmp_path)
    assert _xent_row(plain)["ours_runs"] == 1 and set(plain.left_out) == set(asked)


def test_a_report_asked_with_overrides_compares_configs_not_words(tmp_path):
    """Overrides given in other words (a value's spelling, a machine's data folder, which no run id holds) ask for
    the same config; one that matches a config only at some points shows those points' runs."""
    asked = _grid(tmp_path, seeds=(0,), overrides={"data.train_limit": None, "epochs": 8.0})
    results = load_results(tmp_path)
    for words in ({"epochs": "8.0", "data.train_limit": None}, {"epochs": "8", "data.train_limit": None,
                                                                  "data.data_dir": "/elsewhere"}):
        selection = select(results, run_variants(results, words), words)
        assert set(selection.kept["run_id"]) == set(asked) and not selection.left_out
    selection = select(results, run_variants(results, {"epochs": "8"}), {"epochs": "8"})
    assert selection.kept.empty and set(selection.left_out) == set(asked)


def test_the_report_cli_takes_overrides_writes_their_own_folder_and_names_the_command_for_other_runs(
        tmp_path, capsys):
    from registry.__main__ import main

    _grid(tmp_path, seeds=(0,))
    asked = _grid(tmp_path, seeds=(0,), overrides={"epochs": 8.0})
    assert main(["report", "tab4", "--results-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    command = (f"python -m registry report tab4 --scale cpu --results-dir {tmp_path} epochs=8.0")
    assert f"5 run(s) left out of tab4 at scale cpu were made with other overrides; their report: {command}" \
        in printed.err
    assert not (tmp_path / "report+epochs=8.0").exists()
    # the printed command, run as printed (its overrides after the options), shows those runs
    assert main(command.split()[3:]) == 0
    printed = capsys.readouterr()
    shown = (tmp_path / "report+epochs=8.0" / "tab4_cpu.md").read_text()
    assert "**Config shown:** loss_variant: the runs made with epochs=8.0, as the report was asked" in shown
    assert all(run_id not in shown for run_id in asked)        # shown, so not listed as left out
    assert "5 run(s) left out of tab4 at scale cpu were made with no overrides; their report: python -m registry " \
           f"report tab4 --scale cpu --results-dir {tmp_path}\n" in printed.err
    assert "tab4" in (tmp_path / "report" / "report.md").read_text()      # the declared report stays


def test_a_report_asked_with_overrides_no_run_was_made_with_is_one_error_naming_what_they_were_made_with(
        tmp_path, capsys):
    from reports.cli import run

    _grid(tmp_path, seeds=(0,))
    _grid(tmp_path, seeds=(0, 1), overrides={"epochs": 8.0})
    assert run(["tab4", "--results-dir", str(tmp_path), "epochs=9"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: no finished run of tab4 was made with epochs=9; their finished runs were made with "
                   "epochs=8.0 (10 runs); with no overrides (5 runs). Give the overrides the runs were made with, "
                   "as `run` took them\n")
    assert run(["tab4", "--results-dir", str(tmp_path), "loss.temprature=0.5"]) == 2
    assert "unknown config key 'loss.temprature'" in capsys.readouterr().err
    assert not (tmp_path / "report+epochs=9").exists() and not (tmp_path / "report+loss.temprature=0.5").exists()


def test_the_folder_of_a_report_with_overrides_is_a_safe_name_of_them():
    from reports.cli import MAX_FOLDER_CHARS, report_folder

    assert report_folder({}) == "report"
    assert report_folder({"data.dataset": "imagefolder", "data.data_dir": "/home/me/my photos"}) == \
        "report+data.dataset=imagefolder+data.data_dir=_home_me_my_photos"
    long_a, long_b = ({"augment.ops": ",".join(["crop", "color"] * 40) + tail} for tail in ("", ",blur"))
    a, b = report_folder(long_a), report_folder(long_b)
    assert a != b and len(a.encode()) <= len("report+") + MAX_FOLDER_CHARS and "~" in a


def test_a_tie_between_undeclared_variants_goes_to_the_most_recently_written(tmp_path):
    a = _grid(tmp_path, seeds=(0,), overrides={"epochs": 8.0})
    b = _grid(tmp_path, seeds=(0,), overrides={"epochs": 9.0})
    results = load_results(tmp_path)
    for newer, older in ((a, b), (b, a)):
        stamped = results.assign(written_at=results["run_id"].map(lambda r: "2026-12-02" if r in newer else "2026-12-01"))
        selection = select(stamped, run_variants(stamped))
        assert set(selection.kept["run_id"]) == set(newer) and set(selection.left_out) == set(older)


def test_what_ran_counts_device_hours_by_device_and_names_fallbacks(tmp_path):
    gpu = {"device": "NVIDIA H200", "pretrain_seconds": 3000.0, "eval_seconds": 600.0, "processes": 2}
    _grid(tmp_path, seeds=(0,), final=gpu)                             # 5 runs x 3600 s x 2 processes = 10 h
    old = {"device": "NVIDIA H200", "pretrain_seconds_this_session": 1800.0, "processes": 1}
    write_run(RunStore(tmp_path), "loss_variant", "cpu", XENT, 1, 40.0, final=old)
    what = _tab4(tmp_path).what_ran
    assert what.hours == {"GPU-hours": pytest.approx(10.5)}
    assert "device NVIDIA H200" in what.text and "10.50 GPU-hours over 6 run(s)" in what.text
    assert "1 run(s) without pretrain_seconds: counted with pretrain_seconds_this_session" in what.text
    assert "1 run(s) without eval_seconds" in what.text


def test_device_hours_of_a_run_resumed_by_another_process_count_use_its_device_seconds(tmp_path):
    # 1000 s on 4 processes, then resumed for 2000 s on 1: 6000 process-seconds, not 3000 x 1 (or x 4).
    resumed = {"device": "NVIDIA H200", "pretrain_seconds": 3000.0, "pretrain_device_seconds": 6000.0,
               "eval_seconds": 600.0, "processes": 1}
    write_run(RunStore(tmp_path), "loss_variant", "cpu", XENT, 1, 40.0, final=resumed)
    assert _tab4(tmp_path).what_ran.hours == {"GPU-hours": pytest.approx((6000 + 600) / 3600)}


def test_what_ran_names_every_device_of_a_run_resumed_on_another(tmp_path):
    moved = {"device": "NVIDIA H200", "devices_seen": ["cpu (2 threads)", "NVIDIA H200"], "pretrain_seconds": 3600.0,
             "eval_seconds": 0.0, "processes": 1}
    write_run(RunStore(tmp_path), "loss_variant", "cpu", XENT, 1, 40.0, final=moved)
    write_run(RunStore(tmp_path), "loss_variant", "cpu", XENT, 2, 40.0, final={"device": "NVIDIA H200"})
    text = _tab4(tmp_path).what_ran.text
    assert ("device NVIDIA H200, cpu (2 threads) (1 of 2 runs ran on several devices: cpu (2 threads) then "
            "NVIDIA H200)") in text
    assert "1 run(s) trained on both CPU and GPU: all their hours counted as their last device's" in text


def test_runs_that_differ_in_epochs_show_the_range(tmp_path):
    from reports.what_ran import describe

    _grid(tmp_path, seeds=(0,))
    _grid(tmp_path, seeds=(0,), overrides={"epochs": 8.0, "max_steps": 2})
    text = describe(load_results(tmp_path)).text
    assert "3, 8 epochs, stopped at max_steps 2 (5 of 10 runs)" in text


def test_what_ran_says_how_many_runs_were_compiled(tmp_path):
    from reports.what_ran import describe

    _grid(tmp_path, seeds=(0,), final={"compile": "default"})
    _grid(tmp_path, seeds=(1,), final={"compile": "off"})
    assert "torch.compile default in 5 of 10 runs" in describe(load_results(tmp_path)).text
    _grid(tmp_path / "eager", seeds=(0,))                   # runs from before the key: nothing said
    assert "torch.compile" not in describe(load_results(tmp_path / "eager")).text


def test_an_undeclared_experiment_is_left_out_with_why(tmp_path):
    run_id = _grid(tmp_path, seeds=(0,))[0]
    results = load_results(tmp_path)
    results.loc[results["run_id"] == run_id, "experiment"] = "renamed_since"
    selection = select(results, run_variants(results))
    assert "experiment 'renamed_since' is not declared today" in selection.left_out[run_id]


@pytest.mark.parametrize("scale", list(SCALES))
def test_the_declared_config_is_what_the_declaration_resolves_to(scale):
    """reports/variants.py resolves without validating (no torch); the ids must equal Experiment.runs'."""
    for name in ("loss_variant", "augment_pairs", "model_width", "batch_epochs"):
        experiment = get_experiment(name)
        runs = experiment.runs(scale)
        assert [r.run_id for r in runs] == [
            make_run_id(name, r.point, declared_config(experiment, scale, r.point, r.config.seed)) for r in runs]


def test_what_ran_at_a_scale_with_a_stand_in_metric_still_counts_its_time(tmp_path):
    store = RunStore(tmp_path)
    for p in POINTS:       # smoke evaluates kNN only: the section shows knn_top1 in linear_top1's place
        write_run(store, "loss_variant", "smoke", p, 0, 40.0, final={"device": "cpu (2 threads)",
                                                                     "pretrain_seconds": 360.0, "eval_seconds": 0.0,
                                                                     "processes": 1})
    (section,) = build_sections(load_results(tmp_path), keys=["tab4"], scales=["smoke"])
    assert section.ours_metric == "knn_top1"
    assert section.what_ran.hours == {"CPU-hours": pytest.approx(0.5)}
    assert section.what_ran.text.startswith("CIFAR-10 subset (embedded), 512 training images; resnet18 width x0.25")



def test_a_run_made_under_an_earlier_declaration_is_not_said_to_have_overrides(tmp_path):
    import json

    _grid(tmp_path, seeds=(0,))
    store = RunStore(tmp_path)
    given = write_run(store, "loss_variant", "cpu", XENT, 1, 50.0, overrides={"epochs": 8.0})
    earlier = write_run(store, "loss_variant", "cpu", XENT, 2, 50.0, overrides={"epochs": 8.0, "batch_size": 128})
    config = store.run_dir(earlier) / "config.json"          # as if the declaration had set epochs=8 itself then
    record = json.loads(config.read_text())
    record["overrides"] = {"batch_size": 128}
    config.write_text(json.dumps(record))
    section = _tab4(tmp_path)
    assert section.left_out[given].startswith("other overrides: epochs=8.0 (the report shows"), section.left_out
    why = section.left_out[earlier]
    assert why.startswith("other overrides: batch_size=128; made under an earlier declaration, not by an override: "
                          "epochs=8.0 (declared today: 3.0)"), why


def test_what_ran_counts_the_training_images_and_classes_a_run_read_not_the_catalogs(tmp_path):
    """A paper-scale run on a local ImageNet copy (class folders, 2,003 images) was described as 'ImageNet, 1,281,167
    training images': the catalog's count, not what ran."""
    store = RunStore(tmp_path)
    for p in POINTS:
        write_run(store, "loss_variant", "paper", p, 0, 40.0,
                  final={"data_source": "imagefolder /data/in1000 split 'train'", "train_split_images": 2003,
                         "train_split_classes": 1000})
    (section,) = build_sections(load_results(tmp_path), keys=["tab4"], scales=["paper"])
    text = section.what_ran.text
    assert text.startswith("ImageNet, 2,003 training images of 1,000 classes;") and "1,281,167" not in text


def test_what_ran_of_runs_without_a_recorded_count_keeps_the_catalogs(tmp_path):
    store = RunStore(tmp_path)
    for p in POINTS:
        write_run(store, "loss_variant", "paper", p, 0, 40.0)
    (section,) = build_sections(load_results(tmp_path), keys=["tab4"], scales=["paper"])
    assert section.what_ran.text.startswith("ImageNet, 1,281,167 training images;")


def test_what_ran_of_runs_on_images_without_labels_does_not_say_of_0_classes(tmp_path):
    """final.json's train_split_classes is 0 for a split without labels (pretrained on, not classified)."""
    store = RunStore(tmp_path)
    for p in POINTS:
        write_run(store, "loss_variant", "paper", p, 0, 40.0,
                  final={"train_split_images": 2003, "train_split_classes": 0, "unlabelled": True})
    (section,) = build_sections(load_results(tmp_path), keys=["tab4"], scales=["paper"])
    text = section.what_ran.text
    assert text.startswith("ImageNet, 2,003 training images without labels;") and "0 classes" not in text, text


def test_the_deviations_are_those_of_the_runs_shown(tmp_path):
    """Without declared runs the report showed runs made with eval.linear_augment=true (linear evaluation on crop +
    flip views) and still listed linear evaluation on fixed features among their deviations from the paper."""
    _grid(tmp_path, seeds=(0,), overrides={"eval.linear_augment": True})
    section = _tab4(tmp_path)
    assert section.shown["loss_variant"].describe() == "other overrides: eval.linear_augment=True"
    assert section.deviations == get_experiment("loss_variant").deviations
    # with no run at all, the declared setting's
    (empty,) = build_sections(load_results(tmp_path / "none"), keys=["tab4"], scales=["cpu"])
    assert empty.deviations == get_experiment("loss_variant").deviations + (LINEAR_ON_FEATURES,)


def test_a_shown_run_whose_config_this_code_cannot_read_leaves_the_deviations_to_the_others():
    from reports.build import _setting_deviations

    readable = RunConfig().with_overrides({"eval.protocols": ("knn", "linear")}).to_dict()
    shown = pd.DataFrame({"run_id": ["a", "b"],
                          "config_json": [json.dumps({**readable, "no_such_key": 1}), json.dumps(readable)]})
    experiment = get_experiment("loss_variant")
    assert _setting_deviations(experiment, shown, "cpu", {}) == (LINEAR_ON_FEATURES,)
    assert _setting_deviations(experiment, shown.iloc[:1], "cpu", {}) == ()

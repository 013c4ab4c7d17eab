"""Table 8's declaration: eleven transfer datasets on an evaluation-only axis (one pretraining per seed), each run
evaluating the transfer protocol on its dataset, and each dataset's cells finding the paper's number in the metric
the paper prints for it."""
from __future__ import annotations

import pytest

from registry import SCALES, get_experiment
from registry.pretraining import pretraining_key
from registry.published import published_cells
from simclr_core.data.catalog import dataset_spec
from simclr_core.validation import ConfigError

EXPERIMENT = get_experiment("table8_transfer")
# The paper prints mean per-class accuracy for these columns, top-1 for the others (table8_transfer.csv).
MEAN_PER_CLASS = {"fgvc_aircraft", "oxford_pets", "caltech101", "flowers102"}
DATASETS = ("food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft", "dtd",
            "oxford_pets", "caltech101", "flowers102")


@pytest.mark.parametrize("scale", list(SCALES))
def test_every_point_evaluates_its_dataset_after_one_shared_pretraining_per_seed(scale):
    runs = EXPERIMENT.runs(scale)
    assert [r.point["eval.transfer_dataset"] for r in runs if r.config.seed == 0] == list(DATASETS)
    for run in runs:
        assert run.config.eval.transfer_dataset == run.point["eval.transfer_dataset"]
        assert "transfer" in run.config.eval.protocols
        assert run.config.eval.transfer_protocols == ("linear", "finetune")
        dataset_spec(run.config.eval.transfer_dataset)               # a catalog name
    keys = {(r.config.seed, pretraining_key(r.config)) for r in runs}
    assert len(keys) == len({r.config.seed for r in runs})           # one pretraining per seed
    assert EXPERIMENT.evaluation_only_axes() == ("eval.transfer_dataset",)


def test_paper_scale_pretrains_the_papers_encoder_and_lower_scales_shrink_it():
    paper = EXPERIMENT.runs("paper")[0].config
    assert (paper.data.dataset, paper.encoder.name, paper.encoder.width, paper.epochs) == \
        ("imagenet", "resnet50", 4.0, 1000.0)
    cpu = EXPERIMENT.runs("cpu")[0].config
    assert (cpu.data.dataset, cpu.encoder.width, cpu.epochs) == ("cifar10", 1.0, 30.0)


def test_each_dataset_finds_one_linear_and_one_finetuned_number_in_the_kind_the_paper_prints():
    found: dict[str, dict[str, str]] = {}
    for point, metric, rows in published_cells(EXPERIMENT):
        assert len(rows) <= 1, (point, metric)
        if rows:
            assert rows[0]["table_or_figure"] == "Table 8" and rows[0]["method"] == "SimCLR (ours)"
            assert rows[0]["metric"] == metric
            protocol = metric.split("_")[1]
            assert protocol not in found.setdefault(point["eval.transfer_dataset"], {}), (point, metric)
            found[point["eval.transfer_dataset"]][protocol] = metric
    assert set(found) == set(DATASETS)
    for dataset, metrics in found.items():
        kind = "mean_per_class_acc" if dataset in MEAN_PER_CLASS else "top1"
        assert metrics == {"linear": f"transfer_linear_{kind}", "finetune": f"transfer_finetune_{kind}"}, dataset


def test_voc2007_cannot_be_added_to_the_axis():
    with pytest.raises(ConfigError, match="voc2007.*multi-label"):
        EXPERIMENT.runs("smoke", overrides={"eval.transfer_dataset": "voc2007"})


@pytest.mark.parametrize("name, table, width, epochs, methods", [
    ("table_b5_transfer", "Table B.5", 1.0, 1000.0, {"SimCLR (ours)"}),
    ("table8_transfer_supervised", "Table 8", 4.0, 90.0, {"Supervised", "Random init"}),
    ("table_b5_transfer_supervised", "Table B.5", 1.0, 90.0, {"Supervised", "Random init"})])
def test_table_b5_and_the_baselines_pretrain_their_network_and_read_their_own_rows(name, table, width, epochs,
                                                                                    methods):
    experiment = get_experiment(name)
    paper = experiment.runs("paper")[0].config
    assert (paper.data.dataset, paper.encoder.name, paper.encoder.width, paper.epochs) == \
        ("imagenet", "resnet50", width, epochs)
    supervised = methods != {"SimCLR (ours)"}
    assert (paper.method == "supervised") == supervised and paper.eval.transfer_scratch == supervised
    assert [r.point["eval.transfer_dataset"] for r in experiment.runs("cpu")] == list(DATASETS)
    found = [rows[0] for _, _, rows in published_cells(experiment) if rows]
    assert {r["table_or_figure"] for r in found} == {table} and {r["method"] for r in found} == methods
    assert len(found) == len(DATASETS) * (2 if methods == {"SimCLR (ours)"} else 3)
    scratch = [r for _, metric, rows in published_cells(experiment) if metric.startswith("transfer_scratch_")
               for r in rows]
    assert all(r["method"] == "Random init" and r["protocol"] == "fine-tuned" for r in scratch)


@pytest.mark.parametrize("name", ["table8_transfer_supervised", "table_b5_transfer_supervised"])
def test_the_supervised_transfer_baselines_train_with_the_standard_supervised_augmentation(name):
    """Kornblith et al.'s supervised ImageNet networks (the paper's baselines) were trained with random crop and flip,
    not with SimCLR's colour distortion and blur."""
    experiment = get_experiment(name)
    for scale in SCALES:
        assert {run.config.augment.ops for run in experiment.runs(scale)} == {("crop",)}, scale
    assert any("random crop (+flip)" in d for d in experiment.deviations)

"""SimCLR v1, Table 8, the baselines: a supervised encoder transferred like SimCLR's, and the same network trained on
each transfer dataset from random initialisation.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 4.3 (Table 8) and Appendix B.8.
Claim (Sec. 4.3, paraphrased): fine-tuned, the self-supervised model is significantly better than the supervised
baseline on 5 datasets, worse on only 2 (Pets and Flowers), and statistically tied on the other 5; the printed
"Random init" row (fine-tuned from random initialisation) trails both pretrained rows on every dataset.
Published numbers: table8_transfer.csv, rows of "Table 8" with method "Supervised" (linear and fine-tuned) and
"Random init" (fine-tuned), ResNet-50 (4x), printed (exact). The report (reports/tables/tab8_baselines.py) sets
these runs beside table8_transfer's SimCLR runs and judges the comparisons on both sides.

The same axis as table8_transfer (eval.transfer_dataset), so the two experiments' cells pair up dataset by dataset.
The pretraining is supervised (method=supervised: cross-entropy on the pretraining dataset's labels, as the other
supervised baselines), so all eleven points share one supervised network; eval.transfer_scratch adds the random
initialisation row to each point's fine-tuning.
"""
from experiments.supervised_augment import DEVIATIONS as SUPERVISED_DEVIATIONS, SUPERVISED_WEIGHT_DECAY
from experiments.table8_transfer import DATASETS, DEVIATIONS as TRANSFER_DEVIATIONS, METRICS
from registry import Experiment, Published, grid

# Our metric of the random-initialisation row -> the published row's metric (the fine-tuning protocol's).
SCRATCH_METRICS = {"transfer_scratch_top1": "transfer_finetune_top1",
                   "transfer_scratch_mean_per_class_acc": "transfer_finetune_mean_per_class_acc"}

def baseline_deviations(table: str, width: str, simclr: str) -> tuple[str, ...]:
    """The deviations of a transfer table's baselines (`table`: "Table 8", `width`: "4x", `simclr`: the experiment
    of its SimCLR rows)."""
    return (
        "the supervised network is pretrained on each scale's pretraining data (CIFAR-10 at smoke/cpu/gpu, ImageNet "
        "at paper scale) for 90 paper epochs, as the paper trains its other supervised baselines (Table 1, footnote "
        f"5); the paper takes its {table} supervised ResNet-50 ({width}) from the standard ImageNet training of "
        "Kornblith et al. (2019) without restating its recipe; these runs use the standard supervised augmentation "
        "there, random crop (+flip), not SimCLR's colour distortion and blur",
        "the random-initialisation row trains a newly initialised network of the run's architecture with the "
        "fine-tuning schedule (eval.finetune_*); the paper trains it with its own grid of learning rates and weight "
        "decays, longer",
        f"the 90 epochs and the {width} width are paper units: each scale multiplies them by its factors, as for the "
        f"SimCLR runs of {simclr} (`python -m registry scales`)",
        *SUPERVISED_DEVIATIONS[1:],
        *(d for d in TRANSFER_DEVIATIONS if not d.startswith(("smoke/cpu/gpu scales pretrain", "the 1000 epochs"))),
    )


def baselines(name: str, artefact: str, table: str, width: float, simclr: str) -> Experiment:
    """A transfer table's supervised and random-initialisation rows: a supervised ResNet-50 of `width` (paper
    units) pretrained for 90 epochs with random crop (+flip), transferred to each dataset of table8_transfer's
    axis, with eval.transfer_scratch."""
    return Experiment(
        name=name,
        artefact=artefact,
        title=f"{table}, baselines: a supervised ResNet-50 ({width:g}x) transferred, and random initialisation "
              "fine-tuned",
        base={"method": "supervised", "optim.weight_decay": SUPERVISED_WEIGHT_DECAY, "optim.lr_scaling": "linear",
              "encoder.width": width, "epochs": 90.0, "eval.transfer_scratch": True, "augment.ops": ("crop",)},
        axes=grid(eval__transfer_dataset=tuple(DATASETS)),
        metric="transfer_linear_top1",
        metrics=(*(m for m in METRICS if m != "transfer_linear_top1"), *SCRATCH_METRICS),
        published=Published(
            "table8_transfer.csv",
            columns={"transfer_dataset": "eval.transfer_dataset"},
            values={"eval.transfer_dataset": DATASETS},
            where={"table_or_figure": table},
            metrics={**{metric: {"protocol": protocol, "method": "Supervised", "metric": metric}
                        for metric, protocol in METRICS.items()},
                     **{metric: {"protocol": "fine-tuned", "method": "Random init", "metric": published}
                        for metric, published in SCRATCH_METRICS.items()}}),
        deviations=baseline_deviations(table, f"{width:g}x", simclr),
    )


EXPERIMENT = baselines("table8_transfer_supervised", "tab8_baselines", "Table 8", 4.0, "table8_transfer")

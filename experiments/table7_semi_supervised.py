"""SimCLR v1, Table 7 (top-5) and Table B.4 (top-1): fine-tuning ResNet-50 1x / 2x / 4x on 1% and 10% of the labels.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 6 ("Semi-supervised learning"), Table 7; top-1 in Appendix B.5,
Table B.4. Protocol (Sec. 6, B.5): "we sample 1% or 10% of the labeled ILSVRC-12 training datasets in a
class-balanced way (~12.8 and ~128 images per class respectively). We simply fine-tune the whole base network on the
labeled data without regularization"; Nesterov momentum, batch 4096, lr 0.05 x B/256, 60 epochs on 1%, 30 on 10%.
Claim: "our approach significantly improves over state-of-the-art with both 1% and 10% of the labels"; in the
table, 10% of the labels beats 1% at every width, the wider network is better at each label fraction, and the
pretrained network beats the supervised baseline trained on the same labels (75.5 vs 48.4 top-5 with 1%).
Published numbers: table7_semi_supervised.csv, method "SimCLR (ours)": rows of "Table 7" (finetune_top5: 75.5 / 87.8,
83.0 / 91.2, 85.8 / 92.6 at 1% / 10% for 1x / 2x / 4x) and of "Table B.4" (finetune_top1: 48.3 / 65.6, 58.5 / 71.7,
63.0 / 74.4); printed, exact. The "Supervised baseline" rows (ResNet-50: 48.4 / 80.4 top-5, 25.4 / 56.4 top-1) are
the paper's side of our baseline's cells (finetune_scratch_*: a newly initialised network of the run's width trained
on the same labelled images with the same schedule, eval.finetune_scratch). The other methods' rows and Table B.2
(broader augmentation) are not cells of ours.

One run per width evaluates both fractions (eval.finetune_fractions = (0.01, 0.1): metrics finetune_top1_1pct,
finetune_top5_1pct, finetune_top1_10pct, finetune_top5_10pct), rather than an evaluation-only axis over the fraction:
the metric names stay fixed per cell, one pretraining per width needs no checkpoint hand-over, and the fractions fit
one row of the paper's layout. The pretraining is Table 6's (experiments/table6_linear_eval.py: same base, same
widths), so a results folder that holds Table 6's runs fine-tunes their checkpoints instead of pretraining again
(registry/pretraining.py). At paper scale ImageNet streams: fine-tuning decodes its labelled images batch by batch
and crops each view from the original photograph, as pretraining does (simclr_core/evaluate/finetune.py).
Subsets: class-balanced draws with the run's seed (simclr_core/evaluate/finetune.py: round(fraction x n_c) images of
each class, at least one). The paper's own ImageNet subsets are published as file lists (the official repository's
imagenet_subsets/1percent.txt and 10percent.txt); at paper scale pass them with
`eval.finetune_subset_files=/path/1percent.txt,/path/10percent.txt` (simclr_core/evaluate/subset_files.py).
Cost: `python -m registry run table7_semi_supervised --dry-run --scale S` estimates pretraining and fine-tuning
(30 epochs on each label fraction) from measured rates; Table 6's finished runs make the pretraining free.
"""
from registry import Experiment, Published, grid

from experiments.table6_linear_eval import ARCHITECTURES, PRETRAINING, resnet50

# Our metric -> the CSV's (label_fraction, metric) of its rows.
METRICS = {
    "finetune_top5_1pct": ("1%", "finetune_top5"),
    "finetune_top5_10pct": ("10%", "finetune_top5"),
    "finetune_top1_1pct": ("1%", "finetune_top1"),
    "finetune_top1_10pct": ("10%", "finetune_top1"),
}
# The supervised baseline: eval.finetune_scratch trains a newly initialised ResNet-50 of each width on the same
# labelled images with the same schedule; the paper's side is the "Supervised baseline" it quotes (ResNet-50 1x only).
BASELINE = "Supervised baseline"
SCRATCH_METRICS = {metric.replace("finetune_", "finetune_scratch_", 1): where for metric, where in METRICS.items()}

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 at 32 px (Appendix B.9's setting) instead of ImageNet; 1% of CIFAR-10's training "
    "images is 50 per class (10 at cpu scale, which keeps 10,000 images; 1 at smoke scale), not ImageNet's ~12.8",
    "the 1000 epochs and the 1x/2x/4x widths are paper units: each scale multiplies them by its factors (cpu: 30 "
    "epochs, widths 0.25/0.5/1; gpu: 1000 epochs, widths 1/2/4; smoke: 2 steps, widths 0.25/0.5/1)",
    "both fractions fine-tune for eval.finetune_epochs (30; 1 at smoke scale); the paper fine-tunes 60 epochs on 1% "
    "and 30 on 10%",
    "fine-tuning batch 256 at lr 0.05 (the paper's 0.05 x B/256), not batch 4096 at lr 0.8; random crop (+flip) "
    "as in the paper, at the run's image size",
    "subsets are class-balanced draws with the run's seed, not the paper's published ImageNet lists, unless "
    "eval.finetune_subset_files names them",
    "the supervised baseline is ours: each run also trains a newly initialised network of its width on the same "
    "labelled images with the fine-tuning schedule (eval.finetune_scratch); the paper quotes its ResNet-50 baseline "
    "from Zhai et al. 2019 (S4L), trained with a recipe of its own",
)

EXPERIMENT = Experiment(
    name="table7_semi_supervised",
    artefact="tab7",
    title="Table 7 / B.4: fine-tuning ResNet-50 1x / 2x / 4x on 1% and 10% of the labels",
    base={**PRETRAINING, "eval.finetune_fractions": (0.01, 0.1), "eval.finetune_scratch": True},
    axes=grid(width=tuple(ARCHITECTURES)),
    overrides=resnet50,
    metric="finetune_top5_1pct",
    metrics=tuple(m for m in (*METRICS, *SCRATCH_METRICS) if m != "finetune_top5_1pct"),
    published=Published(
        "table7_semi_supervised.csv",
        columns={"architecture": "width"},
        values={"width": ARCHITECTURES},
        where={"method": "SimCLR (ours)"},
        metrics={**{metric: {"label_fraction": fraction, "metric": name}
                    for metric, (fraction, name) in METRICS.items()},
                 **{metric: {"label_fraction": fraction, "metric": name, "method": BASELINE}
                    for metric, (fraction, name) in SCRATCH_METRICS.items()}}),
    deviations=DEVIATIONS,
)

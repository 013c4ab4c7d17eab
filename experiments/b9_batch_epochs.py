"""SimCLR v1, Appendix B.9, Figure B.7: SimCLR pretrained on CIFAR-10, batch size x training epochs.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Appendix B.9, Figure B.7 (ResNet-50 with the CIFAR stem, colour
strength 0.5, no blur, temperature 0.5; each bar the mean of three runs with LARS lr 0.5, 1.0 and 1.5, the error
bar their std).
Claim (B.9 text, as the CSV transcribes it): "consistent with ImageNet; batch 4096 shows a small degradation".
Read against Figure 9's ImageNet claim, consistent means: longer training helps, and more so at small batch sizes.
Published numbers: appendixB9_cifar10.csv. Figure B.7's bars are MISSING (no image or transcription was
available); two cells have a number:
  (1024, 1000)  94.0, B.9's best model (printed in the text; 1000 epochs per the author's comment on
                google-research/simclr issue #90; its learning rate, one of the three, and its temperature are not
                stated), so it is one learning rate's run, not the mean of three;
  (1024, 100)   ~85, a user's reading of the figure (google-research/simclr issue #124): secondary, low confidence.
The other cells have no published number. Figure B.7's exact epoch set is not recoverable from the text; 100,
300, 500 and 1000 span its 100 ... 1000.

Cost, as `python -m registry run b9_batch_epochs --dry-run --scale S` estimates it with no run done: smoke
20 runs, ~5 s; cpu 20 runs, 0.93 CPU-hours; gpu 40 runs (2 seeds), 9.7 GPU-hours; paper 20 runs (ResNet-50,
all of CIFAR-10), 11 GPU-hours. The 1000-epoch runs are b9_temperature_batch's tau-0.5 row, the same configs:
in one results folder they pretrain once (registry/pretraining.py).
"""
from registry import Experiment, Published, grid
from experiments.base import cifar10_base

BATCH_SIZES = (256, 512, 1024, 2048, 4096)
EPOCHS = (100, 300, 500, 1000)
# The CSV's pretrain_epochs text of its two rows with a number (the best model's epochs cite their source).
PUBLISHED_EPOCHS = {100: "100",
                    1000: "1000 (per author comment, google-research/simclr issue #90; not stated in B.9 text)"}

DEVIATIONS = (
    "one learning rate per cell, LARS 1.0 with linear scaling (B.9's middle value, the official README's CIFAR-10 "
    "value); the paper's bars are the mean over lr 0.5, 1.0 and 1.5 and its error bars their std, ours the mean and "
    "std over seeds",
    "epochs 100, 300, 500 and 1000 of the figure's 100 ... 1000 (its exact epoch set is not available to us)",
    "the published (1024, 1000) cell is B.9's best model, one run at an unstated one of the three learning rates "
    "and an unstated temperature, not a bar of the figure; (1024, 100) is a reader's estimate off the figure",
    "smoke/cpu/gpu scales: ResNet-18 (CIFAR stem) in place of ResNet-50, width x0.25 at smoke and cpu; batch "
    "sizes are multiplied by the scale's factor (smoke /32: 8 ... 128; cpu /4: 64 ... 1024; gpu /2: 128 ... 2048) "
    "and cpu trains 0.03 x the epochs on 10,000 images: compare trends, not values",
)

EXPERIMENT = Experiment(
    name="b9_batch_epochs",
    title="Figure B.7 (CIFAR-10): batch size (256 ... 4096) x epochs (100 ... 1000)",
    setting=cifar10_base,
    base={"optim.lr_scaling": "linear", "optim.base_lr": 1.0, "loss.temperature": 0.5},
    axes=grid(batch_size=BATCH_SIZES, epochs=EPOCHS),
    metric="linear_top1",
    metrics=("knn_top1",),
    published=Published("appendixB9_cifar10.csv",
                        columns={"batch_size": "batch_size", "pretrain_epochs": "epochs"},
                        where={"metric": "linear_top1",
                               "table_or_figure": ("Appendix B.9 (text)", "Figure B.7 (secondary reading)")},
                        values={"epochs": PUBLISHED_EPOCHS}),
    deviations=DEVIATIONS,
)

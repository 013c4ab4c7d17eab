"""SimCLR v1, Table 1, supervised rows: a supervised ResNet-50 trained as the colour distortion strength s grows.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 3, Table 1 (footnote 5: supervised models trained 90 epochs).
Claim: stronger colour augmentation helps the contrastive models (experiments/color_strength.py) but not supervised
ones: supervised top-1 falls from 77.0 at s = 1/8 to 75.7 at s = 1, and 75.4 with blur added: "Contrastive learning needs stronger data augmentation than
supervised learning" (the heading of Section 3.3).
Published numbers: table1_color_distortion.csv, rows method == "Supervised" (printed; exact). The AutoAugment
column has no counterpart here (no AutoAugment op) and is not declared.
"""
from experiments.color_strength import EXPERIMENT as SIMCLR_TABLE1, crop_color_blur
from experiments.supervised_augment import DEVIATIONS as SUPERVISED_DEVIATIONS, SUPERVISED_WEIGHT_DECAY
from registry import Experiment, Published

EXPERIMENT = Experiment(
    name="color_strength_supervised",
    artefact="tab1_supervised",
    title="Table 1, supervised rows: colour distortion strength s (1/8 ... 1, and 1 + blur), supervised, 90 epochs",
    base={"method": "supervised", "optim.weight_decay": SUPERVISED_WEIGHT_DECAY, "optim.lr_scaling": "linear",
          "epochs": 90},
    axes=SIMCLR_TABLE1.axes,
    overrides=crop_color_blur,
    metric="supervised_top1",
    published=Published("table1_color_distortion.csv", columns=SIMCLR_TABLE1.published.columns,
                        where={"method": "Supervised", "metric": "supervised_top1"}),
    deviations=SUPERVISED_DEVIATIONS,
)

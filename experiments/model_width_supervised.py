"""SimCLR v1, Figure 7, supervised crosses: supervised ResNet-50 at widths 1x, 2x and 4x, 90 epochs.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 4.1, Figure 7 (the green crosses).
Claim: "unsupervised learning benefits more from bigger models than its supervised counterpart": the supervised
models gain from width too (76.5, 77.8, 78.4 read off the plot), by less than SimCLR's (experiments/model_width.py:
64.5, 69.7 and 72.8 read off the plot at 100 epochs), so the gap between the two shrinks as the models grow.
Published numbers: fig7_model_size.csv, the 3 green crosses (read off the plot; approx., +/-0.2 top-1).
"""
from experiments.supervised_augment import DEVIATIONS as SUPERVISED_DEVIATIONS, SUPERVISED_WEIGHT_DECAY
from registry import Experiment, Published, grid

DEVIATIONS = (
    *SUPERVISED_DEVIATIONS,
    "the paper does not state the crosses' augmentation; these runs use the standard supervised one, random crop "
    "(+flip)",
)


def supervised_resnet50(point: dict) -> dict:
    return {"encoder.name": "resnet50", "encoder.width": float(point["width"])}


EXPERIMENT = Experiment(
    name="model_width_supervised",
    artefact="fig7_supervised",
    title="Figure 7, supervised crosses: supervised ResNet-50 at width 1x, 2x, 4x, 90 epochs",
    base={"method": "supervised", "optim.weight_decay": SUPERVISED_WEIGHT_DECAY, "optim.lr_scaling": "linear",
          "epochs": 90, "augment.ops": ("crop",)},
    axes=grid(width=(1, 2, 4)),
    overrides=supervised_resnet50,
    metric="supervised_top1",
    published=Published("fig7_model_size.csv", columns={"width": "width"},
                        where={"training": "supervised (green cross)", "metric": "supervised_top1"}),
    deviations=DEVIATIONS,
)

"""SimCLR v1, Figure 7: linear evaluation of ResNets of growing depth and width, 100 epochs.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 4.1, Figure 7.
Claim: "unsupervised learning benefits more from bigger models than its supervised counterpart":
accuracy grows with depth and width, and the gap to supervised models shrinks as models grow.
Published numbers: fig7_model_size.csv, the 13 blue dots (SimCLR, 100 epochs), read off the plot by pixel
analysis (approx., +/-0.2 top-1). The figure has no ResNet-101/152 at 4x, so neither does this grid.
The 1000-epoch stars are not declared; the supervised crosses are experiments/model_width_supervised.py.
"""
from registry import Experiment, Published, grid

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 at 32 px with the CIFAR stem instead of ImageNet at 224 px",
    "smoke/cpu scales: every width is multiplied by the scale's width factor (1x/2x/4x -> 0.25/0.5/1 at cpu); "
    "depth is kept",
)


def resnet(point: dict) -> dict:
    return {"encoder.name": f"resnet{point['depth']}", "encoder.width": point["width"]}


EXPERIMENT = Experiment(
    name="model_width",
    artefact="fig7",
    title="Figure 7: encoder depth (18 ... 152) x width multiplier (1x, 2x, 4x)",
    base={"optim.lr_scaling": "linear"},
    axes=grid(depth=(18, 34, 50, 101, 152), width=(1, 2)) + grid(depth=(18, 34, 50), width=(4,)),
    overrides=resnet,
    metric="linear_top1",
    published=Published("fig7_model_size.csv", columns={"depth": "depth", "width": "width"},
                        where={"training": "SimCLR (blue dot)", "pretrain_epochs": "100",
                               "metric": "linear_top1"}),
    deviations=DEVIATIONS,
)

"""SimCLR v1, Table 1: linear evaluation as the strength s of colour distortion grows.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 3, Table 1 (and Appendix A for s).
Claim: "stronger color augmentation substantially improves the linear evaluation of the learned
unsupervised models" (59.6 at s = 1/8 up to 63.2 at s = 1, 64.5 with blur added), while supervised
models do not gain from it (experiments/color_strength_supervised.py).
Published numbers: table1_color_distortion.csv, rows method == "SimCLR" (printed; exact). The AutoAugment
column has no counterpart here (no AutoAugment op) and is not declared.
"""
from registry import Experiment, Published, cases

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 and a small ResNet instead of ImageNet/ResNet-50 (compare trends, not values)",
    "the CIFAR-10 base uses s = 0.5 and no blur (Appendix B.9); this ablation sets s and blur explicitly",
    "the supervised rows of Table 1 are another experiment, color_strength_supervised (report tab1_supervised)",
)


def crop_color_blur(point: dict) -> dict:
    """Crop (+flip) and colour distortion of strength s on both branches, Gaussian blur where asked."""
    ops = ("crop", "color", "blur") if point["blur"] else ("crop", "color")
    return {"augment.ops": ops, "augment.color_strength": point["color_strength"]}


EXPERIMENT = Experiment(
    name="color_strength",
    artefact="tab1",
    title="Table 1: colour distortion strength s (1/8 ... 1, and 1 + blur)",
    base={"optim.lr_scaling": "linear"},
    axes=cases(
        {"color_strength": 0.125, "blur": False},
        {"color_strength": 0.25, "blur": False},
        {"color_strength": 0.5, "blur": False},
        {"color_strength": 1.0, "blur": False},
        {"color_strength": 1.0, "blur": True},
    ),
    overrides=crop_color_blur,
    metric="linear_top1",
    published=Published("table1_color_distortion.csv",
                        columns={"color_distortion_strength": "color_strength", "blur": "blur"},
                        where={"method": "SimCLR", "metric": "linear_top1"}),
    deviations=DEVIATIONS,
)

"""SimCLR v1, Figure 5: linear evaluation for every ordered pair of data augmentations.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 3 and Figure 5.
Claim: "no single transformation suffices to learn good representations"; composing random crop with
colour distortion is the strongest pair (56.3, and 55.8 in the other order, vs at most 46.2 for any other
pair: Sobel then crop).
Protocol (Section 3): "we always first randomly crop images and resize them to the same resolution, and
we then apply the targeted transformation(s) only to one branch [...] while leaving the other branch as
the identity". Row = 1st transformation, column = 2nd; the diagonal is a single transformation.
Published numbers: fig5_augmentation_composition.csv, printed in the heatmap cells (exact; ImageNet
top-1 %, ResNet-50). Compare the ranking of cells, not their values.
"""
from registry import Experiment, Published, grid

TRANSFORMS = ("crop", "cutout", "color", "sobel", "noise", "blur", "rotate")

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 and a small ResNet instead of ImageNet/ResNet-50 (compare trends, not values)",
    "a targeted 'crop' on the transformed branch is not applied twice: our pipeline already crops both "
    "branches, so row 'crop' and column 'crop' train the same model (the paper crops that branch again)",
    "paper batch size and epochs for this figure are not restated; the default setting is assumed",
)


def pair_ops(point: dict) -> dict:
    """(first, second) -> the one-branch augmentation; the diagonal is the single transformation."""
    first, second = point["first"], point["second"]
    ops = (first,) if first == second else (first, second)
    return {"augment.ops": ops}


EXPERIMENT = Experiment(
    name="augment_pairs",
    artefact="fig5",
    title="Figure 5: ordered pairs of augmentations, applied to one branch",
    base={"augment.one_branch": True, "optim.lr_scaling": "linear"},
    axes=grid(first=TRANSFORMS, second=TRANSFORMS),
    overrides=pair_ops,
    metric="linear_top1",
    published=Published("fig5_augmentation_composition.csv", columns={"aug1": "first", "aug2": "second"},
                        where={"metric": "linear_top1", "cell_kind": ("single", "composition")}),
    deviations=DEVIATIONS,
)

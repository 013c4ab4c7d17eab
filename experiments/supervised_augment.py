"""SimCLR v1, Table B.3: supervised ResNet-50 (1x, 4x) trained 90, 500 and 1000 epochs with the contrastive
learning's augmentations: crop (+flip), + colour distortion, + colour distortion + blur.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Appendix B.3 (Table B.3) and Table 1's footnote 5.
Claim (footnote 5, paraphrased): for supervised models, training longer improves the results of the stronger
augmentations (by about 0.5%); Table B.3 shows that at 90 epochs colour and blur cost the 1x model 1.2 points,
and that at 1000 epochs they add 0.6. Even then their gain stays far below what they give SimCLR (Table 1).
Published numbers: tableB3_supervised_longer_training.csv (printed; exact).
"""
from registry import Experiment, Published, grid

SUPERVISED_WEIGHT_DECAY = 1e-4

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 and a small ResNet instead of ImageNet/ResNet-50 (compare trends, not values); "
    "epochs are multiplied by the scale's factor and widths by its width factor",
    "the paper does not state how its supervised baselines were optimised; these runs use the contrastive runs' "
    f"optimiser and schedule (LARS, warm-up then cosine) with weight decay {SUPERVISED_WEIGHT_DECAY:g}, the usual "
    "value for a supervised ResNet (the contrastive runs' 1e-6 leaves a classifier all but unregularised)",
    "a supervised run trains on one view per image: the first of the two views a contrastive step would make from "
    "the same random draws (so both methods see the same crops); the second view is never made",
)

AUGMENTATIONS = {"crop": ("crop",), "crop+color": ("crop", "color"), "crop+color+blur": ("crop", "color", "blur")}


def supervised_resnet(point: dict) -> dict:
    return {"augment.ops": AUGMENTATIONS[point["augmentation"]], "encoder.width": float(point["width"]),
            "epochs": float(point["epochs"])}


EXPERIMENT = Experiment(
    name="supervised_augment",
    artefact="tabB3",
    title="Table B.3: supervised ResNet-50 1x / 4x x epochs (90, 500, 1000) x crop / +colour / +colour+blur",
    base={"method": "supervised", "optim.weight_decay": SUPERVISED_WEIGHT_DECAY, "optim.lr_scaling": "linear"},
    axes=grid(width=(1, 4), epochs=(90, 500, 1000), augmentation=tuple(AUGMENTATIONS)),
    overrides=supervised_resnet,
    metric="supervised_top1",
    published=Published("tableB3_supervised_longer_training.csv",
                        columns={"width": "width", "supervised_epochs": "epochs", "augmentation": "augmentation"},
                        where={"metric": "supervised_top1"}),
    deviations=DEVIATIONS,
)

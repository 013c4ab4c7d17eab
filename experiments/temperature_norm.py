"""SimCLR v1, Table 5: NT-Xent with and without l2 normalisation, across temperatures.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 5.1, Table 5.
Claim: "without normalization and proper temperature scaling, performance is significantly worse":
with l2 norm, tau = 0.1 is best (64.4); without it, the contrastive task is solved better (higher
contrastive accuracy) but the representation is worse (57.2 at best).
Published numbers: table5_temperature_l2norm.csv (printed; exact): linear top-1 here; the same rows give
the contrastive distribution's entropy and contrastive accuracy, which train() logs in metrics.jsonl.
"""
from registry import Experiment, Published, grid

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 and a small ResNet instead of ImageNet/ResNet-50 (compare trends, not values)",
    "the contrastive distribution spans the scaled batch (e.g. 256 at cpu scale), not 4096 examples, so "
    "entropy and contrastive accuracy are not comparable in value",
)

EXPERIMENT = Experiment(
    name="temperature_norm",
    artefact="tab5",
    title="Table 5: l2 normalisation on/off x temperature",
    base={"loss.kind": "nt_xent", "optim.lr_scaling": "linear"},
    axes=grid(loss__normalize=(True,), loss__temperature=(0.05, 0.1, 0.5, 1.0))
    + grid(loss__normalize=(False,), loss__temperature=(10.0, 100.0)),
    metric="linear_top1",
    published=Published("table5_temperature_l2norm.csv",
                        columns={"l2_norm": "loss.normalize", "temperature": "loss.temperature"},
                        where={"metric": "linear_top1"}),
    deviations=DEVIATIONS,
)

"""SimCLR v1, Figure 8: linear evaluation of h with no, a linear, or a nonlinear projection head g(.).

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 4.2, Figure 8.
Claim: "a nonlinear projection is better than a linear projection (+3%), and much better than no
projection (>10%)"; the output dimension of the head barely matters.
Published numbers: fig8_projection_head.csv, bars read off a low-resolution plot (approx., +/-0.4).
"None" is one bar (z = h, 2048-d); its out_dim label 2048 only names that bar, it sets no layer.
"""
from registry import Experiment, Published, cases, grid

OUT_DIMS = (32, 64, 128, 256, 512, 1024, 2048)

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 and a small ResNet; h is narrower than 2048-d, so the head's output can be "
    "wider than h for the largest out_dim",
    "the paper's text claims (+3% over linear, >10% over none and h over z) are not separate runs",
)

EXPERIMENT = Experiment(
    name="head_type",
    artefact="fig8",
    title="Figure 8: projection head none / linear / nonlinear x output dimension",
    base={"optim.lr_scaling": "linear"},
    axes=grid(head__kind=("linear", "nonlinear"), head__out_dim=OUT_DIMS)
    + cases({"head.kind": "none", "head.out_dim": 2048}),
    metric="linear_top1",
    published=Published("fig8_projection_head.csv", columns={"head": "head.kind", "out_dim": "head.out_dim"},
                        where={"metric": "linear_top1"}),
    deviations=DEVIATIONS,
)

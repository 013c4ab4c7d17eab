"""SimCLR v1, Table B.5: Table 8's transfer with a standard ResNet-50 (1x), linear and fine-tuned.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Appendix B.8 (B.8.2, Table B.5; Section 4.3 and Table 8 for the 4x
network).
Claim (Appendix B.8.2, paraphrased): with the 1x network, as with the 4x one, fine-tuning beats linear evaluation on
most datasets, and fine-tuned SimCLR stays level with the supervised baseline (ahead or tied on most datasets); in the
printed numbers every SimCLR cell of the 1x network is below the 4x network's but fine-tuned Aircraft (88.1
against 87.0).
Published numbers: table8_transfer.csv, rows of "Table B.5" (ResNet-50, 1000 epochs on ImageNet), printed (exact),
in the metric the paper prints for each dataset (top-1, or mean per-class accuracy for Aircraft, Pets, Caltech-101
and Flowers); our runs report both. Its supervised and random-initialisation rows are table_b5_transfer_supervised's.

The declaration is table8_transfer's (experiments/table8_transfer.py) at width 1x: one axis, the transfer dataset,
on which all eleven points share one pretraining.
"""
from experiments.table8_transfer import DEVIATIONS as TABLE8_DEVIATIONS, transfer_experiment

DEVIATIONS = (
    "the 1000 epochs and the 1x width are paper units: each scale multiplies them by its factors (cpu: 30 epochs, "
    "width 0.25; gpu: 1000 epochs, width 1; smoke: 2 steps, width 0.25)",
    *(d for d in TABLE8_DEVIATIONS if not d.startswith("the 1000 epochs")),
)

# Table B.5's encoder: ResNet-50 (1x) pretrained for 1000 epochs (Appendix B.8.2), in paper units.
EXPERIMENT = transfer_experiment(
    "table_b5_transfer", "tabB5",
    "Table B.5: transfer of a ResNet-50 (1x) to 11 natural-image datasets, linear evaluation and fine-tuning",
    "Table B.5", 1.0, DEVIATIONS)

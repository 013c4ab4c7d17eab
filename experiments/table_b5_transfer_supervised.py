"""SimCLR v1, Table B.5, the baselines: Table 8's supervised and random-initialisation rows with a standard
ResNet-50 (1x).

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Appendix B.8 (B.8.2, Table B.5).
Claim (from the printed numbers; Section 4.3 states its claims for the 4x network of Table 8): fine-tuned, each
pretrained network beats the same network trained from random initialisation on average over the datasets (SimCLR
85.6 and supervised 86.2 against 80.1 over the 11 declared datasets), while with the 1x network fine-tuned SimCLR
trails the supervised one on 8 of 11 datasets (by 2.9 points at most, on Pets).
Published numbers: table8_transfer.csv, rows of "Table B.5" with method "Supervised" (linear and fine-tuned) and
"Random init" (fine-tuned), ResNet-50, printed (exact). The report (reports/tables/tab8_baselines.py, tabB5_baselines)
sets these runs beside table_b5_transfer's SimCLR runs.

The declaration is table8_transfer_supervised's (experiments/table8_transfer_supervised.py) at width 1x.
"""
from experiments.table8_transfer_supervised import baselines

EXPERIMENT = baselines("table_b5_transfer_supervised", "tabB5_baselines", "Table B.5", 1.0, "table_b5_transfer")

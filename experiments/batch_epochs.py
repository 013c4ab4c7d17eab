"""SimCLR v1, Figure 9 / Table B.1: batch size x training epochs, under linear and square-root lr scaling.

Paper: Chen et al. 2020, arXiv:2002.05709 v3, Section 5.2, Figure 9, Appendix B.1 (Table B.1).
Claim: "when the number of training epochs is small (e.g. 100 epochs), larger batch sizes have a
significant advantage"; the gap shrinks with longer training. With square-root scaling
(lr = 0.075 x sqrt(B)) small batches and short training do better than with linear scaling
(lr = 0.3 x B/256); the two agree at batch 4096.
Published numbers: fig9_batch_size_epochs.csv, Table B.1 rows (printed; exact). Figure 9 plots the
linear-scaling half; its other epochs were read off the plot and are not declared.
"""
from registry import Experiment, Published, grid

DEVIATIONS = (
    "smoke/cpu/gpu scales: CIFAR-10 and a small ResNet; batch sizes and epochs are multiplied by the scale's "
    "factors (cpu: batch /4, epochs x0.03; gpu: batch /2), so the grid keeps its shape, not its values",
    "the paper's learning-rate constants (0.3 linear, 0.075 sqrt) are used at every scale, including "
    "CIFAR-10 where the other ablations use base_lr 1.0",
)

EXPERIMENT = Experiment(
    name="batch_epochs",
    artefact="fig9",
    title="Figure 9 / Table B.1: batch size (256 ... 8192) x epochs (100 ... 800) x lr scaling",
    base={"optim.base_lr": None},     # None: the paper's constant for each scaling
    axes=grid(batch_size=(256, 512, 1024, 2048, 4096, 8192), epochs=(100, 200, 400, 800),
              optim__lr_scaling=("linear", "sqrt")),
    metric="linear_top1",
    published=Published("fig9_batch_size_epochs.csv",
                        columns={"batch_size": "batch_size", "pretrain_epochs": "epochs",
                                 "lr_scaling": "optim.lr_scaling"},
                        where={"metric": "linear_top1",
                               "table_or_figure": ("Table B.1", "Table B.1 (= Figure 9 for linear scaling)")}),
    deviations=DEVIATIONS,
)

"""Beyond the paper: decoupled NT-Xent (DCL) against NT-Xent, across temperatures, on the CPU recipe.

Question: does leaving the positive out of NT-Xent's denominator (decoupled contrastive learning, Yeh et al.
2022, whose authors report the largest gains at small batches such as the recipe's 256) change kNN or linear
top-1, and does it make the result less sensitive to the temperature, the recipe's sharpest knob?
Both losses are simclr_core/losses.py's (`loss.kind` nt_xent or dcl), reduced the same way.

Points: loss nt_xent or dcl x temperature 0.1, 0.2 (the recipe's), 0.5 (B.9's), all on the two-view recipe
(beyond_cpu_recipe's cpu60-sgd-lr0.5: SGD lr 0.5 per 256 images, weight decay 5e-4, crops (0.2, 1)). Point
(nt_xent, 0.2) is the recipe itself: a results folder that holds its pretraining already reuses it
(registry/pretraining.py).

What a scale changes: as for beyond_cpu_recipe (see its docstring). At cpu scale every point trains 3 epochs
of 10,000 images; the hour's run of the old bench_quality.py (`--recipe cpu60-dcl --epochs 33
--knn-every 11`) is reached by the same command-line overrides, exactly (tests/experiments/test_beyond.py
checks it key by key):

    .venv/bin/python benchmarks/bench_quality.py beyond_dcl --scale cpu --only dcl+0.2 \\
        epochs=33 optim.warmup_epochs=2 data.train_limit=none data.test_limit=none \\
        eval.protocols=knn eval.linear_epochs=100 eval.knn_every_epochs=11
"""
from experiments.base import cifar10_base
from experiments.beyond_cpu_recipe import BASE, METRICS, RECIPE
from registry import Experiment, grid

EXPERIMENT = Experiment(
    name="beyond_dcl",
    title="Decoupled NT-Xent vs NT-Xent x temperature (0.1, 0.2, 0.5) on the CPU recipe",
    setting=cifar10_base,
    base={**BASE, **RECIPE},
    axes=grid(loss__kind=("nt_xent", "dcl"), loss__temperature=(0.1, 0.2, 0.5)),
    metric="knn_top1",
    metrics=METRICS,
)

"""Beyond the paper: the CPU recipe, one change at a time from Appendix B.9's CIFAR-10 setting.

Question: at equal compute, how much does each step of the recipe tuned for an hour of the 2-core CPU
(benchmarks/RESULTS.md, "Quality moonshot") add to B.9's setting, and do the steps keep their order when the
run is short (cpu scale) or long (gpu scale)? The recipe was tuned by kNN top-1 after ~30 epochs; this asks
whether its choices hold at other lengths, where nobody tuned them.

The axis `recipe` takes the recipe's steps, each point adding one change to the one before it:
    b9               B.9 as the scale resolves it (LARS lr 1.0, weight decay 1e-6, t = 0.5, crops (0.08, 1))
    cpu60            crops (0.2, 1) and temperature 0.2
    cpu60-sgd        SGD (momentum 0.9) lr 0.25 per 256 images, weight decay 5e-4, instead of LARS
    cpu60-sgd-lr0.5  SGD lr 0.5: the two-view recipe; beyond_multicrop and beyond_dcl start from it
    cpu60-sgd-lr1    SGD lr 1.0
The recipe's other choices are B.9's or the scale's: CIFAR stem, colour strength 0.5, no blur, linear lr
scaling; at cpu scale ResNet-18 x0.25 at batch 256 (B.9's x1 and 1024 shrunk by the scale).

What a scale changes. At cpu scale a run is the recipe's model, batch and augmentation trained for 3 epochs
(B.9's 100 x 0.03, warm-up 0.3) on 10,000 images, with kNN on 2,000 test images plus linear evaluation: a
~40 s proxy, not the recipe's hour. The hour's run trained 25-35 epochs with a 2-epoch warm-up on all 50,000
images and evaluated kNN alone on all 10,000 test images. These are the scale's compute knobs, so they are
command-line overrides, not part of the declaration; with them a cpu-scale run is exactly the old
`bench_quality.py --recipe cpu60-sgd-lr0.5 --epochs 33 --knn-every 11` (tests/experiments/test_beyond.py
checks it key by key):

    .venv/bin/python benchmarks/bench_quality.py beyond_cpu_recipe --scale cpu --only cpu60-sgd-lr0.5 \\
        epochs=33 optim.warmup_epochs=2 data.train_limit=none data.test_limit=none \\
        eval.protocols=knn eval.linear_epochs=100 eval.knn_every_epochs=11

(`--only cpu60`, `cpu60-sgd` or `cpu60-sgd-lr1` with their epochs reproduces the other recipes. Without
`eval.protocols=knn eval.linear_epochs=100` the run adds the scale's linear evaluation after the same
pretraining; the second only restores a default that kNN alone never reads.) At gpu scale the recipe trains
ResNet-18 x1 at batch 512 for B.9's 100 epochs on all of CIFAR-10; the SGD learning rates scale linearly with
the batch. At paper scale it is B.9's ResNet-50 at batch 1024: the recipe's choices were never tuned there.
"""
from experiments.base import cifar10_base
from registry import Experiment, grid

# Fixed in every point: the lr scaling the recipe's learning rates are given in, and the recipe's checkpoint
# and logging cadence (neither enters a run id).
BASE = {"optim.lr_scaling": "linear", "checkpoint_every_steps": 500, "log_every_steps": 50}

_CPU60 = {"augment.crop_scale": (0.2, 1.0), "loss.temperature": 0.2}
_SGD = {**_CPU60, "optim.name": "sgd", "optim.base_lr": 0.25, "optim.weight_decay": 5e-4}

# Each step's overrides on B.9's CIFAR-10 setting, in the paper's units (a scale shrinks batch, width, epochs).
STEPS: dict[str, dict] = {
    "b9": {},
    "cpu60": _CPU60,
    "cpu60-sgd": _SGD,
    "cpu60-sgd-lr0.5": {**_SGD, "optim.base_lr": 0.5},
    "cpu60-sgd-lr1": {**_SGD, "optim.base_lr": 1.0},
}
# The two-view recipe the other beyond_* experiments vary.
RECIPE = STEPS["cpu60-sgd-lr0.5"]
METRICS = ("linear_top1", "knn_top5")


def step_overrides(point: dict) -> dict:
    """recipe name -> its overrides on B.9's setting."""
    return STEPS[point["recipe"]]


EXPERIMENT = Experiment(
    name="beyond_cpu_recipe",
    title="The CPU recipe, one change at a time from B.9's CIFAR-10 setting",
    setting=cifar10_base,
    base=BASE,
    axes=grid(recipe=tuple(STEPS)),
    overrides=step_overrides,
    metric="knn_top1",
    metrics=METRICS,
)

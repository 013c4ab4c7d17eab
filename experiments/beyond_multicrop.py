"""Beyond the paper: multi-crop (SwAV's small views) on top of the CPU recipe.

Question: how much do extra small views per image add to the two-view recipe at the same number of epochs,
and is it worth their cost in time? Each small view (16 px, cropping 10-40% of the image) is contrasted with
both 32 px views and the loss is the mean over the view pairs (simclr_core/losses.py); Caron et al. 2020
(SwAV) introduced the views, the SimCLR paper uses two. The report ranks the points by kNN top-1; final.json
also records images/s and pretraining seconds, which `benchmarks/bench_quality.py beyond_multicrop` prints
beside the accuracies, so a point can be judged per epoch and per second.

Points: 0 (the two-view recipe, beyond_cpu_recipe's cpu60-sgd-lr0.5), 2 and 4 small views, all on that recipe
(SGD lr 0.5 per 256 images, weight decay 5e-4, t = 0.2, crops (0.2, 1)). The small views' size and crop scale
are set only where there are small views, so that point 0 is the recipe's own config and a results folder that
holds its pretraining already reuses it (registry/pretraining.py).

What a scale changes: as for beyond_cpu_recipe (see its docstring). At cpu scale every point trains 3 epochs
of 10,000 images; the hour's run (`--recipe cpu60-multicrop` of the old bench_quality.py, 2 small views, 27
epochs to pay for their time) is reached by the same command-line overrides, exactly (tests/experiments/
test_beyond.py checks it key by key):

    .venv/bin/python benchmarks/bench_quality.py beyond_multicrop --scale cpu --only 2 \\
        epochs=27 optim.warmup_epochs=2 data.train_limit=none data.test_limit=none \\
        eval.protocols=knn eval.linear_epochs=100

The equal-time comparison RESULTS.md makes (fewer epochs for more views) is the same command with each
point's own `epochs=`, one `--only` at a time.
"""
from experiments.base import cifar10_base
from experiments.beyond_cpu_recipe import BASE, METRICS, RECIPE
from registry import Experiment, grid

# The small views wherever there are any: 16 px, a tenth to two fifths of the image's area.
SMALL_VIEWS = {"augment.local_crop_size": 16, "augment.local_crop_scale": (0.1, 0.4)}


def local_views(point: dict) -> dict:
    """number of small views -> their overrides (none for 0: the two-view recipe as it is)."""
    count = point["augment.local_crops"]
    return {"augment.local_crops": count, **(SMALL_VIEWS if count else {})}


EXPERIMENT = Experiment(
    name="beyond_multicrop",
    title="Multi-crop: 0, 2 or 4 small 16 px views per image on the CPU recipe",
    setting=cifar10_base,
    base={**BASE, **RECIPE},
    axes=grid(augment__local_crops=(0, 2, 4)),
    overrides=local_views,
    metric="knn_top1",
    metrics=METRICS,
)

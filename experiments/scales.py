"""The scales: how much compute one resolved ablation spends, never which runs it has; cheapest first.

smoke (plumbing in seconds), cpu (trends on a 2-core CPU), gpu (one H100/H200-class GPU), paper (the paper's
setting on a cluster); `python -m registry scales` prints each one's purpose, what it trains and the estimated
hours of its ablations. What a field of `Scale` means, and the order in which a run is resolved from a scale, is
in registry/scales.py, which finds this module by name (`registry.scales.SCALES`, loaded on first use).

Adding a scale is one `Scale(...)` entry below (the first one listed is the cheapest), or, outside the package, in
a `SCALES` tuple of a file in $SIMCLR_EXPERIMENTS_DIR.
"""
from __future__ import annotations

from experiments.base import PAPER_LINEAR_EVAL_EPOCHS, cifar10_base, imagenet_base
from registry.scales import Scale

SCALES = (
    Scale(
        name="smoke",
        summary="seconds per run, for tests and a check that every run starts: embedded cifar10_subset, ResNet "
                "width x0.25, batch 32, 2 steps, kNN on 200 test images",
        purpose="plumbing in seconds: tests and a check that every run starts; its numbers mean nothing",
        base=cifar10_base,
        defaults={"data.dataset": "cifar10_subset", "encoder.name": "resnet18"},
        batch_size_factor=1 / 32,      # the CIFAR base's 1024 -> 32; Figure 9's 256..8192 -> 8..256
        width_factor=0.25,             # 1x/2x/4x -> 0.25/0.5/1
        fixed={"max_steps": 2, "data.train_limit": 512, "data.test_limit": 200,
               "eval.protocols": ("knn",), "eval.knn_k": 20, "precision": "no"},
        protocol_settings={"finetune": {"eval.finetune_epochs": 1},
                           "transform_probe": {"eval.transform_epochs": 2},
                           "transfer": {"eval.finetune_epochs": 1, "eval.linear_epochs": 10}},
    ),
    # Calibrated on the 2-core reference CPU: 2026-12-04, ResNet-18 x0.25 at batch 256 trained at a mean 857
    # images/s (registry/estimate.py); 3 epochs of 10,000 images (117 steps) took 32-34 s, evaluation (kNN +
    # linear on frozen features) ~2-4 s more. Two seeds of temperature_norm and of loss_variant (22 runs) took
    # 13 min of wall clock. Two ablations are dearer by structure, not by scale: model_width (ResNet-152 and
    # 4x widths) and batch_epochs (up to 800 paper epochs -> 24 here); `registry scales` prints the hours.
    Scale(
        name="cpu",
        summary="about an hour per ablation on a 2-core CPU: CIFAR-10 (10,000 train / 2,000 test images), "
                "ResNet-18 (depth kept where ablated) at width x0.25, batch /4, epochs x0.03",
        purpose="trends on the 2-core reference CPU in about an hour per ablation: compare rankings, not values",
        base=cifar10_base,
        defaults={"encoder.name": "resnet18"},
        batch_size_factor=1 / 4,       # 1024 -> 256; Figure 9's 256..8192 -> 64..2048
        epochs_factor=0.03,            # 100 -> 3 epochs (warm-up 10 -> 0.3)
        width_factor=0.25,
        fixed={"data.train_limit": 10_000, "data.test_limit": 2_000,
               "eval.protocols": ("knn", "linear"), "eval.linear_epochs": 30},
        # Fine-tuning all 10,000 images (Table 8) for the paper's 30 epochs would cost more than pretraining.
        protocol_settings={"transfer": {"eval.finetune_epochs": 5}},
    ),
    # One H100/H200-class GPU: Appendix B.9's CIFAR-10 setting (CIFAR stem, LARS lr 1.0 with linear scaling,
    # temperature 0.5, colour strength 0.5, no blur) at its full 100 epochs and all 50,000 images, with
    # ResNet-18 x1 in place of ResNet-50 and half its batch, so that a run takes minutes: ~3 min of training
    # at the ~27,000 images/s train() measured on an H200 (registry/estimate.py), i.e. 0.6 GPU-hours for
    # temperature_norm's 12 runs, ~5 for augment_pairs' 98; dearer by structure, model_width (ResNet-152, 4x
    # widths: ~27) and batch_epochs (up to 800 epochs: ~18). Linear evaluation keeps B.6's 90 epochs: it
    # trains on features extracted once, seconds on a GPU. Two seeds, so that a report can tell a ranking
    # from seed noise.
    Scale(
        name="gpu",
        summary="a few GPU-hours per typical ablation on one H100/H200-class GPU: all of CIFAR-10 (50,000 train "
                "/ 10,000 test images), ResNet-18 (depth kept where ablated) x1 with the CIFAR stem, batch /2, "
                "100 epochs, kNN + linear evaluation (90 epochs), 2 seeds",
        purpose="trends at the paper's CIFAR-10 length on one GPU in a few hours, two seeds to tell them "
                "from noise",
        base=cifar10_base,
        hardware="gpu",
        defaults={"encoder.name": "resnet18"},
        batch_size_factor=1 / 2,       # 1024 -> 512; Figure 9's 256..8192 -> 128..4096
        fixed={"eval.protocols": ("knn", "linear"), "eval.linear_epochs": PAPER_LINEAR_EVAL_EPOCHS},
        seeds=2,
    ),
    Scale(
        name="paper",
        summary="the paper's setting (Section 2.3) for a GPU cluster: ImageNet, ResNet-50, batch 4096, "
                "100 epochs, LARS, linear evaluation for 90 epochs",
        purpose="the paper's setting on a GPU cluster (SLURM): the values to set beside the published ones",
        base=imagenet_base,
        hardware="gpu",
    ),
)

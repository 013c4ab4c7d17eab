"""The paper's default settings as functions returning a frozen `RunConfig`; every ablation starts from one.

Paper, Section 2.3 ("Default setting"): "we use ResNet-50 as the base encoder network, and a 2-layer MLP
projection head to project the representation to a 128-dimensional latent space. As the loss, we use
NT-Xent, optimized using LARS with learning rate of 4.8 (= 0.3 x BatchSize/256) and weight decay of
10^-6. We train at batch size 4096 for 100 epochs. Furthermore, we use linear warmup for the first 10
epochs, and decay the learning rate with the cosine decay schedule without restarts."

Which base a run starts from is the scale's choice (experiments/scales.py): `imagenet_base` at `paper`
scale, `cifar10_base` at `gpu`, `cpu` and `smoke` scale. A declaration never repeats these values; it names
only what its ablation fixes differently (`Experiment.base`) and what it varies (`Experiment.axes`).
"""
from __future__ import annotations

from simclr_core.config import RunConfig

# Linear evaluation as in Appendix B.6: 90 epochs on frozen features.
PAPER_LINEAR_EVAL_EPOCHS = 90


def imagenet_base() -> RunConfig:
    """Section 2.3 on ImageNet: ResNet-50, batch 4096, 100 epochs, LARS at 0.3 x B/256, temperature 0.1.

    Augmentation (Appendix A): crop (+flip), colour distortion of strength s = 1, Gaussian blur.
    The temperature is not restated in Section 2.3; 0.1 is Table 5's best and the official code's default.
    """
    return RunConfig().with_overrides({
        "data.dataset": "imagenet",
        "augment.ops": ("crop", "color", "blur"),
        "augment.color_strength": 1.0,
        "encoder.name": "resnet50", "encoder.width": 1.0, "encoder.global_bn": True,
        "head.kind": "nonlinear", "head.out_dim": 128,
        "loss.kind": "nt_xent", "loss.temperature": 0.1, "loss.normalize": True,
        # base_lr None: the paper's constant for the scaling (0.3 linear, 0.075 sqrt; Appendix B.1).
        "optim.name": "lars", "optim.lr_scaling": "linear", "optim.base_lr": None,
        "optim.weight_decay": 1e-6, "optim.warmup_epochs": 10.0,
        "batch_size": 4096, "epochs": 100.0,
        "eval.protocols": ("linear",), "eval.linear_epochs": PAPER_LINEAR_EVAL_EPOCHS,
    })


def cifar10_base() -> RunConfig:
    """Appendix B.9 on CIFAR-10: ResNet-50 with the CIFAR stem, batch 1024, 100 epochs, temperature 0.5.

    "we replace the first 7x7 Conv of stride 2 with 3x3 Conv of stride 1, and also remove the first max
    pooling operation. For data augmentation, we use the same Inception crop (flip and resize to 32x32) as
    ImageNet, and reduce color distortion strength to 0.5. [...] we do not use Gaussian blur". Batch 1024 is
    B.9's best model; B.9 tunes the LARS learning rate in {0.5, 1.0, 1.5} (linear scaling): 1.0 is the
    middle of that grid and the official README's CIFAR-10 value. 100 epochs is the ablations' length.
    """
    return RunConfig().with_overrides({
        "data.dataset": "cifar10",
        "augment.ops": ("crop", "color"),
        "augment.color_strength": 0.5,
        "encoder.name": "resnet50", "encoder.width": 1.0, "encoder.stem": "cifar",
        "head.kind": "nonlinear", "head.out_dim": 128,
        "loss.kind": "nt_xent", "loss.temperature": 0.5, "loss.normalize": True,
        "optim.name": "lars", "optim.lr_scaling": "linear", "optim.base_lr": 1.0,
        "optim.weight_decay": 1e-6, "optim.warmup_epochs": 10.0,
        "batch_size": 1024, "epochs": 100.0,
        "eval.protocols": ("knn", "linear"),
    })


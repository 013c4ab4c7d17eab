"""Frozen, typed configuration of one SimCLR run: every knob the paper ablates, with the paper's defaults.

A `RunConfig` is plain data. `validate()` checks every name against the registries of the modules that
implement it (augmentation ops, encoders, heads, losses, optimisers, datasets) and every value against
its valid range, so bad input fails before any data is loaded or any step is run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Mapping

from simclr_core.trackers import TRACKERS
from simclr_core.validation import ConfigError, closest, require_choice, require_range

# Bump when a default's meaning changes, so stored results made under the old meaning are not reused.
CONFIG_VERSION = 1
ENCODER_WIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


DATA_LOADERS = ("auto", "resident", "stream")
# The largest whole number a config holds: a seed or count plus the offsets added to it stays a 64-bit integer.
MAX_WHOLE_NUMBER = 2**62
# What a run trains: "simclr", the paper's method (two views per image, the contrastive loss through the head
# g(.)); "supervised", the paper's supervised baselines (Table 1, Table B.3, Figure 7): one augmented view per
# image, a linear classifier on h trained with cross-entropy on the labels; head and loss settings are unused.
METHODS = ("simclr", "supervised")


@dataclass(frozen=True)
class DataConfig:
    # "cifar10_subset" is the class-balanced subset shipped in the repo (no network needed).
    dataset: str = "cifar10_subset"
    # Local files for the dataset (folder of parquet/arrow files, image folder, or a single file);
    # None -> $SIMCLR_DATA_DIR, then the hub id when online.
    data_dir: str | None = None
    # Side of the (square) training views; None -> the dataset's native size (32 for CIFAR).
    image_size: int | None = None
    # Use only this many training / test images (a fixed, class-balanced, seeded choice); None -> all.
    train_limit: int | None = None
    test_limit: int | None = None
    # "resident": decode the split once into one uint8 tensor of squares; "stream": read encoded images and
    # decode them a few batches ahead, cropping each view from the original image (data/feed.py);
    # "auto": stream the photo collections (imagenet, imagefolder, parquet), keep the others resident.
    loader: str = "auto"
    # The column of parquet/arrow splits that holds the labels; None -> the first of label, fine_label, labels, cls
    # (a split with none of them has no labels: it can be pretrained on, not classified).
    label_column: str | None = None


@dataclass(frozen=True)
class AugmentConfig:
    # The paper's vocabulary: crop, cutout, color, sobel, noise, blur, rotate (+ flip, grayscale as parts), and
    # Appendix B.2's equalize, solarize, motion_blur.
    ops: tuple[str, ...] = ("crop", "color")
    # Figure 5 protocol: crop (+resize) on both branches first, then the other ops on one branch only.
    one_branch: bool = False
    # The paper's s; 0.5 for CIFAR-10 (Appendix B.9), 1.0 for ImageNet.
    color_strength: float = 0.5
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    # Cutout: a square of this fraction of the image side, placed uniformly at random.
    cutout_fraction: float = 0.5
    # Gaussian noise std on [0, 1] pixels, drawn per sample uniformly from this range.
    noise_std: tuple[float, float] = (0.0, 0.1)
    # Probability that a view gets the op when it is in `ops` (1.0: every view, Figure 4/5's protocol).
    # rotate: a rotated view turns by 90, 180 or 270 degrees with equal odds, so P(k quarter turns) is
    # 1 - rotate_prob for k = 0 and rotate_prob / 3 for k = 1, 2, 3 (0.75: k uniform over {0, 1, 2, 3}).
    sobel_prob: float = 1.0
    noise_prob: float = 1.0
    rotate_prob: float = 1.0
    # Appendix B.2's broader policy adds "additional color distortion (equalize, solarize), and motion blur"
    # without their probabilities: each one's probability when it is in `ops`, solarize's threshold on [0, 1]
    # pixels, and the motion's length as a fraction of the image side (as blur's kernel: 10%).
    equalize_prob: float = 0.2
    solarize_prob: float = 0.2
    solarize_threshold: float = 0.5
    motion_blur_prob: float = 0.2
    motion_blur_fraction: float = 0.1
    # Multi-crop (SwAV, Caron et al. 2020; not one of the paper's ablations): this many extra small views per
    # image (an even number; 0 = the paper's two views), each contrasted with both full-size views.
    local_crops: int = 0
    # Side of the small views; None -> half the training view's side (16 px at 32, 112 at 224).
    local_crop_size: int | None = None
    # Area fraction of the image each small view crops (SwAV's (0.05, 0.14) at 224 px).
    local_crop_scale: tuple[float, float] = (0.05, 0.14)

    def local_crop_side(self, image_size: int) -> int:
        """Side of multi-crop's small views when the full-size views have side `image_size`."""
        return self.local_crop_size if self.local_crop_size is not None else max(1, image_size // 2)


@dataclass(frozen=True)
class EncoderConfig:
    name: str = "resnet18"
    # Channel multiplier of every layer: the paper's 1x/2x/4x, plus 0.25x/0.5x for CPU-scale ablations.
    width: float = 1.0
    # "auto": CIFAR stem (3x3 conv, stride 1, no max-pool) for images <= 64 px, ImageNet stem otherwise.
    stem: str = "auto"
    # BatchNorm statistics over all processes (the paper's global BN); ignored with one process.
    global_bn: bool = True
    # Synchronise BN over groups of this many processes; None -> all processes.
    global_bn_group_size: int | None = None


@dataclass(frozen=True)
class HeadConfig:
    # none | linear | nonlinear | v2 (SimCLRv2's deeper 3-layer head)
    kind: str = "nonlinear"
    # Width of z; None -> the encoder's feature width (z as wide as h).
    out_dim: int | None = 128
    # None -> the encoder's feature width, as in the paper.
    hidden_dim: int | None = None


@dataclass(frozen=True)
class LossConfig:
    # nt_xent | nt_logistic | margin_triplet (the paper's) | dcl (decoupled NT-Xent, Yeh et al. 2022)
    kind: str = "nt_xent"
    temperature: float = 0.5
    # l2-normalise projections before the similarity (Table 5 ablates this).
    normalize: bool = True
    semi_hard: bool = False
    # Margin of the triplet loss (Appendix B.10 tunes it in {0, 0.4, 0.8, 1.6}).
    margin: float = 0.4


@dataclass(frozen=True)
class OptimConfig:
    # lars | sgd | adam | adamw
    name: str = "lars"
    # linear: lr = base_lr * batch_size / 256; sqrt: lr = base_lr * sqrt(batch_size).
    lr_scaling: str = "linear"
    # None -> the paper's constant for the scaling: 0.3 (linear) or 0.075 (sqrt).
    base_lr: float | None = None
    momentum: float = 0.9
    # Coupled L2 weight decay (added to the gradient) as in the official LARS; not applied to biases/BN.
    weight_decay: float = 1e-6
    trust_coefficient: float = 1e-3
    warmup_epochs: float = 10.0


@dataclass(frozen=True)
class EvalConfig:
    # Which evaluations run at the end of training: knn | linear | finetune | transform_probe | transfer |
    # supervised (method=supervised runs: their own classifier)
    protocols: tuple[str, ...] = ("knn",)
    knn_k: int = 200
    knn_temperature: float = 0.1
    linear_epochs: int = 100
    linear_batch_size: int = 256
    linear_lr: float = 0.1
    # Train the linear classifier on random crop + flip views passed through the frozen encoder in every epoch, as
    # the paper did on ImageNet (Appendix B.6, B.5), instead of on features of the unaugmented training images
    # extracted once: eval.linear_epochs forward passes over the training split instead of one
    # (simclr_core/evaluate/linear_augmented.py). Transfer's linear evaluation (Table 8) stays on fixed features,
    # as the paper's logistic regression was.
    linear_augment: bool = False
    # Label fractions for fine-tuning (the paper's 1% and 10%).
    finetune_fractions: tuple[float, ...] = (0.01, 0.1)
    finetune_epochs: int = 30
    finetune_batch_size: int = 256
    # The paper fine-tunes with 0.05 x B/256 (Appendix B.5); this is the lr at finetune_batch_size.
    finetune_lr: float = 0.05
    # Fixed label subsets, one file per entry of finetune_fractions (in its order), e.g. the paper's published
    # ImageNet 1% / 10% lists; () -> class-balanced subsets drawn with the run's seed. A file lists one training
    # image per line, by its stored path or a tail of it, or (a file of integers) by its row in the training
    # split: simclr_core/evaluate/subset_files.py.
    finetune_subset_files: tuple[str, ...] = ()
    # Also train a newly initialised encoder of the same architecture (the run's seed) on the same labelled images
    # with the same schedule: the supervised baseline trained from scratch (finetune_scratch_top1_<pct>, ...).
    finetune_scratch: bool = False
    # Evaluate kNN every this many epochs during training (0 = only at the end).
    knn_every_epochs: int = 0
    # transform_probe (Table 3): the transformations an MLP on frozen h and g(h) learns to tell apart
    # (color, rotation, noise, sobel), and how that MLP trains (SGD with Nesterov momentum, cosine decay).
    transform_tasks: tuple[str, ...] = ("color", "rotation", "noise", "sobel")
    transform_epochs: int = 30
    transform_batch_size: int = 256
    transform_lr: float = 0.1
    # transfer (Table 8): the dataset the frozen (linear) or fine-tuned encoder is evaluated on, a name of the data
    # catalog (simclr_core/data/catalog.py: DATASETS or TRANSFER_DATASETS), and which of "linear" / "finetune"
    # run; they train like eval.linear_* and eval.finetune_* (all labels). Its files: eval.transfer_data_dir, else
    # $SIMCLR_DATA_DIR/<name>, else the dataset's Hub id. How its images are read, as data.loader: "auto" (the
    # catalog's choice: photo collections of varying size stream, fixed-size sets are decoded once and held),
    # "resident" or "stream".
    transfer_dataset: str = "cifar100"
    transfer_protocols: tuple[str, ...] = ("linear", "finetune")
    transfer_data_dir: str | None = None
    transfer_loader: str = "auto"
    # With "finetune" among transfer_protocols, also fine-tune a newly initialised encoder of the run's architecture
    # on the transfer dataset with the same schedule: Table 8's "Random init" row (transfer_scratch_top1, ...).
    transfer_scratch: bool = False


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: str = "simclr"
    # Global batch size N (2N views per step), over all processes.
    batch_size: int = 256
    epochs: float = 100.0
    # Stop after this many optimiser steps (the schedule still spans `epochs`); None -> all steps.
    max_steps: int | None = None
    seed: int = 0
    # auto: bf16 where the device supports it (CUDA with bf16, CPU with AVX-512 bf16), else fp32.
    precision: str = "auto"
    channels_last: bool = True
    # torch.compile of the model (simclr_core/compiling.py): auto = on for CUDA, off on CPUs; speed only.
    compile: str = "auto"
    # Each step's views made while the previous step runs (simclr_core/augment/ahead.py): auto = on for CUDA,
    # off on CPUs; speed only.
    views_ahead: str = "auto"
    checkpoint_every_steps: int = 200
    log_every_steps: int = 10
    # Accelerate trackers, e.g. ("tensorboard",).
    trackers: tuple[str, ...] = ()
    config_version: int = CONFIG_VERSION

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return _from_plain(cls, data, prefix="")

    def with_overrides(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """Apply dotted overrides such as {"loss.temperature": 0.1}; "__" may stand for ".". Unknown keys raise."""
        cfg = self
        for key, value in overrides.items():
            cfg = _set_path(cfg, key.replace("__", ".").split("."), value, full_key=key)
        return cfg

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> values, e.g. {"loss.temperature": 0.5, ...}."""
        out: dict[str, Any] = {}

        def walk(obj: Any, prefix: str) -> None:
            for f in fields(obj):
                value = getattr(obj, f.name)
                if is_dataclass(value):
                    walk(value, f"{prefix}{f.name}.")
                else:
                    out[f"{prefix}{f.name}"] = value

        walk(self, "")
        return out

    # ---- derived values ---------------------------------------------------------------------
    def peak_lr(self) -> float:
        """Peak learning rate: `linear` 0.3 x B/256 or `sqrt` 0.075 x sqrt(B) unless optim.base_lr is set."""
        from simclr_core.optim import scaled_lr

        return scaled_lr(self.batch_size, self.optim.lr_scaling, self.optim.base_lr)

    # ---- validation -------------------------------------------------------------------------
    def _validate_streamed(self) -> None:
        """What the streamed data path (data.loader, data/feed.py) cannot do, refused before any data is read."""
        from simclr_core.data.feed import resolve_loader

        d, a = self.data, self.augment
        if resolve_loader(d) != "stream":
            return
        why = f"data.loader={d.loader!r} streams {d.dataset!r}"
        if d.train_limit is not None or d.test_limit is not None:
            given = [(split, limit) for split, limit in (("train", d.train_limit), ("test", d.test_limit))
                     if limit is not None]
            limits = " ".join(f"data.{split}_limit={limit}" for split, limit in given)
            unset = " ".join(f"data.{split}_limit=none" for split, _ in given)
            raise ConfigError(f"{why}, which reads whole splits, so {limits} need{'s' if len(given) == 1 else ''} "
                              f"data.loader=resident: add "
                              f"{unset} (all images) or data.loader=resident (decodes the split ahead)")
        if "crop" in a.ops and a.ops[0] != "crop" and not a.one_branch:
            raise ConfigError(f"{why}: augment.ops={a.ops!r} must start with 'crop' (each view is cropped from its "
                              "own image first), or leave 'crop' out")

    def _validate_method(self) -> None:
        require_choice("method", self.method, METHODS)
        if self.method == "supervised":
            if self.augment.local_crops:
                raise ConfigError(f"augment.local_crops={self.augment.local_crops} needs method='simclr': a "
                                  "supervised run trains on one view per image; set augment.local_crops=0")
            if self.augment.one_branch:
                raise ConfigError("augment.one_branch=True needs method='simclr': a supervised run has one view "
                                  "per image, not two branches; set augment.one_branch=false")
            if "transform_probe" in self.eval.protocols:
                raise ConfigError("eval.protocols 'transform_probe' compares h with the projection head's g(h), and "
                                  "method='supervised' trains no projection head (its head is the classifier); "
                                  "use method=simclr for Table 3's probe")
        elif "supervised" in self.eval.protocols:
            raise ConfigError("eval.protocols 'supervised' scores the classifier that a supervised run trains, and "
                              f"method={self.method!r} trains none; use method=supervised, or evaluate the encoder "
                              "with 'linear' (a classifier trained on frozen features)")

    def validate(self) -> "RunConfig":
        """Raise ConfigError on the first unknown name or out-of-range value; return self otherwise."""
        from simclr_core.augment import validate_augment_config
        from simclr_core.augment.ahead import VIEWS_AHEAD_MODES
        from simclr_core.compiling import COMPILE_MODES
        from simclr_core.data import DATASETS
        from simclr_core.evaluate.protocols import PROTOCOLS
        from simclr_core.evaluate.subset_files import require_fractions_and_files
        from simclr_core.evaluate.transfer import require_transfer
        from simclr_core.evaluate.transform_probe import require_tasks
        from simclr_core.losses import LOSSES
        from simclr_core.models import HEAD_KINDS, list_encoders
        from simclr_core.optim import OPTIMIZERS

        d, a, e, h, l, o, ev = self.data, self.augment, self.encoder, self.head, self.loss, self.optim, self.eval
        _require_whole_numbers_in_bounds(self)
        require_range("seed", self.seed, low=0)
        require_choice("data.dataset", d.dataset, DATASETS)
        if d.dataset == "cifar10_subset" and d.data_dir is not None:
            raise ConfigError(f"data.data_dir={d.data_dir!r} does not apply to data.dataset='cifar10_subset', "
                              "which is embedded in the package; for CIFAR-10 from files use "
                              "data.dataset=cifar10 data.data_dir=DIR, or drop data.data_dir")
        require_choice("data.loader", d.loader, DATA_LOADERS)
        if d.label_column is not None and (not isinstance(d.label_column, str) or not d.label_column.strip()):
            raise ConfigError(f"data.label_column={d.label_column!r} must name a column of the dataset's parquet or "
                              "arrow files, e.g. data.label_column=target (or none: the first of label, fine_label, "
                              "labels, cls)")
        if d.label_column is not None and d.dataset in ("imagefolder", "cifar10_subset"):
            raise ConfigError(f"data.label_column={d.label_column!r} does not apply to data.dataset={d.dataset!r}, "
                              "whose labels are its class folders; it names a column of parquet or arrow files")
        if d.image_size is not None:
            require_range("data.image_size", d.image_size, low=8)
        for name in ("train_limit", "test_limit"):
            if getattr(d, name) is not None:
                require_range(f"data.{name}", getattr(d, name), low=2)

        validate_augment_config(a)
        self._validate_streamed()

        require_choice("encoder.name", e.name, list_encoders())
        require_choice("encoder.width", e.width, ENCODER_WIDTHS)
        require_choice("encoder.stem", e.stem, ("auto", "cifar", "imagenet"))
        if e.global_bn_group_size is not None:
            require_range("encoder.global_bn_group_size", e.global_bn_group_size, low=1)

        require_choice("head.kind", h.kind, HEAD_KINDS)
        if h.out_dim is not None:
            require_range("head.out_dim", h.out_dim, low=1)
        if h.hidden_dim is not None:
            require_range("head.hidden_dim", h.hidden_dim, low=1)

        require_choice("loss.kind", l.kind, LOSSES)
        require_range("loss.temperature", l.temperature, low=0, low_inclusive=False)
        require_range("loss.margin", l.margin, low=0)
        if l.semi_hard and l.kind in ("nt_xent", "dcl"):
            raise ConfigError("loss.semi_hard=True needs loss.kind 'nt_logistic' or 'margin_triplet' "
                              "(NT-Xent weighs every negative by its softmax; the paper mines only for the others)")

        require_choice("optim.name", o.name, OPTIMIZERS)
        require_choice("optim.lr_scaling", o.lr_scaling, ("linear", "sqrt"))
        if o.base_lr is not None:
            require_range("optim.base_lr", o.base_lr, low=0, low_inclusive=False)
        require_range("optim.momentum", o.momentum, low=0, high=1, high_inclusive=False)
        require_range("optim.weight_decay", o.weight_decay, low=0)
        require_range("optim.trust_coefficient", o.trust_coefficient, low=0, low_inclusive=False)
        require_range("optim.warmup_epochs", o.warmup_epochs, low=0)

        for p in ev.protocols:
            require_choice("eval.protocols", p, PROTOCOLS)
        require_range("eval.knn_k", ev.knn_k, low=1)
        require_range("eval.knn_temperature", ev.knn_temperature, low=0, low_inclusive=False)
        require_range("eval.linear_epochs", ev.linear_epochs, low=1)
        require_range("eval.linear_batch_size", ev.linear_batch_size, low=1)
        require_range("eval.linear_lr", ev.linear_lr, low=0, low_inclusive=False)
        for frac in ev.finetune_fractions:
            require_range("eval.finetune_fractions", frac, low=0, high=1, low_inclusive=False)
        require_fractions_and_files(ev.finetune_fractions, ev.finetune_subset_files,
                                    needed="finetune" in ev.protocols)
        require_range("eval.finetune_epochs", ev.finetune_epochs, low=1)
        require_range("eval.finetune_batch_size", ev.finetune_batch_size, low=2)
        require_range("eval.finetune_lr", ev.finetune_lr, low=0, low_inclusive=False)
        require_range("eval.knn_every_epochs", ev.knn_every_epochs, low=0)
        require_tasks("eval.transform_tasks", ev.transform_tasks)
        require_range("eval.transform_epochs", ev.transform_epochs, low=1)
        require_range("eval.transform_batch_size", ev.transform_batch_size, low=1)
        require_range("eval.transform_lr", ev.transform_lr, low=0, low_inclusive=False)
        require_transfer(ev.transfer_dataset, ev.transfer_protocols)
        if ev.transfer_scratch and "transfer" in ev.protocols and "finetune" not in ev.transfer_protocols:
            raise ConfigError(f"eval.transfer_scratch=True fine-tunes a newly initialised network as the transfer "
                              f"protocol 'finetune' does, which eval.transfer_protocols={ev.transfer_protocols!r} "
                              "leaves out: add 'finetune' to it, or set eval.transfer_scratch=False")
        require_choice("eval.transfer_loader", ev.transfer_loader, DATA_LOADERS)

        self._validate_method()
        require_range("batch_size", self.batch_size, low=2)
        require_range("epochs", self.epochs, low=0, low_inclusive=False)
        if self.max_steps is not None:
            require_range("max_steps", self.max_steps, low=1)
        require_choice("precision", self.precision, ("auto", "no", "bf16", "fp16"))
        require_choice("compile", self.compile, COMPILE_MODES)
        require_choice("views_ahead", self.views_ahead, VIEWS_AHEAD_MODES)
        require_range("checkpoint_every_steps", self.checkpoint_every_steps, low=1)
        require_range("log_every_steps", self.log_every_steps, low=1)
        for t in self.trackers:
            require_choice("trackers", t, TRACKERS)
        return self


# ---- helpers -------------------------------------------------------------------------------------
def _require_whole_numbers_in_bounds(obj: Any, prefix: str = "") -> None:
    """Every whole number of the config within MAX_WHOLE_NUMBER: beyond it a size, a count or a seed overflows the
    64-bit integers tensors and random generators take (batch_size=10**20 failed inside the memory estimate)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            _require_whole_numbers_in_bounds(value, f"{prefix}{f.name}.")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WHOLE_NUMBER:
            raise ConfigError(f"{prefix}{f.name}={value!r} is beyond any size, count or seed a run can take: "
                              f"whole numbers here lie within ±2**62")


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v) for v in obj]
    return obj


def _coerce(field_type: Any, value: Any, key: str) -> Any:
    """Coerce JSON/CLI values to the field's declared type (tuples from lists, floats from ints; "none" on the
    command line, None, is the empty tuple for a tuple field: `eval.protocols=none` evaluates nothing)."""
    text = str(field_type)
    if value is None:
        return () if text.startswith("tuple") and "None" not in text else None
    if text.startswith("tuple"):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} must be a list")
        inner = "float" if "float" in text else ("int" if "int" in text else "str")
        conv = {"float": float, "int": int, "str": str}[inner]
        try:
            items = tuple(conv(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}={value!r}: every element must be a {inner}") from exc
        if inner == "float" and not all(map(math.isfinite, items)):
            raise ConfigError(f"{key}={value!r}: every element must be a finite number (not nan or inf)")
        return items
    if text.startswith("bool"):
        if isinstance(value, str):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{key}={value!r} must be a boolean (true/false)")
            return lowered in ("true", "1", "yes")
        return bool(value)
    if text.startswith("int"):
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError as exc:
                raise ConfigError(f"{key}={value!r} must be an integer") from exc
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if text.startswith("float"):
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError as exc:
                raise ConfigError(f"{key}={value!r} must be a number") from exc
        elif isinstance(value, int) and not isinstance(value, bool):
            number = float(value)
        else:
            number = value
        if isinstance(number, float) and not math.isfinite(number):   # no step, rate or temperature is nan or inf
            raise ConfigError(f"{key}={value!r} must be a finite number (not nan or inf)")
        return number
    if text.startswith("str") and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be a string")
    return value


def _from_plain(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        meant = [hint for hint in (_meant_key(cls, k, prefix) for k in unknown) if hint]
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"valid keys: {', '.join(prefix + k for k in known)}"
                          + (f"; did you mean {', '.join(map(repr, meant))}?" if meant else ""))
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{name} must be a mapping of its fields")
            kwargs[name] = _from_plain(type(default), value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f.type, value, prefix + name)
    return cls(**kwargs)


def _meant_key(cls: type, name: str, prefix: str) -> str | None:
    """The key a mistyped `name` among the fields of `cls` most likely meant: a field spelt alike, else a field of
    one of its sections (`temperature` for `loss.temperature`)."""
    own = closest(name, [f.name for f in fields(cls)])
    if own is not None:
        return prefix + own
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if is_dataclass(default):
            inner = _meant_key(type(default), name, f"{prefix}{f.name}.")
            if inner is not None:
                return inner
    return None


def _set_path(obj: Any, path: list[str], value: Any, full_key: str) -> Any:
    known = {f.name: f for f in fields(obj)}
    head = path[0]
    if head not in known:
        prefix = full_key[: len(full_key) - len(".".join(path))]
        meant = _meant_key(type(obj), head, prefix)
        raise ConfigError(f"unknown config key {full_key!r}; valid keys here: "
                          f"{', '.join(prefix + k for k in known)}" + (f"; did you mean {meant!r}?" if meant else ""))
    current = getattr(obj, head)
    if len(path) == 1:
        if is_dataclass(current):
            raise ConfigError(f"{full_key!r} is a section; set one of its fields, e.g. "
                              f"{full_key}.{fields(current)[0].name}")
        return replace(obj, **{head: _coerce(known[head].type, value, full_key)})
    if not is_dataclass(current):
        raise ConfigError(f"unknown config key {full_key!r}: {head!r} has no sub-fields")
    return replace(obj, **{head: _set_path(current, path[1:], value, full_key)})

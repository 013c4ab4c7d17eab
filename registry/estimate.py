"""What a planned run costs, before any data is read: steps, views seen, and hours on the scale's hardware.

Cost model: one training step processes 2 x batch_size views (forward + backward), plus multi-crop's small
views, each costing (its side / the full side)^2 of a full-size one. A forward pass alone counts as 1/3 of a
training view. Evaluation (evaluation_view_equivalents): kNN and linear evaluation extract features of train +
test once each (linear evaluation with eval.linear_augment passes the training split through the encoder once per
epoch); fine-tuning trains the whole network on each label fraction for its epochs, then reads the test split; the
transformation probe extracts train + test once per task; transfer reads the transfer
dataset's splits (TRANSFER_IMAGES) once for linear evaluation and fine-tunes on all its labels. kNN monitoring
during training (eval.knn_every_epochs) is part of the pretraining. Heads trained on extracted features cost
next to nothing and are left out.
A view's cost relative to ResNet-50 (1x) at 224 px is the encoder's forward FLOPs ratio: torchvision's
published GFLOPs per 224 px image, times width^2, times the spatial area after the stem (the CIFAR stem
keeps full resolution: a 32 px CIFAR view costs as much as a 128 px ImageNet-stem view).

Rates: MEASURED_RATES holds training throughputs measured with this code, each naming its device and
conditions. A run is timed from the entry of its hardware ("cpu" or "gpu") and arithmetic (bf16 or fp32, as the
run's precision resolves: on a CPU, this machine's, the one a local run uses) closest to it in view cost,
scaled by relative FLOPs from there; FLOPs alone scale badly across model sizes (small 32 px models are
overhead-bound on CPUs and under-fill a GPU's FLOPs far less than a 224 px ResNet-50 would suggest).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

# Training-split sizes, so that plans need no data on disk.
TRAIN_IMAGES = {"cifar10_subset": 5_000, "cifar10": 50_000, "cifar100": 50_000, "stl10": 5_000,
                "imagenet": 1_281_167}
TEST_IMAGES = {"cifar10_subset": 1_000, "cifar10": 10_000, "cifar100": 10_000, "stl10": 8_000,
               "imagenet": 50_000}
# Table 8's transfer datasets: (train, test) images as the paper's protocol uses them (train includes
# validation), from Kornblith et al. 2019, "Do Better ImageNet Models Transfer Better?", Appendix Table A1.
TRANSFER_IMAGES = {"food101": (75_750, 25_250), "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000),
                   "birdsnap": (47_386, 2_443), "sun397": (19_850, 19_850), "stanford_cars": (8_144, 8_041),
                   "fgvc_aircraft": (6_667, 3_333), "dtd": (3_760, 1_880), "oxford_pets": (3_680, 3_669),
                   "caltech101": (3_060, 6_084), "flowers102": (2_040, 6_149)}
FORWARD_VIEW_SHARE = 1 / 3           # a forward pass alone, as a share of a training view's forward + backward
NATIVE_IMAGE_SIZE = {"cifar10_subset": 32, "cifar10": 32, "cifar100": 32, "stl10": 96, "imagenet": 224}
# Forward GFLOPs of one 224 px image at width 1 (torchvision model cards: ResNet*_Weights.IMAGENET1K_V1).
ENCODER_GFLOPS_224 = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51}
CIFAR_STEM_MAX_IMAGE_SIZE = 64
HOURS_UNIT = {"cpu": "CPU-hours", "gpu": "GPU-hours"}


def view_cost(encoder: str, width: float, image_size: int, stem: str) -> float:
    """Forward FLOPs of one view, relative to ResNet-50 (1x) at 224 px; `stem` "cifar" or "imagenet"."""
    effective = 4 * image_size if stem == "cifar" else image_size      # the ImageNet stem downsamples by 4
    gflops = ENCODER_GFLOPS_224.get(encoder, ENCODER_GFLOPS_224["resnet50"])
    return gflops * width ** 2 * (effective / 224) ** 2 / ENCODER_GFLOPS_224["resnet50"]


@dataclass(frozen=True)
class MeasuredRate:
    """A training throughput measured with this code: on which device, for which model, under what conditions."""
    hardware: str            # the scales it times: "cpu" or "gpu"
    device: str
    encoder: str
    width: float
    image_size: int
    stem: str                # "cifar" or "imagenet"
    images_per_s: float      # training images per second, two views each
    conditions: str          # batch, precision, and what the clock covered
    arithmetic: str = "bf16"   # "bf16" (bf16 autocast) or "fp32": which runs it times (planned_arithmetic)

    @property
    def relative_cost(self) -> float:
        return view_cost(self.encoder, self.width, self.image_size, self.stem)

    @property
    def reference_views_per_s(self) -> float:
        """This rate in ResNet-50-1x-224px views per second (what the FLOPs scaling starts from)."""
        return 2 * self.images_per_s * self.relative_cost

    @property
    def setting(self) -> str:
        stem = "CIFAR " if self.stem == "cifar" else ""
        return f"{encoder_title(self.encoder)} x{self.width:g} {stem}{self.image_size} px, {self.conditions}"

    def describe(self) -> str:
        return f"measured on {self.device}: {self.setting}"


# Measured on one NVIDIA H200 by train() itself (augmentation, step and bookkeeping; the resident CIFAR-10
# split on the GPU), bf16 autocast: ~27,000 images/s (benchmarks/RESULTS.md, "The GPU path"). FLOPs-scaling
# the ResNet-50 entry below would have predicted ~16,800.
H200_RESNET18_CIFAR = MeasuredRate("gpu", "one NVIDIA H200", "resnet18", 1.0, 32, "cifar", 27_000.0,
                                   "batch 512, bf16, train()")
# ResNet-50 (1x) at 224 px on one NVIDIA H200: bf16 autocast, channels_last, eager, LARS, batch 256, the step on
# pre-made views (data loading not included): 2,429 images/s.
H200_RESNET50_224 = MeasuredRate("gpu", "one NVIDIA H200", "resnet50", 1.0, 224, "imagenet", 2_429.0,
                                 "batch 256, bf16, the step on pre-made views")
# The 2-core reference CPU (AVX-512 bf16), ResNet-18 x0.25 at 32 px (CIFAR stem), batch 256, bf16 autocast +
# channels_last, whole pipeline (augmentation + step): measured 2026-12-04 as final.json's images_per_s of 33
# cpu-scale runs (temperature_norm and loss_variant, seeds 0-2): mean 857, at most 964 images/s, part of them
# while tests shared the 2 cores. (2026-11-22, before the CPU speed work: 390-447 images/s.)
CPU_REFERENCE = MeasuredRate("cpu", "the 2-core reference CPU", "resnet18", 0.25, 32, "cifar", 857.0,
                             "batch 256, bf16, train()")
# Not an entry: ResNet-18 x1 (the gpu scale's model) on the same CPU trained at 99 images/s (2026-12-07, batch 512,
# bf16, train()'s metrics.jsonl windows over steps 7-36, the machine otherwise idle), 1.9x what FLOPs-scaling
# CPU_REFERENCE predicts (53). As the entry closest in cost it would time the cpu scale's wider and deeper models
# too, and halve model_width's estimate (1.8 -> 1.0 CPU-hours) where its 13 runs took 2.25 measured (Figure 7 in
# README): per FLOP those use this CPU worse than ResNet-18 x1 does, so the gpu scale's runs on a CPU (--allow-cpu)
# are estimated about twice too long instead.
# A 2-core CPU without native bf16 (AMD EPYC, AVX2 only: no AVX-512), where precision "auto" trains in fp32; the
# same model and batch as CPU_REFERENCE, whole pipeline: measured 2026-12-05 as final.json's images_per_s of 10
# cpu-scale runs (temperature_norm and loss_variant, seed 0): mean 249, at most 289 images/s (the first two alone:
# 280 and 289; the other eight while a test job shared the 2 cores), 3.4x below CPU_REFERENCE's mean.
CPU_WITHOUT_BF16 = MeasuredRate("cpu", "a 2-core CPU without native bf16 (AVX2)", "resnet18", 0.25, 32, "cifar",
                                249.0, "batch 256, fp32, train()", arithmetic="fp32")
MEASURED_RATES: tuple[MeasuredRate, ...] = (H200_RESNET18_CIFAR, H200_RESNET50_224, CPU_REFERENCE, CPU_WITHOUT_BF16)

PAPER_GPU_VIEWS_PER_S = H200_RESNET50_224.reference_views_per_s     # 4,858


@dataclass(frozen=True)
class Estimate:
    steps: int
    views: int
    # Cost of one view relative to ResNet-50 (1x) at 224 px.
    relative_cost: float
    hours: float
    # The measured rate the hours were scaled from.
    rate: MeasuredRate
    # The share of `hours` spent pretraining (the rest evaluates): runs of one pretraining pay it once.
    pretrain_hours: float = 0.0


def encoder_title(name: str) -> str:
    """"resnet18" -> "ResNet-18"."""
    return f"ResNet-{name[len('resnet'):]}" if name.startswith("resnet") else name


def view_side(cfg: RunConfig) -> int:
    """Side of a training view as the run resolves it: data.image_size or the dataset's native size; for folders
    and parquet files (no native size) registry/run_memory.py's, which may read a first image's header."""
    size = cfg.data.image_size or NATIVE_IMAGE_SIZE.get(cfg.data.dataset)
    if size:
        return size
    from registry.run_memory import view_side as data_view_side

    return data_view_side(cfg)


def view_geometry(cfg: RunConfig) -> tuple[int, str]:
    """(side of a training view, stem "cifar" or "imagenet") as the run resolves them, without decoding data."""
    size = view_side(cfg)
    stem = cfg.encoder.stem
    if stem == "auto":
        stem = "cifar" if size <= CIFAR_STEM_MAX_IMAGE_SIZE else "imagenet"
    return size, stem


def split_sizes(cfg: RunConfig) -> tuple[int, int]:
    """(training images, test images) the run reads, after data.train_limit / data.test_limit. A split whose files
    are local is counted (a listing, the files' footers): a folder or parquet files, and a named dataset's local
    copy too, which may hold fewer images than the catalog's (ImageNet's class folders of a partial download); else
    the catalog's count, and where it has none, ImageNet's size."""
    from simclr_core.data.feed import local_split_sizes     # imports torch: not at import time (`report`)

    train, test = local_split_sizes(cfg.data)
    dataset = cfg.data.dataset
    train = train or TRAIN_IMAGES.get(dataset) or TRAIN_IMAGES["imagenet"]
    test = test or TEST_IMAGES.get(dataset) or TEST_IMAGES["imagenet"]
    if cfg.data.train_limit:
        train = min(train, cfg.data.train_limit)
    if cfg.data.test_limit:
        test = min(test, cfg.data.test_limit)
    return train, test


def relative_view_cost(cfg: RunConfig) -> float:
    """Forward FLOPs of one view of `cfg`'s encoder, relative to ResNet-50 (1x) at 224 px."""
    return view_cost(cfg.encoder.name, cfg.encoder.width, *view_geometry(cfg))


def planned_arithmetic(cfg: RunConfig, hardware: str) -> str:
    """"bf16" or "fp32": the arithmetic `cfg` trains in on `hardware`, to pick the rate that times it. On a CPU
    that is this machine's CPU: without native bf16, "auto" trains in fp32 and an explicit "bf16" is emulated
    (no faster), so both take the fp32 rate. On a GPU, fp16 autocast counts as bf16 (the same half-precision
    tensor cores)."""
    from simclr_core.precision import cpu_supports_bf16     # imports torch: not at import time (`report` never does)
    if cfg.precision == "no" or (hardware == "cpu" and not cpu_supports_bf16()):
        return "fp32"
    return "bf16"


def _closest(cost: float, hardware: str, arithmetic: str = "bf16") -> MeasuredRate:
    """The `hardware` entry closest in view cost among those measured in `arithmetic` (if none was, among all
    of `hardware`'s: e.g. no fp32 GPU rate was measured, and the rate text then says bf16)."""
    candidates = [r for r in MEASURED_RATES if r.hardware == hardware]
    if not candidates:
        raise ConfigError(f"no measured rate for hardware {hardware!r}; measured: "
                          f"{', '.join(sorted({r.hardware for r in MEASURED_RATES}))}")
    candidates = [r for r in candidates if r.arithmetic == arithmetic] or candidates
    return min(candidates, key=lambda r: abs(math.log(cost / r.relative_cost)))


def rate_for(cfg: RunConfig, hardware: str) -> MeasuredRate:
    """The measured rate of `hardware`, in the run's arithmetic, whose model is closest to `cfg`'s in view cost."""
    return _closest(relative_view_cost(cfg), hardware, planned_arithmetic(cfg, hardware))


def reference_views_per_s(hardware: str) -> float:
    """ResNet-50-1x-224px views/s of the `hardware` bf16 entry nearest that model: what a device's own rate
    (--gpu-images-per-s, a bf16 figure) replaces."""
    return _closest(1.0, hardware).reference_views_per_s


def estimate(cfg: RunConfig, hardware: str, views_per_s: float | None = None) -> Estimate:
    """Steps, training views and hours of one run of `cfg` on one device of `hardware` ("cpu" or "gpu").

    `views_per_s`: another device's ResNet-50-1x-224px training views per second; every measured rate of
    `hardware` is then scaled by its ratio to the reference device's (reference_views_per_s)."""
    train, test = split_sizes(cfg)
    total_steps = max(1, round(cfg.epochs * (train // cfg.batch_size)))   # as train.total_steps_for
    steps = min(total_steps, cfg.max_steps or total_steps)
    views = views_per_image(cfg) * cfg.batch_size * steps
    cost = relative_view_cost(cfg)
    rate = rate_for(cfg, hardware)
    reference = rate.reference_views_per_s
    if views_per_s:
        reference *= views_per_s / reference_views_per_s(hardware)
    to_hours = cost / reference / 3600
    monitoring = 0.0
    if cfg.eval.knn_every_epochs:
        monitoring = (steps // max(1, train // cfg.batch_size) // cfg.eval.knn_every_epochs
                      * (train + test) * FORWARD_VIEW_SHARE)
    pretrain_hours = (train_view_equivalents(cfg) * cfg.batch_size * steps + monitoring) * to_hours
    eval_hours = evaluation_view_equivalents(cfg, train, test) * to_hours
    return Estimate(steps, views, cost, pretrain_hours + eval_hours, rate, pretrain_hours)


def transfer_split_sizes(cfg: RunConfig) -> tuple[int, int]:
    """(train, test) images of eval.transfer_dataset that the transfer protocol reads, limited like the
    pretraining data (as simclr_core/evaluate/transfer.py does)."""
    train, test = TRANSFER_IMAGES.get(cfg.eval.transfer_dataset, TRANSFER_IMAGES["cifar100"])
    if cfg.data.train_limit:
        train = min(train, cfg.data.train_limit)
    if cfg.data.test_limit:
        test = min(test, cfg.data.test_limit)
    return train, test


def evaluation_view_equivalents(cfg: RunConfig, train: int, test: int) -> float:
    """Training views' worth of compute of the end-of-training evaluation (`train`, `test`: split sizes)."""
    ev, forward = cfg.eval, FORWARD_VIEW_SHARE
    views = 0.0
    for protocol in ev.protocols:
        if protocol == "linear" and ev.linear_augment:     # new views through the encoder in every epoch
            views += (ev.linear_epochs * train + test) * forward
        elif protocol in ("knn", "linear"):
            views += (train + test) * forward
        elif protocol == "finetune":     # a second network, from scratch, with eval.finetune_scratch
            views += (1 + ev.finetune_scratch) * sum(ev.finetune_epochs * math.ceil(fraction * train) + test * forward
                                                     for fraction in ev.finetune_fractions)
        elif protocol == "supervised":
            views += test * forward
        elif protocol == "transform_probe":
            views += len(ev.transform_tasks) * (train + test) * forward
        elif protocol == "transfer":
            transfer_train, transfer_test = transfer_split_sizes(cfg)
            if "linear" in ev.transfer_protocols:
                views += (transfer_train + transfer_test) * forward
            if "finetune" in ev.transfer_protocols:     # twice with eval.transfer_scratch (Table 8's random init)
                views += (1 + ev.transfer_scratch) * (ev.finetune_epochs * transfer_train + transfer_test * forward)
    return views


def views_per_image(cfg: RunConfig) -> int:
    """Views of each training image that the model reads per step: one for a supervised run, else two plus
    multi-crop's small views."""
    return 1 if cfg.method == "supervised" else 2 + cfg.augment.local_crops


def train_view_equivalents(cfg: RunConfig) -> float:
    """Full-size views' worth of compute per training image: the two views plus the small views by area (a
    supervised run's one view)."""
    if cfg.method == "supervised":
        return 1.0
    size = view_side(cfg)
    return 2 + cfg.augment.local_crops * (cfg.augment.local_crop_side(size) / size) ** 2


@dataclass(frozen=True)
class Total:
    """Hours of a set of runs on one device each, and the measured rates they were timed from."""
    runs: int
    hours: float
    rates: Counter      # MeasuredRate -> runs timed from it

    def rate_text(self) -> str:
        """"rate measured on one NVIDIA H200: ResNet-18 x1 ...", with each entry's run count if several."""
        if not self.rates:
            return "no runs"
        by_device: dict[str, list[str]] = {}
        for rate, n in self.rates.most_common():
            by_device.setdefault(rate.device, []).append(
                rate.setting + (f" ({n} run{'s' * (n != 1)})" if len(self.rates) > 1 else ""))
        word = "rate" if len(self.rates) == 1 else "rates"
        return "; ".join(f"{word} measured on {device}: {'; '.join(settings)}" for device, settings in by_device.items())


def total(configs: Iterable[RunConfig], hardware: str, views_per_s: float | None = None,
          paid: Iterable[str] = ()) -> Total:
    """Hours of `configs`, each pretraining counted once (runs differing only in evaluation share it:
    registry/pretraining.py), and not at all where its key is in `paid` (a finished run holds it)."""
    from registry.pretraining import pretraining_key

    hours, rates, runs, pretrained = 0.0, Counter(), 0, set(paid)
    for cfg in configs:
        cost = estimate(cfg, hardware, views_per_s)
        key = pretraining_key(cfg)
        hours += cost.hours - (cost.pretrain_hours if key in pretrained else 0.0)
        pretrained.add(key)
        rates[cost.rate] += 1
        runs += 1
    return Total(runs, hours, rates)


def format_hours(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.1f} min"
    return f"{hours:,.1f} h" if math.isfinite(hours) else "?"


def format_device_hours(hours: float, hardware: str) -> str:
    """"0.62 GPU-hours", "1,234 CPU-hours", "<0.01 CPU-hours (~3 s)": the amount in the hardware's unit."""
    if not math.isfinite(hours):
        return f"? {HOURS_UNIT[hardware]}"
    amount = f"{hours:,.0f}" if hours >= 10 else f"{hours:.1f}" if hours >= 1 else (
        f"{hours:.2f}" if hours >= 0.01 else "<0.01")
    return f"{amount} {HOURS_UNIT[hardware]}" + (f" (~{format_hours(hours)})" if hours < 1 else "")

"""eval.finetune_scratch: the supervised baseline of Table 7, a newly initialised encoder trained on the same labelled
images with the same schedule as the pretrained one's fine-tuning, in the same run."""
from __future__ import annotations

import pytest
import torch

from simclr_core.config import RunConfig
from simclr_core.data.feed import open_feed
from simclr_core.evaluate.finetune import balanced_subset, finetune_eval
from simclr_core.evaluate.frozen import changed_tensors, snapshot_state
from simclr_core.evaluate.protocols import SCRATCH_SEED_OFFSET, run_protocols, scratch_encoder
from simclr_core.models import create_encoder


def config(**overrides) -> RunConfig:
    return RunConfig().with_overrides({
        "data.dataset": "cifar10_subset", "data.train_limit": 200, "data.test_limit": 100,
        "encoder.name": "resnet18", "encoder.width": 0.25, "eval.protocols": ("finetune",),
        "eval.finetune_fractions": (0.1, 0.5), "eval.finetune_epochs": 1, "eval.finetune_batch_size": 16,
        "seed": 3, **overrides}).validate()


def test_the_scratch_encoder_is_a_fresh_one_of_the_run_s_architecture_seeded_apart_from_pretraining():
    cfg = config()
    torch.manual_seed(cfg.seed)                 # as train() seeds the network it pretrains
    pretrained = create_encoder("resnet18", width=0.25, stem="auto", image_size=32)
    state = torch.random.get_rng_state()
    fresh = scratch_encoder(cfg, 32, pretrained)
    assert torch.equal(torch.random.get_rng_state(), state)                  # the run's random state is untouched
    torch.manual_seed(cfg.seed + SCRATCH_SEED_OFFSET)
    expected = create_encoder("resnet18", width=0.25, stem="auto", image_size=32)
    fresh_state, expected_state = fresh.state_dict(), expected.state_dict()
    assert fresh_state.keys() == pretrained.state_dict().keys() == expected_state.keys()
    assert all(torch.equal(fresh_state[k], expected_state[k]) for k in fresh_state)
    conv = next(k for k in fresh_state if k.endswith("conv1.weight"))
    assert not torch.equal(fresh_state[conv], pretrained.state_dict()[conv])


def test_the_baseline_trains_the_fresh_encoder_on_the_same_images_and_leaves_the_rest_as_it_was():
    cfg = config(**{"eval.finetune_scratch": True})
    feed = open_feed(cfg.data, need_test=True, device=torch.device("cpu"))
    torch.manual_seed(0)
    encoder = create_encoder("resnet18", width=0.25, stem="auto", image_size=32)
    before = snapshot_state(encoder)
    both = run_protocols(encoder, feed, cfg, None, ("finetune",))
    assert changed_tensors(encoder, before) == []
    alone = run_protocols(encoder, feed, cfg.with_overrides({"eval.finetune_scratch": False}), None, ("finetune",))
    assert {k: v for k, v in both.items() if not k.startswith("finetune_scratch_")} == alone
    assert sorted(k for k in both if k.startswith("finetune_scratch_")) == [
        "finetune_scratch_top1_10pct", "finetune_scratch_top1_50pct", "finetune_scratch_top5_10pct",
        "finetune_scratch_top5_50pct"]
    # By hand: the fresh encoder fine-tuned like the pretrained one, on the run's draw of 10% of the labels.
    from simclr_core.augment import build_augmentation
    from simclr_core.config import AugmentConfig
    crop = build_augmentation(AugmentConfig(ops=("crop",)), 32, feed.mean, feed.std)
    subset = balanced_subset(feed.train_labels, 0.1, num_classes=feed.num_classes, seed=cfg.seed)
    by_hand = finetune_eval(scratch_encoder(cfg, 32, encoder), feed.train_eval, feed.train_labels, feed.test_eval,
                            feed.test_labels, mean=feed.mean, std=feed.std, num_classes=feed.num_classes,
                            label_fraction=0.1, epochs=1, batch_size=16, lr=cfg.eval.finetune_lr, seed=cfg.seed,
                            augment=crop.first_view, subset=subset)
    assert both["finetune_scratch_top1_10pct"] == pytest.approx(by_hand["finetune_top1"], abs=1e-9)
    assert both["finetune_scratch_top5_10pct"] == pytest.approx(by_hand["finetune_top5"], abs=1e-9)


def test_the_plan_counts_the_second_fine_tuning():
    from registry.estimate import estimate
    cfg = config()
    bare = estimate(cfg.with_overrides({"eval.protocols": ()}), "cpu").hours
    once, twice = (estimate(cfg.with_overrides({"eval.finetune_scratch": on}), "cpu").hours - bare
                   for on in (False, True))
    assert twice == pytest.approx(2 * once, rel=1e-9) and once > 0


def test_fine_tuning_trains_in_the_runs_precision_and_memory_format(monkeypatch):
    """The fine-tuning protocols (and transfer's) pass the run's autocast dtype and channels_last on: fp32 would
    cost 3.7x on a CPU with native bf16, and more on a GPU."""
    import simclr_core.evaluate.protocols as protocols
    import simclr_core.evaluate.transfer as transfer

    seen = []

    def fake_finetune(*args, autocast_dtype=None, channels_last=False, **kwargs):
        seen.append((autocast_dtype, channels_last))
        return {"finetune_top1": 1.0, "finetune_top5": 2.0, "finetune_mean_per_class_acc": 3.0}

    monkeypatch.setattr(protocols, "finetune_eval", fake_finetune)
    monkeypatch.setattr(transfer, "finetune_eval", fake_finetune)
    cfg = config(**{"eval.protocols": ("finetune", "transfer"), "eval.transfer_dataset": "cifar10_subset",
                    "eval.transfer_protocols": ("finetune",), "channels_last": True})
    feed = open_feed(cfg.data, need_test=True, device=torch.device("cpu"))
    encoder = create_encoder("resnet18", width=0.25, stem="auto", image_size=32)
    run_protocols(encoder, feed, cfg, torch.bfloat16, ("finetune", "transfer"))
    assert seen == [(torch.bfloat16, True)] * 3          # two label fractions, one transfer fine-tuning

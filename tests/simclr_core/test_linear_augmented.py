"""Linear evaluation on augmented views (eval.linear_augment, the paper's protocol): with an augmentation that only
normalises it is linear_eval to the number; with crops it trains on views made anew in every epoch through the
frozen encoder, leaves the encoder untouched, and a run stopped at an epoch end and resumed from its saved state ends
with the numbers of one that never stopped."""
from __future__ import annotations

import pytest
import torch

from simclr_core.evaluate.frozen import snapshot_state
from simclr_core.evaluate.linear import linear_eval
from simclr_core.evaluate.linear_augmented import linear_eval_augmented
from simclr_core.validation import ConfigError

from test_evaluate import (MEAN, NUM_CLASSES, STD, BufferMutatingEncoder, assert_same_state, colour_images,
                           small_encoder)

SETTINGS = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES, epochs=6, batch_size=16, lr=0.5, seed=3)


@pytest.fixture(scope="module")
def data():
    return (*colour_images(per_class=24, seed=1), *colour_images(per_class=10, seed=2))


def normalise_only(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (batch.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


class CountingFlip:
    """Random horizontal flips drawn from the generator, normalised; counts the images it made views of."""

    def __init__(self):
        self.images = 0

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self.images += batch.shape[0]
        flipped = torch.rand(batch.shape[0], generator=generator) < 0.5
        return normalise_only(torch.where(flipped.view(-1, 1, 1, 1), batch.flip(-1), batch), generator)


class Recorded:
    """A progress kept in memory: resumes from `state` (None: from the start), records each state saved."""

    def __init__(self, state=None):
        self.state, self.saved = state, []

    def load(self):
        return self.state

    def due(self) -> bool:
        return True

    def save(self, state) -> None:
        self.saved.append(state)


@pytest.mark.parametrize("feature_bn", [False, True])
def test_without_augmentation_it_is_linear_eval(data, feature_bn):
    settings = {**SETTINGS, "feature_bn": feature_bn, "weight_decay": 1e-4}
    assert linear_eval_augmented(small_encoder(), *data, augment=normalise_only, **settings) == \
        linear_eval(small_encoder(), *data, **settings)


def test_every_epoch_makes_new_views_through_the_frozen_encoder(data):
    encoder = small_encoder().train()                               # BN in train mode before the call
    before = snapshot_state(encoder)
    flip = CountingFlip()
    result = linear_eval_augmented(encoder, *data, augment=flip, **SETTINGS)
    assert flip.images == SETTINGS["epochs"] * data[0].shape[0]    # each training image, once per epoch
    assert result["linear_top1"] >= 95.0 and set(result) == {"linear_top1", "linear_top5"}
    assert encoder.training and all(m.training for m in encoder.modules())
    assert_same_state(before, encoder)                              # running statistics too
    assert linear_eval_augmented(encoder, *data, augment=CountingFlip(), **SETTINGS) == result


def test_it_trains_on_the_views_not_on_the_images(data):
    def blank(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros(batch.shape, dtype=torch.float32)

    # Views that carry no class leave a classifier at chance (4 balanced classes), though the images tell them apart.
    assert linear_eval_augmented(small_encoder(), *data, augment=blank, **SETTINGS)["linear_top1"] == 25.0


def test_resumed_from_an_epoch_end_it_ends_as_one_that_never_stopped(data):
    whole = Recorded()
    expected = linear_eval_augmented(small_encoder(), *data, augment=CountingFlip(), progress=whole, **SETTINGS)
    assert [s["epochs_done"] for s in whole.saved] == list(range(1, SETTINGS["epochs"]))
    last = whole.saved[-1]
    for state in (whole.saved[0], whole.saved[3]):
        flip, progress = CountingFlip(), Recorded(state)
        resumed = linear_eval_augmented(small_encoder(), *data, augment=flip, progress=progress, **SETTINGS)
        assert resumed == expected
        assert flip.images == (SETTINGS["epochs"] - state["epochs_done"]) * data[0].shape[0]
        # The classifier, its momentum and both generators after the last saved epoch, as without the stop.
        again = progress.saved[-1]
        assert again["epochs_done"] == last["epochs_done"] and again["step"] == last["step"]
        for name, tensor in last["network"].items():
            assert torch.equal(again["network"][name], tensor), name
        assert torch.equal(again["shuffle_generator"], last["shuffle_generator"])
        assert torch.equal(again["augment_generator"], last["augment_generator"])
        momentum = [v["momentum_buffer"] for v in last["optimizer"]["state"].values()]
        assert all(torch.equal(a["momentum_buffer"], b) for a, b in zip(again["optimizer"]["state"].values(), momentum))


def test_an_encoder_that_changes_is_refused(data):
    with pytest.raises(RuntimeError, match="buffer:forward_count"):
        linear_eval_augmented(BufferMutatingEncoder().eval(), *data, augment=normalise_only, **SETTINGS)


def test_augment_must_be_callable(data):
    with pytest.raises(ConfigError, match="augment="):
        linear_eval_augmented(small_encoder(), *data, augment="crop", **SETTINGS)

"""A fine-tuning saves its state at epoch ends (`progress`), and one resumed from any of those states ends with the
weights, and so the numbers, of one that never stopped; the run's progress file (finetune_progress.py) keeps that
state for the same fine-tuning only."""
from __future__ import annotations

import pytest
import torch

from simclr_core.evaluate import finetune as finetune_module
from simclr_core.evaluate.finetune import finetune_eval
from simclr_core.finetune_progress import PROGRESS_NAME, ProgressFile

from test_evaluate import MEAN, NUM_CLASSES, STD, colour_images, small_encoder

EPOCHS, STEPS_PER_EPOCH = 4, 3      # 48 training images, label fraction 0.5, batches of 8


class Recorded:
    """A progress kept in memory: it resumes from `state` (None: from the start) and records each state saved."""

    def __init__(self, state=None, due: bool = True):
        self.state, self.is_due, self.saved = state, due, []

    def load(self):
        return self.state

    def due(self) -> bool:
        return self.is_due

    def save(self, state) -> None:
        self.saved.append(state)


@pytest.fixture(scope="module")
def data():
    return (*colour_images(per_class=12, seed=1), *colour_images(per_class=10, seed=2))


def fine_tune(data, monkeypatch, progress=None, autocast_dtype=None) -> tuple[dict, dict, int]:
    """finetune_eval's metrics, the fine-tuned network's state at the test pass, and the augmented batches."""
    steps, final = [], {}

    def flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        steps.append(1)
        flipped = torch.rand(batch.shape[0], generator=generator) < 0.5
        batch = torch.where(flipped.view(-1, 1, 1, 1), batch.flip(-1), batch)
        return (batch.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)

    def labelled_features(network, *args, **kwargs):
        final.update({k: v.clone() for k, v in network.state_dict().items()})
        return test_pass(network, *args, **kwargs)

    test_pass = finetune_module.labelled_features
    with monkeypatch.context() as patch:
        patch.setattr(finetune_module, "labelled_features", labelled_features)
        metrics = finetune_eval(small_encoder(seed=5), *data, mean=MEAN, std=STD, num_classes=NUM_CLASSES,
                                label_fraction=0.5, epochs=EPOCHS, batch_size=8, lr=0.5, momentum=0.9, seed=3,
                                augment=flip, autocast_dtype=autocast_dtype, progress=progress)
    return metrics, final, len(steps)


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_a_fine_tuning_resumed_at_any_epoch_end_ends_exactly_as_one_that_never_stopped(data, monkeypatch,
                                                                                     autocast_dtype):
    plain = fine_tune(data, monkeypatch, autocast_dtype=autocast_dtype)
    recorded = Recorded()
    full = fine_tune(data, monkeypatch, recorded, autocast_dtype)
    assert full[0] == plain[0]
    assert_same_state(full[1], plain[1])                         # saving changes nothing
    assert [s["epochs_done"] for s in recorded.saved] == [1, 2, 3]  # never after the last epoch
    assert [s["step"] for s in recorded.saved] == [3, 6, 9]

    for state in recorded.saved:
        metrics, weights, steps = fine_tune(data, monkeypatch, Recorded(state), autocast_dtype)
        assert steps == (EPOCHS - state["epochs_done"]) * STEPS_PER_EPOCH      # only the epochs left ran
        assert_same_state(weights, full[1])
        assert metrics == full[0]


def test_the_saved_state_is_a_copy_that_training_does_not_change(data, monkeypatch):
    recorded = Recorded()
    fine_tune(data, monkeypatch, recorded)
    first, second = recorded.saved[0]["network"], recorded.saved[1]["network"]
    weight = next(k for k, v in first.items() if v.is_floating_point())
    assert not torch.equal(first[weight], second[weight])
    assert recorded.saved[0]["optimizer"]["state"], "the momentum is saved"


def test_nothing_is_saved_where_no_save_is_due(data, monkeypatch):
    recorded = Recorded(due=False)
    fine_tune(data, monkeypatch, recorded)
    assert recorded.saved == []


def test_a_state_from_another_fine_tuning_is_refused(data, monkeypatch):
    recorded = Recorded()
    fine_tune(data, monkeypatch, recorded)
    last = {**recorded.saved[-1], "epochs_done": EPOCHS}              # the last epoch is never saved
    with pytest.raises(ValueError, match="epoch 4, step 9.*4 epochs of 3 steps"):
        fine_tune(data, monkeypatch, Recorded(last))


# ---- the run's progress file ----------------------------------------------------------------------------
KEY = {"step": 2, "weights_sha256": "ab", "device": "cpu", "config": {"seed": 1}, "part": "finetune_10pct",
       "start_sha256": "cd"}


def test_the_progress_file_gives_back_what_it_saved_for_the_same_fine_tuning_and_says_so(tmp_path):
    lines = []
    state = {"epochs_done": 2, "step": 6, "network": {"w": torch.arange(3.0)}}
    carried = []
    ProgressFile(tmp_path, KEY, every_s=0, seconds=lambda: 42.5).save(state)
    loaded = ProgressFile(tmp_path, dict(KEY), say=lines.append, resumed=carried.append).load()
    assert loaded["epochs_done"] == 2 and torch.equal(loaded["network"]["w"], torch.arange(3.0))
    assert carried == [42.5]                                 # the seconds the fine-tuning had taken up to the save
    assert lines == [f"evaluate: finetune_10pct goes on after epoch 2, where an earlier attempt saved it "
                     f"({PROGRESS_NAME})"]


@pytest.mark.parametrize("change, why", [
    ({"part": "finetune_scratch_10pct"}, "part"),
    ({"start_sha256": "ef"}, "starting weights"),
    ({"weights_sha256": "00", "step": 3}, "step, weights"),
    ({"config": {"seed": 2}}, "settings (seed)"),
])
def test_a_progress_file_saved_for_another_fine_tuning_is_set_aside_in_one_line(tmp_path, change, why):
    ProgressFile(tmp_path, KEY).save({"epochs_done": 1, "step": 3})
    lines = []
    key = {**KEY, **change}
    assert ProgressFile(tmp_path, key, say=lines.append).load() is None
    assert lines == [f"evaluate: {PROGRESS_NAME} was saved for other {why}; {key['part']} starts over from its first "
                     "epoch"]


def test_an_unreadable_progress_file_is_set_aside_in_one_line(tmp_path):
    (tmp_path / PROGRESS_NAME).write_bytes(b"not a torch file")
    lines = []
    assert ProgressFile(tmp_path, KEY, say=lines.append).load() is None
    assert len(lines) == 1 and lines[0].startswith(f"evaluate: {PROGRESS_NAME} could not be read (")
    assert lines[0].endswith("; finetune_10pct starts over from its first epoch")


def test_linear_evaluation_on_augmented_views_set_aside_is_not_called_a_fine_tuning(tmp_path):
    """Its lines said 'fine-tuning linear from the start', though linear evaluation never changes the encoder."""
    (tmp_path / PROGRESS_NAME).write_bytes(b"not a torch file")
    lines = []
    assert ProgressFile(tmp_path, {**KEY, "part": "linear"}, say=lines.append).load() is None
    torch.save({"key": KEY, "state": {"epochs_done": 1, "step": 3}}, tmp_path / PROGRESS_NAME)
    assert ProgressFile(tmp_path, {**KEY, "part": "linear"}, say=lines.append).load() is None
    torch.save({"key": KEY, "state": "no state"}, tmp_path / PROGRESS_NAME)
    assert ProgressFile(tmp_path, {**KEY, "part": "linear"}, say=lines.append).load() is None
    assert len(lines) == 3 and all(line.endswith("; linear starts over from its first epoch") for line in lines)
    assert not any("fine-tuning" in line for line in lines), lines


def test_a_save_is_due_once_the_interval_has_passed_since_the_start_or_the_last_save(tmp_path):
    assert ProgressFile(tmp_path, KEY, every_s=0).due()
    waiting = ProgressFile(tmp_path, KEY, every_s=3600)
    assert not waiting.due()

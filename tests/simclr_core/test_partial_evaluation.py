"""A run killed during its final evaluation keeps the protocols it finished, and the fine-tunings a protocol finished
(finetune, transfer), and goes on with the fine-tuning it was in from its last saved epoch: the rerun runs the rest
only, and its final.json holds what an uninterrupted run's does."""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from simclr_core import stop_request
from simclr_core import train as train_module
from simclr_core.checkpoint import load_checkpoint, save_checkpoint
from simclr_core.evaluate import protocols as protocols_module
from simclr_core.evaluate import transfer as transfer_module
from simclr_core.finetune_progress import PROGRESS_NAME
from simclr_core.partial_evaluation import PARTIAL_NAME, PartialEvaluation
from simclr_core.train import train

from test_train import tiny

THREE = {"max_steps": 2, "data.test_limit": 1000, "eval.protocols": ("knn", "linear", "finetune"),
         "eval.linear_epochs": 2, "eval.finetune_fractions": (0.1,), "eval.finetune_epochs": 1,
         "eval.finetune_batch_size": 16}
# What differs between any two sessions: their clocks, and (a session that only evaluates) no training throughput.
TIMINGS = {"pretrain_seconds_this_session", "pretrain_seconds", "pretrain_device_seconds", "eval_seconds",
           "images_per_s"}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, a SLURM time limit or a kill, in the middle of a protocol."""


def count_protocol_runs(monkeypatch, interrupt: str | None = None) -> Counter:
    """Count each protocol's runs; the first run of `interrupt` raises Interrupted instead of finishing."""
    calls: Counter = Counter()
    for name, protocol in list(protocols_module.PROTOCOLS.items()):
        def run(*args, _name=name, _run=protocol.run, **kwargs):
            calls[_name] += 1
            if _name == interrupt:
                raise Interrupted
            return _run(*args, **kwargs)
        monkeypatch.setitem(protocols_module.PROTOCOLS, name, dataclasses.replace(protocol, run=run))
    return calls


def final(run_dir: Path) -> dict:
    return {k: v for k, v in json.loads((run_dir / "final.json").read_text()).items() if k not in TIMINGS}


def interrupted_run(run_dir: Path, monkeypatch, cut: str) -> Counter:
    """train() of the THREE protocols, interrupted in protocol `cut`; each protocol's runs."""
    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch, interrupt=cut)
        with pytest.raises(Interrupted):
            train(tiny(**THREE), run_dir)
    return calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("full") / "run"
    train(tiny(**THREE), run_dir)
    assert not (run_dir / PARTIAL_NAME).exists()
    return final(run_dir)


@pytest.mark.parametrize("cut, before", [("linear", ["knn"]), ("finetune", ["knn", "linear"])])
def test_a_rerun_after_an_interrupted_evaluation_runs_only_the_protocols_left(tmp_path, monkeypatch, capfd,
                                                                               uninterrupted, cut, before):
    run_dir = tmp_path / "run"
    calls = interrupted_run(run_dir, monkeypatch, cut)
    assert calls == Counter({**{name: 1 for name in before}, cut: 1})
    assert not (run_dir / "final.json").exists()
    saved = json.loads((run_dir / PARTIAL_NAME).read_text())["protocols"]
    assert sorted(saved) == sorted(before)
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        train(tiny(**THREE), run_dir)
    left = [name for name in THREE["eval.protocols"] if name not in before]
    assert calls == Counter(left)                              # the finished protocols did not run again
    err = capfd.readouterr().err
    assert (f"evaluate run: {', '.join(before)} already done before the interruption (kept); "
            f"running {', '.join(left)}") in err
    assert final(run_dir) == uninterrupted                     # identical numbers, whatever ran before each protocol
    assert not (run_dir / PARTIAL_NAME).exists()


def test_protocols_saved_for_other_weights_run_again(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    interrupted_run(run_dir, monkeypatch, "linear")
    assert "knn" in json.loads((run_dir / PARTIAL_NAME).read_text())["protocols"]
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        train(tiny(**{**THREE, "max_steps": 3}), run_dir)           # trained one step further: other weights
    assert calls == Counter(["knn", "linear", "finetune"])
    err = capfd.readouterr().err
    assert (f"evaluate run: {PARTIAL_NAME} was saved for other step, weights, settings (max_steps); evaluating "
            "every protocol again") in err
    assert "already done" not in err


def test_protocols_saved_for_a_checkpoint_since_replaced_at_the_same_step_run_again(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    interrupted_run(run_dir, monkeypatch, "linear")
    checkpoint = load_checkpoint(run_dir)
    weight = next(k for k, v in checkpoint["model"].items() if v.is_floating_point())
    checkpoint["model"][weight] += 1e-3                                  # another pretraining, same step and config
    save_checkpoint(run_dir, checkpoint)
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        train(tiny(**THREE), run_dir)
    assert calls == Counter(["knn", "linear", "finetune"])
    assert f"{PARTIAL_NAME} was saved for other weights; evaluating every protocol again" in capfd.readouterr().err


def test_protocols_saved_under_other_evaluation_settings_run_again(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    interrupted_run(run_dir, monkeypatch, "linear")
    capfd.readouterr()

    with monkeypatch.context() as patch:
        calls = count_protocol_runs(patch)
        metrics = train(tiny(**{**THREE, "eval.knn_k": 3}), run_dir)    # the same weights, another kNN
    assert calls["knn"] == 1 and metrics["steps"] == 2
    assert "saved for other settings (eval.knn_k); evaluating every protocol again" in capfd.readouterr().err


# ---- eval_seconds ---------------------------------------------------------------------------------------------
HOUR = 3600.0


def shifted_clock(monkeypatch) -> list[float]:
    """time.perf_counter plus the seconds in the one-item list returned: a test adds to it to make a stretch of the
    evaluation take that long, as every clock train() reads sees it, without waiting."""
    shift, real = [0.0], time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() + shift[0])
    return shift


def test_eval_seconds_counts_each_protocol_once(tmp_path, monkeypatch):
    # final.json added the seconds of the protocols saved in evaluation-partial.json, those of this very attempt
    # included, to this attempt's time: an uninterrupted evaluation reported twice its time.
    shift = shifted_clock(monkeypatch)
    knn = protocols_module.PROTOCOLS["knn"]

    def an_hour_long(*args, **kwargs):
        shift[0] += HOUR
        return knn.run(*args, **kwargs)
    monkeypatch.setitem(protocols_module.PROTOCOLS, "knn", dataclasses.replace(knn, run=an_hour_long))
    metrics = train(tiny(max_steps=2, **{"eval.protocols": ("knn",)}), tmp_path / "run")
    assert HOUR <= metrics["eval_seconds"] < 2 * HOUR


# ---- fine-tunings within a protocol -------------------------------------------------------------------------
# Two fine-tunings (from the pretrained encoder, then from scratch) of 3 epochs of 2 steps each (10% of 256 images,
# batches of 16).
FINETUNES = {"max_steps": 2, "eval.protocols": ("finetune",), "eval.finetune_fractions": (0.1,),
             "eval.finetune_epochs": 3, "eval.finetune_batch_size": 16, "eval.finetune_scratch": True}
STEPS_OF_ONE = 6


def count_augmented_batches(monkeypatch, module, interrupt_at: int | None = None,
                            trainer: str = "finetune_eval") -> list[int]:
    """Count the batches `module`'s `trainer` (a function taking `augment`) augments (in a one-item list); the
    `interrupt_at`-th raises Interrupted instead."""
    count = [0]

    def counting_trainer(*args, augment, _run=getattr(module, trainer), **kwargs):
        def counted(*batch):
            count[0] += 1
            if count[0] == interrupt_at:
                raise Interrupted
            return augment(*batch)
        return _run(*args, augment=counted, **kwargs)
    monkeypatch.setattr(module, trainer, counting_trainer)
    return count


def saving_every_epoch(monkeypatch) -> None:
    """Fine-tunings save their progress at every epoch end (not every few minutes)."""
    monkeypatch.setattr(train_module, "PartialEvaluation",
                        functools.partial(PartialEvaluation, progress_every_s=0))


@pytest.fixture(scope="module", params=["no", "bf16"])
def finetuned(request, tmp_path_factory) -> tuple[str, dict]:
    """(precision, final.json of an uninterrupted run of FINETUNES)."""
    run_dir = tmp_path_factory.mktemp("finetuned") / "run"
    train(tiny(**FINETUNES, precision=request.param), run_dir)
    return request.param, final(run_dir)


def cut_in_scratch_epoch_3(run_dir: Path, monkeypatch, **overrides) -> None:
    """train() of FINETUNES interrupted in the third (last) epoch of the fine-tuning from scratch."""
    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        count_augmented_batches(patch, protocols_module, interrupt_at=STEPS_OF_ONE + 5)
        with pytest.raises(Interrupted):
            train(tiny(**FINETUNES, **overrides), run_dir)


def test_a_fine_tuning_cut_short_goes_on_from_its_last_epoch_end_and_the_finished_one_is_kept(tmp_path, monkeypatch,
                                                                                              capfd, finetuned):
    precision, uninterrupted = finetuned
    run_dir = tmp_path / "run"
    cut_in_scratch_epoch_3(run_dir, monkeypatch, precision=precision)
    saved = json.loads((run_dir / PARTIAL_NAME).read_text())
    assert saved["protocols"] == {} and list(saved["parts"]["finetune"]) == ["finetune_10pct"]
    progress = torch.load(run_dir / PROGRESS_NAME, weights_only=True)
    assert progress["key"]["part"] == "finetune_scratch_10pct" and progress["state"]["epochs_done"] == 2
    capfd.readouterr()

    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        batches = count_augmented_batches(patch, protocols_module)
        train(tiny(**FINETUNES, precision=precision), run_dir)
    assert batches == [2]                                     # the last epoch of the second fine-tuning only
    err = capfd.readouterr().err
    assert ("evaluate run: finetune in part (finetune_10pct) already done before the interruption (kept); running "
            "the rest of finetune") in err
    assert (f"evaluate run: finetune_scratch_10pct goes on after epoch 2, where an earlier attempt saved it "
            f"({PROGRESS_NAME})") in err
    assert final(run_dir) == uninterrupted
    assert not (run_dir / PARTIAL_NAME).exists() and not (run_dir / PROGRESS_NAME).exists()


def test_a_fine_tuning_saved_under_other_settings_starts_over_saying_why(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    cut_in_scratch_epoch_3(run_dir, monkeypatch)
    capfd.readouterr()

    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        batches = count_augmented_batches(patch, protocols_module)
        train(tiny(**{**FINETUNES, "eval.finetune_lr": 0.2}), run_dir)
    assert batches == [2 * STEPS_OF_ONE]                      # both fine-tunings, from their start
    err = capfd.readouterr().err
    assert "saved for other settings (eval.finetune_lr); evaluating every protocol again" in err
    assert (f"evaluate run: {PROGRESS_NAME} was saved for other part, starting weights, settings "
            "(eval.finetune_lr); finetune_10pct starts over from its first epoch") in err
    assert "goes on after" not in err
    assert not (run_dir / PROGRESS_NAME).exists()


def taking_an_hour_a_batch(monkeypatch, module, name: str, shift: list[float]) -> None:
    """Each batch that `module`'s `name` (finetune_eval, linear_eval_augmented) augments takes an hour on the
    shifted clock."""
    run = getattr(module, name)

    def timed(*args, augment, **kwargs):
        def an_hour(*batch):
            shift[0] += HOUR
            return augment(*batch)
        return run(*args, augment=an_hour, **kwargs)
    monkeypatch.setattr(module, name, timed)


def cut_after_ten_hours(run_dir: Path, monkeypatch) -> None:
    """cut_in_scratch_epoch_3, each batch of its first attempt an hour long: the finished fine-tuning's 6, then the
    4 of the one from scratch that its progress file saved (and a fifth, cut)."""
    with monkeypatch.context() as patch:
        taking_an_hour_a_batch(patch, protocols_module, "finetune_eval", shifted_clock(patch))
        cut_in_scratch_epoch_3(run_dir, patch)


def test_eval_seconds_counts_the_seconds_a_fine_tuning_had_saved_its_progress_after(tmp_path, monkeypatch):
    # The rerun counted only the finished fine-tuning's 6 hours: the 4 the progress file saved were lost.
    run_dir = tmp_path / "run"
    cut_after_ten_hours(run_dir, monkeypatch)
    assert 4 * HOUR <= torch.load(run_dir / PROGRESS_NAME, weights_only=True)["seconds"] < 5 * HOUR
    metrics = train(tiny(**FINETUNES), run_dir)               # the last epoch, at the speed of this machine
    assert 10 * HOUR <= metrics["eval_seconds"] < 11 * HOUR   # the cut hour came after the last save: lost


@pytest.mark.parametrize("set_aside", ["unreadable", "saved for another start"])
def test_a_progress_file_set_aside_carries_no_seconds(tmp_path, monkeypatch, set_aside):
    run_dir = tmp_path / "run"
    cut_after_ten_hours(run_dir, monkeypatch)
    path = run_dir / PROGRESS_NAME
    if set_aside == "unreadable":
        path.write_bytes(b"not a torch file")
    else:
        saved = torch.load(path, weights_only=True)
        torch.save({**saved, "key": {**saved["key"], "start_sha256": "0" * 64}}, path)
    with monkeypatch.context() as patch:
        batches = count_augmented_batches(patch, protocols_module)
        metrics = train(tiny(**FINETUNES), run_dir)
    assert batches == [STEPS_OF_ONE]                          # the fine-tuning from scratch, from its start
    assert 6 * HOUR <= metrics["eval_seconds"] < 7 * HOUR     # the finished fine-tuning's hours only


@pytest.mark.parametrize("in_file, carried", [({}, 0.0), ({"seconds": 5 * HOUR}, 5 * HOUR),
                                              ({"seconds": "soon"}, 0.0)])
def test_a_progress_resumed_adds_the_seconds_its_file_carries_to_its_part(tmp_path, monkeypatch, capfd, in_file,
                                                                          carried):
    """A file saved before progress files kept their seconds ({}) carries none."""
    shift = shifted_clock(monkeypatch)
    key = {"step": 3, "weights_sha256": "w", "device": "cpu", "config": {"seed": 0}}
    partial = PartialEvaluation(tmp_path, key)
    progress = partial.progress("finetune_10pct", torch.nn.Linear(2, 2))
    torch.save({"key": progress.key, "state": {"epochs_done": 1, "step": 3}, **in_file}, progress.path)
    assert progress.load() == {"epochs_done": 1, "step": 3}
    shift[0] += HOUR                                          # the rest of the fine-tuning
    partial.save_part("finetune", "finetune_10pct", {"finetune_top1_10pct": 50.0})

    seconds = json.loads(partial.path.read_text())["parts"]["finetune"]["finetune_10pct"]["seconds"]
    assert carried + HOUR <= seconds < carried + 2 * HOUR
    assert partial.kept_seconds == carried
    counted_none = "gives its seconds so far as 'soon', not a number of seconds; eval_seconds counts none of"
    assert (counted_none in capfd.readouterr().err) == (in_file.get("seconds") == "soon")


TRANSFER = {"max_steps": 2, "eval.protocols": ("transfer",), "eval.transfer_dataset": "imagefolder",
            "eval.transfer_scratch": True, "eval.linear_epochs": 2, "eval.finetune_epochs": 3,
            "eval.finetune_batch_size": 8}
TRANSFER_STEPS_OF_ONE = 3 * 3            # 19 training photos, batches of 8


# Linear evaluation on augmented views (the paper's protocol): 256 training images in batches of 64, 3 epochs.
LINEAR_ON_VIEWS = {"max_steps": 2, "eval.protocols": ("knn", "linear"), "eval.linear_augment": True,
                   "eval.linear_epochs": 3, "eval.linear_batch_size": 64}
LINEAR_STEPS_PER_EPOCH = 4


def count_linear_view_batches(monkeypatch, interrupt_at: int | None = None) -> list[int]:
    """Count the batches linear evaluation on augmented views augments; the `interrupt_at`-th raises Interrupted."""
    return count_augmented_batches(monkeypatch, protocols_module, interrupt_at, trainer="linear_eval_augmented")


def test_linear_evaluation_on_views_cut_short_goes_on_from_its_last_epoch_end(tmp_path, monkeypatch, capfd):
    whole = tmp_path / "whole"
    with monkeypatch.context() as patch:
        batches = count_linear_view_batches(patch)
        train(tiny(**LINEAR_ON_VIEWS), whole)
    assert batches == [3 * LINEAR_STEPS_PER_EPOCH]

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        count_linear_view_batches(patch, interrupt_at=2 * LINEAR_STEPS_PER_EPOCH + 2)
        with pytest.raises(Interrupted):
            train(tiny(**LINEAR_ON_VIEWS), run_dir)
    assert list(json.loads((run_dir / PARTIAL_NAME).read_text())["protocols"]) == ["knn"]
    progress = torch.load(run_dir / PROGRESS_NAME, weights_only=True)
    assert progress["key"]["part"] == "linear" and progress["state"]["epochs_done"] == 2
    capfd.readouterr()

    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        batches = count_linear_view_batches(patch)
        train(tiny(**LINEAR_ON_VIEWS), run_dir)
    assert batches == [LINEAR_STEPS_PER_EPOCH]                 # the last epoch only
    assert f"linear goes on after epoch 2, where an earlier attempt saved it ({PROGRESS_NAME})" in capfd.readouterr().err
    assert final(run_dir) == final(whole)
    assert not (run_dir / PARTIAL_NAME).exists() and not (run_dir / PROGRESS_NAME).exists()


def test_eval_seconds_counts_the_seconds_linear_evaluation_on_views_had_saved_its_progress_after(tmp_path,
                                                                                                  monkeypatch):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        taking_an_hour_a_batch(patch, protocols_module, "linear_eval_augmented", shifted_clock(patch))
        count_linear_view_batches(patch, interrupt_at=2 * LINEAR_STEPS_PER_EPOCH + 2)
        with pytest.raises(Interrupted):
            train(tiny(**LINEAR_ON_VIEWS), run_dir)
    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        metrics = train(tiny(**LINEAR_ON_VIEWS), run_dir)
    # The 8 batches of the 2 epochs saved; the 2 after them were lost with the cut.
    assert 2 * LINEAR_STEPS_PER_EPOCH * HOUR <= metrics["eval_seconds"] < (2 * LINEAR_STEPS_PER_EPOCH + 1) * HOUR
    assert not (run_dir / PARTIAL_NAME).exists() and not (run_dir / PROGRESS_NAME).exists()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """TRANSFER to a folder of photos (streamed; one of each split cannot be read), and the final.json of an
    uninterrupted run."""
    from test_transfer import photo_folder

    root = photo_folder(tmp_path_factory.mktemp("photos") / "p")
    for split in ("train", "test"):
        (root / split / "class0" / "broken.jpg").write_bytes(b"not a JPEG")
    settings = {**TRANSFER, "eval.transfer_data_dir": str(root)}
    run_dir = tmp_path_factory.mktemp("transferred") / "run"
    train(tiny(**settings), run_dir)
    return {"settings": settings, "final": final(run_dir)}


def count_linear_transfers(monkeypatch) -> list[int]:
    calls = [0]

    def linear_eval(*args, _run=transfer_module.linear_eval, **kwargs):
        calls[0] += 1
        return _run(*args, **kwargs)
    monkeypatch.setattr(transfer_module, "linear_eval", linear_eval)
    return calls


def test_transfer_keeps_its_linear_and_finetune_parts_and_goes_on_with_scratch(tmp_path, monkeypatch, capfd, photos):
    run_dir, settings = tmp_path / "run", photos["settings"]
    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        count_augmented_batches(patch, transfer_module, interrupt_at=TRANSFER_STEPS_OF_ONE + 5)
        with pytest.raises(Interrupted):
            train(tiny(**settings), run_dir)
    assert list(json.loads((run_dir / PARTIAL_NAME).read_text())["parts"]["transfer"]) == [
        "transfer_linear", "transfer_finetune"]
    assert torch.load(run_dir / PROGRESS_NAME, weights_only=True)["state"]["epochs_done"] == 1
    capfd.readouterr()

    with monkeypatch.context() as patch:
        saving_every_epoch(patch)
        batches, linear = count_augmented_batches(patch, transfer_module), count_linear_transfers(patch)
        train(tiny(**settings), run_dir)
    assert (batches, linear) == ([2 * 3], [0])                # scratch's last two epochs only
    assert ("evaluate run: transfer in part (transfer_linear, transfer_finetune) already done before the "
            "interruption (kept); running the rest of transfer") in capfd.readouterr().err
    assert final(run_dir) == photos["final"]
    assert not (run_dir / PARTIAL_NAME).exists() and not (run_dir / PROGRESS_NAME).exists()


def test_transfer_whose_every_part_was_kept_reports_the_images_they_counted(tmp_path, monkeypatch, photos):
    """Killed after its last part was saved and before the protocol was: nothing runs again, and the image counts
    (which the streamed passes make) come from the parts."""
    run_dir, settings = tmp_path / "run", photos["settings"]

    def save(self, name, metrics):
        raise Interrupted
    with monkeypatch.context() as patch:
        patch.setattr(PartialEvaluation, "save", save)
        with pytest.raises(Interrupted):
            train(tiny(**settings), run_dir)
    assert len(json.loads((run_dir / PARTIAL_NAME).read_text())["parts"]["transfer"]) == 3

    with monkeypatch.context() as patch:
        batches, linear = count_augmented_batches(patch, transfer_module), count_linear_transfers(patch)
        train(tiny(**settings), run_dir)
    assert (batches, linear) == ([0], [0])
    assert final(run_dir) == photos["final"]
    assert {k: photos["final"][k] for k in ("transfer_train_images", "transfer_test_images",
                                            "transfer_unreadable_images")} == {
        "transfer_train_images": 18, "transfer_test_images": 18, "transfer_unreadable_images": 2}


@pytest.mark.parametrize("asked_at, saved, batches_left", [
    (STEPS_OF_ONE + 3, "finetune_scratch_10pct's progress saved after epoch 2", 2),    # at the next epoch end
    (5, "finetune_10pct finished and saved", STEPS_OF_ONE),                              # its last epoch: at its end
])
def test_a_stop_requested_during_a_fine_tuning_saves_what_it_did_then_stops(tmp_path, monkeypatch, capfd, finetuned,
                                                                            asked_at, saved, batches_left):
    """A SLURM time-limit warning (stop_request.request(), as registry/slurm_job.py's handler calls it) used to stop
    the evaluation at once: a fine-tuning longer than a job started over in every job."""
    precision, uninterrupted = finetuned
    run_dir, settings = tmp_path / "run", {**FINETUNES, "precision": precision}
    answered = []
    with monkeypatch.context() as patch:
        batches = count_augmented_batches(patch, protocols_module)
        counted = protocols_module.finetune_eval

        def finetune_eval(*args, augment, **kwargs):
            def asking(*batch):              # during the `asked_at`-th batch
                if batches[0] == asked_at:
                    answered.append(stop_request.request())
                return augment(*batch)
            return counted(*args, augment=asking, **kwargs)
        patch.setattr(protocols_module, "finetune_eval", finetune_eval)
        with pytest.raises(stop_request.StoppedInEvaluation) as stopped:
            train(tiny(**settings), run_dir)
    assert answered == [True]                                 # the fine-tuning listens
    assert not stop_request.request()                         # nobody does once train() has stopped
    assert stopped.value.saved == saved and stopped.value.step == 2 and stopped.value.during == "evaluation"
    capfd.readouterr()

    with monkeypatch.context() as patch:
        batches = count_augmented_batches(patch, protocols_module)
        train(tiny(**settings), run_dir)
    assert batches == [batches_left]
    assert final(run_dir) == uninterrupted


def test_a_saved_part_keeps_the_unreadable_images_met_so_far(tmp_path):
    # A streamed run's evaluation counts the unreadable images its passes met (Feed.evaluation_finds); a part saved
    # without them would let a rerun that skips the part report fewer.
    key = {"step": 3, "weights_sha256": "w", "device": "cpu", "config": {"seed": 0}}
    partial = PartialEvaluation(tmp_path, key)
    finds = {"train_eval": {"rows": {"7": "row 7 (truncated)"}}, "test_eval": {}}
    partial.finds_so_far = lambda: finds
    partial.save_part("finetune", "finetune_10pct", {"finetune_top1_10pct": 50.0})

    again = PartialEvaluation(tmp_path, key)
    assert again.kept_parts("finetune") == {"finetune_10pct": {"finetune_top1_10pct": 50.0}}
    assert again.data_finds == finds

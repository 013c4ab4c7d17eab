"""final.json's data counts cover the whole run however often it was interrupted: a streamed run killed after a
checkpoint and resumed reports what an uninterrupted run does (images_read, unreadable_reads, unreadable_images,
images_smaller_than_view, unreadable_eval_images), the batches read ahead of the checkpoint counted once, and the 1%
verdict judges the images of every session."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from simclr_core import train as train_module
from simclr_core.checkpoint import load_checkpoint, save_checkpoint
from simclr_core.config import RunConfig
from simclr_core.data.encoded import open_encoded
from simclr_core.train import train
from simclr_core.validation import ConfigError

from test_resident_bad_images import jpeg, rows, write_parquet

COUNTS = ("images_read", "unreadable_reads", "unreadable_images", "images_smaller_than_view", "unreadable_eval_images")
SIDE = 12


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))


def run_config(data: Path, **overrides) -> RunConfig:
    """One epoch streamed from `data` (parquet), 8 images a step, checkpoints every 2 steps; views made a step ahead,
    so a checkpoint's step trails the batches read."""
    return RunConfig().with_overrides({
        "data.dataset": "parquet", "data.data_dir": str(data), "data.loader": "stream", "data.image_size": SIDE,
        "encoder.width": 0.25, "batch_size": 8, "epochs": 1, "optim.warmup_epochs": 0, "log_every_steps": 2,
        "checkpoint_every_steps": 2, "views_ahead": "on", "eval.protocols": (), "seed": 0, **overrides})


def first_batch_rows(cfg: RunConfig, count: int) -> list[int]:
    """The first `count` rows the single process reads at step 0."""
    split = open_encoded(cfg.data, "train")
    return [int(row) for row in split.epoch_order(cfg.seed, 0, 0, 1, cfg.batch_size)[:count]]


def killed_at(run_dir: Path, cfg: RunConfig, step: int, monkeypatch) -> None:
    """train() interrupted (Ctrl-C) during step `step` (0-based), after the checkpoint of the steps before it."""
    real = train_module.warmup_cosine

    def interrupting(at, *args):
        if at == step:
            raise KeyboardInterrupt
        return real(at, *args)

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "warmup_cosine", interrupting)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run_dir)
    assert load_checkpoint(run_dir)["step"] == step and not (run_dir / "final.json").exists()


def counts(run_dir: Path) -> dict:
    final = json.loads((run_dir / "final.json").read_text())
    return {key: final[key] for key in COUNTS}


@pytest.fixture
def met_early(tmp_path) -> RunConfig:
    """48 images: of step 0's batch, one is cut short and one is smaller than the views; no later step reads them."""
    data = tmp_path / "data"
    write_parquet(data, rows(48, bad=set(), side=SIDE))
    cfg = run_config(data)
    bad, small = first_batch_rows(cfg, 2)
    images = rows(48, bad={bad}, side=SIDE)
    images[small] = (jpeg(images[small][1], SIDE // 2), images[small][1])
    write_parquet(data, images)
    assert first_batch_rows(cfg, 2) == [bad, small]
    return cfg


def test_a_resumed_run_counts_the_images_met_before_its_interruption(tmp_path, met_early, monkeypatch):
    """Killed during step 4 (checkpoint at 4, step 4's batch read ahead): the resumed run's final.json counts the
    one unreadable and the one small image of step 0, and each of the 48 reads once."""
    with pytest.warns(UserWarning, match="unreadable image"):
        train(met_early, tmp_path / "full")
    assert counts(tmp_path / "full") == {"images_read": 48, "unreadable_reads": 1, "unreadable_images": 1,
                                         "images_smaller_than_view": 1, "unreadable_eval_images": 0}
    with pytest.warns(UserWarning, match="unreadable image"):
        killed_at(tmp_path / "cut", met_early, 4, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(met_early, tmp_path / "cut")
    said = [str(w.message) for w in caught]
    assert counts(tmp_path / "cut") == counts(tmp_path / "full")
    assert [m for m in said if m.startswith("resuming at step 4: 1 unreadable training image(s) (the first: row ")
            and m.endswith("1 training image(s) smaller than the view, met before, are counted in final.json and "
                           "not warned of again")], said
    assert not [m for m in said if "unreadable image" in m]          # not warned of again


def test_a_checkpoint_without_counts_still_resumes_saying_what_final_json_counts(tmp_path, met_early, monkeypatch):
    """A checkpoint written before checkpoints kept the counts: one line, and final.json says where they start."""
    with pytest.warns(UserWarning, match="unreadable image"):
        killed_at(tmp_path / "run", met_early, 4, monkeypatch)
    checkpoint = load_checkpoint(tmp_path / "run")
    del checkpoint["data_counts"]
    save_checkpoint(tmp_path / "run", checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(met_early, tmp_path / "run")
    said = [str(w.message) for w in caught if "data counts" in str(w.message)]
    assert said == [f"{tmp_path / 'run' / 'checkpoint.pt'} (step 4) was written before checkpoints kept the data "
                    "counts: final.json's images_read, unreadable_reads, unreadable_images, images_smaller_than_view "
                    "and unreadable_eval_images count from step 4 on only (data_counts_from_step)"]
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["data_counts_from_step"] == 4 and final["images_read"] == 16
    with pytest.warns(UserWarning, match="unreadable image"):
        train(met_early, tmp_path / "full")
    assert "data_counts_from_step" not in json.loads((tmp_path / "full" / "final.json").read_text())


def test_a_resumed_run_counts_the_unreadable_test_images_its_earlier_knn_checks_met(tmp_path, monkeypatch):
    """3 epochs, a kNN check every 2 (step 6), no final evaluation: killed during step 6 (after that check and the
    checkpoint), the resumed run reads the test split no more, yet its final.json counts the test image cut short."""
    data = tmp_path / "data"
    write_parquet(data, rows(24, bad=set(), side=SIDE))
    write_parquet(data, rows(9, bad={2}, side=SIDE), split="test")
    cfg = run_config(data, epochs=3, checkpoint_every_steps=3, **{"eval.knn_every_epochs": 2, "eval.knn_k": 3})
    with pytest.warns(UserWarning, match="unreadable image"):
        train(cfg, tmp_path / "full")
    with pytest.warns(UserWarning, match="unreadable image"):
        killed_at(tmp_path / "cut", cfg, 6, monkeypatch)
    with pytest.warns(UserWarning, match=r"resuming at step 6: 1 unreadable test image\(s\) \(the first: row 2 of "):
        train(cfg, tmp_path / "cut")
    assert counts(tmp_path / "cut") == counts(tmp_path / "full")
    assert counts(tmp_path / "full")["unreadable_eval_images"] == 1


def test_the_verdict_on_unreadable_images_judges_every_session_of_a_run(tmp_path, monkeypatch):
    """80 images, 5 cut short in step 0's batch and 5 in step 9's: an uninterrupted run stops at step 9 (10 of the 80
    read), and so does one killed during step 2 and resumed, not judging step 9's 5 alone."""
    data = tmp_path / "data"
    write_parquet(data, rows(80, bad=set(), side=SIDE))
    cfg = run_config(data)
    order = open_encoded(cfg.data, "train").epoch_order(cfg.seed, 0, 0, 1, 8)
    write_parquet(data, rows(80, bad={int(r) for r in (*order[:5], *order[-5:])}, side=SIDE))
    verdict = r"^10 of the 80 images read so far could not be decoded \(more than 1%\)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match=verdict):
            train(cfg, tmp_path / "full")
        killed_at(tmp_path / "cut", cfg, 2, monkeypatch)
        with pytest.raises(ConfigError, match=verdict):
            train(cfg, tmp_path / "cut")


@pytest.mark.distributed
@pytest.mark.slow
def test_two_processes_stopped_and_resumed_count_what_an_uninterrupted_pair_does(tmp_path):
    """2 CPU processes (gloo): rank 0's first image of step 0 is cut short and rank 1's is small; rank 1 is asked to
    stop during step 1 (checkpoint at 2, later batches read ahead by both). Resumed by two processes, final.json
    counts both images and the 48 reads once, as the uninterrupted pair's does."""
    from test_train import train_in_two_processes

    data = tmp_path / "data"
    write_parquet(data, rows(48, bad=set(), side=SIDE))
    cfg = run_config(data, precision="no")
    split = open_encoded(cfg.data, "train")
    bad, small = (int(split.epoch_order(cfg.seed, 0, rank, 2, 4)[0]) for rank in (0, 1))
    images = rows(48, bad={bad}, side=SIDE)
    images[small] = (jpeg(images[small][1], SIDE // 2), images[small][1])
    write_parquet(data, images)

    full = train_in_two_processes(cfg, tmp_path / "full", tmp_path)
    stopped = train_in_two_processes(cfg, tmp_path / "cut", tmp_path, ask_to_stop=(1, 1))
    assert [r.get("stopped_at") for r in stopped] == [2, 2]
    resumed = train_in_two_processes(cfg, tmp_path / "cut", tmp_path)
    expected = {"images_read": 48, "unreadable_reads": 1, "unreadable_images": 1, "images_smaller_than_view": 1,
                "unreadable_eval_images": 0}
    assert counts(tmp_path / "full") == counts(tmp_path / "cut") == expected
    assert all({key: r["metrics"][key] for key in COUNTS} == expected for r in (*full, *resumed))


def test_a_run_killed_during_its_final_evaluation_counts_what_the_protocols_it_kept_met(tmp_path, monkeypatch):
    """kNN (which reads the test split, one image of it cut short) finished, then transfer was interrupted: the rerun
    runs transfer only, which reads other datasets, yet final.json counts that test image. A record of finished
    protocols written before it kept such images: one line says what final.json may leave out."""
    import dataclasses

    from simclr_core.evaluate import protocols as protocols_module
    from simclr_core.partial_evaluation import PARTIAL_NAME

    from test_resident_bad_images import write_folder

    data = tmp_path / "data"
    write_parquet(data, rows(24, bad=set(), side=SIDE))
    write_parquet(data, rows(9, bad={2}, side=SIDE), split="test")
    write_folder(tmp_path / "transfer", rows(12, bad=set(), side=SIDE))
    write_folder(tmp_path / "transfer", rows(9, bad=set(), side=SIDE), split="test")
    cfg = run_config(data, **{"eval.protocols": ("knn", "transfer"), "eval.knn_k": 3,
                              "eval.transfer_dataset": "imagefolder",
                              "eval.transfer_data_dir": str(tmp_path / "transfer"), "eval.linear_epochs": 1,
                              "eval.finetune_epochs": 1, "eval.finetune_batch_size": 4})
    with pytest.warns(UserWarning, match="unreadable image"):
        train(cfg, tmp_path / "full")
    assert counts(tmp_path / "full")["unreadable_eval_images"] == 1

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    transfer = protocols_module.PROTOCOLS["transfer"]
    with monkeypatch.context() as patch, pytest.warns(UserWarning, match="unreadable image"):
        patch.setitem(protocols_module.PROTOCOLS, "transfer", dataclasses.replace(transfer, run=interrupted))
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "cut")
    shutil.copytree(tmp_path / "cut", tmp_path / "older")
    train(cfg, tmp_path / "cut")
    assert counts(tmp_path / "cut") == counts(tmp_path / "full")

    partial = json.loads((tmp_path / "older" / PARTIAL_NAME).read_text())
    assert list(partial["protocols"]) == ["knn"]
    del partial["data_finds"]
    (tmp_path / "older" / PARTIAL_NAME).write_text(json.dumps(partial))
    with pytest.warns(UserWarning, match=rf"^{tmp_path / 'older' / PARTIAL_NAME} was written before it kept the "
                                         r"unreadable images its protocols met: final.json's unreadable_images, "
                                         r"images_smaller_than_view and unreadable_eval_images may leave out those "
                                         r"that knn met$"):
        train(cfg, tmp_path / "older")
